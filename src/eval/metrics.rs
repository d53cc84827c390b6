//! Metrics over model outputs: top-k accuracy, agreement with a reference, SQNR, cosine
//! similarity, absolute errors. Accumulators are plain sums, so merging per-worker partial
//! results gives exactly the serial result when merged in sample order.

use serde::{Deserialize, Serialize};

/// Index of the largest value; the first one on ties (as `argmax` in NumPy).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// Whether `label` is among the top `k` scores. Ties rank the lower index first, consistently
/// with [`argmax`]: top-1 hit ⇔ `argmax == label`.
/// A score vector with a NaN or infinity in it is a wrong answer: never a hit.
pub fn in_top_k(scores: &[f32], label: usize, k: usize) -> bool {
    let Some(&s) = scores.get(label) else {
        return false;
    };
    if scores.iter().any(|v| !v.is_finite()) {
        return false;
    }
    let ahead = scores
        .iter()
        .enumerate()
        .filter(|&(j, &v)| v > s || (v == s && j < label))
        .count();
    ahead < k
}

/// `10 · log10(Σ x² / Σ (x − x̂)²)`; infinite when the two are identical.
pub fn sqnr_db(signal_power: f64, noise_power: f64) -> f64 {
    if noise_power == 0.0 {
        return f64::INFINITY;
    }
    if signal_power == 0.0 {
        return f64::NEG_INFINITY;
    }
    10.0 * (signal_power / noise_power).log10()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        dot += x as f64 * y as f64;
        na += x as f64 * x as f64;
        nb += y as f64 * y as f64;
    }
    if na == 0.0 && nb == 0.0 {
        return 1.0;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}

/// The larger of two values, NaN if either is (`f64::max` would hide it).
fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Running sums for fidelity of `candidate` against `reference` outputs. Cosine is that of
/// the whole output (all samples as one vector), like SQNR, so that it means the same for a
/// scalar output as for a class vector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Fidelity {
    pub samples: usize,
    pub agree: usize,
    /// Samples whose candidate output holds a NaN or an infinity (never agreeing).
    pub non_finite: usize,
    pub signal: f64,
    pub noise: f64,
    pub dot: f64,
    pub candidate_power: f64,
    pub abs_sum: f64,
    pub abs_max: f64,
    pub elements: usize,
}

impl Fidelity {
    pub fn add(&mut self, reference: &[f32], candidate: &[f32]) {
        self.samples += 1;
        let finite = candidate.iter().all(|v| v.is_finite());
        if !finite {
            self.non_finite += 1;
        }
        if finite && reference.len() > 1 && argmax(reference) == argmax(candidate) {
            self.agree += 1;
        }
        for (&r, &c) in reference.iter().zip(candidate) {
            let d = (r - c) as f64;
            self.signal += r as f64 * r as f64;
            self.noise += d * d;
            self.dot += r as f64 * c as f64;
            self.candidate_power += c as f64 * c as f64;
            self.abs_sum += d.abs();
            // f64::max ignores NaN: keep it visible.
            self.abs_max = nan_max(self.abs_max, d.abs());
        }
        self.elements += reference.len();
    }

    pub fn merge(&mut self, o: &Fidelity) {
        self.samples += o.samples;
        self.agree += o.agree;
        self.non_finite += o.non_finite;
        self.signal += o.signal;
        self.noise += o.noise;
        self.dot += o.dot;
        self.candidate_power += o.candidate_power;
        self.abs_sum += o.abs_sum;
        self.abs_max = nan_max(self.abs_max, o.abs_max);
        self.elements += o.elements;
    }

