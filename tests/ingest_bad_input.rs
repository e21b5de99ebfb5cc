//! Bad input is normal input: each bad record becomes a reject with its
//! source, line and reason; the good records of the same file are stored;
//! the run exits 0, or 2 with --strict.

use std::io::Write;

use crate::common::*;

fn good(id: u32) -> String {
    format!(
        r#"{{"resourceType":"AuditEvent","id":"g{id}","action":"R","recorded":"2026-11-02T10:00:{:02}Z","agent":[{{"who":{{"identifier":{{"value":"u{id}"}}}},"requestor":true}}],"entity":[{{"what":{{"reference":"Patient/P{id}"}}}}]}}"#,
        id % 60
    )
}

fn bad_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("mixed.ndjson");
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(f, "{}", good(1)).unwrap(); // 1
    writeln!(f, r#"{{"resourceType":"AuditEvent","action":"R","#).unwrap(); // 2 malformed
    writeln!(
        f,
        r#"{{"resourceType":"AuditEvent","action":"R","agent":[]}}"#
    )
    .unwrap(); // 3 no recorded
    writeln!(
        f,
        r#"{{"resourceType":"AuditEvent","action":"R","recorded":"yesterday"}}"#
    )
    .unwrap(); // 4
    writeln!(
        f,
        r#"{{"resourceType":"AuditEvent","padding":"{}"}}"#,
        "x".repeat(5000)
    )
    .unwrap(); // 5 too long
    f.write_all(b"{\"resourceType\":\"AuditEvent\",\"action\":\"R\",\"who\":\"\xff\xfe\"}\n")
        .unwrap(); // 6
    writeln!(f, "{}", good(7)).unwrap(); // 7
    writeln!(
        f,
        r#"{{"resourceType":"AuditEvent","action":"R","recorded":"2026-11-02T10:00:00"}}"#
    )
    .unwrap(); // 8 no zone
    path
}

#[test]
fn each_bad_record_is_rejected_with_line_and_reason_and_the_rest_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let input = bad_file(dir.path());
    let out = ingest(&store, &[&input], &["--max-record-bytes", "2000"]);
    assert!(
        out.status.success(),
        "exit 0 despite rejects: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("2 stored, 6 rejected"),
        "{}",
        stderr(&out)
    );
    assert_eq!(scalar(&store, "SELECT count(*) FROM access_events"), 2);
    let rejects = query(
        &store,
        "SELECT line, byte_offset, reason, source FROM rejects ORDER BY line",
    );
    let got: Vec<(i64, String)> = rejects
        .iter()
        .map(|r| {
            (
                r["line"].as_i64().unwrap(),
                s(r, "reason").unwrap().to_string(),
            )
        })
        .collect();
    let expect = [
        (2, "malformed JSON"),
        (3, "missing `recorded`"),
        (4, "unparseable timestamp in `recorded`"),
        (5, "over the 2000 byte limit"),
        (6, "invalid UTF-8"),
        (8, "unparseable timestamp in `recorded`"),
    ];
    assert_eq!(got.len(), expect.len(), "{got:?}");
    for ((line, reason), (want_line, want)) in got.iter().zip(expect) {
        assert_eq!(*line, want_line);
        assert!(
            reason.contains(want),
            "line {line}: {reason:?} should contain {want:?}"
        );
    }
    assert!(s(&rejects[0], "source").unwrap().ends_with("/mixed.ndjson"));
    // The offset of line 2 is the length of line 1 plus its newline.
    assert_eq!(
        rejects[0]["byte_offset"].as_i64().unwrap(),
        good(1).len() as i64 + 1
    );
}

#[test]
fn strict_fails_on_the_first_reject_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let input = bad_file(dir.path());
    let out = ingest(&store, &[&input], &["--strict"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("line 2") && err.contains("malformed JSON"),
        "{err}"
    );
    assert_eq!(scalar(&store, "SELECT count(*) FROM access_events"), 0);
}

#[test]
fn a_truncated_gzip_keeps_what_came_before_the_damage() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..2000 {
        writeln!(gz, "{}", good(i)).unwrap();
    }
    let full = gz.finish().unwrap();
    let cut = &full[..full.len() * 2 / 3];
    // No .gz in the name: compression is told by the magic bytes.
    let input = dir.path().join("cut.log");
    std::fs::write(&input, cut).unwrap();
    let out = ingest(&store, &[&input], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stored = scalar(&store, "SELECT count(*) FROM access_events");
    assert!(stored > 100 && stored < 2000, "stored {stored}");
    let truncated = query(
        &store,
        "SELECT line, reason FROM rejects WHERE reason LIKE '%gzip%'",
    );
    assert_eq!(truncated.len(), 1, "{truncated:?}");
    assert!(
        s(&truncated[0], "reason")
            .unwrap()
            .contains("truncated or corrupt gzip")
    );
    // Every line before the damage is either stored or (the cut one) rejected.
    let rejected_lines = scalar(
        &store,
        "SELECT count(*) FROM rejects WHERE reason NOT LIKE '%gzip%'",
    );
    assert!(rejected_lines <= 1);
}

#[test]
fn zstd_and_gzip_are_read_by_magic_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let body: String = (0..50).map(|i| good(i) + "\n").collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(body.as_bytes()).unwrap();
    std::fs::write(input.join("a.ndjson.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(
        input.join("b.zst"),
        zstd::encode_all(body.as_bytes(), 3).unwrap(),
    )
    .unwrap();
    std::fs::write(input.join("c.ndjson"), body.as_bytes()).unwrap();
    let out = ingest(&store, &[&input], &["--no-progress"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(scalar(&store, "SELECT count(*) FROM access_events"), 150);
    assert_eq!(
        scalar(&store, "SELECT count(DISTINCT source) FROM access_events"),
        3
    );
}

#[test]
fn missing_inputs_are_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = ingest(
        &dir.path().join("store"),
        &[&dir.path().join("nope.ndjson")],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("matches no file"), "{}", stderr(&out));
}
