//! `emrwatch ingest`: sources → decode_stream → store, with progress and a summary.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::IngestArgs;
use crate::error::{Error, Result};
use crate::ingest::mapping::Mapping;
use crate::ingest::{IngestOptions, Table, decode_stream, source};
use crate::store::Store;
use crate::store::ingest::{IngestWriter, REJECTS};

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
    let run_started_us = chrono::Utc::now().timestamp_micros();
    let mut writer = IngestWriter::new(&store, run_started_us, None);
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
        // A dry run counts rejects but keeps none, so memory stays flat on garbage input.
        if !args.dry_run {
            writer.add(d).await?;
        }
        bar.inc(summary.read_bytes - bar.position());
        bar.set_message(format!(
            "{} records, {} rejected, {:.0} records/s",
            summary.records,
            summary.rejected,
            summary.records as f64 / started.elapsed().as_secs_f64().max(1e-3)
        ));
    }
    bar.finish_and_clear();

    let run_id = format!("ingest-{run_started_us}");
    let metadata = HashMap::from([("emrwatch.run_id".to_string(), run_id.into())]);
    let mut committed = Vec::new();
    for (table, v) in writer.commit(metadata, &[]).await? {
        if table == Table::AccessEvents.name() {
            summary.version = Some(v);
        }
        if table != REJECTS {
            committed.push(format!("{table} version {v}"));
        }
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
