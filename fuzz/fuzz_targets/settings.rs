//! Fuzz target: see `wgfw_fuzz::settings`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wgfw_fuzz::settings(data);
});
