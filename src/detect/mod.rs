//! Detection: run the rules of `queries/` over a time range and turn their
//! rows into alerts.
//!
//! ```text
//! rules ─check─▶ planned rules ─run_rule─▶ rows ─to_alerts─▶ alerts (ids, dedup) ─▶ sinks
//! ```
//!
//! [`check`] plans each rule once and verifies it returns the alert columns
//! (DESIGN.md) with usable types; a broken rule is reported by name and the
//! others still run. [`scope`] gives the rules that share a look-back the
//! events of the range plus that look-back, [`run_scoped`] runs one of them
//! and keeps the alerts that end inside the range.

pub mod partitioned;
pub mod rule;
pub mod sink;
pub mod vocabulary;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, ListBuilder, RecordBatch, StringArray,
    StringBuilder, TimestampMicrosecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Field, Float64Type, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::MemTable;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::logical_expr::cast as cast_expr;
use datafusion::optimizer::optimize_projections::OptimizeProjections;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::display::DisplayableExecutionPlan;
use datafusion::physical_plan::metrics::Time;
use datafusion::physical_plan::repartition::BatchPartitioner;
use datafusion::physical_plan::{ExecutionPlan, Partitioning};
use datafusion::prelude::{DataFrame, Expr, SessionContext, col, lit};
use datafusion::scalar::ScalarValue;
use futures::StreamExt;

use self::partitioned::HashPartitioned;
use self::rule::{Rule, View};
use crate::schema::{self, alerts as a};

/// The time range a detect run looks at (UTC µs, `until` exclusive).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Range {
    /// First instant, or everything before `until`.
    pub since: Option<i64>,
    /// End (exclusive), or everything after `since`.
    pub until: Option<i64>,
}

/// One alert, as the sinks and the store see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Stable hash of rule, actor and day of the first event.
    pub alert_id: String,
    /// The run that raised it.
    pub run_id: String,
    /// Rule id.
    pub rule_id: String,
    /// Scenario.
    pub scenario: String,
    /// Severity.
    pub severity: rule::Severity,
    /// Acting account.
    pub user_id: Option<String>,
    /// Acting host.
    pub host: Option<String>,
    /// Acting source address.
    pub src_ip: Option<String>,
    /// Patients concerned.
    pub patient_ids: Vec<String>,
    /// First event, UTC µs.
    pub first_us: i64,
    /// Last event, UTC µs.
    pub last_us: i64,
    /// Events behind the alert.
    pub event_count: i64,
    /// Higher is worse.
    pub score: f64,
    /// One sentence to act on.
    pub summary: String,
}

impl Alert {
    /// The actor: the account, else the host, else the source address.
    pub fn actor(&self) -> &str {
        self.user_id
            .as_deref()
            .or(self.host.as_deref())
            .or(self.src_ip.as_deref())
            .unwrap_or("")
    }

    /// What the alert id hashes as the actor: the account, host and source
    /// address that are set, so that two addresses attacking one host are two
    /// alerts. An alert with only an account hashes as [`Alert::actor`] did
    /// before host rules existed, which keeps stored access alerts' ids.
    pub fn actor_key(&self) -> String {
        [&self.user_id, &self.host, &self.src_ip]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\u{1f}")
    }
}

/// What a rule's result column must be, and how to read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Text,
    Texts,
    Time,
    Int,
    Float,
}

/// The columns every rule returns (DESIGN.md) and what each must hold.
const RESULT_COLUMNS: &[(&str, Want)] = &[
    (a::USER_ID, Want::Text),
    (a::HOST, Want::Text),
    (a::SRC_IP, Want::Text),
    (a::PATIENT_IDS, Want::Texts),
    (a::FIRST_TS, Want::Time),
    (a::LAST_TS, Want::Time),
    (a::EVENT_COUNT, Want::Int),
    (a::SCORE, Want::Float),
    (a::SUMMARY, Want::Text),
];

fn is_text(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => true,
        DataType::Dictionary(_, v) => is_text(v),
        _ => false,
    }
}

fn fits(want: Want, t: &DataType) -> bool {
    match want {
        Want::Text => is_text(t),
        Want::Texts => match t {
            DataType::Null => true,
            DataType::List(f) | DataType::LargeList(f) => is_text(f.data_type()),
            _ => false,
        },
        Want::Time => matches!(t, DataType::Timestamp(_, _)),
        Want::Int => t.is_integer(),
        Want::Float => t.is_numeric(),
    }
}

fn want_name(want: Want) -> &'static str {
    match want {
        Want::Text => "text (Utf8)",
        Want::Texts => "a list of text (array_agg(patient_id))",
        Want::Time => "a timestamp",
        Want::Int => "an integer",
        Want::Float => "a number",
    }
}

