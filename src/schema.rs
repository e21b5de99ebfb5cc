//! The canonical Arrow schemas (see `DESIGN.md`, "Canonical tables").
//!
//! Every decoder fills exactly these columns, so detection rules and analysts
//! see one shape whatever the source format was.

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// When the access happened (UTC, microseconds).
pub const TS: &str = "ts";
/// The workforce member acting.
pub const USER_ID: &str = "user_id";
/// Role at the time of access.
pub const USER_ROLE: &str = "user_role";
/// The user's department or unit.
pub const DEPARTMENT: &str = "department";
/// MRN of the patient whose record was touched.
pub const PATIENT_ID: &str = "patient_id";
/// Normalised action (view, create, update, …).
pub const ACTION: &str = "action";
/// Chart section or module.
pub const RESOURCE: &str = "resource";
/// success or failure.
pub const OUTCOME: &str = "outcome";
/// Device or terminal id.
pub const WORKSTATION: &str = "workstation";
/// Network address of the client.
pub const SRC_IP: &str = "src_ip";
/// Session identifier.
pub const SESSION_ID: &str = "session_id";
/// Reporting system (EMR, PACS, portal…).
pub const APP: &str = "app";
/// Provenance: the URL of the source object.
pub const SOURCE: &str = "source";
/// Provenance: the 1-based line number in the (decompressed) source object.
pub const SOURCE_LINE: &str = "source_line";
/// Partition column of the stored tables: the UTC date of `ts`.
pub const EVENT_DATE: &str = "event_date";

/// The normalised values of the `action` column.
pub const ACTIONS: &[&str] = &[
    "view",
    "create",
    "update",
    "delete",
    "print",
    "export",
    "query",
    "login",
    "logout",
    "login_failed",
    "break_glass",
];

/// Whether `s` is one of [`ACTIONS`] (a `match`, which compiles to a switch
/// on length and a word compare: this runs on every record).
pub fn is_action(s: &str) -> bool {
    matches!(
        s,
        "view"
            | "create"
            | "update"
            | "delete"
            | "print"
            | "export"
            | "query"
            | "login"
            | "logout"
            | "login_failed"
            | "break_glass"
    )
}

/// Dictionary type used for low-cardinality string columns.
pub fn dict_utf8() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// The timestamp type of every `ts` column.
pub fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// `access_events` as the decoders build it: low-cardinality columns are
/// dictionary-encoded so a batch of a million rows holds each role, action and
/// source URL once.
///
/// `source_line` is Int64 rather than the UInt64 of DESIGN.md because Delta Lake
/// (and so Spark, Trino and DuckDB reading our tables) has no unsigned integers.
pub fn access_events() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new(TS, ts_type(), false),
                Field::new(USER_ID, dict_utf8(), false),
                Field::new(USER_ROLE, dict_utf8(), true),
                Field::new(DEPARTMENT, dict_utf8(), true),
                Field::new(PATIENT_ID, DataType::Utf8, true),
                Field::new(ACTION, dict_utf8(), false),
                Field::new(RESOURCE, dict_utf8(), true),
                Field::new(OUTCOME, dict_utf8(), false),
                Field::new(WORKSTATION, DataType::Utf8, true),
                Field::new(SRC_IP, DataType::Utf8, true),
                Field::new(SESSION_ID, DataType::Utf8, true),
                Field::new(APP, dict_utf8(), true),
                Field::new(SOURCE, dict_utf8(), false),
                Field::new(SOURCE_LINE, DataType::Int64, false),
            ]))
        })
        .clone()
}

/// The schema a table has in the store: dictionaries become plain strings
/// (Parquet dictionary-encodes them on its own and Delta has no dictionary
/// type), and the `event_date` partition column is added.
pub fn stored(schema: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Dictionary(_, value) => {
                Field::new(f.name(), value.as_ref().clone(), f.is_nullable())
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    fields.push(Field::new(EVENT_DATE, DataType::Date32, false));
    Arc::new(Schema::new(fields))
}

/// Column names of the `system_events` table (syslog and similar) that
/// `access_events` does not share (`ts`, `app`, `src_ip`, `source` and
/// `source_line` are the same).
pub mod system {
    /// Sending host.
    pub const HOST: &str = "host";
    /// Process id as written (RFC 5424 PROCID need not be a number).
    pub const PID: &str = "pid";
    /// Syslog facility name (`auth`, `authpriv`, `daemon`, `local0`…).
    pub const FACILITY: &str = "facility";
    /// Syslog severity name (`emerg` … `debug`).
    pub const SEVERITY: &str = "severity";
    /// RFC 5424 MSGID.
    pub const MSGID: &str = "msgid";
    /// RFC 5424 structured data, as written.
    pub const STRUCTURED_DATA: &str = "structured_data";
    /// The free-text message.
    pub const MESSAGE: &str = "message";
    /// Normalised meaning (`auth_failure`, `sudo`, `user_added`, … or `other`).
    pub const EVENT_TYPE: &str = "event_type";
    /// The account the event is about.
    pub const USER: &str = "user";
    /// Remote port, for network logins.
    pub const SRC_PORT: &str = "src_port";
}

/// `system_events` as the syslog decoder builds it (DESIGN.md, with
/// `msgid` and `structured_data` kept from RFC 5424).
pub fn system_events() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            use system::*;
            Arc::new(Schema::new(vec![
                Field::new(TS, ts_type(), false),
                Field::new(HOST, dict_utf8(), true),
                Field::new(APP, dict_utf8(), true),
                Field::new(PID, DataType::Utf8, true),
                Field::new(FACILITY, dict_utf8(), true),
                Field::new(SEVERITY, dict_utf8(), true),
                Field::new(MSGID, DataType::Utf8, true),
                Field::new(STRUCTURED_DATA, DataType::Utf8, true),
                Field::new(MESSAGE, DataType::Utf8, false),
                Field::new(EVENT_TYPE, dict_utf8(), false),
                Field::new(USER, DataType::Utf8, true),
                Field::new(SRC_IP, DataType::Utf8, true),
                Field::new(SRC_PORT, DataType::Int32, true),
                Field::new(SOURCE, dict_utf8(), false),
                Field::new(SOURCE_LINE, DataType::Int64, false),
            ]))
        })
        .clone()
}

