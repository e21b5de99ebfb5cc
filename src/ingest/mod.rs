//! Ingest: from source objects to Arrow record batches.
//!
//! ```text
//! objects ─read_object─▶ decompress ─▶ frame ─▶ Work(chunk) ─decode_work─▶ Decoded(batch, rejects)
//!          (one blocking reader thread per object, in order)   (all cores, order kept)
//! ```
//!
//! [`decode_stream`] is the whole arrow: it yields one [`Decoded`] per chunk,
//! in source order, through bounded channels so memory stays flat however
//! large the input. Bad records never stop it: each becomes a [`Reject`].

pub mod atna;
pub mod builder;
pub mod csv;
pub mod fhir;
pub mod framing;
pub mod json;
pub mod mapping;
pub mod ndjson;
pub mod source;
pub mod syslog;
pub mod timestamp;

use std::io::Write;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use futures::{Stream, StreamExt};
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use self::builder::{AccessBuilder, SystemBuilder};
use self::csv::{CsvDecoder, CsvLayout};
use self::fhir::FhirDecoder;
use self::framing::{
    Chunk, DocumentFramer, JsonLayout, LineFramer, Position, SAMPLE_LEN, sniff_json_layout,
};
use self::mapping::Mapping;
use self::ndjson::NdjsonDecoder;
use self::source::{Compression, Reached, SourceObject};
use self::syslog::SyslogClock;

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Tell each object's format from its first record.
    Auto,
    /// HL7 FHIR AuditEvent (R4/R5), NDJSON or a Bundle / single resource per file.
    Fhir,
    /// JSON lines with a field mapping (`--mapping`).
    Ndjson,
    /// Syslog, RFC 3164 or RFC 5424 (told apart per line), into `system_events`.
    Syslog,
    /// Delimited access-log export (`,` `;` tab `|`), header names mapped by `--mapping`.
    Csv,
    /// IHE ATNA / DICOM audit messages (XML): per file, per line or syslog-wrapped.
    Atna,
}

/// The table a decoded batch belongs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// EMR access logs.
    AccessEvents,
    /// Host logs (syslog).
    SystemEvents,
}

impl Table {
    /// The table's name in the store and in SQL.
    pub fn name(self) -> &'static str {
        match self {
            Self::AccessEvents => "access_events",
            Self::SystemEvents => "system_events",
        }
    }

    /// The schema decoders build it in.
    pub fn schema(self) -> arrow::datatypes::SchemaRef {
        match self {
            Self::AccessEvents => crate::schema::access_events(),
            Self::SystemEvents => crate::schema::system_events(),
        }
    }
}

/// Settings of one ingest.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// The format of every input, or `Auto`.
    pub format: Format,
    /// Field mapping for `ndjson`.
    pub mapping: Arc<Mapping>,
    /// Longest accepted line-delimited record.
    pub max_record_bytes: usize,
    /// Largest accepted whole-file document.
    pub max_document_bytes: usize,
    /// Decoding threads.
    pub threads: usize,
    /// Approximate bytes of records per decoded chunk (and per batch).
    pub chunk_bytes: usize,
    /// Zone of syslog timestamps written without one.
    pub syslog_tz: chrono_tz::Tz,
    /// Year of RFC 3164 timestamps (which have none); `None`: from each
    /// file's modification time.
    pub syslog_year: Option<i32>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            format: Format::Auto,
            mapping: Arc::new(Mapping::default()),
            max_record_bytes: 1 << 20,
            max_document_bytes: 64 << 20,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            chunk_bytes: 4 << 20,
            syslog_tz: chrono_tz::Tz::UTC,
            syslog_year: None,
        }
    }
}

/// A record that could not be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Source object URL.
    pub source: Arc<str>,
    /// 1-based line number (0 when the object as a whole could not be read).
    pub line: u64,
    /// Byte offset of the record in the decompressed object.
    pub offset: u64,
    /// Why.
    pub reason: String,
    /// The first bytes of the record.
    pub sample: Vec<u8>,
}

/// Collects the rejects of one chunk; decoders report through it.
#[derive(Debug)]
pub struct RecordSink {
    source: Arc<str>,
    offset: u64,
    sample: Vec<u8>,
    rejects: Vec<Reject>,
}

impl RecordSink {
    fn new(source: Arc<str>) -> Self {
        Self {
            source,
            offset: 0,
            sample: Vec::with_capacity(SAMPLE_LEN),
            rejects: Vec::new(),
        }
    }

    /// A sink that starts with the records the framer rejected.
    fn with_frame_rejects(source: &Arc<str>, rejects: Vec<framing::FrameReject>) -> Self {
        let mut sink = Self::new(source.clone());
        sink.rejects.extend(rejects.into_iter().map(|r| Reject {
            source: source.clone(),
            line: r.line,
            offset: r.offset,
            reason: r.reason,
            sample: r.sample,
        }));
        sink
    }

    fn begin(&mut self, offset: u64, record: &[u8]) {
        self.offset = offset;
        self.sample.clear();
        self.sample
            .extend_from_slice(&record[..record.len().min(SAMPLE_LEN)]);
    }

    /// Rejects (part of) the current record.
    pub fn reject(&mut self, line: u64, reason: String) {
        self.rejects.push(Reject {
            source: self.source.clone(),
            line,
            offset: self.offset,
            reason,
            sample: self.sample.clone(),
        });
    }
}

