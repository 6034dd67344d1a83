//! Fuzz target: see `wgfw_fuzz::cli`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wgfw_fuzz::cli(data);
});
