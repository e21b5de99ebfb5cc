//! `emrwatch run`: the scheduled job.
//!
//! ```text
//! lock ─▶ load checkpoint ─▶ finish a cut-short run ─▶ list + plan ─▶ ingest (one commit per
//! table, with the checkpoint) ─▶ deliver earlier undelivered alerts ─▶ detect the new range
//! (alerts + mark in one commit) ─▶ deliver ─▶ mark delivered
//! ```
//!
//! Every step that changes the store is one Delta commit carrying the mark
//! of what it did ([`crate::run::checkpoint`]), so a run killed anywhere is
//! completed by the next one, without loss or duplicates.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;

use super::detect::{Detection, detect_new, load_rules, load_views, store_alerts};
use crate::cli::{RuleArgs, RunArgs};
use crate::config::{RunConfig, S3Config, SourceConfig, parse_fail_on, parse_format};
use crate::detect::rule::Severity;
use crate::detect::{Alert, Range, sink};
use crate::error::{Error, Result};
use crate::ingest::mapping::Mapping;
use crate::ingest::source::{self, ReadSpec, SourceObject};
use crate::ingest::{Format, IngestOptions, decode_stream};
use crate::reference::Reference;
use crate::run::checkpoint::{
    self, Checkpoint, DELIVER_APP, DETECT_APP, KEY, Loaded, RUN_APP, ReadRecord, SourceState,
};
use crate::run::{lock, plan};
use crate::siem::{self, SinkSpec, syslog::TlsSettings};
use crate::store::Store;
use crate::store::ingest::IngestWriter;

/// A configured source, ready to list and decode.
#[derive(Debug, Clone)]
pub struct JobSource {
    /// What to list: a path, URL, or either with a glob.
    pub input: String,
    /// How to decode it.
    pub opts: IngestOptions,
}

/// Everything a run needs, from the config file and the flags.
#[derive(Debug, Clone)]
pub struct Job {
    /// Store root.
    pub store: String,
    /// Sources, in order.
    pub sources: Vec<JobSource>,
    /// Reference folder.
    pub reference: Option<PathBuf>,
    /// Rules and thresholds.
    pub rules: RuleArgs,
    /// Alert sinks.
    pub sinks: Vec<SinkSpec>,
    /// TLS for sinks.
    pub tls: TlsSettings,
    /// Exit 1 at or above this severity (`None`: never).
    pub fail_on: Option<Severity>,
    /// Seconds a file must be unchanged to be complete.
    pub settle_seconds: u64,
    /// S3 settings.
    pub s3: S3Config,
    /// Alerts shown in the terminal table.
    pub show: usize,
    /// MiB of events the rules may share in memory.
    pub memory_cache_mib: usize,
}

fn source_options(s: &SourceConfig, threads: Option<usize>, origin: &str) -> Result<IngestOptions> {
    let bad = |reason: String| Error::Config {
        path: origin.to_string(),
        reason,
    };
    let format = match &s.format {
        Some(f) => parse_format(f).map_err(bad)?,
        None => Format::Auto,
    };
    let mapping = match &s.mapping {
        Some(p) => Mapping::from_file(p)?,
        None => Mapping::default(),
    };
    let tz = s.syslog_tz.as_deref().unwrap_or("UTC");
    let defaults = IngestOptions::default();
    Ok(IngestOptions {
        format,
        mapping: Arc::new(mapping),
        threads: threads.unwrap_or(defaults.threads).max(1),
        syslog_tz: tz.parse().map_err(|_| {
            bad(format!(
                "syslog_tz {tz:?}: not an IANA time zone (e.g. Europe/Zurich)"
            ))
        })?,
        ..defaults
    })
}

