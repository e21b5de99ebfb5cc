//! `emrwatch run`, the scheduled job: incremental and crash-safe on local
//! disk and on a real S3 server, one run at a time, config errors.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::services::s3;
use crate::common::{Row, emrwatch, gen_hospital, query_at, stderr};

/// Where a test's store and sources live.
pub struct Target {
    /// Store URL or folder.
    pub store: String,
    /// Environment for emrwatch (S3 credentials and endpoint).
    pub env: Vec<(&'static str, String)>,
    /// Source inputs.
    pub sources: Vec<String>,
}

impl Target {
    /// A local store under `dir`, reading `sources`.
    pub fn local(dir: &Path, sources: &[&Path]) -> Self {
        Self {
            store: dir.join("store").display().to_string(),
            env: Vec::new(),
            sources: sources.iter().map(|p| p.display().to_string()).collect(),
        }
    }

    /// A store in a fresh bucket of the test S3 server, reading `s3://bucket/logs/`.
    pub fn s3(bucket: &str) -> Self {
        let server = s3();
        server.create_bucket(bucket);
        Self {
            store: format!("s3://{bucket}/store"),
            env: server.env(),
            sources: vec![format!("s3://{bucket}/logs/")],
        }
    }

    /// `emrwatch run` on this target, with `extra` flags.
    pub fn run_cmd(&self, extra: &[&str]) -> Command {
        let mut c = emrwatch();
        c.envs(self.env.iter().map(|(k, v)| (k, v.as_str())))
            .args(["run", "--store", &self.store, "--settle-seconds", "0"])
            .args(["--fail-on", "never"]);
        for s in &self.sources {
            c.args(["--source", s]);
        }
        c.args(extra);
        c
    }

    /// Runs to completion and insists on success.
    pub fn run(&self, extra: &[&str]) -> Output {
        let out = self.run_cmd(extra).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "emrwatch run failed:\n{}",
            stderr(&out)
        );
        out
    }

    /// Rows of `sql` over this store.
    pub fn query(&self, sql: &str) -> Vec<Row> {
        query_at(&self.store, &self.env, sql)
    }

    /// One integer.
    pub fn scalar(&self, sql: &str) -> i64 {
        let rows = self.query(sql);
        rows[0].values().next().unwrap().as_i64().unwrap()
    }

    /// (rows, distinct (source, source_line), a checksum over every stored
    /// row's source, line, time, user, patient and action).
    pub fn fingerprint(&self) -> (i64, i64, u64) {
        let n = self.scalar("SELECT count(*) FROM access_events");
        let distinct = self.scalar(
            "SELECT count(*) FROM (SELECT DISTINCT source, source_line FROM access_events)",
        );
        let rows = self.query(
            "SELECT regexp_replace(source, '^.*/', '') AS file, source_line, CAST(ts AS BIGINT) AS us, \
             user_id, patient_id, action FROM access_events ORDER BY file, source_line",
        );
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for r in &rows {
            serde_json::to_string(r).unwrap().hash(&mut h);
        }
        (n, distinct, h.finish())
    }
}

/// Writes `lines` to a source object: a local file or an S3 object.
fn put(target_bucket: Option<&str>, dir: &Path, name: &str, lines: &[String], append: bool) {
    let mut data = Vec::new();
    for l in lines {
        data.extend_from_slice(l.as_bytes());
        data.push(b'\n');
    }
    match target_bucket {
        Some(b) => s3().put(b, &format!("logs/{name}"), data),
        None => {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(append)
                .write(true)
                .truncate(!append)
                .open(dir.join(name))
                .unwrap();
            f.write_all(&data).unwrap();
        }
    }
}

