//! `ndjson`: any JSON-lines access log, mapped to `access_events` by a
//! [`Mapping`] (dotted paths, value maps, a timestamp format).

use std::borrow::Cow;
use std::sync::Arc;

use simd_json::prelude::*;
use simd_json::tape::Value;

use super::builder::{AccessBuilder, AccessRow, short_eq};
use super::json::{TapeParser, clip, first_special, path, skip_ws};
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
    /// Whether [`Self::decode_flat`] is tried first: turned off for the rest
    /// of the chunk after [`FLAT_GIVE_UP`] records in a row it could not read
    /// (and by tests, to compare it with simd-json).
    flat: bool,
    /// Records in a row that [`Self::decode_flat`] left to simd-json.
    flat_misses: u32,
}

/// After this many records in a row that are not flat, a chunk goes straight
/// to simd-json: a log of nested records paid for trying each one (600,000
/// records with a nested user id: 0.50 s without the flat path, 0.69 s
/// trying it on every record, 0.48 s giving up).
const FLAT_GIVE_UP: u32 = 32;

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
            flat: true,
            flat_misses: 0,
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
        if self.flat {
            if let Some(row) = self.decode_flat(&buf[..len]) {
                out.append(&row, line);
                self.flat_misses = 0;
                return RecordOutcome::stored(1);
            }
            self.flat_misses += 1;
            self.flat = self.flat_misses < FLAT_GIVE_UP;
        }
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
                    match remembered(seen, first_keys, direct, i, k) {
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

impl NdjsonDecoder {
    /// The row of a record that is a flat object of plain values, the usual
    /// shape of a JSON-lines audit log, read without building a simd-json
    /// tape (building it was half of decoding such a log): simdutf8
    /// validates the record, and [`first_special`] finds each string's end.
    ///
    /// `None` sends the record to simd-json: anything but an object of
    /// strings and plain scalars (nesting, escapes, exponents, long numbers),
    /// a mapped column holding a number or boolean (simd-json prints those),
    /// and every record that would be rejected, so that the reason given is
    /// simd-json's and the mapping's, as without this path. What it accepts
    /// is valid JSON that simd-json reads to the same strings.
    fn decode_flat<'r>(&'r mut self, rec: &'r [u8]) -> Option<AccessRow<'r>> {
        let rec = simdutf8::basic::from_utf8(rec).ok()?;
        let first_keys = self.first_keys.as_slice();
        let direct = &self.direct;
        let mut at: [Option<&str>; MAPPED] = [None; MAPPED];
        let flat = flat_object(rec, |i, k, v| {
            let mut set = |c: usize| match v {
                // A deeper path into a string or null finds nothing.
                Plain::Str(s) => {
                    at[c] = if direct[c] { Some(s) } else { None };
                    true
                }
                // The timestamp's errors are the slow path's to word.
                Plain::Null => {
                    at[c] = None;
                    c != col::TS
                }
                // simd-json's printing of numbers and booleans is its own.
                Plain::Other if direct[c] => false,
                Plain::Other => {
                    at[c] = None;
                    true
                }
            };
            match remembered(&mut self.seen, first_keys, direct, i, k) {
                Target::Nothing => true,
                Target::Column(c) => set(c),
                Target::Columns(h) => first_keys[h].1.iter().all(|&c| set(c)),
            }
        });
        if !flat {
            return None;
        }
        let mapping = &*self.mapping;
        let ts = mapping.timestamp.parse_str(at[col::TS]?)?;
        mapping.row(ts, |c| at[c].map(Cow::Borrowed)).ok()
    }
}

/// What key `k`, the `i`th of its record, feeds: remembered from the record
/// before when that had the same key there, else looked up (and remembered).
#[inline(always)]
fn remembered(
    seen: &mut Vec<(Box<str>, Target)>,
    first_keys: &[(String, Vec<usize>)],
    direct: &[bool; MAPPED],
    i: usize,
    k: &str,
) -> Target {
    match seen.get(i) {
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
    }
}

/// A value of a flat record, as [`flat_object`] read it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Plain<'r> {
    /// A string without escapes.
    Str(&'r str),
    /// `null`.
    Null,
    /// `true`, `false`, or a number of at most 15 digits without exponent.
    Other,
}

/// Reads `rec` as one JSON object whose values are all [`Plain`], calling
/// `field(i, key, value)` for its `i`th member, in order. False, as soon as
/// the record is anything else or `field` returns false; a true is only
/// returned for valid JSON.
fn flat_object<'r>(rec: &'r str, mut field: impl FnMut(usize, &'r str, Plain<'r>) -> bool) -> bool {
    let b = rec.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return false;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return skip_ws(b, i + 1) == b.len();
    }
    let mut n = 0;
    loop {
        let Some((key, next)) = plain_str(rec, i) else {
            return false;
        };
        i = skip_ws(b, next);
        if b.get(i) != Some(&b':') {
            return false;
        }
        i = skip_ws(b, i + 1);
        let (value, next) = match b.get(i) {
            Some(b'"') => match plain_str(rec, i) {
                Some((s, next)) => (Plain::Str(s), next),
                None => return false,
            },
            Some(b'n') if b[i..].starts_with(b"null") => (Plain::Null, i + 4),
            Some(b't') if b[i..].starts_with(b"true") => (Plain::Other, i + 4),
            Some(b'f') if b[i..].starts_with(b"false") => (Plain::Other, i + 5),
            Some(b'-' | b'0'..=b'9') => match plain_number(b, i) {
                Some(next) => (Plain::Other, next),
                None => return false,
            },
            _ => return false,
        };
        if !field(n, key, value) {
            return false;
        }
        n += 1;
        // What follows a value must be a comma or the end of the object
        // (this also refuses `nullx` and `01`).
        i = skip_ws(b, next);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return skip_ws(b, i + 1) == b.len(),
            _ => return false,
        }
    }
}