impl Job {
    /// The config file (if any) with the flags applied over it, checked.
    pub fn from_args(args: RunArgs) -> Result<Self> {
        let (mut cfg, origin) = match &args.config {
            Some(p) => (RunConfig::from_file(p)?, p.display().to_string()),
            None => (RunConfig::default(), "flags".to_string()),
        };
        if let Some(s) = args.store {
            cfg.store = Some(s);
        }
        if args.reference.is_some() {
            cfg.reference = args.reference;
        }
        if args.rules.is_some() {
            cfg.rules = args.rules;
        }
        if args.fail_on.is_some() {
            cfg.fail_on = args.fail_on;
        }
        if args.settle_seconds.is_some() {
            cfg.settle_seconds = args.settle_seconds;
        }
        if args.threads.is_some() {
            cfg.threads = args.threads;
        }
        if args.memory_cache.is_some() {
            cfg.memory_cache_mib = args.memory_cache;
        }
        if !args.sinks.is_empty() {
            cfg.sinks = args.sinks;
        }
        if args.ca_file.is_some() {
            cfg.tls.ca_file = args.ca_file;
        }
        if args.s3_endpoint.is_some() {
            cfg.s3.endpoint = args.s3_endpoint;
        }
        if args.s3_region.is_some() {
            cfg.s3.region = args.s3_region;
        }
        if args.s3_allow_http {
            cfg.s3.allow_http = Some(true);
        }
        if !args.sources.is_empty() {
            let format = format!("{:?}", args.format).to_lowercase();
            cfg.sources = args
                .sources
                .into_iter()
                .map(|url| SourceConfig {
                    url,
                    glob: None,
                    format: Some(format.clone()),
                    mapping: args.mapping.clone(),
                    syslog_tz: Some(args.syslog_tz.clone()),
                })
                .collect();
        }
        cfg.check(&origin)?;
        let store = cfg.store.clone().ok_or_else(|| Error::Config {
            path: origin.clone(),
            reason: "no store: set `store = \"...\"` or pass --store".into(),
        })?;
        if cfg.sources.is_empty() {
            return Err(Error::Config {
                path: origin,
                reason: "no source: add a [[source]] with a url, or pass --source".into(),
            });
        }
        let mut sources = Vec::new();
        for s in &cfg.sources {
            let input = match &s.glob {
                Some(g) => format!("{}/{}", s.url.trim_end_matches('/'), g),
                None => s.url.clone(),
            };
            sources.push(JobSource {
                input,
                opts: source_options(s, cfg.threads, &origin)?,
            });
        }
        let mut set = cfg.threshold_settings();
        set.extend(args.set);
        let sinks = cfg
            .sinks
            .iter()
            .map(|s| SinkSpec::parse(s))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|reason| Error::Config {
                path: origin.clone(),
                reason,
            })?;
        let fail_on =
            parse_fail_on(cfg.fail_on.as_deref().unwrap_or("high")).map_err(|reason| {
                Error::Config {
                    path: origin.clone(),
                    reason,
                }
            })?;
        Ok(Self {
            store,
            sources,
            reference: cfg.reference,
            rules: RuleArgs {
                rules: cfg.rules,
                set,
            },
            sinks,
            tls: TlsSettings {
                ca_file: cfg.tls.ca_file,
            },
            fail_on,
            settle_seconds: cfg.settle_seconds.unwrap_or(60),
            s3: cfg.s3,
            show: args.show,
            memory_cache_mib: cfg
                .memory_cache_mib
                .unwrap_or(crate::detect::DEFAULT_MEMORY_CACHE_MIB),
        })
    }
}

/// Totals of one run, for its summary line.
#[derive(Debug, Default, Clone)]
pub struct RunSummary {
    /// The run number committed (or resumed).
    pub run: i64,
    /// Objects listed.
    pub listed: usize,
    /// Objects read.
    pub read: usize,
    /// Objects left for later (still being written).
    pub waiting: usize,
    /// Bytes read.
    pub bytes: u64,
    /// Records framed.
    pub records: u64,
    /// Rows stored.
    pub stored: u64,
    /// Records rejected.
    pub rejected: u64,
    /// New alerts.
    pub alerts_new: usize,
    /// Alerts already raised.
    pub alerts_suppressed: usize,
    /// Alerts of earlier runs delivered now.
    pub redelivered: usize,
    /// Worst new alert.
    pub worst: Option<Severity>,
}

/// Runs the job; returns the exit status (0 or 1; errors are 2).
pub async fn run(args: RunArgs) -> Result<u8> {
    let started = Instant::now();
    let job = Job::from_args(args)?;
    crate::store::s3::configure(&job.s3);
    let store = Store::new(&job.store)?;
    let _lock = if store.root().scheme() == "file" {
        let root = store.root().to_file_path().unwrap_or_default();
        match lock::try_lock(&root).map_err(|e| Error::Input {
            input: root.display().to_string(),
            reason: format!("cannot create the store's lock file: {e}"),
        })? {
            Some(l) => Some(l),
            None => {
                eprintln!(
                    "run: another emrwatch run holds {}; this one did nothing",
                    root.join(lock::LOCK_FILE).display()
                );
                return Ok(0);
            }
        }
    } else {
        None
    };
    match locked_run(&job, &store, started).await {
        Err(Error::Conflict { root, reason }) => {
            eprintln!(
                "run: another emrwatch run committed to {root} first ({reason}); this run's \
                 work is discarded and the next run continues from what that one committed"
            );
            Ok(0)
        }
        other => other,
    }
}