    pub fn summary(&self) -> FidelitySummary {
        let broken = self.non_finite > 0;
        FidelitySummary {
            agreement: (self.samples > 0).then(|| self.agree as f64 / self.samples as f64),
            sqnr_db: if broken {
                f64::NAN
            } else {
                sqnr_db(self.signal, self.noise)
            },
            cosine: if broken {
                f64::NAN
            } else if self.signal == 0.0 && self.candidate_power == 0.0 {
                1.0
            } else if self.signal == 0.0 || self.candidate_power == 0.0 {
                0.0
            } else {
                self.dot / (self.signal.sqrt() * self.candidate_power.sqrt())
            },
            max_abs_error: self.abs_max,
            mean_abs_error: if self.elements > 0 {
                self.abs_sum / self.elements as f64
            } else {
                0.0
            },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FidelitySummary {
    pub agreement: Option<f64>,
    pub sqnr_db: f64,
    pub cosine: f64,
    pub max_abs_error: f64,
    pub mean_abs_error: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_with_ties() {
        let s = [0.1, 0.5, 0.5, 0.2];
        assert_eq!(argmax(&s), 1);
        assert!(in_top_k(&s, 1, 1));
        assert!(!in_top_k(&s, 2, 1)); // tied with class 1, which ranks first
        assert!(in_top_k(&s, 2, 2));
        assert!(!in_top_k(&s, 3, 2));
        assert!(in_top_k(&s, 3, 3));
        assert!(!in_top_k(&s, 0, 3));
        assert!(!in_top_k(&s, 9, 5)); // out of range never counts
    }

    #[test]
    fn sqnr_of_known_signals() {
        // x = [3, 4] (power 25), error [0.3, 0.4] (power 0.25): 10·log10(100) = 20 dB.
        let mut f = Fidelity::default();
        f.add(&[3.0, 4.0], &[2.7, 3.6]);
        let s = f.summary();
        assert!((s.sqnr_db - 20.0).abs() < 1e-4, "{}", s.sqnr_db);
        assert!((s.max_abs_error - 0.4).abs() < 1e-6);
        assert!((s.mean_abs_error - 0.35).abs() < 1e-6);
        assert!((s.cosine - 1.0).abs() < 1e-9); // a scaled copy points the same way
        assert_eq!(s.agreement, Some(1.0));
        assert_eq!(sqnr_db(1.0, 0.0), f64::INFINITY);
    }

    #[test]
    fn agreement_and_merge() {
        let mut a = Fidelity::default();
        a.add(&[1.0, 0.0, 0.0], &[0.9, 0.1, 0.0]); // agree
        let mut b = Fidelity::default();
        b.add(&[1.0, 0.0, 0.0], &[0.0, 1.0, 0.0]); // disagree
        b.add(&[0.0, 0.0, 1.0], &[0.0, 0.2, 0.8]); // agree
        a.merge(&b);
        assert_eq!(a.summary().agreement, Some(2.0 / 3.0));
        let mut serial = Fidelity::default();
        serial.add(&[1.0, 0.0, 0.0], &[0.9, 0.1, 0.0]);
        serial.add(&[1.0, 0.0, 0.0], &[0.0, 1.0, 0.0]);
        serial.add(&[0.0, 0.0, 1.0], &[0.0, 0.2, 0.8]);
        // Same counts; float sums equal up to summation order (evaluate reduces in sample order).
        assert_eq!(
            (serial.samples, serial.agree, serial.elements),
            (a.samples, a.agree, a.elements)
        );
        assert!((serial.noise - a.noise).abs() < 1e-12 && (serial.dot - a.dot).abs() < 1e-12);
        // orthogonal outputs have cosine 0
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 2.0]), 0.0);
    }

    #[test]
    fn cosine_is_over_the_whole_output() {
        // A scalar output per sample: per-sample cosines would all read 1.0 whatever the error.
        let mut f = Fidelity::default();
        f.add(&[1.0], &[2.0]);
        f.add(&[2.0], &[1.0]);
        // dot 4, |r|² 5, |c|² 5: cosine 0.8; SQNR 10·log10(5/2) = 3.98 dB.
        let s = f.summary();
        assert!((s.cosine - 0.8).abs() < 1e-12, "{}", s.cosine);
        assert!((s.sqnr_db - 3.979).abs() < 1e-3, "{}", s.sqnr_db);
    }

    #[test]
    fn a_nan_output_is_a_wrong_answer() {
        assert!(!in_top_k(&[f32::NAN, 0.5, 0.1], 1, 1));
        assert!(!in_top_k(&[0.2, f32::NAN, 0.1], 1, 5));
        let mut f = Fidelity::default();
        f.add(&[1.0, 0.0], &[f32::NAN, 0.0]);
        f.add(&[1.0, 0.0], &[1.0, 0.0]);
        let s = f.summary();
        assert_eq!(f.non_finite, 1);
        assert_eq!(s.agreement, Some(0.5));
        assert!(s.sqnr_db.is_nan() && s.cosine.is_nan() && s.max_abs_error.is_nan());
    }
}
