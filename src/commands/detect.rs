//! `emrwatch detect`, `scan` and `rules`: load rules, give them a session
//! with the events, the reference tables and the statistics functions, and
//! deliver their alerts.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::AsArray;
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::cli::{AlertOutArgs, DetectArgs, RuleArgs, RulesArgs, ScanArgs};
use crate::detect::rule::{self, Rule, RuleError, View};
use crate::detect::{self as det, Alert, Events, Range, sink};
use crate::error::{Error, Result};
use crate::ingest::{IngestOptions, Table, decode_stream, source};
use crate::reference::Reference;
use crate::store::{ACCESS_EVENTS, SYSTEM_EVENTS, Store};
use crate::{functions, schema};

/// The shared views: `DIR/views/*.sql` with `--rules DIR`, else the built-in ones.
pub fn load_views(args: &RuleArgs) -> Result<Vec<View>> {
    let files: Vec<(String, String)> = match &args.rules {
        Some(dir) if dir.join("views").is_dir() => {
            rule::read_dir(&dir.join("views")).map_err(|e| Error::Input {
                input: dir.join("views").display().to_string(),
                reason: format!("cannot read the views folder: {e}"),
            })?
        }
        Some(_) => Vec::new(),
        None => rule::builtin_views()
            .into_iter()
            .map(|(o, t)| (o, t.to_string()))
            .collect(),
    };
    files
        .iter()
        .map(|(origin, text)| {
            View::parse(origin, text).map_err(|reason| Error::Input {
                input: origin.clone(),
                reason,
            })
        })
        .collect()
}