/// What became of one record (a Bundle record may hold many resources).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecordOutcome {
    /// Rows appended.
    pub stored: usize,
    /// Rejects reported.
    pub rejected: usize,
    /// Resources skipped as not relevant (not AuditEvents).
    pub skipped: usize,
}

impl RecordOutcome {
    /// `n` rows stored.
    pub fn stored(n: usize) -> Self {
        Self {
            stored: n,
            ..Self::default()
        }
    }
    /// One reject.
    pub fn rejected() -> Self {
        Self {
            rejected: 1,
            ..Self::default()
        }
    }
    /// One resource skipped.
    pub fn skipped() -> Self {
        Self {
            skipped: 1,
            ..Self::default()
        }
    }
    /// Adds another outcome into this one.
    pub fn merge(&mut self, o: Self) {
        self.stored += o.stored;
        self.rejected += o.rejected;
        self.skipped += o.skipped;
    }
}

/// A decoded chunk.
#[derive(Debug)]
pub struct Decoded {
    /// Source object URL.
    pub source: Arc<str>,
    /// The table the rows belong in.
    pub table: Table,
    /// The rows, in that table's schema ([`Table::schema`]).
    pub batch: RecordBatch,
    /// Records that were rejected.
    pub rejects: Vec<Reject>,
    /// Records framed (stored or rejected, one Bundle counts once).
    pub records: u64,
    /// Resources skipped as not AuditEvents.
    pub skipped: u64,
    /// Decompressed bytes of the records.
    pub bytes: u64,
    /// Compressed bytes read from the object since the previous chunk.
    pub read_bytes: u64,
}

/// The decoder for one format (enum, not a plugin registry: our formats are fixed).
#[derive(Debug)]
pub enum Decoder {
    /// FHIR AuditEvent.
    Fhir(FhirDecoder),
    /// Mapped JSON lines.
    Ndjson(NdjsonDecoder),
    /// Mapped CSV.
    Csv(CsvDecoder),
    /// ATNA audit messages.
    Atna,
}

/// A chunk on its way to a decoder.
#[derive(Debug)]
pub struct Work {
    /// The records.
    pub chunk: Chunk,
    /// Their format (never `Auto`).
    pub format: Format,
    /// Compressed bytes read from the object since the previous chunk.
    pub read_bytes: u64,
    /// How syslog timestamps without a year or zone are read, for this object.
    pub clock: Arc<SyslogClock>,
    /// CSV: which field fills which column, for this object.
    pub csv: Option<Arc<CsvLayout>>,
}

/// Decodes one chunk into a batch and its rejects.
pub fn decode_work(work: Work, mapping: &Arc<Mapping>) -> Decoded {
    if work.format == Format::Syslog {
        return decode_syslog(work);
    }
    let Work {
        mut chunk,
        format,
        read_bytes,
        clock: _,
        csv,
    } = work;
    let mut decoder = match (format, csv) {
        (Format::Ndjson, _) => Decoder::Ndjson(NdjsonDecoder::new(mapping.clone())),
        (Format::Csv, Some(layout)) => Decoder::Csv(CsvDecoder::new(layout, mapping.clone())),
        (Format::Atna, _) => Decoder::Atna,
        _ => Decoder::Fhir(FhirDecoder::default()),
    };
    let mut builder = AccessBuilder::with_capacity(chunk.spans.len());
    let framer_rejects = chunk.rejects.len();
    let mut sink =
        RecordSink::with_frame_rejects(&chunk.source, std::mem::take(&mut chunk.rejects));
    let mut skipped = 0u64;
    let mut bytes = 0u64;
    for span in &chunk.spans {
        let len = span.end - span.start;
        bytes += len as u64;
        sink.begin(span.offset, &chunk.buf[span.start..span.end]);
        let buf = &mut chunk.buf[span.start..];
        let outcome = match &mut decoder {
            Decoder::Fhir(d) => d.decode(buf, len, span.line, &mut builder, &mut sink),
            Decoder::Ndjson(d) => d.decode(buf, len, span.line, &mut builder, &mut sink),
            Decoder::Csv(d) => d.decode(&buf[..len], span.line, &mut builder, &mut sink),
            Decoder::Atna => atna::decode(&buf[..len], span.line, &mut builder, &mut sink),
        };
        skipped += outcome.skipped as u64;
    }
    let records = (chunk.spans.len() + framer_rejects) as u64;
    Decoded {
        table: Table::AccessEvents,
        batch: builder.finish(&chunk.source),
        source: chunk.source,
        rejects: sink.rejects,
        records,
        skipped,
        bytes,
        read_bytes,
    }
}

