//! Tables in memory that tell DataFusion how their rows are partitioned.
//!
//! Detection groups the events by user over and over (per user and day, per
//! user and hour, per user). DataFusion plans each grouping as a partial
//! aggregate per partition, a repartition of the partial results by the
//! grouping key, and a final aggregate merging them; for `distinct_count`
//! the partial results are every distinct patient of every group. When the
//! rows are already partitioned by user, as DataFusion itself would hash
//! them, and the table says so, each partition is grouped once, on its own
//! ([`crate::sql::session::rules_config`] lets `Hash(user_id)` stand for
//! `Hash(user_id, day)`).
//!
//! The claim must be true: a table is only declared partitioned when its
//! partitions were split by DataFusion's own hash partitioner
//! (`BatchPartitioner`, which `RepartitionExec` uses; the events,
//! [`super::cache`]) or come from a plan whose output DataFusion reports as
//! so partitioned (a materialized view, [`super::register_views`]). A scan
//! is declared only while it has that many partitions and keeps every key
//! column.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Statistics;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::statistics::{ChildStats, StatisticsArgs};
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties,
    Partitioning, PlanProperties, ReplaceChildrenOptions,
};

/// A [`MemTable`] whose partition `i` holds exactly the rows whose `keys`
/// hash to `i` under DataFusion's repartitioning hash.
#[derive(Debug)]
pub struct HashPartitioned {
    inner: MemTable,
    keys: Vec<String>,
    partitions: usize,
}

impl HashPartitioned {
    /// `inner`'s partitions, declared hash-partitioned by `keys` (columns of
    /// its schema). The caller vouches for the claim (module docs).
    pub fn new(inner: MemTable, keys: Vec<String>) -> Self {
        let partitions = inner.batches.len();
        Self {
            inner,
            keys,
            partitions,
        }
    }

    /// `inner`, holding `plan`'s output partition for partition, declared
    /// partitioned as DataFusion reports that output when it is a hash of
    /// plain columns; a plain [`MemTable`] otherwise.
    pub fn of_plan_output(inner: MemTable, plan: &dyn ExecutionPlan) -> Arc<dyn TableProvider> {
        let Partitioning::Hash(exprs, _) = plan.output_partitioning() else {
            return Arc::new(inner);
        };
        let schema = plan.schema();
        let keys = exprs
            .iter()
            .map(|e| {
                e.downcast_ref::<Column>()
                    .map(|c| schema.field(c.index()).name().clone())
            })
            .collect::<Option<Vec<_>>>();
        match keys {
            Some(keys) => Arc::new(Self::new(inner, keys)),
            None => Arc::new(inner),
        }
    }
}

#[async_trait]
impl TableProvider for HashPartitioned {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let scan = self.inner.scan(state, projection, filters, limit).await?;
        Ok(Declared::over(scan, &self.keys, self.partitions))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }
}

/// Its input, with the partitioning [`HashPartitioned`] declares.
#[derive(Debug)]
struct Declared {
    input: Arc<dyn ExecutionPlan>,
    keys: Vec<String>,
    partitions: usize,
    properties: Arc<PlanProperties>,
}

impl Declared {
    /// `input` declared `Hash(keys, partitions)` when it has that many
    /// partitions and every key column (a projection without one is
    /// partitioned by nothing it can name); `input` unchanged otherwise.
    fn over(
        input: Arc<dyn ExecutionPlan>,
        keys: &[String],
        partitions: usize,
    ) -> Arc<dyn ExecutionPlan> {
        if input.output_partitioning().partition_count() != partitions {
            return input;
        }
        let schema = input.schema();
        let exprs = keys
            .iter()
            .map(|k| {
                let i = schema.index_of(k).ok()?;
                Some(Arc::new(Column::new(k, i)) as Arc<dyn PhysicalExpr>)
            })
            .collect::<Option<Vec<_>>>();
        let Some(exprs) = exprs else {
            return input;
        };
        let properties = Arc::new(
            input
                .properties()
                .as_ref()
                .clone()
                .with_partitioning(Partitioning::Hash(exprs, partitions)),
        );
        Arc::new(Self {
            input,
            keys: keys.to_vec(),
            partitions,
            properties,
        })
    }
}

impl DisplayAs for Declared {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "HashPartitioned: {}", self.properties.partitioning)
    }
}

