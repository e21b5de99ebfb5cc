//! `emrwatch sql`: one-shot and shell, output formats, clear errors, read-only.

use std::io::Write;
use std::process::Stdio;

use crate::common::*;

fn loaded_store(dir: &std::path::Path) -> std::path::PathBuf {
    let store = dir.join("store");
    let out = ingest(&store, &[&fixture("fhir/variants.ndjson")], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    store
}

#[test]
fn output_formats() {
    let dir = tempfile::tempdir().unwrap();
    let store = loaded_store(dir.path());
    let st = store.to_str().unwrap();
    let sql = "SELECT action, count(*) AS n FROM access_events WHERE action IN ('login', 'logout') GROUP BY action ORDER BY action";
    let csv =
        String::from_utf8(ok(&["sql", "--store", st, "-o", "csv", "-e", sql]).stdout).unwrap();
    assert_eq!(csv, "action,n\nlogin,1\nlogout,1\n");
    let json =
        String::from_utf8(ok(&["sql", "--store", st, "-o", "json", "-e", sql]).stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{"action": "login", "n": 1}, {"action": "logout", "n": 1}])
    );
    let table = String::from_utf8(ok(&["sql", "--store", st, "-e", sql]).stdout).unwrap();
    assert!(table.contains("| login  | 1 |"), "{table}");
}

#[test]
fn datafusion_settings_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("empty");
    let sql = "SELECT value FROM information_schema.df_settings \
               WHERE name = 'datafusion.execution.batch_size'";
    let with_batch_size = |value: Option<&str>| {
        let mut c = emrwatch();
        match value {
            Some(v) => c.env("DATAFUSION_EXECUTION_BATCH_SIZE", v),
            None => c.env_remove("DATAFUSION_EXECUTION_BATCH_SIZE"),
        };
        c.args([
            "sql",
            "--store",
            store.to_str().unwrap(),
            "-o",
            "csv",
            "-e",
            sql,
        ])
        .output()
        .unwrap()
    };
    let set = with_batch_size(Some("1234"));
    assert!(set.status.success(), "{}", stderr(&set));
    assert_eq!(String::from_utf8_lossy(&set.stdout), "value\n1234\n");
    let default = with_batch_size(None);
    assert_eq!(String::from_utf8_lossy(&default.stdout), "value\n8192\n");
    // A value that is not one is an error that names the setting.
    let bad = with_batch_size(Some("lots"));
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("batch_size"), "{}", stderr(&bad));
}

#[test]
fn sql_mistakes_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let store = loaded_store(dir.path());
    let out = run(&[
        "sql",
        "--store",
        store.to_str().unwrap(),
        "-e",
        "SELECT nope FROM access_events",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nope"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"));
}

#[test]
fn sql_is_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = loaded_store(dir.path());
    let st = store.to_str().unwrap();
    let target = dir.path().join("copy.csv");
    for stmt in [
        "CREATE TABLE t AS SELECT 1".to_string(),
        "DROP TABLE access_events".to_string(),
        format!("COPY access_events TO '{}'", target.display()),
        "INSERT INTO access_events SELECT * FROM access_events".to_string(),
    ] {
        let out = run(&["sql", "--store", st, "-e", &stmt]);
        assert_eq!(out.status.code(), Some(2), "{stmt} must fail");
    }
    assert!(!target.exists());
    assert_eq!(scalar(&store, "SELECT count(*) FROM access_events"), 12);
}

#[test]
fn a_new_store_has_empty_tables() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("empty");
    assert_eq!(scalar(&store, "SELECT count(*) FROM access_events"), 0);
    assert_eq!(scalar(&store, "SELECT count(*) FROM rejects"), 0);
}

#[test]
fn shell_reads_statements_and_backslash_commands_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let store = loaded_store(dir.path());
    let mut child = emrwatch()
        .args(["sql", "--store", store.to_str().unwrap(), "-o", "csv"])
        .env("HOME", dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"\\d\n\\d access_events\nSELECT count(*)\n AS n FROM access_events;\nSELECT bad syntax here;\n\\q\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(
        stdout.contains("access_events\nalerts\nrejects\n"),
        "{stdout}"
    );
    assert!(stdout.contains("patient_id,Utf8,YES"), "{stdout}");
    assert!(stdout.contains("n\n12\n"), "{stdout}");
    assert!(
        stderr(&out).contains("error:"),
        "a bad statement is reported and the shell goes on"
    );
}

#[test]
fn store_files_are_readable_by_the_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = loaded_store(dir.path());
    let mut checked = 0;
    let mut stack = vec![store];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let e = e.unwrap();
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & 0o077, 0, "{} has mode {mode:o}", e.path().display());
            checked += 1;
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    assert!(checked > 3);
}

#[test]
fn a_file_of_statements_runs_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = loaded_store(dir.path());
    let script = dir.path().join("q.sql");
    std::fs::write(
        &script,
        "-- two questions; the ';' in a string is not a separator\n\
         SELECT count(*) AS n FROM access_events WHERE action <> ';';\n\
         SELECT count(DISTINCT user_id) AS users FROM access_events;\n",
    )
    .unwrap();
    let out = ok(&[
        "sql",
        "--store",
        store.to_str().unwrap(),
        "-o",
        "csv",
        "-f",
        script.to_str().unwrap(),
    ]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "n\n12\nusers\n8\n");
}

/// Analysts get the rules' functions: distinct_count agrees with
/// count(DISTINCT) on the store's events.
#[test]
fn distinct_count_agrees_with_count_distinct() {
    let dir = tempfile::tempdir().unwrap();
    let store = loaded_store(dir.path());
    let st = store.to_str().unwrap();
    let sql = "SELECT action, distinct_count(user_id) AS a, count(DISTINCT user_id) AS b, \
               distinct_count(patient_id) AS c, count(DISTINCT patient_id) AS d \
               FROM access_events GROUP BY action ORDER BY action";
    let csv =
        String::from_utf8(ok(&["sql", "--store", st, "-o", "csv", "-e", sql]).stdout).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert!(rows.len() >= 2, "{csv}");
    for row in rows {
        let f: Vec<&str> = row.split(',').collect();
        assert_eq!((f[1], f[3]), (f[2], f[4]), "{csv}");
    }
}
