//! Scale and zero-point arithmetic, following the ONNX QuantizeLinear/DequantizeLinear spec:
//! `q = saturate(round_half_even(x / s) + z)`, `x ≈ (q − z) · s`.

use serde::{Deserialize, Serialize};

/// An integer storage type for quantized values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QType {
    Int8,
    Uint8,
    Int4,
    Uint4,
    /// 7-bit values in int8 storage (ONNX Runtime's `reduce_range` for weights): products of a
    /// pair of u8·s7 values cannot saturate a 16-bit sum on CPUs without VNNI.
    Int7,
    /// 16-bit activations (ONNX Runtime's QDQ with int16/uint16, opset 21).
    Int16,
    Uint16,
}

impl QType {
    pub fn range(self) -> (i32, i32) {
        match self {
            QType::Int8 => (-128, 127),
            QType::Uint8 => (0, 255),
            QType::Int4 => (-8, 7),
            QType::Uint4 => (0, 15),
            QType::Int7 => (-64, 63),
            QType::Int16 => (-32768, 32767),
            QType::Uint16 => (0, 65535),
        }
    }

    pub fn is_signed(self) -> bool {
        matches!(self, QType::Int8 | QType::Int4 | QType::Int7 | QType::Int16)
    }

    pub fn bits(self) -> u32 {
        match self {
            QType::Int8 | QType::Uint8 => 8,
            QType::Int4 | QType::Uint4 => 4,
            QType::Int7 => 7,
            QType::Int16 | QType::Uint16 => 16,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct QParams {
    pub scale: f32,
    pub zero_point: i32,
}

/// Scale and zero point that represent `[min, max]` (widened to include 0, as ONNX requires
/// zero to be exactly representable).
///
/// Symmetric: `s = max|x| / qmax_sym`, with `z = 0` for signed types and the mid-point
/// (128, 8) for unsigned ones; `qmax_sym` is 127 for 8 bits and 7 for 4 bits, so the grid is
/// symmetric around zero. Asymmetric: `s = (max − min) / (qmax − qmin)`,
/// `z = round(qmin − min / s)` clamped to the type's range.
pub fn qparams(min: f32, max: f32, qtype: QType, symmetric: bool) -> QParams {
    let min = min.min(0.0);
    let max = max.max(0.0);
    let (qmin, qmax) = qtype.range();
    if symmetric {
        let half_levels = (1i32 << (qtype.bits() - 1)) - 1; // 127 or 7
        let abs_max = min.abs().max(max.abs());
        let scale = if abs_max > 0.0 {
            (abs_max / half_levels as f32).max(f32::MIN_POSITIVE)
        } else {
            1.0
        };
        let zero_point = if qtype.is_signed() {
            0
        } else {
            half_levels + 1
        };
        return QParams { scale, zero_point };
    }
    let span = max - min;
    if span <= 0.0 {
        return QParams {
            scale: 1.0,
            zero_point: if qtype.is_signed() { 0 } else { qmin },
        };
    }
    // Never a subnormal or zero scale: 1/scale must stay finite.
    let scale = (span / (qmax - qmin) as f32).max(f32::MIN_POSITIVE);
    let zero_point = (qmin as f32 - min / scale)
        .round_ties_even()
        .clamp(qmin as f32, qmax as f32);
    QParams {
        scale,
        zero_point: zero_point as i32,
    }
}

pub fn quantize(x: f32, p: QParams, qtype: QType) -> i32 {
    let (qmin, qmax) = qtype.range();
    let q = (x / p.scale).round_ties_even() + p.zero_point as f32;
    q.clamp(qmin as f32, qmax as f32) as i32
}

pub fn dequantize(q: i32, p: QParams) -> f32 {
    (q - p.zero_point) as f32 * p.scale
}

/// `x` after a round trip through the quantized grid.
pub fn fake_quantize(x: f32, p: QParams, qtype: QType) -> f32 {
    dequantize(quantize(x, p, qtype), p)
}

/// Minimum, maximum and whether every value is finite, in one pass over the data.
pub fn min_max_finite(values: &[f32]) -> (f32, f32, bool) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is part of the x86-64 baseline; loads are unaligned and in bounds.
        #[allow(unsafe_code)]
        unsafe {
            min_max_finite_sse2(values)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        min_max_finite_scalar(values)
    }
}

/// v − v is 0 for finite v and NaN for ±inf and NaN; NaN is sticky under addition, so one sum
/// tells whether any value was not finite.
#[allow(clippy::eq_op)] // `v - v` is the finiteness test, on purpose
fn min_max_finite_scalar(values: &[f32]) -> (f32, f32, bool) {
    let (mut lo, mut hi, mut poison) = (f32::INFINITY, f32::NEG_INFINITY, 0.0f32);
    for &v in values {
        lo = if v < lo { v } else { lo };
        hi = if v > hi { v } else { hi };
        poison += v - v;
    }
    (lo, hi, poison == 0.0)
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
unsafe fn min_max_finite_sse2(values: &[f32]) -> (f32, f32, bool) {
    use std::arch::x86_64::*;
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder();
    let (mut lo0, mut lo1) = (_mm_set1_ps(f32::INFINITY), _mm_set1_ps(f32::INFINITY));
    let (mut hi0, mut hi1) = (
        _mm_set1_ps(f32::NEG_INFINITY),
        _mm_set1_ps(f32::NEG_INFINITY),
    );
    let (mut p0, mut p1) = (_mm_setzero_ps(), _mm_setzero_ps());
    for c in chunks {
        let a = _mm_loadu_ps(c.as_ptr());
        let b = _mm_loadu_ps(c.as_ptr().add(4));
        lo0 = _mm_min_ps(lo0, a);
        lo1 = _mm_min_ps(lo1, b);
        hi0 = _mm_max_ps(hi0, a);
        hi1 = _mm_max_ps(hi1, b);
        p0 = _mm_add_ps(p0, _mm_sub_ps(a, a));
        p1 = _mm_add_ps(p1, _mm_sub_ps(b, b));
    }
    let mut lanes = [[0f32; 4]; 3];
    _mm_storeu_ps(lanes[0].as_mut_ptr(), _mm_min_ps(lo0, lo1));
    _mm_storeu_ps(lanes[1].as_mut_ptr(), _mm_max_ps(hi0, hi1));
    _mm_storeu_ps(lanes[2].as_mut_ptr(), _mm_add_ps(p0, p1));
    let (rl, rh, rf) = min_max_finite_scalar(rest);
    let lo = lanes[0].iter().fold(rl, |m, &v| if v < m { v } else { m });
    let hi = lanes[1].iter().fold(rh, |m, &v| if v > m { v } else { m });
    let finite = rf && lanes[2].iter().all(|&p| p == 0.0);
    (lo, hi, finite)
}

/// A histogram of values over `[-limit, limit]`, where `limit` is a power of two that doubles
/// (merging neighbouring bins) whenever a larger value arrives. Bin edges always align, so two
/// histograms merge exactly and the result does not depend on the order samples arrived in:
/// calibration in parallel gives the same ranges as calibration in series. Memory is fixed
/// (`BINS` counters) whatever the number of samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    pub counts: Vec<u64>,
    /// `log2(limit)`; `None` until the first non-zero value.
    pub exponent: Option<i32>,
    pub min: f32,
    pub max: f32,
    pub total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; Histogram::BINS],
            exponent: None,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            total: 0,
        }
    }
}

