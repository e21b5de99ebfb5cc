//! Framing: cutting a decompressed byte stream into records.
//!
//! Bytes are pushed in as they arrive (from a file, an object-store stream or a
//! decompressor) and complete records come out grouped in [`Chunk`]s of a few
//! MiB, which the decoders then parse in parallel. The framer knows nothing of
//! JSON or CSV: formats only ever see one record at a time.
//!
//! Two modes: newline-delimited records (NDJSON, CSV rows, syslog lines), and
//! one whole document per object (a pretty-printed FHIR resource or Bundle).
//! Both have a size limit, and a record over it is dropped as it streams past,
//! never buffered whole.

use std::sync::Arc;

use memchr::memchr;

use super::csv::QuoteScanner;

/// One record's place in a [`Chunk`] buffer and in its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Start of the record in [`Chunk::buf`].
    pub start: usize,
    /// End (exclusive) of the record in [`Chunk::buf`], line ending removed.
    pub end: usize,
    /// 1-based line number of the record's first line in the decompressed source.
    pub line: u64,
    /// Byte offset of the record in the decompressed source.
    pub offset: u64,
}

/// A record that the framer itself rejected (too long, or a broken stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameReject {
    /// 1-based line number.
    pub line: u64,
    /// Byte offset of the record in the decompressed source.
    pub offset: u64,
    /// Why.
    pub reason: String,
    /// The first bytes of the record.
    pub sample: Vec<u8>,
}

/// A group of complete records from one source, ready to decode.
#[derive(Debug, Default)]
pub struct Chunk {
    /// The source object's URL.
    pub source: Arc<str>,
    /// Record bytes back to back, followed by [`simd_json::INPUT_PADDING`]
    /// spare bytes so a JSON decoder can parse each record in place.
    pub buf: Vec<u8>,
    /// Where each record lies.
    pub spans: Vec<Span>,
    /// Records the framer dropped since the previous chunk.
    pub rejects: Vec<FrameReject>,
}

/// How many leading bytes of a rejected record are kept.
pub const SAMPLE_LEN: usize = 256;

/// A place in a source: a byte offset and the line number of the record there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// Byte offset in the (uncompressed) source.
    pub offset: u64,
    /// 1-based line number of the record starting at `offset`.
    pub line: u64,
}

/// Splits a stream into newline-delimited records (CRLF tolerated, blank lines skipped).
#[derive(Debug)]
pub struct LineFramer {
    source: Arc<str>,
    max_record: usize,
    target_chunk: usize,
    buf: Vec<u8>,
    spans: Vec<Span>,
    rejects: Vec<FrameReject>,
    /// Where the record being received starts in `buf`.
    partial_start: usize,
    /// Line number of the record being received.
    line: u64,
    /// Source offset of the record being received.
    offset: u64,
    /// Set while the record being received is over the limit and skipped.
    discarding: bool,
    discarded_len: u64,
    /// CSV: records end at line feeds outside quotes.
    quotes: Option<QuoteScanner>,
    /// Line feeds inside quotes of the record being skipped.
    discarded_lines: u64,
}

impl LineFramer {
    /// A framer for `source` that rejects records over `max_record` bytes and
    /// emits chunks of about `target_chunk` bytes.
    pub fn new(source: Arc<str>, max_record: usize, target_chunk: usize) -> Self {
        Self {
            source,
            max_record,
            target_chunk: target_chunk.max(1),
            buf: Vec::with_capacity(target_chunk + max_record.min(1 << 20)),
            spans: Vec::new(),
            rejects: Vec::new(),
            partial_start: 0,
            line: 1,
            offset: 0,
            discarding: false,
            discarded_len: 0,
            quotes: None,
            discarded_lines: 0,
        }
    }

    /// Frames CSV: a line feed inside a quoted field does not end a record.
    /// A record over the limit is skipped up to the next line feed, quoted or
    /// not, so one stray quote costs one record, not the rest of the file.
    pub fn with_quotes(mut self, delimiter: u8) -> Self {
        self.quotes = Some(QuoteScanner::new(delimiter));
        self
    }

