//! The `csv` decoder: delimiters, quotes, headers or not, BOM, CRLF, mapping
//! files, and bad records, each asserted value by value.

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Int64Type};
use emrwatch::ingest::mapping::Mapping;
use emrwatch::ingest::{Format, IngestOptions, Reject, Table, decode_bytes};
use std::sync::Arc;

use crate::common::*;

/// Decodes `bytes` as one object; returns the rows and the rejects.
fn decode(bytes: &[u8], format: Format, mapping: Option<&str>) -> (RecordBatch, Vec<Reject>) {
    let opts = IngestOptions {
        format,
        mapping: Arc::new(mapping.map_or_else(Mapping::default, |m| Mapping::parse(m).unwrap())),
        ..Default::default()
    };
    let decoded = decode_bytes("mem://export.csv", bytes, &opts);
    let mut rejects = Vec::new();
    let mut batches = Vec::new();
    let mut records = 0;
    for d in decoded {
        assert_eq!(d.table, Table::AccessEvents);
        records += d.records;
        rejects.extend(d.rejects);
        batches.push(d.batch);
    }
    let batch = concat_batches(&emrwatch::schema::access_events(), &batches).unwrap();
    assert_eq!(
        records,
        (batch.num_rows() + rejects.len()) as u64,
        "stored + rejected = records framed"
    );
    (batch, rejects)
}