/// Registers the shared views over whatever `access_events` is now (a view
/// keeps the tables it was planned with, so they are planned again after
/// every change of scope). A view marked `materialize` that two or more of
/// `rules` read is computed here, once, and registered as its result.
pub async fn register_views(
    ctx: &SessionContext,
    views: &[View],
    rules: &[&Rule],
) -> Result<(), String> {
    for v in views {
        let err = |e: datafusion::error::DataFusionError| format!("view {}: {e}", v.name);
        let df = ctx.sql(&v.sql).await.map_err(err)?;
        let table: Arc<dyn TableProvider> =
            if v.materialize && rules.iter().filter(|r| v.used_by(r)).count() >= 2 {
                let schema = Arc::new(df.schema().as_arrow().clone());
                let task = Arc::new(df.task_ctx());
                let plan = df.create_physical_plan().await.map_err(err)?;
                let parts = datafusion::physical_plan::collect_partitioned(plan.clone(), task)
                    .await
                    .map_err(err)?;
                show_plan(&format!("view {}", v.name), &plan);
                let mem = MemTable::try_new(schema, parts).map_err(err)?;
                HashPartitioned::of_plan_output(mem, plan.as_ref())
            } else {
                df.into_view()
            };
        ctx.deregister_table(v.name.as_str()).map_err(err)?;
        ctx.register_table(v.name.as_str(), table).map_err(err)?;
    }
    Ok(())
}

/// With `EMRWATCH_PLANS` set, prints the plan `what` ran, with each
/// operator's time and rows, for whoever tunes a rule; plans name tables and
/// columns, never a value.
fn show_plan(what: &str, plan: &Arc<dyn ExecutionPlan>) {
    if std::env::var_os("EMRWATCH_PLANS").is_some() {
        let shown = DisplayableExecutionPlan::with_metrics(plan.as_ref()).indent(false);
        eprintln!("emrwatch: {what} ran this plan:\n{shown}");
    }
}

/// Every stored event the rules may read, before a range narrows them.
#[derive(Clone)]
pub struct Events {
    /// `access_events`.
    pub access: Arc<dyn TableProvider>,
    /// `system_events`.
    pub system: Arc<dyn TableProvider>,
}

impl Events {
    /// Registers both tables, whole, under their names.
    pub fn register(&self, ctx: &SessionContext) -> datafusion::error::Result<()> {
        for (name, table) in self.tables() {
            ctx.deregister_table(name)?;
            ctx.register_table(name, table.clone())?;
        }
        Ok(())
    }