    /// Feeds bytes; calls `emit` with each chunk that fills up.
    pub fn push(&mut self, mut data: &[u8], emit: &mut dyn FnMut(Chunk)) {
        while !data.is_empty() {
            let newline = match &mut self.quotes {
                Some(q) if !self.discarding => q.find_end(data),
                _ => memchr(b'\n', data),
            };
            if self.discarding {
                match newline {
                    None => {
                        self.extend_sample(data);
                        self.discarded_len += data.len() as u64;
                        return;
                    }
                    Some(pos) => {
                        self.extend_sample(&data[..pos]);
                        self.discarded_len += pos as u64;
                        self.end_discard(1);
                        data = &data[pos + 1..];
                        continue;
                    }
                }
            }
            let partial = self.buf.len() - self.partial_start;
            match newline {
                Some(pos) if partial + pos <= self.max_record => {
                    self.buf.extend_from_slice(&data[..pos]);
                    self.complete_record(pos as u64 + 1 + partial as u64);
                    data = &data[pos + 1..];
                    if self.buf.len() >= self.target_chunk {
                        emit(self.take_chunk());
                    }
                }
                Some(pos) => {
                    // Over the limit and complete in this push.
                    self.start_discard(&data[..pos]);
                    self.discarded_len += pos as u64;
                    self.end_discard(1);
                    data = &data[pos + 1..];
                }
                None if partial + data.len() > self.max_record => {
                    self.start_discard(data);
                    self.discarded_len += data.len() as u64;
                    return;
                }
                None => {
                    self.buf.extend_from_slice(data);
                    return;
                }
            }
        }
    }

    /// Ends the stream: the last record needs no trailing newline. Returns the
    /// final chunk (possibly empty of records but carrying rejects).
    pub fn finish(self) -> Chunk {
        self.finish_at().0
    }

    /// [`LineFramer::finish`], also returning where the stream ended.
    pub fn finish_at(mut self) -> (Chunk, Position) {
        if self.discarding {
            self.end_discard(0);
        } else if self.buf.len() > self.partial_start {
            let len = (self.buf.len() - self.partial_start) as u64;
            self.complete_record(len);
        }
        let at = self.position();
        (self.take_chunk(), at)
    }

    /// Ends a read of a file that is still being written: a last record
    /// without its line feed may be half written, so it is left out, and the
    /// position returned is where it starts (the next read begins there).
    pub fn finish_whole_lines(mut self) -> (Chunk, Position) {
        if self.discarding {
            // The skipped record is not over yet: the next read rejects it whole.
            self.rejects.pop();
            self.discarding = false;
            self.discarded_len = 0;
            self.discarded_lines = 0;
        }
        self.buf.truncate(self.partial_start);
        let at = self.position();
        (self.take_chunk(), at)
    }

    /// Where the record being received starts.
    pub fn position(&self) -> Position {
        Position {
            offset: self.offset,
            line: self.line,
        }
    }

    /// Continues numbering at `at`: the bytes pushed next are those of a
    /// resumed read starting there. Only between records.
    pub fn seek(&mut self, at: Position) {
        assert_eq!(self.partial_start, self.buf.len(), "seek between records");
        self.offset = at.offset;
        self.line = at.line;
    }

    /// The record in `buf[partial_start..]` is complete; `consumed` is how many
    /// source bytes it took, newline included.
    fn complete_record(&mut self, consumed: u64) {
        let mut end = self.buf.len();
        if end > self.partial_start && self.buf[end - 1] == b'\r' {
            end -= 1;
        }
        let blank = self.buf[self.partial_start..end]
            .iter()
            .all(u8::is_ascii_whitespace);
        if blank {
            self.buf.truncate(self.partial_start);
        } else {
            self.buf.truncate(end);
            self.spans.push(Span {
                start: self.partial_start,
                end,
                line: self.line,
                offset: self.offset,
            });
            self.partial_start = end;
        }
        self.line += 1 + self
            .quotes
            .as_mut()
            .map_or(0, |q| std::mem::take(&mut q.inner_lines));
        self.offset += consumed;
    }

