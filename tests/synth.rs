//! `emrwatch gen`: deterministic, reference tables that load, and chart
//! access that mostly follows the encounters it writes.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, AsArray};
use emrwatch::synth::{GenOptions, generate};
use futures::StreamExt;

fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in ["logs", "ref", "syslog"] {
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
    generate(&GenOptions {
        threads: 3,
        ..opts(&dir.path().join("a"), 1)
    })
    .unwrap();
    // Thread count must not matter: each day is its own random stream.
    generate(&GenOptions {
        threads: 1,
        ..opts(&dir.path().join("b"), 1)
    })
    .unwrap();
    generate(&opts(&dir.path().join("c"), 2)).unwrap();
    let a = files(&dir.path().join("a"));
    assert_eq!(a.len(), 4 + 3 + 4, "4 day files, 3 reference CSVs, 4 hosts");
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

/// One decoded access event, as the tests need it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    ts: i64,
    user: String,
    role: String,
    patient: Option<String>,
    action: String,
    resource: Option<String>,
    outcome: String,
    ip: String,
    app: String,
}

fn rows(dir: &std::path::Path) -> Vec<Row> {
    let utf8 = |a: &arrow::array::ArrayRef| {
        arrow::compute::cast(a, &arrow::datatypes::DataType::Utf8).unwrap()
    };
    let mut out = Vec::new();
    for b in decode_logs(dir) {
        let ts = b
            .column(0)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        let cols: Vec<_> = [1, 2, 4, 5, 6, 7, 9, 11]
            .iter()
            .map(|&i| utf8(b.column(i)))
            .collect();
        let c: Vec<_> = cols.iter().map(|c| c.as_string::<i32>()).collect();
        let opt =
            |a: &arrow::array::StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_string());
        for i in 0..b.num_rows() {
            out.push(Row {
                ts: ts.value(i),
                user: c[0].value(i).into(),
                role: c[1].value(i).into(),
                patient: opt(c[2], i),
                action: c[3].value(i).into(),
                resource: opt(c[4], i),
                outcome: c[5].value(i).into(),
                ip: c[6].value(i).into(),
                app: c[7].value(i).into(),
            });
        }
    }
    out
}

fn at(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_micros()
}

