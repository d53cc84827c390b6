//! The automatic search: the fastest quantized model that meets a tolerance on the evaluation
//! set, on the runtime it is for. Every candidate is an experiment of the session (a point on
//! the plot); candidates already measured in the session are reused, so a search that stopped
//! resumes where it was.
//!
//! 1. A grid: granularity × calibration method × recovery (none, bias correction, AdaRound
//!    with bias correction), with the target's defaults.
//! 2. If none meets the goal: from the candidate closest to it, groups of layers kept float
//!    (`quant::rewrite::float_units`: a layer and those it shares an activation with), ranked
//!    by the error of each quantized alone (worst first); the fewest leading groups of that ranking that meet the
//!    goal, by bisection (at most `max_float_layers` layers).
//!
//! The chosen candidate is the fastest (p50) of those that meet the goal, not the first.

use anyhow::{bail, Result};

use crate::host::Machine;
use crate::jobs::Progress;
use crate::quant::{self, BiasCorrection, Calibration, Mode, QuantConfig, Target};
use crate::runner::{RunSettings, Workbench};
use crate::session::{Experiment, Session};

/// What the chosen model must reach on the evaluation set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Goal {
    /// Top-1 at most this far below float's (labelled data).
    MaxDrop(f64),
    MinAgreement(f64),
    MinSqnr(f64),
}

impl Goal {
    pub fn describe(self) -> String {
        match self {
            Goal::MaxDrop(d) => format!("top-1 at most {d} below float"),
            Goal::MinAgreement(a) => format!("agreement with float at least {a}"),
            Goal::MinSqnr(s) => format!("output SQNR at least {s} dB"),
        }
    }
}

pub struct TuneSettings {
    pub goal: Goal,
    pub target: Target,
    /// Calibration samples per candidate.
    pub samples: usize,
    /// Layers the second stage may keep float; `None`: half of those the closest candidate
    /// quantizes (float layers can be faster than int8 ones whose activations ONNX Runtime
    /// cannot fuse, and the bisection costs a few candidates whatever the budget).
    pub max_float_layers: Option<usize>,
    /// Evaluation samples for the per-layer ranking.
    pub layer_samples: usize,
    /// The runtime the candidates are measured on (one), its benchmark settings, eval limit.
    pub sweep: RunSettings,
}

/// A candidate measured: its figure for the goal, p50, and whether it meets the goal.
#[derive(Clone, Debug)]
pub struct Verdict {
    pub index: usize,
    pub figure: Option<f64>,
    pub p50_ms: Option<f64>,
    pub meets: bool,
}

pub struct Outcome {
    /// The chosen experiment's index in the session.
    pub chosen: usize,
    pub verdicts: Vec<Verdict>,
    pub log: Vec<String>,
}

/// The grid of stage 1 for `target` on `machine`.
pub fn grid(target: Target, samples: usize, machine: &Machine) -> Vec<(QuantConfig, Vec<String>)> {
    let mut out = vec![];
    for per_channel in [true, false] {
        for calibration in [
            Calibration::MinMax,
            Calibration::MeanMinMax,
            Calibration::Percentile(99.99),
            Calibration::Mse,
            Calibration::Entropy,
        ] {
            for (adaround, bias_correction) in [
                (false, None),
                (false, Some(BiasCorrection::Fast)),
                (true, Some(BiasCorrection::Fast)),
            ] {
                let mut c = QuantConfig {
                    mode: Mode::Int8,
                    per_channel,
                    calibration,
                    samples,
                    bias_correction,
                    adaround,
                    ..Default::default()
                };
                let why = c.apply_target(target, machine);
                if target == Target::TensorRt {
                    c.per_channel = per_channel;
                }
                out.push((c, why));
            }
        }
    }
    out
}

fn backend_name(settings: &TuneSettings) -> &'static str {
    settings
        .sweep
        .backends
        .first()
        .map(|b| b.name())
        .unwrap_or("tract")
}

/// The experiment's figure for `goal` on `backend`, and its p50.
fn figures(e: &Experiment, goal: Goal, backend: &str) -> (Option<f64>, Option<f64>) {
    let r = e.result.eval(backend);
    let figure = r.and_then(|r| match goal {
        Goal::MaxDrop(_) => r.top1,
        Goal::MinAgreement(_) => r.agreement,
        Goal::MinSqnr(_) => r.sqnr_db,
    });
    (figure, e.result.bench(backend).map(|b| b.p50_ms))
}

fn meets(goal: Goal, figure: Option<f64>, float_top1: Option<f64>) -> bool {
    match (goal, figure) {
        (Goal::MaxDrop(d), Some(t)) => float_top1.is_some_and(|f| t >= f - d),
        (Goal::MinAgreement(a), Some(x)) => x >= a,
        (Goal::MinSqnr(s), Some(x)) => x >= s,
        _ => false,
    }
}