/// The rules to run: `--rules DIR` or the built-in ones, with `--set` applied.
pub fn load_rules(args: &RuleArgs) -> Result<(Vec<Rule>, Vec<RuleError>)> {
    let files = match &args.rules {
        Some(dir) => rule::read_dir(dir).map_err(|e| Error::Input {
            input: dir.display().to_string(),
            reason: format!("cannot read the rules folder: {e}"),
        })?,
        None => rule::builtin()
            .into_iter()
            .map(|(o, t)| (o, t.to_string()))
            .collect(),
    };
    let (mut rules, errors) = rule::parse_all(files);
    for s in &args.set {
        let bad = |reason: &str| Error::Input {
            input: format!("--set {s}"),
            reason: reason.to_string(),
        };
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| bad("expected RULE_ID.PARAM=VALUE"))?;
        let (id, param) = key
            .split_once('.')
            .ok_or_else(|| bad("expected RULE_ID.PARAM=VALUE"))?;
        let r = rules
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or_else(|| bad(&format!("no rule `{id}` (emrwatch rules lists them)")))?;
        if !r.params.contains_key(param) {
            let known: Vec<&str> = r.params.keys().map(String::as_str).collect();
            return Err(bad(&format!(
                "rule `{id}` has no parameter `{param}` (it has: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
        r.params.insert(param.to_string(), value.trim().to_string());
    }
    Ok((rules, errors))
}

/// `emrwatch rules`.
pub fn run_rules(args: RulesArgs) -> Result<()> {
    let (rules, errors) = load_rules(&args.rules)?;
    let mut out = std::io::stdout().lock();
    let w = rules.iter().map(|r| r.id.len()).max().unwrap_or(2).max(2);
    let sw = rules
        .iter()
        .map(|r| r.scenario.len())
        .max()
        .unwrap_or(8)
        .max(8);
    writeln!(
        out,
        "{:<w$}  {:<sw$}  {:<8}  {:<8}  description",
        "id", "scenario", "severity", "lookback"
    )?;
    for r in &rules {
        let lb = match r.lookback_us {
            0 => "0".to_string(),
            us if us % 86_400_000_000 == 0 => format!("{}d", us / 86_400_000_000),
            us => format!("{}h", us / 3_600_000_000),
        };
        writeln!(
            out,
            "{:<w$}  {:<sw$}  {:<8}  {:<8}  {}",
            r.id,
            r.scenario,
            r.severity.as_str(),
            lb,
            r.description
        )?;
    }
    for e in &errors {
        eprintln!("emrwatch: rule {} skipped: {}", e.origin, e.reason);
    }
    Ok(())
}

/// A session for rules: every function, the reference tables, and `events`
/// registered as `access_events`.
async fn rule_session(reference: &Reference) -> Result<SessionContext> {
    let ctx = SessionContext::new_with_config(crate::sql::session::rules_config()?);
    functions::register(&ctx);
    reference.register(&ctx)?;
    Ok(ctx)
}

fn load_reference(dir: Option<&std::path::Path>) -> Result<Reference> {
    match dir {
        Some(dir) => Reference::load(dir),
        None => {
            eprintln!(
                "emrwatch: no --ref folder: rules that need staff, patients or encounters \
                 find nothing (pass --ref DIR with staff.csv, patients.csv, encounters.csv)"
            );
            Ok(Reference::empty())
        }
    }
}

/// What a detection runs, over what, as which run.
pub struct Detection<'a> {
    /// The rules that loaded.
    pub rules: &'a [Rule],
    /// The shared views.
    pub views: &'a [View],
    /// Rules that did not load, reported with those that fail to check or run.
    pub errors: Vec<RuleError>,
    /// The time range.
    pub range: Range,
    /// The run's id, in every alert.
    pub run_id: &'a str,
    /// MiB of events the rules may share in memory (0: each reads the store).
    pub memory_cache_mib: usize,
    /// The reference tables still being read, when the session holds empty
    /// ones (with their columns) meanwhile: rules are checked and the events
    /// read while the CSV files are parsed, and the tables are registered
    /// before the first rule or view is planned to run.
    pub reference_loading: Option<LoadingReference>,
}

/// Reference tables being read on a thread of their own.
pub type LoadingReference = tokio::task::JoinHandle<Result<Reference>>;

/// Waits for the reference tables `loading` and registers them in `ctx`.
async fn register_loaded(
    ctx: &SessionContext,
    loading: &mut Option<LoadingReference>,
) -> Result<()> {
    if let Some(handle) = loading.take() {
        let t = Instant::now();
        let reference = handle.await.map_err(|e| Error::Input {
            input: "--ref".into(),
            reason: format!("reading the reference tables failed: {e}"),
        })??;
        reference.register(ctx)?;
        verbose(&format!(
            "reference tables registered (waited {:.2}s)",
            t.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}

/// Checks and runs every rule; broken ones are reported on stderr and skipped.
async fn run_rules_over(
    ctx: &SessionContext,
    all: &Events,
    d: Detection<'_>,
) -> Result<(Vec<Alert>, usize)> {
    let Detection {
        rules,
        views,
        mut errors,
        range,
        run_id,
        memory_cache_mib,
        mut reference_loading,
    } = d;
    let mut cache_budget = memory_cache_mib << 20;
    // Check against the full table (planning reads no data).
    all.register(ctx)?;
    det::register_views(ctx, views, &[])
        .await
        .map_err(|reason| Error::Input {
            input: "queries/views".into(),
            reason,
        })?;
    let t = Instant::now();
    let mut checked = Vec::new();
    for r in rules {
        match det::check(ctx, r).await {
            Ok(()) => checked.push(r),
            Err(reason) => errors.push(RuleError {
                origin: r.origin.clone(),
                reason,
            }),
        }
    }
    // Rules that share a look-back read the same events, and share the
    // views computed over them. The longest look-back first: its rules
    // (volume_spike, after_hours) are the slowest and need no shared view,
    // so they run while the next scope computes its views.
    let mut lookbacks: Vec<i64> = checked.iter().map(|r| r.lookback_us).collect();
    lookbacks.sort_unstable_by(|a, b| b.cmp(a));
    lookbacks.dedup();
    verbose(&format!(
        "rules checked in {:.2}s",
        t.elapsed().as_secs_f64()
    ));
    let t = Instant::now();
    let mut columns = HashMap::new();
    if cache_budget > 0 {
        match det::columns_read(ctx, &checked, views).await {
            Ok(read) => columns = read,
            // The rules checked; they can still run, each reading the store.
            Err(reason) => {
                eprintln!("emrwatch: the events are not kept in memory: {reason}");
                cache_budget = 0;
            }
        }
    }
    verbose(&format!(
        "columns read found in {:.2}s: {columns:?}",
        t.elapsed().as_secs_f64()
    ));
    // Rules run concurrently, as many at once as there are cores, each from
    // a plan made in its scope: a rule's plan keeps the tables it was
    // planned over. One rule alone left a core idle for a third of detect
    // (its plans' serial steps, the alerts built from its rows).
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let slots = Arc::new(tokio::sync::Semaphore::new(cores));
    let mut running: Running = tokio::task::JoinSet::new();
    let mut results: Vec<Option<RuleResult>> = vec![None; checked.len()];
    // The events of the last scope read into memory, and where that scope starts.
    let mut cached: Option<(Option<i64>, Events)> = None;
    for lookback in lookbacks {
        let group: Vec<(usize, &Rule)> = checked
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, r)| r.lookback_us == lookback)
            .collect();
        let from = range.since.map(|s| s.saturating_sub(lookback));
        let events = match &cached {
            // Without --since every look-back reads the same events.
            Some((f, events)) if *f == from => events.clone(),
            // One rule would read the store once either way.
            _ if group.len() < 2 || cache_budget == 0 => all.clone(),
            _ => {
                // Let go of the last scope's events (the rules still running
                // over them, the tables and the views planned over them)
                // before reading the next.
                finish(&mut running, &mut results).await?;
                cached = None;
                all.register(ctx)?;
                for v in views {
                    ctx.deregister_table(v.name.as_str())?;
                }
                match cache_events(ctx, all, &columns, range, lookback, cache_budget).await? {
                    Some(events) => {
                        cached = Some((from, events.clone()));
                        events
                    }
                    None => all.clone(),
                }
            }
        };
        register_loaded(ctx, &mut reference_loading).await?;
        let t = Instant::now();
        let rules_here: Vec<&Rule> = group.iter().map(|(_, r)| *r).collect();
        if let Err(reason) = det::scope(ctx, &events, views, range, lookback, &rules_here).await {
            for (i, _) in &group {
                results[*i] = Some(Err(reason.clone()));
            }
            continue;
        }
        verbose(&format!(
            "views for a look-back of {}s: {:.2}s",
            lookback / 1_000_000,
            t.elapsed().as_secs_f64()
        ));
        // At least as many rules here as cores: each planned one partition
        // wide, the cores being shared out among the rules (`plan_scoped`).
        let side_by_side = group.len() >= cores;
        for (i, r) in group {
            let df = match det::plan_scoped(ctx, r, side_by_side).await {
                Ok(df) => df,
                Err(reason) => {
                    results[i] = Some(Err(reason));
                    continue;
                }
            };
            let (slots, rule, run_id) = (slots.clone(), r.clone(), run_id.to_string());
            running.spawn(async move {
                let _slot = slots.acquire_owned().await;
                let t = Instant::now();
                let found = det::collect_alerts(df, &rule, range, &run_id).await;
                if let Ok(found) = &found {
                    verbose(&format!(
                        "rule {}: {} alerts in {:.2}s (from {:.2}s)",
                        rule.id,
                        found.len(),
                        t.elapsed().as_secs_f64(),
                        (t - *STARTED).as_secs_f64()
                    ));
                }
                (i, found)
            });
        }
    }
    finish(&mut running, &mut results).await?;
    // No rule ran: a bad reference folder is still an error.
    register_loaded(ctx, &mut reference_loading).await?;
    // In rule order, whatever order they finished in.
    let mut ran = 0;
    let mut alerts = Vec::new();
    for (r, result) in checked.iter().zip(results) {
        match result {
            Some(Ok(found)) => {
                ran += 1;
                alerts.extend(found);
            }
            Some(Err(reason)) => errors.push(RuleError {
                origin: r.origin.clone(),
                reason,
            }),
            None => {}
        }
    }
    for e in &errors {
        eprintln!("emrwatch: rule {} skipped: {}", e.origin, e.reason);
    }
    Ok((alerts, ran))
}

/// A rule's alerts, or why it did not run.
type RuleResult = std::result::Result<Vec<Alert>, String>;

/// Rules running, each with its index among the checked rules.
type Running = tokio::task::JoinSet<(usize, RuleResult)>;

/// Waits for every running rule and files its result under its index.
async fn finish(running: &mut Running, results: &mut [Option<RuleResult>]) -> Result<()> {
    while let Some(done) = running.join_next().await {
        let (i, result) = done.map_err(|e| Error::Input {
            input: "detect".into(),
            reason: format!("a rule's task failed: {e}"),
        })?;
        results[i] = Some(result);
    }
    Ok(())
}

/// The events rules with `lookback` read over `range`, in memory, when they
/// fit in `budget` bytes; `None` when they do not, and the rules read the store.
async fn cache_events(
    ctx: &SessionContext,
    all: &Events,
    columns: &HashMap<String, BTreeSet<String>>,
    range: Range,
    lookback: i64,
    budget: usize,
) -> Result<Option<Events>> {
    let t = Instant::now();
    match det::cache(ctx, all, range, lookback, columns, budget).await? {
        Some((events, bytes)) => {
            verbose(&format!(
                "events for a look-back of {}s read into memory: {} MiB in {:.2}s",
                lookback / 1_000_000,
                bytes >> 20,
                t.elapsed().as_secs_f64()
            ));
            Ok(Some(events))
        }
        None => {
            eprintln!(
                "emrwatch: the events for rules with a look-back of {} days take more than \
                 --memory-cache ({} MiB): each of those rules reads the store, which is slower \
                 (raise --memory-cache, or detect over a shorter --since/--until range)",
                lookback / 86_400_000_000,
                budget >> 20
            );
            Ok(None)
        }
    }
}

/// When the command started, for [`verbose`]'s clock.
static STARTED: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

/// Per-rule progress, on stderr only when asked (`EMRWATCH_VERBOSE=1`), with
/// the seconds since the command started (steps overlap: the clock shows
/// what waited on what). It names no patient.
fn verbose(s: &str) {
    if std::env::var_os("EMRWATCH_VERBOSE").is_some() {
        eprintln!("emrwatch: [{:5.2}s] {s}", STARTED.elapsed().as_secs_f64());
    }
}

/// Parses `YYYY-MM-DD` (UTC midnight) or RFC 3339.
fn parse_instant(flag: &str, s: &str) -> Result<i64> {
    let t = s.trim();
    let v = if t.len() == 10 {
        crate::ingest::timestamp::parse_rfc3339(&format!("{t}T00:00:00Z"))
    } else {
        crate::ingest::timestamp::parse_rfc3339(t)
    };
    v.ok_or_else(|| Error::Input {
        input: format!("{flag} {s}"),
        reason: "expected YYYY-MM-DD or an RFC 3339 time with a zone (2026-11-01T08:00:00Z)".into(),
    })
}

fn new_run_id() -> String {
    format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
        std::process::id()
    )
}

/// Prints the table (stderr when JSON goes to stdout) and writes `--out`.
fn deliver(args: &AlertOutArgs, alerts: &mut [Alert], suppressed: usize) -> Result<()> {
    det::rank(alerts);
    let table = sink::render_table(alerts, args.show);
    let json_to_stdout = args.out.as_deref() == Some("-");
    let heading = format!(
        "{} new alert{}{}\n",
        alerts.len(),
        if alerts.len() == 1 { "" } else { "s" },
        if suppressed > 0 {
            format!(" ({suppressed} already raised by an earlier run, not repeated)")
        } else {
            String::new()
        }
    );
    if json_to_stdout {
        eprint!(
            "{heading}{}",
            if alerts.is_empty() || args.show == 0 {
                ""
            } else {
                &table
            }
        );
        sink::write_jsonl(alerts, &mut std::io::stdout().lock())?;
    } else {
        let mut out = std::io::stdout().lock();
        write!(out, "{heading}")?;
        if !alerts.is_empty() && args.show > 0 {
            write!(out, "{table}")?;
        }
        if let Some(path) = &args.out {
            let mut f =
                std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| Error::Input {
                    input: path.clone(),
                    reason: format!("cannot create the alerts file: {e}"),
                })?);
            sink::write_jsonl(alerts, &mut f)?;
        }
    }
    Ok(())
}

