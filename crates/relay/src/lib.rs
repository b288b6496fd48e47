//! The relay binary's library: configuration, the HTTP server, the CLI. `main.rs` only parses
//! the command line and calls [`cli::run`]; tests start the real server through [`http::serve`].

pub mod admin;
pub mod bitbucket;
pub mod cli;
pub mod config;
pub mod console;
pub mod http;
pub mod metrics;
pub mod secrets;
pub mod shutdown;
pub mod telemetry;
pub mod worker;