    fn start_discard(&mut self, more: &[u8]) {
        let mut sample = self.buf[self.partial_start..].to_vec();
        sample.extend_from_slice(&more[..more.len().min(SAMPLE_LEN.saturating_sub(sample.len()))]);
        sample.truncate(SAMPLE_LEN);
        self.discarded_len = (self.buf.len() - self.partial_start) as u64;
        self.buf.truncate(self.partial_start);
        self.discarding = true;
        if let Some(q) = &mut self.quotes {
            self.discarded_lines = q.inner_lines;
            q.reset();
        }
        self.rejects.push(FrameReject {
            line: self.line,
            offset: self.offset,
            reason: String::new(),
            sample,
        });
    }

    /// Keeps filling the sample of the record being skipped, up to [`SAMPLE_LEN`].
    fn extend_sample(&mut self, data: &[u8]) {
        if let Some(r) = self.rejects.last_mut() {
            let room = SAMPLE_LEN.saturating_sub(r.sample.len());
            r.sample.extend_from_slice(&data[..data.len().min(room)]);
        }
    }

    /// `newline` is 1 when the record ended with a newline, 0 at end of stream.
    fn end_discard(&mut self, newline: u64) {
        let len = self.discarded_len;
        if let Some(r) = self.rejects.last_mut() {
            r.reason = format!(
                "record is {len} bytes, over the {} byte limit (raise --max-record-bytes if it is genuine)",
                self.max_record
            );
        }
        self.discarding = false;
        self.offset += len + newline;
        self.line += newline + std::mem::take(&mut self.discarded_lines);
        self.discarded_len = 0;
    }

    fn take_chunk(&mut self) -> Chunk {
        // Once per chunk, so checked in every build.
        assert_eq!(
            self.partial_start,
            self.buf.len(),
            "a chunk ends on a record boundary"
        );
        let mut buf = std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(self.target_chunk + self.max_record.min(1 << 20)),
        );
        buf.resize(buf.len() + simd_json::INPUT_PADDING, b' ');
        self.partial_start = 0;
        Chunk {
            source: self.source.clone(),
            buf,
            spans: std::mem::take(&mut self.spans),
            rejects: std::mem::take(&mut self.rejects),
        }
    }
}

/// Collects a whole object as a single record (one pretty-printed JSON
/// document), up to a size limit.
#[derive(Debug)]
pub struct DocumentFramer {
    source: Arc<str>,
    max_document: usize,
    buf: Vec<u8>,
    len: u64,
}

impl DocumentFramer {
    /// A collector that rejects documents over `max_document` bytes.
    pub fn new(source: Arc<str>, max_document: usize) -> Self {
        Self {
            source,
            max_document,
            buf: Vec::new(),
            len: 0,
        }
    }

    /// Feeds bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.len += data.len() as u64;
        if self.len <= self.max_document as u64 {
            self.buf.extend_from_slice(data);
        } else if !self.buf.is_empty() {
            // Keep only the sample; the rest streams past.
            self.buf.truncate(SAMPLE_LEN);
            self.buf.shrink_to_fit();
        }
    }

    /// The document as a chunk of one record (or one reject when too large).
    pub fn finish(self) -> Chunk {
        let mut chunk = Chunk {
            source: self.source,
            ..Chunk::default()
        };
        if self.len > self.max_document as u64 {
            let mut sample = self.buf;
            sample.truncate(SAMPLE_LEN);
            chunk.rejects.push(FrameReject {
                line: 1,
                offset: 0,
                reason: format!(
                    "document is {} bytes, over the {} byte limit (raise --max-document-bytes if it is genuine)",
                    self.len, self.max_document
                ),
                sample,
            });
        } else if !self.buf.iter().all(u8::is_ascii_whitespace) {
            let end = self.buf.len();
            chunk.buf = self.buf;
            chunk.spans.push(Span {
                start: 0,
                end,
                line: 1,
                offset: 0,
            });
        }
        chunk
            .buf
            .resize(chunk.buf.len() + simd_json::INPUT_PADDING, b' ');
        chunk
    }
}

