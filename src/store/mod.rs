//! The store: Delta Lake tables under one root URL (`access_events`,
//! `rejects`), partitioned by event date.
//!
//! Writing goes through `deltalake`'s streaming [`RecordBatchWriter`]: Parquet
//! files are encoded as batches arrive and become visible only with the one
//! commit at the end of a run, so a crash never leaves half a run behind.
//! Reading goes through [`provider::DeltaScan`], which hands DataFusion exactly
//! the files of the table's current version.

pub mod ingest;
pub mod provider;
pub mod s3;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Date32Array, RecordBatch, TimestampMicrosecondArray, UInt32Array,
};
use arrow::compute::cast;
use arrow::datatypes::{Schema, SchemaRef};
use delta_kernel::expressions::Scalar;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake::kernel::{Action, Add, Transaction};
use deltalake::kernel::{StructField, StructType};
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use deltalake::{DeltaTable, DeltaTableError};
use indexmap::IndexMap;
use url::Url;

use crate::error::{Error, Result};
use crate::schema;

/// The events table rules read.
pub const ACCESS_EVENTS: &str = "access_events";

/// The host-log table (syslog).
pub const SYSTEM_EVENTS: &str = "system_events";

/// Names of the tables a store holds.
pub const TABLES: &[&str] = &[ACCESS_EVENTS, SYSTEM_EVENTS, "rejects", "alerts"];

/// A store root: a local folder or an object-store URL.
#[derive(Debug, Clone)]
pub struct Store {
    root: Url,
}

impl Store {
    /// A store at `root` (a path or URL). Nothing is created until a table is written.
    pub fn new(root: &str) -> Result<Self> {
        let url = if root.contains("://") {
            Url::parse(root).map_err(|e| Error::Input {
                input: root.to_string(),
                reason: format!("not a valid store URL: {e}"),
            })?
        } else {
            let abs = crate::ingest::source::absolute_path(std::path::Path::new(root))?;
            Url::from_directory_path(&abs).map_err(|()| Error::Input {
                input: root.to_string(),
                reason: "not a usable store folder".into(),
            })?
        };
        let mut root = url;
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        Ok(Self { root })
    }

    /// The root URL.
    pub fn root(&self) -> &Url {
        &self.root
    }

    fn table_url(&self, name: &str) -> Result<Url> {
        self.root
            .join(&format!("{name}/"))
            .map_err(|e| Error::Input {
                input: self.root.to_string(),
                reason: e.to_string(),
            })
    }

    fn err(&self, source: DeltaTableError) -> Error {
        Error::Store {
            root: self.root.to_string(),
            source,
        }
    }

    /// Opens a table; `None` when it has never been written.
    pub async fn open(&self, name: &str) -> Result<Option<DeltaTable>> {
        let url = self.table_url(name)?;
        if url.scheme() == "file" {
            let dir = url.to_file_path().unwrap_or_default();
            if !dir.join("_delta_log").is_dir() {
                return Ok(None);
            }
        }
        let table = DeltaTable::try_from_url(url)
            .await
            .map_err(|e| self.err(e))?;
        Ok(table.version().is_some().then_some(table))
    }

    /// Opens a table, creating it with `schema` (partitioned by `event_date`) if it does not exist.
    pub async fn open_or_create(&self, name: &str, schema: &Schema) -> Result<DeltaTable> {
        if let Some(t) = self.open(name).await? {
            return Ok(t);
        }
        let url = self.table_url(name)?;
        if url.scheme() == "file" {
            std::fs::create_dir_all(url.to_file_path().unwrap_or_default())?;
        }
        let table = DeltaTable::try_from_url(url)
            .await
            .map_err(|e| self.err(e))?;
        let stored = schema::stored(schema);
        let delta_schema: StructType = stored
            .as_ref()
            .try_into_kernel()
            .map_err(|e| self.err(e.into()))?;
        let columns: Vec<StructField> = delta_schema.fields().cloned().collect();
        let created = table
            .create()
            .with_table_name(name)
            .with_columns(columns)
            .with_partition_columns(vec![schema::EVENT_DATE])
            .await;
        match created {
            Ok(t) => Ok(t),
            // Another writer created it in the meantime: use theirs.
            Err(e) => match self.open(name).await? {
                Some(t) => Ok(t),
                None => Err(self.err(e)),
            },
        }
    }

