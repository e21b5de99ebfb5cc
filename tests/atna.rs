//! The `atna` decoder: the real IHE ATNA / DICOM audit messages under
//! `../shared/data/external/` (whole documents and syslog-wrapped) all ingest,
//! a few checked field by field; and inline cases for what those lack.

use std::path::{Path, PathBuf};

use crate::common::*;

const FOLDERS: [&str; 3] = [
    "ehealthsuisse-epr-atna",
    "ipf-atna-audit",
    "ahdis-epr-atna-syslog",
];

/// The audit-message files (not the licences) of the ATNA folders.
fn atna_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = FOLDERS
        .iter()
        .flat_map(|d| std::fs::read_dir(external(d)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.ends_with(".xml") || name.ends_with("-raw.txt")
        })
        .collect();
    files.sort();
    files
}

/// The one event read from `file`.
fn row(store: &Path, file: &str) -> Row {
    let rows = events_from(store, file);
    assert_eq!(rows.len(), 1, "{file}: {rows:?}");
    rows.into_iter().next().unwrap()
}

#[test]
fn every_real_atna_message_ingests_and_three_map_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let files = atna_files();
    assert!(files.len() >= 25, "only {} ATNA files found", files.len());
    // Each file holds one message; counted independently of emrwatch.
    let messages: usize = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            text.matches("</AuditMessage>").count()
        })
        .sum();
    let inputs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let out = ingest(&store, &inputs, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        scalar(&store, "SELECT count(*) FROM rejects"),
        0,
        "{}",
        stderr(&out)
    );
    assert_eq!(
        scalar(&store, "SELECT count(*) FROM access_events") as usize,
        messages
    );

    let r = row(&store, "iti-47-log.xml");
    assert_eq!(r["us"].as_i64(), Some(us("2020-09-30T19:27:29.386Z")));
    check(
        &r,
        &[
            ("user_id", Some("https://my_primary_system.com/PDQConsumer")),
            ("user_role", Some("110153")),
            ("patient_id", Some("CHPAM34")),
            ("action", Some("query")),
            ("outcome", Some("success")),
            ("resource", Some("patient demographics query")),
            ("workstation", Some("0045e6d09dd0")),
            ("src_ip", None),
            ("app", Some("my.primary.system.ID")),
        ],
    );
    // RFC 3881 codes (`code`, not `csd-code`) and a time without an offset.
    let r = row(&store, "atna-record-1.xml");
    assert_eq!(r["us"].as_i64(), Some(us("2001-12-17T09:30:47Z")));
    check(
        &r,
        &[
            ("user_id", Some("smitty@readingroom.hospital.org")),
            ("patient_id", Some("ptid12345")),
            ("action", Some("create")),
            ("src_ip", Some("192.168.1.2")),
        ],
    );
    // Octet-counted RFC 5424 syslog around the XML.
    let r = row(&store, "iti-47-atna-raw.txt");
    assert_eq!(r["us"].as_i64(), Some(us("2025-04-18T09:04:59.904290Z")));
    check(
        &r,
        &[
            ("user_id", Some("unknown")),
            ("action", Some("query")),
            ("src_ip", Some("10.28.3.3")),
            ("app", Some("IPF")),
        ],
    );
}

/// An audit message in one line.
fn message(event: &str, types: &str, outcome: u8, user: &str, patient: &str) -> String {
    format!(
        "<AuditMessage><EventIdentification EventActionCode=\"E\" EventDateTime=\"2026-11-02T08:00:00Z\" \
         EventOutcomeIndicator=\"{outcome}\"><EventID csd-code=\"{event}\"/>{types}</EventIdentification>\
         <ActiveParticipant UserID=\"pacs\" UserIsRequestor=\"false\"/>\
         <ActiveParticipant UserID=\"{user}\" UserIsRequestor=\"true\" NetworkAccessPointID=\"10.1.2.3\" \
         NetworkAccessPointTypeCode=\"2\"><RoleIDCode csd-code=\"RAD\"/></ActiveParticipant>\
         <AuditSourceIdentification AuditSourceID=\"PACS01\"/>\
         <ParticipantObjectIdentification ParticipantObjectID=\"{patient}^^^&amp;1.2.3&amp;ISO\" \
         ParticipantObjectTypeCode=\"1\" ParticipantObjectTypeCodeRole=\"1\"/></AuditMessage>"
    )
}

fn ty(code: &str) -> String {
    format!("<EventTypeCode csd-code=\"{code}\"/>")
}

#[test]
fn one_message_per_line_logins_break_glass_and_bad_messages() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pacs-audit.log");
    let lines = [
        message("110114", &ty("110122"), 0, "dr.lee", ""),
        message("110114", &ty("110122"), 4, "dr.lee", ""),
        message("110114", &ty("110123"), 0, "dr.lee", ""),
        message("110112", &ty("110127"), 0, "dr.lee", "MRN7"),
        message("110106", "", 0, "dr.lee", "MRN8"),
        // Truncated, then not XML at all.
        message("110112", "", 0, "dr.lee", "MRN9")[..200].to_string(),
        "<AuditMessage><EventIdentification EventActionCode=\"R\"</AuditMessage>".to_string(),
    ];
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let store = dir.path().join("store");
    let out = ingest(&store, &[&file], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = query(
        &store,
        "SELECT source_line, user_id, user_role, patient_id, action, outcome, src_ip, app \
         FROM access_events ORDER BY source_line",
    );
    let got: Vec<(Option<&str>, Option<&str>, Option<&str>)> = rows
        .iter()
        .map(|r| (s(r, "action"), s(r, "outcome"), s(r, "patient_id")))
        .collect();
    assert_eq!(
        got,
        [
            (Some("login"), Some("success"), None),
            (Some("login_failed"), Some("failure"), None),
            (Some("logout"), Some("success"), None),
            (Some("break_glass"), Some("success"), Some("MRN7")),
            (Some("export"), Some("success"), Some("MRN8")),
        ]
    );
    check(
        &rows[0],
        &[
            ("user_id", Some("dr.lee")),
            ("user_role", Some("RAD")),
            ("src_ip", Some("10.1.2.3")),
            ("app", Some("PACS01")),
        ],
    );
    let rejects = query(&store, "SELECT line, reason FROM rejects ORDER BY line");
    assert_eq!(rejects.len(), 2, "{rejects:?}");
    assert_eq!(rejects[0]["line"].as_i64(), Some(6));
    assert!(
        s(&rejects[0], "reason").unwrap().contains("without its"),
        "{rejects:?}"
    );
    assert_eq!(rejects[1]["line"].as_i64(), Some(7));
    assert!(
        s(&rejects[1], "reason").unwrap().contains("XML"),
        "{rejects:?}"
    );
}