/// The access-log lines of a small generated hospital.
fn hospital_lines(dir: &Path, events: &str, days: &str) -> (PathBuf, Vec<String>) {
    let h = dir.join("hospital");
    gen_hospital(&h, events, days, "19");
    let mut files: Vec<PathBuf> = std::fs::read_dir(h.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let lines = files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    (h, lines)
}

/// Three runs over growing sources store every record once: a file that
/// grows, a new object, and (locally) a rotated file.
fn three_runs_store_every_record_once(target: &Target, bucket: Option<&str>, logs: &Path) {
    let dir = logs.parent().unwrap();
    let (_, lines) = hospital_lines(dir, "3000", "3");
    let ndjson = |a: usize, b: usize| lines[a..b].to_vec();
    put(bucket, logs, "a.ndjson", &ndjson(0, 1000), false);
    put(bucket, logs, "active.ndjson", &ndjson(1000, 1500), false);
    target.run(&[]);
    assert_eq!(target.fingerprint().0, 1500);

    // Run 2: the active file grew (locally; S3 objects are replaced whole,
    // so there it is a new object) and a new object arrived.
    match bucket {
        None => put(bucket, logs, "active.ndjson", &ndjson(1500, 1800), true),
        Some(_) => put(bucket, logs, "active-2.ndjson", &ndjson(1500, 1800), false),
    }
    put(bucket, logs, "b.ndjson", &ndjson(1800, 2300), false);
    let out = target.run(&[]);
    assert!(
        stderr(&out).contains("3 read") || stderr(&out).contains("2 read"),
        "{}",
        stderr(&out)
    );
    assert_eq!(target.fingerprint().0, 2300);

    // Run 3: locally, the active file gets more lines and is rotated
    // (renamed, and a new one started); on S3 a new object.
    match bucket {
        None => {
            put(bucket, logs, "active.ndjson", &ndjson(2300, 2400), true);
            std::fs::rename(logs.join("active.ndjson"), logs.join("active.ndjson.1")).unwrap();
            put(bucket, logs, "active.ndjson", &ndjson(2400, 2600), false);
        }
        // A new object, and an old one replaced (a new ETag): a new generation.
        Some(_) => {
            put(bucket, logs, "c.ndjson", &ndjson(2300, 2500), false);
            put(bucket, logs, "a.ndjson", &ndjson(2500, 2600), false);
        }
    }
    target.run(&[]);
    let (n, distinct, _) = target.fingerprint();
    assert_eq!((n, distinct), (2600, 2600));
    // The file replaced under its name (rotation; a new S3 object) is stored
    // as generation 1 of that name.
    let second = if bucket.is_some() { 100 } else { 200 };
    assert_eq!(
        target.scalar("SELECT count(*) FROM access_events WHERE source LIKE '%#1'"),
        second
    );
    // Every input event once: the (time, user, patient, action) multiset matches.
    let stored: Vec<String> = target
        .query("SELECT CAST(ts AS BIGINT) AS us, user_id, patient_id, action FROM access_events ORDER BY us, user_id, patient_id, action")
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    assert_eq!(stored.len(), 2600);
    // A fourth run with nothing new stores nothing.
    let out = target.run(&[]);
    assert!(stderr(&out).contains(" 0 read"), "{}", stderr(&out));
    assert_eq!(target.fingerprint().0, 2600);
}

#[test]
fn three_runs_over_growing_local_sources_store_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let target = Target::local(dir.path(), &[&logs]);
    three_runs_store_every_record_once(&target, None, &logs);
}

#[test]
fn three_runs_over_new_s3_objects_store_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let target = Target::s3("incremental");
    three_runs_store_every_record_once(&target, Some("incremental"), &logs);
}

