//! Columnar builders for `access_events`: decoders append one row at a time,
//! the pipeline takes a [`RecordBatch`] per chunk.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, DictionaryArray, Int32Array, Int64Builder, StringArray, StringBuilder,
    StringDictionaryBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::Int32Type;
use arrow::record_batch::RecordBatch;

use crate::schema;

/// One access event, borrowing its strings from the parsed record.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AccessRow<'a> {
    /// UTC microseconds since the epoch.
    pub ts: i64,
    /// The acting user.
    pub user_id: Cow<'a, str>,
    /// Role at the time.
    pub user_role: Option<Cow<'a, str>>,
    /// Department.
    pub department: Option<Cow<'a, str>>,
    /// Patient MRN.
    pub patient_id: Option<Cow<'a, str>>,
    /// Normalised action, one of [`schema::ACTIONS`].
    pub action: Cow<'a, str>,
    /// Chart section or module.
    pub resource: Option<Cow<'a, str>>,
    /// `success` or `failure`.
    pub outcome: Cow<'a, str>,
    /// Device id.
    pub workstation: Option<Cow<'a, str>>,
    /// Client address.
    pub src_ip: Option<Cow<'a, str>>,
    /// Session id.
    pub session_id: Option<Cow<'a, str>>,
    /// Reporting system.
    pub app: Option<Cow<'a, str>>,
}

type Dict = StringDictionaryBuilder<Int32Type>;

/// Builders for every `access_events` column but `source`, which is constant
/// per chunk and added at [`AccessBuilder::finish`].
pub struct AccessBuilder {
    ts: TimestampMicrosecondBuilder,
    user_id: Dict,
    user_role: Dict,
    department: Dict,
    patient_id: StringBuilder,
    action: Dict,
    resource: Dict,
    outcome: Dict,
    workstation: StringBuilder,
    src_ip: StringBuilder,
    session_id: StringBuilder,
    app: Dict,
    source_line: Int64Builder,
}

impl std::fmt::Debug for AccessBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessBuilder")
            .field("rows", &self.len())
            .finish()
    }
}

impl AccessBuilder {
    /// Builders sized for about `rows` rows.
    pub fn with_capacity(rows: usize) -> Self {
        let dict = || Dict::with_capacity(rows, 256, 256 * 16);
        let text = || StringBuilder::with_capacity(rows, rows * 12);
        Self {
            ts: TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            user_id: Dict::with_capacity(rows, 4096, 4096 * 8),
            user_role: dict(),
            department: dict(),
            patient_id: text(),
            action: dict(),
            resource: dict(),
            outcome: dict(),
            workstation: text(),
            src_ip: text(),
            session_id: text(),
            app: dict(),
            source_line: Int64Builder::with_capacity(rows),
        }
    }

    /// Rows appended so far.
    pub fn len(&self) -> usize {
        self.source_line.len()
    }

    /// Whether no row was appended.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends one row read from line `line` of the source.
    pub fn append(&mut self, row: &AccessRow<'_>, line: u64) {
        self.ts.append_value(row.ts);
        self.user_id.append_value(&row.user_id);
        self.user_role.append_option(row.user_role.as_deref());
        self.department.append_option(row.department.as_deref());
        self.patient_id.append_option(row.patient_id.as_deref());
        self.action.append_value(&row.action);
        self.resource.append_option(row.resource.as_deref());
        self.outcome.append_value(&row.outcome);
        self.workstation.append_option(row.workstation.as_deref());
        self.src_ip.append_option(row.src_ip.as_deref());
        self.session_id.append_option(row.session_id.as_deref());
        self.app.append_option(row.app.as_deref());
        self.source_line.append_value(line as i64);
    }

    /// The rows as a batch of [`schema::access_events`], every row from `source`.
    pub fn finish(&mut self, source: &str) -> RecordBatch {
        let rows = self.len();
        let source_col = DictionaryArray::<Int32Type>::new(
            Int32Array::from(vec![0; rows]),
            Arc::new(StringArray::from(vec![source])),
        );
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish()),
            Arc::new(self.user_id.finish()),
            Arc::new(self.user_role.finish()),
            Arc::new(self.department.finish()),
            Arc::new(self.patient_id.finish()),
            Arc::new(self.action.finish()),
            Arc::new(self.resource.finish()),
            Arc::new(self.outcome.finish()),
            Arc::new(self.workstation.finish()),
            Arc::new(self.src_ip.finish()),
            Arc::new(self.session_id.finish()),
            Arc::new(self.app.finish()),
            Arc::new(source_col),
            Arc::new(self.source_line.finish()),
        ];
        RecordBatch::try_new(schema::access_events(), columns)
            .expect("builders match the access_events schema")
    }
}
