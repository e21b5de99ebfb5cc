//! `csv`: delimited access-log exports (Epic-style), mapped to
//! `access_events` by a [`Mapping`] whose `[columns]` name header columns (or
//! 1-based column numbers when `[csv] header = false`).
//!
//! RFC 4180 with the liberties real exports take: `,` `;` tab or `|`
//! (told from the first line unless the mapping says), a field in double
//! quotes may hold delimiters, doubled quotes and line breaks; a quote inside
//! an unquoted field is just a character; CRLF or LF; a UTF-8 byte-order mark
//! before the header. Records are found by [`QuoteScanner`] in the framer
//! (a line break inside quotes does not end a record) and split here, both by
//! jumping between the few bytes that matter with memchr.

use std::borrow::Cow;
use std::sync::Arc;

use memchr::{memchr2, memchr3};

use super::builder::AccessBuilder;
use super::json::clip;
use super::mapping::{MAPPABLE, Mapping, col};
use super::{RecordOutcome, RecordSink};

/// The delimiters [`sniff_delimiter`] chooses among, most common first.
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Finds where CSV records end in a byte stream pushed piece by piece: at a
/// line feed outside quotes. Keeps its state between pieces.
#[derive(Debug, Clone)]
pub struct QuoteScanner {
    delimiter: u8,
    in_quotes: bool,
    at_field_start: bool,
    /// The piece ended on a quote inside quotes: the next byte says whether
    /// it closed the field or was the first of a doubled quote.
    quote_pending: bool,
    /// Line feeds inside quotes in the record being scanned.
    pub inner_lines: u64,
}

impl QuoteScanner {
    /// A scanner for records delimited by `delimiter`.
    pub fn new(delimiter: u8) -> Self {
        Self {
            delimiter,
            in_quotes: false,
            at_field_start: true,
            quote_pending: false,
            inner_lines: 0,
        }
    }

    /// Forgets the record being scanned (the framer dropped it).
    pub fn reset(&mut self) {
        *self = Self::new(self.delimiter);
    }

    /// The position in `data` of the line feed that ends the current record,
    /// or `None` if it does not end in `data` (the state carries over).
    pub fn find_end(&mut self, data: &[u8]) -> Option<usize> {
        let mut i = 0;
        if self.quote_pending {
            self.quote_pending = false;
            match data.first() {
                None => {
                    self.quote_pending = true;
                    return None;
                }
                Some(b'"') => i = 1,
                Some(_) => self.in_quotes = false,
            }
        }
        while i < data.len() {
            if self.in_quotes {
                let at = i + memchr2(b'"', b'\n', &data[i..])?;
                if data[at] == b'\n' {
                    self.inner_lines += 1;
                    i = at + 1;
                    continue;
                }
                match data.get(at + 1) {
                    None => {
                        self.quote_pending = true;
                        return None;
                    }
                    Some(b'"') => i = at + 2,
                    Some(_) => {
                        self.in_quotes = false;
                        self.at_field_start = false;
                        i = at + 1;
                    }
                }
                continue;
            }
            let Some(p) = memchr3(self.delimiter, b'"', b'\n', &data[i..]) else {
                if i < data.len() {
                    self.at_field_start = false;
                }
                return None;
            };
            let at = i + p;
            let skipped = p > 0;
            match data[at] {
                b'\n' => {
                    self.at_field_start = true;
                    return Some(at);
                }
                b'"' if self.at_field_start && !skipped => self.in_quotes = true,
                b'"' => self.at_field_start = false,
                _ => self.at_field_start = true,
            }
            i = at + 1;
        }
        None
    }
}

/// The delimiter of a file, from its first line: the candidate that occurs
/// most often outside quotes (`,` when none does).
pub fn sniff_delimiter(first_line: &[u8]) -> u8 {
    let mut counts = [0usize; DELIMITERS.len()];
    let mut in_quotes = false;
    for &b in first_line {
        if b == b'"' {
            in_quotes = !in_quotes;
        } else if !in_quotes && let Some(k) = DELIMITERS.iter().position(|d| *d == b) {
            counts[k] += 1;
        }
    }
    let best = (0..DELIMITERS.len()).max_by_key(|&k| (counts[k], usize::MAX - k));
    match best {
        Some(k) if counts[k] > 0 => DELIMITERS[k],
        _ => b',',
    }
}

/// Whether a first line looks like a CSV header or row: two or more fields
/// by some delimiter, and not a sentence (a header has few spaces).
pub fn looks_like_csv(first_line: &[u8]) -> bool {
    let line = first_line.strip_prefix(BOM).unwrap_or(first_line);
    let d = sniff_delimiter(line);
    let fields = 1 + line.iter().filter(|b| **b == d).count();
    let spaces = line.iter().filter(|b| **b == b' ').count();
    memchr::memchr(d, line).is_some() && spaces < fields * 2
}

