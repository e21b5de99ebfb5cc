//! `ndjson`: any JSON-lines access log, mapped to `access_events` by a
//! [`Mapping`] (dotted paths, value maps, a timestamp format).

use std::borrow::Cow;
use std::sync::Arc;

use simd_json::prelude::*;
use simd_json::tape::Value;

use super::builder::{AccessBuilder, AccessRow, short_eq};
use super::json::{TapeParser, clip, path};
use super::mapping::{Mapping, col};
use super::{RecordOutcome, RecordSink};

/// Decodes mapped JSON-lines records.
#[derive(Debug)]
pub struct NdjsonDecoder {
    parser: TapeParser,
    mapping: Arc<Mapping>,
    /// The distinct first keys of the mapping's paths, with the columns that
    /// start there: a record's top level is walked once, instead of once per
    /// column (per-column lookups were a fifth of the decode time).
    first_keys: Vec<(String, Vec<usize>)>,
    /// For each position in the last record's top level: its key and what
    /// that key feeds. A log writes its keys in the same order on every line,
    /// so one compare per key usually finds the columns.
    seen: Vec<(Box<str>, Target)>,
    /// Columns whose path is a single key: their value is the key's.
    direct: [bool; MAPPED],
}

/// What a top-level key of a record feeds.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// No column.
    Nothing,
    /// One column, whose path is that key alone (the usual case).
    Column(usize),
    /// The columns of this `first_keys` entry (nested paths, or a key mapped twice).
    Columns(usize),
}

impl NdjsonDecoder {
    /// A decoder applying `mapping`.
    pub fn new(mapping: Arc<Mapping>) -> Self {
        let mut first_keys: Vec<(String, Vec<usize>)> = Vec::new();
        for (c, spec) in mapping.fields.iter().enumerate() {
            let Some(key) = spec.path.first() else {
                continue;
            };
            match first_keys.iter_mut().find(|(k, _)| k == key) {
                Some((_, cols)) => cols.push(c),
                None => first_keys.push((key.clone(), vec![c])),
            }
        }
        let direct = std::array::from_fn(|c| mapping.fields[c].path.len() == 1);
        Self {
            parser: TapeParser::default(),
            mapping,
            first_keys,
            seen: Vec::new(),
            direct,
        }
    }

    /// Decodes the record in `buf[..len]` (padded) into `out`.
    pub fn decode(
        &mut self,
        buf: &mut [u8],
        len: usize,
        line: u64,
        out: &mut AccessBuilder,
        sink: &mut RecordSink,
    ) -> RecordOutcome {
        let mapping = &self.mapping;
        // A slice, not the Vec: with simd-json's prelude in scope, `Vec::iter`
        // resolves to value-trait's `Array::iter`, which boxes an iterator
        // per call (an allocation per key of every record).
        let first_keys = self.first_keys.as_slice();
        let seen = &mut self.seen;
        let direct = &self.direct;
        let result = self
            .parser
            .parse(buf, len, |root| {
                let Some(obj) = root.as_object() else {
                    return Err("not a JSON object".to_string());
                };
                // The value at each column's path, found in one pass over the top level.
                let mut at: [Option<Value>; MAPPED] = [None; MAPPED];
                for (i, (k, v)) in obj.iter().enumerate() {
                    let target = match seen.get(i) {
                        Some((key, t)) if short_eq(key.as_bytes(), k.as_bytes()) => *t,
                        _ => {
                            let t = target(first_keys, direct, k);
                            if i < seen.len() {
                                seen[i] = (k.into(), t);
                            } else if i == seen.len() && i < MAX_SEEN {
                                seen.push((k.into(), t));
                            }
                            t
                        }
                    };
                    match target {
                        Target::Nothing => {}
                        Target::Column(c) => at[c] = Some(v),
                        Target::Columns(h) => {
                            for &c in &first_keys[h].1 {
                                at[c] = if direct[c] {
                                    Some(v)
                                } else {
                                    path(v, &mapping.fields[c].path[1..])
                                };
                            }
                        }
                    }
                }
                map_record(&at, mapping).map(|row| out.append(&row, line))
            })
            .and_then(|r| r);
        match result {
            Ok(()) => RecordOutcome::stored(1),
            Err(reason) => {
                sink.reject(line, reason);
                RecordOutcome::rejected()
            }
        }
    }
}

/// A scalar as text: strings as they are, numbers and booleans printed.
/// Small enough to inline into every column's lookup; the rare non-string
/// scalar goes out of line.
#[inline(always)]
fn text<'i>(v: Value<'_, 'i>) -> Option<Cow<'i, str>> {
    match v.into_string() {
        Some(s) => Some(Cow::Borrowed(s)),
        None => scalar_text(v),
    }
}

