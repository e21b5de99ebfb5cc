//! The numeric kernels behind the statistics functions, in AVX2 with a
//! scalar fallback chosen once at run time.
//!
//! Every kernel has a scalar reference (`*_scalar`) that the tests compare
//! the vector version against on random inputs. The selection step of a
//! median is `select_nth_unstable`, which no SIMD beats at these sizes; the
//! passes over every value (dropping NaNs, absolute deviations, scaling to
//! z-scores) are the vectorised ones.

/// Whether the AVX2 kernels can run on this CPU (asked once).
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static AVX2: OnceLock<bool> = OnceLock::new();
        *AVX2.get_or_init(|| std::arch::is_x86_feature_detected!("avx2"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `out[i] = |x[i] - center|` (`out` as long as `x`).
pub fn abs_dev(x: &[f64], center: f64, out: &mut [f64]) {
    assert_eq!(x.len(), out.len(), "abs_dev: out must be as long as x");
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 is present (checked above).
        unsafe { avx2::abs_dev(x, center, out) };
        return;
    }
    abs_dev_scalar(x, center, out);
}

/// Scalar reference of [`abs_dev`].
pub fn abs_dev_scalar(x: &[f64], center: f64, out: &mut [f64]) {
    for (o, v) in out.iter_mut().zip(x) {
        *o = (v - center).abs();
    }
}

/// `out[i] = (x[i] - center) * inv_scale` (`out` as long as `x`).
pub fn scale(x: &[f64], center: f64, inv_scale: f64, out: &mut [f64]) {
    assert_eq!(x.len(), out.len(), "scale: out must be as long as x");
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 is present (checked above).
        unsafe { avx2::scale(x, center, inv_scale, out) };
        return;
    }
    scale_scalar(x, center, inv_scale, out);
}

/// Scalar reference of [`scale`].
pub fn scale_scalar(x: &[f64], center: f64, inv_scale: f64, out: &mut [f64]) {
    for (o, v) in out.iter_mut().zip(x) {
        *o = (v - center) * inv_scale;
    }
}

/// The sum of `x` (NaN-free input).
pub fn sum(x: &[f64]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 is present (checked above).
        return unsafe { avx2::sum(x) };
    }
    sum_scalar(x)
}

/// Scalar reference of [`sum`], with the same four-way association as the
/// vector version so both round alike.
pub fn sum_scalar(x: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = x.chunks_exact(4);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..4 {
            acc[i] += c[i];
        }
    }
    let mut s = (acc[0] + acc[2]) + (acc[1] + acc[3]);
    for v in rest {
        s += v;
    }
    s
}

/// Copies the non-NaN values of `x` into `out` (a NaN is a missing value).
pub fn drop_nan(x: &[f64], out: &mut Vec<f64>) {
    out.clear();
    out.reserve(x.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 is present (checked above).
        unsafe { avx2::drop_nan(x, out) };
        return;
    }
    drop_nan_scalar(x, out);
}