/// Where one field lies in a record.
#[derive(Debug, Clone, Copy)]
struct Field {
    start: usize,
    end: usize,
    /// Quoted with doubled quotes inside: needs unescaping.
    escaped: bool,
}

/// Splits `record` at `delimiter` into `out`, quotes removed.
fn split(record: &[u8], delimiter: u8, out: &mut Vec<Field>) {
    out.clear();
    let mut i = 0;
    loop {
        if record.get(i) == Some(&b'"') {
            // A quoted field: up to the quote that is not doubled.
            let start = i + 1;
            let mut j = start;
            let mut escaped = false;
            let close = loop {
                match memchr::memchr(b'"', &record[j..]) {
                    None => break None,
                    Some(p) if record.get(j + p + 1) == Some(&b'"') => {
                        escaped = true;
                        j += p + 2;
                    }
                    Some(p) => break Some(j + p),
                }
            };
            let Some(close) = close else {
                // Unterminated: the rest of the record is the field.
                out.push(Field {
                    start,
                    end: record.len(),
                    escaped,
                });
                return;
            };
            // Anything between the closing quote and the delimiter is kept out.
            let next = memchr::memchr(delimiter, &record[close..]).map(|p| close + p);
            out.push(Field {
                start,
                end: close,
                escaped,
            });
            match next {
                Some(d) => i = d + 1,
                None => return,
            }
        } else {
            match memchr::memchr(delimiter, &record[i..]) {
                Some(p) => {
                    out.push(Field {
                        start: i,
                        end: i + p,
                        escaped: false,
                    });
                    i += p + 1;
                }
                None => {
                    out.push(Field {
                        start: i,
                        end: record.len(),
                        escaped: false,
                    });
                    return;
                }
            }
        }
    }
}

/// Which field of a record fills each canonical column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvLayout {
    /// The field delimiter.
    pub delimiter: u8,
    /// 0-based field index per column of [`MAPPABLE`].
    pub columns: Vec<Option<usize>>,
}

impl CsvLayout {
    /// The layout a header names; the error says which column is missing.
    pub fn from_header(header: &[u8], delimiter: u8, mapping: &Mapping) -> Result<Self, String> {
        let header = header.strip_prefix(BOM).unwrap_or(header);
        let header = std::str::from_utf8(header)
            .map_err(|_| "the CSV header is not UTF-8: file skipped".to_string())?;
        let mut fields = Vec::new();
        split(header.as_bytes(), delimiter, &mut fields);
        let names: Vec<&str> = fields
            .iter()
            .map(|f| header[f.start..f.end].trim())
            .collect();
        let find = |name: &str| {
            names
                .iter()
                .position(|n| *n == name)
                .or_else(|| names.iter().position(|n| n.eq_ignore_ascii_case(name)))
        };
        let mut columns = Vec::with_capacity(MAPPABLE.len());
        for spec in &mapping.fields {
            columns.push(find(&spec.path.join(".")));
        }
        for c in [col::TS, col::USER_ID, col::ACTION] {
            let spec = &mapping.fields[c];
            if columns[c].is_none() && (c == col::TS || spec.default.is_none()) {
                return Err(format!(
                    "the CSV header has no column `{}` for {} (it has: {}); name it under \
                     [columns] in a --mapping file: file skipped",
                    spec.path.join("."),
                    MAPPABLE[c],
                    clip(&names.join(", "))
                ));
            }
        }
        Ok(Self { delimiter, columns })
    }

    /// The layout of a file without a header: `[columns]` give 1-based numbers.
    pub fn numbered(delimiter: u8, mapping: &Mapping) -> Self {
        let columns = mapping
            .fields
            .iter()
            .map(|s| {
                s.path
                    .join(".")
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| n.checked_sub(1))
            })
            .collect();
        Self { delimiter, columns }
    }
}

/// Decodes CSV records.
#[derive(Debug)]
pub struct CsvDecoder {
    layout: Arc<CsvLayout>,
    mapping: Arc<Mapping>,
    fields: Vec<Field>,
}

impl CsvDecoder {
    /// A decoder for records laid out as `layout`, mapped by `mapping`.
    pub fn new(layout: Arc<CsvLayout>, mapping: Arc<Mapping>) -> Self {
        Self {
            layout,
            mapping,
            fields: Vec::new(),
        }
    }

