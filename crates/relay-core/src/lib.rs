//! Pure domain of the Bitbucket relay.
//!
//! Nothing in this crate performs I/O, spawns tasks or knows about the database or HTTP
//! framework: it turns bytes and settings into typed values and decisions, so every rule can be
//! tested table-driven without a runtime.

pub mod ids;
pub mod settings;
pub mod signature;

pub use ids::{IdError, IntegrationId};
pub use settings::{IntegrationType, Settings, SettingsError};
pub use signature::{sign, verify_signature, SignatureError};
