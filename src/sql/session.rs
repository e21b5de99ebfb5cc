//! The DataFusion session every SQL-running command uses.

use std::sync::Arc;

use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::error::Result;
use crate::schema;
use crate::store::provider::DeltaScan;
use crate::store::{Store, TABLES};

/// The canonical (in-memory) schema of a store table.
pub fn canonical_schema(name: &str) -> arrow::datatypes::SchemaRef {
    match name {
        "rejects" => schema::rejects(),
        "alerts" => schema::alerts(),
        "system_events" => schema::system_events(),
        _ => schema::access_events(),
    }
}

/// The settings of every emrwatch session: DataFusion's defaults, then any
/// `DATAFUSION_*` environment variable (`DATAFUSION_EXECUTION_BATCH_SIZE`
/// sets `datafusion.execution.batch_size`), so a large store can be tuned
/// without a rebuild, and SQL stays read-only (no `SET`).
///
/// Text columns of the store read as Utf8, the type they are stored as
/// (DataFusion would read them as Utf8View), so what `emrwatch sql` shows
/// and exports is what DESIGN.md says; rule sessions read views.
pub fn config() -> Result<SessionConfig> {
    let mut config = SessionConfig::from_env()?.with_information_schema(true);
    if std::env::var_os("DATAFUSION_EXECUTION_PARQUET_SCHEMA_FORCE_VIEW_TYPES").is_none() {
        config
            .options_mut()
            .execution
            .parquet
            .schema_force_view_types = false;
    }
    Ok(config)
}

/// The settings of sessions that run detection rules: [`config`], but every
/// hash join builds one table from its left input and probes it from each
/// partition of its right, instead of repartitioning both sides by the join
/// key. Rules put the small side on the left (README, "Writing a rule"), and
/// DataFusion has no size for a CTE's result, so it would otherwise hash and
/// copy every event once more to meet a handful of flagged rows (detect on 10
/// million events: 12.7/12.1 s to 11.5/10.0 s).
///
/// And a grouping's first, per-partition pass is dropped as soon as it
/// merges fewer than half of the rows it sees (DataFusion's default: a
/// fifth): the rows are then hashed and grouped once instead of twice.
/// volume_spike's per (user, day, patient) counts merge a third of the
/// opens; the rule went from 2.5-2.9 s to 2.1-2.3 s.
///
/// And the store's text is read as Utf8View, as the events kept in memory
/// hold it ([`crate::detect::cache`]): Parquet's dictionary pages decode
/// straight into views instead of into strings cast to views afterwards
/// (events into memory on 10 million events, alternating: 1.47/1.47 s to
/// 1.10/1.06 s).
///
/// And a batch holds a row group of the store, not 8,192 rows (below).
///
/// A `DATAFUSION_*` variable for any of these settings still decides when it is set.
pub fn rules_config() -> Result<SessionConfig> {
    let mut config = config()?;
    let unset = |name: &str| std::env::var_os(name).is_none();
    if unset("DATAFUSION_EXECUTION_PARQUET_SCHEMA_FORCE_VIEW_TYPES") {
        config
            .options_mut()
            .execution
            .parquet
            .schema_force_view_types = true;
    }
    if unset("DATAFUSION_OPTIMIZER_REPARTITION_JOINS") {
        config.options_mut().optimizer.repartition_joins = false;
    }
    // The cached events are partitioned by user (`detect::partitioned`):
    // a grouping by user and anything else keeps those partitions instead of
    // hashing each group's partial results into partitions of its own.
    if unset("DATAFUSION_OPTIMIZER_SUBSET_REPARTITION_THRESHOLD") {
        config.options_mut().optimizer.subset_repartition_threshold = 1;
    }
    if unset("DATAFUSION_EXECUTION_SKIP_PARTIAL_AGGREGATION_PROBE_RATIO_THRESHOLD") {
        config
            .options_mut()
            .execution
            .skip_partial_aggregation_probe_ratio_threshold = 0.5;
    }
    // Batches of a row group of the store (DataFusion's default: 8,192
    // rows, split in two by user when the events are kept in memory). The
    // rules make a dozen passes over every event, and each pass pays per
    // batch: expressions set up, hash buffers sized, arrays allocated,
    // groups emitted. Detect on 10 million events, alternating, user CPU
    // 4.6-4.7 -> 4.0-4.2 s, wall 2.85-2.88 -> 2.44-2.63 s (the same alerts).
    if unset("DATAFUSION_EXECUTION_BATCH_SIZE") {
        config = config.with_batch_size(crate::store::ROW_GROUP_ROWS);
    }
    Ok(config)
}

