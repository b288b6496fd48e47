//! Pure domain of the Bitbucket relay.
//!
//! Nothing in this crate performs I/O, spawns tasks or knows about the database or HTTP
//! framework: it turns bytes and settings into typed values and decisions, so every rule can be
//! tested table-driven without a runtime.

pub mod comment;
pub mod deployment;
pub mod environment;
pub mod event;
pub mod ids;
pub mod naming;
pub mod plan;
pub mod policy;
pub mod settings;
pub mod signature;
pub mod targets;
pub mod text;

pub use environment::{Environment, EnvironmentKind, EnvironmentStatus, PullRequestInfo};
pub use event::{
    parse, CommitHash, Event, ParseError, PrAction, PrState, PullRequest, RefChange, RefKind,
    UnknownValue,
};
pub use ids::{IdError, IntegrationId};
pub use plan::{
    plan, plan_at, BuildState, DeployEvent, EnvironmentChange, JobKind, JobSpec, Plan, PlanContext,
};
pub use policy::{Waiting, WaitingReason};
pub use settings::{IntegrationType, Settings, SettingsError};
pub use signature::{sign, verify_signature, SignatureError};
pub use text::TextEnum;
