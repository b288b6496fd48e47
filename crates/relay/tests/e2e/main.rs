//! End-to-end tests: the real server over loopback HTTP, the real CLI binary, real PostgreSQL
//! (each test gets its own database from `#[sqlx::test]`; set DATABASE_URL).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod bitbucket_admin;
mod cli;
mod deploy_side;
mod faults;
mod ingest;
mod ingest_failures;
mod lifecycle;
mod mirroring;
mod policies;
mod processing;
mod reconcile;
mod secrets_hygiene;
mod support;