#[cold]
#[inline(never)]
fn scalar_text<'i>(v: Value<'_, 'i>) -> Option<Cow<'i, str>> {
    if v.is_null() || v.is_array() || v.is_object() {
        return None;
    }
    if let Some(i) = v.as_i64() {
        return Some(Cow::Owned(i.to_string()));
    }
    if let Some(u) = v.as_u64() {
        return Some(Cow::Owned(u.to_string()));
    }
    if let Some(f) = v.as_f64() {
        return Some(Cow::Owned(f.to_string()));
    }
    v.as_bool()
        .map(|b| Cow::Borrowed(if b { "true" } else { "false" }))
}

/// What top-level key `k` feeds, looked up in `first_keys`.
fn target(first_keys: &[(String, Vec<usize>)], direct: &[bool; MAPPED], k: &str) -> Target {
    match first_keys
        .iter()
        .position(|(key, _)| short_eq(key.as_bytes(), k.as_bytes()))
    {
        None => Target::Nothing,
        Some(h) => match first_keys[h].1.as_slice() {
            &[c] if direct[c] => Target::Column(c),
            _ => Target::Columns(h),
        },
    }
}

/// Top-level keys remembered per record: a record with more keys than any
/// log needs does not grow the decoder without bound.
const MAX_SEEN: usize = 64;

/// The number of mappable columns.
const MAPPED: usize = super::mapping::MAPPABLE.len();

fn map_record<'i>(
    at: &[Option<Value<'_, 'i>>; MAPPED],
    mapping: &'i Mapping,
) -> Result<AccessRow<'i>, String> {
    let ts_spec = &mapping.fields[col::TS];
    let ts_value = at[col::TS];
    // Only an error names the field: no allocation per record.
    let ts_name = || ts_spec.path.join(".");
    let ts = match ts_value {
        None => return Err(format!("missing timestamp field `{}`", ts_name())),
        Some(v) => {
            let parsed = if let Some(s) = v.into_string() {
                mapping.timestamp.parse_str(s)
            } else if let Some(i) = v.as_i64() {
                mapping.timestamp.from_i64(i)
            } else if let Some(x) = v.as_f64() {
                mapping.timestamp.from_f64(x)
            } else {
                None
            };
            parsed.ok_or_else(|| match v.into_string() {
                Some(s) => format!("unparseable timestamp in `{}`: {:?}", ts_name(), clip(s)),
                None => format!(
                    "unparseable timestamp in `{}`: not a string or number",
                    ts_name()
                ),
            })?
        }
    };
    mapping.row(ts, |c| at[c].and_then(text))
}

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;
    use arrow::compute::cast;
    use arrow::datatypes::DataType;

    use crate::ingest::{Format, IngestOptions, decode_bytes};

    /// The remembered key order is a guess: lines that change their key
    /// order, add unknown keys or leave keys out must decode the same.
    #[test]
    fn keys_in_any_order_on_any_line() {
        let lines = [
            r#"{"ts":"2026-07-01T10:00:00Z","user_id":"u1","action":"view","patient_id":"M1"}"#,
            r#"{"ts":"2026-07-01T10:00:01Z","user_id":"u2","action":"view","patient_id":"M2"}"#,
            r#"{"patient_id":"M3","action":"print","user_id":"u3","ts":"2026-07-01T10:00:02Z"}"#,
            r#"{"extra":1,"ts":"2026-07-01T10:00:03Z","user_id":"u4","action":"view"}"#,
            r#"{"ts":"2026-07-01T10:00:04Z","user_id":"u5","action":"export","patient_id":"M5"}"#,
            r#"{"ts":"2026-07-01T10:00:05Z","user":"u6","action":"view","patient_id":"M6"}"#,
        ];
        let data = lines.join("\n");
        let opts = IngestOptions {
            format: Format::Ndjson,
            ..IngestOptions::default()
        };
        let decoded = decode_bytes("mem://t", data.as_bytes(), &opts);
        let batch = &decoded[0].batch;
        let text = |name: &str| -> Vec<Option<String>> {
            let col = cast(batch.column_by_name(name).unwrap(), &DataType::Utf8).unwrap();
            col.as_string::<i32>()
                .iter()
                .map(|v| v.map(str::to_string))
                .collect()
        };
        let some = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
        assert_eq!(text("user_id"), some(&["u1", "u2", "u3", "u4", "u5"]));
        assert_eq!(
            text("action"),
            some(&["view", "view", "print", "view", "export"])
        );
        let mut patients = some(&["M1", "M2", "M3", "M5"]);
        patients.insert(3, None);
        assert_eq!(text("patient_id"), patients);
        // The line without `user_id` is rejected, with its line number.
        let rejects = &decoded[0].rejects;
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].line, 6);
    }
}