/// [`decode_work`] for syslog: lines into `system_events`, continuation
/// lines joined to the record before them (so they are not records).
fn decode_syslog(work: Work) -> Decoded {
    let Work {
        chunk,
        read_bytes,
        clock,
        ..
    } = work;
    let mut builder = SystemBuilder::with_capacity(chunk.spans.len());
    let framer_rejects = chunk.rejects.len();
    let mut rejected_lines: Vec<u64> = chunk.rejects.iter().map(|r| r.line).collect();
    rejected_lines.sort_unstable();
    let mut sink = RecordSink::with_frame_rejects(&chunk.source, chunk.rejects);
    let bytes = chunk.spans.iter().map(|s| (s.end - s.start) as u64).sum();
    let joined = syslog::decode_lines(
        &chunk.buf,
        &chunk.spans,
        &rejected_lines,
        &clock,
        &mut builder,
        &mut sink,
    );
    Decoded {
        table: Table::SystemEvents,
        batch: builder.finish(&chunk.source),
        records: (chunk.spans.len() - joined + framer_rejects) as u64,
        source: chunk.source,
        rejects: sink.rejects,
        skipped: 0,
        bytes,
        read_bytes,
    }
}

/// Reads `objects` in order and yields their decoded chunks in order.
///
/// `opts.threads` long-lived blocking threads take chunks straight from the
/// reader's channel and decode them. Each takes the next chunk the moment it
/// finishes one: handing every chunk to a task of its own, through the
/// consumer's thread, left a core idle 15-25 % of a two-thread run while that
/// thread waited to be scheduled. At most `2 × threads` chunks wait in the
/// channel and `4 × threads` are decoding or decoded but not yet yielded
/// (a slow chunk holds back those after it, in order), which bounds memory.
pub fn decode_stream(
    objects: Vec<SourceObject>,
    opts: &IngestOptions,
) -> impl Stream<Item = Decoded> + use<> {
    let threads = opts.threads.max(1);
    let (tx, rx) = mpsc::channel::<Work>(threads * 2);
    let read_opts = opts.clone();
    tokio::spawn(async move {
        for obj in objects {
            // A closed channel means the consumer stopped (an error, or --strict).
            if tx.is_closed() {
                break;
            }
            let tx = tx.clone();
            let ro = read_opts.clone();
            let handle = Handle::current();
            let done =
                tokio::task::spawn_blocking(move || read_object(&handle, obj, &ro, tx)).await;
            if done.is_err() {
                break;
            }
        }
    });
    decode_in_order(rx, threads, &opts.mapping)
}

/// The decoding half of [`decode_stream`]: `threads` threads decode the
/// chunks `rx` brings, and the stream yields them in `rx`'s order.
fn decode_in_order(
    rx: mpsc::Receiver<Work>,
    threads: usize,
    mapping: &Arc<Mapping>,
) -> impl Stream<Item = Decoded> + use<> {
    let window = Arc::new(Semaphore::new(threads * 4));
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let queue = Arc::new(std::sync::Mutex::new((rx, 0u64)));
    let decoders = (0..threads)
        .map(|_| {
            let (queue, window, done_tx) = (queue.clone(), window.clone(), done_tx.clone());
            let mapping = mapping.clone();
            let handle = Handle::current();
            tokio::task::spawn_blocking(move || {
                decode_loop(&handle, &queue, &window, &done_tx, &mapping)
            })
        })
        .collect();
    futures::stream::unfold(
        InOrder {
            done: done_rx,
            window,
            next: 0,
            early: std::collections::BTreeMap::new(),
            decoders,
        },
        |mut s| async move { s.next().await.map(|d| (d, s)) },
    )
}

/// A decoded chunk, or the panic that decoding it raised.
type Outcome = std::thread::Result<Decoded>;

/// An [`Outcome`], its place in the stream and its slot in the window.
type Done = (u64, Outcome, OwnedSemaphorePermit);

/// One decoding thread: takes the next chunk, decodes it, hands it on, until
/// the reader is done or the consumer has gone.
fn decode_loop(
    handle: &Handle,
    queue: &std::sync::Mutex<(mpsc::Receiver<Work>, u64)>,
    window: &Arc<Semaphore>,
    done: &mpsc::UnboundedSender<Done>,
    mapping: &Arc<Mapping>,
) {
    // A closed window means the consumer dropped the stream.
    while let Ok(slot) = handle.block_on(window.clone().acquire_owned()) {
        // Numbered while the queue is held, so numbers follow the reader's order.
        let (seq, work) = {
            let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
            let Some(work) = q.0.blocking_recv() else {
                return;
            };
            q.1 += 1;
            (q.1 - 1, work)
        };
        // A panic goes to the consumer in the chunk's place: left on this
        // thread, the chunks after it would fill the window while the
        // consumer waited for it, and the run would hang instead of failing.
        let decoded =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode_work(work, mapping)));
        if done.send((seq, decoded, slot)).is_err() {
            return;
        }
    }
}

/// Puts decoded chunks back in reader order.
struct InOrder {
    done: mpsc::UnboundedReceiver<Done>,
    window: Arc<Semaphore>,
    next: u64,
    early: std::collections::BTreeMap<u64, (Outcome, OwnedSemaphorePermit)>,
    decoders: Vec<tokio::task::JoinHandle<()>>,
}

