//! What every fuzz target checks: `data` read as `format`, as ingest reads
//! a file (framing, detection, decoding), never panics, and for the line
//! formats every framed record is one row or one reject.

use emrwatch::ingest::{Format, IngestOptions, decode_bytes};

/// Decodes `data` as `format` and checks the accounting.
pub fn check(format: Format, data: &[u8]) {
    let opts = IngestOptions {
        format,
        max_record_bytes: 4096,
        max_document_bytes: 1 << 16,
        chunk_bytes: 1024,
        syslog_year: Some(2026),
        ..IngestOptions::default()
    };
    let (mut rows, mut rejects, mut records) = (0, 0, 0);
    for d in decode_bytes("fuzz://input", data, &opts) {
        rows += d.batch.num_rows() as u64;
        rejects += d.rejects.len() as u64;
        records += d.records;
    }
    if matches!(format, Format::Ndjson | Format::Csv | Format::Syslog) {
        assert_eq!(
            rows + rejects,
            records,
            "every framed record is a row or a reject"
        );
    }
}
