//! Helpers shared by the integration tests: run the real binary, query a store.

#![allow(dead_code)]

pub mod services;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The crate root (for fixtures).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture path.
pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

/// `../shared/data/external/<rel>`: real logs written by others.
pub fn external(rel: &str) -> PathBuf {
    root().join("../shared/data/external").join(rel)
}

/// The emrwatch binary built for this test run.
pub fn emrwatch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_emrwatch"));
    c.env_remove("EMRWATCH_STORE");
    c
}

/// Runs emrwatch with `args`, returning its output.
pub fn run(args: &[&str]) -> Output {
    emrwatch().args(args).output().expect("emrwatch runs")
}

/// Runs emrwatch and insists on exit status 0.
pub fn ok(args: &[&str]) -> Output {
    let out = run(args);
    assert!(
        out.status.success(),
        "emrwatch {args:?} failed with {:?}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Ingests `inputs` into `store` with extra flags.
pub fn ingest(store: &Path, inputs: &[&Path], extra: &[&str]) -> Output {
    let mut args: Vec<String> = vec![
        "ingest".into(),
        "--store".into(),
        store.display().to_string(),
    ];
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&refs)
}

/// Runs `sql` on `store` and returns the rows as JSON objects.
pub fn query(store: &Path, sql: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    query_at(&store.display().to_string(), &[], sql)
}

/// [`query`] on a store folder or URL, with `env` set for emrwatch (S3 settings).
pub fn query_at(
    store: &str,
    env: &[(&str, String)],
    sql: &str,
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let out = emrwatch()
        .envs(env.iter().map(|(k, v)| (k, v.as_str())))
        .args(["sql", "--store", store, "--output", "ndjson", "-e", sql])
        .output()
        .expect("emrwatch runs");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str(l).unwrap() {
            serde_json::Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        })
        .collect()
}

/// A single integer from a one-row, one-column query.
pub fn scalar(store: &Path, sql: &str) -> i64 {
    let rows = query(store, sql);
    assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
    rows[0]
        .values()
        .next()
        .unwrap()
        .as_i64()
        .unwrap_or_else(|| panic!("{sql}: {rows:?}"))
}

/// A result row of [`query`].
pub type Row = serde_json::Map<String, serde_json::Value>;

/// The access events read from the source file named `file`, oldest first,
/// with `ts` as `us` (UTC microseconds).
pub fn events_from(store: &Path, file: &str) -> Vec<Row> {
    query(
        store,
        &format!(
            "SELECT CAST(ts AS BIGINT) AS us, user_id, user_role, patient_id, action, resource, outcome, \
             workstation, src_ip, app FROM access_events WHERE source LIKE '%/{file}' ORDER BY us"
        ),
    )
}

/// Asserts the text columns of `row`, naming the column that differs.
pub fn check(row: &Row, expected: &[(&str, Option<&str>)]) {
    for (col, want) in expected {
        assert_eq!(s(row, col), *want, "column {col} of {row:?}");
    }
}

/// A string field of a row (None for null/missing).
pub fn s<'a>(row: &'a serde_json::Map<String, serde_json::Value>, col: &str) -> Option<&'a str> {
    row.get(col).and_then(|v| v.as_str())
}

/// The stderr of an output as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// UTC microseconds of an RFC 3339 instant (the stored `ts` as BIGINT).
pub fn us(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_micros()
}

/// `emrwatch gen` into `out`.
pub fn gen_hospital(out: &Path, events: &str, days: &str, seed: &str) {
    ok(&[
        "gen",
        "--out",
        out.to_str().unwrap(),
        "--events",
        events,
        "--days",
        days,
        "--seed",
        seed,
    ]);
}