/// The string starting with the quote at `rec[i]`, and the index after its
/// closing quote; `None` if it has an escape or a control character (or is
/// not a string).
#[inline(always)]
fn plain_str(rec: &str, i: usize) -> Option<(&str, usize)> {
    let b = rec.as_bytes();
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let end = i + 1 + first_special(&b[i + 1..])?;
    (b[end] == b'"').then(|| (&rec[i + 1..end], end + 1))
}

/// The index after the number starting at `b[i]`: `-?(0|[1-9][0-9]*)(.[0-9]+)?`
/// with at most 15 digits in all, which every JSON parser reads exactly.
fn plain_number(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    let digits = |mut i: usize| {
        let from = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i, i - from)
    };
    let (mut end, mut n) = digits(i);
    if n == 0 || (b[i] == b'0' && n > 1) {
        return None;
    }
    if b.get(end) == Some(&b'.') {
        let (e, f) = digits(end + 1);
        if f == 0 {
            return None;
        }
        (end, n) = (e, n + f);
    }
    (n <= 15).then_some(end)
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

    use std::sync::Arc;

    use arrow::record_batch::RecordBatch;

    use super::NdjsonDecoder;
    use crate::ingest::RecordSink;
    use crate::ingest::builder::AccessBuilder;
    use crate::ingest::mapping::Mapping;

    /// Decodes `lines` with the flat path tried first or not: the batch and
    /// the rejects (line, reason).
    fn decode_lines(
        lines: &[Vec<u8>],
        mapping: &Arc<Mapping>,
        flat: bool,
    ) -> (RecordBatch, Vec<(u64, String)>) {
        let mut d = NdjsonDecoder::new(mapping.clone());
        d.flat = flat;
        // Without the flat path, simd-json alone: the reference.
        d.parser.try_plain = flat;
        decode_with(&mut d, lines)
    }

    /// Decodes `lines` with `d` as it stands: the batch and the rejects.
    fn decode_with(d: &mut NdjsonDecoder, lines: &[Vec<u8>]) -> (RecordBatch, Vec<(u64, String)>) {
        let mut out = AccessBuilder::with_capacity(lines.len());
        let mut sink = RecordSink::new("mem://t".into());
        for (n, l) in lines.iter().enumerate() {
            let mut buf = l.clone();
            buf.extend_from_slice(&[b' '; simd_json::INPUT_PADDING]);
            sink.begin(0, l);
            d.decode(&mut buf, l.len(), n as u64 + 1, &mut out, &mut sink);
        }
        let rejects = sink.rejects.iter().map(|r| (r.line, r.reason.clone()));
        (out.finish("mem://t"), rejects.collect())
    }

    /// A mapping with a nested path, a key feeding two columns, and a value map.
    fn nested_mapping() -> Arc<Mapping> {
        let toml = "[columns]\nuser_id = \"actor.id\"\nresource = \"action\"\n\
                    [values.action]\nR = \"view\"\n";
        Arc::new(Mapping::parse(toml).expect("valid mapping"))
    }

    const PLAIN: &str =
        r#"{"ts":"2026-07-01T10:00:00Z","user_id":"u1","action":"view","patient_id":"M1"}"#;

    /// Lines the flat path must read as simd-json does, or leave to it.
    const SHAPES: &[&str] = &[
        PLAIN,
        r#"  { "ts" : "2026-07-01T10:00:00Z" ,	"user_id": "u1", "action":"view" }  "#,
        r#"{"ts":"2026-07-01T10:00:00Z","user_id":"u\u00e9","action":"view"}"#,
        r#"{"ts":"2026-07-01T10:00:00Z","user_id":"ü ñ 漢","action":"view","n":-0.5,"ok":true,"x":null}"#,
        r#"{"ts":"2026-07-01T10:00:00Z","user_id":12,"action":"view"}"#,
        r#"{"ts":"2026-07-01T10:00:00Z","user_id":"u1","action":"view","n":1e3}"#,
        r#"{"ts":"2026-07-01T10:00:00Z","user_id":"u1","action":"view","n":01}"#,
        r#"{"ts":"2026-07-01T10:00:00Z","user_id":"u1","action":"view","n":12345678901234567890}"#,
        r#"{"ts":"2026-07-01T10:00:00Z","user_id":"u1","action":"view","n":1.}"#,
        r#"{"ts":"2026-07-01T10:00:00Z","user_id":"u1","action":"view","n":nul}"#,
        r#"{"ts":"2026-07-01T10:00:00Z","user_id":"u1","action":"view","n":nullx}"#,
        r#"{"ts":"2026-07-01T10:00:00Z","user_id":"u1","action":"view",}"#,
        r#"{"ts":"2026-07-01T10:00:00Z","user_id":"u1","action":"view"} x"#,
        r#"{"ts":"2026-07-01T10:00:00Z","user_id":"u1","action":"view"}}"#,
        r#"{"ts":null,"user_id":"u1","action":"view"}"#,
        r#"{"ts":1782900000,"user_id":"u1","action":"view"}"#,
        r#"{"ts":"yesterday","user_id":"u1","action":"view"}"#,
        r#"{"user_id":"u1","action":"view"}"#,
        r#"{"ts":"2026-07-01T10:00:00Z","user_id":"u1","action":"dance"}"#,
        r#"{"ts":"2026-07-01T10:00:00Z","user_id":"u1","user_id":"u2","action":"view"}"#,
        r#"{"ts":"2026-07-01T10:00:00Z","actor":{"id":"u7"},"action":"R"}"#,
        r#"{"ts":"2026-07-01T10:00:00Z","actor":"u7","action":"R","user_id":"u1"}"#,
        r#"{"ts":"2026-07-01T10:00:00Z","user_id":"u1","action":"view","tags":["a"]}"#,
        r#"["ts"]"#,
        r#"{}"#,
        r#""#,
        "{\"ts\":\"2026-07-01T10:00:00Z\",\"user_id\":\"u\u{1}1\",\"action\":\"view\"}",
        r#"{"ts":"2026-07-01T10:00:00Z","user_id":"u1","action":"view","patient_id":12}"#,
    ];

    #[test]
    fn the_flat_path_reads_plain_lines_and_leaves_the_rest_to_simd_json() {
        let mapping = Arc::new(Mapping::default());
        let mut d = NdjsonDecoder::new(mapping);
        assert!(d.decode_flat(PLAIN.as_bytes()).is_some());
        assert!(d.decode_flat(SHAPES[1].as_bytes()).is_some(), "whitespace");
        assert!(d.decode_flat(SHAPES[3].as_bytes()).is_some(), "scalars");
        for leave in [2, 4, 5, 6, 12, 14, 17, 26, 27] {
            assert!(
                d.decode_flat(SHAPES[leave].as_bytes()).is_none(),
                "{}",
                SHAPES[leave]
            );
        }
        let bad_utf8 = [&PLAIN.as_bytes()[..20], &[0xff], &PLAIN.as_bytes()[20..]].concat();
        assert!(d.decode_flat(&bad_utf8).is_none());
    }

    #[test]
    fn the_flat_path_decodes_every_shape_as_simd_json_does() {
        let mut lines: Vec<Vec<u8>> = SHAPES.iter().map(|l| l.as_bytes().to_vec()).collect();
        lines.push([&PLAIN.as_bytes()[..20], &[0xff], &PLAIN.as_bytes()[20..]].concat());
        for mapping in [Arc::new(Mapping::default()), nested_mapping()] {
            let (flat, flat_rejects) = decode_lines(&lines, &mapping, true);
            let (tape, tape_rejects) = decode_lines(&lines, &mapping, false);
            assert_eq!(flat, tape);
            assert_eq!(flat_rejects, tape_rejects);
            assert!(flat.num_rows() >= 1 && !flat_rejects.is_empty());
        }
    }

    /// A log of nested records stops trying the flat path; a flat log with
    /// a bad record now and then keeps it.
    #[test]
    fn a_chunk_of_records_that_are_not_flat_goes_straight_to_simd_json() {
        let decode = |d: &mut NdjsonDecoder, line: &str| {
            decode_with(d, &[line.as_bytes().to_vec()]).0.num_rows()
        };
        let nested = r#"{"ts":"2026-07-01T10:00:00Z","actor":{"id":"u7"},"action":"R"}"#;
        let mut d = NdjsonDecoder::new(nested_mapping());
        for misses in 0..super::FLAT_GIVE_UP {
            assert!(d.flat, "gave up after {misses} misses");
            assert_eq!(decode(&mut d, nested), 1);
        }
        assert!(!d.flat);
        assert_eq!(decode(&mut d, nested), 1);

        let mut d = NdjsonDecoder::new(Arc::new(Mapping::default()));
        for n in 0..100 {
            let line = if n % 10 == 9 { SHAPES[2] } else { PLAIN };
            assert_eq!(decode(&mut d, line), 1);
        }
        assert!(d.flat);
    }

    proptest::proptest! {
        /// Records put together from keys, values and separators a log (or
        /// a corrupted one) may hold, one byte sometimes overwritten:
        /// decoded alike with and without the flat path.
        #[test]
        fn flat_and_tape_decoding_agree(
            records in proptest::collection::vec((
                proptest::bool::weighted(0.7),
                proptest::collection::vec((
                    proptest::sample::select(vec![
                        "ts", "user_id", "action", "patient_id", "outcome", "actor", "x", "u\\\"",
                    ]),
                    proptest::sample::select(vec![
                        "\"2026-07-01T10:00:00Z\"", "\"2026-07-01 10:00\"", "\"view\"", "\"R\"",
                        "\"success\"", "\"u1\"", "\"\"", "\"a\\\"b\"", "\"é\"", "0", "-12.5", "1e2",
                        "007", "true", "null", "{\"id\":\"u9\"}", "[1]", "nul",
                    ]),
                    proptest::sample::select(vec![",", " , ", ",\t"]),
                ), 0..8),
                proptest::option::of((0usize..200, proptest::num::u8::ANY)),
            ), 1..12),
        ) {
            let lines: Vec<Vec<u8>> = records
                .iter()
                .map(|(valid_start, fields, damage)| {
                    // Most records start as a row would, so that the fields
                    // after decide whether and how they are stored.
                    let mut l = b"{".to_vec();
                    if *valid_start {
                        l.extend_from_slice(br#""ts":"2026-07-01T10:00:00Z","user_id":"u1","action":"view""#);
                    }
                    for (n, (k, v, sep)) in fields.iter().enumerate() {
                        if n > 0 || *valid_start {
                            l.extend_from_slice(sep.as_bytes());
                        }
                        l.extend_from_slice(format!("\"{k}\":{v}").as_bytes());
                    }
                    l.push(b'}');
                    if let Some((at, byte)) = damage {
                        let at = at % l.len();
                        l[at] = *byte;
                    }
                    l
                })
                .collect();
            for mapping in [Arc::new(Mapping::default()), nested_mapping()] {
                let (flat, flat_rejects) = decode_lines(&lines, &mapping, true);
                let (tape, tape_rejects) = decode_lines(&lines, &mapping, false);
                proptest::prop_assert_eq!(flat, tape);
                proptest::prop_assert_eq!(flat_rejects, tape_rejects);
            }
        }
    }

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