impl InOrder {
    async fn next(&mut self) -> Option<Decoded> {
        loop {
            if let Some((decoded, _slot)) = self.early.remove(&self.next) {
                self.next += 1;
                match decoded {
                    Ok(d) => return Some(d),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            let Some((seq, decoded, slot)) = self.done.recv().await else {
                // Every decoding thread has stopped: the end, unless one
                // panicked outside decoding itself and its chunk is missing.
                for d in std::mem::take(&mut self.decoders) {
                    d.await.expect("decoder thread panicked");
                }
                assert!(self.early.is_empty(), "a decoded chunk went missing");
                return None;
            };
            self.early.insert(seq, (decoded, slot));
        }
    }
}

impl Drop for InOrder {
    fn drop(&mut self) {
        // Decoding threads waiting for a slot stop; the reader stops when
        // they have dropped its channel.
        self.window.close();
    }
}

/// The first line of `head` (without its line ending), once it is all there.
fn first_line(head: &[u8], at_eof: bool, max: usize) -> Option<&[u8]> {
    let start = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(head.len());
    let rest = &head[start..];
    match memchr::memchr(b'\n', rest) {
        Some(p) => Some(rest[..p].strip_suffix(b"\r").unwrap_or(&rest[..p])),
        None if at_eof || head.len() > max => Some(rest),
        None => None,
    }
}

/// Frames and decodes one object's decompressed bytes on this thread, as
/// ingest does (format detection, framing, every reject), and returns its
/// chunks. For tests, property tests and fuzzing: ingest itself streams
/// through [`decode_stream`]. Without `opts.syslog_year`, syslog dates are
/// read as if the file had been written now.
pub fn decode_bytes(source: &str, data: &[u8], opts: &IngestOptions) -> Vec<Decoded> {
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    let mut sink = FrameSink::new(source.into(), now_us, opts, Outlet::Keep(Vec::new()));
    sink.read_bytes = data.len() as u64;
    sink.push(data, false);
    sink.finish(None);
    let Some(Outlet::Keep(works)) = sink.tx.take() else {
        return Vec::new();
    };
    works
        .into_iter()
        .map(|w| decode_work(w, &opts.mapping))
        .collect()
}

/// Receives decompressed bytes, frames them and sends chunks on.
struct FrameSink {
    source: Arc<str>,
    framing: Framing,
    format: Format,
    opts: IngestOptions,
    tx: Option<Outlet>,
    /// The object is being skipped: nothing more is sent.
    stopped: bool,
    /// Syslog: the last chunk, held until the next one shows whether it
    /// starts with lines that continue this one's last record.
    held: Option<Chunk>,
    /// CSV: the delimiter, once told.
    csv_delimiter: Option<u8>,
    /// CSV: the layout, once the header (or the mapping) gave it.
    csv: Option<Arc<CsvLayout>>,
    read_bytes: u64,
    clock: Arc<SyslogClock>,
    /// A file still being written: leave a last line without its line feed.
    whole_lines: bool,
    /// The object turned out to be gzip or zstd.
    compressed: bool,
    /// A resumed read: where the bytes pushed next start, applied when the
    /// line framer is made.
    pending_seek: Option<Position>,
    /// A resumed read: records before this line were stored by an earlier
    /// run (the first line is read again only to tell the format).
    keep_from_line: u64,
}

/// Where framed chunks go: to the decoding threads, or kept for a caller
/// that decodes them itself ([`decode_bytes`]).
#[derive(Debug)]
enum Outlet {
    Channel(mpsc::Sender<Work>),
    Keep(Vec<Work>),
}

#[derive(Debug, Default)]
enum Framing {
    Undecided(Vec<u8>),
    Lines(LineFramer),
    Document(DocumentFramer),
    #[default]
    Closed,
}

impl FrameSink {
    /// A sink for the object at `source`, last modified at `modified_us`
    /// (which dates its RFC 3164 syslog lines).
    fn new(source: Arc<str>, modified_us: i64, opts: &IngestOptions, tx: Outlet) -> Self {
        Self {
            source,
            framing: Framing::Undecided(Vec::new()),
            format: opts.format,
            opts: opts.clone(),
            tx: Some(tx),
            stopped: false,
            held: None,
            csv_delimiter: None,
            csv: None,
            read_bytes: 0,
            clock: Arc::new(match opts.syslog_year {
                Some(year) => SyslogClock::in_year(year, opts.syslog_tz),
                None => SyslogClock::new(modified_us, opts.syslog_tz),
            }),
            whole_lines: false,
            compressed: false,
            pending_seek: None,
            keep_from_line: 0,
        }
    }

    /// Starts a read that resumes at `at`: `first_line` (the object's first
    /// line, with its line feed, or empty if it is too long to fetch) is
    /// framed to tell the format, then numbering jumps to `at`.
    fn resume(&mut self, first_line: &[u8], at: Position) {
        self.keep_from_line = at.line;
        self.pending_seek = Some(at);
        if first_line.is_empty() {
            return;
        }
        // Frame the first line as line 1, then continue at `at`.
        self.pending_seek = None;
        self.push(first_line, false);
        match &mut self.framing {
            Framing::Lines(f) => f.seek(at),
            Framing::Undecided(_) => self.pending_seek = Some(at),
            Framing::Document(_) | Framing::Closed => self.fail(
                "the object grew, but it is one JSON or XML document, not lines: it cannot be \
                 resumed (ingest it again whole with `emrwatch ingest` if needed)"
                    .into(),
            ),
        }
    }

    /// Rejects the object with `reason` and reads no more of it.
    fn fail(&mut self, reason: String) {
        self.skip(0, reason, Vec::new());
    }

    fn push(&mut self, data: &[u8], at_eof: bool) {
        if let Framing::Undecided(head) = &mut self.framing {
            head.extend_from_slice(data);
            let max = self.opts.max_record_bytes;
            // Text that is not JSON: its first line says whether it is ATNA
            // (whose layout follows) or CSV (which must be framed knowing its
            // quotes).
            let first = head.iter().find(|b| !b.is_ascii_whitespace());
            let plain = !matches!(first, Some(b'{' | b'['));
            let mut layout = None;
            if plain && self.format != Format::Syslog {
                let Some(line) = first_line(head, at_eof, max) else {
                    return;
                };
                let auto = self.format == Format::Auto;
                if self.format == Format::Atna || (auto && atna::looks_like_atna(head)) {
                    self.format = Format::Atna;
                    // A whole message on the first line: a message per line.
                    layout = Some(
                        if memchr::memmem::find(line, b"</AuditMessage>").is_some() {
                            JsonLayout::Lines
                        } else {
                            JsonLayout::Document
                        },
                    );
                } else if self.format == Format::Csv
                    || (auto
                        && syslog::parse(line, &self.clock).is_err()
                        && csv::looks_like_csv(line))
                {
                    self.format = Format::Csv;
                    self.csv_delimiter = Some(
                        self.opts
                            .mapping
                            .csv
                            .delimiter
                            .unwrap_or_else(|| csv::sniff_delimiter(line)),
                    );
                    layout = Some(JsonLayout::Lines);
                }
            }
            if layout.is_none() {
                layout = match self.format {
                    Format::Syslog | Format::Csv => Some(JsonLayout::Lines),
                    _ => sniff_json_layout(head, at_eof),
                };
            }
            // A first line longer than any record: let the line framer reject it.
            if layout.is_none() && head.len() > max {
                layout = Some(JsonLayout::Lines);
            }
            let Some(layout) = layout else { return };
            let head = std::mem::take(head);
            let delimiter = self.csv_delimiter;
            self.framing = match layout {
                JsonLayout::Lines => {
                    let framer = LineFramer::new(
                        self.source.clone(),
                        self.opts.max_record_bytes,
                        self.opts.chunk_bytes,
                    );
                    let mut framer = match delimiter {
                        Some(d) => framer.with_quotes(d),
                        None => framer,
                    };
                    if let Some(at) = self.pending_seek.take() {
                        framer.seek(at);
                    }
                    Framing::Lines(framer)
                }
                JsonLayout::Document => Framing::Document(DocumentFramer::new(
                    self.source.clone(),
                    self.opts.max_document_bytes,
                )),
            };
            return self.push(&head, at_eof);
        }
        let mut ready = Vec::new();
        match &mut self.framing {
            Framing::Lines(f) => f.push(data, &mut |c| ready.push(c)),
            Framing::Document(d) => d.push(data),
            Framing::Undecided(_) | Framing::Closed => {}
        }
        for chunk in ready {
            self.send(chunk);
        }
    }

    fn send(&mut self, mut chunk: Chunk) {
        if self.format == Format::Csv && self.csv.is_none() && !chunk.spans.is_empty() {
            let csv = self.opts.mapping.csv;
            let delimiter = self.csv_delimiter.unwrap_or(b',');
            let layout = if csv.header {
                let header = chunk.spans.remove(0);
                CsvLayout::from_header(
                    &chunk.buf[header.start..header.end],
                    delimiter,
                    &self.opts.mapping,
                )
            } else {
                Ok(CsvLayout::numbered(delimiter, &self.opts.mapping))
            };
            match layout {
                Ok(l) => self.csv = Some(Arc::new(l)),
                Err(reason) => {
                    let sample = chunk.buf[..chunk.buf.len().min(SAMPLE_LEN)].to_vec();
                    self.skip(1, reason, sample);
                    return;
                }
            }
        }
        if self.format == Format::Auto
            && let Some(first) = chunk.spans.first()
        {
            let rec = &chunk.buf[first.start..first.end];
            let rec = rec.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(rec);
            let json = matches!(
                rec.iter().find(|b| !b.is_ascii_whitespace()),
                Some(b'{' | b'[')
            );
            if !json && syslog::parse(rec, &self.clock).is_ok() {
                self.format = Format::Syslog;
                self.forward(chunk);
                return;
            }
            if !json {
                // Neither JSON, syslog nor CSV: one reject for the object, not
                // one per line, and stop reading it.
                let sample = rec[..rec.len().min(SAMPLE_LEN)].to_vec();
                self.skip(
                    0,
                    "not a format emrwatch reads (the first record is neither JSON, syslog, \
                     delimited text nor an ATNA audit message): file skipped"
                        .to_string(),
                    sample,
                );
                return;
            }
            self.format = if memchr::memmem::find(rec, b"\"resourceType\"").is_some() {
                Format::Fhir
            } else {
                Format::Ndjson
            };
        }
        self.forward(chunk);
    }

    /// Rejects the whole object at `line` and reads no more of it.
    fn skip(&mut self, line: u64, reason: String, sample: Vec<u8>) {
        let chunk = Chunk {
            source: self.source.clone(),
            rejects: vec![framing::FrameReject {
                line,
                offset: 0,
                reason,
                sample,
            }],
            ..Chunk::default()
        };
        self.format = Format::Fhir;
        self.framing = Framing::Closed;
        self.forward(chunk);
        self.stopped = true;
    }

    fn forward(&mut self, mut chunk: Chunk) {
        if self.stopped {
            return;
        }
        if self.keep_from_line > 1 {
            let keep = self.keep_from_line;
            chunk.spans.retain(|s| s.line >= keep);
        }
        if self.format != Format::Syslog {
            if let Some(held) = self.held.take() {
                self.dispatch(held);
            }
            self.dispatch(chunk);
            return;
        }
        // A syslog record's indented continuation lines belong to the chunk
        // that holds its first line (or the framer's reject of it), wherever
        // the framer cut; those after a reject in this chunk stay with it.
        if let Some(held) = &mut self.held
            && (!held.spans.is_empty() || !held.rejects.is_empty())
            && held.buf.len() >= simd_json::INPUT_PADDING
        {
            let first_reject = chunk.rejects.iter().map(|r| r.line).min();
            let n = chunk
                .spans
                .iter()
                .take_while(|s| {
                    syslog::is_continuation(&chunk.buf[s.start..s.end])
                        && first_reject.is_none_or(|r| s.line < r)
                })
                .count();
            if n > 0 {
                held.buf.truncate(held.buf.len() - simd_json::INPUT_PADDING);
                for s in chunk.spans.drain(..n) {
                    let start = held.buf.len();
                    held.buf.extend_from_slice(&chunk.buf[s.start..s.end]);
                    held.spans.push(framing::Span {
                        start,
                        end: held.buf.len(),
                        ..s
                    });
                }
                held.buf
                    .resize(held.buf.len() + simd_json::INPUT_PADDING, b' ');
                if chunk.spans.is_empty() && chunk.rejects.is_empty() {
                    return;
                }
            }
        }
        if let Some(held) = self.held.replace(chunk) {
            self.dispatch(held);
        }
    }

    /// Hands a chunk on to be decoded.
    fn dispatch(&mut self, chunk: Chunk) {
        let work = Work {
            chunk,
            format: self.format,
            read_bytes: std::mem::take(&mut self.read_bytes),
            clock: self.clock.clone(),
            csv: self.csv.clone(),
        };
        match &mut self.tx {
            Some(Outlet::Channel(tx)) => {
                let gone = tx.blocking_send(work).is_err();
                // The consumer is gone (error or cancellation): stop reading.
                if gone {
                    self.tx = None;
                }
            }
            Some(Outlet::Keep(kept)) => kept.push(work),
            None => {}
        }
    }

    /// Ends the object, adding `extra` (a stream error) as a reject after the
    /// last record. Returns where line framing stopped (the next record).
    fn finish(&mut self, extra: Option<String>) -> Option<Position> {
        if let Framing::Undecided(_) = self.framing {
            self.push(&[], !self.whole_lines);
        }
        let mut reached = None;
        let mut chunk = match std::mem::take(&mut self.framing) {
            Framing::Lines(f) => {
                let (chunk, at) = if self.whole_lines {
                    f.finish_whole_lines()
                } else {
                    f.finish_at()
                };
                reached = Some(at);
                chunk
            }
            // A document still being written is read once it is complete.
            Framing::Document(_) if self.whole_lines => Chunk {
                source: self.source.clone(),
                ..Chunk::default()
            },
            Framing::Document(d) => d.finish(),
            Framing::Undecided(_) | Framing::Closed => Chunk {
                source: self.source.clone(),
                ..Chunk::default()
            },
        };
        if let Some(reason) = extra {
            let line = chunk.spans.last().map_or(1, |s| s.line + 1);
            chunk.rejects.push(framing::FrameReject {
                line,
                offset: 0,
                reason,
                sample: Vec::new(),
            });
        }
        if !chunk.spans.is_empty() || !chunk.rejects.is_empty() || self.read_bytes > 0 {
            self.send(chunk);
        }
        if let Some(held) = self.held.take()
            && !self.stopped
        {
            self.dispatch(held);
        }
        reached
    }

    fn closed(&self) -> bool {
        self.tx.is_none() || self.stopped
    }
}

impl Write for FrameSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.push(buf, false);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Default for FrameSink {
    fn default() -> Self {
        Self {
            source: "".into(),
            framing: Framing::Closed,
            format: Format::Auto,
            opts: IngestOptions::default(),
            tx: None,
            stopped: false,
            held: None,
            csv_delimiter: None,
            csv: None,
            read_bytes: 0,
            clock: Arc::new(SyslogClock::in_year(1970, chrono_tz::Tz::UTC)),
            whole_lines: false,
            compressed: false,
            pending_seek: None,
            keep_from_line: 0,
        }
    }
}

/// Decompression in push style: compressed bytes in, decompressed bytes
/// written on into the [`FrameSink`].
enum Decompressor {
    Plain(Box<FrameSink>),
    Gzip(Box<flate2::write::MultiGzDecoder<FrameSink>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, FrameSink>>),
}

impl Decompressor {
    /// On failure the sink is handed back, so the error can still be reported through it.
    fn new(
        kind: Compression,
        sink: Box<FrameSink>,
    ) -> Result<Self, (Box<FrameSink>, std::io::Error)> {
        Ok(match kind {
            Compression::None => Self::Plain(sink),
            Compression::Gzip => Self::Gzip(Box::new(flate2::write::MultiGzDecoder::new(*sink))),
            Compression::Zstd => match zstd::stream::write::Decoder::new(FrameSink::default()) {
                Ok(mut d) => {
                    *d.get_mut() = *sink;
                    Self::Zstd(Box::new(d))
                }
                Err(e) => return Err((sink, e)),
            },
        })
    }

    fn sink(&mut self) -> &mut FrameSink {
        match self {
            Self::Plain(s) => s,
            Self::Gzip(d) => d.get_mut(),
            Self::Zstd(d) => d.get_mut(),
        }
    }

    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Plain(s) => s.write_all(data),
            Self::Gzip(d) => d.write_all(data),
            Self::Zstd(d) => d.write_all(data),
        }
    }

