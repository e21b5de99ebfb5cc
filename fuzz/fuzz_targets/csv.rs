//! Fuzzes the `csv` decoder through the framer, as ingest reads a file.
#![no_main]

use emrwatch::ingest::{Format, IngestOptions, decode_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = IngestOptions {
        format: Format::Csv,
        max_record_bytes: 4096,
        max_document_bytes: 1 << 16,
        chunk_bytes: 1024,
        syslog_year: Some(2026),
        ..IngestOptions::default()
    };
    let mut rows = 0;
    let mut rejects = 0;
    let mut records = 0;
    for d in decode_bytes("fuzz://input", data, &opts) {
        rows += d.batch.num_rows() as u64;
        rejects += d.rejects.len() as u64;
        records += d.records;
    }
    if matches!(Format::Csv, Format::Ndjson | Format::Csv | Format::Syslog) {
        assert_eq!(rows + rejects, records, "every framed record is a row or a reject");
    }
});