    /// The versions of application transactions `app_ids` recorded in
    /// table `name` (0 for one never recorded, or a table never written).
    pub async fn txn_versions(&self, name: &str, app_ids: &[&str]) -> Result<Vec<i64>> {
        let Some(table) = self.open(name).await? else {
            return Ok(vec![0; app_ids.len()]);
        };
        let state = table.snapshot().map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(app_ids.len());
        for app in app_ids {
            let v = state
                .transaction_version(table.log_store().as_ref(), *app)
                .await
                .map_err(|e| self.err(e))?;
            out.push(v.unwrap_or(0));
        }
        Ok(out)
    }

    /// The commit-info value under `key` of the newest commit of table
    /// `name` that has one, looking back at most `depth` commits.
    pub async fn last_commit_value(
        &self,
        name: &str,
        key: &str,
        depth: u64,
    ) -> Result<Option<serde_json::Value>> {
        let Some(table) = self.open(name).await? else {
            return Ok(None);
        };
        let Some(latest) = table.version() else {
            return Ok(None);
        };
        let log = table.log_store();
        let oldest = latest.saturating_sub(depth);
        for v in (oldest..=latest).rev() {
            let Some(bytes) = log.read_commit_entry(v).await.map_err(|e| self.err(e))? else {
                continue;
            };
            for line in bytes.split(|b| *b == b'\n') {
                if memchr::memmem::find(line, b"\"commitInfo\"").is_none() {
                    continue;
                }
                let parsed: serde_json::Value =
                    serde_json::from_slice(line).map_err(|e| Error::Input {
                        input: format!("{name} commit {v}"),
                        reason: format!("unreadable commit info: {e}"),
                    })?;
                if let Some(found) = parsed.get("commitInfo").and_then(|c| c.get(key)) {
                    return Ok(Some(found.clone()));
                }
            }
        }
        Ok(None)
    }

    /// A writer appending to table `name` (created if needed).
    pub async fn writer(&self, name: &str, schema: &Schema) -> Result<TableWriter> {
        let table = self.open_or_create(name, schema).await?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let writer = RecordBatchWriter::for_table(&table)
            .map_err(|e| self.err(e))?
            .with_writer_properties(props);
        Ok(TableWriter {
            store: self.clone(),
            table,
            writer,
            stored_schema: schema::stored(schema),
            rows: 0,
            unflushed: 0,
            flush_rows: FLUSH_ROWS,
            adds: Vec::new(),
        })
    }
}

/// Rows per Parquet row group: small enough that an open file per partition
/// holds little in memory, large enough for good compression and pruning.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Rows after which every open file is finished and uploaded. Memory then
/// stays flat however large the input: files finished mid-run only become
/// part of the table with the run's single commit (a crash leaves them as
/// unreferenced orphans, never as visible half-runs).
const FLUSH_ROWS: u64 = 1 << 20;

/// Appends batches to one table; nothing is visible until [`TableWriter::commit`].
pub struct TableWriter {
    store: Store,
    table: DeltaTable,
    writer: RecordBatchWriter,
    stored_schema: SchemaRef,
    rows: u64,
    unflushed: u64,
    flush_rows: u64,
    /// Files finished so far, committed together at the end.
    adds: Vec<Add>,
}

impl std::fmt::Debug for TableWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter")
            .field("rows", &self.rows)
            .finish()
    }
}