    /// Flushes the decompressor; returns the sink and the error that ended the stream, if any.
    fn finish(mut self) -> (FrameSink, Option<String>) {
        let err = match &mut self {
            Self::Plain(_) => None,
            Self::Gzip(d) => d.try_finish().err().map(|e| {
                format!("truncated or corrupt gzip stream ({e}); records after the damage are lost")
            }),
            Self::Zstd(d) => d.flush().err().map(|e| {
                format!("truncated or corrupt zstd stream ({e}); records after the damage are lost")
            }),
        };
        let sink = std::mem::take(self.sink());
        (sink, err)
    }
}

/// An object's bytes. A local file is read directly in large blocks on the
/// reader's own blocking thread: `object_store`'s generic stream hands out
/// 8 KiB pieces, one thread-pool hop each, which cost more than the parsing.
enum ByteSource {
    File(std::io::Take<std::fs::File>),
    Stream(futures::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>),
}

/// Block size for local reads.
const READ_BLOCK: usize = 1 << 20;

impl ByteSource {
    fn new(result: object_store::GetResult) -> std::io::Result<Self> {
        match result.payload {
            object_store::GetResultPayload::File(mut f, _) => {
                use std::io::{Read, Seek};
                // A ranged read of a local file hands back the whole file.
                f.seek(std::io::SeekFrom::Start(result.range.start))?;
                Ok(Self::File(f.take(result.range.end - result.range.start)))
            }
            object_store::GetResultPayload::Stream(s) => Ok(Self::Stream(s)),
        }
    }

