//! What timings can say: a median's 95% confidence interval, and whether one model is faster
//! than another or the difference is inside the noise. Both are distribution-free (order
//! statistics): latency distributions are skewed and multi-modal, nothing to fit a normal to.

/// The two-sided 95% normal quantile.
const Z95: f64 = 1.959_963_985;

/// The 95% confidence interval of the median of `sorted` (ascending): the order statistics of
/// ranks `n/2 − 1.96·√n/2` and `1 + n/2 + 1.96·√n/2`, rounded (the normal approximation to the
/// binomial, as in Conover, *Practical Nonparametric Statistics*). With under 6 values the
/// interval is the whole range.
pub fn median_interval(sorted: &[f64]) -> (f64, f64) {
    let n = sorted.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    if n < 6 {
        return (sorted[0], sorted[n - 1]);
    }
    let half = Z95 * (n as f64).sqrt() / 2.0;
    let lo = ((n as f64 / 2.0 - half).round() as usize).clamp(1, n);
    let hi = ((1.0 + n as f64 / 2.0 + half).round() as usize).clamp(1, n);
    (sorted[lo - 1], sorted[hi - 1])
}

/// The median of `values` (any order).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    super::quantile(&v, 0.5)
}

/// Whether two intervals share a point: their medians cannot be told apart.
pub fn overlap(a: (f64, f64), b: (f64, f64)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

/// Two models timed in the same rounds: the median of the per-round ratio of A's time to B's,
/// with its 95% interval. Pairing by round cancels what changed between rounds (a busy
/// moment slows both).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Comparison {
    /// A's time over B's: below 1, A is faster.
    pub ratio: f64,
    pub interval: (f64, f64),
}

impl Comparison {
    /// `a` and `b` are the times of the same rounds, in round order.
    pub fn of(a: &[f64], b: &[f64]) -> Comparison {
        let mut ratios: Vec<f64> = a
            .iter()
            .zip(b)
            .filter(|(_, &y)| y > 0.0)
            .map(|(&x, &y)| x / y)
            .collect();
        ratios.sort_by(f64::total_cmp);
        Comparison {
            ratio: super::quantile(&ratios, 0.5),
            interval: median_interval(&ratios),
        }
    }

    /// The interval holds 1: neither is faster beyond the noise.
    pub fn is_tie(&self) -> bool {
        self.interval.0 <= 1.0 && 1.0 <= self.interval.1
    }

    /// "A faster by 12.3% (95% CI 9.8–14.1%)", "B faster by …", or "tie within noise (…)".
    pub fn describe(&self, a: &str, b: &str) -> String {
        let (lo, hi) = self.interval;
        let pct = |r: f64| 100.0 * (1.0 - r);
        if self.is_tie() {
            format!(
                "{a} vs {b}: tie within noise ({a}'s time {:.3}× {b}'s, 95% CI {lo:.3}–{hi:.3})",
                self.ratio
            )
        } else if self.ratio < 1.0 {
            format!(
                "{a} faster than {b} by {:.1}% (95% CI {:.1}–{:.1}%)",
                pct(self.ratio),
                pct(hi),
                pct(lo)
            )
        } else {
            let inverse = |r: f64| 100.0 * (1.0 - 1.0 / r);
            format!(
                "{b} faster than {a} by {:.1}% (95% CI {:.1}–{:.1}%)",
                inverse(self.ratio),
                inverse(lo),
                inverse(hi)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// For n = 100 the interval is the 40th and 61st values (Conover's table: ranks 40 and 61);
    /// small samples give their whole range.
    #[test]
    fn the_median_interval_takes_the_order_statistics_of_the_tables() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(median_interval(&v), (40.0, 61.0));
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        // n = 20: ranks 6 and 15.
        assert_eq!(median_interval(&v), (6.0, 15.0));
        assert_eq!(median_interval(&[3.0, 1.0 + 1.0, 5.0]), (3.0, 5.0));
        assert!(median_interval(&[]).0.is_nan());
    }

    #[test]
    fn paired_rounds_tell_faster_from_a_tie() {
        // B takes 1.25× A's time in every round, while the rounds themselves drift 3×.
        let drift: Vec<f64> = (0..60).map(|r| 1.0 + 2.0 * (r as f64 / 59.0)).collect();
        let a: Vec<f64> = drift.iter().map(|d| 4.0 * d).collect();
        let b: Vec<f64> = drift.iter().map(|d| 5.0 * d).collect();
        let c = Comparison::of(&a, &b);
        assert!((c.ratio - 0.8).abs() < 1e-12 && !c.is_tie());
        assert!(c.describe("A", "B").starts_with("A faster than B by 20.0%"));
        assert!(Comparison::of(&b, &a)
            .describe("B", "A")
            .starts_with("A faster than B by 20.0%"));
        // The same model twice: the ratio wanders around 1 and the interval holds it.
        let noise: Vec<f64> = (0..60).map(|r| ((r * 37) % 11) as f64 * 0.01).collect();
        let x: Vec<f64> = drift.iter().zip(&noise).map(|(d, n)| d + n).collect();
        let y: Vec<f64> = drift
            .iter()
            .zip(noise.iter().rev())
            .map(|(d, n)| d + n)
            .collect();
        let same = Comparison::of(&x, &y);
        assert!(same.is_tie(), "{same:?}");
        assert!(same.describe("A", "B").contains("tie within noise"));
    }

    #[test]
    fn intervals_overlap_when_they_share_a_point() {
        assert!(overlap((1.0, 2.0), (2.0, 3.0)));
        assert!(overlap((1.0, 5.0), (2.0, 3.0)));
        assert!(!overlap((1.0, 1.9), (2.0, 3.0)));
    }
}
