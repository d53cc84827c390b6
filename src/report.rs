//! The results table of a session, one row per experiment and runtime, as text, Markdown and
//! CSV. The Pareto mark is computed on the deployment runtime (ONNX Runtime when measured, tract
//! otherwise): accuracy (top-1 with labels, output SQNR without) against p50 latency.

use std::fmt::Write as _;

use crate::onnx::inspect::human_bytes;
use crate::session::Session;

#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub experiment: String,
    pub backend: String,
    pub size_bytes: u64,
    pub top1: Option<f64>,
    pub agreement: Option<f64>,
    pub sqnr_db: Option<f64>,
    pub p50_ms: Option<f64>,
    /// The p50's 95% confidence interval.
    pub p50_interval_ms: Option<(f64, f64)>,
    /// Float p50 / this p50 on the same runtime.
    pub speedup: Option<f64>,
    pub pareto: bool,
    pub error: Option<String>,
}

/// The runtime whose latency decides the Pareto front.
pub fn primary_backend(session: &Session) -> &'static str {
    let has_ort = session
        .experiments
        .iter()
        .any(|e| e.result.bench("ort").is_some());
    if has_ort {
        "ort"
    } else {
        "tract"
    }
}

/// One experiment on the trade-off: its figure (accuracy-like, higher is better) and its cost
/// (p50 latency or size, lower is better) with the cost's 95% interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TradeoffPoint {
    pub figure: f64,
    pub cost: f64,
    pub interval: (f64, f64),
    pub size_bytes: u64,
}

impl TradeoffPoint {
    /// Whether `self` is as good as `other` and better somewhere. Costs whose intervals overlap
    /// are one cost (a tie within the noise): then the figure decides, then the size.
    pub fn beats(&self, other: &TradeoffPoint) -> bool {
        if crate::bench::stats::overlap(self.interval, other.interval) {
            self.figure > other.figure
                || (self.figure == other.figure && self.size_bytes < other.size_bytes)
        } else {
            self.interval.1 < other.interval.0 && self.figure >= other.figure
        }
    }
}

/// The trade-off point of each experiment on `backend` (p50 latency as the cost).
pub fn tradeoff_points(session: &Session, backend: &str) -> Vec<Option<TradeoffPoint>> {
    let labelled = session
        .experiments
        .iter()
        .any(|e| e.result.eval(backend).is_some_and(|r| r.top1.is_some()));
    session
        .experiments
        .iter()
        .map(|e| {
            let eval = e.result.eval(backend)?;
            let bench = e.result.bench(backend)?;
            let figure = if labelled {
                eval.top1?
            } else if e.config.is_none() {
                f64::INFINITY // the float model is its own reference
            } else {
                eval.sqnr_db?
            };
            Some(TradeoffPoint {
                figure,
                cost: bench.p50_ms,
                interval: bench.interval(),
                size_bytes: e.result.size_bytes,
            })
        })
        .collect()
}

pub fn rows(session: &Session) -> Vec<Row> {
    let primary = primary_backend(session);
    let front = pareto_front(&tradeoff_points(session, primary));
    let float_p50 = |backend: &str| {
        session
            .experiments
            .iter()
            .find(|e| e.config.is_none())
            .and_then(|e| e.result.bench(backend))
            .map(|b| b.p50_ms)
    };
    let mut rows = vec![];
    for (i, e) in session.experiments.iter().enumerate() {
        if e.result.evals.is_empty() {
            rows.push(Row {
                experiment: e.name.clone(),
                backend: "-".into(),
                size_bytes: e.result.size_bytes,
                top1: None,
                agreement: None,
                sqnr_db: None,
                p50_ms: None,
                p50_interval_ms: None,
                speedup: None,
                pareto: false,
                error: Some(
                    e.result
                        .error
                        .clone()
                        .unwrap_or_else(|| "not run yet".into()),
                ),
            });
            continue;
        }
        for ev in &e.result.evals {
            let bench = e.result.bench(&ev.backend);
            let p50 = bench.map(|b| b.p50_ms);
            rows.push(Row {
                experiment: e.name.clone(),
                backend: ev.backend.clone(),
                size_bytes: e.result.size_bytes,
                top1: ev.report.top1,
                agreement: ev.report.agreement,
                sqnr_db: ev.report.sqnr_db,
                p50_ms: p50,
                p50_interval_ms: bench.and_then(|b| b.p50_interval_ms),
                speedup: p50.zip(float_p50(&ev.backend)).map(|(p, f)| f / p),
                pareto: front[i] && ev.backend == primary,
                error: None,
            });
        }
    }
    rows
}