impl Histogram {
    pub const BINS: usize = 8192;

    pub fn limit(&self) -> f32 {
        self.exponent.map(|e| (e as f32).exp2()).unwrap_or(0.0)
    }

    pub fn bin_width(&self) -> f32 {
        2.0 * self.limit() / Self::BINS as f32
    }

    /// Centre of bin `i`.
    pub fn center(&self, i: usize) -> f32 {
        -self.limit() + (i as f32 + 0.5) * self.bin_width()
    }

    fn grow_to(&mut self, exponent: i32) {
        let Some(current) = self.exponent else {
            self.exponent = Some(exponent);
            return;
        };
        for _ in current..exponent {
            // Doubling the limit maps old bin j onto new bin BINS/4 + j/2.
            let mut grown = vec![0u64; Self::BINS];
            for (j, &c) in self.counts.iter().enumerate() {
                grown[Self::BINS / 4 + j / 2] += c;
            }
            self.counts = grown;
        }
        self.exponent = Some(exponent.max(current));
    }

    fn exponent_for(abs_max: f32) -> i32 {
        (abs_max.max(1e-30).log2().floor() as i32 + 1).max(-100)
    }

    /// Adds values whose range `(lo, hi)` the caller computed; non-finite values are skipped
    /// (calibration counts them apart), never binned.
    pub fn add_with_range(&mut self, values: &[f32], lo: f32, hi: f32) {
        if values.is_empty() {
            return;
        }
        if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
            // Not a range of finite values: the range of the finite ones, if any.
            let finite: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
            let Some((lo, hi)) = finite.iter().fold(None, |r: Option<(f32, f32)>, &v| {
                Some(r.map_or((v, v), |(a, b)| (a.min(v), b.max(v))))
            }) else {
                return;
            };
            return self.add_with_range(&finite, lo, hi);
        }
        self.min = self.min.min(lo);
        self.max = self.max.max(hi);
        let abs_max = lo.abs().max(hi.abs());
        let needed = Self::exponent_for(abs_max);
        if self.exponent.is_none_or(|e| needed > e) {
            self.grow_to(needed);
        }
        let limit = self.limit();
        let per_unit = Self::BINS as f32 / (2.0 * limit);
        let half = Self::BINS as f32 / 2.0;
        let last = (Self::BINS - 1) as f32;
        // Exact zeros (ReLU, HardSwish, padding) are counted apart: incrementing one counter
        // back to back serializes on the store, and they can be half of a tensor.
        let mut zeros = 0u64;
        let mut skipped = 0u64;
        for &v in values {
            if v == 0.0 {
                zeros += 1;
            } else if v.is_finite() {
                // Values outside (lo, hi) fall in the end bins; `as` saturates.
                let position = (v * per_unit + half).clamp(0.0, last);
                self.counts[position as usize] += 1;
            } else {
                skipped += 1;
            }
        }
        self.counts[Self::BINS / 2] += zeros;
        self.total += values.len() as u64 - skipped;
    }

    /// Adds the finite values of `values` (NaN and ±inf are skipped).
    pub fn add(&mut self, values: &[f32]) {
        let (lo, hi, _) = min_max_finite(values);
        self.add_with_range(values, lo, hi);
    }

    pub fn merge(&mut self, mut other: Histogram) {
        let Some(theirs) = other.exponent else { return };
        match self.exponent {
            None => {
                *self = other;
                return;
            }
            Some(mine) if theirs > mine => self.grow_to(theirs),
            Some(mine) if mine > theirs => other.grow_to(mine),
            _ => {}
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.total += other.total;
    }

    /// The histogram of `clamp(x, lo, hi)`: counts beyond the bounds move into the bins
    /// holding them.
    pub fn clamped(&self, lo: f32, hi: f32) -> Histogram {
        let mut out = Histogram {
            counts: vec![0; Self::BINS],
            ..self.clone()
        };
        let (lo, hi) = (lo.max(self.min), hi.min(self.max));
        if self.exponent.is_none() || lo > hi {
            out.counts.clone_from(&self.counts);
            return out;
        }
        let per_unit = Self::BINS as f32 / (2.0 * self.limit());
        let bin = |v: f32| {
            (v * per_unit + Self::BINS as f32 / 2.0).clamp(0.0, (Self::BINS - 1) as f32) as usize
        };
        let (first, last) = (bin(lo), bin(hi));
        for (i, &c) in self.counts.iter().enumerate() {
            out.counts[i.clamp(first, last)] += c;
        }
        out.min = lo;
        out.max = hi;
        out
    }

    /// Counts of `|x|`, over `[0, limit]` in `BINS / 2` bins.
    pub fn folded(&self) -> Vec<u64> {
        let half = Self::BINS / 2;
        (0..half)
            .map(|k| self.counts[half + k] + self.counts[half - 1 - k])
            .collect()
    }

    /// The value below which `fraction` of the samples lie (linear within a bin).
    pub fn quantile(&self, fraction: f64) -> f32 {
        if self.total == 0 {
            return 0.0;
        }
        let target = fraction.clamp(0.0, 1.0) * self.total as f64;
        let mut seen = 0.0;
        let w = self.bin_width();
        for (i, &c) in self.counts.iter().enumerate() {
            let next = seen + c as f64;
            if next >= target && c > 0 {
                let within = ((target - seen) / c as f64) as f32;
                let left = -self.limit() + i as f32 * w;
                return (left + within * w).clamp(self.min, self.max);
            }
            seen = next;
        }
        self.max
    }
}