impl TableWriter {
    /// Appends a batch in its canonical (in-memory) schema; `ts_column` names
    /// the timestamp its partition date is taken from.
    pub async fn write(&mut self, batch: &RecordBatch, ts_column: &str) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let stored = to_stored(batch, &self.stored_schema, ts_column)?;
        self.rows += stored.num_rows() as u64;
        self.unflushed += stored.num_rows() as u64;
        // The writer's own `write` groups rows by partition through a row
        // converter, a hash map and a `take` of every column: a seventh of the
        // CPU of a JSON-lines ingest. Logs arrive in time order, so the rows of
        // a day are one run and a zero-copy slice is its whole partition.
        let (stored, runs) = date_runs(stored)?;
        for (date, start, len) in runs {
            let values: IndexMap<String, Scalar> =
                IndexMap::from([(schema::EVENT_DATE.to_string(), Scalar::Date(date))]);
            self.writer
                .write_partition(stored.slice(start, len), &values, WriteMode::Default)
                .await
                .map_err(|e| self.store.err(e))?;
        }
        if self.unflushed >= self.flush_rows {
            let finished = self.writer.flush().await.map_err(|e| self.store.err(e))?;
            self.adds.extend(finished);
            self.unflushed = 0;
        }
        Ok(())
    }

    /// Finishes the open files every `rows` rows instead of every 2^20.
    pub fn with_flush_rows(mut self, rows: u64) -> Self {
        self.flush_rows = rows.max(1);
        self
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Commits everything written, as one Delta version with `metadata`
    /// (run id, counts) in its commit info. Returns the new version, or `None`
    /// when nothing was written.
    pub async fn commit(self, metadata: HashMap<String, serde_json::Value>) -> Result<Option<i64>> {
        self.commit_with(metadata, &[]).await
    }

    /// [`TableWriter::commit`], also recording application transactions
    /// `txns` (app id, version) in the same Delta commit: it then commits even
    /// with no rows. An application transaction only moves forward: when the
    /// table already records `version` or a later one for an app id, or a
    /// concurrent commit records that app id, this fails with
    /// [`Error::Conflict`], so two runs never both commit the same work.
    pub async fn commit_with(
        self,
        metadata: HashMap<String, serde_json::Value>,
        txns: &[(&str, i64)],
    ) -> Result<Option<i64>> {
        let Self {
            store,
            table,
            mut writer,
            rows,
            mut adds,
            ..
        } = self;
        if rows == 0 && txns.is_empty() {
            return Ok(None);
        }
        adds.extend(writer.flush().await.map_err(|e| store.err(e))?);
        let snapshot = table.snapshot().map_err(|e| store.err(e))?;
        // Delta's conflict check only sees commits made after this snapshot.
        // A run that opened the table after another run (planned from the
        // same checkpoint) committed finds that run's mark here instead.
        for &(app_id, version) in txns {
            let recorded = snapshot
                .transaction_version(table.log_store().as_ref(), app_id)
                .await
                .map_err(|e| store.err(e))?;
            if let Some(r) = recorded.filter(|&r| r >= version) {
                return Err(Error::Conflict {
                    root: store.root.to_string(),
                    reason: format!(
                        "{} already records {app_id} {r}, this commit would record {version}",
                        table.table_url()
                    ),
                });
            }
        }
        let operation = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: Some(vec![schema::EVENT_DATE.to_string()]),
            predicate: None,
        };
        let mut props = CommitProperties::default().with_metadata(metadata);
        for &(app_id, version) in txns {
            props = props.with_application_transaction(Transaction::new_with_last_update(
                app_id,
                version,
                Some(chrono::Utc::now().timestamp_millis()),
            ));
        }
        let committed = CommitBuilder::from(props)
            .with_actions(adds.into_iter().map(Action::Add).collect())
            .build(Some(snapshot), table.log_store(), operation)
            .await
            .map_err(|e| match e {
                DeltaTableError::Transaction {
                    source: TransactionError::CommitConflict(c),
                } => Error::Conflict {
                    root: store.root.to_string(),
                    reason: c.to_string(),
                },
                e => store.err(e),
            })?;
        Ok(Some(committed.version() as i64))
    }
}

/// A partition's rows in a batch: (days since the epoch, first row, rows).
type DateRun = (i32, usize, usize);