fn cells(r: &Row) -> [String; 9] {
    let f = |v: Option<f64>, d: usize| match v {
        Some(v) if v.is_infinite() => "inf".to_string(),
        Some(v) => format!("{v:.d$}"),
        None => "-".into(),
    };
    [
        r.experiment.clone(),
        r.backend.clone(),
        human_bytes(r.size_bytes),
        f(r.top1, 4),
        f(r.agreement, 4),
        f(r.sqnr_db, 1),
        p50_cell(r),
        r.speedup.map(|s| format!("{s:.2}x")).unwrap_or("-".into()),
        if r.pareto {
            "*".into()
        } else {
            r.error.clone().unwrap_or_default()
        },
    ]
}

/// "4.88 (4.71–5.02)": the p50 and its interval, to the digits the interval allows.
fn p50_cell(r: &Row) -> String {
    let Some(p50) = r.p50_ms else {
        return "-".into();
    };
    match r.p50_interval_ms {
        Some((lo, hi)) => {
            let d = crate::bench::precision(hi - lo, p50);
            format!("{p50:.d$} ({lo:.d$}–{hi:.d$})")
        }
        None => format!("{p50:.3}"),
    }
}

const HEADER: [&str; 9] = [
    "config",
    "runtime",
    "size",
    "top-1",
    "agreement",
    "SQNR dB",
    "p50 ms (95% CI)",
    "speed-up",
    "pareto",
];

