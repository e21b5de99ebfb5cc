//! JSON lines with a mapping: nested paths, value maps, and timestamps as a
//! local-time pattern with a zone, epoch milliseconds and RFC 3339.

use crate::common::*;

const COLUMNS: &str = "CAST(ts AS BIGINT) AS us, user_id, user_role, department, patient_id, action, \
                       resource, outcome, workstation, src_ip, session_id, app";

#[test]
fn nested_paths_value_maps_and_local_times_with_a_zone() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mapping = fixture("ndjson/local-time.toml");
    let out = ingest(
        &store,
        &[&fixture("ndjson/local-time.ndjson")],
        &["--format", "ndjson", "--mapping", mapping.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = query(
        &store,
        &format!("SELECT {COLUMNS} FROM access_events ORDER BY us"),
    );
    assert_eq!(rows.len(), 3);
    // July in Chicago is CDT (-05:00).
    assert_eq!(rows[0]["us"].as_i64(), Some(us("2026-07-01T13:30:00Z")));
    for (col, want) in [
        ("user_id", "u1"),
        ("user_role", "nurse"),
        ("department", "ICU"),
        ("patient_id", "M1"),
        ("action", "view"),
        ("resource", "notes"),
        ("outcome", "success"),
        ("workstation", "ws1"),
        ("src_ip", "10.0.0.1"),
        ("session_id", "s1"),
        ("app", "EMR"),
    ] {
        assert_eq!(s(&rows[0], col), Some(want), "{col}");
    }
    // December is CST (-06:00); a numeric MRN becomes text; false maps to failure.
    assert_eq!(rows[1]["us"].as_i64(), Some(us("2026-12-01T14:30:00.125Z")));
    assert_eq!(s(&rows[1], "patient_id"), Some("12345"));
    assert_eq!(s(&rows[1], "action"), Some("update"));
    assert_eq!(s(&rows[1], "outcome"), Some("failure"));
    assert_eq!(s(&rows[1], "workstation"), None);
    assert_eq!(s(&rows[1], "session_id"), None);
    // Missing optional fields are null; a missing outcome defaults to success.
    assert_eq!(s(&rows[2], "action"), Some("print"));
    assert_eq!(s(&rows[2], "patient_id"), None);
    assert_eq!(s(&rows[2], "outcome"), Some("success"));
}

#[test]
fn epoch_milliseconds_as_numbers_and_strings() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mapping = fixture("ndjson/epoch-ms.toml");
    let out = ingest(
        &store,
        &[&fixture("ndjson/epoch-ms.ndjson")],
        &["--format", "ndjson", "--mapping", mapping.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = query(
        &store,
        &format!("SELECT {COLUMNS} FROM access_events ORDER BY us"),
    );
    assert_eq!(rows[0]["us"].as_i64(), Some(us("2026-07-01T13:30:00Z")));
    assert_eq!(rows[1]["us"].as_i64(), Some(us("2026-07-01T13:30:00.500Z")));
    assert_eq!(s(&rows[1], "action"), Some("export"));
    assert_eq!(s(&rows[1], "patient_id"), Some("M2"));
}

#[test]
fn without_a_mapping_canonical_names_and_rfc3339_are_expected() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = ingest(
        &store,
        &[&fixture("ndjson/canonical.ndjson")],
        &["--format", "ndjson"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = query(
        &store,
        &format!("SELECT {COLUMNS} FROM access_events ORDER BY us, action"),
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["us"].as_i64(), Some(us("2026-07-01T13:30:00Z")));
    assert_eq!(s(&rows[0], "action"), Some("logout"));
    assert_eq!(s(&rows[0], "app"), None);
    assert_eq!(s(&rows[1], "action"), Some("view"));
    assert_eq!(s(&rows[1], "app"), Some("portal"));
    assert_eq!(s(&rows[1], "patient_id"), Some("M1"));
}

#[test]
fn unknown_actions_and_bad_mappings_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let input = dir.path().join("x.ndjson");
    std::fs::write(
        &input,
        "{\"ts\":\"2026-07-01T13:30:00Z\",\"user_id\":\"u\",\"action\":\"peek\"}\n",
    )
    .unwrap();
    let out = ingest(&store, &[&input], &["--format", "ndjson"]);
    assert!(out.status.success());
    let r = query(&store, "SELECT reason FROM rejects");
    assert!(
        s(&r[0], "reason").unwrap().contains("[values.action]"),
        "{r:?}"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[columns]\nuserid = \"actor\"\n").unwrap();
    let out = ingest(
        &store,
        &[&input],
        &["--format", "ndjson", "--mapping", bad.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("\"userid\" is not a column"),
        "{}",
        stderr(&out)
    );
}
