//! Columnar builders for `access_events` and `system_events`: decoders
//! append one row at a time, the pipeline takes a [`RecordBatch`] per chunk.

use std::borrow::Cow;
use std::hash::BuildHasher;
use std::sync::Arc;

use arrow::array::NullBufferBuilder;
use arrow::array::{
    ArrayBuilder, ArrayRef, DictionaryArray, Int32Array, Int32Builder, Int64Builder, StringArray,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
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

/// A dictionary-encoded string column.
///
/// arrow's `StringDictionaryBuilder` hashes every value; here a value equal to
/// the previous row's (the same app, outcome, action or role, row after row)
/// reuses its key after one short compare, and the others go through foldhash.
/// The hash table is open addressing over keys alone (linear probing, at
/// most half full): a slot is compared against the value bytes the array
/// already holds, so a new value is copied once, and short values are
/// compared inline rather than through `memcmp`. hashbrown's table, with its
/// compare closure called out of line, cost 150 instructions per lookup here.
struct Dict {
    keys: Vec<i32>,
    nulls: NullBufferBuilder,
    /// The distinct values, back to back, and where each starts.
    offsets: Vec<i32>,
    values: Vec<u8>,
    /// Key + 1 of the value hashed to (or probed on to) each slot; 0 is empty.
    /// The length is a power of two.
    slots: Vec<u32>,
    hasher: foldhash::fast::RandomState,
    /// Key of the last value appended, or -1.
    last: i32,
    /// Where that value is in `values` (empty while `last` is -1).
    last_value: std::ops::Range<usize>,
}

/// Value `k` of a dictionary's `offsets`/`values`.
#[inline(always)]
fn dict_value<'v>(offsets: &[i32], values: &'v [u8], k: i32) -> &'v [u8] {
    let k = k as usize;
    &values[offsets[k] as usize..offsets[k + 1] as usize]
}

/// `a == b`, with strings of up to 16 bytes (user ids, MRNs, codes, JSON
/// keys) compared by two overlapping word loads instead of a `memcmp` call.
#[inline(always)]
pub(super) fn short_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if (8..=16).contains(&n) {
        let w = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().unwrap());
        w(a, 0) == w(b, 0) && w(a, n - 8) == w(b, n - 8)
    } else if (4..8).contains(&n) {
        let w = |s: &[u8], i: usize| u32::from_le_bytes(s[i..i + 4].try_into().unwrap());
        w(a, 0) == w(b, 0) && w(a, n - 4) == w(b, n - 4)
    } else if n < 4 {
        a.iter().zip(b).all(|(x, y)| x == y)
    } else {
        a == b
    }
}

impl Dict {
    fn with_capacity(rows: usize, distinct: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(distinct + 1);
        offsets.push(0);
        Self {
            keys: Vec::with_capacity(rows),
            nulls: NullBufferBuilder::new(rows),
            offsets,
            values: Vec::with_capacity(bytes),
            slots: vec![0; (2 * distinct).next_power_of_two().max(16)],
            hasher: Default::default(),
            last: -1,
            last_value: 0..0,
        }
    }

    /// The key of `s`: the last row's after one compare (inlined into the
    /// column appends), else [`Self::lookup`].
    #[inline(always)]
    fn key(&mut self, s: &[u8]) -> i32 {
        if short_eq(&self.values[self.last_value.clone()], s) && self.last >= 0 {
            return self.last;
        }
        self.lookup(s)
    }

    /// The key of `s` from the hash table, adding `s` when it is new.
    #[inline(never)]
    fn lookup(&mut self, s: &[u8]) -> i32 {
        let distinct = self.offsets.len() - 1;
        if 2 * (distinct + 1) > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = self.hasher.hash_one(s) as usize & mask;
        let key = loop {
            let slot = self.slots[i];
            if slot == 0 {
                self.values.extend_from_slice(s);
                self.offsets.push(self.values.len() as i32);
                self.slots[i] = distinct as u32 + 1;
                break distinct as i32;
            }
            let k = slot as i32 - 1;
            if short_eq(dict_value(&self.offsets, &self.values, k), s) {
                break k;
            }
            i = (i + 1) & mask;
        };
        self.last = key;
        let k = key as usize;
        self.last_value = self.offsets[k] as usize..self.offsets[k + 1] as usize;
        key
    }