#[test]
fn a_half_written_last_line_waits_for_its_line_feed() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let (_, lines) = hospital_lines(dir.path(), "300", "1");
    let target = Target::local(dir.path(), &[&logs]);
    let (a, b) = lines[3].split_at(40);
    let mut text = lines[..3].join("\n");
    text.push('\n');
    text.push_str(a);
    std::fs::write(logs.join("live.ndjson"), &text).unwrap();
    // A file whose only line is not complete yet.
    let (c, d) = lines[4].split_at(30);
    std::fs::write(logs.join("new.ndjson"), c).unwrap();
    // The files just changed: with a settle time, their last lines are not complete yet.
    let settle = ["--settle-seconds", "3600"];
    let mut c = target.run_cmd(&settle);
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(target.scalar("SELECT count(*) FROM access_events"), 3);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(logs.join("live.ndjson"))
        .unwrap();
    writeln!(f, "{b}").unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(logs.join("new.ndjson"))
        .unwrap();
    writeln!(f, "{d}").unwrap();
    let out = target.run_cmd(&settle).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(target.scalar("SELECT count(*) FROM access_events"), 5);
    assert_eq!(target.scalar("SELECT count(*) FROM rejects"), 0);
    assert_eq!(
        target
            .scalar("SELECT max(source_line) FROM access_events WHERE source LIKE '%live.ndjson'"),
        4,
        "line numbers continue across runs"
    );
}

