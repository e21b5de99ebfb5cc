//! Never falls over: for every decoder, arbitrary bytes (and mangled real
//! records) decode without a panic, and every framed record is accounted for.

use std::sync::Arc;

use emrwatch::ingest::mapping::Mapping;
use emrwatch::ingest::{Format, IngestOptions, decode_bytes};
use proptest::prelude::*;

/// Well-formed records of every format, for mangling.
const SEEDS: &[&str] = &[
    r#"{"resourceType":"AuditEvent","recorded":"2026-11-02T08:00:00Z","action":"R","agent":[{"requestor":true,"who":{"identifier":{"value":"u1"}}}],"entity":[{"what":{"reference":"Patient/p1"}}]}"#,
    r#"{"ts":"2026-11-02T08:00:00Z","user_id":"u1","patient_id":"p1","action":"view"}"#,
    "ts,user_id,patient_id,action",
    "2026-11-02T08:00:00Z,u1,\"p,1\",view",
    "\"multi\nline\",\"\"\"q\"\"\"",
    "Nov  2 08:00:00 jump01 sshd[42]: Failed password for root from 192.0.2.7 port 4242 ssh2",
    "<38>1 2026-11-02T08:00:00Z pacs01 sudo 42 - [meta sequenceId=\"1\"] alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/sh",
    "\tcontinued",
    "<AuditMessage><EventIdentification EventActionCode=\"R\" EventDateTime=\"2026-11-02T08:00:00Z\" EventOutcomeIndicator=\"0\"/><ActiveParticipant UserID=\"u1\" UserIsRequestor=\"true\"/></AuditMessage>",
    "\u{feff}",
    "\r",
    "",
];

/// A text built from seed records, cut, spliced and sprinkled with bytes.
fn mangled() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        (0..SEEDS.len(), any::<usize>(), any::<usize>()).prop_map(|(i, a, b)| {
            let s = SEEDS[i].as_bytes();
            let (a, b) = (a % (s.len() + 1), b % (s.len() + 1));
            s[a.min(b)..a.max(b)].to_vec()
        }),
        (0..SEEDS.len()).prop_map(|i| SEEDS[i].as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..8),
        Just(b"\n".to_vec()),
        Just(b"\"".to_vec()),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..600), mangled()]
}

const FORMATS: [Format; 6] = [
    Format::Auto,
    Format::Fhir,
    Format::Ndjson,
    Format::Csv,
    Format::Syslog,
    Format::Atna,
];

fn options(format: Format, chunk_bytes: usize) -> IngestOptions {
    IngestOptions {
        format,
        mapping: Arc::new(Mapping::default()),
        max_record_bytes: 256,
        max_document_bytes: 4096,
        chunk_bytes,
        syslog_year: Some(2026),
        ..Default::default()
    }
}

/// (rows, rejects, records framed) of `data` read as `format`.
fn totals(data: &[u8], format: Format, chunk_bytes: usize) -> (u64, u64, u64) {
    let mut t = (0, 0, 0);
    for d in decode_bytes("mem://prop", data, &options(format, chunk_bytes)) {
        assert_eq!(d.batch.schema(), d.table.schema(), "{format:?}");
        for r in &d.rejects {
            assert!(
                !r.reason.is_empty(),
                "{format:?}: a reject without a reason"
            );
        }
        t.0 += d.batch.num_rows() as u64;
        t.1 += d.rejects.len() as u64;
        t.2 += d.records;
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn every_decoder_survives_anything_and_accounts_for_every_record(data in bytes()) {
        for format in FORMATS {
            let (rows, rejects, records) = totals(&data, format, 1 << 20);
            match format {
                // One record is one row or one reject.
                Format::Ndjson | Format::Csv | Format::Syslog => {
                    prop_assert_eq!(rows + rejects, records, "{:?}", format);
                }
                // A Bundle or a document of several messages is one record
                // of many rows; an object skipped whole is one reject.
                _ => prop_assert!(rejects <= records.max(1), "{:?}", format),
            }
        }
    }

    #[test]
    fn small_chunks_frame_the_same_records_as_one(data in mangled()) {
        // Syslog too: continuation lines cut off from their record by a
        // chunk boundary rejoin it.
        for format in [Format::Ndjson, Format::Csv, Format::Syslog] {
            prop_assert_eq!(
                totals(&data, format, 1 << 20),
                totals(&data, format, 7),
                "{:?}", format
            );
        }
    }
}

/// Inputs the fuzzers once crashed on (`tests/fixtures/fuzz/FORMAT/*`, see
/// README "Fuzzing"): each must now decode, and account for its records.
#[test]
fn every_kept_fuzz_input_decodes() {
    let root = crate::common::fixture("fuzz");
    for (dir, format) in [
        ("fhir", Format::Fhir),
        ("ndjson", Format::Ndjson),
        ("csv", Format::Csv),
        ("syslog", Format::Syslog),
        ("atna", Format::Atna),
        ("auto", Format::Auto),
    ] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let (rows, rejects, records) = totals(&data, format, 1 << 20);
            if matches!(format, Format::Ndjson | Format::Csv | Format::Syslog) {
                assert_eq!(rows + rejects, records, "{}", path.display());
            }
        }
    }
}
