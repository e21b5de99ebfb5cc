//! `emrwatch gen`: deterministic, reference tables that load, and chart
//! access that mostly follows the encounters it writes.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, AsArray};
use emrwatch::synth::{GenOptions, generate};
use futures::StreamExt;

fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in ["logs", "ref"] {
        let mut names: Vec<_> = std::fs::read_dir(dir.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            out.push((
                p.file_name().unwrap().to_string_lossy().into(),
                std::fs::read(&p).unwrap(),
            ));
        }
    }
    out
}

fn opts(out: &std::path::Path, seed: u64) -> GenOptions {
    GenOptions {
        out: out.to_path_buf(),
        seed,
        events: 20_000,
        days: 4,
        staff: 150,
        patients: 4_000,
        gzip: false,
        ..GenOptions::default()
    }
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let dir = tempfile::tempdir().unwrap();
    generate(&opts(&dir.path().join("a"), 1)).unwrap();
    generate(&opts(&dir.path().join("b"), 1)).unwrap();
    generate(&opts(&dir.path().join("c"), 2)).unwrap();
    let a = files(&dir.path().join("a"));
    assert_eq!(a.len(), 4 + 3);
    assert_eq!(
        std::fs::read(dir.path().join("a/labels.csv")).unwrap(),
        std::fs::read(dir.path().join("b/labels.csv")).unwrap()
    );
    assert_eq!(a, files(&dir.path().join("b")));
    assert_ne!(a, files(&dir.path().join("c")));
}

fn read_csv(path: &std::path::Path) -> (Vec<String>, Vec<csv::StringRecord>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header = r.headers().unwrap().iter().map(str::to_string).collect();
    (header, r.records().map(Result::unwrap).collect())
}

#[test]
fn reference_tables_have_the_design_columns_and_agree_with_each_other() {
    let dir = tempfile::tempdir().unwrap();
    generate(&opts(dir.path(), 3)).unwrap();
    let (h, staff) = read_csv(&dir.path().join("ref/staff.csv"));
    assert_eq!(
        h,
        [
            "user_id",
            "first_name",
            "last_name",
            "role",
            "department",
            "address",
            "zip",
            "hire_date",
            "termination_date"
        ]
    );
    let (h, patients) = read_csv(&dir.path().join("ref/patients.csv"));
    assert_eq!(
        h,
        [
            "patient_id",
            "first_name",
            "last_name",
            "birth_date",
            "address",
            "zip",
            "deceased_date",
            "vip",
            "employee_user_id"
        ]
    );
    let (h, encounters) = read_csv(&dir.path().join("ref/encounters.csv"));
    assert_eq!(
        h,
        [
            "encounter_id",
            "patient_id",
            "user_id",
            "department",
            "start_ts",
            "end_ts"
        ]
    );
    assert_eq!((staff.len(), patients.len()), (150, 4_000));
    let users: HashSet<&str> = staff.iter().map(|r| &r[0]).collect();
    let mrns: HashSet<&str> = patients.iter().map(|r| &r[0]).collect();
    for e in &encounters {
        assert!(mrns.contains(&e[1]) && users.contains(&e[2]), "{e:?}");
        let start = chrono::DateTime::parse_from_rfc3339(&e[4]).unwrap();
        let end = chrono::DateTime::parse_from_rfc3339(&e[5]).unwrap();
        assert!(start < end);
    }
    // Employees who are patients, and staff sharing a surname with patients, exist.
    let employees = patients.iter().filter(|p| !p[8].is_empty()).count();
    assert!(employees > 0);
    let surnames: HashSet<&str> = staff.iter().map(|r| &r[2]).collect();
    assert!(patients.iter().filter(|p| surnames.contains(&p[2])).count() > 100);
    assert!(
        patients.iter().any(|p| !p[6].is_empty()),
        "some patients are deceased"
    );
}