/// `emrwatch detect`.
pub async fn run_detect(args: DetectArgs) -> Result<()> {
    let started = *STARTED;
    let range = Range {
        since: args
            .since
            .as_deref()
            .map(|s| parse_instant("--since", s))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|s| parse_instant("--until", s))
            .transpose()?,
    };
    let (rules, errors) = load_rules(&args.rules)?;
    let views = load_views(&args.rules)?;
    let dir = args.out.reference.clone();
    let care_called = rules
        .iter()
        .map(|r| &r.sql_template)
        .chain(views.iter().map(|v| &v.sql))
        .any(|sql| sql.contains("care_relationship"));
    let reference_loading = tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        let reference = load_reference(dir.as_deref())?;
        verbose(&format!(
            "reference tables read in {:.2}s",
            t.elapsed().as_secs_f64()
        ));
        if care_called && dir.is_some() {
            let t = Instant::now();
            // A failure is kept with the index and reported by the rules
            // that call the function, with their names.
            if reference.prepare_care().is_ok() {
                verbose(&format!(
                    "care_relationship's index built in {:.2}s",
                    t.elapsed().as_secs_f64()
                ));
            }
        }
        Ok(reference)
    });
    let store = Store::new(&args.store.store)?;
    let run_id = new_run_id();
    let detection = Detection {
        rules: &rules,
        views: &views,
        errors,
        range,
        run_id: &run_id,
        memory_cache_mib: args.memory_cache,
        reference_loading: Some(reference_loading),
    };
    let (mut new, suppressed, ran) = detect_new(&store, &Reference::empty(), detection).await?;
    let t = Instant::now();
    store_alerts(&store, &new, &run_id, "detect", &[]).await?;
    verbose(&format!(
        "alerts stored in {:.2}s",
        t.elapsed().as_secs_f64()
    ));
    let t = Instant::now();
    deliver(&args.out, &mut new, suppressed)?;
    verbose(&format!(
        "alerts delivered in {:.2}s",
        t.elapsed().as_secs_f64()
    ));
    eprintln!(
        "detect: {ran} of {} rules ran, {} new alerts, {suppressed} suppressed, in {:.2}s (run {run_id})",
        rules.len(),
        new.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs a detection over the store. Returns the alerts not already in its
/// `alerts` table, how many were (suppressed), and how many rules ran.
pub async fn detect_new(
    store: &Store,
    reference: &Reference,
    detection: Detection<'_>,
) -> Result<(Vec<Alert>, usize, usize)> {
    // One session: the store's tables registered their object store in its runtime.
    let ctx = crate::sql::session::open_with(store, crate::sql::session::rules_config()?).await?;
    reference.register(&ctx)?;
    let all = Events {
        access: ctx.table_provider(ACCESS_EVENTS).await?,
        system: ctx.table_provider(SYSTEM_EVENTS).await?,
    };
    let (found, ran) = run_rules_over(&ctx, &all, detection).await?;
    let t = Instant::now();
    // Alerts raised by earlier runs are not raised again.
    let known: HashSet<String> = ctx
        .sql("SELECT alert_id FROM alerts")
        .await?
        .collect()
        .await?
        .iter()
        .map(|b| arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8))
        .collect::<std::result::Result<Vec<_>, _>>()?
        .iter()
        .flat_map(|c| {
            c.as_string::<i32>()
                .iter()
                .flatten()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let total = found.len();
    let new: Vec<Alert> = found
        .into_iter()
        .filter(|a| !known.contains(&a.alert_id))
        .collect();
    let suppressed = total - new.len();
    verbose(&format!(
        "alerts of earlier runs read in {:.2}s",
        t.elapsed().as_secs_f64()
    ));
    Ok((new, suppressed, ran))
}

/// Appends `alerts` to the store's `alerts` table in one commit, recording
/// `txns` in it (which commits even when there is no alert).
pub async fn store_alerts(
    store: &Store,
    alerts: &[Alert],
    run_id: &str,
    command: &str,
    txns: &[(&str, i64)],
) -> Result<()> {
    if alerts.is_empty() && txns.is_empty() {
        return Ok(());
    }
    let mut w = store.writer("alerts", &schema::alerts()).await?;
    if !alerts.is_empty() {
        let batch = det::to_batch(alerts, chrono::Utc::now().timestamp_micros())?;
        w.write(&batch, schema::alerts::FIRST_TS).await?;
    }
    let meta = HashMap::from([
        ("emrwatch.run_id".to_string(), serde_json::json!(run_id)),
        ("emrwatch.command".to_string(), serde_json::json!(command)),
        (
            "emrwatch.alerts".to_string(),
            serde_json::json!(alerts.len()),
        ),
    ]);
    w.commit_with(meta, txns).await?;
    Ok(())
}

/// `emrwatch scan`.
pub async fn run_scan(args: ScanArgs) -> Result<()> {
    let started = *STARTED;
    let (rules, errors) = load_rules(&args.rules)?;
    let views = load_views(&args.rules)?;
    let reference = load_reference(args.out.reference.as_deref())?;
    let objects = source::resolve(&args.inputs).await?;
    let defaults = IngestOptions::default();
    let opts = IngestOptions {
        threads: args.threads.unwrap_or(defaults.threads).max(1),
        ..defaults
    };
    let n_objects = objects.len();
    let stream = decode_stream(objects, &opts);
    futures::pin_mut!(stream);
    let mut batches = Vec::new();
    let mut system = Vec::new();
    let (mut records, mut rejected) = (0u64, 0u64);
    let mut first_reject: HashMap<Arc<str>, String> = HashMap::new();
    while let Some(d) = stream.next().await {
        records += d.records;
        rejected += d.rejects.len() as u64;
        if let Some(r) = d.rejects.first() {
            first_reject.entry(r.source.clone()).or_insert_with(|| {
                if r.line == 0 {
                    r.reason.clone()
                } else {
                    format!(
                        "records rejected, the first at line {}: {}",
                        r.line, r.reason
                    )
                }
            });
        }
        if d.batch.num_rows() > 0 {
            let stored = crate::store::stored_batch(&d.batch, schema::TS)?;
            match d.table {
                Table::AccessEvents => batches.push(stored),
                Table::SystemEvents => system.push(stored),
            }
        }
    }
    for (src, why) in &first_reject {
        eprintln!("emrwatch: {src}: {why}");
    }
    let stored_schema = schema::stored(&schema::access_events());
    let table: Arc<dyn TableProvider> = Arc::new(MemTable::try_new(stored_schema, vec![batches])?);
    let ctx = rule_session(&reference).await?;
    let all = Events {
        access: table,
        system: Arc::new(MemTable::try_new(
            schema::stored(&schema::system_events()),
            vec![system],
        )?),
    };
    let run_id = new_run_id();
    let detection = Detection {
        rules: &rules,
        views: &views,
        errors,
        range: Range::default(),
        run_id: &run_id,
        // The events are in memory already.
        memory_cache_mib: 0,
        reference_loading: None,
    };
    let (mut found, ran) = run_rules_over(&ctx, &all, detection).await?;
    deliver(&args.out, &mut found, 0)?;
    eprintln!(
        "scan: {n_objects} objects, {records} records, {rejected} rejected; {ran} of {} rules ran, {} alerts, in {:.2}s",
        rules.len(),
        found.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