/// The run, once the store is locked (or on S3).
async fn locked_run(job: &Job, store: &Store, started: Instant) -> Result<u8> {
    // Everything that can be wrong with the setup fails before any work.
    let reference = match &job.reference {
        Some(dir) => Reference::load(dir)?,
        None => Reference::empty(),
    };
    let (rules, rule_errors) = load_rules(&job.rules)?;
    let views = load_views(&job.rules)?;
    let loaded = checkpoint::load(store)
        .await
        .map_err(|e| unreachable_store(store, e))?;

    let mut summary = RunSummary::default();
    let cp = one_run(job, store, &loaded, &mut summary, started).await?;
    let mut new_alerts = Vec::new();
    // Alerts detected by an earlier run that stopped before delivering them.
    if loaded.delivered < loaded.detected {
        let pending = undelivered(store, loaded.delivered, loaded.detected).await?;
        siem::deliver(&job.sinks, &pending, &job.tls).map_err(sink_error)?;
        store_alerts(store, &[], "", "run", &[(DELIVER_APP, loaded.detected)]).await?;
        summary.redelivered = pending.len();
    }
    if loaded.detected < cp.run {
        let run_id = format!("run-{}", cp.run);
        if let Some((from, to)) = cp.pending {
            let range = Range {
                since: Some(from),
                until: Some(to + 1),
            };
            let detection = Detection {
                rules: &rules,
                views: &views,
                errors: rule_errors,
                range,
                run_id: &run_id,
                memory_cache_mib: job.memory_cache_mib,
                reference_loading: None,
            };
            let (new, suppressed, _) = detect_new(store, &reference, detection).await?;
            summary.alerts_suppressed = suppressed;
            new_alerts = new;
        }
        // No alert: detected and delivered in one commit.
        let marks: Vec<(&str, i64)> = if new_alerts.is_empty() {
            vec![(DETECT_APP, cp.run), (DELIVER_APP, cp.run)]
        } else {
            vec![(DETECT_APP, cp.run)]
        };
        store_alerts(store, &new_alerts, &run_id, "run", &marks).await?;
        if !new_alerts.is_empty() {
            crate::run::pause_point("before-delivery");
            siem::deliver(&job.sinks, &new_alerts, &job.tls).map_err(sink_error)?;
            store_alerts(store, &[], &run_id, "run", &[(DELIVER_APP, cp.run)]).await?;
        }
    }
    summary.alerts_new = new_alerts.len();
    summary.worst = new_alerts.iter().map(|a| a.severity).max();
    if job.show > 0 && !new_alerts.is_empty() {
        crate::detect::rank(&mut new_alerts);
        print!("{}", sink::render_table(&new_alerts, job.show));
    }
    eprintln!(
        "run {}: {} sources, {} objects listed, {} read{}, {:.1} MB, {} records, {} stored, {} rejected; \
         alerts: {} new, {} suppressed{}; {:.2}s",
        summary.run,
        job.sources.len(),
        summary.listed,
        summary.read,
        if summary.waiting > 0 {
            format!(" ({} still being written, left for later)", summary.waiting)
        } else {
            String::new()
        },
        summary.bytes as f64 / 1e6,
        summary.records,
        summary.stored,
        summary.rejected,
        summary.alerts_new,
        summary.alerts_suppressed,
        if summary.redelivered > 0 {
            format!(", {} of an earlier run delivered", summary.redelivered)
        } else {
            String::new()
        },
        started.elapsed().as_secs_f64()
    );
    Ok(match (job.fail_on, summary.worst) {
        (Some(limit), Some(worst)) if worst >= limit => 1,
        _ => 0,
    })
}

fn sink_error(reason: String) -> Error {
    Error::Input {
        input: "sinks".into(),
        reason: format!("{reason}; the alerts are stored and will be delivered by the next run"),
    }
}

fn unreachable_store(store: &Store, e: Error) -> Error {
    match e {
        Error::Store { root, source } => Error::Input {
            input: root,
            reason: format!(
                "cannot read the store ({source}); check its URL, credentials and that the \
                 server is reachable"
            ),
        },
        Error::ObjectStore { url, source } => Error::Input {
            input: url,
            reason: format!("cannot reach the store {}: {source}", store.root()),
        },
        e => e,
    }
}

