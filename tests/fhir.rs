//! FHIR AuditEvent mapping: R4 and R5, Bundle vs NDJSON, identifier vs
//! reference, break-the-glass, login/logout/failed login, print/export.

use crate::common::*;

type Row = serde_json::Map<String, serde_json::Value>;

fn rows_by_line(store: &std::path::Path) -> Vec<Row> {
    query(
        store,
        "SELECT source_line, CAST(ts AS BIGINT) AS us, user_id, user_role, patient_id, action, resource, \
         outcome, workstation, src_ip, app FROM access_events ORDER BY source_line, us",
    )
}

#[test]
fn variants_map_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = ingest(
        &store,
        &[&fixture("fhir/variants.ndjson")],
        &["--format", "fhir"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("12 stored, 0 rejected, 1 non-AuditEvent resources skipped"),
        "{}",
        stderr(&out)
    );
    let rows = rows_by_line(&store);
    assert_eq!(rows.len(), 12);
    let col = |i: usize, c: &str| s(&rows[i], c).map(str::to_string);
    let num = |i: usize, c: &str| rows[i][c].as_i64().unwrap();

    // 1: R4 view; requestor agent's identifier beats its reference and the first agent.
    assert_eq!(num(0, "us"), us("2026-11-02T07:15:30.250Z"));
    assert_eq!(col(0, "user_id").as_deref(), Some("u0412"));
    assert_eq!(col(0, "user_role").as_deref(), Some("nurse"));
    assert_eq!(col(0, "patient_id").as_deref(), Some("MRN0001"));
    assert_eq!(col(0, "action").as_deref(), Some("view"));
    assert_eq!(col(0, "resource").as_deref(), Some("observation"));
    assert_eq!(col(0, "outcome").as_deref(), Some("success"));
    assert_eq!(col(0, "src_ip").as_deref(), Some("10.1.2.3"));
    assert_eq!(col(0, "workstation"), None);
    assert_eq!(col(0, "app").as_deref(), Some("EMR"));

    // 2: reference id as user, role from agent type, patient by role code 1 and
    // identifier, workstation from network type 1, app from observer identifier.
    assert_eq!(col(1, "user_id").as_deref(), Some("p-77"));
    assert_eq!(col(1, "user_role").as_deref(), Some("physician"));
    assert_eq!(col(1, "patient_id").as_deref(), Some("MRN0002"));
    assert_eq!(col(1, "action").as_deref(), Some("update"));
    assert_eq!(col(1, "resource").as_deref(), Some("medicationrequest"));
    assert_eq!(col(1, "workstation").as_deref(), Some("WS-ICU-04"));
    assert_eq!(col(1, "src_ip"), None);
    assert_eq!(col(1, "app").as_deref(), Some("epic-prod"));

    // 3: purposeOfEvent BTG.
    assert_eq!(col(2, "action").as_deref(), Some("break_glass"));
    assert_eq!(col(2, "patient_id").as_deref(), Some("MRN0003"));
    // 4-6: login, failed login, logout.
    assert_eq!(col(3, "action").as_deref(), Some("login"));
    assert_eq!(col(3, "patient_id"), None);
    assert_eq!(col(4, "action").as_deref(), Some("login_failed"));
    assert_eq!(col(4, "outcome").as_deref(), Some("failure"));
    assert_eq!(col(5, "action").as_deref(), Some("logout"));
    // 7-8: print and export subtypes win over action R; outcome 8 is a failure.
    assert_eq!(col(6, "action").as_deref(), Some("print"));
    assert_eq!(col(6, "outcome").as_deref(), Some("success"));
    assert_eq!(col(7, "action").as_deref(), Some("export"));
    assert_eq!(col(7, "outcome").as_deref(), Some("failure"));

    // 9: R5 — patient element, outcome.code, authorization BTG, networkString IP.
    assert_eq!(num(8, "us"), us("2026-11-03T17:00:00.500Z"));
    assert_eq!(col(8, "action").as_deref(), Some("break_glass"));
    assert_eq!(col(8, "patient_id").as_deref(), Some("MRN0006"));
    assert_eq!(col(8, "user_role").as_deref(), Some("physician"));
    assert_eq!(col(8, "src_ip").as_deref(), Some("192.168.7.9"));
    assert_eq!(col(8, "resource").as_deref(), Some("diagnosticreport"));
    // 10: R5 failure outcome, host name in networkString.
    assert_eq!(col(9, "user_id").as_deref(), Some("u0701"));
    assert_eq!(col(9, "outcome").as_deref(), Some("failure"));
    assert_eq!(col(9, "workstation").as_deref(), Some("ward7-pc2"));
    assert_eq!(col(9, "action").as_deref(), Some("view"));

    // 11: a Bundle on one line: two AuditEvents, the Patient skipped.
    assert_eq!(num(10, "source_line"), 11);
    assert_eq!(num(11, "source_line"), 11);
    assert_eq!(col(10, "action").as_deref(), Some("create"));
    assert_eq!(col(10, "patient_id").as_deref(), Some("MRN0008"));
    assert_eq!(col(11, "action").as_deref(), Some("delete"));
    assert_eq!(col(11, "user_id").as_deref(), Some("u0002"));
}

#[test]
fn auto_format_reads_fhir_and_canonical_json_lines_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = ingest(
        &store,
        &[
            &fixture("fhir/variants.ndjson"),
            &fixture("ndjson/canonical.ndjson"),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(scalar(&store, "SELECT count(*) FROM access_events"), 14);
    assert_eq!(
        scalar(
            &store,
            "SELECT count(*) FROM access_events WHERE app = 'portal'"
        ),
        1
    );
}