    fn next(&mut self, handle: &Handle) -> Option<Result<bytes::Bytes, String>> {
        match self {
            Self::File(f) => {
                use std::io::Read;
                // read_to_end fills spare capacity without zeroing it first
                // (zeroing a fresh megabyte per block was 3 % of a run).
                let mut buf = Vec::with_capacity(READ_BLOCK);
                if let Err(e) = f.by_ref().take(READ_BLOCK as u64).read_to_end(&mut buf) {
                    return Some(Err(e.to_string()));
                }
                (!buf.is_empty()).then(|| Ok(buf.into()))
            }
            Self::Stream(s) => handle
                .block_on(s.next())
                .map(|r| r.map_err(|e| e.to_string())),
        }
    }
}

/// Where [`read_object`] is: waiting for the magic bytes, or decompressing.
enum Reading {
    Sniffing { sink: Box<FrameSink>, head: Vec<u8> },
    Decoding(Decompressor),
}

/// Reads one object to the end (on a blocking thread), sending its chunks to `tx`.
fn read_object(handle: &Handle, obj: SourceObject, opts: &IngestOptions, tx: mpsc::Sender<Work>) {
    let mut sink = Box::new(FrameSink::new(
        obj.url.clone(),
        obj.modified_us,
        opts,
        Outlet::Channel(tx),
    ));
    let spec = obj.read.clone();
    let start = spec.as_ref().map_or(Position::default(), |s| s.start);
    let end = spec.as_ref().and_then(|s| s.end);
    if let Some(spec) = &spec {
        sink.whole_lines = spec.whole_lines;
        if start.offset > 0 {
            match read_preamble(handle, &obj, end) {
                Ok(first) => sink.resume(&first, start),
                Err(e) => {
                    sink.fail(format!("cannot read object: {e}"));
                    return;
                }
            }
        }
    }
    let options = object_store::GetOptions {
        range: (start.offset > 0 || end.is_some())
            .then(|| object_store::GetRange::Bounded(start.offset..end.unwrap_or(u64::MAX))),
        ..Default::default()
    };
    let got = handle
        .block_on(obj.store.get_opts(&obj.path, options))
        .map_err(|e| e.to_string())
        .and_then(|r| ByteSource::new(r).map_err(|e| e.to_string()));
    let mut bytes_in = match got {
        Ok(b) => b,
        Err(e) => {
            let mut chunk = Chunk {
                source: obj.url.clone(),
                ..Chunk::default()
            };
            chunk.rejects.push(framing::FrameReject {
                line: 0,
                offset: 0,
                reason: format!("cannot read object: {e}"),
                sample: Vec::new(),
            });
            sink.send(chunk);
            return;
        }
    };
    let mut read_failed = false;
    let mut raw_bytes = 0u64;
    let mut state = Reading::Sniffing {
        sink,
        head: Vec::new(),
    };
    let mut stream_error = None;
    while let Some(next) = bytes_in.next(handle) {
        let bytes = match next {
            Ok(b) => {
                raw_bytes += b.len() as u64;
                b
            }
            Err(e) => {
                stream_error = Some(format!("read error, rest of object skipped: {e}"));
                read_failed = true;
                break;
            }
        };
        let written = match state {
            Reading::Decoding(ref mut d) => {
                d.sink().read_bytes += bytes.len() as u64;
                d.write_all(&bytes)
            }
            Reading::Sniffing { mut sink, mut head } => {
                head.extend_from_slice(&bytes);
                if head.len() < 4 {
                    state = Reading::Sniffing { sink, head };
                    continue;
                }
                sink.read_bytes += head.len() as u64;
                let kind = Compression::sniff(&head);
                if kind != Compression::None {
                    // A compressed stream is read whole: its last line is complete.
                    sink.whole_lines = false;
                    sink.compressed = true;
                    if start.offset > 0 {
                        sink.fail(
                            "the object became compressed since the last run; it cannot be \
                             resumed (ingest it again with `emrwatch ingest` if needed)"
                                .into(),
                        );
                        return;
                    }
                }
                match Decompressor::new(kind, sink) {
                    Ok(mut d) => {
                        let w = d.write_all(&head);
                        state = Reading::Decoding(d);
                        w
                    }
                    Err((sink, e)) => {
                        stream_error = Some(format!("cannot start decompression: {e}"));
                        state = Reading::Sniffing {
                            sink,
                            head: Vec::new(),
                        };
                        break;
                    }
                }
            }
        };
        if let Err(e) = written {
            stream_error = Some(format!(
                "corrupt compressed data ({e}); the rest of the object is skipped"
            ));
            break;
        }
        if let Reading::Decoding(d) = &mut state
            && d.sink().closed()
        {
            return;
        }
    }
    let (mut sink, err) = match state {
        Reading::Decoding(d) => d.finish(),
        // Fewer than 4 bytes in all: plain.
        Reading::Sniffing { mut sink, head } => {
            sink.read_bytes += head.len() as u64;
            sink.push(&head, false);
            (*sink, None)
        }
    };
    let reached = sink.finish(stream_error.or(err));
    // A read that failed part way leaves the object unread, so an
    // incremental run fails rather than skip the rest.
    if let Some(spec) = spec
        && !read_failed
    {
        let at = match reached {
            Some(at) if !sink.compressed => at,
            // Still being written and no complete record yet: nothing read.
            None if sink.whole_lines && !sink.compressed => start,
            _ => Position {
                offset: start.offset + raw_bytes,
                line: reached.map_or(1, |p| p.line),
            },
        };
        *spec.reached.lock().expect("reached lock") = Some(Reached {
            at,
            compressed: sink.compressed,
        });
    }
}