    /// Decodes one record (line ending removed) into `out`.
    pub fn decode(
        &mut self,
        record: &[u8],
        line: u64,
        out: &mut AccessBuilder,
        sink: &mut RecordSink,
    ) -> RecordOutcome {
        let record = if line == 1 {
            record.strip_prefix(BOM).unwrap_or(record)
        } else {
            record
        };
        split(record, self.layout.delimiter, &mut self.fields);
        let mapping = &*self.mapping;
        let fields = &self.fields;
        let layout = &self.layout;
        let mut bad_utf8 = None;
        let mut value = |c: usize| -> Option<Cow<'_, str>> {
            let f = fields.get(layout.columns[c]?)?;
            let raw = &record[f.start..f.end];
            let Ok(text) = std::str::from_utf8(raw) else {
                bad_utf8.get_or_insert(c);
                return None;
            };
            Some(if f.escaped {
                Cow::Owned(text.replace("\"\"", "\""))
            } else {
                Cow::Borrowed(text)
            })
        };
        let ts_name = || mapping.fields[col::TS].path.join(".");
        let result = match value(col::TS) {
            None => Err(format!("missing timestamp column `{}`", ts_name())),
            Some(t) => mapping
                .timestamp
                .parse_str(t.trim())
                .ok_or_else(|| format!("unparseable timestamp in `{}`: {:?}", ts_name(), clip(&t))),
        }
        .and_then(|ts| mapping.row(ts, &mut value));
        let result = match bad_utf8 {
            Some(c) => Err(format!(
                "invalid UTF-8 in column `{}`",
                mapping.fields[c].path.join(".")
            )),
            None => result,
        };
        match result {
            Ok(row) => {
                out.append(&row, line);
                RecordOutcome::stored(1)
            }
            Err(reason) => {
                sink.reject(line, reason);
                RecordOutcome::rejected()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(record: &str, d: u8) -> Vec<String> {
        let mut out = Vec::new();
        split(record.as_bytes(), d, &mut out);
        out.iter()
            .map(|f| {
                let s = &record[f.start..f.end];
                if f.escaped {
                    s.replace("\"\"", "\"")
                } else {
                    s.to_string()
                }
            })
            .collect()
    }

    #[test]
    fn fields_split_with_quotes_delimiters_and_doubled_quotes() {
        assert_eq!(fields("a,b,,c", b','), ["a", "b", "", "c"]);
        assert_eq!(fields("a,", b','), ["a", ""]);
        assert_eq!(
            fields(r#""x, y","say ""hi""",z"#, b','),
            ["x, y", r#"say "hi""#, "z"]
        );
        assert_eq!(fields("\"two\nlines\";b", b';'), ["two\nlines", "b"]);
        assert_eq!(fields(r#"5" screen,b"#, b','), [r#"5" screen"#, "b"]);
        assert_eq!(fields("a\t\"b\tc\"\td", b'\t'), ["a", "b\tc", "d"]);
        assert_eq!(fields("a|\"unterminated|b", b'|'), ["a", "unterminated|b"]);
        assert_eq!(fields("", b','), [""]);
    }

    /// Pushes `text` in pieces of `n` bytes; returns the records' ends
    /// (absolute positions) and inner line counts.
    fn scan(text: &str, n: usize) -> Vec<(usize, u64)> {
        let mut q = QuoteScanner::new(b',');
        let mut out = Vec::new();
        let bytes = text.as_bytes();
        let mut base = 0;
        for piece in bytes.chunks(n) {
            let mut i = 0;
            while let Some(p) = q.find_end(&piece[i..]) {
                out.push((base + i + p, q.inner_lines));
                q.inner_lines = 0;
                i += p + 1;
            }
            base += piece.len();
        }
        out
    }

    #[test]
    fn records_end_at_line_feeds_outside_quotes_however_the_bytes_arrive() {
        let text = "a,\"b\nc\",d\ne,\"\"\"\",f\ng,5\" x,\"y\"\"\n\"\n";
        let want = vec![(9, 1), (18, 0), (32, 1)];
        for n in 1..=text.len() {
            assert_eq!(scan(text, n), want, "pieces of {n}");
        }
    }

    #[test]
    fn the_delimiter_is_told_from_the_first_line() {
        assert_eq!(sniff_delimiter(b"ts,user,action"), b',');
        assert_eq!(sniff_delimiter(b"ts;user;\"a,b\";action"), b';');
        assert_eq!(sniff_delimiter(b"ts\tuser\taction"), b'\t');
        assert_eq!(sniff_delimiter(b"ts|user|action"), b'|');
        assert_eq!(sniff_delimiter(b"nothing here"), b',');
        assert!(looks_like_csv(b"\xEF\xBB\xBFts;user_id;action"));
        assert!(!looks_like_csv(b"Just a sentence, with a comma in it."));
        assert!(!looks_like_csv(b"plain text"));
    }
}
