//! Decoder and framer throughput in MB/s, one thread, in memory: the pieces of
//! `emrwatch ingest` that `make bench` measures end to end.
//!
//! `cargo bench --bench ingest` (or `--profile dev` to reuse the test build).

use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use emrwatch::ingest::framing::{Chunk, LineFramer};
use emrwatch::ingest::mapping::Mapping;
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

fn frame(data: &[u8]) -> Vec<Chunk> {
    let mut framer = LineFramer::new(Arc::from("bench"), 1 << 20, 4 << 20);
    let mut chunks = Vec::new();
    for block in data.chunks(1 << 20) {
        framer.push(block, &mut |c| chunks.push(c));
    }
    chunks.push(framer.finish());
    chunks
}

fn benches(c: &mut Criterion) {
    // `cargo test --all-targets` runs each benchmark once: keep that small.
    let events = if std::env::args().any(|a| a == "--bench") {
        100_000
    } else {
        2_000
    };
    let mapping = Arc::new(Mapping::default());
    let mut g = c.benchmark_group("ingest");
    g.sample_size(10);
    for (name, format, out) in [
        ("fhir", Format::Fhir, OutputFormat::Fhir),
        ("ndjson", Format::Ndjson, OutputFormat::Ndjson),
    ] {
        let data = sample(out, events);
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function(format!("frame/{name}"), |b| {
            b.iter(|| frame(&data).len());
        });
        let chunks = frame(&data);
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
                            },
                            &mapping,
                        );
                        assert!(d.rejects.is_empty());
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