/// The object's first line (line feed included), read again when a read
/// resumes mid-object: it tells the format, and a CSV file's columns.
fn read_preamble(handle: &Handle, obj: &SourceObject, end: Option<u64>) -> Result<Vec<u8>, String> {
    const MAX: u64 = 64 << 10;
    let n = end.unwrap_or(obj.size).min(obj.size).min(MAX);
    let head = handle
        .block_on(object_store::ObjectStoreExt::get_range(
            obj.store.as_ref(),
            &obj.path,
            0..n,
        ))
        .map_err(|e| e.to_string())?;
    Ok(match memchr::memchr(b'\n', &head) {
        Some(nl) => head[..=nl].to_vec(),
        None => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(buf: &[u8], spans: Vec<framing::Span>) -> Work {
        let mut buf = buf.to_vec();
        buf.resize(buf.len() + simd_json::INPUT_PADDING, b' ');
        Work {
            chunk: Chunk {
                source: "mem://t".into(),
                buf,
                spans,
                rejects: Vec::new(),
            },
            format: Format::Ndjson,
            read_bytes: 0,
            clock: Arc::new(SyslogClock::in_year(2026, chrono_tz::Tz::UTC)),
            csv: None,
        }
    }

    /// A decoder that panics fails the run, even when the chunks after the
    /// one it failed on are more than the window holds.
    #[test]
    fn a_decoding_panic_fails_the_stream_instead_of_hanging_it() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let outcome = rt.block_on(async {
            let threads = 2;
            let (tx, rx) = mpsc::channel(threads * 2);
            let stream = decode_in_order(rx, threads, &Arc::new(Mapping::default()));
            let consumer = tokio::spawn(async move { stream.collect::<Vec<_>>().await.len() });
            let record = br#"{"ts":"2026-11-02T08:00:00Z","user_id":"u1","action":"view"}"#;
            let span = |end| framing::Span {
                start: 0,
                end,
                line: 1,
                offset: 0,
            };
            // A span past the end of its buffer: slicing it panics.
            let mut works = vec![work(record, vec![span(record.len() + 1000)])];
            works.extend((0..threads * 8).map(|_| work(record, vec![span(record.len())])));
            tokio::spawn(async move {
                for w in works {
                    // Refused once the consumer has failed and dropped the stream.
                    if tx.send(w).await.is_err() {
                        break;
                    }
                }
            });
            tokio::time::timeout(std::time::Duration::from_secs(30), consumer).await
        });
        // Not a shutdown that waits for the decoding threads: stuck, they
        // would hang the test instead of failing it.
        rt.shutdown_background();
        let joined = outcome.expect("the stream hung after a decoder panicked");
        assert!(joined.unwrap_err().is_panic());
    }
}
