//! Admin operations shared by the CLI and (later) the HTTP admin API, so both validate the
//! same way and neither can bypass a rule.

pub mod activity;
pub mod bitbucket_side;
pub mod environments;
pub mod error;
pub mod integrations;
pub mod managed;
pub mod rotation;
pub mod validate;
pub mod views;

pub use error::AdminError;
