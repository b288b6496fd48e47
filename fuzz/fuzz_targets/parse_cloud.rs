#![no_main]
//! Bitbucket Cloud bodies under every Cloud event key: any bytes give an event or a typed
//! error, never a panic.
use libfuzzer_sys::fuzz_target;

const KEYS: &[&str] = &[
    "repo:push",
    "pullrequest:created",
    "pullrequest:updated",
    "pullrequest:fulfilled",
    "pullrequest:rejected",
    "pullrequest:comment_created",
];

fuzz_target!(|data: &[u8]| {
    for key in KEYS {
        let _ = relay_core::parse(key, data);
    }
});