const HOUR: i64 = 3_600_000_000;

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
    for s in emrwatch::synth::incidents::scenarios() {
        assert!(scenarios.contains(s), "no {s} incident");
    }
    let (_, staff) = read_csv(&dir.path().join("ref/staff.csv"));
    let left: HashMap<&str, i64> = staff
        .iter()
        .filter(|r| !r[8].is_empty())
        .map(|r| (&r[0], at(&format!("{}T00:00:00Z", &r[8])) + 24 * HOUR))
        .collect();
    let rows = rows(dir.path());
    let syslog = syslog_lines(dir.path());
    let access = emrwatch::synth::incidents::ACCESS_SCENARIOS;
    // The server accounts' incidents are in the syslog, whatever the scenario.
    let on_a_server = |l: &csv::StringRecord| {
        !access.contains(&&l[0]) || &l[1] == emrwatch::synth::hosts::BACKUP_ACCOUNT
    };
    assert!(
        labels
            .iter()
            .any(|l| on_a_server(l) && &l[0] == "account_compromise"),
        "a brute force that gets in is a compromise too"
    );
    for l in labels.iter().filter(|l| on_a_server(l)) {
        check_host_label(l, &syslog);
    }
    let in_some_window = |user: &str, t: i64| {
        labels
            .iter()
            .any(|l| l[1] == *user && (at(&l[3])..=at(&l[4])).contains(&t))
    };
    for l in labels.iter().filter(|l| !on_a_server(l)) {
        let (start, end) = (at(&l[3]), at(&l[4]));
        let mine: Vec<&Row> = rows
            .iter()
            .filter(|r| {
                r.user == l[1]
                    && (start..=end).contains(&r.ts)
                    && (l[2].is_empty() || r.patient.as_deref() == Some(&l[2]))
            })
            .collect();
        let foreign = mine
            .iter()
            .filter(|r| r.ip.starts_with("203.0.113."))
            .count();
        assert!(
            !mine.is_empty() && mine.iter().any(|r| r.ts == start),
            "label {l:?}: {} events in its window",
            mine.len()
        );
        let hits = mine.len();
        match &l[0] {
            "bulk_export" => assert!(hits >= 30, "a bulk export is dozens of charts, got {hits}"),
            "volume_spike" => assert!(hits >= 150, "a spike is hundreds of charts, got {hits}"),
            "account_compromise" => assert!(
                foreign >= 7,
                "failed logins, success and views from a new address"
            ),
            "terminated_access" => {
                // The account was used only after its holder's last day, and
                // otherwise never after it.
                let gone = left[&l[1]];
                assert!(start >= gone && foreign == hits, "{l:?}");
                for r in rows.iter().filter(|r| r.user == l[1] && r.ts >= gone) {
                    assert!(in_some_window(&r.user, r.ts), "{r:?} after {l:?}");
                }
            }
            "after_hours" => {
                // Substantial, at night, and the user never works at night otherwise.
                assert!(hits >= 20, "{l:?}: {hits}");
                let hour = |t: i64| t.rem_euclid(24 * HOUR) / HOUR;
                assert!(mine.iter().all(|r| (1..4).contains(&hour(r.ts))));
                let other: Vec<&Row> = rows
                    .iter()
                    .filter(|r| r.user == l[1] && !in_some_window(&r.user, r.ts))
                    .collect();
                assert!(other.len() > 10, "{l:?} has a baseline");
                assert!(other.iter().all(|r| (6..23).contains(&hour(r.ts))), "{l:?}");
            }
            _ => assert_eq!(foreign, 0),
        }
    }
    // Leavers' accounts are silent after their last day, but for the incidents.
    for r in &rows {
        if let Some(&gone) = left.get(r.user.as_str()) {
            assert!(r.ts < gone || in_some_window(&r.user, r.ts), "{r:?}");
        }
    }
}

/// (time, host, whole line) of every syslog line; RFC 3164 lines are in 2026.
fn syslog_lines(dir: &std::path::Path) -> Vec<(i64, String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir.join("syslog")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        for line in text.lines() {
            let (ts, host) = if line.starts_with('<') {
                let f: Vec<&str> = line.split(' ').collect();
                (at(f[1]), f[2])
            } else {
                let t = chrono::NaiveDateTime::parse_from_str(
                    &format!("2026 {}", &line[..15]),
                    "%Y %b %e %H:%M:%S",
                )
                .unwrap_or_else(|e| panic!("{line}: {e}"));
                (
                    t.and_utc().timestamp_micros(),
                    line[16..].split(' ').next().unwrap(),
                )
            };
            out.push((ts, host.to_string(), line.to_string()));
        }
    }
    out
}

fn check_host_label(l: &csv::StringRecord, syslog: &[(i64, String, String)]) {
    // RFC 3164 has whole seconds.
    let (start, end) = (at(&l[3]) / 1_000_000 * 1_000_000, at(&l[4]));
    let actor = &l[1];
    let mine: Vec<&str> = syslog
        .iter()
        .filter(|(t, host, line)| {
            (start..=end).contains(t)
                && (host == actor
                    || line.contains(&format!(" {actor} "))
                    || line.contains(&format!("'{actor}'"))
                    || line.contains(&format!("={actor},")))
        })
        .map(|(_, _, line)| line.as_str())
        .collect();
    assert!(!mine.is_empty(), "{l:?}: nothing in its window");
    let count = |needle: &str| mine.iter().filter(|line| line.contains(needle)).count();
    match &l[0] {
        "ssh_bruteforce" => assert!(count("Failed password") >= 25, "{l:?}"),
        "account_compromise" => assert!(
            count("Failed password") >= 25 && count("Accepted password") == 1,
            "{l:?}: {mine:?}"
        ),
        "privilege_escalation" => assert!(
            count("USER=root") + count("to group") >= 1,
            "{l:?}: {mine:?}"
        ),
        "log_tampering" => assert!(
            count("auditd") + count("auditctl") + count("truncate") + count("rsyslog") >= 1,
            "{l:?}: {mine:?}"
        ),
        other => panic!("unexpected host scenario {other}"),
    }
}

