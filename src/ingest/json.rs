//! Shared machinery of the JSON decoders: parsing one record in place into a
//! reusable simd-json tape (by a plain reader for the common case, by
//! simd-json for the rest), and small accessors over tape values.

use simd_json::prelude::*;
use simd_json::tape::{Node, Tape, Value};
use simd_json::{Buffers, StaticNode, fill_tape_padded};

/// A parser that keeps its buffers and tape between records, so a steady
/// stream of records allocates nothing.
pub struct TapeParser {
    buffers: Buffers,
    tape: Option<Tape<'static>>,
    /// The plain reader's open objects and arrays.
    open: Vec<Open>,
    /// Whether [`plain_tape`] is tried first: turned off for the rest of the
    /// parser's life (a chunk) after [`PLAIN_GIVE_UP`] records in a row it
    /// left to simd-json (and by tests, to compare it with simd-json).
    pub(super) try_plain: bool,
    /// Records in a row that [`plain_tape`] left to simd-json.
    plain_misses: u32,
}

/// After this many records in a row that the plain reader could not read, a
/// chunk goes straight to simd-json (as in the JSON-lines flat path: a log
/// that escapes every `/` would otherwise pay for both readers).
const PLAIN_GIVE_UP: u32 = 32;

/// Objects and arrays nested deeper than this are left to simd-json.
const PLAIN_MAX_DEPTH: usize = 64;

impl std::fmt::Debug for TapeParser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TapeParser")
    }
}

impl Default for TapeParser {
    fn default() -> Self {
        Self {
            buffers: Buffers::new(4096),
            tape: Some(Tape::null()),
            open: Vec::new(),
            try_plain: true,
            plain_misses: 0,
        }
    }
}

impl TapeParser {
    /// A parser that leaves every record to simd-json, never trying
    /// [`plain_tape`]: `make bench`'s simd-json ceiling, and tests' reference.
    pub fn simd_json_only() -> Self {
        Self {
            try_plain: false,
            ..Self::default()
        }
    }

    /// Parses `buf[..len]` (`buf` must hold at least
    /// [`simd_json::INPUT_PADDING`] bytes after `len`) and calls `f` with the
    /// root value: read by [`plain_tape`] when it can, else by simd-json in
    /// place. Strings handed out by the value borrow `buf`.
    pub fn parse<R>(
        &mut self,
        buf: &mut [u8],
        len: usize,
        f: impl FnOnce(Value<'_, '_>) -> R,
    ) -> Result<R, String> {
        let mut tape = self.tape.take().unwrap_or_else(Tape::null).reset();
        if self.try_plain {
            // Not UTF-8: simd-json words the reason.
            let rec = simdutf8::basic::from_utf8(&buf[..len]).ok();
            if rec.is_some_and(|rec| plain_tape(rec, &mut tape.0, &mut self.open)) {
                self.plain_misses = 0;
                let result = f(tape.as_value());
                self.tape = Some(tape.reset());
                return Ok(result);
            }
            self.plain_misses += 1;
            self.try_plain = self.plain_misses < PLAIN_GIVE_UP;
        }
        // Emptied, the tape no longer borrows `buf`, which simd-json writes to.
        let mut tape = tape.reset();
        let result = match fill_tape_padded(buf, len, &mut self.buffers, &mut tape) {
            Ok(()) => Ok(f(tape.as_value())),
            Err(e) if matches!(e.error(), simd_json::ErrorType::InvalidUtf8) => {
                Err("invalid UTF-8".to_string())
            }
            Err(e) => Err(format!("malformed JSON: {:?}", e.error())),
        };
        self.tape = Some(tape.reset());
        result
    }
}

/// An object or array the plain reader is inside of: its header's place in
/// the tape, its members so far (counting the one being read), and whether
/// it is an object.
#[derive(Debug, Clone, Copy)]
struct Open {
    head: usize,
    len: usize,
    object: bool,
}

