//! The relay binary's library: configuration, the HTTP server, the CLI. `main.rs` only parses
//! the command line and calls [`cli::run`]; `relay serve` and the end-to-end tests start the
//! same [`app::Application`].
//!
//! Layers, each importing only those below it: `cli` and `http` (the edges) use `admin`
//! (validated changes shared by both) and `app`; `app` starts `http` and `worker`; `worker`
//! uses `bitbucket`, `secrets`, `redact` and the library crates, never `admin`.

pub mod admin;
pub mod app;
pub mod argocd;
pub mod bitbucket;
pub mod cli;
pub mod config;
pub mod console;
pub mod http;
pub mod metrics;
pub mod redact;
pub mod secrets;
pub mod shutdown;
pub mod telemetry;
pub mod worker;

/// mimalloc instead of glibc's malloc, for every program that links the relay: its binary,
/// its tests and its benchmark, so the benchmark measures the allocator the relay runs with.
/// Under ingest load glibc spent ~18 % of the relay's CPU in malloc and free (bodies of
/// 1-12 KB fall outside its fast bins); see docs/PERFORMANCE.md (third session).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
