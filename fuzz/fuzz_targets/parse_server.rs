#![no_main]
//! Bitbucket Server bodies: the first byte picks the event key, the rest is the body.
use libfuzzer_sys::fuzz_target;

const KEYS: &[&str] = &[
    "repo:refs_changed",
    "pr:opened",
    "pr:modified",
    "pr:from_ref_updated",
    "pr:merged",
    "pr:declined",
    "pr:deleted",
    "diagnostics:ping",
];

fuzz_target!(|data: &[u8]| {
    if let Some((first, body)) = data.split_first() {
        let key = KEYS[usize::from(*first) % KEYS.len()];
        let _ = relay_core::parse(key, body);
    }
});