/// Reads `rec` as one JSON document into `out`, simd-json's tape, when
/// every string in it is free of escapes and every number is an integer of
/// at most 18 digits: the shape of FHIR AuditEvents as servers write them.
/// simd-json's own way (finding the structure 64 bytes at a time, then
/// walking it and copying every string out) was two fifths of FHIR
/// decoding; this walks the record once and copies nothing.
///
/// False for anything else, valid or not, which goes to simd-json: the
/// reasons for rejecting a record stay simd-json's. What is accepted is
/// valid JSON that simd-json reads to the same tape.
fn plain_tape<'r>(rec: &'r str, out: &mut Vec<Node<'r>>, open: &mut Vec<Open>) -> bool {
    let b = rec.as_bytes();
    out.clear();
    open.clear();
    let mut i = skip_ws(b, 0);
    loop {
        // One value.
        match b.get(i) {
            Some(b'"') => match string(rec, i, out) {
                Some(next) => i = next,
                None => return false,
            },
            Some(&c @ (b'{' | b'[')) => {
                let object = c == b'{';
                let empty = if object {
                    Node::Object { len: 0, count: 0 }
                } else {
                    Node::Array { len: 0, count: 0 }
                };
                i = skip_ws(b, i + 1);
                if b.get(i) == Some(if object { &b'}' } else { &b']' }) {
                    out.push(empty);
                    i += 1;
                } else {
                    if open.len() == PLAIN_MAX_DEPTH {
                        return false;
                    }
                    open.push(Open {
                        head: out.len(),
                        len: 1,
                        object,
                    });
                    out.push(empty);
                    if object {
                        match key(rec, i, out) {
                            Some(next) => i = next,
                            None => return false,
                        }
                    }
                    continue;
                }
            }
            Some(b'n') if b[i..].starts_with(b"null") => {
                out.push(Node::Static(StaticNode::Null));
                i += 4;
            }
            Some(b't') if b[i..].starts_with(b"true") => {
                out.push(Node::Static(StaticNode::Bool(true)));
                i += 4;
            }
            Some(b'f') if b[i..].starts_with(b"false") => {
                out.push(Node::Static(StaticNode::Bool(false)));
                i += 5;
            }
            Some(b'-' | b'0'..=b'9') => match integer(b, i) {
                Some((n, next)) => {
                    out.push(Node::Static(n));
                    i = next;
                }
                None => return false,
            },
            _ => return false,
        }
        // After a value: a comma goes on to the next member of the innermost
        // container; its bracket closes it, and what follows is after a value
        // again. Anything else (`nullx`, `1.5`, a missing comma) is not plain.
        loop {
            i = skip_ws(b, i);
            let Some(inner) = open.last_mut() else {
                return i == b.len();
            };
            match b.get(i) {
                Some(b',') => {
                    inner.len += 1;
                    i = skip_ws(b, i + 1);
                    if inner.object {
                        match key(rec, i, out) {
                            Some(next) => i = next,
                            None => return false,
                        }
                    }
                    break;
                }
                Some(&c @ (b'}' | b']')) if (c == b'}') == inner.object => {
                    let (len, count) = (inner.len, out.len() - inner.head - 1);
                    out[inner.head] = if inner.object {
                        Node::Object { len, count }
                    } else {
                        Node::Array { len, count }
                    };
                }
                _ => return false,
            }
            open.pop();
            i += 1;
        }
    }
}

/// Reads an object's key at `b[i]` and the colon after it: the index of the
/// value.
#[inline(always)]
fn key<'r>(rec: &'r str, i: usize, out: &mut Vec<Node<'r>>) -> Option<usize> {
    let b = rec.as_bytes();
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let i = skip_ws(b, string(rec, i, out)?);
    if b.get(i) == Some(&b':') {
        Some(skip_ws(b, i + 1))
    } else {
        None
    }
}

/// Reads the string whose opening quote is at `rec[i]` into `out`: the
/// index after its closing quote; `None` if it holds an escape or a control
/// character.
#[inline(always)]
fn string<'r>(rec: &'r str, i: usize, out: &mut Vec<Node<'r>>) -> Option<usize> {
    let b = rec.as_bytes();
    let end = i + 1 + first_special(&b[i + 1..])?;
    if b[end] != b'"' {
        return None;
    }
    // Both ends are quotes, so char boundaries: `get` never fails here.
    out.push(Node::String(rec.get(i + 1..end)?));
    Some(end + 1)
}

