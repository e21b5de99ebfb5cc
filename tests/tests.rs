//! The one integration-test binary (one link for every test; see Cargo.toml).

mod atna;
mod common;
mod csv_export;
mod detect;
mod eval;
mod external;
mod fhir;
mod ingest_bad_input;
mod ndjson;
mod props;
mod roundtrip;
mod run;
mod siem;
mod sql;
mod store;
mod synth;
mod syslog;
