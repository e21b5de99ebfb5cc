//! The library's error type. A bad *record* is not an error (see
//! [`crate::ingest::Reject`]); these are the failures that stop a command.

use datafusion::error::DataFusionError;

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop an emrwatch command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input path, URL or glob that names nothing or cannot be opened.
    #[error("input {input}: {reason}")]
    Input {
        /// The input as the user wrote it.
        input: String,
        /// What is wrong with it and what to do.
        reason: String,
    },
    /// An object store call failed.
    #[error("cannot read {url}: {source}")]
    ObjectStore {
        /// The object or prefix.
        url: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// A mapping file (ndjson/csv field mapping) that cannot be used.
    #[error("mapping file {path}: {reason}")]
    Mapping {
        /// Where the mapping came from.
        path: String,
        /// What is wrong, naming the key.
        reason: String,
    },
    /// `--strict` was given and a record was rejected.
    #[error(
        "{source_url} line {line}: record rejected: {reason} (stopped because of --strict; \
         drop --strict to store the good records and count the bad ones)"
    )]
    Strict {
        /// Source object URL.
        source_url: String,
        /// 1-based line number.
        line: u64,
        /// Why it was rejected.
        reason: String,
    },
    /// The Delta store could not be opened, created or committed to.
    #[error("store {root}: {source}")]
    Store {
        /// The store root URL.
        root: String,
        /// Delta's error.
        #[source]
        source: deltalake::DeltaTableError,
    },
    /// The configuration file or a flag of `emrwatch run` is wrong.
    #[error("config {path}: {reason}")]
    Config {
        /// The file (or flag).
        path: String,
        /// What is wrong, naming the key.
        reason: String,
    },
    /// Another run committed the same work first (Delta commit conflict).
    #[error(
        "store {root}: another emrwatch run committed first ({reason}); this run's work is \
         discarded, run again to continue from what it committed"
    )]
    Conflict {
        /// The store root URL.
        root: String,
        /// Delta's conflict.
        reason: String,
    },
    /// A query failed (SQL syntax, unknown column, …).
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    /// Building or converting Arrow data failed.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// Local I/O (writing output, reading a mapping file, the shell history).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