/// Column names of the `rejects` table.
pub mod rejects {
    /// When the reject was recorded (UTC): rejects have no trustworthy event time.
    pub const INGESTED_AT: &str = "ingested_at";
    /// URL of the source object.
    pub const SOURCE: &str = "source";
    /// 1-based line number in the decompressed source (0 when the whole object failed).
    pub const LINE: &str = "line";
    /// Byte offset of the record in the decompressed source.
    pub const BYTE_OFFSET: &str = "byte_offset";
    /// Why the record was rejected.
    pub const REASON: &str = "reason";
    /// The first 256 bytes of the record, for whoever fixes the exporter.
    pub const SAMPLE: &str = "sample";
}

/// `rejects`: one row per record that could not be stored.
pub fn rejects() -> SchemaRef {
    use rejects::*;
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new(INGESTED_AT, ts_type(), false),
                Field::new(SOURCE, DataType::Utf8, false),
                Field::new(LINE, DataType::Int64, false),
                Field::new(BYTE_OFFSET, DataType::Int64, false),
                Field::new(REASON, DataType::Utf8, false),
                Field::new(SAMPLE, DataType::Binary, true),
            ]))
        })
        .clone()
}

/// Column names of the `alerts` table (and of every rule's result).
pub mod alerts {
    /// Stable hash of rule, actor and time bucket: the same alert never twice.
    pub const ALERT_ID: &str = "alert_id";
    /// The detect run that raised it.
    pub const RUN_ID: &str = "run_id";
    /// The rule's id.
    pub const RULE_ID: &str = "rule_id";
    /// Scenario from DESIGN.md's vocabulary.
    pub const SCENARIO: &str = "scenario";
    /// low, medium, high, critical.
    pub const SEVERITY: &str = "severity";
    /// The acting account, if any.
    pub const USER_ID: &str = "user_id";
    /// The acting host, if any.
    pub const HOST: &str = "host";
    /// The acting source address, if any.
    pub const SRC_IP: &str = "src_ip";
    /// Patients concerned.
    pub const PATIENT_IDS: &str = "patient_ids";
    /// First event of the alert.
    pub const FIRST_TS: &str = "first_ts";
    /// Last event of the alert.
    pub const LAST_TS: &str = "last_ts";
    /// Events behind it.
    pub const EVENT_COUNT: &str = "event_count";
    /// Higher is worse.
    pub const SCORE: &str = "score";
    /// One sentence a privacy officer can act on.
    pub const SUMMARY: &str = "summary";
    /// When the run raised it.
    pub const DETECTED_AT: &str = "detected_at";
}

/// The list type of `patient_ids`.
pub fn utf8_list() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
}

/// The `alerts` table: what every rule returns, plus what the runner adds.
pub fn alerts() -> SchemaRef {
    use alerts::*;
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new(ALERT_ID, DataType::Utf8, false),
                Field::new(RUN_ID, DataType::Utf8, false),
                Field::new(RULE_ID, DataType::Utf8, false),
                Field::new(SCENARIO, DataType::Utf8, false),
                Field::new(SEVERITY, DataType::Utf8, false),
                Field::new(USER_ID, DataType::Utf8, true),
                Field::new(HOST, DataType::Utf8, true),
                Field::new(SRC_IP, DataType::Utf8, true),
                Field::new(PATIENT_IDS, utf8_list(), true),
                Field::new(FIRST_TS, ts_type(), false),
                Field::new(LAST_TS, ts_type(), false),
                Field::new(EVENT_COUNT, DataType::Int64, false),
                Field::new(SCORE, DataType::Float64, false),
                Field::new(SUMMARY, DataType::Utf8, false),
                Field::new(DETECTED_AT, ts_type(), false),
            ]))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_action_is_exactly_the_list() {
        for a in ACTIONS {
            assert!(is_action(a), "{a}");
        }
        for a in ["", "View", "views", "login_faile", "break-glass", "read"] {
            assert!(!is_action(a), "{a}");
        }
    }
}