/// Alerts of runs (after, upto] from the store.
async fn undelivered(store: &Store, after: i64, upto: i64) -> Result<Vec<Alert>> {
    let ctx = crate::sql::session::open(store).await?;
    let ids: Vec<String> = (after + 1..=upto).map(|r| format!("'run-{r}'")).collect();
    let batches = ctx
        .sql(&format!(
            "SELECT * FROM alerts WHERE run_id IN ({}) ORDER BY first_ts",
            ids.join(", ")
        ))
        .await?
        .collect()
        .await?;
    let mut out = Vec::new();
    for b in &batches {
        out.extend(crate::detect::from_batch(b).map_err(|reason| Error::Input {
            input: "alerts".into(),
            reason,
        })?);
    }
    Ok(out)
}

/// Finishes a cut-short run if needed, then ingests what is new. Returns
/// the newest checkpoint (this run's, or the loaded one if nothing was stored).
async fn one_run(
    job: &Job,
    store: &Store,
    loaded: &Loaded,
    summary: &mut RunSummary,
    started: Instant,
) -> Result<Checkpoint> {
    let prev = &loaded.checkpoint;
    summary.run = prev.run;
    if !loaded.lagging.is_empty() {
        finish_cut_short(job, store, loaded).await?;
    }
    let mut listed = Vec::new();
    for (i, s) in job.sources.iter().enumerate() {
        match source::resolve(std::slice::from_ref(&s.input)).await {
            Ok(objects) => listed.extend(objects.into_iter().map(|o| (i, o))),
            // A log folder with nothing in it yet is not an error.
            Err(Error::Input { reason, .. }) if reason.starts_with("matches no file") => {}
            Err(e) => return Err(unreachable_store(store, e)),
        }
    }
    let now_us = chrono::Utc::now().timestamp_micros();
    let settled_before = now_us - job.settle_seconds as i64 * 1_000_000;
    let plan = plan::plan(listed, prev, settled_before);
    summary.listed = plan.listed;
    summary.waiting = plan.waiting;
    summary.read = plan.reads.len();
    if plan.reads.is_empty() {
        return Ok(prev.clone());
    }
    let run = prev.run + 1;
    let keys: Vec<(String, Option<u64>)> = plan
        .reads
        .iter()
        .map(|r| (r.url.clone(), r.inode))
        .collect();
    let reads: Vec<(usize, SourceObject)> = plan
        .reads
        .into_iter()
        .map(|r| (r.source, r.object))
        .collect();
    let writer = ingest(job, store, &reads, None, summary, started).await?;
    let mut sources: BTreeMap<String, SourceState> = plan.carried.into_iter().collect();
    let mut records = Vec::new();
    for ((i, obj), (url, inode)) in reads.iter().zip(keys) {
        let spec = obj.read.as_ref().expect("planned reads have a spec");
        let reached = spec
            .reached
            .lock()
            .expect("reached lock")
            .ok_or_else(|| Error::Input {
                input: obj.url.to_string(),
                reason: "could not be read to the end (see the reject above); nothing was \
                         committed, the next run tries again"
                    .into(),
            })?;
        sources.insert(
            url.clone(),
            SourceState {
                label: obj.url.to_string(),
                size: obj.size,
                next: reached.at,
                etag: obj.etag.clone(),
                inode,
                compressed: reached.compressed,
            },
        );
        if reached.at.offset > spec.start.offset || reached.compressed {
            records.push(ReadRecord {
                source: *i,
                url,
                label: obj.url.to_string(),
                start: spec.start,
                end: reached.at.offset,
                compressed: reached.compressed,
                modified_us: obj.modified_us,
            });
        }
    }
    let tables = writer.rows();
    if tables.is_empty() {
        // Nothing to store (only partial or blank lines): nothing to commit,
        // and reading them again next time costs nothing.
        return Ok(prev.clone());
    }
    let carried_pending = if loaded.detected < prev.run {
        prev.pending
    } else {
        None
    };
    let cp = Checkpoint {
        run,
        sources,
        reads: records,
        tables,
        generations: plan.generations,
        pending: checkpoint::union(carried_pending, writer.ts_range),
    };
    commit_run(writer, &cp).await?;
    summary.run = run;
    Ok(cp)
}