    fn tables(&self) -> [(&'static str, &Arc<dyn TableProvider>); 2] {
        [
            (crate::store::ACCESS_EVENTS, &self.access),
            (crate::store::SYSTEM_EVENTS, &self.system),
        ]
    }
}

/// Registers `access_events` and `system_events` as the events that rules
/// with `lookback_us` may read in `range`, over `all` (every stored event),
/// and the views over them for `rules` (the rules about to run in this scope).
pub async fn scope(
    ctx: &SessionContext,
    all: &Events,
    views: &[View],
    range: Range,
    lookback_us: i64,
    rules: &[&Rule],
) -> Result<(), String> {
    scope_events(ctx, all, range, lookback_us).map_err(|e| e.to_string())?;
    register_views(ctx, views, rules).await
}

fn scope_events(
    ctx: &SessionContext,
    all: &Events,
    range: Range,
    lookback_us: i64,
) -> datafusion::error::Result<()> {
    for (name, table) in all.tables() {
        let df = in_scope(ctx, table, range, lookback_us)?;
        ctx.deregister_table(name)?;
        ctx.register_table(name, df.into_view())?;
    }
    Ok(())
}

/// The rows of `table` that rules with `lookback_us` may read in `range`.
fn in_scope(
    ctx: &SessionContext,
    table: &Arc<dyn TableProvider>,
    range: Range,
    lookback_us: i64,
) -> datafusion::error::Result<DataFrame> {
    let ts = |v: i64| {
        lit(ScalarValue::TimestampMicrosecond(
            Some(v),
            Some("UTC".into()),
        ))
    };
    let mut df = ctx.read_table(table.clone())?;
    if let Some(s) = range.since {
        df = df.filter(col(schema::TS).gt_eq(ts(s.saturating_sub(lookback_us))))?;
    }
    if let Some(u) = range.until {
        df = df.filter(col(schema::TS).lt(ts(u)))?;
    }
    Ok(df)
}

/// The columns of each table that `rules` and `views` read, as their plans
/// say. Call it with the whole tables registered, as [`check`] is. Every
/// view counts: [`scope`] plans them all over the events it registers.
///
/// Only the optimiser's projection pruning runs: the whole optimiser took
/// 0.45-0.53 s for the built-in rules (each snooping rule's plan holds the
/// `unexplained_access` view's joins), this 0.16-0.17 s (timed around the
/// call in a detect of the bench store with no events in range). It may
/// keep a column the whole optimiser would simplify away, never drop one a
/// plan reads.
pub async fn columns_read(
    ctx: &SessionContext,
    rules: &[&Rule],
    views: &[View],
) -> Result<HashMap<String, BTreeSet<String>>, String> {
    let pruner = SessionStateBuilder::new_from_existing(ctx.state())
        .with_optimizer_rules(vec![Arc::new(OptimizeProjections::new())])
        .build();
    let mut queries = Vec::new();
    for r in rules {
        queries.push((format!("rule {}", r.id), r.sql()?));
    }
    for v in views {
        queries.push((format!("view {}", v.name), v.sql.clone()));
    }
    let mut read: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (what, sql) in queries {
        let plan = ctx
            .sql(&sql)
            .await
            .and_then(|df| pruner.optimize(df.logical_plan()))
            .map_err(|e| format!("{what}: {e}"))?;
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                let cols = read.entry(scan.table_name.table().to_string()).or_default();
                cols.extend(
                    scan.projected_schema
                        .fields()
                        .iter()
                        .map(|f| f.name().clone()),
                );
                for f in &scan.filters {
                    cols.extend(f.column_refs().into_iter().map(|c| c.name.clone()));
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .map_err(|e| format!("{what}: {e}"))?;
    }
    Ok(read)
}

/// How many MiB of events [`cache`] may hold unless told otherwise.
/// The built-in rules keep about 100 bytes per event, so this holds some
/// 20 million events.
pub const DEFAULT_MEMORY_CACHE_MIB: usize = 2048;

/// The events rules with `lookback_us` read in `range`, only the `columns`
/// the rules read, decoded once into memory when they fit in `budget` bytes
/// (with how many they take; `None` when they do not, and reading stops
/// there). The rules of the scope then read memory instead of each decoding
/// the store's Parquet again.
///
/// The access events are split by user into the session's
/// `target_partitions`, and the table says so ([`partitioned`]): groupings
/// by user, most of detection, then take one pass per partition.
///
/// Text is held as Utf8View: an id of 12 bytes or fewer lives in its
/// 16-byte view, and the joins and groupings on ids, which are most of
/// detection's work, compare and hash views instead of following offsets
/// (detect on 10 million events, alternating: 14.3/12.7/11.4 s to
/// 11.7/10.4/10.9 s; the cache grows from 765 to 996 MiB).
pub async fn cache(
    ctx: &SessionContext,
    all: &Events,
    range: Range,
    lookback_us: i64,
    columns: &HashMap<String, BTreeSet<String>>,
    budget: usize,
) -> datafusion::error::Result<Option<(Events, usize)>> {
    let used = Arc::new(AtomicUsize::new(0));
    let partitions = ctx.state().config().target_partitions();
    let mut tables = Vec::new();
    for (name, table) in all.tables() {
        let df = in_scope(ctx, table, range, lookback_us)?;
        let wanted = columns.get(name);
        let keep: Vec<Expr> = df
            .schema()
            .fields()
            .iter()
            .filter(|f| f.name() == schema::TS || wanted.is_some_and(|w| w.contains(f.name())))
            .map(|f| {
                if f.data_type() == &DataType::Utf8 {
                    cast_expr(col(f.name()), DataType::Utf8View).alias(f.name())
                } else {
                    col(f.name())
                }
            })
            .collect();
        let df = df.select(keep)?;
        let read = df.schema().as_arrow().clone();
        // The columns held as dictionaries (vocabulary.rs), by index.
        let encoded: Vec<usize> = vocabulary::COLUMNS
            .iter()
            .filter_map(|c| read.index_of(c).ok())
            .collect();
        let fields: Vec<Field> = read
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| match encoded.contains(&i) {
                true => f.as_ref().clone().with_data_type(vocabulary::data_type()),
                false => f.as_ref().clone(),
            })
            .collect();
        let arrow_schema = Arc::new(Schema::new_with_metadata(fields, read.metadata().clone()));
        // The access events are split by user as DataFusion's own
        // repartitioning would hash them, so the table can say so
        // (`partitioned`) and the groupings by user need no second pass.
        let by_user = (name == crate::store::ACCESS_EVENTS)
            .then(|| arrow_schema.index_of(schema::USER_ID).ok())
            .flatten()
            .map(|i| {
                let key: Arc<dyn PhysicalExpr> = Arc::new(Column::new(schema::USER_ID, i));
                Partitioning::Hash(vec![key], partitions)
            });
        let streams = df.execute_stream_partitioned().await?;
        let n = streams.len();
        let outputs = if by_user.is_some() { partitions } else { n };
        let mut tasks = tokio::task::JoinSet::new();
        for (i, mut stream) in streams.into_iter().enumerate() {
            let used = used.clone();
            let (schema, encoded) = (arrow_schema.clone(), encoded.clone());
            let mut split = by_user
                .clone()
                .map(|p| BatchPartitioner::try_new(p, Time::new(), i, n))
                .transpose()?;
            // One task per partition, as `collect_partitioned` does: the
            // decoding runs in whoever polls the stream.
            tasks.spawn(async move {
                let mut out = Vec::new();
                while let Some(b) = stream.next().await {
                    let b = encode_vocabulary(b?, &schema, &encoded)?;
                    let mut keep = |o: usize, b: RecordBatch| -> datafusion::error::Result<bool> {
                        let b = compact_views(b)?;
                        let size = held_bytes(&b);
                        out.push((o, b));
                        Ok(used.fetch_add(size, Ordering::Relaxed) + size <= budget)
                    };
                    let fits = match split.as_mut() {
                        None => keep(i, b)?,
                        Some(split) => {
                            let mut fits = true;
                            split.partition(b, |o, b| {
                                fits &= keep(o, b)?;
                                Ok(())
                            })?;
                            fits
                        }
                    };
                    if !fits {
                        return Ok(None);
                    }
                }
                Ok::<_, datafusion::error::DataFusionError>(Some(out))
            });
        }
        let mut parts = vec![Vec::new(); outputs];
        while let Some(done) = tasks.join_next().await {
            let out =
                done.map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))??;
            match out {
                Some(out) => out.into_iter().for_each(|(o, b)| parts[o].push(b)),
                None => return Ok(None),
            }
        }
        let mem = MemTable::try_new(arrow_schema, parts)?;
        let t: Arc<dyn TableProvider> = match by_user {
            Some(_) => Arc::new(HashPartitioned::new(mem, vec![schema::USER_ID.into()])),
            None => Arc::new(mem),
        };
        tables.push(t);
    }
    let [access, system] = <[_; 2]>::try_from(tables).expect("two tables");
    Ok(Some((
        Events { access, system },
        used.load(Ordering::Relaxed),
    )))
}