/// The runs of equal `event_date` (the last column) in `batch`, as
/// (date, first row, rows). A batch whose dates are not in runs (more runs than
/// one per 1024 rows) is first reordered by date, stably, so a shuffled input
/// costs one `take` rather than a write per row.
fn date_runs(batch: RecordBatch) -> Result<(RecordBatch, Vec<DateRun>)> {
    fn runs(dates: &[i32]) -> Vec<DateRun> {
        let mut out: Vec<DateRun> = Vec::new();
        for (i, &d) in dates.iter().enumerate() {
            match out.last_mut() {
                Some((last, _, len)) if *last == d => *len += 1,
                _ => out.push((d, i, 1)),
            }
        }
        out
    }
    fn dates(b: &RecordBatch) -> &[i32] {
        b.column(b.num_columns() - 1)
            .as_any()
            .downcast_ref::<Date32Array>()
            .map_or(&[], |a| a.values())
    }
    let found = runs(dates(&batch));
    if found.len() <= 1 + batch.num_rows() / 1024 {
        return Ok((batch, found));
    }
    let d = dates(&batch);
    let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
    order.sort_by_key(|&i| d[i as usize]);
    let sorted = arrow::compute::take_record_batch(&batch, &UInt32Array::from(order))?;
    let found = runs(dates(&sorted));
    Ok((sorted, found))
}

/// `batch` (in its canonical schema) as the store holds it: plain strings,
/// and `event_date` taken from `ts_column`.
pub fn stored_batch(batch: &RecordBatch, ts_column: &str) -> Result<RecordBatch> {
    to_stored(batch, &schema::stored(&batch.schema()), ts_column)
}

/// Casts dictionary columns to plain strings and adds `event_date` from `ts_column`.
fn to_stored(batch: &RecordBatch, stored: &SchemaRef, ts_column: &str) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(stored.fields().len());
    for (col, field) in batch.columns().iter().zip(stored.fields()) {
        if col.data_type() == field.data_type() {
            columns.push(col.clone());
        } else {
            columns.push(cast(col, field.data_type())?);
        }
    }
    let ts = batch
        .column_by_name(ts_column)
        .and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>())
        .ok_or_else(|| arrow::error::ArrowError::SchemaError(format!("no {ts_column} column")))?;
    let dates: Date32Array = ts
        .values()
        .iter()
        .map(|us| us.div_euclid(86_400_000_000) as i32)
        .collect::<Vec<_>>()
        .into();
    // Once per batch, so checked in every build: decoders never append a null time.
    assert_eq!(ts.null_count(), 0, "event times are never null");
    columns.push(Arc::new(dates));
    Ok(RecordBatch::try_new(stored.clone(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field};

    fn batch(dates: &[i32]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("row", DataType::Int64, false),
            Field::new(schema::EVENT_DATE, DataType::Date32, false),
        ]));
        let rows: Vec<i64> = (0..dates.len() as i64).collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(rows)),
                Arc::new(Date32Array::from(dates.to_vec())),
            ],
        )
        .unwrap()
    }

    fn rows(b: &RecordBatch) -> Vec<i64> {
        b.column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .values()
            .to_vec()
    }

    #[test]
    fn date_runs_slices_time_ordered_rows_without_copying() {
        let (out, runs) = date_runs(batch(&[5, 5, 5, 6, 6, 7])).unwrap();
        assert_eq!(runs, vec![(5, 0, 3), (6, 3, 2), (7, 5, 1)]);
        assert_eq!(rows(&out), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn date_runs_reorders_a_shuffled_batch_stably() {
        // 3000 rows alternating between two days: 3000 runs, over the limit.
        let dates: Vec<i32> = (0..3000).map(|i| 10 + (i % 2)).collect();
        let (out, runs) = date_runs(batch(&dates)).unwrap();
        assert_eq!(runs, vec![(10, 0, 1500), (11, 1500, 1500)]);
        let r = rows(&out);
        // Every row once, and each day's rows still in input order.
        assert!(r[..1500].iter().all(|x| x % 2 == 0) && r[..1500].is_sorted());
        assert!(r[1500..].iter().all(|x| x % 2 == 1) && r[1500..].is_sorted());
    }
}