    /// Makes the table four times the size of the values it holds (so at most
    /// half full until they double) and places every key again.
    #[cold]
    fn grow(&mut self) {
        let distinct = self.offsets.len() - 1;
        let mut slots = vec![0u32; (4 * (distinct + 1)).next_power_of_two()];
        let mask = slots.len() - 1;
        for k in 0..distinct {
            let mut i = self
                .hasher
                .hash_one(dict_value(&self.offsets, &self.values, k as i32))
                as usize
                & mask;
            while slots[i] != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = k as u32 + 1;
        }
        self.slots = slots;
    }

    #[inline(always)]
    fn append_value(&mut self, s: &str) {
        let k = self.key(s.as_bytes());
        self.keys.push(k);
        self.nulls.append_non_null();
    }

    #[inline(always)]
    fn append_option(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.append_value(s),
            None => {
                self.keys.push(0);
                self.nulls.append_null();
            }
        }
    }

    fn finish(&mut self) -> DictionaryArray<Int32Type> {
        let keys = Int32Array::new(
            ScalarBuffer::from(std::mem::take(&mut self.keys)),
            self.nulls.finish(),
        );
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        let values = StringArray::new(
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            Buffer::from_vec(std::mem::take(&mut self.values)),
            None,
        );
        self.slots.fill(0);
        self.last = -1;
        self.last_value = 0..0;
        DictionaryArray::try_new(keys, Arc::new(values))
            .expect("every key indexes a value appended with it")
    }
}

/// The `source` column of a chunk's batch: one value, `rows` times.
fn source_column(source: &str, rows: usize) -> DictionaryArray<Int32Type> {
    DictionaryArray::new(
        Int32Array::from(vec![0; rows]),
        Arc::new(StringArray::from(vec![source])),
    )
}

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
        let source_col = source_column(source, self.len());
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

/// One `system_events` row, borrowing from its line.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SystemRow<'a> {
    /// UTC microseconds since the epoch.
    pub ts: i64,
    /// Sending host.
    pub host: Option<&'a str>,
    /// Application.
    pub app: Option<&'a str>,
    /// Process id as written.
    pub pid: Option<&'a str>,
    /// Facility name.
    pub facility: Option<&'static str>,
    /// Severity name.
    pub severity: Option<&'static str>,
    /// RFC 5424 MSGID.
    pub msgid: Option<&'a str>,
    /// RFC 5424 structured data.
    pub structured_data: Option<&'a str>,
    /// The message (continuation lines joined with newlines).
    pub message: Cow<'a, str>,
    /// Normalised meaning.
    pub event_type: &'static str,
    /// The account the event is about.
    pub user: Option<&'a str>,
    /// Remote address.
    pub src_ip: Option<&'a str>,
    /// Remote port.
    pub src_port: Option<u16>,
}

/// Builders for every `system_events` column but `source` (see [`AccessBuilder`]).
pub struct SystemBuilder {
    ts: TimestampMicrosecondBuilder,
    host: Dict,
    app: Dict,
    pid: StringBuilder,
    facility: Dict,
    severity: Dict,
    msgid: StringBuilder,
    structured_data: StringBuilder,
    message: StringBuilder,
    event_type: Dict,
    user: StringBuilder,
    src_ip: StringBuilder,
    src_port: Int32Builder,
    source_line: Int64Builder,
}

impl std::fmt::Debug for SystemBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemBuilder")
            .field("rows", &self.len())
            .finish()
    }
}