/// `b` with its `encoded` columns as dictionaries, in `schema`.
fn encode_vocabulary(
    b: RecordBatch,
    schema: &SchemaRef,
    encoded: &[usize],
) -> datafusion::error::Result<RecordBatch> {
    let mut columns = b.columns().to_vec();
    for &i in encoded {
        columns[i] = vocabulary::encode(&columns[i])?;
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// The bytes `b`'s rows hold: a batch split by user is slices of one
/// batch, and each slice's own size would count the buffers they share.
fn held_bytes(b: &RecordBatch) -> usize {
    b.columns()
        .iter()
        .map(|c| match c.as_string_view_opt() {
            Some(v) => {
                v.len() * 16 + buffer_bytes(v) + v.nulls().map_or(0, |n| n.len().div_ceil(8))
            }
            None => c
                .to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size()),
        })
        .sum()
}

/// The bytes of the buffers behind `v`'s views.
fn buffer_bytes(v: &arrow::array::StringViewArray) -> usize {
    v.data_buffers().iter().map(|d| d.len()).sum()
}

/// `b` with each text column whose buffers outweigh its views holding the
/// values that fit in a view (12 bytes or fewer: ids) in the view alone: a
/// batch split by user, or cast from Utf8, keeps the whole value buffer
/// alive behind the views.
fn compact_views(b: RecordBatch) -> datafusion::error::Result<RecordBatch> {
    let columns = b
        .columns()
        .iter()
        .map(|c| match c.as_string_view_opt() {
            // Buffers no larger than the views (a Parquet dictionary page's
            // values, shared by the batches of a row group) are kept:
            // compacting copied every view of every batch, 1.4 % of a detect
            // run's CPU.
            Some(v) if buffer_bytes(v) > v.len() * 16 => Arc::new(v.gc()) as ArrayRef,
            _ => c.clone(),
        })
        .collect();
    Ok(RecordBatch::try_new(b.schema(), columns)?)
}

/// Plans `rule` and checks its result columns; the error says what to fix.
pub async fn check(ctx: &SessionContext, rule: &Rule) -> Result<(), String> {
    let sql = rule.sql()?;
    let df = ctx.sql(&sql).await.map_err(|e| format!("SQL: {e}"))?;
    let schema = df.schema();
    for (name, want) in RESULT_COLUMNS {
        let Ok(field) = schema.field_with_unqualified_name(name) else {
            return Err(format!(
                "returns no `{name}` column (every rule returns user_id, host, src_ip, \
                 patient_ids, first_ts, last_ts, event_count, score, summary)"
            ));
        };
        if !fits(*want, field.data_type()) {
            return Err(format!(
                "column `{name}` is {}, expected {}",
                field.data_type(),
                want_name(*want)
            ));
        }
    }
    if let Ok(field) = schema.field_with_unqualified_name(a::SEVERITY)
        && !is_text(field.data_type())
    {
        return Err(format!(
            "column `severity` is {}, expected text (low, medium, high or critical; \
             it overrides the header's severity for its row)",
            field.data_type()
        ));
    }
    Ok(())
}

/// Runs a checked rule over `range` and returns its alerts, ending in the range.
pub async fn run_rule(
    ctx: &SessionContext,
    all: &Events,
    views: &[View],
    rule: &Rule,
    range: Range,
    run_id: &str,
) -> Result<Vec<Alert>, String> {
    scope(ctx, all, views, range, rule.lookback_us, &[rule]).await?;
    run_scoped(ctx, rule, range, run_id).await
}

/// Runs a checked rule in the scope [`scope`] registered for its look-back.
pub async fn run_scoped(
    ctx: &SessionContext,
    rule: &Rule,
    range: Range,
    run_id: &str,
) -> Result<Vec<Alert>, String> {
    let df = plan_scoped(ctx, rule, false).await?;
    collect_alerts(df, rule, range, run_id).await
}

/// Plans a checked rule over the tables and views registered now; the plan
/// keeps them, so it may run after the session moves to another scope.
/// `side_by_side`: other rules run beside this one, one per core. Its plan
/// then keeps the events in the partitions they were read in rather than
/// hashing every event into the session's partitions again for each
/// grouping and join: the cores are busy with the other rules, and the
/// repartitioning and the partial and final aggregates cost CPU of their own
/// (detect on 10 million events, alternating: 4.43 s median of seven runs to
/// 4.29 s, user time 6.6-6.8 s to 6.1-6.4 s).
pub async fn plan_scoped(
    ctx: &SessionContext,
    rule: &Rule,
    side_by_side: bool,
) -> Result<DataFrame, String> {
    let sql = rule.sql()?;
    let mut state = ctx.state();
    if side_by_side {
        state.config_mut().options_mut().execution.target_partitions = 1;
    }
    let plan = state
        .create_logical_plan(&sql)
        .await
        .map_err(|e| format!("SQL: {e}"))?;
    Ok(DataFrame::new(state, plan))
}

/// Runs a rule's plan ([`plan_scoped`]) and returns its alerts, ending in the range.
pub async fn collect_alerts(
    df: DataFrame,
    rule: &Rule,
    range: Range,
    run_id: &str,
) -> Result<Vec<Alert>, String> {
    let batches = if std::env::var_os("EMRWATCH_PLANS").is_some() {
        let task = df.task_ctx();
        let plan = df
            .create_physical_plan()
            .await
            .map_err(|e| format!("planning: {e}"))?;
        let batches = datafusion::physical_plan::collect(plan.clone(), Arc::new(task))
            .await
            .map_err(|e| format!("running: {e}"))?;
        show_plan(&format!("rule {}", rule.id), &plan);
        batches
    } else {
        df.collect().await.map_err(|e| format!("running: {e}"))?
    };
    let mut out = Vec::new();
    for b in &batches {
        out.extend(to_alerts(b, rule, run_id).map_err(|e| e.to_string())?);
    }
    out.retain(|al| range.since.is_none_or(|s| al.last_us >= s));
    Ok(dedup(out))
}

/// Keeps one alert per id (a rule's rows for one actor on one day): the
/// summary and score of the worst row, the window, patients and event count
/// of all of them. Among rows of equal score the earliest, then the first
/// summary in byte order, speaks: rows arrive in no fixed order, and a rerun
/// must say the same thing.
pub fn dedup(alerts: Vec<Alert>) -> Vec<Alert> {
    let mut by_id: HashMap<String, Alert> = HashMap::new();
    let mut order = Vec::new();
    for al in alerts {
        match by_id.get_mut(&al.alert_id) {
            Some(kept) => {
                let first_us = kept.first_us.min(al.first_us);
                let last_us = kept.last_us.max(al.last_us);
                let event_count = kept.event_count + al.event_count;
                let mut patient_ids = std::mem::take(&mut kept.patient_ids);
                patient_ids.extend(al.patient_ids.iter().cloned());
                patient_ids.sort();
                patient_ids.dedup();
                let worse = al
                    .score
                    .total_cmp(&kept.score)
                    .then_with(|| (kept.first_us, &kept.summary).cmp(&(al.first_us, &al.summary)));
                let severity = kept.severity.max(al.severity);
                if worse.is_gt() {
                    *kept = al;
                }
                kept.severity = severity;
                kept.first_us = first_us;
                kept.last_us = last_us;
                kept.event_count = event_count;
                kept.patient_ids = patient_ids;
            }
            None => {
                order.push(al.alert_id.clone());
                by_id.insert(al.alert_id.clone(), al);
            }
        }
    }
    order
        .into_iter()
        .filter_map(|id| by_id.remove(&id))
        .collect()
}

/// FNV-1a, 64 bits: stable across builds and platforms (unlike std's hasher).
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The alert id: rule, actor and the UTC day of the first event.
pub fn alert_id(rule_id: &str, actor: &str, first_us: i64) -> String {
    let day = first_us.div_euclid(86_400_000_000).to_string();
    format!("{:016x}", fnv1a(&[rule_id, actor, &day]))
}

fn column<'b>(b: &'b RecordBatch, name: &str) -> Option<&'b ArrayRef> {
    b.schema().index_of(name).ok().map(|i| b.column(i))
}