/// Scalar reference of [`drop_nan`].
pub fn drop_nan_scalar(x: &[f64], out: &mut Vec<f64>) {
    out.extend(x.iter().copied().filter(|v| !v.is_nan()));
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2")]
    pub unsafe fn abs_dev(x: &[f64], center: f64, out: &mut [f64]) {
        let c = _mm256_set1_pd(center);
        // Clearing the sign bit is |v|.
        let sign = _mm256_set1_pd(-0.0);
        let n = x.len() / 4 * 4;
        let mut i = 0;
        while i < n {
            // SAFETY: i + 4 <= n <= len of both slices.
            unsafe {
                let v = _mm256_loadu_pd(x.as_ptr().add(i));
                let d = _mm256_andnot_pd(sign, _mm256_sub_pd(v, c));
                _mm256_storeu_pd(out.as_mut_ptr().add(i), d);
            }
            i += 4;
        }
        super::abs_dev_scalar(&x[n..], center, &mut out[n..]);
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn scale(x: &[f64], center: f64, inv_scale: f64, out: &mut [f64]) {
        let c = _mm256_set1_pd(center);
        let k = _mm256_set1_pd(inv_scale);
        let n = x.len() / 4 * 4;
        let mut i = 0;
        while i < n {
            // SAFETY: i + 4 <= n <= len of both slices.
            unsafe {
                let v = _mm256_loadu_pd(x.as_ptr().add(i));
                _mm256_storeu_pd(
                    out.as_mut_ptr().add(i),
                    _mm256_mul_pd(_mm256_sub_pd(v, c), k),
                );
            }
            i += 4;
        }
        super::scale_scalar(&x[n..], center, inv_scale, &mut out[n..]);
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn sum(x: &[f64]) -> f64 {
        let mut acc = _mm256_setzero_pd();
        let n = x.len() / 4 * 4;
        let mut i = 0;
        while i < n {
            // SAFETY: i + 4 <= n <= x.len().
            acc = _mm256_add_pd(acc, unsafe { _mm256_loadu_pd(x.as_ptr().add(i)) });
            i += 4;
        }
        let mut lanes = [0.0f64; 4];
        // SAFETY: lanes holds four f64.
        unsafe { _mm256_storeu_pd(lanes.as_mut_ptr(), acc) };
        let mut s = (lanes[0] + lanes[2]) + (lanes[1] + lanes[3]);
        for v in &x[n..] {
            s += v;
        }
        s
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn drop_nan(x: &[f64], out: &mut Vec<f64>) {
        let n = x.len() / 4 * 4;
        let mut i = 0;
        while i < n {
            // SAFETY: i + 4 <= n <= x.len().
            let v = unsafe { _mm256_loadu_pd(x.as_ptr().add(i)) };
            // Ordered-compare with itself: false exactly for NaN lanes.
            let keep = _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_ORD_Q>(v, v));
            if keep == 0b1111 {
                out.extend_from_slice(&x[i..i + 4]);
            } else {
                for (j, v) in x[i..i + 4].iter().enumerate() {
                    if keep & (1 << j) != 0 {
                        out.push(*v);
                    }
                }
            }
            i += 4;
        }
        super::drop_nan_scalar(&x[n..], out);
    }
}

/// The median of `x` (NaN-free; reordered in place), or None when empty.
pub fn median_in_place(x: &mut [f64]) -> Option<f64> {
    let n = x.len();
    if n == 0 {
        return None;
    }
    let mid = n / 2;
    let (lower, m, _) = x.select_nth_unstable_by(mid, f64::total_cmp);
    let m = *m;
    if n % 2 == 1 {
        return Some(m);
    }
    // The largest of the lower half is the other middle value.
    let below = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((below + m) / 2.0)
}

/// Median and median absolute deviation of the non-NaN values of `x`.
pub fn median_mad(x: &[f64]) -> Option<(f64, f64)> {
    let mut clean = Vec::new();
    drop_nan(x, &mut clean);
    let m = median_in_place(&mut clean)?;
    let mut dev = vec![0.0; clean.len()];
    abs_dev(&clean, m, &mut dev);
    let mad = median_in_place(&mut dev)?;
    Some((m, mad))
}

/// Consistency constant: 1.4826 × MAD estimates σ for normal data.
pub const MAD_TO_SIGMA: f64 = 1.482_602_218_505_602;
/// 1.2533 × mean absolute deviation estimates σ for normal data.
pub const MEANAD_TO_SIGMA: f64 = 1.253_314_137_315_500_3;

/// Robust z-scores of `x` against its own median and MAD: `(x - median) / (1.4826 MAD)`.
///
/// When more than half the values are equal the MAD is 0; the scale is then
/// 1.2533 × the mean absolute deviation, and if that is 0 too (every value
/// equal) it is 1, so a value's score is its distance from the common value in
/// its own units. NaN inputs (missing values) score NaN.
pub fn robust_z(x: &[f64]) -> Vec<f64> {
    let Some((m, mad)) = median_mad(x) else {
        return vec![f64::NAN; x.len()];
    };
    let mut s = MAD_TO_SIGMA * mad;
    if s == 0.0 {
        let mut clean = Vec::new();
        drop_nan(x, &mut clean);
        let mut dev = vec![0.0; clean.len()];
        abs_dev(&clean, m, &mut dev);
        s = MEANAD_TO_SIGMA * sum(&dev) / dev.len() as f64;
    }
    if s == 0.0 || !s.is_finite() {
        s = 1.0;
    }
    let mut out = vec![0.0; x.len()];
    scale(x, m, 1.0 / s, &mut out);
    out
}

/// Scalar reference of [`robust_z`], written the obvious way (sorting).
pub fn robust_z_reference(x: &[f64]) -> Vec<f64> {
    let med = |v: &mut Vec<f64>| -> Option<f64> {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        (n > 0).then(|| {
            if n % 2 == 1 {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            }
        })
    };
    let mut clean: Vec<f64> = x.iter().copied().filter(|v| !v.is_nan()).collect();
    let Some(m) = med(&mut clean) else {
        return vec![f64::NAN; x.len()];
    };
    let mut dev: Vec<f64> = clean.iter().map(|v| (v - m).abs()).collect();
    let mad = med(&mut dev).unwrap_or(0.0);
    let mut s = MAD_TO_SIGMA * mad;
    if s == 0.0 {
        s = MEANAD_TO_SIGMA * sum_scalar(&dev) / dev.len() as f64;
    }
    if s == 0.0 || !s.is_finite() {
        s = 1.0;
    }
    x.iter().map(|v| (v - m) * (1.0 / s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::Rng;

    /// Random inputs: sizes 0..70 (tiny groups and every remainder mod 4),
    /// with NaNs, ties, negative values and the occasional huge one.
    fn inputs(seed: u64, cases: usize) -> Vec<Vec<f64>> {
        let mut rng = Rng::new(seed);
        (0..cases)
            .map(|_| {
                let n = rng.below(70) as usize;
                (0..n)
                    .map(|_| match rng.below(10) {
                        0 => f64::NAN,
                        1 => 3.0,
                        2 => -(rng.below(1000) as f64),
                        3 => rng.below(u64::MAX >> 11) as f64 * 1e6,
                        _ => rng.below(1_000_000) as f64 / 1000.0,
                    })
                    .collect()
            })
            .collect()
    }

    fn same(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= 1e-12 * x.abs().max(1.0)
            })
    }

    #[test]
    fn vector_kernels_equal_the_scalar_reference() {
        assert!(
            has_avx2() || !cfg!(target_arch = "x86_64"),
            "the CI machines have AVX2: without it this test compares scalar with scalar"
        );
        for x in inputs(1, 2000) {
            let clean: Vec<f64> = x.iter().copied().filter(|v| !v.is_nan()).collect();
            let mut got = Vec::new();
            drop_nan(&x, &mut got);
            assert_eq!(got, clean);

            let mut want = vec![0.0; clean.len()];
            abs_dev_scalar(&clean, 2.5, &mut want);
            let mut got = vec![0.0; clean.len()];
            abs_dev(&clean, 2.5, &mut got);
            assert_eq!(got, want);

            let mut want = vec![0.0; x.len()];
            scale_scalar(&x, 1.5, 0.25, &mut want);
            let mut got = vec![0.0; x.len()];
            scale(&x, 1.5, 0.25, &mut got);
            assert!(same(&got, &want));

            assert_eq!(sum(&clean).to_bits(), sum_scalar(&clean).to_bits());
        }
    }

    #[test]
    fn robust_z_equals_the_sorting_reference() {
        for x in inputs(2, 2000) {
            assert!(same(&robust_z(&x), &robust_z_reference(&x)), "{x:?}");
        }
    }

    #[test]
    fn median_and_mad_of_small_groups() {
        assert_eq!(median_mad(&[]), None);
        assert_eq!(median_mad(&[f64::NAN]), None);
        assert_eq!(median_mad(&[7.0]), Some((7.0, 0.0)));
        assert_eq!(median_mad(&[1.0, 3.0]), Some((2.0, 1.0)));
        assert_eq!(median_mad(&[1.0, 2.0, 3.0, 4.0, 100.0]), Some((3.0, 1.0)));
        // A spike among steady days scores far above 3.
        let z = robust_z(&[10.0, 12.0, 11.0, 9.0, 10.0, 11.0, 200.0]);
        assert!(z[6] > 50.0 && z[0].abs() < 1.0, "{z:?}");
        // Equal values: MAD 0 and mean deviation 0, so the scale is 1.
        let z = robust_z(&[4.0, 4.0, 6.0]);
        assert!(
            same(&z, &[0.0, 0.0, 2.0 / (MEANAD_TO_SIGMA * 2.0 / 3.0)]),
            "{z:?}"
        );
    }
}
