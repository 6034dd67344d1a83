//! Fuzz target: see `wgfw_fuzz::networkd`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wgfw_fuzz::networkd(data);
});
