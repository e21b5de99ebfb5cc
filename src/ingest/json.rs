//! Shared machinery of the JSON decoders: parsing one record in place with
//! simd-json into a reusable tape, and small accessors over tape values.

use simd_json::prelude::*;
use simd_json::tape::{Tape, Value};
use simd_json::{Buffers, fill_tape_padded};

/// A simd-json parser that keeps its buffers and tape between records, so a
/// steady stream of records allocates nothing.
pub struct TapeParser {
    buffers: Buffers,
    tape: Option<Tape<'static>>,
}

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
        }
    }
}

impl TapeParser {
    /// Parses `buf[..len]` in place (`buf` must hold at least
    /// [`simd_json::INPUT_PADDING`] bytes after `len`) and calls `f` with the
    /// root value. Strings handed out by the value borrow `buf`.
    pub fn parse<'i, R>(
        &mut self,
        buf: &'i mut [u8],
        len: usize,
        f: impl FnOnce(Value<'_, 'i>) -> R,
    ) -> Result<R, String> {
        let mut tape: Tape<'i> = self.tape.take().unwrap_or_else(Tape::null).reset();
        let parsed = fill_tape_padded(buf, len, &mut self.buffers, &mut tape);
        let result = match parsed {
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
