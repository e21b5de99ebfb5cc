//! `emrwatch eval` end to end: files in, scores out; offsets compare as instants.

use crate::common::*;

const LABELS: &str = "scenario,actor,patient_id,start_ts,end_ts
family_snooping,u0412,MRN1,2026-11-02T10:00:00Z,2026-11-02T10:05:00Z
bulk_export,u0099,,2026-11-03T01:00:00Z,2026-11-03T03:00:00Z
";

fn run_eval(dir: &std::path::Path, alerts: &str) -> serde_json::Value {
    std::fs::write(dir.join("labels.csv"), LABELS).unwrap();
    std::fs::write(dir.join("alerts.jsonl"), alerts).unwrap();
    let out = ok(&[
        "eval",
        "--labels",
        dir.join("labels.csv").to_str().unwrap(),
        "--alerts",
        dir.join("alerts.jsonl").to_str().unwrap(),
        "--json",
    ]);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn offsets_are_instants_and_a_perfect_file_scores_one() {
    let dir = tempfile::tempdir().unwrap();
    // 11:04+01:00 is 10:04Z, inside the first window; 21:30-05:00 on the 2nd is 02:30Z on the 3rd.
    let alerts = r#"{"scenario":"family_snooping","user_id":"u0412","host":null,"src_ip":null,"patient_ids":["MRN1"],"first_ts":"2026-11-02T11:04:00+01:00","last_ts":"2026-11-02T11:04:30+01:00"}
{"scenario":"bulk_export","user_id":"u0099","patient_ids":["A","B"],"first_ts":"2026-11-02T21:30:00-05:00","last_ts":"2026-11-02T22:00:00-05:00"}
"#;
    let r = run_eval(dir.path(), alerts);
    assert_eq!(r["macro_recall"], 1.0);
    assert_eq!(r["macro_precision"], 1.0);
    assert_eq!(r["macro_f1"], 1.0);
}

#[test]
fn an_empty_file_has_zero_recall_and_wrong_windows_zero_precision() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_eval(dir.path(), "");
    assert_eq!(r["macro_recall"], 0.0);
    // 10:06Z is after the first window closes (10:05Z), written as +02:00.
    let late = r#"{"scenario":"family_snooping","user_id":"u0412","patient_ids":["MRN1"],"first_ts":"2026-11-02T12:06:00+02:00","last_ts":"2026-11-02T12:07:00+02:00"}
"#;
    let r = run_eval(dir.path(), late);
    assert_eq!(r["macro_precision"], 0.0);
    assert_eq!(r["macro_recall"], 0.0);
}

#[test]
fn the_table_names_every_scenario_and_bad_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("labels.csv"), LABELS).unwrap();
    std::fs::write(dir.path().join("alerts.jsonl"), "").unwrap();
    let labels = dir.path().join("labels.csv");
    let alerts = dir.path().join("alerts.jsonl");
    let out = ok(&[
        "eval",
        "--labels",
        labels.to_str().unwrap(),
        "--alerts",
        alerts.to_str().unwrap(),
    ]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("family_snooping")
            && table.contains("bulk_export")
            && table.contains("macro average")
    );

    std::fs::write(
        &alerts,
        "{\"scenario\":\"x\",\"first_ts\":\"yesterday\",\"last_ts\":\"today\"}\n",
    )
    .unwrap();
    let out = run(&[
        "eval",
        "--labels",
        labels.to_str().unwrap(),
        "--alerts",
        alerts.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("alerts.jsonl:1"), "{}", stderr(&out));
}