pub fn to_text(session: &Session) -> String {
    let rows: Vec<[String; 9]> = rows(session).iter().map(cells).collect();
    let widths: Vec<usize> = (0..9)
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([HEADER[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut s = String::new();
    let line = |s: &mut String, cols: Vec<&str>| {
        let padded: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if c < 2 {
                    format!("{v:<w$}", w = widths[c])
                } else {
                    format!("{v:>w$}", w = widths[c])
                }
            })
            .collect();
        let _ = writeln!(s, "{}", padded.join("  ").trim_end());
    };
    line(&mut s, HEADER.to_vec());
    for r in &rows {
        line(&mut s, r.iter().map(String::as_str).collect());
    }
    let _ = writeln!(
        s,
        "* Pareto front on {}: no other config is both more accurate and faster",
        primary_backend(session)
    );
    let devices = crate::bench::distinct_devices(
        session
            .experiments
            .iter()
            .flat_map(|e| &e.result.benches)
            .map(|b| b.device_label()),
    );
    if !devices.is_empty() {
        let _ = writeln!(s, "latency measured on {}", devices.join("; "));
    }
    for note in busy_notes(session) {
        let _ = writeln!(s, "{note}");
    }
    s
}

/// What made the session's latencies noisy, each said once: other processes busy while they
/// were timed.
pub fn busy_notes(session: &Session) -> Vec<String> {
    let mut notes: Vec<String> = vec![];
    for w in session
        .experiments
        .iter()
        .flat_map(|e| &e.result.benches)
        .flat_map(|b| &b.warnings)
        .filter(|w| w.starts_with("the machine was busy"))
    {
        if !notes.contains(w) {
            notes.push(w.clone());
        }
    }
    notes
}

pub fn to_markdown(session: &Session) -> String {
    let mut s = format!(
        "| {} |\n|{}|\n",
        HEADER.join(" | "),
        HEADER.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for r in rows(session).iter().map(cells) {
        let _ = writeln!(s, "| {} |", r.join(" | "));
    }
    s
}

pub fn to_csv(session: &Session) -> String {
    let quote = |v: &str| {
        if v.contains([',', '"', '\n']) {
            format!("\"{}\"", v.replace('"', "\"\""))
        } else {
            v.to_string()
        }
    };
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut s = String::from(
        "config,runtime,size_bytes,top1,agreement,sqnr_db,p50_ms,p50_low_ms,p50_high_ms,speedup,pareto,error\n",
    );
    for r in rows(session) {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            quote(&r.experiment),
            r.backend,
            r.size_bytes,
            opt(r.top1),
            opt(r.agreement),
            opt(r.sqnr_db),
            opt(r.p50_ms),
            opt(r.p50_interval_ms.map(|i| i.0)),
            opt(r.p50_interval_ms.map(|i| i.1)),
            opt(r.speedup),
            r.pareto,
            quote(r.error.as_deref().unwrap_or(""))
        );
    }
    s
}

/// Marks the points no other point beats ([`TradeoffPoint::beats`]: two costs within each
/// other's noise are a tie, decided by the figure, then the size). Missing points are never on
/// the front.
pub fn pareto_front(points: &[Option<TradeoffPoint>]) -> Vec<bool> {
    // Ties are made transitive: points whose intervals overlap, directly or through a chain of
    // others, are one cost group. Pairwise ties alone can form a cycle (A ties B and is
    // smaller, B is strictly faster than C, C ties A and is smaller) that leaves no point
    // undominated; groups give a strict partial order, whose front is never empty.
    let group = cost_groups(points);
    let beats = |q: usize, p: usize| {
        let (Some(a), Some(b)) = (points[q], points[p]) else {
            return false;
        };
        if group[q] == group[p] {
            a.figure > b.figure || (a.figure == b.figure && a.size_bytes < b.size_bytes)
        } else {
            group[q] < group[p] && a.figure >= b.figure
        }
    };
    (0..points.len())
        .map(|p| points[p].is_some() && !(0..points.len()).any(|q| q != p && beats(q, p)))
        .collect()
}

/// Each point's cost group, numbered from the cheapest: the connected runs of overlapping
/// intervals.
fn cost_groups(points: &[Option<TradeoffPoint>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len()).filter(|&k| points[k].is_some()).collect();
    let low = |k: usize| points[k].map_or(0.0, |p| p.interval.0);
    order.sort_by(|&a, &b| low(a).total_cmp(&low(b)));
    let mut group = vec![0; points.len()];
    let (mut current, mut reach) = (0, f64::NEG_INFINITY);
    for (n, &k) in order.iter().enumerate() {
        let Some(p) = points[k] else { continue };
        if n > 0 && p.interval.0 > reach {
            current += 1;
        }
        reach = reach.max(p.interval.1);
        group[k] = current;
    }
    group
}

/// The cheapest point, where the points whose costs tie with its (its cost group: intervals
/// overlapping it directly or through others) count as one: of those, the best figure, then
/// the smallest size, then the lowest cost.
pub fn fastest(points: &[Option<TradeoffPoint>]) -> Option<usize> {
    let group = cost_groups(points);
    let (cheapest, _) = points
        .iter()
        .enumerate()
        .filter_map(|(k, p)| p.map(|p| (k, p)))
        .min_by(|a, b| a.1.cost.total_cmp(&b.1.cost))?;
    points
        .iter()
        .enumerate()
        .filter_map(|(k, p)| p.map(|p| (k, p)))
        .filter(|(k, _)| group[*k] == group[cheapest])
        .min_by(|(_, a), (_, b)| {
            b.figure
                .total_cmp(&a.figure)
                .then(a.size_bytes.cmp(&b.size_bytes))
                .then(a.cost.total_cmp(&b.cost))
        })
        .map(|(k, _)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(figure: f64, p50: f64, spread: f64, size_bytes: u64) -> Option<TradeoffPoint> {
        Some(TradeoffPoint {
            figure,
            cost: p50,
            interval: (p50 - spread, p50 + spread),
            size_bytes,
        })
    }

    #[test]
    fn pareto_front_by_hand() {
        // (accuracy, latency), intervals too narrow to overlap
        let points = [
            point(0.99, 10.0, 0.1, 100), // front: most accurate
            point(0.98, 5.0, 0.1, 100),  // front
            point(0.97, 6.0, 0.1, 100),  // dominated by (0.98, 5.0)
            point(0.90, 1.0, 0.1, 100),  // front: fastest
            None,                        // no figures: never on the front
            point(0.98, 5.0, 0.1, 100),  // a tie with a front point is on the front too
        ];
        assert_eq!(
            pareto_front(&points),
            vec![true, true, false, true, false, true]
        );
    }

    /// A cycle of pairwise ties (A ties B and is smaller, B is clearly faster than C, C ties
    /// A and is smaller) left every point beaten; tie groups keep a front: all three are one
    /// latency, and the smallest of the equally accurate wins.
    #[test]
    fn a_cycle_of_ties_still_has_a_front() {
        let points = [
            point(0.99, 2.0, 1.0, 200), // A: 1–3 ms
            point(0.99, 0.8, 0.3, 300), // B: 0.5–1.1 ms, ties A, larger
            point(0.99, 3.3, 0.7, 100), // C: 2.6–4.0 ms, ties A, smallest; B is clearly faster
        ];
        assert_eq!(pareto_front(&points), vec![false, false, true]);
    }

    /// Latencies within each other's noise are one latency: the more accurate point wins, and
    /// at equal accuracy the smaller; a faster point with a worse figure still stands.
    #[test]
    fn overlapping_latencies_tie_and_accuracy_then_size_decide() {
        let points = [
            point(0.95, 5.0, 1.0, 100), // ties with the next (4.5 ± 1): less accurate, off
            point(0.97, 4.5, 1.0, 100), // front
            point(0.97, 4.8, 1.0, 90),  // same accuracy, tie on latency, smaller: beats the above
            point(0.90, 1.0, 0.2, 100), // clearly faster: front despite its accuracy
        ];
        assert_eq!(pareto_front(&points), vec![false, false, true, true]);
        // The fastest is the 1.0 ms point; without it, the three tied points are one latency
        // and the smaller of the two most accurate wins, though it is not the lowest p50.
        assert_eq!(fastest(&points), Some(3));
        assert_eq!(fastest(&points[..3]), Some(2));
        assert_eq!(fastest(&[None, None]), None);
    }
}