#[test]
fn most_chart_access_follows_an_encounter_of_the_users_department() {
    let dir = tempfile::tempdir().unwrap();
    let truth = generate(&opts(dir.path(), 4)).unwrap();
    let (_, staff) = read_csv(&dir.path().join("ref/staff.csv"));
    let (_, encounters) = read_csv(&dir.path().join("ref/encounters.csv"));
    let dept: HashMap<String, String> = staff
        .iter()
        .map(|r| (r[0].to_string(), r[4].to_string()))
        .collect();
    // (patient, department, day) of every encounter day.
    let mut care: HashSet<(String, String, i64)> = HashSet::new();
    for e in &encounters {
        let day = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp()
                .div_euclid(86_400)
        };
        for d in day(&e[4])..=day(&e[5]) {
            care.insert((e[1].to_string(), e[3].to_string(), d));
        }
    }
    let batches = decode_logs(dir.path());
    let (mut chart, mut explained, mut rows) = (0, 0, 0u64);
    for b in &batches {
        rows += b.num_rows() as u64;
        let ts = b
            .column(0)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        let user = arrow::compute::cast(b.column(1), &arrow::datatypes::DataType::Utf8).unwrap();
        let user = user.as_string::<i32>();
        let patient = b.column(4).as_string::<i32>();
        for i in 0..b.num_rows() {
            if patient.is_null(i) {
                continue;
            }
            chart += 1;
            let key = (
                patient.value(i).to_string(),
                dept[user.value(i)].clone(),
                ts.value(i).div_euclid(86_400_000_000),
            );
            explained += usize::from(care.contains(&key));
        }
    }
    assert_eq!(rows, truth.events);
    let share = explained as f64 / chart as f64;
    assert!(
        (0.85..0.99).contains(&share),
        "{explained} of {chart} chart accesses explained ({share:.3})"
    );
}

#[test]
fn every_label_window_holds_the_actors_events() {
    let dir = tempfile::tempdir().unwrap();
    let truth = generate(&GenOptions {
        incidents: 3,
        ..opts(dir.path(), 5)
    })
    .unwrap();
    let (h, labels) = read_csv(&dir.path().join("labels.csv"));
    assert_eq!(h, ["scenario", "actor", "patient_id", "start_ts", "end_ts"]);
    assert_eq!(labels.len(), truth.labels.len());
    let scenarios: HashSet<&str> = labels.iter().map(|l| &l[0]).collect();
    for s in emrwatch::synth::incidents::SCENARIOS {
        assert!(scenarios.contains(s), "no {s} incident");
    }
    let batches = decode_logs(dir.path());
    for l in &labels {
        let at = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_micros()
        };
        let (start, end) = (at(&l[3]), at(&l[4]));
        let mut hits = 0;
        let mut at_start = false;
        let mut foreign = 0;
        for b in &batches {
            let ts = b
                .column(0)
                .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
            let user =
                arrow::compute::cast(b.column(1), &arrow::datatypes::DataType::Utf8).unwrap();
            let user = user.as_string::<i32>();
            let patient = b.column(4).as_string::<i32>();
            let ip = b.column(9).as_string::<i32>();
            for i in 0..b.num_rows() {
                let t = ts.value(i);
                let patient_ok =
                    l[2].is_empty() || (!patient.is_null(i) && patient.value(i) == &l[2]);
                if user.value(i) == &l[1] && patient_ok && (start..=end).contains(&t) {
                    hits += 1;
                    at_start |= t == start;
                    foreign += usize::from(ip.value(i).starts_with("203.0.113."));
                }
            }
        }
        assert!(
            hits >= 1 && at_start,
            "label {l:?}: {hits} events in its window"
        );
        match &l[0] {
            "bulk_export" => assert!(hits >= 40, "a bulk export is dozens of charts, got {hits}"),
            "volume_spike" => assert!(hits >= 150, "a spike is hundreds of charts, got {hits}"),
            "account_compromise" => assert!(
                foreign >= 7,
                "failed logins, success and views from a new address"
            ),
            _ => assert_eq!(foreign, 0),
        }
    }
}

/// Decodes a generated archive's logs; generated records never reject.
fn decode_logs(dir: &std::path::Path) -> Vec<arrow::record_batch::RecordBatch> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let logs = dir.join("logs").display().to_string();
        let objects = emrwatch::ingest::source::resolve(&[logs]).await.unwrap();
        emrwatch::ingest::decode_stream(objects, &Default::default())
            .map(|d| {
                assert!(d.rejects.is_empty(), "generated records never reject");
                d.batch
            })
            .collect::<Vec<_>>()
            .await
    })
}

#[test]
fn every_scenario_is_injected_at_a_hundred_thousand_events() {
    for seed in ["1", "2", "3"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().to_str().unwrap();
        crate::common::ok(&[
            "gen",
            "--out",
            out,
            "--events",
            "100000",
            "--seed",
            seed,
            "--no-gzip",
        ]);
        let (_, labels) = read_csv(&dir.path().join("labels.csv"));
        let got: HashSet<&str> = labels.iter().map(|l| &l[0]).collect();
        for s in emrwatch::synth::incidents::SCENARIOS {
            assert!(got.contains(s), "seed {seed}: no {s} incident");
        }
    }
}
