//! Syslog into `system_events`, through the CLI: real host logs written by
//! others (`../shared/data/external/`) and the generator's, detected by
//! `--format auto`, counted line for line, with the normalised fields.

use std::path::Path;

use crate::common::*;

/// Lines of a file that are records (not blank, not indented continuations).
fn records_in(path: &Path) -> i64 {
    std::fs::read(path)
        .unwrap()
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty() && *l != b"\r" && !matches!(l[0], b' ' | b'\t'))
        .count() as i64
}

#[test]
fn real_host_logs_land_in_system_events_line_for_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let files = [
        external("loghub/OpenSSH/OpenSSH_2k.log"),
        external("loghub/Linux/Linux_2k.log"),
        external("elastic-beats-system/auth/test.log"),
        external("elastic-beats-system/syslog/darwin-syslog-sample.log"),
    ];
    let inputs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let out = ingest(&store, &inputs, &["--syslog-year", "2025"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(" 0 rejected"), "{err}");
    assert!(err.contains("committed system_events version"), "{err}");
    for f in &files {
        // By file name: the recorded URL keeps the path as given (with any symlink).
        let name = f.file_name().unwrap().to_str().unwrap();
        let stored = scalar(
            &store,
            &format!("SELECT count(*) FROM system_events WHERE source LIKE '%/{name}'"),
        );
        assert_eq!(stored, records_in(f), "{name}");
    }
    // Failed passwords in the OpenSSH log, counted independently of emrwatch.
    let openssh = std::fs::read_to_string(&files[0]).unwrap();
    let failed = openssh
        .lines()
        .filter(|l| l.contains("]: Failed password for "))
        .count() as i64;
    assert!(failed > 100);
    assert_eq!(
        scalar(
            &store,
            "SELECT count(*) FROM system_events WHERE host = 'LabSZ' AND event_type = 'auth_failure' \
             AND message LIKE 'Failed password for %'"
        ),
        failed
    );
    let rows = query(
        &store,
        "SELECT host, app, pid, event_type, \"user\", src_ip, src_port, \
         CAST(ts AS VARCHAR) AS ts, source_line FROM system_events \
         WHERE source LIKE '%auth/test.log' ORDER BY source_line LIMIT 2",
    );
    assert_eq!(s(&rows[0], "event_type"), Some("auth_success"));
    assert_eq!(s(&rows[0], "user"), Some("vagrant"));
    assert_eq!(s(&rows[0], "src_ip"), Some("10.0.2.2"));
    assert_eq!(rows[0]["src_port"], 63673);
    assert_eq!(
        (s(&rows[0], "host"), s(&rows[0], "app"), s(&rows[0], "pid")),
        (Some("localhost"), Some("sshd"), Some("3402"))
    );
    assert!(
        s(&rows[0], "ts")
            .unwrap()
            .starts_with("2025-02-21T21:54:44"),
        "{rows:?}"
    );
    // The macOS log's indented lines belong to the message before them.
    let joined = scalar(
        &store,
        "SELECT count(*) FROM system_events WHERE app = 'GoogleSoftwareUpdateAgent' \
         AND strpos(message, chr(10)) > 0",
    );
    assert!(joined > 0);
}

#[test]
fn generated_host_logs_and_access_logs_in_one_folder() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("h");
    gen_hospital(&h, "3000", "3", "9");
    let store = dir.path().join("store");
    let out = ingest(&store, &[&h.join("logs"), &h.join("syslog")], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut lines = 0;
    for e in std::fs::read_dir(h.join("syslog")).unwrap() {
        lines += records_in(&e.unwrap().path());
    }
    assert_eq!(scalar(&store, "SELECT count(*) FROM system_events"), lines);
    assert_eq!(scalar(&store, "SELECT count(*) FROM rejects"), 0);
    // pacs01 writes RFC 5424 with structured data; the others RFC 3164.
    assert_eq!(
        scalar(
            &store,
            "SELECT count(*) FROM system_events WHERE host = 'pacs01' AND structured_data IS NULL"
        ),
        0
    );
    assert_eq!(
        scalar(
            &store,
            "SELECT count(*) FROM system_events WHERE host <> 'pacs01' AND facility IS NOT NULL"
        ),
        0
    );
    // Every sshd login the generator wrote is an auth event with an address.
    assert_eq!(
        scalar(
            &store,
            "SELECT count(*) FROM system_events WHERE event_type IN ('auth_success', 'auth_failure') \
             AND (src_ip IS NULL OR \"user\" IS NULL)"
        ),
        0
    );
    assert!(scalar(&store, "SELECT count(*) FROM access_events") > 0);
}

#[test]
fn a_bad_time_zone_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.log");
    std::fs::write(&f, "Mar  7 19:06:53 h a: m\n").unwrap();
    let out = ingest(
        &dir.path().join("s"),
        &[&f],
        &["--syslog-tz", "Mars/Olympus"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Mars/Olympus"), "{}", stderr(&out));
    let out = ingest(
        &dir.path().join("s"),
        &[&f],
        &["--syslog-tz", "Europe/Zurich", "--syslog-year", "2024"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        scalar(
            &dir.path().join("s"),
            "SELECT CAST(ts AS BIGINT) FROM system_events"
        ),
        us("2024-03-07T18:06:53Z")
    );
}

#[test]
fn a_rule_reads_system_events_and_only_within_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("h");
    gen_hospital(&h, "3000", "3", "9");
    let store = dir.path().join("store");
    let out = ingest(&store, &[&h.join("syslog")], &["--syslog-year", "2026"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("ssh_failures.sql"),
        "-- id: ssh_failures\n-- title: SSH failures by source\n-- severity: low\n\
         -- scenario: ssh_bruteforce\n-- description: failed SSH logins from one address in a day\n\
         -- lookback: 0\n\
         SELECT max(\"user\") AS user_id, max(host) AS host, src_ip, NULL AS patient_ids,\n\
         min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS event_count,\n\
         CAST(count(*) AS DOUBLE) AS score, concat('failed logins from ', src_ip) AS summary\n\
         FROM system_events WHERE event_type = 'auth_failure'\n\
         GROUP BY src_ip, date_trunc('day', ts)\n",
    )
    .unwrap();
    let detect = |range: &[&str]| -> Vec<serde_json::Value> {
        let mut args = vec![
            "detect",
            "--store",
            store.to_str().unwrap(),
            "--rules",
            rules.to_str().unwrap(),
            "--out",
            "-",
        ];
        args.extend_from_slice(range);
        // A store of its own per run, so no alert is suppressed as raised before.
        let _ = std::fs::remove_dir_all(store.join("alerts"));
        let out = ok(&args);
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let day = |a: &serde_json::Value| a["first_ts"].as_str().unwrap()[..10].to_string();
    let all = detect(&[]);
    let days: std::collections::BTreeSet<String> = all.iter().map(day).collect();
    assert!(days.len() >= 2, "failures on several days: {days:?}");
    let second = days.iter().nth(1).unwrap().clone();
    let next = chrono::NaiveDate::parse_from_str(&second, "%Y-%m-%d")
        .unwrap()
        .succ_opt()
        .unwrap();
    let within = detect(&["--since", &second, "--until", &next.to_string()]);
    assert!(!within.is_empty());
    assert!(within.iter().all(|a| day(a) == second), "{within:?}");
    assert!(within.iter().all(|a| a["src_ip"].is_string()), "{within:?}");
    assert_eq!(
        within.len(),
        all.iter().filter(|a| day(a) == second).count()
    );
}
