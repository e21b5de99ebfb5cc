//! Decoder and framer throughput in MB/s, one thread, in memory: the pieces of
//! `emrwatch ingest` that `make bench` measures end to end.
//!
//! `cargo bench --bench ingest` (or `--profile dev` to reuse the test build).

use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use emrwatch::ingest::csv::CsvLayout;
use emrwatch::ingest::framing::{Chunk, LineFramer};
use emrwatch::ingest::mapping::Mapping;
use emrwatch::ingest::syslog::SyslogClock;
use emrwatch::ingest::{Format, Work, decode_work};
use emrwatch::synth::{GenOptions, OutputFormat, generate};

/// One generated day file of `format`, as bytes.
fn sample(format: OutputFormat, events: u64) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let s = generate(&GenOptions {
        out: dir.path().to_path_buf(),
        events,
        days: 1,
        staff: 300,
        patients: 8_000,
        gzip: false,
        format,
        ..GenOptions::default()
    })
    .unwrap();
    std::fs::read(&s.files[0]).unwrap()
}

/// The generator's host logs (RFC 3164 and 5424) of a 30-day hospital,
/// concatenated.
fn syslog_sample() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    generate(&GenOptions {
        out: dir.path().to_path_buf(),
        events: 5_000,
        days: 30,
        gzip: false,
        ..GenOptions::default()
    })
    .unwrap();
    let mut files: Vec<_> = std::fs::read_dir(dir.path().join("syslog"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect()
}

/// ATNA audit messages, one per line, as a PACS sends them: `n` chart views.
fn atna_sample(n: u64) -> Vec<u8> {
    let mut out = String::new();
    for i in 0..n {
        out.push_str(&format!(
            "<AuditMessage><EventIdentification EventActionCode=\"R\" \
             EventDateTime=\"2026-11-02T08:{:02}:{:02}.{:03}Z\" EventOutcomeIndicator=\"0\">\
             <EventID csd-code=\"110110\" codeSystemName=\"DCM\" originalText=\"Patient Record\"/>\
             </EventIdentification><ActiveParticipant UserID=\"u{:05}\" UserIsRequestor=\"true\" \
             NetworkAccessPointID=\"10.0.{}.{}\" NetworkAccessPointTypeCode=\"2\"><RoleIDCode \
             csd-code=\"110153\" codeSystemName=\"DCM\" originalText=\"Source Role ID\"/>\
             </ActiveParticipant><AuditSourceIdentification AuditSourceID=\"PACS01\"/>\
             <ParticipantObjectIdentification ParticipantObjectID=\"MRN{:07}^^^&amp;1.2.3&amp;ISO\" \
             ParticipantObjectTypeCode=\"1\" ParticipantObjectTypeCodeRole=\"1\">\
             <ParticipantObjectIDTypeCode csd-code=\"2\" originalText=\"Patient Number\"/>\
             </ParticipantObjectIdentification><ParticipantObjectIdentification \
             ParticipantObjectID=\"1.2.840.{i}\" ParticipantObjectTypeCode=\"2\" \
             ParticipantObjectTypeCodeRole=\"3\"><ParticipantObjectIDTypeCode csd-code=\"110180\" \
             originalText=\"Study Instance UID\"/></ParticipantObjectIdentification></AuditMessage>\n",
            i / 60 % 60,
            i % 60,
            i % 1000,
            i % 3000,
            i % 250,
            i % 250,
            (i * 7919) % 1_000_000,
        ));
    }
    out.into_bytes()
}

fn frame(data: &[u8], csv: Option<u8>) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    frame_into(data, csv, &mut |c| chunks.push(c));
    chunks
}

fn frame_into(data: &[u8], csv: Option<u8>, emit: &mut dyn FnMut(Chunk)) {
    let mut framer = LineFramer::new(Arc::from("bench"), 1 << 20, 4 << 20);
    if let Some(d) = csv {
        framer = framer.with_quotes(d);
    }
    for block in data.chunks(1 << 20) {
        framer.push(block, emit);
    }
    emit(framer.finish());
}

fn benches(c: &mut Criterion) {
    // `cargo test --all-targets` runs each benchmark once: keep that small.
    let events = if std::env::args().any(|a| a == "--bench") {
        100_000
    } else {
        2_000
    };
    let mapping = Arc::new(Mapping::default());
    let clock = Arc::new(SyslogClock::in_year(2026, chrono_tz::Tz::UTC));
    let mut g = c.benchmark_group("ingest");
    g.sample_size(10);
    for (name, format, out) in [
        ("fhir", Format::Fhir, Some(OutputFormat::Fhir)),
        ("ndjson", Format::Ndjson, Some(OutputFormat::Ndjson)),
        ("csv", Format::Csv, Some(OutputFormat::Csv)),
        ("syslog", Format::Syslog, None),
        ("atna", Format::Atna, None),
    ] {
        let data = match (out, format) {
            (Some(out), _) => sample(out, events),
            (None, Format::Atna) => atna_sample(events / 5),
            (None, _) => syslog_sample(),
        };
        let quotes = (format == Format::Csv).then_some(b',');
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function(format!("frame/{name}"), |b| {
            // Each chunk is dropped as it comes, as a run hands it on to be
            // decoded and freed: keeping them all measured page faults.
            b.iter(|| {
                let mut records = 0;
                frame_into(&data, quotes, &mut |c| records += c.spans.len());
                records
            });
        });
        let mut chunks = frame(&data, quotes);
        // CSV: the header is the layout, not a record.
        let csv = quotes.map(|d| {
            let header = chunks[0].spans.remove(0);
            let line = &chunks[0].buf[header.start..header.end];
            Arc::new(CsvLayout::from_header(line, d, &mapping).unwrap())
        });
        g.bench_function(format!("decode/{name}"), |b| {
            // Decoders parse in place, so each iteration gets fresh chunks.
            b.iter_batched(
                || {
                    chunks
                        .iter()
                        .map(|c| Chunk {
                            source: c.source.clone(),
                            buf: c.buf.clone(),
                            spans: c.spans.clone(),
                            rejects: Vec::new(),
                        })
                        .collect::<Vec<_>>()
                },
                |chunks| {
                    let mut rows = 0;
                    for chunk in chunks {
                        let d = decode_work(
                            Work {
                                chunk,
                                format,
                                read_bytes: 0,
                                clock: clock.clone(),
                                csv: csv.clone(),
                            },
                            &mapping,
                        );
                        assert!(d.rejects.is_empty(), "{:?}", d.rejects.first());
                        rows += d.batch.num_rows();
                    }
                    rows
                },
                BatchSize::LargeInput,
            );
        });
    }
    g.finish();
}

criterion_group!(ingest, benches);
criterion_main!(ingest);
