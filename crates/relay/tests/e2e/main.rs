//! End-to-end tests: the real server over loopback HTTP, the real CLI binary, real PostgreSQL
//! (each test gets its own database from `#[sqlx::test]`; set DATABASE_URL).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod activity;
mod api;
mod api_hardening;
mod argocd;
mod argocd_refresh;
mod bitbucket_admin;
mod circuit;
mod cli;
mod connections;
mod console;
mod console_browser;
mod console_integration;
mod console_pages;
mod deploy_side;
mod faults;
mod ingest;
mod ingest_failures;
mod integrity;
mod lifecycle;
mod mirroring;
mod monitoring;
mod planned_ahead;
mod poison;
mod policies;
mod processing;
mod processing_failures;
mod read_ahead;
mod reconcile;
mod rotation;
mod secrets_hygiene;
mod support;
mod urls;
mod wakeups;
mod watermark;