/// The commit info of every commit of run `cp.run`: its id and its checkpoint.
fn run_metadata(cp: &Checkpoint) -> std::collections::HashMap<String, serde_json::Value> {
    std::collections::HashMap::from([
        (
            "emrwatch.run_id".to_string(),
            serde_json::json!(format!("run-{}", cp.run)),
        ),
        (
            KEY.to_string(),
            serde_json::to_value(cp).expect("a checkpoint is JSON"),
        ),
    ])
}

async fn commit_run(writer: IngestWriter, cp: &Checkpoint) -> Result<()> {
    writer
        .commit(run_metadata(cp), &[(RUN_APP, cp.run)])
        .await?;
    Ok(())
}

/// Reads `reads` and writes them to the store (only the `only` tables when given).
async fn ingest(
    job: &Job,
    store: &Store,
    reads: &[(usize, SourceObject)],
    only: Option<Vec<String>>,
    summary: &mut RunSummary,
    started: Instant,
) -> Result<IngestWriter> {
    let mut writer = IngestWriter::new(store, chrono::Utc::now().timestamp_micros(), only);
    for (i, s) in job.sources.iter().enumerate() {
        let objects: Vec<SourceObject> = reads
            .iter()
            .filter(|(src, _)| *src == i)
            .map(|(_, o)| o.clone())
            .collect();
        if objects.is_empty() {
            continue;
        }
        let stream = decode_stream(objects, &s.opts);
        futures::pin_mut!(stream);
        while let Some(d) = stream.next().await {
            summary.bytes += d.read_bytes;
            summary.records += d.records;
            summary.stored += d.batch.num_rows() as u64;
            summary.rejected += d.rejects.len() as u64;
            writer.add(d).await?;
        }
        verbose(&format!(
            "source {}: read in {:.2}s",
            i + 1,
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(writer)
}

/// Completes the newest run's commits for the tables that miss them, by
/// reading the same byte ranges again and keeping only those tables' rows.
async fn finish_cut_short(job: &Job, store: &Store, loaded: &Loaded) -> Result<()> {
    let cp = &loaded.checkpoint;
    let mut reads = Vec::new();
    for r in &cp.reads {
        if r.source >= job.sources.len() {
            return Err(Error::Input {
                input: r.url.clone(),
                reason: format!(
                    "run {} was stopped before all its commits, and its source {} is no \
                     longer configured: restore the config to finish it",
                    cp.run,
                    r.source + 1
                ),
            });
        }
        let mut obj = source::resolve(std::slice::from_ref(&r.url))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Input {
                input: r.url.clone(),
                reason: "gone".into(),
            })?;
        if !r.compressed && obj.size < r.end {
            return Err(Error::Input {
                input: r.url.clone(),
                reason: format!(
                    "run {} was stopped before all its commits and this file shrank since, so \
                     its rows for {} cannot be read again",
                    cp.run,
                    loaded.lagging.join(", ")
                ),
            });
        }
        obj.modified_us = r.modified_us;
        obj.url = r.label.as_str().into();
        obj.read = Some(Arc::new(ReadSpec {
            start: r.start,
            end: (!r.compressed).then_some(r.end),
            whole_lines: false,
            reached: Default::default(),
        }));
        reads.push((r.source, obj));
    }
    let mut ignored = RunSummary::default();
    let writer = ingest(
        job,
        store,
        &reads,
        Some(loaded.lagging.clone()),
        &mut ignored,
        Instant::now(),
    )
    .await?;
    let rows = writer.rows();
    let (found, lost): (Vec<&String>, Vec<&String>) =
        loaded.lagging.iter().partition(|t| rows.contains_key(*t));
    commit_run(writer, cp).await?;
    if !found.is_empty() {
        eprintln!(
            "run: run {} had been stopped before committing to {}; finished it",
            cp.run,
            found
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    // The same bytes no longer give these tables any row: their sources
    // changed in place since. Record the run as done for them anyway, so
    // later runs do not read those ranges again and again.
    for table in lost {
        store
            .writer(table, &crate::sql::session::canonical_schema(table))
            .await?
            .commit_with(run_metadata(cp), &[(RUN_APP, cp.run)])
            .await?;
        eprintln!(
            "run: warning: run {} had been stopped before committing to {table}, and its \
             sources changed in place since: its {} rows for {table} are lost",
            cp.run,
            cp.tables.get(table).copied().unwrap_or(0)
        );
    }
    Ok(())
}

/// Timing detail on stderr only when asked (`EMRWATCH_VERBOSE=1`).
fn verbose(s: &str) {
    if std::env::var_os("EMRWATCH_VERBOSE").is_some() {
        eprintln!("emrwatch: {s}");
    }
}