/// The integer starting at `b[i]` (`-?(0|[1-9][0-9]*)`, at most 18 digits,
/// so that it fits either sign) as simd-json stores it, and the index after
/// it. A fraction or exponent after it is refused by the caller, as what
/// follows a value must be a comma, a bracket or the end.
fn integer(b: &[u8], i: usize) -> Option<(StaticNode, usize)> {
    let negative = b[i] == b'-';
    let from = i + usize::from(negative);
    let mut end = from;
    let mut n: u64 = 0;
    while let Some(&d) = b.get(end).filter(|d| d.is_ascii_digit()) {
        n = n * 10 + u64::from(d - b'0');
        end += 1;
        if end - from > 18 {
            return None;
        }
    }
    if end == from || (b[from] == b'0' && end - from > 1) {
        return None;
    }
    let node = if negative {
        StaticNode::I64(-i64::try_from(n).ok()?)
    } else {
        StaticNode::U64(n)
    };
    Some((node, end))
}

/// The index of the first quote, backslash or control character in `b`.
/// Eight bytes at a time in a word (SWAR): log strings are a few bytes to a
/// few dozen, too short for memchr's vector loop to pay for its set-up
/// (memchr2 and a control-character pass per string: 0.93 s to Arrow for
/// 1.35 million records, against 0.73 s with this). Marking a whole record's
/// special bytes first, 32 at a time with AVX2, ran no faster.
#[inline(always)]
pub(super) fn first_special(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Each test sets the high bit of a byte that is (or, only above a byte
    // that truly is, may falsely seem) a match, so the lowest bit set in
    // their union is the first true match.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut at = 0;
    while let Some(w) = b.get(at..at + 8) {
        let w = u64::from_le_bytes(w.try_into().expect("eight bytes"));
        let hit = zero(w ^ (ONES * u64::from(b'"')))
            | zero(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGH);
        if hit != 0 {
            return Some(at + hit.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    b[at..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| at + p)
}

/// The index of the first byte at or after `i` that is not JSON whitespace.
pub(super) fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// `v[key]` as a string.
pub fn str_at<'i>(v: Value<'_, 'i>, key: &str) -> Option<&'i str> {
    v.get(key).and_then(|x| x.into_string())
}

/// Follows a dotted path of object keys (`a.b.c`); array elements by index (`a.0.b`).
pub fn path<'t, 'i>(v: Value<'t, 'i>, dotted: &[String]) -> Option<Value<'t, 'i>> {
    let mut cur = v;
    for key in dotted {
        cur = if cur.is_array() {
            cur.get_idx(key.parse().ok()?)?
        } else {
            cur.get(key.as_str())?
        };
    }
    Some(cur)
}

/// Elements of `v[key]` when it is an array (nothing otherwise).
pub fn array_at<'t, 'i>(v: Value<'t, 'i>, key: &str) -> impl Iterator<Item = Value<'t, 'i>> {
    v.get(key)
        .and_then(|a| a.as_array())
        .map(|a| a.iter())
        .into_iter()
        .flatten()
}

/// Truncates a value quoted in a reject reason: a reason names the problem, it
/// does not copy the record (which may hold patient data).
pub fn clip(s: &str) -> &str {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use simd_json::tape::Tape;
    use simd_json::{Buffers, fill_tape_padded};

    use super::{TapeParser, plain_tape};

    /// An AuditEvent as `emrwatch gen` (and most FHIR servers) write it.
    const AUDIT_EVENT: &str = r#"{"resourceType":"AuditEvent","type":{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest"},"subtype":[{"system":"http://hl7.org/fhir/restful-interaction","code":"read"}],"action":"R","id":"20261101-1","recorded":"2026-11-01T00:00:01.946Z","outcome":"0","agent":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/extra-security-role-type","code":"humanuser"}]},"role":[{"coding":[{"system":"urn:emrwatch:role","code":"physician"}]}],"who":{"identifier":{"system":"urn:emrwatch:staff","value":"u01297"}},"requestor":true,"network":{"address":"10.0.5.17","type":"2"}}],"source":{"observer":{"display":"EMR"}},"entity":[{"what":{"reference":"Patient/MRN0034026"},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"1"}},{"what":{"reference":"ImagingStudy/20261101-1"}}]}"#;

    /// simd-json's tape of `rec` (printed), or its error.
    fn simd_json_tape(rec: &[u8]) -> Result<String, String> {
        let mut buf = rec.to_vec();
        buf.extend_from_slice(&[b' '; simd_json::INPUT_PADDING]);
        let mut tape = Tape::null().reset();
        let mut buffers = Buffers::new(rec.len());
        fill_tape_padded(&mut buf, rec.len(), &mut buffers, &mut tape)
            .map(|()| format!("{:?}", tape.0))
            .map_err(|e| format!("{:?}", e.error()))
    }

    /// The plain reader's tape of `rec` (printed) if it reads it; `rec`
    /// must be UTF-8, as [`TapeParser::parse`] checks first.
    fn plain_reader_tape(rec: &[u8]) -> Option<String> {
        let rec = std::str::from_utf8(rec).ok()?;
        let (mut out, mut open) = (Vec::new(), Vec::new());
        plain_tape(rec, &mut out, &mut open).then(|| format!("{out:?}"))
    }

    #[test]
    fn the_plain_reader_reads_what_servers_write_and_leaves_the_rest_to_simd_json() {
        let pretty = "{\n  \"resourceType\" : \"Bundle\",\n\t\"entry\": [ { \"n\": -12 }, [], {}, [ null, true, false ] ]\r\n}\n";
        for rec in [
            AUDIT_EVENT,
            pretty,
            "[]",
            "\"x\"",
            "0",
            "[-0,123456789012345678]",
        ] {
            assert_eq!(
                plain_reader_tape(rec.as_bytes()),
                simd_json_tape(rec.as_bytes()).ok(),
                "{rec}"
            );
        }
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        for rec in [
            r#"{"reference":"Patient\/1"}"#,
            r#"{"a":"\u00e9"}"#,
            r#"{"a":1.5}"#,
            r#"{"a":1e3}"#,
            r#"{"a":1234567890123456789}"#,
            r#"{"a":01}"#,
            r#"{"a":-}"#,
            r#"{"a":nullx}"#,
            r#"{"a":nul}"#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{"a":1 "b":2}"#,
            r#"[1 2]"#,
            r#"{"a":[1}"#,
            r#"{"a":1}}"#,
            r#"{"a":1} x"#,
            r#"{1:2}"#,
            "{\"a\":\"tab\there\"}",
            r#"{"a":"unterminated}"#,
            "",
            " ",
            &deep,
        ] {
            assert_eq!(plain_reader_tape(rec.as_bytes()), None, "{rec}");
        }
    }

    /// Parsing through [`TapeParser`], a chunk of records that are not plain
    /// stops trying the plain reader; one now and then does not.
    #[test]
    fn a_chunk_of_escaped_records_goes_straight_to_simd_json() {
        let escaped = br#"{"reference":"Patient\/1"}"#;
        let parse = |p: &mut TapeParser, rec: &[u8]| {
            let mut buf = rec.to_vec();
            buf.extend_from_slice(&[b' '; simd_json::INPUT_PADDING]);
            p.parse(&mut buf, rec.len(), |v| format!("{v:?}")).unwrap()
        };
        let mut p = TapeParser::default();
        for misses in 0..super::PLAIN_GIVE_UP {
            assert!(p.try_plain, "gave up after {misses} misses");
            parse(&mut p, escaped);
        }
        assert!(!p.try_plain);
        assert!(parse(&mut p, escaped).contains("Patient/1"));

        let mut p = TapeParser::default();
        for n in 0..100 {
            let rec = if n % 10 == 9 {
                &escaped[..]
            } else {
                AUDIT_EVENT.as_bytes()
            };
            parse(&mut p, rec);
        }
        assert!(p.try_plain);

        // The benchmarks' simd-json ceiling never tries it.
        let mut p = TapeParser::simd_json_only();
        assert!(parse(&mut p, AUDIT_EVENT.as_bytes()).contains("u01297"));
        assert!(!p.try_plain);
    }

    /// JSON put together from values that are plain and values that are not,
    /// in objects and arrays, a byte sometimes overwritten and the end
    /// sometimes cut off.
    fn documents() -> impl Strategy<Value = Vec<u8>> {
        let plain = proptest::sample::select(vec![
            "null",
            "true",
            "false",
            "0",
            "-0",
            "12",
            "-7",
            "123456789012345678",
            "-123456789012345678",
            "\"\"",
            "\"a\"",
            "\"é 漢\"",
            "\"Patient/1\"",
        ]);
        let not_plain = proptest::sample::select(vec![
            "007",
            "1.5",
            "-2e3",
            "1E2",
            "1234567890123456789",
            "18446744073709551615",
            "\"a\\\"b\"",
            "\"a\\/b\"",
            "\"a\\u00e9\"",
            "nul",
            "tru",
        ]);
        let leaf = prop_oneof![8 => plain, 1 => not_plain].prop_map(String::from);
        let value = leaf.prop_recursive(4, 40, 6, |inner| {
            let sep = proptest::sample::select(vec![",", " , ", ",\n  ", "\t,"]);
            let key = proptest::sample::select(vec!["a", "resourceType", "", "é", "k\\\"", "a"]);
            prop_oneof![
                (proptest::collection::vec(inner.clone(), 0..5), sep.clone())
                    .prop_map(|(v, sep)| format!("[{}]", v.join(sep))),
                (proptest::collection::vec((key, inner), 0..5), sep).prop_map(|(kv, sep)| {
                    let members: Vec<String> =
                        kv.iter().map(|(k, v)| format!("\"{k}\" : {v}")).collect();
                    format!("{{{}}}", members.join(sep))
                }),
            ]
        });
        (
            value,
            proptest::option::of((
                0usize..400,
                proptest::sample::select(vec![
                    b'{', b'}', b'[', b']', b',', b':', b'"', b'\\', b' ', b'1', b'.', 0x01, 0xff,
                    0xc3, 0x80,
                ]),
            )),
            proptest::option::weighted(0.1, 0usize..400),
        )
            .prop_map(|(doc, damage, cut)| {
                let mut doc = doc.into_bytes();
                if let Some((at, byte)) = damage {
                    let at = at % doc.len();
                    doc[at] = byte;
                }
                if let Some(cut) = cut {
                    doc.truncate(cut % (doc.len() + 1));
                }
                doc
            })
    }

    proptest! {
        /// Whatever the plain reader reads, simd-json reads to the same tape.
        #[test]
        fn the_plain_reader_and_simd_json_read_alike(doc in documents()) {
            if let Some(plain) = plain_reader_tape(&doc) {
                prop_assert_eq!(Ok(plain), simd_json_tape(&doc));
            }
        }
    }

    #[test]
    fn first_special_finds_the_first_quote_backslash_or_control_byte() {
        for len in 0..40 {
            for at in 0..len {
                for special in [b'"', b'\\', 0x00, 0x1f] {
                    let mut b: Vec<u8> = (0..len)
                        .map(|i| b"az09 ~\x7f\x80\xff\x21\x23\x5b\x5d\x20"[i % 14])
                        .collect();
                    b[at] = special;
                    if at + 1 < len {
                        b[at + 1] = b'"';
                    }
                    assert_eq!(super::first_special(&b), Some(at), "{b:?}");
                }
            }
            let b: Vec<u8> = (0..len)
                .map(|i| b"az09 ~\x7f\x80\xff\x21\x23\x5b\x5d\x20"[i % 14])
                .collect();
            assert_eq!(super::first_special(&b), None);
        }
    }
}
