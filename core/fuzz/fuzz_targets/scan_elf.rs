//! Any bytes, as a file, through `scan`: no panic may escape, no hang, no huge allocation.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::scan_bytes(data);
});
