//! A DataFusion table over the current version of a Delta table: exactly the
//! Parquet files its log lists (never an orphan left by a crashed run), with
//! the `event_date` partition value of each file.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::datasource::TableProvider;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::Result as DfResult;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::prelude::SessionContext;
use deltalake::DeltaTable;

use crate::error::{Error, Result};
use crate::schema::EVENT_DATE;

/// A snapshot of a Delta table's files, queryable with SQL.
#[derive(Debug)]
pub struct DeltaScan {
    url: ObjectStoreUrl,
    file_schema: SchemaRef,
    table_schema: SchemaRef,
    files: Vec<PartitionedFile>,
}

impl DeltaScan {
    /// Snapshots `table` and registers its object store with `ctx` under a
    /// name of its own (`delta-<name>://`). Text columns read as Utf8View
    /// when the session says so (`datafusion.execution.parquet.schema_force_view_types`).
    pub fn try_new(ctx: &SessionContext, name: &str, table: &DeltaTable) -> Result<Self> {
        let err = |e: deltalake::DeltaTableError| Error::Store {
            root: table.table_url().to_string(),
            source: e,
        };
        let snapshot = table.snapshot().map_err(err)?;
        let full: Schema = snapshot.snapshot().arrow_schema().as_ref().clone();
        let views = ctx
            .state()
            .config()
            .options()
            .execution
            .parquet
            .schema_force_view_types;
        let file_fields: Vec<Field> = full
            .fields()
            .iter()
            .filter(|f| f.name() != EVENT_DATE)
            .map(|f| match f.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 if views => {
                    f.as_ref().clone().with_data_type(DataType::Utf8View)
                }
                _ => f.as_ref().clone(),
            })
            .collect();
        let file_schema = Arc::new(Schema::new(file_fields));
        let mut fields: Vec<Field> = file_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(EVENT_DATE, DataType::Date32, false));
        let table_schema = Arc::new(Schema::new(fields));

        let mut files = Vec::new();
        for f in snapshot.log_data() {
            let date = f
                .partition_values_map()
                .get(EVENT_DATE)
                .cloned()
                .flatten()
                .and_then(|d| chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok())
                .map(|d| (d - chrono::NaiveDate::default()).num_days() as i32);
            let pf = PartitionedFile::new(f.object_store_path().to_string(), f.size() as u64)
                .with_partition_values(vec![ScalarValue::Date32(date)]);
            files.push(pf);
        }
        let url = ObjectStoreUrl::parse(format!("delta-{}://", name.replace('_', "-")))?;
        ctx.runtime_env()
            .register_object_store(url.as_ref(), table.object_store());
        Ok(Self {
            url,
            file_schema,
            table_schema,
            files,
        })
    }
}

#[async_trait]
impl TableProvider for DeltaScan {
    fn schema(&self) -> SchemaRef {
        self.table_schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if self.files.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.table_schema.project(p)?),
                None => self.table_schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let partition_col = Arc::new(Field::new(EVENT_DATE, DataType::Date32, false));
        let table_schema = TableSchema::builder(self.file_schema.clone())
            .with_table_partition_cols(vec![partition_col])
            .build();
        let source = Arc::new(ParquetSource::new(table_schema));
        let n = state.config().target_partitions().max(1);
        let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); n.min(self.files.len())];
        for (i, f) in self.files.iter().enumerate() {
            let g = groups.len();
            groups[i % g].push(f.clone());
        }
        let config = FileScanConfigBuilder::new(self.url.clone(), source)
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}
