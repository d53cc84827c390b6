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

/// (accuracy-like figure, p50 ms) of each experiment on `backend`; higher figure is better.
pub fn tradeoff_points(session: &Session, backend: &str) -> Vec<Option<(f64, f64)>> {
    let labelled = session
        .experiments
        .iter()
        .any(|e| e.result.eval(backend).is_some_and(|r| r.top1.is_some()));
    session
        .experiments
        .iter()
        .map(|e| {
            let eval = e.result.eval(backend)?;
            let latency = e.result.bench(backend)?.p50_ms;
            let figure = if labelled {
                eval.top1?
            } else if e.config.is_none() {
                f64::INFINITY // the float model is its own reference
            } else {
                eval.sqnr_db?
            };
            Some((figure, latency))
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
            let p50 = e.result.bench(&ev.backend).map(|b| b.p50_ms);
            rows.push(Row {
                experiment: e.name.clone(),
                backend: ev.backend.clone(),
                size_bytes: e.result.size_bytes,
                top1: ev.report.top1,
                agreement: ev.report.agreement,
                sqnr_db: ev.report.sqnr_db,
                p50_ms: p50,
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
        f(r.p50_ms, 3),
        r.speedup.map(|s| format!("{s:.2}x")).unwrap_or("-".into()),
        if r.pareto {
            "*".into()
        } else {
            r.error.clone().unwrap_or_default()
        },
    ]
}

const HEADER: [&str; 9] = [
    "config",
    "runtime",
    "size",
    "top-1",
    "agreement",
    "SQNR dB",
    "p50 ms",
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
    s
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
        "config,runtime,size_bytes,top1,agreement,sqnr_db,p50_ms,speedup,pareto,error\n",
    );
    for r in rows(session) {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{}",
            quote(&r.experiment),
            r.backend,
            r.size_bytes,
            opt(r.top1),
            opt(r.agreement),
            opt(r.sqnr_db),
            opt(r.p50_ms),
            opt(r.speedup),
            r.pareto,
            quote(r.error.as_deref().unwrap_or(""))
        );
    }
    s
}

/// Marks the points no other point beats on both axes: `higher_is_better` for the first value,
/// lower for the second. Points with a missing value are never on the front.
pub fn pareto_front(points: &[Option<(f64, f64)>]) -> Vec<bool> {
    points
        .iter()
        .map(|p| {
            let Some((a, l)) = p else { return false };
            !points
                .iter()
                .flatten()
                .any(|(b, m)| (b >= a && m <= l) && (b > a || m < l))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pareto_front_by_hand() {
        // (accuracy, latency)
        let points = [
            Some((0.99, 10.0)), // front: most accurate
            Some((0.98, 5.0)),  // front
            Some((0.97, 6.0)),  // dominated by (0.98, 5.0)
            Some((0.90, 1.0)),  // front: fastest
            None,               // no figures: never on the front
            Some((0.98, 5.0)),  // a tie with a front point is on the front too
        ];
        assert_eq!(
            pareto_front(&points),
            vec![true, true, false, true, false, true]
        );
    }
}