/// Whether a JSON object starts with a complete one-line record (NDJSON) or
/// spans lines (a pretty-printed document). `head` is the start of the
/// decompressed object; returns `None` when more bytes are needed to tell.
pub fn sniff_json_layout(head: &[u8], at_eof: bool) -> Option<JsonLayout> {
    let first = head.iter().position(|b| !b.is_ascii_whitespace());
    let Some(first) = first else {
        return at_eof.then_some(JsonLayout::Lines);
    };
    match head[first] {
        // Syslog's <PRI>: lines.
        b'<' if head.get(first + 1).is_some_and(u8::is_ascii_digit) => {
            return Some(JsonLayout::Lines);
        }
        b'<' if head.len() == first + 1 && !at_eof => return None,
        // A JSON array, or XML (rejected whole by the decoder, not line by line).
        b'[' | b'<' => return Some(JsonLayout::Document),
        b'{' => {}
        _ => return Some(JsonLayout::Lines),
    }
    let line_end = match memchr(b'\n', &head[first..]) {
        Some(pos) => first + pos,
        None if at_eof => head.len(),
        None => return None,
    };
    let line = head[first..line_end].trim_ascii_end();
    Some(if line.ends_with(b"}") {
        JsonLayout::Lines
    } else {
        JsonLayout::Document
    })
}