/// A session with every store table registered under its name. A table
/// never written is registered empty, so queries and `\d` work on a new store.
pub async fn open(store: &Store) -> Result<SessionContext> {
    open_with(store, config()?).await
}

/// [`open`] with settings of its own ([`rules_config`]).
pub async fn open_with(store: &Store, config: SessionConfig) -> Result<SessionContext> {
    let ctx = SessionContext::new_with_config(config);
    crate::functions::register(&ctx);
    for name in TABLES {
        match store.open(name).await? {
            Some(table) => {
                let scan = DeltaScan::try_new(&ctx, name, &table)?;
                ctx.register_table(*name, Arc::new(scan))?;
            }
            None => {
                let empty =
                    MemTable::try_new(schema::stored(&canonical_schema(name)), vec![vec![]])?;
                ctx.register_table(*name, Arc::new(empty))?;
            }
        }
    }
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan of a rule-like join: a few flagged users on the left (a
    /// grouped CTE, which DataFusion guesses as large as its input), every
    /// event on the right.
    async fn join_plan(config: SessionConfig) -> String {
        let ctx = SessionContext::new_with_config(config.with_target_partitions(2));
        ctx.sql(
            "CREATE TABLE ev AS SELECT 'u' || CAST(v % 7 AS VARCHAR) AS user_id, v AS n \
             FROM generate_series(1, 200000) AS t(v)",
        )
        .await
        .unwrap();
        let df = ctx
            .sql(
                "WITH flagged AS (SELECT user_id FROM ev GROUP BY user_id HAVING count(*) > 100) \
                 SELECT f.user_id, e.n FROM flagged f JOIN ev e ON e.user_id = f.user_id",
            )
            .await
            .unwrap();
        let plan = df.create_physical_plan().await.unwrap();
        datafusion::physical_plan::displayable(plan.as_ref())
            .indent(false)
            .to_string()
    }

    /// Rows the first pass of a grouping passed on ungrouped, grouping
    /// 400 000 rows into 266 667 groups (each three neighbours into two: a
    /// third of the rows merge, in whichever partition they land).
    async fn rows_passed_ungrouped(config: SessionConfig) -> usize {
        let ctx = SessionContext::new_with_config(config.with_target_partitions(2));
        let df = ctx
            .sql(
                "SELECT v * 2 / 3 AS k, count(*) AS n \
                 FROM generate_series(1, 400000) AS t(v) GROUP BY v * 2 / 3",
            )
            .await
            .unwrap();
        let plan = df.create_physical_plan().await.unwrap();
        datafusion::physical_plan::collect(plan.clone(), ctx.task_ctx())
            .await
            .unwrap();
        let mut skipped = 0;
        let mut stack = vec![plan];
        while let Some(p) = stack.pop() {
            if let Some(m) = p.metrics() {
                skipped += m
                    .sum_by_name("skipped_aggregation_rows")
                    .map_or(0, |v| v.as_usize());
            }
            stack.extend(p.children().into_iter().cloned());
        }
        skipped
    }

    #[tokio::test]
    async fn rule_sessions_group_once_when_a_first_pass_merges_little() {
        assert_eq!(rows_passed_ungrouped(config().unwrap()).await, 0);
        assert!(rows_passed_ungrouped(rules_config().unwrap()).await > 0);
    }

    #[tokio::test]
    async fn rule_sessions_pass_a_row_group_per_batch() {
        let largest = |config: SessionConfig| async move {
            let ctx = SessionContext::new_with_config(config.with_target_partitions(1));
            let batches = ctx
                .sql("SELECT v FROM generate_series(1, 300000) AS t(v)")
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            batches.iter().map(|b| b.num_rows()).max().unwrap()
        };
        assert_eq!(largest(config().unwrap()).await, 8192);
        assert_eq!(
            largest(rules_config().unwrap()).await,
            crate::store::ROW_GROUP_ROWS
        );
    }

    #[tokio::test]
    async fn rule_sessions_probe_the_events_without_repartitioning_them() {
        let plain = join_plan(config().unwrap()).await;
        assert!(plain.contains("mode=Partitioned"), "{plain}");
        let rules = join_plan(rules_config().unwrap()).await;
        assert!(rules.contains("mode=CollectLeft"), "{rules}");
    }
}
