//! PostgreSQL storage of the relay. Every SQL query of the project lives in this crate, checked
//! at compile time against the committed `.sqlx/` data.

pub mod activities;
pub mod argocd;
pub mod circuits;
pub mod comments;
pub mod console;
pub mod console_sessions;
pub mod deliveries;
pub mod deployments;
pub mod environments;
pub mod error;
mod hinted;
pub mod integrations;
pub mod jobs;
pub mod pool;
pub mod previous_secrets;
pub mod queue;
pub mod states;
pub mod text;

pub use error::StoreError;
pub use pool::{connect, migrate, schema_is_current, PoolOptions, MIGRATOR};
pub use sqlx::PgPool;
pub use states::{CircuitState, DeliveryStatus, JobState};
pub use text::Text;