/// The two ways a JSON source can be laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonLayout {
    /// One JSON value per line.
    Lines,
    /// One JSON value for the whole object.
    Document,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_all(input: &[u8], cut: usize, max: usize, target: usize) -> Vec<Chunk> {
        let mut f = LineFramer::new("mem://t".into(), max, target);
        let mut chunks = Vec::new();
        for piece in input.chunks(cut.max(1)) {
            f.push(piece, &mut |c| chunks.push(c));
        }
        chunks.push(f.finish());
        chunks
    }

    /// Text, line and offset.
    type Record = (String, u64, u64);

    fn records(chunks: &[Chunk]) -> Vec<Record> {
        chunks
            .iter()
            .flat_map(|c| {
                c.spans.iter().map(|s| {
                    (
                        String::from_utf8(c.buf[s.start..s.end].to_vec()).unwrap(),
                        s.line,
                        s.offset,
                    )
                })
            })
            .collect()
    }

    fn rejects(chunks: &[Chunk]) -> Vec<(u64, u64)> {
        chunks
            .iter()
            .flat_map(|c| c.rejects.iter().map(|r| (r.line, r.offset)))
            .collect()
    }

    #[test]
    fn same_records_however_the_input_is_cut() {
        let input = b"{\"a\":1}\r\n\n{\"b\":2}\n  \n{\"c\":3}";
        let expected = vec![
            ("{\"a\":1}".to_string(), 1, 0),
            ("{\"b\":2}".to_string(), 3, 10),
            ("{\"c\":3}".to_string(), 5, 21),
        ];
        for cut in [1, 2, 3, 7, 100] {
            for target in [1, 8, 1 << 20] {
                let chunks = frame_all(input, cut, 1024, target);
                assert_eq!(records(&chunks), expected, "cut {cut} target {target}");
                assert!(rejects(&chunks).is_empty());
            }
        }
    }

    #[test]
    fn too_long_records_are_rejected_with_their_line_and_skipped() {
        let long = "x".repeat(50);
        let input = format!("short\n{long}\nok\n{long}");
        for cut in [1, 4, 13, 1000] {
            let chunks = frame_all(input.as_bytes(), cut, 10, 16);
            assert_eq!(
                records(&chunks),
                vec![("short".to_string(), 1, 0), ("ok".to_string(), 3, 57)],
                "cut {cut}"
            );
            assert_eq!(rejects(&chunks), vec![(2, 6), (4, 60)], "cut {cut}");
            let r = &chunks.iter().flat_map(|c| &c.rejects).next().unwrap();
            assert!(r.reason.contains("50 bytes"), "{}", r.reason);
            assert_eq!(r.sample.len(), 50);
        }
    }

    /// The framer's contract, written the slow and obvious way: records are
    /// the lines (CR removed, blank ones skipped), each with its line number
    /// and offset, and those over `max` are rejects.
    fn reference(input: &[u8], max: usize) -> (Vec<Record>, Vec<(u64, u64)>) {
        let (mut recs, mut rejs) = (Vec::new(), Vec::new());
        let mut offset = 0u64;
        let mut lines: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        if input.ends_with(b"\n") {
            lines.pop();
        }
        for (i, line) in lines.into_iter().enumerate() {
            let number = i as u64 + 1;
            let text = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > max {
                rejs.push((number, offset));
            } else if !text.iter().all(u8::is_ascii_whitespace) {
                recs.push((String::from_utf8_lossy(text).into_owned(), number, offset));
            }
            offset += line.len() as u64 + 1;
        }
        (recs, rejs)
    }

    proptest::proptest! {
        /// Random lines of letters, spaces, CRs and line feeds, cut anywhere,
        /// with limits and chunk sizes small enough that every path is taken:
        /// records split across pushes, CRLF split between them, blank
        /// lines, records over the limit, chunks emitted mid-push.
        #[test]
        fn frames_like_the_reference(
            input in proptest::collection::vec(
                proptest::sample::select(b"ab \r\n\n".to_vec()), 0..300),
            cut in 1usize..40,
            max in 1usize..30,
            target in 1usize..64,
        ) {
            let chunks = frame_all(&input, cut, max, target);
            let (recs, rejs) = reference(&input, max);
            proptest::prop_assert_eq!(records(&chunks), recs);
            proptest::prop_assert_eq!(rejects(&chunks), rejs);
            for c in &chunks {
                let end = c.spans.last().map_or(0, |s| s.end);
                proptest::prop_assert!(c.buf.len() >= end + simd_json::INPUT_PADDING);
            }
        }
    }

    #[test]
    fn chunks_end_with_json_padding() {
        let chunks = frame_all(b"{}\n{}\n", 100, 100, 1);
        for c in &chunks {
            let end = c.spans.last().map_or(0, |s| s.end);
            assert!(c.buf.len() >= end + simd_json::INPUT_PADDING);
        }
    }

    #[test]
    fn documents_have_a_size_limit() {
        let mut d = DocumentFramer::new("mem://d".into(), 8);
        d.push(b"{\n \"a\": 1\n}\n");
        let c = d.finish();
        assert!(c.spans.is_empty());
        assert!(c.rejects[0].reason.contains("over the 8 byte limit"));

        let mut d = DocumentFramer::new("mem://d".into(), 100);
        d.push(b"{\n \"a\": 1\n}\n");
        let c = d.finish();
        assert_eq!(c.spans.len(), 1);
    }

    #[test]
    fn sniffs_layout() {
        assert_eq!(
            sniff_json_layout(b"{\"a\":1}\n{", false),
            Some(JsonLayout::Lines)
        );
        assert_eq!(
            sniff_json_layout(b"{\n  \"a\": 1", false),
            Some(JsonLayout::Document)
        );
        assert_eq!(
            sniff_json_layout(b"  [ {}", false),
            Some(JsonLayout::Document)
        );
        assert_eq!(sniff_json_layout(b"{\"a\":", false), None);
        // Syslog's <PRI> is lines; XML is a document.
        assert_eq!(
            sniff_json_layout(b"<34>1 2003", false),
            Some(JsonLayout::Lines)
        );
        assert_eq!(
            sniff_json_layout(b"<?xml ", false),
            Some(JsonLayout::Document)
        );
        assert_eq!(sniff_json_layout(b"<", false), None);
        assert_eq!(
            sniff_json_layout(b"{\"a\":1}", true),
            Some(JsonLayout::Lines)
        );
    }
}
