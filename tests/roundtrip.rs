//! Round trip at scale: what the generator wrote is what SQL counts, and a
//! second ingest of the same files appends them again (idempotent re-ingest
//! is the scheduled-run mode's job, not plain `ingest`'s).

use emrwatch::synth::{GenOptions, generate};

use crate::common::*;

#[test]
fn hundred_thousand_records_in_equal_what_sql_counts() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let truth = generate(&GenOptions {
        out: archive.clone(),
        seed: 7,
        events: 120_000,
        days: 3,
        staff: 500,
        patients: 60_000,
        gzip: true,
        ..GenOptions::default()
    })
    .unwrap();
    // The background plus the injected incidents' events.
    assert!(truth.events > 120_000);
    let store = dir.path().join("store");
    let out = ingest(&store, &[&archive.join("logs")], &["--threads", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));

    assert_eq!(
        scalar(&store, "SELECT count(*) FROM access_events"),
        truth.events as i64
    );
    assert_eq!(
        scalar(
            &store,
            "SELECT count(DISTINCT patient_id) FROM access_events"
        ),
        truth.distinct_patients as i64
    );
    let per_action = query(
        &store,
        "SELECT action, count(*) AS n FROM access_events GROUP BY action ORDER BY action",
    );
    let got: std::collections::BTreeMap<String, u64> = per_action
        .iter()
        .map(|r| {
            (
                s(r, "action").unwrap().to_string(),
                r["n"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, truth.per_action);
    assert_eq!(scalar(&store, "SELECT count(*) FROM rejects"), 0);
    // One partition per day, and provenance points at real lines.
    assert_eq!(
        scalar(
            &store,
            "SELECT count(DISTINCT event_date) FROM access_events"
        ),
        3
    );
    assert_eq!(
        scalar(
            &store,
            "SELECT count(*) FROM (SELECT source, source_line FROM access_events GROUP BY 1, 2)"
        ),
        truth.events as i64
    );

    // Ingesting the same files again appends them again.
    let out = ingest(&store, &[&archive.join("logs")], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        scalar(&store, "SELECT count(*) FROM access_events"),
        2 * truth.events as i64
    );
}

/// Three thousand uncompressed events over two days, under `dir`.
fn small_archive(dir: &std::path::Path) -> emrwatch::synth::GenSummary {
    generate(&GenOptions {
        out: dir.to_path_buf(),
        events: 3_000,
        days: 2,
        gzip: false,
        ..GenOptions::default()
    })
    .unwrap()
}

#[test]
fn chunking_does_not_change_what_is_decoded() {
    use emrwatch::ingest::{IngestOptions, decode_stream, source};
    use futures::StreamExt;

    let dir = tempfile::tempdir().unwrap();
    let truth = small_archive(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let decode = |chunk_bytes: usize, threads: usize| -> Vec<arrow::record_batch::RecordBatch> {
        rt.block_on(async {
            let objects = source::resolve(&[dir.path().join("logs").display().to_string()])
                .await
                .unwrap();
            let opts = IngestOptions {
                chunk_bytes,
                threads,
                ..IngestOptions::default()
            };
            decode_stream(objects, &opts)
                .map(|d| d.batch)
                .collect::<Vec<_>>()
                .await
        })
    };
    let reference =
        arrow::compute::concat_batches(&emrwatch::schema::access_events(), &decode(1 << 22, 1))
            .unwrap();
    assert_eq!(reference.num_rows() as u64, truth.events);
    for (chunk, threads) in [(1, 2), (1, 4), (1000, 1), (64 << 10, 2)] {
        let batches = decode(chunk, threads);
        let all =
            arrow::compute::concat_batches(&emrwatch::schema::access_events(), &batches).unwrap();
        assert_eq!(all, reference, "chunk {chunk} threads {threads}");
    }
}

/// A consumer that stops early (an error, `--strict`) must not leave the
/// reader or the decoding threads blocked: the runtime's shutdown waits for
/// them, so a stuck one hangs the process on exit.
#[test]
fn dropping_the_stream_early_stops_reading_and_decoding() {
    use emrwatch::ingest::{IngestOptions, decode_stream, source};
    use futures::StreamExt;

    let dir = tempfile::tempdir().unwrap();
    small_archive(dir.path());
    let logs = dir.path().join("logs").display().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let got = rt.block_on(async {
            let objects = source::resolve(&[logs]).await.unwrap();
            let opts = IngestOptions {
                // One record per chunk: thousands left unread when we stop.
                chunk_bytes: 1,
                threads: 3,
                ..IngestOptions::default()
            };
            let stream = decode_stream(objects, &opts);
            futures::pin_mut!(stream);
            let mut got = 0;
            while let Some(d) = stream.next().await {
                got += d.batch.num_rows();
                if got >= 5 {
                    break;
                }
            }
            got
        });
        drop(rt);
        tx.send(got).unwrap();
    });
    let got = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the runtime did not shut down: a reader or decoder is still blocked");
    assert_eq!(got, 5);
}