fn texts(b: &RecordBatch, name: &str) -> arrow::error::Result<Vec<Option<String>>> {
    let Some(c) = column(b, name) else {
        return Ok(vec![None; b.num_rows()]);
    };
    let s = cast(c, &DataType::Utf8)?;
    Ok(s.as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect())
}

fn times(b: &RecordBatch, name: &str) -> arrow::error::Result<TimestampMicrosecondArray> {
    let c = column(b, name)
        .ok_or_else(|| arrow::error::ArrowError::SchemaError(format!("no {name} column")))?;
    Ok(cast(c, &DataType::Timestamp(TimeUnit::Microsecond, None))?
        .as_primitive::<TimestampMicrosecondType>()
        .clone())
}

/// Rows of a rule's result → alerts (rule metadata, id and run added).
fn to_alerts(b: &RecordBatch, rule: &Rule, run_id: &str) -> arrow::error::Result<Vec<Alert>> {
    let n = b.num_rows();
    let user = texts(b, a::USER_ID)?;
    let host = texts(b, a::HOST)?;
    let ip = texts(b, a::SRC_IP)?;
    let summary = texts(b, a::SUMMARY)?;
    // An optional `severity` column grades rows of one rule differently (a
    // brute force that got in is worse than one that did not); null keeps the
    // header's.
    let severity = texts(b, a::SEVERITY)?
        .into_iter()
        .map(|v| match v {
            None => Ok(rule.severity),
            Some(v) => v.parse::<rule::Severity>().map_err(|()| {
                arrow::error::ArrowError::InvalidArgumentError(format!(
                    "severity `{v}`: expected low, medium, high or critical"
                ))
            }),
        })
        .collect::<arrow::error::Result<Vec<_>>>()?;
    let first = times(b, a::FIRST_TS)?;
    let last = times(b, a::LAST_TS)?;
    let count = match column(b, a::EVENT_COUNT) {
        Some(c) => cast(c, &DataType::Int64)?
            .as_primitive::<Int64Type>()
            .clone(),
        None => Int64Array::from(vec![0; n]),
    };
    let score = match column(b, a::SCORE) {
        Some(c) => cast(c, &DataType::Float64)?
            .as_primitive::<Float64Type>()
            .clone(),
        None => Float64Array::from(vec![0.0; n]),
    };
    let patients: Vec<Vec<String>> = match column(b, a::PATIENT_IDS) {
        Some(c) if c.data_type() != &DataType::Null => {
            let l = cast(c, &schema::utf8_list())?;
            let l = l.as_list::<i32>();
            (0..n)
                .map(|i| {
                    if l.is_null(i) {
                        return Vec::new();
                    }
                    let mut v: Vec<String> = l
                        .value(i)
                        .as_string::<i32>()
                        .iter()
                        .flatten()
                        .map(str::to_string)
                        .collect();
                    v.sort();
                    v.dedup();
                    v
                })
                .collect()
        }
        _ => vec![Vec::new(); n],
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        if first.is_null(i) || last.is_null(i) {
            continue;
        }
        let mut al = Alert {
            alert_id: String::new(),
            run_id: run_id.to_string(),
            rule_id: rule.id.clone(),
            scenario: rule.scenario.clone(),
            severity: severity[i],
            user_id: user[i].clone(),
            host: host[i].clone(),
            src_ip: ip[i].clone(),
            patient_ids: patients[i].clone(),
            first_us: first.value(i),
            last_us: last.value(i),
            event_count: if count.is_null(i) { 0 } else { count.value(i) },
            score: if score.is_null(i) {
                0.0
            } else {
                score.value(i)
            },
            summary: summary[i].clone().unwrap_or_default(),
        };
        al.alert_id = alert_id(&al.rule_id, &al.actor_key(), al.first_us);
        out.push(al);
    }
    Ok(out)
}