impl ExecutionPlan for Declared {
    fn name(&self) -> &str {
        "HashPartitioned"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Declared again from the new input's own columns: an input
        // rewritten into other partitions or without a key loses the claim.
        Ok(Self::over(
            children.swap_remove(0),
            &self.keys,
            self.partitions,
        ))
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    // The input's statistics, partition for partition: without them a join
    // with this table cannot tell which side is smaller and builds its hash
    // table on whichever is on the left.
    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        Ok(input_stats[0].clone())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::stats::Precision;
    use datafusion::physical_plan::statistics::StatisticsContext;
    use datafusion::prelude::SessionContext;

    /// Two partitions of (k, v), three rows each.
    fn table() -> HashPartitioned {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("v", DataType::Int64, false),
        ]));
        let part = |ks: [&str; 3]| {
            vec![
                RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(StringArray::from(ks.to_vec())),
                        Arc::new(Int64Array::from(vec![1, 2, 3])),
                    ],
                )
                .unwrap(),
            ]
        };
        let mem = MemTable::try_new(
            schema.clone(),
            vec![part(["a", "a", "b"]), part(["c", "d", "d"])],
        )
        .unwrap();
        HashPartitioned::new(mem, vec!["k".into()])
    }

    async fn scan(t: &HashPartitioned, projection: &[usize]) -> Arc<dyn ExecutionPlan> {
        let ctx = SessionContext::new();
        t.scan(&ctx.state(), Some(&projection.to_vec()), &[], None)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_scan_is_declared_partitioned_only_while_it_keeps_the_key() {
        let t = table();
        let both = scan(&t, &[1, 0]).await;
        match both.output_partitioning() {
            Partitioning::Hash(exprs, 2) => {
                let c = exprs[0].downcast_ref::<Column>().unwrap();
                // The key's place in the projected schema, not the table's.
                assert_eq!((c.name(), c.index()), ("k", 1));
            }
            other => panic!("{other:?}"),
        }
        let values = scan(&t, &[1]).await;
        assert!(
            matches!(
                values.output_partitioning(),
                Partitioning::UnknownPartitioning(2)
            ),
            "{:?}",
            values.output_partitioning()
        );
    }

    /// A materialized view keeps the partitioning its plan reported, by the
    /// column's name in its own schema, and nothing when the plan's output
    /// is not hashed.
    #[tokio::test]
    async fn a_plans_output_keeps_the_hash_the_plan_reports() {
        let config = datafusion::prelude::SessionConfig::new().with_target_partitions(2);
        let ctx = SessionContext::new_with_config(config);
        ctx.register_table("t", Arc::new(table())).unwrap();
        for (sql, hashed) in [
            ("SELECT count(*) AS n, k AS key FROM t GROUP BY k", true),
            ("SELECT v FROM t", false),
        ] {
            let df = ctx.sql(sql).await.unwrap();
            let schema = Arc::new(df.schema().as_arrow().clone());
            let plan = df.create_physical_plan().await.unwrap();
            let parts =
                datafusion::physical_plan::collect_partitioned(plan.clone(), ctx.task_ctx())
                    .await
                    .unwrap();
            let mem = MemTable::try_new(schema, parts).unwrap();
            let t = HashPartitioned::of_plan_output(mem, plan.as_ref());
            let scanned = t.scan(&ctx.state(), None, &[], None).await.unwrap();
            match scanned.output_partitioning() {
                Partitioning::Hash(exprs, 2) if hashed => {
                    let c = exprs[0].downcast_ref::<Column>().unwrap();
                    assert_eq!((c.name(), c.index()), ("key", 1), "{sql}");
                }
                Partitioning::UnknownPartitioning(_) if !hashed => {}
                other => panic!("{sql}: {other:?}"),
            }
        }
    }

    /// Joins choose their build side by row counts: the declaration must
    /// not hide them.
    #[tokio::test]
    async fn a_declared_scan_keeps_its_row_counts() {
        let t = table();
        let plan = scan(&t, &[0, 1]).await;
        assert_eq!(plan.name(), "HashPartitioned");
        let stats = StatisticsContext::new()
            .compute(plan.as_ref(), &StatisticsArgs::new())
            .unwrap();
        assert_eq!(stats.num_rows, Precision::Exact(6));
    }
}
