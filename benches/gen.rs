//! How fast `emrwatch gen` writes an archive: events per second, uncompressed
//! FHIR (the target is a million per second on two cores), and the
//! other formats for comparison.
//!
//! `cargo bench --bench gen`; the archive goes to a temporary folder under
//! `EMRWATCH_BENCH_DIR` (default: the system's). Writing 0.83 GB per
//! iteration, a disk can be the limit: `EMRWATCH_BENCH_DIR=/dev/shm` measures
//! the generator itself.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use emrwatch::synth::{GenOptions, OutputFormat, generate};

fn gen_throughput(c: &mut Criterion) {
    // `cargo test --all-targets` runs each benchmark once as a smoke test
    // (without `--bench`): keep that small.
    let events: u64 = if std::env::args().any(|a| a == "--bench") {
        1_000_000
    } else {
        10_000
    };
    let mut g = c.benchmark_group("gen");
    g.sample_size(10);
    g.throughput(Throughput::Elements(events));
    let dir = match std::env::var_os("EMRWATCH_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    for (name, format, threads) in [
        ("fhir/1-thread", OutputFormat::Fhir, 1),
        ("fhir/all-threads", OutputFormat::Fhir, 0),
        ("ndjson/all-threads", OutputFormat::Ndjson, 0),
        ("csv/all-threads", OutputFormat::Csv, 0),
    ] {
        let opts = GenOptions {
            out: dir.path().join(name.replace('/', "-")),
            events,
            days: 10,
            staff: 1_500,
            patients: 40_000,
            gzip: false,
            format,
            threads,
            ..GenOptions::default()
        };
        g.bench_function(name, |b| b.iter(|| generate(&opts).unwrap()));
    }
    g.finish();
}

criterion_group!(benches, gen_throughput);
criterion_main!(benches);
