//! emrwatch finds inappropriate access to patient records.
//!
//! The pipeline, one function per arrow:
//! [`ingest::source::resolve`] turns paths, URLs and globs into objects;
//! [`ingest::decode_stream`] reads each object (decompressing gzip/zstd by
//! magic bytes), frames it into records ([`ingest::framing`]), and decodes
//! chunks of records in parallel with simd-json straight into Arrow builders
//! ([`ingest::fhir`], [`ingest::ndjson`]); [`store::TableWriter`] appends the
//! batches to Delta Lake tables in one atomic commit per run; and
//! [`sql::session::open`] registers those tables in a DataFusion session for
//! SQL. Bad records never stop a run: they become rows of the `rejects` table.
//! Detection ([`detect`]) runs the rules of `queries/` in such a session, with
//! the [`reference`] tables and the [`functions`] registered, and turns their
//! rows into alerts.

pub mod alloc;
pub mod cli;
pub mod commands;
pub mod config;
pub mod detect;
pub mod error;
pub mod eval;
pub mod functions;
pub mod ingest;
pub mod reference;
pub mod run;
pub mod schema;
pub mod siem;
pub mod sql;
pub mod store;
pub mod synth;

pub use error::{Error, Result};
