//! The store: files finished mid-run (to keep memory flat) all land in the
//! run's one commit, and nothing is visible before it.

use std::borrow::Cow;
use std::collections::HashMap;

use arrow::array::AsArray;

use emrwatch::ingest::builder::{AccessBuilder, AccessRow};
use emrwatch::schema;
use emrwatch::store::Store;

use crate::common::*;

fn batch(first: i64, n: i64) -> arrow::record_batch::RecordBatch {
    let mut b = AccessBuilder::with_capacity(n as usize);
    for i in first..first + n {
        let row = AccessRow {
            // Spread over three days, so several partitions are open at once.
            ts: 1_793_000_000_000_000 + i * 40_000_000_000,
            user_id: Cow::Owned(format!("u{i}")),
            action: Cow::Borrowed("view"),
            outcome: Cow::Borrowed("success"),
            patient_id: Some(Cow::Owned(format!("P{i}"))),
            ..AccessRow::default()
        };
        b.append(&row, i as u64 + 1);
    }
    b.finish("mem://test")
}

/// Two scheduled runs planned from one checkpoint: the second opens the table
/// only after the first committed, so Delta sees no concurrent commit; the
/// application transaction it would record again is what stops it.
#[test]
fn a_commit_that_would_record_an_application_transaction_again_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Store::new(root.to_str().unwrap()).unwrap();
        let commit = |first: i64, version: i64| {
            let store = store.clone();
            async move {
                let mut w = store
                    .writer("access_events", &schema::access_events())
                    .await
                    .unwrap();
                w.write(&batch(first, 10), schema::TS).await.unwrap();
                w.commit_with(HashMap::new(), &[("test-run", version)])
                    .await
            }
        };
        assert!(commit(0, 1).await.unwrap().is_some());
        let again = commit(0, 1).await;
        assert!(
            matches!(again, Err(emrwatch::error::Error::Conflict { .. })),
            "{again:?}"
        );
        // An earlier version is no better; the next one commits.
        assert!(commit(0, 0).await.is_err());
        assert!(commit(10, 2).await.unwrap().is_some());
    });
    assert_eq!(scalar(&root, "SELECT count(*) FROM access_events"), 20);
}

#[test]
fn files_flushed_mid_run_are_all_in_the_single_commit() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Store::new(root.to_str().unwrap()).unwrap();
        let mut w = store
            .writer("access_events", &schema::access_events())
            .await
            .unwrap()
            .with_flush_rows(10);
        for k in 0..5 {
            w.write(&batch(k * 25, 25), schema::TS).await.unwrap();
        }
        // Before the commit, readers see nothing of this run.
        let ctx = emrwatch::sql::session::open(&store).await.unwrap();
        let before = ctx
            .sql("SELECT count(*) FROM access_events")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let count = before[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0);
        assert_eq!(count, 0);
        let version = w.commit(HashMap::new()).await.unwrap();
        assert_eq!(version, Some(1), "one commit after the table's creation");
    });
    assert_eq!(scalar(&root, "SELECT count(*) FROM access_events"), 125);
    assert_eq!(
        scalar(
            &root,
            "SELECT count(DISTINCT patient_id) FROM access_events"
        ),
        125
    );
    assert!(
        scalar(
            &root,
            "SELECT count(DISTINCT event_date) FROM access_events"
        ) >= 3
    );
    let files = walk(&root.join("access_events"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .count();
    assert!(
        files > 5,
        "flushing every 10 rows finishes many files, got {files}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
