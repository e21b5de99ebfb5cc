//! Real AuditEvents written by others (`../shared/data/external/`): every
//! JSON AuditEvent ingests; XML and pre-R4 versions are rejected with a reason
//! that names them; FHIR instants are parsed as the spec says.

use std::path::Path;

use crate::common::*;

/// AuditEvents in a JSON file, counted independently of emrwatch with serde_json.
fn audit_events_in(path: &Path) -> usize {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    match v["resourceType"].as_str() {
        Some("AuditEvent") => 1,
        Some("Bundle") => v["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["resource"]["resourceType"] == "AuditEvent")
            .count(),
        _ => 0,
    }
}

fn json_audit_event_files() -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for dir in [
        "fhir-auditevent/r4-4.0.1",
        "ihe-balp-auditevent/example",
        "gematik-erezept-auditevent",
    ] {
        for e in std::fs::read_dir(external(dir)).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.ends_with(".json") && name != "package.json" {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_json_audit_event_ingests_and_five_map_exactly() {
    let files = json_audit_event_files();
    let expected: usize = files.iter().map(|p| audit_events_in(p)).sum();
    assert!(
        expected > 50,
        "only {expected} AuditEvents found under shared/data/external"
    );
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let out = ingest(&store, &refs, &["--format", "fhir"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        scalar(&store, "SELECT count(*) FROM access_events"),
        expected as i64
    );
    assert_eq!(
        scalar(&store, "SELECT count(*) FROM rejects"),
        0,
        "{}",
        stderr(&out)
    );

    // Values below were read by hand from each file.
    let login = events_from(&store, "AuditEvent-example-login.json");
    assert_eq!(login.len(), 1);
    assert_eq!(login[0]["us"].as_i64(), Some(us("2013-06-20T23:41:23Z")));
    check(
        &login[0],
        &[
            ("user_id", Some("95")),
            ("user_role", Some("humanuser")),
            ("patient_id", None),
            ("action", Some("login")),
            ("outcome", Some("success")),
            ("src_ip", Some("127.0.0.1")),
            ("workstation", None),
            ("app", Some("hl7connect.healthintersections.com.au")),
        ],
    );

    let media = events_from(&store, "AuditEvent-example-media.json");
    assert_eq!(media[0]["us"].as_i64(), Some(us("2015-08-27T23:42:24Z")));
    check(
        &media[0],
        &[
            ("user_id", Some("95")),
            (
                "patient_id",
                Some("e3cdfc81a0d24bd^^^&2.16.840.1.113883.4.2&ISO"),
            ),
            ("action", Some("export")),
            ("app", Some("hl7connect.healthintersections.com.au")),
        ],
    );

    let rest = events_from(&store, "AuditEvent-example-rest.json");
    check(
        &rest[0],
        &[
            ("user_id", Some("95")),
            ("patient_id", Some("example")),
            ("action", Some("view")),
        ],
    );

    let error = events_from(&store, "AuditEvent-example-error.json");
    check(
        &error[0],
        &[
            ("action", Some("create")),
            ("outcome", Some("failure")),
            ("user_id", Some("95")),
        ],
    );

    // No agent is the requestor: the first agent acts; +11:00 is converted to UTC.
    let start = events_from(&store, "AuditEvent-example.json");
    assert_eq!(start[0]["us"].as_i64(), Some(us("2012-10-25T11:04:27Z")));
    check(
        &start[0],
        &[
            ("user_id", Some("Grahame")),
            ("action", Some("query")),
            ("src_ip", Some("127.0.0.1")),
            ("app", Some("Grahame's Laptop")),
        ],
    );

    let delete = events_from(&store, "AuditEvent-ex-auditBasicDelete2.json");
    assert_eq!(delete[0]["us"].as_i64(), Some(us("2020-04-29T09:49:00Z")));
    check(
        &delete[0],
        &[
            ("user_id", Some("Charley Miller")),
            ("user_role", Some("CST")),
            ("patient_id", Some("ex-patient")),
            ("action", Some("delete")),
            ("resource", Some("list")),
            ("app", Some("Device/ex-device")),
            ("outcome", Some("success")),
        ],
    );

    let gematik = events_from(
        &store,
        "AuditEvent-9361863d-fec0-4ba9-8776-7905cf1b0cfa.1.5.2.json",
    );
    assert_eq!(
        gematik[0]["us"].as_i64(),
        Some(us("2025-10-01T15:29:00.434Z"))
    );
    check(
        &gematik[0],
        &[
            ("user_id", Some("1-SMC-B-Testkarte-883110000095957")),
            ("action", Some("create")),
            ("resource", Some("task")),
            ("patient_id", None),
            ("app", Some("Device/1")),
        ],
    );
}

#[test]
fn xml_and_older_fhir_versions_are_rejected_with_a_reason_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let xml_dir = external("fhir-auditevent/r5-build-xml");
    let stu3 = external("fhir-auditevent/stu3-3.0.1/AuditEvent-example-login.json");
    let dstu2 = external("fhir-auditevent/dstu2-1.0.2/AuditEvent-example-login.json");
    let out = ingest(&store, &[&xml_dir, &stu3, &dstu2], &["--format", "fhir"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let xml_files = std::fs::read_dir(&xml_dir).unwrap().count() as i64;
    assert_eq!(
        scalar(
            &store,
            "SELECT count(*) FROM rejects WHERE reason LIKE 'XML is not a supported%' AND line = 1"
        ),
        xml_files
    );
    let stu3_reason = query(
        &store,
        "SELECT reason FROM rejects WHERE source LIKE '%stu3-3.0.1%'",
    );
    assert!(
        s(&stu3_reason[0], "reason").unwrap().contains("STU3"),
        "{stu3_reason:?}"
    );
    let dstu2_reason = query(
        &store,
        "SELECT reason FROM rejects WHERE source LIKE '%dstu2-1.0.2%'",
    );
    assert!(
        s(&dstu2_reason[0], "reason").unwrap().contains("DSTU2"),
        "{dstu2_reason:?}"
    );
    assert_eq!(scalar(&store, "SELECT count(*) FROM access_events"), 0);
}

#[test]
fn fhir_instants_follow_the_primitive_validation_examples() {
    use emrwatch::ingest::timestamp::parse_rfc3339;
    let dir = external("fhir-auditevent/fhir-primitive-validation");
    let strings = |file: &str| -> Vec<String> {
        std::fs::read_to_string(dir.join(file))
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let valid = strings("instant.valid.ndjson");
    assert!(!valid.is_empty());
    for v in &valid {
        let want = chrono::DateTime::parse_from_rfc3339(v)
            .unwrap()
            .timestamp_micros();
        assert_eq!(parse_rfc3339(v), Some(want), "{v}");
    }
    let invalid = strings("instant.invalid.ndjson");
    assert!(invalid.len() >= 3);
    for v in &invalid {
        assert_eq!(parse_rfc3339(v), None, "{v} is not a FHIR instant");
    }
}