impl SystemBuilder {
    /// Builders sized for about `rows` rows.
    pub fn with_capacity(rows: usize) -> Self {
        let dict = || Dict::with_capacity(rows, 64, 64 * 16);
        let text = || StringBuilder::with_capacity(rows, rows * 8);
        Self {
            ts: TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            host: dict(),
            app: dict(),
            pid: text(),
            facility: dict(),
            severity: dict(),
            msgid: text(),
            structured_data: text(),
            message: StringBuilder::with_capacity(rows, rows * 80),
            event_type: dict(),
            user: text(),
            src_ip: text(),
            src_port: Int32Builder::with_capacity(rows),
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
    pub fn append(&mut self, row: &SystemRow<'_>, line: u64) {
        self.ts.append_value(row.ts);
        self.host.append_option(row.host);
        self.app.append_option(row.app);
        self.pid.append_option(row.pid);
        self.facility.append_option(row.facility);
        self.severity.append_option(row.severity);
        self.msgid.append_option(row.msgid);
        self.structured_data.append_option(row.structured_data);
        self.message.append_value(&row.message);
        self.event_type.append_value(row.event_type);
        self.user.append_option(row.user);
        self.src_ip.append_option(row.src_ip);
        self.src_port.append_option(row.src_port.map(i32::from));
        self.source_line.append_value(line as i64);
    }

    /// The rows as a batch of [`schema::system_events`], every row from `source`.
    pub fn finish(&mut self, source: &str) -> RecordBatch {
        let source_col = source_column(source, self.len());
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish()),
            Arc::new(self.host.finish()),
            Arc::new(self.app.finish()),
            Arc::new(self.pid.finish()),
            Arc::new(self.facility.finish()),
            Arc::new(self.severity.finish()),
            Arc::new(self.msgid.finish()),
            Arc::new(self.structured_data.finish()),
            Arc::new(self.message.finish()),
            Arc::new(self.event_type.finish()),
            Arc::new(self.user.finish()),
            Arc::new(self.src_ip.finish()),
            Arc::new(self.src_port.finish()),
            Arc::new(source_col),
            Arc::new(self.source_line.finish()),
        ];
        RecordBatch::try_new(schema::system_events(), columns)
            .expect("builders match the system_events schema")
    }
}

#[cfg(test)]
mod tests {
    use super::Dict;
    use arrow::array::{Array, AsArray};

    fn decoded(d: &mut Dict) -> Vec<Option<String>> {
        let a = d.finish();
        let values = a.values().as_string::<i32>().clone();
        (0..a.len())
            .map(|i| {
                a.is_valid(i)
                    .then(|| values.value(a.keys().value(i) as usize).to_string())
            })
            .collect()
    }

    #[test]
    fn short_eq_agrees_with_slice_equality() {
        let base: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for n in 0..=base.len() {
            let a = &base[..n];
            assert!(super::short_eq(a, a), "len {n}");
            assert!(n == 0 || !super::short_eq(a, &base[..n - 1]), "len {n}");
            for i in 0..n {
                let mut b = a.to_vec();
                b[i] ^= 1;
                assert!(!super::short_eq(a, &b), "len {n}, byte {i}");
            }
        }
    }

    #[test]
    fn dictionary_grows_past_its_first_size_and_keeps_every_value_once() {
        // 5,000 distinct values of every length 0-40 from a table sized for
        // 2, each seen again later: growth, probing and the last-row shortcut.
        let mut d = Dict::with_capacity(4, 2, 16);
        let value = |i: usize| format!("{:0w$}", i, w = i % 41);
        let mut want = Vec::new();
        for i in 0..5_000 {
            for v in [value(i), value(i), value(i / 2)] {
                d.append_value(&v);
                want.push(Some(v));
            }
        }
        assert_eq!(decoded(&mut d), want);
        for i in 0..5_000 {
            d.append_value(&value(i));
        }
        let distinct: std::collections::HashSet<String> = (0..5_000).map(value).collect();
        assert_eq!(d.finish().values().len(), distinct.len());
    }

    #[test]
    fn dictionary_keeps_values_nulls_and_repeats_and_starts_afresh() {
        let mut d = Dict::with_capacity(4, 2, 16);
        let rows = [
            Some("view"),
            Some("view"),
            None,
            Some("print"),
            Some("view"),
            Some(""),
        ];
        for r in rows {
            d.append_option(r);
        }
        let want: Vec<Option<String>> = rows.iter().map(|r| r.map(str::to_string)).collect();
        assert_eq!(decoded(&mut d), want);
        // Two distinct values, whatever the repeats.
        d.append_value("a");
        d.append_value("b");
        d.append_value("a");
        let a = d.finish();
        assert_eq!(
            a.values().len(),
            2,
            "a finished batch forgets the last one's values"
        );
        assert_eq!(a.keys().values().to_vec(), vec![0, 1, 0]);
    }
}