/// Alerts as a batch of [`schema::alerts`], detected at `now_us`.
pub fn to_batch(alerts: &[Alert], now_us: i64) -> arrow::error::Result<RecordBatch> {
    let s = |f: &dyn Fn(&Alert) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(alerts.iter().map(f)))
    };
    let o = |f: &dyn Fn(&Alert) -> Option<String>| -> ArrayRef {
        Arc::new(alerts.iter().map(f).collect::<StringArray>())
    };
    let t = |f: &dyn Fn(&Alert) -> i64| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(alerts.iter().map(f)).with_timezone("UTC"),
        )
    };
    let mut patients = ListBuilder::new(StringBuilder::new());
    for al in alerts {
        for p in &al.patient_ids {
            patients.values().append_value(p);
        }
        patients.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        s(&|x| x.alert_id.clone()),
        s(&|x| x.run_id.clone()),
        s(&|x| x.rule_id.clone()),
        s(&|x| x.scenario.clone()),
        s(&|x| x.severity.as_str().to_string()),
        o(&|x| x.user_id.clone()),
        o(&|x| x.host.clone()),
        o(&|x| x.src_ip.clone()),
        Arc::new(patients.finish()),
        t(&|x| x.first_us),
        t(&|x| x.last_us),
        Arc::new(Int64Array::from_iter_values(
            alerts.iter().map(|x| x.event_count),
        )),
        Arc::new(Float64Array::from_iter_values(
            alerts.iter().map(|x| x.score),
        )),
        s(&|x| x.summary.clone()),
        t(&|_| now_us),
    ];
    // The list field of `patients.finish()` is named "item" and nullable, as utf8_list().
    RecordBatch::try_new(schema::alerts(), columns)
}

