//! Writing decoded chunks into the store: one [`TableWriter`] per table the
//! inputs fill, the rejects alongside, and one commit per table at the end.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{
    Array, BinaryBuilder, Int64Builder, StringBuilder, TimestampMicrosecondArray,
    TimestampMicrosecondBuilder,
};
use arrow::record_batch::RecordBatch;

use super::{Store, TableWriter};
use crate::error::Result;
use crate::ingest::{Decoded, Reject, Table};
use crate::schema;

/// The name of the rejects table.
pub const REJECTS: &str = "rejects";

/// Rejects are buffered and written in batches of this many.
const REJECT_BATCH: usize = 8192;

/// Appends decoded chunks to the store; nothing is visible before
/// [`IngestWriter::commit`].
pub struct IngestWriter {
    store: Store,
    /// Only these tables are written (a run finishing one cut short); all when `None`.
    only: Option<Vec<String>>,
    writers: Vec<(Table, TableWriter)>,
    rejects: Vec<Reject>,
    rejects_writer: Option<TableWriter>,
    rejected: u64,
    ingested_at: i64,
    /// Earliest and latest event time written, UTC µs.
    pub ts_range: Option<(i64, i64)>,
}

impl IngestWriter {
    /// A writer stamping rejects `ingested_at`; with `only`, every other table is left alone.
    pub fn new(store: &Store, ingested_at: i64, only: Option<Vec<String>>) -> Self {
        Self {
            store: store.clone(),
            only,
            writers: Vec::new(),
            rejects: Vec::new(),
            rejects_writer: None,
            rejected: 0,
            ingested_at,
            ts_range: None,
        }
    }

    fn wants(&self, table: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|t| t == table))
    }

    /// Writes a chunk's rows and keeps its rejects.
    pub async fn add(&mut self, d: Decoded) -> Result<()> {
        if d.batch.num_rows() > 0 && self.wants(d.table.name()) {
            if let Some(ts) = d
                .batch
                .column_by_name(schema::TS)
                .and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>())
                && let (Some(lo), Some(hi)) = (arrow::compute::min(ts), arrow::compute::max(ts))
            {
                self.ts_range = Some(match self.ts_range {
                    Some((a, b)) => (a.min(lo), b.max(hi)),
                    None => (lo, hi),
                });
            }
            let i = match self.writers.iter().position(|(t, _)| *t == d.table) {
                Some(i) => i,
                None => {
                    let w = self.store.writer(d.table.name(), &d.table.schema()).await?;
                    self.writers.push((d.table, w));
                    self.writers.len() - 1
                }
            };
            self.writers[i].1.write(&d.batch, schema::TS).await?;
        }
        if !d.rejects.is_empty() && self.wants(REJECTS) {
            self.rejected += d.rejects.len() as u64;
            self.rejects.extend(d.rejects);
            if self.rejects.len() >= REJECT_BATCH {
                self.flush_rejects().await?;
            }
        }
        Ok(())
    }

    /// Rows written so far, per table (tables with none are absent).
    pub fn rows(&self) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = self
            .writers
            .iter()
            .filter(|(_, w)| w.rows() > 0)
            .map(|(t, w)| (t.name().to_string(), w.rows()))
            .collect();
        if self.rejected > 0 {
            out.insert(REJECTS.to_string(), self.rejected);
        }
        out
    }

    async fn flush_rejects(&mut self) -> Result<()> {
        let w = match &mut self.rejects_writer {
            Some(w) => w,
            None => self
                .rejects_writer
                .insert(self.store.writer(REJECTS, &schema::rejects()).await?),
        };
        w.write(
            &rejects_batch(&self.rejects, self.ingested_at)?,
            schema::rejects::INGESTED_AT,
        )
        .await?;
        self.rejects.clear();
        Ok(())
    }

    /// Commits each table written (events first, rejects last) with
    /// `metadata` and the counts in its commit info, and `txns`.
    /// Returns (table, version) of each commit.
    pub async fn commit(
        mut self,
        metadata: HashMap<String, serde_json::Value>,
        txns: &[(&str, i64)],
    ) -> Result<Vec<(String, i64)>> {
        if !self.rejects.is_empty() {
            self.flush_rejects().await?;
        }
        let mut all: Vec<(String, TableWriter)> = std::mem::take(&mut self.writers)
            .into_iter()
            .map(|(t, w)| (t.name().to_string(), w))
            .collect();
        all.sort_by_key(|(name, _)| crate::store::TABLES.iter().position(|t| t == name));
        if let Some(w) = self.rejects_writer.take() {
            all.push((REJECTS.to_string(), w));
        }
        let mut committed = Vec::new();
        for (name, w) in all {
            let mut meta = metadata.clone();
            meta.insert("emrwatch.table".into(), name.clone().into());
            meta.insert("emrwatch.rows".into(), w.rows().into());
            if let Some(v) = w.commit_with(meta, txns).await? {
                committed.push((name, v));
                crate::run::pause_point("between-commits");
            }
        }
        Ok(committed)
    }
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