/// The range kept by percentile calibration, as ONNX Runtime means it: `p` percent of the values
/// are kept, `(100 − p) / 2` percent clipped from each tail (`[quantile((1 − p) / 2),
/// quantile((1 + p) / 2)]`); for symmetric quantization `±quantile(p)` of `|x|`. Never wider
/// than what was observed.
pub fn percentile_range(h: &Histogram, percentile: f64, symmetric: bool) -> (f32, f32) {
    let p = percentile / 100.0;
    if symmetric {
        let folded = h.folded();
        let t = folded_quantile(&folded, h.bin_width(), p);
        let abs_max = h.min.abs().max(h.max.abs());
        let t = t.min(abs_max);
        return (-t, t);
    }
    let tail = (1.0 - p) / 2.0;
    (
        h.quantile(tail).min(0.0).max(h.min),
        h.quantile(1.0 - tail).max(0.0).min(h.max),
    )
}

fn folded_quantile(folded: &[u64], width: f32, p: f64) -> f32 {
    let total: u64 = folded.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let target = p * total as f64;
    let mut seen = 0.0;
    for (i, &c) in folded.iter().enumerate() {
        let next = seen + c as f64;
        if next >= target && c > 0 {
            let within = ((target - seen) / c as f64) as f32;
            return (i as f32 + within) * width;
        }
        seen = next;
    }
    folded.len() as f32 * width
}