/// Alerts read back from rows of the `alerts` table (columns by name).
pub fn from_batch(b: &RecordBatch) -> Result<Vec<Alert>, String> {
    let text = |name: &str| -> Result<Vec<Option<String>>, String> {
        let c = b
            .column_by_name(name)
            .ok_or_else(|| format!("no column {name}"))?;
        let c = cast(c, &DataType::Utf8).map_err(|e| e.to_string())?;
        Ok(c.as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect())
    };
    let time = |name: &str| -> Result<Vec<i64>, String> {
        let c = b
            .column_by_name(name)
            .ok_or_else(|| format!("no column {name}"))?;
        Ok(c.as_primitive::<TimestampMicrosecondType>()
            .values()
            .to_vec())
    };
    let (ids, runs, rules, scenarios, severities) = (
        text("alert_id")?,
        text("run_id")?,
        text("rule_id")?,
        text("scenario")?,
        text("severity")?,
    );
    let (users, hosts, ips, summaries) = (
        text("user_id")?,
        text("host")?,
        text("src_ip")?,
        text("summary")?,
    );
    let (first, last) = (time("first_ts")?, time("last_ts")?);
    let count = b
        .column_by_name("event_count")
        .ok_or("no column event_count")?
        .as_primitive::<Int64Type>()
        .clone();
    let score = b
        .column_by_name("score")
        .ok_or("no column score")?
        .as_primitive::<Float64Type>()
        .clone();
    let patients = b
        .column_by_name("patient_ids")
        .ok_or("no column patient_ids")?
        .as_list::<i32>()
        .clone();
    let mut out = Vec::with_capacity(b.num_rows());
    for i in 0..b.num_rows() {
        let pids = patients.value(i);
        let pids = cast(&pids, &DataType::Utf8).map_err(|e| e.to_string())?;
        out.push(Alert {
            alert_id: ids[i].clone().unwrap_or_default(),
            run_id: runs[i].clone().unwrap_or_default(),
            rule_id: rules[i].clone().unwrap_or_default(),
            scenario: scenarios[i].clone().unwrap_or_default(),
            severity: severities[i]
                .as_deref()
                .and_then(|s| s.parse().ok())
                .unwrap_or(rule::Severity::Medium),
            user_id: users[i].clone(),
            host: hosts[i].clone(),
            src_ip: ips[i].clone(),
            patient_ids: pids
                .as_string::<i32>()
                .iter()
                .flatten()
                .map(str::to_string)
                .collect(),
            first_us: first[i],
            last_us: last[i],
            event_count: count.value(i),
            score: score.value(i),
            summary: summaries[i].clone().unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Orders alerts worst first: severity, then score, then time.
pub fn rank(alerts: &mut [Alert]) {
    alerts.sort_by(|x, y| {
        y.severity
            .cmp(&x.severity)
            .then(y.score.total_cmp(&x.score))
            .then(x.first_us.cmp(&y.first_us))
            .then(x.alert_id.cmp(&y.alert_id))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An alert of rule `r` on `u1` about `patient`.
    fn al(patient: &str, score: f64, first_us: i64) -> Alert {
        Alert {
            alert_id: alert_id("r", "u1", first_us),
            run_id: "run".into(),
            rule_id: "r".into(),
            scenario: "s".into(),
            severity: rule::Severity::High,
            user_id: Some("u1".into()),
            host: None,
            src_ip: None,
            patient_ids: vec![patient.into()],
            first_us,
            last_us: first_us + 10,
            event_count: 2,
            score,
            summary: format!("about {patient}"),
        }
    }

    #[test]
    fn dedup_keeps_every_patient_and_the_worst_summary() {
        let out = dedup(vec![
            al("p1", 1.0, 100),
            al("p2", 5.0, 50),
            al("p3", 1.0, 86_400_000_000),
        ]);
        assert_eq!(out.len(), 2, "the third is another day");
        assert_eq!(out[0].patient_ids, vec!["p1", "p2"]);
        assert_eq!(out[0].summary, "about p2");
        assert_eq!(
            (out[0].first_us, out[0].last_us, out[0].event_count),
            (50, 110, 4)
        );
        // Equal scores: the earliest row speaks, then the first summary,
        // whatever order the rows came in.
        for rows in [
            vec![al("p5", 1.0, 70), al("p4", 1.0, 60), al("p6", 1.0, 60)],
            vec![al("p6", 1.0, 60), al("p5", 1.0, 70), al("p4", 1.0, 60)],
        ] {
            assert_eq!(dedup(rows)[0].summary, "about p4");
        }
    }

    #[tokio::test]
    async fn a_rule_beside_others_is_not_repartitioned() {
        let config = datafusion::prelude::SessionConfig::new().with_target_partitions(2);
        let ctx = SessionContext::new_with_config(config);
        ctx.sql(
            "CREATE TABLE access_events AS SELECT 'u' || CAST(v % 7 AS VARCHAR) AS user_id, \
             v AS n FROM generate_series(1, 1000) AS t(v)",
        )
        .await
        .unwrap();
        let rule = Rule::parse(
            "t.sql",
            "-- id: t\n-- title: T\n-- severity: high\n-- scenario: s\n\
             -- description: d\n-- lookback: 0\n\
             SELECT user_id, count(*) AS n FROM access_events GROUP BY user_id\n",
        )
        .unwrap();
        let plan = |side_by_side| {
            let (ctx, rule) = (&ctx, &rule);
            async move {
                let df = plan_scoped(ctx, rule, side_by_side).await.unwrap();
                let plan = df.create_physical_plan().await.unwrap();
                datafusion::physical_plan::displayable(plan.as_ref())
                    .indent(false)
                    .to_string()
            }
        };
        let alone = plan(false).await;
        assert!(
            alone.contains("RepartitionExec: partitioning=Hash"),
            "{alone}"
        );
        let beside = plan(true).await;
        assert!(
            !beside.contains("RepartitionExec: partitioning=Hash"),
            "{beside}"
        );
    }

    /// Rules may list a patient once per event (`array_agg` without
    /// DISTINCT, which DataFusion aggregates far faster): the alert lists each
    /// patient once, in order.
    #[tokio::test]
    async fn an_alert_lists_each_patient_once_in_order() {
        let ctx = SessionContext::new();
        let batch = ctx
            .sql(
                "SELECT 'u1' AS user_id, CAST(NULL AS VARCHAR) AS host, \
                 CAST(NULL AS VARCHAR) AS src_ip, \
                 make_array('p2', 'p1', NULL, 'p2', 'p1') AS patient_ids, \
                 TIMESTAMP '2026-11-02T10:00:00' AS first_ts, \
                 TIMESTAMP '2026-11-02T11:00:00' AS last_ts, 5 AS event_count, \
                 1.0 AS score, 'why' AS summary",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let rule = Rule::parse(
            "t.sql",
            "-- id: t\n-- title: T\n-- severity: high\n-- scenario: s\n\
             -- description: d\n-- lookback: 0\nSELECT 1\n",
        )
        .unwrap();
        let alerts = to_alerts(&batch[0], &rule, "run").unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].patient_ids, vec!["p1", "p2"]);
    }

    #[test]
    fn the_alert_id_tells_actors_apart_by_every_field_set() {
        let mut a = al("p1", 1.0, 0);
        let only_user = alert_id("r", &a.actor_key(), a.first_us);
        assert_eq!(
            only_user,
            alert_id("r", "u1", a.first_us),
            "ids of stored alerts keep"
        );
        a.user_id = None;
        a.host = Some("jump01".into());
        a.src_ip = Some("192.0.2.7".into());
        let mut b = a.clone();
        b.src_ip = Some("192.0.2.8".into());
        assert_ne!(a.actor_key(), b.actor_key(), "two addresses at one host");
        assert_eq!(a.actor(), b.actor());
    }

    #[test]
    fn compacted_views_keep_every_value_and_only_the_long_ones_bytes() {
        let long = "a value longer than twelve bytes";
        // Four rows of a thousand, as a split batch is: the cast's buffer
        // holds all thousand values.
        let mut values = vec![Some("u0412"), None, Some(long), Some("MRN0384289")];
        values.extend(std::iter::repeat_n(Some("MRN0000001"), 996));
        let text: ArrayRef = Arc::new(arrow::array::StringArray::from(values));
        let views = cast(&text, &DataType::Utf8View).unwrap().slice(0, 4);
        let b = RecordBatch::try_from_iter([("t", views)]).unwrap();
        let before = b.get_array_memory_size();
        let b = compact_views(b).unwrap();
        let v = b.column(0).as_string_view();
        assert_eq!(
            v.iter().collect::<Vec<_>>(),
            [Some("u0412"), None, Some(long), Some("MRN0384289")]
        );
        let held: usize = v.data_buffers().iter().map(|d| d.len()).sum();
        assert_eq!(
            held,
            long.len(),
            "only the long value is held beside the views"
        );
        assert!(b.get_array_memory_size() < before);
    }

    #[test]
    fn views_whose_buffers_are_no_larger_than_they_are_stay_as_they_are() {
        let text: ArrayRef = Arc::new(arrow::array::StringArray::from(vec![
            Some("u0412"),
            Some("a value longer than twelve bytes"),
            Some("MRN0384289"),
        ]));
        let views = cast(&text, &DataType::Utf8View).unwrap();
        let buffer = views.as_string_view().data_buffers()[0].as_ptr();
        let b = compact_views(RecordBatch::try_from_iter([("t", views)]).unwrap()).unwrap();
        let v = b.column(0).as_string_view();
        assert_eq!(v.data_buffers().len(), 1);
        assert_eq!(v.data_buffers()[0].as_ptr(), buffer, "not copied");
    }

    #[test]
    fn alert_ids_are_stable_and_bucket_by_day() {
        let day = 86_400_000_000;
        let a1 = alert_id("r", "u1", 20_000 * day + 5);
        assert_eq!(a1, alert_id("r", "u1", 20_000 * day + day - 1));
        assert_ne!(a1, alert_id("r", "u1", 20_001 * day));
        assert_ne!(a1, alert_id("r", "u2", 20_000 * day));
        assert_ne!(a1, alert_id("r2", "u1", 20_000 * day));
        // Pinned (FNV-1a 64 of "family_snooping", "u00042" and day "0", each NUL-terminated, checked with Python):
        // a change of hash would re-raise every stored alert.
        assert_eq!(alert_id("family_snooping", "u00042", 0), "7e97d6f736a56f6c");
    }
}
