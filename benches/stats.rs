//! The statistics kernels behind `median`, `mad` and `robust_z`: AVX2 against
//! the scalar reference, in elements per second.
//!
//! `cargo bench --bench stats` (or `--profile dev` to reuse the test build).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use emrwatch::functions::simd;
use emrwatch::synth::Rng;

fn values(n: usize) -> Vec<f64> {
    let mut rng = Rng::new(7);
    (0..n)
        .map(|i| {
            if i % 97 == 0 {
                f64::NAN
            } else {
                rng.below(100_000) as f64 / 10.0
            }
        })
        .collect()
}

fn kernels(c: &mut Criterion) {
    // A partition of a window function: one role's users, or a user's days.
    let n = if std::env::args().any(|a| a == "--bench") {
        1 << 16
    } else {
        256
    };
    let x = values(n);
    let clean: Vec<f64> = x.iter().copied().filter(|v| !v.is_nan()).collect();
    let mut g = c.benchmark_group("stats");
    g.throughput(Throughput::Elements(n as u64));
    let mut buf = vec![0.0; clean.len()];
    g.bench_function("abs_dev/avx2", |b| {
        b.iter(|| simd::abs_dev(&clean, 42.0, &mut buf))
    });
    g.bench_function("abs_dev/scalar", |b| {
        b.iter(|| simd::abs_dev_scalar(&clean, 42.0, &mut buf))
    });
    let mut out: Vec<f64> = Vec::new();
    g.bench_function("drop_nan/avx2", |b| b.iter(|| simd::drop_nan(&x, &mut out)));
    g.bench_function("drop_nan/scalar", |b| {
        b.iter(|| {
            out.clear();
            simd::drop_nan_scalar(&x, &mut out)
        })
    });
    g.bench_function("sum/avx2", |b| b.iter(|| simd::sum(&clean)));
    g.bench_function("sum/scalar", |b| b.iter(|| simd::sum_scalar(&clean)));
    g.bench_function("robust_z/simd", |b| b.iter(|| simd::robust_z(&x)));
    g.bench_function("robust_z/sorting reference", |b| {
        b.iter(|| simd::robust_z_reference(&x))
    });
    g.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