/// The clipping threshold `T` on `|x|` that minimises the KL divergence between the observed
/// distribution and its quantization to `levels` levels over `[0, T]` (TensorRT's entropy
/// calibration, "8-bit Inference with TensorRT", Migacz 2017). `bins` is a histogram of `|x|`
/// with bins of width `width`.
pub fn entropy_threshold(bins: &[u64], width: f32, levels: usize) -> f32 {
    // Trim the empty tail so the search runs over where the data is.
    let used = bins
        .iter()
        .rposition(|&c| c > 0)
        .map(|i| i + 1)
        .unwrap_or(0);
    if used == 0 {
        return 0.0;
    }
    if used <= levels {
        return used as f32 * width;
    }
    // Coarsen very fine histograms to at most 2048 bins, as TensorRT does; keeps the search cheap.
    let factor = used.div_ceil(2048);
    let mut coarse: Vec<f64> = bins[..used]
        .chunks(factor)
        .map(|c| c.iter().map(|&v| v as f64).sum())
        .collect();
    // The spike of exact zeros (ReLU outputs, image backgrounds) says nothing about where to
    // clip and would pull the threshold towards zero: count it like its neighbour, as NVIDIA's
    // reference implementation (pytorch-quantization) does.
    if coarse.len() > 1 {
        coarse[0] = coarse[1];
    }
    let width = width * factor as f32;
    let n = coarse.len();
    let total_tail: Vec<f64> = {
        let mut tail = vec![0.0; n + 1];
        for i in (0..n).rev() {
            tail[i] = tail[i + 1] + coarse[i];
        }
        tail
    };
    let mut best = (f64::INFINITY, n);
    for i in levels..=n {
        // Reference: the first i bins, with everything beyond folded into the last one.
        let mut p: Vec<f64> = coarse[..i].to_vec();
        p[i - 1] += total_tail[i];
        // Candidate: the first i bins merged into `levels` groups, each group's mass spread
        // evenly over its non-empty bins.
        let mut q = vec![0.0; i];
        for level in 0..levels {
            let start = level * i / levels;
            let end = ((level + 1) * i / levels).max(start + 1);
            let mass: f64 = coarse[start..end].iter().sum();
            let nonzero = coarse[start..end].iter().filter(|&&v| v > 0.0).count();
            if nonzero > 0 {
                for k in start..end {
                    if coarse[k] > 0.0 {
                        q[k] = mass / nonzero as f64;
                    }
                }
            }
        }
        let p_sum: f64 = p.iter().sum();
        let q_sum: f64 = q.iter().sum();
        if p_sum <= 0.0 || q_sum <= 0.0 {
            continue;
        }
        let mut kl = 0.0;
        for k in 0..i {
            if p[k] > 0.0 {
                let pk = p[k] / p_sum;
                // q is zero where p had mass only through the folded tail: smooth it.
                let qk = (q[k] / q_sum).max(1e-12);
                kl += pk * (pk / qk).ln();
            }
        }
        if kl < best.0 {
            best = (kl, i);
        }
    }
    best.1 as f32 * width
}