#[test]
fn the_benign_look_alikes_are_there() {
    let dir = tempfile::tempdir().unwrap();
    generate(&GenOptions {
        events: 40_000,
        days: 7,
        staff: 200,
        patients: 5_000,
        incidents: 1,
        ..opts(dir.path(), 6)
    })
    .unwrap();
    let (_, staff) = read_csv(&dir.path().join("ref/staff.csv"));
    let (_, patients) = read_csv(&dir.path().join("ref/patients.csv"));
    let (_, encounters) = read_csv(&dir.path().join("ref/encounters.csv"));
    let by_user: HashMap<&str, &csv::StringRecord> = staff.iter().map(|r| (&r[0], r)).collect();
    let by_mrn: HashMap<&str, &csv::StringRecord> = patients.iter().map(|r| (&r[0], r)).collect();
    let rows = rows(dir.path());
    let day = |t: i64| t.div_euclid(24 * HOUR);
    let mut care: HashSet<(&str, &str, i64)> = HashSet::new();
    for e in &encounters {
        for d in day(at(&e[4]))..=day(at(&e[5])) {
            care.insert((&e[1], &e[3], d));
        }
    }
    let explained = |r: &Row| {
        r.patient
            .as_deref()
            .is_some_and(|p| care.contains(&(p, &by_user[r.user.as_str()][4], day(r.ts))))
    };
    let chart = |r: &&Row| r.patient.is_some();

    // HIM and billing closing the records of patients who died.
    let deceased = rows
        .iter()
        .filter(chart)
        .filter(|r| matches!(r.role.as_str(), "him" | "billing"))
        .filter(|r| !by_mrn[r.patient.as_deref().unwrap()][6].is_empty())
        .count();
    // Emergency break-the-glass, then the patient's emergency encounter within the hour.
    let ed_btg = rows
        .iter()
        .filter(|r| r.action == "break_glass" && by_user[r.user.as_str()][4] == *"emergency")
        .filter(|r| {
            encounters.iter().any(|e| {
                Some(&e[1]) == r.patient.as_deref()
                    && &e[3] == "emergency"
                    && (r.ts..r.ts + HOUR).contains(&at(&e[4]))
            })
        })
        .count();
    // Release of information: an HIM worker printing ten or more charts within an hour.
    let mut prints: HashMap<&str, Vec<i64>> = HashMap::new();
    for r in rows
        .iter()
        .filter(|r| r.action == "print" && r.role == "him")
    {
        prints.entry(&r.user).or_default().push(r.ts);
    }
    let roi = prints
        .values()
        .filter(|ts| ts.windows(10).any(|w| w[9] - w[0] < HOUR))
        .count();
    // A mistyped password, then a success from the same address within a minute.
    let typos = rows
        .iter()
        .filter(|f| f.action == "login_failed")
        .filter(|f| {
            rows.iter().any(|s| {
                s.action == "login"
                    && s.user == f.user
                    && s.ip == f.ip
                    && (f.ts..f.ts + 60_000_000).contains(&s.ts)
            })
        })
        .count();
    // Staff treating patients who share their surname; employees treated by colleagues.
    let namesakes = rows
        .iter()
        .filter(chart)
        .filter(|r| {
            explained(r) && by_mrn[r.patient.as_deref().unwrap()][2] == by_user[r.user.as_str()][2]
        })
        .count();
    let colleagues = rows
        .iter()
        .filter(chart)
        .filter(|r| {
            let p = by_mrn[r.patient.as_deref().unwrap()];
            explained(r) && !p[8].is_empty() && p[8] != *r.user
        })
        .count();
    // Legitimate but unexplained access: a few percent.
    let unexplained = rows.iter().filter(chart).filter(|r| !explained(r)).count();
    let counts = [
        deceased,
        ed_btg,
        roi,
        typos,
        namesakes,
        colleagues,
        unexplained,
    ];
    assert!(counts.iter().all(|&n| n > 0), "{counts:?}");

    let syslog = syslog_lines(dir.path());
    let n = |f: &dyn Fn(&str) -> bool| syslog.iter().filter(|(_, _, l)| f(l)).count();
    let host_counts = [
        // Admins mistype, then get in from the same address.
        n(&|l| {
            l.contains("Failed password for u")
                && syslog.iter().any(|(_, _, m)| {
                    m.contains("Accepted password for")
                        && m.contains(
                            l.split(" from ")
                                .nth(1)
                                .unwrap()
                                .split(" port")
                                .next()
                                .unwrap(),
                        )
                })
        }),
        // Admins always use sudo.
        n(&|l| l.contains(" : TTY=pts/0 ; PWD=/home/u")),
        n(&|l| l.contains("CRON[") || l.contains(" CRON ")),
        // The nightly logrotate restarts rsyslog on emr-app01.
        n(&|l| l.contains("emr-app01 systemd[1]: Stopping rsyslog.service")),
        // New hires' accounts, outside any admin group.
        n(&|l| l.contains("new user: name=u")),
        // The backup account logs in nightly.
        n(&|l| l.contains("Accepted publickey for svc_backup")),
        // Internet scanners, a password or two each.
        n(&|l| l.contains("from 198.51.100.")),
    ];
    assert!(host_counts.iter().all(|&n| n > 0), "{host_counts:?}");
}

