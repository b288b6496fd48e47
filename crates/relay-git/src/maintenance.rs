//! Housekeeping of a mirror, in the job that made it necessary rather than in git's own
//! automatic gc (turned off for transfers: it would run in the middle of a job, unbounded).
//!
//! Every fetch leaves a small pack or a few loose objects; lookups slow down as they pile
//! up. Past a threshold the mirror is repacked geometrically (only the small packs are
//! rolled up, so the cost stays proportional to what is new) and its commit-graph, which
//! makes ancestry walks cheap, is brought up to date incrementally.

use std::path::Path;
use std::time::Instant;

use crate::transport;

/// More packs than this and the small ones are rolled up.
const MAX_PACKS: usize = 16;
/// About this many loose objects and they are packed (estimated from one fan-out directory,
/// as `git gc --auto` does).
const MAX_LOOSE: usize = 1024;

/// Whether the mirror at `git_dir` has piled up enough to be worth repacking.
pub(crate) fn needed(git_dir: &Path) -> bool {
    let objects = git_dir.join("objects");
    let packs = std::fs::read_dir(objects.join("pack"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    // Not a repack's temporary files, should one have been killed.
                    e.file_name().to_string_lossy().starts_with("pack-")
                        && e.path().extension().is_some_and(|x| x == "pack")
                })
                .count()
        })
        .unwrap_or(0);
    let loose_sample = std::fs::read_dir(objects.join("17"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    packs > MAX_PACKS || loose_sample * 256 > MAX_LOOSE
}

/// Repacks and refreshes the commit-graph; failures are logged and left for next time.
pub(crate) fn run(git_dir: &Path, deadline: Instant) {
    let started = Instant::now();
    let repacked = transport::local(git_dir, &["repack", "-d", "-q", "--geometric=2"], deadline)
        .unwrap_or(false);
    let graph = transport::local(
        git_dir,
        &[
            "commit-graph",
            "write",
            "--reachable",
            "--split",
            "--no-progress",
        ],
        deadline,
    )
    .unwrap_or(false);
    tracing::info!(
        repository = %git_dir.display(),
        repacked,
        commit_graph = graph,
        ms = started.elapsed().as_millis() as u64,
        "mirror housekeeping"
    );
}
