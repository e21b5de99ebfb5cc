//! `emrwatch ingest`: sources → decode_stream → store, with progress and a summary.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{BinaryBuilder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::IngestArgs;
use crate::error::{Error, Result};
use crate::ingest::mapping::Mapping;
use crate::ingest::{IngestOptions, Reject, Table, decode_stream, source};
use crate::schema;
use crate::store::{Store, TableWriter};

/// Totals of one ingest run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IngestSummary {
    /// Objects read.
    pub objects: usize,
    /// Compressed bytes read.
    pub read_bytes: u64,
    /// Decompressed bytes of records.
    pub bytes: u64,
    /// Records framed.
    pub records: u64,
    /// Rows stored (in `access_events` and `system_events`).
    pub stored: u64,
    /// Records rejected.
    pub rejected: u64,
    /// Resources skipped (not AuditEvents).
    pub skipped: u64,
    /// The `access_events` version committed, if any access event was stored.
    pub version: Option<i64>,
}

fn ingest_options(args: &IngestArgs) -> Result<IngestOptions> {
    let mapping = match &args.mapping {
        Some(p) => Mapping::from_file(p)?,
        None => Mapping::default(),
    };
    let defaults = IngestOptions::default();
    Ok(IngestOptions {
        format: args.format,
        mapping: Arc::new(mapping),
        max_record_bytes: args.max_record_bytes as usize,
        max_document_bytes: args.max_document_bytes as usize,
        threads: args.threads.unwrap_or(defaults.threads).max(1),
        chunk_bytes: defaults.chunk_bytes,
        syslog_tz: args.syslog_tz.parse().map_err(|_| Error::Input {
            input: "--syslog-tz".into(),
            reason: format!(
                "unknown time zone {:?} (use an IANA name such as Europe/Zurich, or UTC)",
                args.syslog_tz
            ),
        })?,
        syslog_year: args.syslog_year,
    })
}

fn progress_bar(args: &IngestArgs, total: u64) -> ProgressBar {
    let show = !args.no_progress && (args.progress || std::io::stderr().is_terminal());
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} read, {bytes_per_sec}, {msg}",
        )
        .expect("valid template"),
    );
    bar
}