/// Starts `emrwatch run` with `extra` flags, paused at `point`
/// (`EMRWATCH_PAUSE_AT`), and SIGKILLs it there.
fn kill_at(target: &Target, extra: &[&str], point: &str) {
    let mut child = target
        .run_cmd(extra)
        .env("EMRWATCH_PAUSE_AT", point)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("paused at") {
        line.clear();
        let n = std::io::BufRead::read_line(&mut err, &mut line).unwrap();
        assert!(n > 0, "the run ended without reaching {point}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A tiny deterministic generator of kill delays.
struct Lcg(u64);
impl Lcg {
    fn next_f64(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Kills `emrwatch run` at `kills` moments spread over a full run's length
/// while day files arrive, reruns to completion after each, and checks the
/// store holds exactly the input and no alert twice.
fn killed_runs_lose_and_duplicate_nothing(
    target: &Target,
    bucket: Option<&str>,
    dir: &Path,
    kills: usize,
) {
    // One day file per kill, and two for the kills at exact moments.
    let (h, _) = hospital_lines(dir, "60000", &(kills + 2).to_string());
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut days: Vec<PathBuf> = std::fs::read_dir(h.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    days.sort();
    assert_eq!(days.len(), kills + 2);
    let exact: Vec<PathBuf> = days.split_off(kills);
    let sink = dir.join("alerts.ecs.json");
    let sink_url = format!("ecs+file://{}", sink.display());
    let refdir = h.join("ref").display().to_string();
    let extra = ["--ref", &refdir, "--sink", &sink_url];
    let mut rng = Lcg(7);
    let mut full = Duration::from_secs(3);
    let mut killed_after_commit = 0;
    for (k, day) in days.iter().enumerate() {
        let name = day.file_name().unwrap().to_str().unwrap();
        let lines: Vec<String> = std::fs::read_to_string(day)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        // Local: half the day arrives in a new file, the other half is
        // appended to one growing file. S3: a new object.
        match bucket {
            Some(_) => put(bucket, &logs, name, &lines, false),
            None => {
                let half = lines.len() / 2;
                put(None, &logs, name, &lines[..half], false);
                put(None, &logs, "live.ndjson", &lines[half..], true);
            }
        }
        // A bad record too: each run then commits two tables (events, rejects).
        put(
            bucket,
            &logs,
            &format!("bad-{k}.ndjson"),
            &["{\"truncated\": ".to_string()],
            false,
        );
        let before = target.scalar("SELECT count(*) FROM access_events");
        let delay = full.mul_f64(0.05 + 1.1 * rng.next_f64());
        let mut child = target
            .run_cmd(&extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t = Instant::now();
        let mut finished = false;
        while t.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                finished = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if !finished {
            child.kill().unwrap();
        }
        child.wait().unwrap();
        if !finished && target.scalar("SELECT count(*) FROM access_events") > before {
            killed_after_commit += 1;
        }
        let t = Instant::now();
        target.run(&extra);
        full = t.elapsed();
    }
    eprintln!("{kills} kills, {killed_after_commit} after events were committed");
    // And at the two moments a random kill rarely hits: between the commits
    // of one run's tables, and after alerts are stored but before they are sent.
    for (k, point) in ["between-commits", "before-delivery"]
        .into_iter()
        .enumerate()
    {
        let more: Vec<String> = std::fs::read_to_string(&exact[k])
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        put(bucket, &logs, &format!("more-{k}.ndjson"), &more, false);
        put(
            bucket,
            &logs,
            &format!("more-bad-{k}.ndjson"),
            &["{".to_string()],
            false,
        );
        kill_at(target, &extra, point);
        let out = target.run(&extra);
        if point == "between-commits" {
            assert!(
                stderr(&out).contains("finished it"),
                "the next run completes the cut-short one: {}",
                stderr(&out)
            );
        }
    }
    // The same files ingested once, in one go, into a reference store.
    let reference = Target {
        store: dir.join("reference-store").display().to_string(),
        env: target.env.clone(),
        sources: target.sources.clone(),
    };
    reference.run(&[]);
    let (n, distinct, sum) = target.fingerprint();
    let (rn, _, rsum) = reference.fingerprint();
    assert_eq!(n, rn, "rows stored vs rows in the input");
    assert_eq!(distinct, n, "no (source, source_line) twice");
    assert_eq!(sum, rsum, "checksum over the rows");
    let alerts = target.scalar("SELECT count(*) FROM alerts");
    let distinct_alerts = target.scalar("SELECT count(DISTINCT alert_id) FROM alerts");
    assert!(alerts > 0);
    assert_eq!(alerts, distinct_alerts, "an alert stored twice");
    // Every stored alert reached the sink (at least once: a run killed while
    // delivering sends its alerts again).
    let delivered: HashSet<String> = std::fs::read_to_string(&sink)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["event"]["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        delivered.len() as i64,
        alerts,
        "alerts lost on the way to the sink"
    );
}

#[test]
fn runs_killed_at_random_moments_on_local_disk_lose_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let target = Target::local(dir.path(), &[&logs]);
    killed_runs_lose_and_duplicate_nothing(&target, None, dir.path(), 10);
}

#[test]
fn runs_killed_at_random_moments_on_s3_lose_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target::s3("crash");
    killed_runs_lose_and_duplicate_nothing(&target, Some("crash"), dir.path(), 10);
}

#[test]
fn two_runs_at_once_store_everything_once() {
    for bucket in [None, Some("concurrent")] {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let target = match bucket {
            None => Target::local(dir.path(), &[&logs]),
            Some(b) => Target::s3(b),
        };
        let (_, lines) = hospital_lines(dir.path(), "20000", "2");
        put(bucket, &logs, "day.ndjson", &lines, false);
        let a = target.run_cmd(&[]).stderr(Stdio::piped()).spawn().unwrap();
        let b = target.run_cmd(&[]).stderr(Stdio::piped()).spawn().unwrap();
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        assert_eq!(
            (a.status.code(), b.status.code()),
            (Some(0), Some(0)),
            "{}\n{}",
            stderr(&a),
            stderr(&b)
        );
        let said = format!("{}{}", stderr(&a), stderr(&b));
        // Either the lock (local), a commit conflict (S3), or one finished
        // before the other listed.
        target.run(&[]);
        let (n, distinct, _) = target.fingerprint();
        assert_eq!(
            (n, distinct),
            (lines.len() as i64, lines.len() as i64),
            "{said}"
        );
    }
}

#[test]
fn a_second_run_on_a_locked_local_store_does_nothing_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("x.ndjson"), "").unwrap();
    let target = Target::local(dir.path(), &[&logs]);
    let lock = emrwatch::run::lock::try_lock(&dir.path().join("store"))
        .unwrap()
        .unwrap();
    let out = target.run(&[]);
    assert!(stderr(&out).contains("holds"), "{}", stderr(&out));
    drop(lock);
}

#[test]
fn config_errors_name_the_problem_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let store = dir.path().join("store");
    let cases = [
        (
            format!(
                "store = \"{}\"\nsinkz = []\n[[source]]\nurl = \"{}\"\n",
                store.display(),
                logs.display()
            ),
            "sinkz",
        ),
        (
            format!(
                "store = \"ftp://host/x\"\n[[source]]\nurl = \"{}\"\n",
                logs.display()
            ),
            "ftp",
        ),
        (
            format!(
                "store = \"{}\"\nreference = \"{}\"\n[[source]]\nurl = \"{}\"\n",
                store.display(),
                dir.path().join("no-such-ref").display(),
                logs.display()
            ),
            "no-such-ref",
        ),
        (
            format!(
                "store = \"{}\"\nsinks = [\"cef+tcp://siem.example.org\"]\n[[source]]\nurl = \"{}\"\n",
                store.display(),
                logs.display()
            ),
            "port",
        ),
    ];
    for (text, needle) in cases {
        let cfg = dir.path().join("emrwatch.toml");
        std::fs::write(&cfg, &text).unwrap();
        let out = emrwatch()
            .args(["run", "--config", cfg.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{text}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{text}: {}", stderr(&out));
    }
}

#[test]
fn an_unreachable_s3_store_fails_with_exit_2_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("x.ndjson"), "").unwrap();
    let port = crate::common::services::free_port();
    let out = emrwatch()
        .args(["run", "--store", "s3://nowhere/store", "--source"])
        .arg(&logs)
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_ALLOW_HTTP", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("store"), "{}", stderr(&out));
}

#[test]
fn exit_status_is_1_when_a_new_alert_reaches_fail_on() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("h");
    gen_hospital(&h, "20000", "3", "5");
    let target = Target::local(dir.path(), &[&h.join("logs"), &h.join("syslog")]);
    let refdir = h.join("ref").display().to_string();
    let out = target
        .run_cmd(&["--ref", &refdir, "--fail-on", "high"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("new"), "{}", stderr(&out));
    // Nothing new: no new alert, exit 0.
    let out = target
        .run_cmd(&["--ref", &refdir, "--fail-on", "low"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn the_shipped_example_config_is_valid() {
    let cfg = emrwatch::config::RunConfig::from_file(
        &crate::common::root().join("contrib/emrwatch.toml"),
    )
    .unwrap();
    assert_eq!(cfg.sources.len(), 2);
    assert_eq!(cfg.sinks.len(), 2);
}

#[test]
fn a_cut_short_run_whose_source_changed_in_place_is_recorded_as_done_once() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let (_, lines) = hospital_lines(dir.path(), "300", "1");
    put(None, &logs, "good.ndjson", &lines[..100], false);
    let bad = "{\"truncated\": ";
    put(None, &logs, "bad.ndjson", &[bad.to_string()], false);
    let target = Target::local(dir.path(), &[&logs]);
    // Killed after access_events is committed, before rejects is.
    kill_at(&target, &[], "between-commits");
    // The bad record is rewritten in place, same size, as a blank line.
    std::fs::write(
        logs.join("bad.ndjson"),
        format!("{}\n", " ".repeat(bad.len())),
    )
    .unwrap();
    let out = target.run(&[]);
    assert!(stderr(&out).contains("are lost"), "{}", stderr(&out));
    assert_eq!(target.scalar("SELECT count(*) FROM access_events"), 100);
    // Recorded once: the next run has nothing to finish.
    let out = target.run(&[]);
    assert!(!stderr(&out).contains("stopped before"), "{}", stderr(&out));
    assert!(stderr(&out).contains(" 0 read"), "{}", stderr(&out));
}
