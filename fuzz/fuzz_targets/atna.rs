//! Fuzzes the `atna` decoder through the framer (see `src/lib.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    emrwatch_fuzz::check(emrwatch::ingest::Format::Atna, data);
});