/// The range `[a·min, a·max]` (a in (0, 1]) whose quantization error, summed over the
/// histogram, is smallest: rounding error inside the range plus clipping error outside it.
pub fn mse_range(h: &Histogram, qtype: QType, symmetric: bool) -> (f32, f32) {
    if h.total == 0 {
        return (0.0, 0.0);
    }
    let (lo, hi) = (h.min.min(0.0), h.max.max(0.0));
    let (lo, hi) = if symmetric {
        let m = lo.abs().max(hi);
        (-m, m)
    } else {
        (lo, hi)
    };
    // Only non-empty bins matter; collect them once.
    let occupied: Vec<(f32, f64)> = h
        .counts
        .iter()
        .enumerate()
        .filter(|(_, &c)| c > 0)
        .map(|(i, &c)| (h.center(i).clamp(h.min, h.max), c as f64))
        .collect();
    let mut best = (f64::INFINITY, (lo, hi));
    const STEPS: usize = 200;
    for step in 1..=STEPS {
        let a = step as f32 / STEPS as f32;
        let (cmin, cmax) = (a * lo, a * hi);
        let p = qparams(cmin, cmax, qtype, symmetric);
        let err: f64 = occupied
            .iter()
            .map(|&(x, c)| {
                let d = (x - fake_quantize(x, p, qtype)) as f64;
                d * d * c
            })
            .sum();
        // Ties go to the wider range (later steps win only when strictly better).
        if err <= best.0 {
            best = (err, (cmin, cmax));
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_int8_scale_is_absmax_over_127() {
        let p = qparams(-2.54, 1.0, QType::Int8, true);
        assert_eq!(p.zero_point, 0);
        assert!((p.scale - 0.02).abs() < 1e-7, "{p:?}");
        assert_eq!(quantize(2.54, p, QType::Int8), 127);
        assert_eq!(quantize(-2.54, p, QType::Int8), -127);
    }

    #[test]
    fn symmetric_uint8_uses_midpoint_zero() {
        let p = qparams(-1.27, 0.5, QType::Uint8, true);
        assert_eq!(p.zero_point, 128);
        assert!((p.scale - 0.01).abs() < 1e-7);
        assert_eq!(quantize(0.0, p, QType::Uint8), 128);
        assert_eq!(quantize(-1.27, p, QType::Uint8), 1);
    }

    #[test]
    fn asymmetric_uint8_hand_computed() {
        // [-1, 3]: s = 4/255 = 0.015686..., z = round(0 - (-1)/s) = round(63.75) = 64
        let p = qparams(-1.0, 3.0, QType::Uint8, false);
        assert!((p.scale - 4.0 / 255.0).abs() < 1e-7);
        assert_eq!(p.zero_point, 64);
        assert_eq!(quantize(3.0, p, QType::Uint8), 255);
        assert_eq!(quantize(-1.0, p, QType::Uint8), 0);
    }

    #[test]
    fn asymmetric_int8_hand_computed() {
        // [0, 6] (a ReLU6 output): s = 6/255, z = round(-128 - 0) = -128
        let p = qparams(0.0, 6.0, QType::Int8, false);
        assert!((p.scale - 6.0 / 255.0).abs() < 1e-7);
        assert_eq!(p.zero_point, -128);
        assert_eq!(quantize(6.0, p, QType::Int8), 127);
        assert_eq!(quantize(0.0, p, QType::Int8), -128);
    }

    #[test]
    fn range_is_widened_to_include_zero() {
        // [2, 4] must still represent 0 exactly: becomes [0, 4].
        let p = qparams(2.0, 4.0, QType::Uint8, false);
        assert_eq!(p.zero_point, 0);
        assert!((p.scale - 4.0 / 255.0).abs() < 1e-7);
        assert_eq!(fake_quantize(0.0, p, QType::Uint8), 0.0);
    }

    #[test]
    fn rounding_is_half_to_even_and_clamped_at_the_edges() {
        let p = QParams {
            scale: 1.0,
            zero_point: 0,
        };
        assert_eq!(quantize(2.5, p, QType::Int8), 2);
        assert_eq!(quantize(3.5, p, QType::Int8), 4);
        assert_eq!(quantize(-2.5, p, QType::Int8), -2);
        assert_eq!(quantize(1000.0, p, QType::Int8), 127);
        assert_eq!(quantize(-1000.0, p, QType::Int8), -128);
        assert_eq!(quantize(-3.0, p, QType::Uint8), 0);
        assert_eq!(quantize(300.0, p, QType::Uint8), 255);
        assert_eq!(quantize(9.0, p, QType::Int4), 7);
        assert_eq!(quantize(-9.0, p, QType::Int4), -8);
    }

    #[test]
    fn constant_tensor_gets_a_usable_scale() {
        for qtype in [QType::Int8, QType::Uint8] {
            for sym in [true, false] {
                let p = qparams(0.0, 0.0, qtype, sym);
                assert!(p.scale > 0.0 && p.scale.is_finite());
                assert_eq!(fake_quantize(0.0, p, qtype), 0.0);
            }
        }
        // min = max = 0.5: range [0, 0.5], 0.5 representable exactly at the top.
        let p = qparams(0.5, 0.5, QType::Uint8, false);
        assert!((fake_quantize(0.5, p, QType::Uint8) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn reduced_range_weights_use_seven_bits() {
        // absmax 6.3 over 63 levels: s = 0.1; the grid stops at ±63 (stored in int8).
        let p = qparams(-6.3, 2.0, QType::Int7, true);
        assert!((p.scale - 0.1).abs() < 1e-7);
        assert_eq!(quantize(6.3, p, QType::Int7), 63);
        assert_eq!(quantize(-100.0, p, QType::Int7), -64);
    }

    #[test]
    fn int4_symmetric_grid() {
        let p = qparams(-0.7, 0.35, QType::Int4, true);
        assert!((p.scale - 0.1).abs() < 1e-7);
        assert_eq!(quantize(0.35, p, QType::Int4), 4); // 3.5 rounds to even 4
        assert_eq!(quantize(-0.7, p, QType::Int4), -7);
    }

    #[test]
    fn min_max_finite_in_lanes_and_remainder() {
        let mut v: Vec<f32> = (0..37).map(|i| (i as f32 - 18.0) * 0.5).collect();
        assert_eq!(min_max_finite(&v), (-9.0, 9.0, true));
        v[36] = f32::NAN; // in the remainder
        assert!(!min_max_finite(&v).2);
        v[36] = 0.0;
        v[3] = f32::NEG_INFINITY; // in a lane
        assert!(!min_max_finite(&v).2);
        assert_eq!(
            min_max_finite(&[]),
            (f32::INFINITY, f32::NEG_INFINITY, true)
        );
    }

    fn uniform(n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n)
            .map(|i| lo + (hi - lo) * (i as f32 + 0.5) / n as f32)
            .collect()
    }

    #[test]
    fn histogram_merge_equals_one_pass_and_counts_are_exact() {
        let a = uniform(10_000, -0.3, 0.2);
        let b = uniform(10_000, -3.0, 5.0);
        let mut one = Histogram::default();
        one.add(&a);
        one.add(&b);
        let mut left = Histogram::default();
        left.add(&b);
        let mut right = Histogram::default();
        right.add(&a);
        right.merge(left);
        assert_eq!(one, {
            let mut r = right.clone();
            r.min = one.min;
            r.max = one.max;
            r
        });
        assert_eq!(one.total, 20_000);
        assert_eq!(one.counts.iter().sum::<u64>(), 20_000);
        assert_eq!(one.limit(), 8.0);
        assert_eq!(one.min, a[0].min(b[0]));
    }

    #[test]
    fn non_finite_values_are_skipped_not_binned() {
        let mut h = Histogram::default();
        h.add(&[f32::NAN, 1.0, f32::INFINITY, -1.0, f32::NEG_INFINITY, 0.0]);
        h.add(&[f32::NAN, f32::INFINITY]);
        assert_eq!(h.total, 3);
        assert_eq!(h.counts.iter().sum::<u64>(), 3);
        assert_eq!((h.min, h.max), (-1.0, 1.0));
        // A caller's range that is too narrow still bins every value somewhere.
        let mut h = Histogram::default();
        h.add_with_range(&[5.0, -7.0, f32::NAN], -1.0, 1.0);
        assert_eq!(h.counts.iter().sum::<u64>(), 2);
    }

    #[test]
    fn percentile_of_uniform_data() {
        let mut h = Histogram::default();
        h.add(&uniform(100_000, -1.0, 1.0));
        // 99% kept: 0.5% clipped from each tail of U(-1, 1), as ONNX Runtime does.
        let (lo, hi) = percentile_range(&h, 99.0, false);
        assert!((hi - 0.99).abs() < 2e-3, "{hi}");
        assert!((lo + 0.99).abs() < 2e-3, "{lo}");
        let (lo, hi) = percentile_range(&h, 90.0, false);
        assert!(
            (hi - 0.90).abs() < 2e-3 && (lo + 0.90).abs() < 2e-3,
            "{lo} {hi}"
        );
        let (slo, shi) = percentile_range(&h, 99.0, true);
        // |x| is uniform on [0, 1]: its 99th percentile is 0.99.
        assert!((shi - 0.99).abs() < 2e-3 && slo == -shi, "{shi}");
        // 100% keeps everything and never exceeds the observed range.
        let (lo, hi) = percentile_range(&h, 100.0, false);
        assert!(hi <= h.max && lo >= h.min && hi > 0.999);
    }

    #[test]
    fn entropy_keeps_the_whole_range_of_uniform_data() {
        // Uniform data has no outliers: the best threshold is (close to) the maximum.
        let bins = vec![100u64; 2048];
        let t = entropy_threshold(&bins, 1.0 / 2048.0, 128);
        assert!(t > 0.95, "{t}");
    }

    fn laplace_bins(scale: f32, width: f32) -> Vec<u64> {
        (0..2048)
            .map(|i| (1e7 * (-((i as f32 + 0.5) * width) / scale).exp()).round() as u64)
            .collect()
    }

    #[test]
    fn entropy_clips_a_long_tail_and_scales_with_the_data() {
        // |x| ~ Laplace(b): the histogram runs out to about b·ln(1e7) ≈ 16b. The KL threshold
        // clips that sparse tail, and for data twice as wide it is twice as large.
        let width = 16.0 / 2048.0;
        let narrow = entropy_threshold(&laplace_bins(0.5, width), width, 128);
        let wide = entropy_threshold(&laplace_bins(1.0, width), width, 128);
        let narrow_end = 0.5 * 1e7f32.ln();
        assert!(
            narrow > 1.0 && narrow < 0.8 * narrow_end,
            "{narrow} vs data to {narrow_end}"
        );
        let ratio = wide / narrow;
        assert!((ratio - 2.0).abs() < 0.25, "{wide} / {narrow} = {ratio}");
    }

    #[test]
    fn mse_clips_outliers_but_not_uniform_data() {
        let mut uniform_h = Histogram::default();
        uniform_h.add(&uniform(50_000, 0.0, 1.0));
        let (_, hi) = mse_range(&uniform_h, QType::Uint8, false);
        assert!(hi > 0.97, "{hi}");

        // 10^6 values uniform on [-1, 1] plus one at 20. Clipping at t costs (20 − t)², rounding
        // costs 10^6 · (t/127)² / 12 ≈ 5.17 t²: the optimum is t = 20 / 6.17 ≈ 3.2.
        let mut data = uniform(1_000_000, -1.0, 1.0);
        data.push(20.0);
        let mut h = Histogram::default();
        h.add(&data);
        let (lo, hi) = mse_range(&h, QType::Int8, true);
        assert!((hi - 3.24).abs() < 0.4, "{hi}");
        assert_eq!(lo, -hi);
    }
}