fn texts(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let c = cast(b.column_by_name(name).unwrap(), &DataType::Utf8).unwrap();
    c.as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

fn lines(b: &RecordBatch) -> Vec<i64> {
    let c = cast(b.column_by_name("source_line").unwrap(), &DataType::Int64).unwrap();
    c.as_primitive::<Int64Type>().values().to_vec()
}

fn times(b: &RecordBatch) -> Vec<i64> {
    let c = b.column_by_name("ts").unwrap();
    let c = cast(c, &DataType::Int64).unwrap();
    c.as_primitive::<Int64Type>().values().to_vec()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[test]
fn quoted_fields_hold_delimiters_quotes_and_line_breaks() {
    let text = "\u{feff}ts,user_id,patient_id,action,resource,workstation\r\n\
        2026-11-02T08:00:00Z,u1,MRN1,view,\"notes, progress\",WS1\r\n\
        2026-11-02T08:01:00Z,u2,MRN2,view,\"the \"\"good\"\" chart\",\"WS\r\n2\"\r\n\
        2026-11-02T08:02:00Z,u3,MRN3,update,labs,\r\n";
    let (b, rejects) = decode(text.as_bytes(), Format::Auto, None);
    assert!(rejects.is_empty(), "{rejects:?}");
    assert_eq!(texts(&b, "user_id"), [s("u1"), s("u2"), s("u3")]);
    assert_eq!(
        texts(&b, "resource"),
        [s("notes, progress"), s("the \"good\" chart"), s("labs")]
    );
    assert_eq!(texts(&b, "workstation"), [s("WS1"), s("WS\r\n2"), None]);
    assert_eq!(texts(&b, "action"), [s("view"), s("view"), s("update")]);
    // The header is line 1; u2's record spans lines 3-4, so u3's is line 5.
    assert_eq!(lines(&b), [2, 3, 5]);
    assert_eq!(times(&b)[0], us("2026-11-02T08:00:00Z"));
}

#[test]
fn semicolons_tabs_and_pipes_are_told_from_the_header() {
    for d in [";", "\t", "|"] {
        let text = format!(
            "ts{d}user_id{d}patient_id{d}action\n2026-11-02T08:00:00Z{d}u1{d}\"MRN{d}1\"{d}view\n"
        );
        let (b, rejects) = decode(text.as_bytes(), Format::Auto, None);
        assert!(rejects.is_empty(), "{d:?}: {rejects:?}");
        assert_eq!(texts(&b, "patient_id"), [Some(format!("MRN{d}1"))], "{d:?}");
    }
}

#[test]
fn a_mapping_renames_columns_and_values_and_reads_local_times() {
    let mapping = std::fs::read_to_string(fixture("csv/epic.toml")).unwrap();
    let text = "ACCESS_TIME;USER_ID;USER_TYPE;PAT_MRN;ACCESS_ACTION;METRIC_NAME;WORKSTATION_ID\n\
        11/02/2026 08:00:00;E123;Nurse;MRN9;Chart Review;Notes;CLIN-42\n\
        07/01/2026 23:30:00;E124;Physician;MRN8;Break-the-Glass;Results;\n";
    let (b, rejects) = decode(text.as_bytes(), Format::Csv, Some(&mapping));
    assert!(rejects.is_empty(), "{rejects:?}");
    assert_eq!(texts(&b, "user_id"), [s("E123"), s("E124")]);
    assert_eq!(texts(&b, "action"), [s("view"), s("break_glass")]);
    assert_eq!(texts(&b, "app"), [s("Epic"), s("Epic")], "the default");
    assert_eq!(texts(&b, "workstation"), [s("CLIN-42"), None]);
    // Chicago: CST (UTC-6) in November, CDT (UTC-5) in July.
    assert_eq!(
        times(&b),
        [us("2026-11-02T14:00:00Z"), us("2026-07-02T04:30:00Z")]
    );
}

#[test]
fn without_a_header_columns_are_numbered() {
    let mapping = "[csv]\nheader = false\ndelimiter = \"|\"\n\
        [columns]\nts = \"1\"\nuser_id = \"3\"\npatient_id = \"2\"\naction = \"4\"\n";
    let text = "2026-11-02T08:00:00Z|MRN1|u1|view\n2026-11-02T08:00:01Z|MRN2|u2|print|extra\n";
    let (b, rejects) = decode(text.as_bytes(), Format::Csv, Some(mapping));
    assert!(rejects.is_empty(), "{rejects:?}");
    assert_eq!(texts(&b, "user_id"), [s("u1"), s("u2")]);
    assert_eq!(texts(&b, "patient_id"), [s("MRN1"), s("MRN2")]);
    assert_eq!(lines(&b), [1, 2]);
    let e = Mapping::parse("[csv]\nheader = false\n[columns]\nts = \"when\"\n").unwrap_err();
    assert!(e.contains("1-based number"), "{e}");
    let e = Mapping::parse("[csv]\ndelimiter = \"::\"\n").unwrap_err();
    assert!(e.contains("delimiter"), "{e}");
}

#[test]
fn bad_records_are_rejected_with_their_line_and_the_rest_stored() {
    let mut text = b"ts,user_id,patient_id,action\n\
        2026-11-02T08:00:00Z,u1,MRN1,view\n\
        yesterday,u2,MRN2,view\n\
        2026-11-02T08:00:02Z,u3,MRN3,peek\n\
        2026-11-02T08:00:03Z,,MRN4,view\n"
        .to_vec();
    text.extend_from_slice(b"2026-11-02T08:00:04Z,u\xff5,MRN5,view\n");
    text.extend_from_slice(b"2026-11-02T08:00:05Z,u6,\"MRN6,view\n");
    text.extend_from_slice(b"2026-11-02T08:00:06Z,u7\n");
    let (b, rejects) = decode(&text, Format::Csv, None);
    assert_eq!(texts(&b, "user_id"), [s("u1")]);
    let why: Vec<(u64, &str)> = rejects
        .iter()
        .map(|r| (r.line, r.reason.as_str()))
        .collect();
    assert_eq!(why.len(), 5, "{why:?}");
    assert!(
        why[0].0 == 3 && why[0].1.contains("unparseable timestamp"),
        "{why:?}"
    );
    assert!(why[1].0 == 4 && why[1].1.contains("\"peek\""), "{why:?}");
    assert!(
        why[2].0 == 5 && why[2].1.contains("missing user"),
        "{why:?}"
    );
    assert!(
        why[3].0 == 6 && why[3].1.contains("invalid UTF-8"),
        "{why:?}"
    );
    // An unterminated quote runs to the end of the file: one record (lines
    // 7-8), rejected for what it lacks, not a crash.
    assert!(
        why[4].0 == 7 && why[4].1.contains("missing action"),
        "{why:?}"
    );
}

#[test]
fn a_header_without_the_needed_columns_skips_the_file_by_name() {
    let (b, rejects) = decode(b"who,what\nu1,view\n", Format::Csv, None);
    assert_eq!(b.num_rows(), 0);
    assert_eq!(rejects.len(), 1);
    assert!(
        rejects[0].reason.contains("no column `ts`") && rejects[0].reason.contains("who, what"),
        "{}",
        rejects[0].reason
    );
}

#[test]
fn ingest_reads_a_csv_export_with_a_mapping_file() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("access.csv");
    std::fs::write(
        &export,
        "ACCESS_TIME;USER_ID;PAT_MRN;ACCESS_ACTION\r\n\
         11/02/2026 08:00:00;E1;MRN1;Chart Review\r\n\
         11/02/2026 08:05:00;E1;MRN2;Print\r\n",
    )
    .unwrap();
    let store = dir.path().join("store");
    let out = ok(&[
        "ingest",
        export.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--mapping",
        fixture("csv/epic.toml").to_str().unwrap(),
    ]);
    assert!(
        stderr(&out).contains("2 stored, 0 rejected"),
        "{}",
        stderr(&out)
    );
    let out = ok(&[
        "sql",
        "--store",
        store.to_str().unwrap(),
        "--output",
        "csv",
        "-e",
        "SELECT user_id, patient_id, action, app FROM access_events ORDER BY ts",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "user_id,patient_id,action,app\nE1,MRN1,view,Epic\nE1,MRN2,print,Epic\n"
    );
}