/// Runs (or reuses from `session`) the experiment for `config`; returns its index.
fn measure(
    session: &mut Session,
    bench: &mut Workbench,
    config: QuantConfig,
    settings: &TuneSettings,
    progress: &Progress,
    after_each: &mut dyn FnMut(&Session) -> Result<()>,
) -> Result<(usize, bool)> {
    if let Some(i) = session
        .experiments
        .iter()
        .position(|e| e.config.as_ref() == Some(&config) && e.is_done())
    {
        return Ok((i, true));
    }
    let mut e = Experiment::quantized(config);
    bench.run(&mut e, &settings.sweep, progress)?;
    session.add(e);
    after_each(session)?;
    Ok((session.experiments.len() - 1, false))
}

pub fn tune(
    session: &mut Session,
    bench: &mut Workbench,
    settings: &TuneSettings,
    progress: &Progress,
    mut after_each: impl FnMut(&Session) -> Result<()>,
    mut say: impl FnMut(&str),
) -> Result<Outcome> {
    let backend = backend_name(settings);
    let mut log = vec![];
    let mut note = |line: String, say: &mut dyn FnMut(&str)| {
        say(&line);
        log.push(line);
    };
    note(
        format!(
            "goal: {} on {backend}; target {}",
            settings.goal.describe(),
            settings.target.cli_name()
        ),
        &mut say,
    );
    let float_index = match session
        .experiments
        .iter()
        .position(|e| e.config.is_none() && e.is_done())
    {
        Some(i) => i,
        None => {
            let mut f = Experiment::float();
            bench.run(&mut f, &settings.sweep, progress)?;
            session.add(f);
            after_each(session)?;
            session.experiments.len() - 1
        }
    };
    let float = &session.experiments[float_index];
    let float_top1 = float.result.eval(backend).and_then(|r| r.top1);
    let float_p50 = float.result.bench(backend).map(|b| b.p50_ms);
    if matches!(settings.goal, Goal::MaxDrop(_)) && float_top1.is_none() {
        bail!("--max-drop needs labelled data (top-1); use --min-agreement or --min-sqnr");
    }

    note(
        format!(
            "float: {} p50 {}",
            float_top1.map_or("-".into(), |t| format!("top-1 {t:.4}")),
            float_p50.map_or("-".into(), |p| format!("{p:.3} ms"))
        ),
        &mut say,
    );
    let machine = crate::host::detect();
    let mut verdicts: Vec<Verdict> = vec![];
    let judge = |session: &Session, index: usize| {
        let (figure, p50) = figures(&session.experiments[index], settings.goal, backend);
        Verdict {
            index,
            figure,
            p50_ms: p50,
            meets: meets(settings.goal, figure, float_top1),
        }
    };
    let line = |session: &Session, v: &Verdict, reused: bool| {
        format!(
            "candidate {}: {} -> {} p50 {} {}{}",
            v.index + 1,
            session.experiments[v.index].name,
            v.figure.map_or("no figure".into(), |f| format!("{f:.4}")),
            v.p50_ms.map_or("-".into(), |p| format!("{p:.3} ms")),
            if v.meets { "meets" } else { "misses" },
            if reused { " (from the session)" } else { "" }
        )
    };
    let grid = grid(settings.target, settings.samples, &machine);
    if let Some((_, why)) = grid.first() {
        for w in why {
            note(w.clone(), &mut say);
        }
    }
    note(
        format!(
            "stage 1: {} configurations (per-channel and per-tensor; min-max, mean min-max, percentile, MSE, entropy; no recovery, bias correction, AdaRound with bias correction)",
            grid.len()
        ),
        &mut say,
    );
    for (config, _) in grid {
        progress.check()?;
        let (index, reused) = measure(session, bench, config, settings, progress, &mut after_each)?;
        let v = judge(session, index);
        note(line(session, &v, reused), &mut say);
        // Measured, yet no agreement: the scored output is no class-score vector (a map, a
        // sequence), and no candidate will have one.
        let measured = session.experiments[index].result.eval(backend).is_some();
        if matches!(settings.goal, Goal::MinAgreement(_)) && measured && v.figure.is_none() {
            bail!(
                "--min-agreement needs an output of class scores (agreement is the share of equal top-1 classes); this model's scored output is not one: use --min-sqnr"
            );
        }
        verdicts.push(v);
    }
    if !verdicts.iter().any(|v| v.meets) {
        // Stage 2: the closest candidate, its worst layers kept float one by one.
        let Some(closest) = verdicts
            .iter()
            .filter(|v| v.figure.is_some())
            .max_by(|a, b| {
                a.figure
                    .unwrap_or(f64::MIN)
                    .total_cmp(&b.figure.unwrap_or(f64::MIN))
            })
            .cloned()
        else {
            bail!("no candidate could be measured on {backend}");
        };
        let base = session.experiments[closest.index]
            .config
            .clone()
            .unwrap_or_default();
        note(
            format!(
                "stage 2: none meets the goal; from candidate {} ({}), groups of layers kept float (a layer with the layers it shares an activation with), ranked by the SQNR of each quantized alone (no recovery) on {} samples, worst first; the fewest leading groups that meet the goal",
                closest.index + 1,
                base.label(),
                settings.layer_samples.max(1)
            ),
            &mut say,
        );
        let prepared = quant::prepare_float(&bench.float, &base)?.model;
        let types = quant::prepare::model_tensor_types(&prepared);
        let units = quant::rewrite::float_units(crate::onnx::graph(&prepared), &base, &types);
        let runtime = settings
            .sweep
            .backends
            .first()
            .copied()
            .unwrap_or(crate::runtime::Backend::Tract);
        let limit = Some(settings.layer_samples.max(1));
        // SQNR where the output has one, else the goal's own figure.
        let score_of = |r: &crate::eval::EvalReport| r.sqnr_db.or(r.agreement).or(r.top1);
        // Each group measured as the only one quantized (the rest float): its own share of the
        // output error. Keeping each float alone instead recovers a fraction of a dB, below the
        // noise of a few samples. Shares do not add up exactly, hence the bisection below.
        let all: Vec<String> = {
            let mut all: Vec<String> = units.iter().flatten().cloned().collect();
            all.sort();
            all.dedup();
            all
        };
        let budget = settings.max_float_layers.unwrap_or(all.len() / 2).max(1);
        let mut ranked: Vec<(f64, Vec<String>)> = vec![];
        for unit in units {
            if unit.len() > budget || unit.iter().all(|n| base.keep_float.contains(n)) {
                continue;
            }
            progress.check()?;
            // Ranked without recovery: the groups' activations decide, and AdaRound and bias
            // correction would cost seconds per group.
            let mut variant = QuantConfig {
                adaround: false,
                bias_correction: None,
                ..base.clone()
            };
            variant
                .keep_float
                .extend(all.iter().filter(|n| !unit.contains(n)).cloned());
            match bench.score(&variant, runtime, limit, &settings.sweep, progress) {
                Ok(r) => {
                    if let Some(score) = score_of(&r) {
                        ranked.push((score, unit));
                    }
                }
                Err(e) if crate::jobs::is_cancelled(&e) => return Err(e),
                Err(e) => note(format!("{}: {e:#}", unit.join("+")), &mut say),
            }
        }
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.len().cmp(&b.1.len())));
        note(
            format!(
                "{} groups measured, each the only one quantized; the worst: {}",
                ranked.len(),
                ranked
                    .iter()
                    .take(5)
                    .map(|(score, unit)| format!("{} {score:.2}", unit.join("+")))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            &mut say,
        );
        // Prefixes of the ranking: the first k groups float together, within the layer budget.
        let mut prefixes: Vec<Vec<String>> = vec![];
        let mut floated = base.keep_float.clone();
        for (_, unit) in &ranked {
            let new: Vec<&String> = unit.iter().filter(|n| !floated.contains(n)).collect();
            if new.is_empty() {
                continue;
            }
            if floated.len() - base.keep_float.len() + new.len() > budget {
                break;
            }
            floated.extend(new.into_iter().cloned());
            prefixes.push(floated.clone());
        }
        // The fewest groups that meet the goal, by bisection over the prefixes (more float
        // layers recover more, and cost latency): the largest first, then halves.
        let last = prefixes.len().saturating_sub(1);
        let (mut lo, mut hi): (Option<usize>, Option<usize>) = (None, None);
        let mut next = (!prefixes.is_empty()).then_some(last);
        while let Some(k) = next {
            progress.check()?;
            let config = QuantConfig {
                keep_float: prefixes[k].clone(),
                ..base.clone()
            };
            let layers = prefixes[k].len() - base.keep_float.len();
            note(
                format!("keeping the first {} groups float ({layers} layers)", k + 1),
                &mut say,
            );
            let (index, reused) =
                measure(session, bench, config, settings, progress, &mut after_each)?;
            let v = judge(session, index);
            note(line(session, &v, reused), &mut say);
            if v.meets {
                hi = Some(k);
            } else {
                lo = Some(k);
                if k == last {
                    note(
                        format!("even {layers} float layers miss the goal (--max-float-layers allows more)"),
                        &mut say,
                    );
                }
            }
            verdicts.push(v);
            next = hi.and_then(|h| {
                let l = lo.map_or(0, |l| l + 1);
                (l < h).then(|| l + (h - l) / 2)
            });
        }
    }
    let Some(best) = verdicts
        .iter()
        .filter(|v| v.meets)
        .min_by(|a, b| {
            a.p50_ms
                .unwrap_or(f64::MAX)
                .total_cmp(&b.p50_ms.unwrap_or(f64::MAX))
        })
        .cloned()
    else {
        bail!(
            "no candidate meets the goal ({}); the closest: {}",
            settings.goal.describe(),
            verdicts
                .iter()
                .filter_map(|v| v.figure.map(|f| (f, v.index)))
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map_or("none measured".into(), |(f, i)| format!(
                    "{} at {f:.4}",
                    session.experiments[i].name
                ))
        );
    };
    let passing = verdicts.iter().filter(|v| v.meets).count();
    note(
        format!(
            "chosen: candidate {} ({}), the fastest of {passing} that meet the goal",
            best.index + 1,
            session.experiments[best.index].name
        ),
        &mut say,
    );
    Ok(Outcome {
        chosen: best.index,
        verdicts,
        log,
    })
}