#[test]
fn fhir_and_json_lines_hold_the_same_events_and_csv_has_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let small = |sub: &str, format| GenOptions {
        events: 5_000,
        days: 2,
        format,
        ..opts(&dir.path().join(sub), 8)
    };
    use emrwatch::synth::OutputFormat;
    let fhir = generate(&small("fhir", OutputFormat::Fhir)).unwrap();
    generate(&small("ndjson", OutputFormat::Ndjson)).unwrap();
    let csv = generate(&small("csv", OutputFormat::Csv)).unwrap();
    let (a, b) = (
        rows(&dir.path().join("fhir")),
        rows(&dir.path().join("ndjson")),
    );
    assert_eq!(a.len() as u64, fhir.events);
    let sorted = |mut v: Vec<Row>| {
        v.sort();
        v
    };
    assert_eq!(sorted(a), sorted(b));
    // The CSV decoder comes with issue 6; until then, count and check the rows.
    let mut n = 0;
    for f in &csv.files {
        let mut r = csv::Reader::from_path(f).unwrap();
        assert_eq!(
            r.headers().unwrap(),
            vec![
                "ts",
                "user_id",
                "user_role",
                "patient_id",
                "action",
                "outcome",
                "resource",
                "src_ip",
                "app",
                "event_id"
            ]
        );
        for rec in r.records() {
            let rec = rec.unwrap();
            assert!(
                chrono::DateTime::parse_from_rfc3339(&rec[0]).is_ok(),
                "{rec:?}"
            );
            n += 1;
        }
    }
    assert_eq!(n, csv.events);
    assert!(csv.files[0].to_string_lossy().ends_with(".csv"));
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
            "--threads",
            "1",
        ]);
        let (_, labels) = read_csv(&dir.path().join("labels.csv"));
        let got: HashSet<&str> = labels.iter().map(|l| &l[0]).collect();
        for s in emrwatch::synth::incidents::scenarios() {
            assert!(got.contains(s), "seed {seed}: no {s} incident");
        }
    }
}