/// Runs an ingest and prints its summary line to stderr.
pub async fn run(args: IngestArgs) -> Result<IngestSummary> {
    let opts = ingest_options(&args)?;
    let started = Instant::now();
    let objects = source::resolve(&args.inputs).await?;
    let total: u64 = objects.iter().map(|o| o.size).sum();
    let store = Store::new(&args.store.store)?;
    let mut summary = IngestSummary {
        objects: objects.len(),
        ..IngestSummary::default()
    };
    // One writer per table the inputs fill, opened on its first batch.
    let mut writers: Vec<(Table, TableWriter)> = Vec::new();
    let mut rejects: Vec<Reject> = Vec::new();
    let mut rejects_writer = None;
    let run_started_us = chrono::Utc::now().timestamp_micros();
    let bar = progress_bar(&args, total);

    let stream = decode_stream(objects, &opts);
    futures::pin_mut!(stream);
    while let Some(d) = stream.next().await {
        if args.strict
            && let Some(r) = d.rejects.first()
        {
            // Nothing is committed: the writer is dropped with the error.
            return Err(Error::Strict {
                source_url: r.source.to_string(),
                line: r.line,
                reason: r.reason.clone(),
            });
        }
        summary.read_bytes += d.read_bytes;
        summary.bytes += d.bytes;
        summary.records += d.records;
        summary.stored += d.batch.num_rows() as u64;
        summary.rejected += d.rejects.len() as u64;
        summary.skipped += d.skipped;
        if !args.dry_run && d.batch.num_rows() > 0 {
            let i = match writers.iter().position(|(t, _)| *t == d.table) {
                Some(i) => i,
                None => {
                    let w = store.writer(d.table.name(), &d.table.schema()).await?;
                    writers.push((d.table, w));
                    writers.len() - 1
                }
            };
            writers[i].1.write(&d.batch, schema::TS).await?;
        }
        // A dry run counts rejects but keeps none, so memory stays flat on garbage input.
        if !args.dry_run {
            rejects.extend(d.rejects);
            if rejects.len() >= 8192 {
                flush_rejects(&store, &mut rejects_writer, &mut rejects, run_started_us).await?;
            }
        }
        bar.inc(d.read_bytes);
        bar.set_message(format!(
            "{} records, {} rejected, {:.0} records/s",
            summary.records,
            summary.rejected,
            summary.records as f64 / started.elapsed().as_secs_f64().max(1e-3)
        ));
    }
    bar.finish_and_clear();

    let run_id = format!("ingest-{run_started_us}");
    let metadata = |table: &str, rows: u64| -> HashMap<String, serde_json::Value> {
        HashMap::from([
            ("emrwatch.run_id".to_string(), run_id.clone().into()),
            ("emrwatch.table".to_string(), table.into()),
            ("emrwatch.rows".to_string(), rows.into()),
        ])
    };
    let mut committed = Vec::new();
    for (table, w) in writers {
        let rows = w.rows();
        if let Some(v) = w.commit(metadata(table.name(), rows)).await? {
            committed.push(format!("{} version {v}", table.name()));
            if table == Table::AccessEvents {
                summary.version = Some(v);
            }
        }
    }
    if !rejects.is_empty() {
        flush_rejects(&store, &mut rejects_writer, &mut rejects, run_started_us).await?;
    }
    if let Some(w) = rejects_writer {
        let rows = w.rows();
        w.commit(metadata("rejects", rows)).await?;
    }

    let secs = started.elapsed().as_secs_f64().max(1e-6);
    eprintln!(
        "ingest: {} objects, {} records, {} stored, {} rejected{}, {:.1} MB in {:.2}s ({:.1} MB/s){}",
        summary.objects,
        summary.records,
        summary.stored,
        summary.rejected,
        if summary.skipped > 0 {
            format!(", {} non-AuditEvent resources skipped", summary.skipped)
        } else {
            String::new()
        },
        summary.bytes as f64 / 1e6,
        secs,
        summary.bytes as f64 / 1e6 / secs,
        if args.dry_run {
            " (dry run: nothing stored)".to_string()
        } else if committed.is_empty() {
            String::new()
        } else {
            format!(", committed {}", committed.join(", "))
        }
    );
    if summary.rejected > 0 && !args.dry_run {
        eprintln!(
            "ingest: see them with: emrwatch sql -e \"SELECT source, line, reason FROM rejects ORDER BY ingested_at DESC, source, line\""
        );
    }
    Ok(summary)
}

/// Appends `rejects` to the `rejects` table (opening its writer on first use) and empties it.
async fn flush_rejects(
    store: &Store,
    writer: &mut Option<TableWriter>,
    rejects: &mut Vec<Reject>,
    ingested_at: i64,
) -> Result<()> {
    let w = match writer {
        Some(w) => w,
        None => writer.insert(store.writer("rejects", &schema::rejects()).await?),
    };
    w.write(
        &rejects_batch(rejects, ingested_at)?,
        schema::rejects::INGESTED_AT,
    )
    .await?;
    rejects.clear();
    Ok(())
}

/// The `rejects` rows of `rejects`, all stamped `ingested_at`.
fn rejects_batch(rejects: &[Reject], ingested_at: i64) -> Result<RecordBatch> {
    let n = rejects.len();
    let mut at = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut source = StringBuilder::new();
    let mut line = Int64Builder::with_capacity(n);
    let mut offset = Int64Builder::with_capacity(n);
    let mut reason = StringBuilder::new();
    let mut sample = BinaryBuilder::new();
    for r in rejects {
        at.append_value(ingested_at);
        source.append_value(&r.source);
        line.append_value(r.line as i64);
        offset.append_value(r.offset as i64);
        reason.append_value(&r.reason);
        sample.append_value(&r.sample);
    }
    Ok(RecordBatch::try_new(
        schema::rejects(),
        vec![
            Arc::new(at.finish()),
            Arc::new(source.finish()),
            Arc::new(line.finish()),
            Arc::new(offset.finish()),
            Arc::new(reason.finish()),
            Arc::new(sample.finish()),
        ],
    )?)
}
