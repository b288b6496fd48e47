#![no_main]
//! The signature path: arbitrary header bytes against arbitrary bodies never panic, and a
//! signature only verifies for the body it was made for.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.len() / 2;
    let (header, body) = data.split_at(split);
    let _ = relay_core::verify_signature(b"fuzz-secret", body, Some(header));
    let good = relay_core::sign(b"fuzz-secret", body);
    assert!(relay_core::verify_signature(b"fuzz-secret", body, Some(good.as_bytes())).is_ok());
});
