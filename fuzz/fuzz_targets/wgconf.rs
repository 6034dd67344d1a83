//! Fuzz target: see `wgfw_fuzz::wgconf`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wgfw_fuzz::wgconf(data);
});
