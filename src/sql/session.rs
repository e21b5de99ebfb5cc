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
pub fn config() -> Result<SessionConfig> {
    Ok(SessionConfig::from_env()?.with_information_schema(true))
}

/// A session with every store table registered under its name. A table
/// never written is registered empty, so queries and `\d` work on a new store.
pub async fn open(store: &Store) -> Result<SessionContext> {
    let ctx = SessionContext::new_with_config(config()?);
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
