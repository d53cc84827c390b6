//! The automatic search: the fastest quantized model that meets a tolerance on the evaluation
//! set, on the runtime it is for. Every candidate is an experiment of the session (a point on
//! the plot), run by the runner and named by id; candidates already measured in the session are
//! reused when they were measured on the same model, data, evaluation limit, runtime and device
//! (anything else is measured again, with a note naming what differs), so a search that stopped
//! resumes where it was.
//!
//! 1. A grid: granularity × calibration method × recovery (none, bias correction, AdaRound
//!    with bias correction), with the target's defaults.
//! 2. If none meets the goal: from the candidate closest to it, groups of layers kept float
//!    (`quant::rewrite::float_units`: a layer and those it shares an activation with), ranked
//!    by the error of each quantized alone (worst first); the fewest leading groups of that
//!    ranking that meet the goal, by bisection (at most `max_float_layers` layers).
//!
//! The chosen candidate is the fastest (p50) of those that meet the goal, not the first: the
//! fastest few are timed again together with float, in rounds, and those whose latencies tie
//! within noise (overlapping 95% intervals) are decided by the goal's figure, then size.

use anyhow::{bail, Result};

use crate::host::Machine;
use crate::jobs::Progress;
use crate::quant::{self, BiasCorrection, Calibration, Mode, QuantConfig, Target};
use crate::report::TradeoffPoint;
use crate::runner::{RunSettings, Workbench};
use crate::runtime::Backend;
use crate::session::{Experiment, ExperimentId, ModelRef, Session};

/// What the chosen model must reach on the evaluation set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Goal {
    /// Top-1 at most this far below float's (labelled data).
    MaxDrop(f64),
    MinAgreement(f64),
    MinSqnr(f64),
}

impl Goal {
    /// The figure the goal is on, in words.
    pub fn figure_name(self) -> &'static str {
        match self {
            Goal::MaxDrop(_) => "top-1",
            Goal::MinAgreement(_) => "agreement",
            Goal::MinSqnr(_) => "output SQNR",
        }
    }

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
    pub run: RunSettings,
    /// The model searched on (the session's results are reused only if they are of this file).
    pub model: ModelRef,
    /// No new candidate starts after this long: the choice is among those measured by then.
    pub time_budget: Option<std::time::Duration>,
}

/// A candidate measured: its figure for the goal, p50, and whether it meets the goal.
#[derive(Clone, Debug)]
pub struct Verdict {
    pub id: ExperimentId,
    pub figure: Option<f64>,
    pub p50_ms: Option<f64>,
    /// The p50's 95% confidence interval.
    pub p50_interval: Option<(f64, f64)>,
    pub size_bytes: u64,
    pub meets: bool,
    /// Taken from the session instead of measured now.
    pub reused: bool,
}

pub struct Outcome {
    pub chosen: ExperimentId,
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
            Calibration::Percentile(Calibration::DEFAULT_PERCENTILE),
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

/// Why a failed result is not reused (it is measured again, silently: its failure may have
/// been the machine's, a full disk, not the config's).
const FAILED: &str = "it failed";

/// Why a result in the session cannot stand in for measuring `config` now, if it cannot.
pub fn not_reusable(
    e: &Experiment,
    session_model: &ModelRef,
    bench: &Workbench,
    settings: &TuneSettings,
) -> Option<String> {
    if e.result.error.is_some() {
        return Some(FAILED.into());
    }
    if session_model.sha256 != settings.model.sha256 {
        return Some(format!(
            "the session measured another model file (SHA-256 {}…, this one {}…)",
            crate::fileio::short_hash(&session_model.sha256),
            crate::fileio::short_hash(&settings.model.sha256)
        ));
    }
    let Some(data) = &e.result.data else {
        return Some("its data was not recorded".into());
    };
    if data.sha256 != bench.data.sha256 {
        return Some(format!(
            "it was measured on other data (SHA-256 {}…, this data {}…)",
            crate::fileio::short_hash(&data.sha256),
            crate::fileio::short_hash(&bench.data.sha256)
        ));
    }
    let Some(measured) = &e.result.measured else {
        return Some("how it was measured (evaluation limit, runtime) was not recorded".into());
    };
    // Limits beyond the evaluation split evaluate all of it: the same measurement.
    let split = bench
        .dataset
        .evaluation_indices(crate::data::Selection::limit(None))
        .map_or(usize::MAX, |i| i.len());
    let evaluated = |l: Option<usize>| l.map_or(split, |n| n.min(split));
    if evaluated(measured.eval_limit) != evaluated(settings.run.eval_limit) {
        let limit = |l: Option<usize>| l.map_or("all".to_string(), |n| n.to_string());
        return Some(format!(
            "it was evaluated on {} samples at most, this search on {}",
            limit(measured.eval_limit),
            limit(settings.run.eval_limit)
        ));
    }
    if measured.output != settings.run.output {
        let output = |o: &Option<String>| o.clone().unwrap_or_else(|| "the first".into());
        return Some(format!(
            "it scored output {}, this search scores {}",
            output(&measured.output),
            output(&settings.run.output)
        ));
    }
    let backend = settings.run.backends.first();
    if !backend.is_some_and(|b| measured.backends.contains(b)) {
        return Some(format!(
            "it was measured on {}, this search on {}",
            measured
                .backends
                .iter()
                .map(|b| format!("{b:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            backend.map_or("-".into(), |b| format!("{b:?}"))
        ));
    }
    let device = settings.run.remote.as_ref().map(|r| r.to_string());
    if measured.device != device {
        let on = |d: &Option<String>| d.clone().unwrap_or_else(|| "this machine".into());
        return Some(format!(
            "its latency was timed on {}, this search times on {}",
            on(&measured.device),
            on(&device)
        ));
    }
    None
}

/// A search in progress: the session it adds candidates to, and what it has found so far.
struct Search<'a> {
    session: &'a mut Session,
    bench: &'a mut Workbench,
    settings: &'a TuneSettings,
    progress: &'a Progress,
    after_each: &'a mut dyn FnMut(&Session) -> Result<()>,
    say: &'a mut dyn FnMut(&str),
    runtime: Backend,
    /// `runtime`'s name, as results record it.
    backend: &'static str,
    float_top1: Option<f64>,
    verdicts: Vec<Verdict>,
    log: Vec<String>,
    /// The reasons already given for not reusing a result (each said once).
    refused: Vec<String>,
    /// When no new candidate may start any more (the time budget).
    deadline: Option<std::time::Instant>,
    /// The time budget ran out (said once).
    out_of_time: bool,
}

impl Search<'_> {
    /// Whether the time budget is spent; says so the first time.
    fn out_of_time(&mut self) -> bool {
        if self.out_of_time {
            return true;
        }
        if self
            .deadline
            .is_some_and(|d| std::time::Instant::now() >= d)
        {
            self.out_of_time = true;
            let measured = self.verdicts.len();
            self.note(format!(
                "the time budget is spent: no new candidate; the choice is among the {measured} measured"
            ));
        }
        self.out_of_time
    }

    fn note(&mut self, line: String) {
        (self.say)(&line);
        self.log.push(line);
    }

    /// The finished experiment of the session with `config` (`None`: the float model) that
    /// can stand in for measuring it now.
    fn reusable(&mut self, config: Option<&QuantConfig>) -> Option<ExperimentId> {
        let model = self.session.model.clone();
        let same: Vec<(ExperimentId, Option<String>)> = self
            .session
            .experiments
            .iter()
            .filter(|e| e.config.as_ref() == config && e.is_done())
            .map(|e| (e.id, not_reusable(e, &model, self.bench, self.settings)))
            .filter(|(_, why)| why.as_deref() != Some(FAILED))
            .collect();
        if let Some((id, _)) = same.iter().find(|(_, why)| why.is_none()) {
            return Some(*id);
        }
        for (id, why) in same {
            let why = why.unwrap_or_default();
            if !self.refused.contains(&why) {
                self.refused.push(why.clone());
                self.note(format!(
                    "experiment {id} of the session is not reused: {why}; measured again"
                ));
            }
        }
        None
    }

    /// Runs (or reuses from the session) the experiment for `config` (`None`: float).
    fn measure(&mut self, config: Option<QuantConfig>) -> Result<(ExperimentId, bool)> {
        if let Some(id) = self.reusable(config.as_ref()) {
            return Ok((id, true));
        }
        // A candidate a stopped search left unmeasured is measured now, not added again.
        let pending = self
            .session
            .experiments
            .iter()
            .find(|e| e.config.as_ref() == config.as_ref() && !e.is_done())
            .map(|e| e.id);
        let id = match (pending, config) {
            (Some(id), _) => id,
            (None, Some(c)) => self.session.add(Experiment::quantized(c)),
            (None, None) => self.session.add(Experiment::float()),
        };
        let after_each = &mut *self.after_each;
        crate::runner::run_ids(
            self.session,
            self.bench,
            &[id],
            &self.settings.run,
            self.progress,
            |s, _| after_each(s),
        )?;
        Ok((id, false))
    }

    fn judge(&self, id: ExperimentId, reused: bool) -> Verdict {
        let e = self.session.get(id);
        let (figure, p50_ms) = match e {
            Some(e) => figures(e, self.settings.goal, self.backend),
            None => (None, None),
        };
        let bench = e.and_then(|e| e.result.bench(self.backend));
        Verdict {
            id,
            figure,
            p50_ms,
            p50_interval: bench.map(|b| b.interval()),
            size_bytes: e.map_or(0, |e| e.result.size_bytes),
            meets: meets(self.settings.goal, figure, self.float_top1),
            reused,
        }
    }

    fn name(&self, id: ExperimentId) -> String {
        self.session
            .get(id)
            .map_or_else(|| id.to_string(), |e| e.name.clone())
    }

    /// Measures a candidate, judges it and says so; the verdict is kept.
    fn candidate(&mut self, config: QuantConfig) -> Result<Verdict> {
        self.progress.check()?;
        let (id, reused) = self.measure(Some(config))?;
        let v = self.judge(id, reused);
        self.note(format!(
            "candidate {id}: {} -> {} p50 {} {}{}",
            self.name(id),
            v.figure.map_or("no figure".into(), |f| format!("{f:.4}")),
            self.session
                .get(id)
                .and_then(|e| e.result.bench(self.backend))
                .map_or("-".into(), |b| b.p50_text()),
            if v.meets { "meets" } else { "misses" },
            if reused { " (from the session)" } else { "" }
        ));
        self.verdicts.push(v.clone());
        Ok(v)
    }

    fn float(&mut self) -> Result<()> {
        let (id, _) = self.measure(None)?;
        let float = self.session.get(id);
        self.float_top1 = float
            .and_then(|f| f.result.eval(self.backend))
            .and_then(|r| r.top1);
        let float_p50 = float
            .and_then(|f| f.result.bench(self.backend))
            .map(|b| b.p50_ms);
        if matches!(self.settings.goal, Goal::MaxDrop(_)) && self.float_top1.is_none() {
            bail!("--max-drop needs labelled data (top-1); use --min-agreement or --min-sqnr");
        }
        let top1 = self.float_top1;
        self.note(format!(
            "float: {} p50 {}",
            top1.map_or("-".into(), |t| format!("top-1 {t:.4}")),
            float_p50.map_or("-".into(), |p| format!("{p:.3} ms"))
        ));
        Ok(())
    }

    fn stage_one(&mut self) -> Result<()> {
        let machine = crate::host::detect();
        let grid = grid(self.settings.target, self.settings.samples, &machine);
        if let Some((_, why)) = grid.first() {
            for w in why.clone() {
                self.note(w);
            }
        }
        self.note(format!(
            "stage 1: {} configurations (per-channel and per-tensor; min-max, mean min-max, percentile, MSE, entropy; no recovery, bias correction, AdaRound with bias correction)",
            grid.len()
        ));
        for (config, _) in grid {
            if self.out_of_time() {
                break;
            }
            let v = self.candidate(config)?;
            // Measured, yet no agreement: the scored output is no class-score vector (a map, a
            // sequence), and no candidate will have one.
            let measured = self
                .session
                .get(v.id)
                .is_some_and(|e| e.result.eval(self.backend).is_some());
            if matches!(self.settings.goal, Goal::MinAgreement(_)) && measured && v.figure.is_none()
            {
                bail!(
                    "--min-agreement needs an output of class scores (agreement is the share of equal top-1 classes); this model's scored output is not one: use --min-sqnr"
                );
            }
        }
        Ok(())
    }

    /// The groups of layers of `base`, each with its score quantized alone (the rest float),
    /// worst first.
    fn rank_groups(
        &mut self,
        base: &QuantConfig,
        units: Vec<Vec<String>>,
        budget: usize,
    ) -> Result<Vec<Vec<String>>> {
        let runtime = self.runtime;
        let limit = Some(self.settings.layer_samples.max(1));
        // SQNR where the output has one, else the goal's own figure.
        let score_of = |r: &crate::eval::EvalReport| r.sqnr_db.or(r.agreement).or(r.top1);
        // Each group measured as the only one quantized (the rest float): its own share of the
        // output error. Keeping each float alone instead recovers a fraction of a dB, below the
        // noise of a few samples. Shares do not add up exactly, hence the bisection.
        let mut all: Vec<String> = units.iter().flatten().cloned().collect();
        all.sort();
        all.dedup();
        let mut ranked: Vec<(f64, Vec<String>)> = vec![];
        for unit in units {
            if unit.len() > budget || unit.iter().all(|n| base.keep_float.contains(n)) {
                continue;
            }
            if self.out_of_time() {
                break;
            }
            self.progress.check()?;
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
            let scored =
                self.bench
                    .score(&variant, runtime, limit, &self.settings.run, self.progress);
            match scored {
                Ok(r) => ranked.extend(score_of(&r).map(|score| (score, unit))),
                Err(e) if crate::jobs::is_cancelled(&e) => return Err(e),
                Err(e) => self.note(format!("{}: {e:#}", unit.join("+"))),
            }
        }
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.len().cmp(&b.1.len())));
        self.note(format!(
            "{} groups measured, each the only one quantized; the worst: {}",
            ranked.len(),
            ranked
                .iter()
                .take(5)
                .map(|(score, unit)| format!("{} {score:.2}", unit.join("+")))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        Ok(ranked.into_iter().map(|(_, unit)| unit).collect())
    }

    /// Stage 2 from `closest`: the fewest leading groups of the ranking kept float that meet
    /// the goal, by bisection over the prefixes (more float layers recover more and cost
    /// latency): the largest first, then halves.
    fn stage_two(&mut self, closest: &Verdict) -> Result<()> {
        let base = self
            .session
            .get(closest.id)
            .and_then(|e| e.config.clone())
            .unwrap_or_default();
        self.note(format!(
            "stage 2: none meets the goal; from candidate {} ({}), groups of layers kept float (a layer with the layers it shares an activation with), ranked by the SQNR of each quantized alone (no recovery) on {} samples, worst first; the fewest leading groups that meet the goal",
            closest.id,
            base.label(),
            self.settings.layer_samples.max(1)
        ));
        let prepared = quant::prepare_float(&self.bench.float, &base)?.model;
        let types = quant::prepare::model_tensor_types(&prepared);
        let (applied, _) = quant::effective_config(crate::onnx::graph(&prepared), &base);
        let units = quant::rewrite::float_units(crate::onnx::graph(&prepared), &applied, &types);
        let layers = units
            .iter()
            .flatten()
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let budget = self.settings.max_float_layers.unwrap_or(layers / 2).max(1);
        let ranked = self.rank_groups(&base, units, budget)?;
        let prefixes = prefixes(&base.keep_float, &ranked, budget);
        let last = prefixes.len().saturating_sub(1);
        let (mut lo, mut hi): (Option<usize>, Option<usize>) = (None, None);
        let mut next = (!prefixes.is_empty()).then_some(last);
        while let Some(k) = next {
            if self.out_of_time() {
                break;
            }
            let layers = prefixes[k].len() - base.keep_float.len();
            self.note(format!(
                "keeping the first {} groups float ({layers} layers)",
                k + 1
            ));
            let v = self.candidate(QuantConfig {
                keep_float: prefixes[k].clone(),
                ..base.clone()
            })?;
            if v.meets {
                hi = Some(k);
            } else {
                lo = Some(k);
                if k == last {
                    self.note(format!(
                        "even {layers} float layers miss the goal (--max-float-layers allows more)"
                    ));
                }
            }
            next = hi.and_then(|h| {
                let l = lo.map_or(0, |l| l + 1);
                (l < h).then(|| l + (h - l) / 2)
            });
        }
        Ok(())
    }

    /// The fastest candidate that meets the goal. The fastest few are timed again together
    /// with float, in rounds, so that their latencies compare; those whose intervals overlap
    /// the fastest's are a tie, decided by the goal's figure, then size.
    fn choose(&mut self) -> Result<Verdict> {
        let mut passing: Vec<Verdict> = vec![];
        for v in self.verdicts.iter().filter(|v| v.meets) {
            if !passing.iter().any(|p| p.id == v.id) {
                passing.push(v.clone());
            }
        }
        if passing.is_empty() {
            let closest = self
                .verdicts
                .iter()
                .filter_map(|v| v.figure.map(|f| (f, v.id)))
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map_or("none measured".into(), |(f, id)| {
                    format!("{} at {f:.4}", self.name(id))
                });
            bail!(
                "no candidate meets the goal ({}); the closest: {closest}",
                self.settings.goal.describe()
            );
        }
        passing.sort_by(|a, b| {
            a.p50_ms
                .unwrap_or(f64::MAX)
                .total_cmp(&b.p50_ms.unwrap_or(f64::MAX))
        });
        passing.truncate(FINALISTS);
        let finalists = self.retime_finalists(&passing)?;
        let points: Vec<Option<TradeoffPoint>> = finalists
            .iter()
            .map(|v| {
                Some(TradeoffPoint {
                    figure: v.figure?,
                    cost: v.p50_ms?,
                    interval: v.p50_interval?,
                    size_bytes: v.size_bytes,
                })
            })
            .collect();
        let k = crate::report::fastest(&points).unwrap_or(0);
        let best = finalists[k].clone();
        let why = self.why_chosen(&best, &finalists);
        self.note(format!(
            "chosen: candidate {} ({}): {why}",
            best.id,
            self.name(best.id)
        ));
        Ok(best)
    }

    /// Times `passing` again together with float (the runner's rounds); their new verdicts.
    fn retime_finalists(&mut self, passing: &[Verdict]) -> Result<Vec<Verdict>> {
        if passing.len() < 2 {
            return Ok(passing.to_vec());
        }
        let mut ids: Vec<ExperimentId> = passing.iter().map(|v| v.id).collect();
        ids.extend(self.session.float().map(|f| f.id));
        self.note(format!(
            "timing the {} fastest that meet the goal again, together with float, in rounds",
            passing.len()
        ));
        let after_each = &mut *self.after_each;
        crate::runner::retime(
            self.session,
            self.bench,
            &ids,
            &self.settings.run,
            self.progress,
            |s, _| after_each(s),
        )?;
        Ok(passing.iter().map(|v| self.judge(v.id, v.reused)).collect())
    }

    /// Why `best` won among `finalists`, in words: the runner-up's latency against its own.
    fn why_chosen(&self, best: &Verdict, finalists: &[Verdict]) -> String {
        let latency = |v: &Verdict| match (v.p50_ms, v.p50_interval) {
            (Some(p), Some((lo, hi))) => format!("p50 {p:.3} ms (95% CI {lo:.3}–{hi:.3})"),
            (Some(p), None) => format!("p50 {p:.3} ms"),
            _ => "no latency".into(),
        };
        let tied: Vec<&Verdict> = finalists
            .iter()
            .filter(|v| v.id != best.id)
            .filter(|v| match (v.p50_interval, best.p50_interval) {
                (Some(a), Some(b)) => crate::bench::stats::overlap(a, b),
                _ => false,
            })
            .collect();
        let figure = |v: &Verdict| v.figure.map_or("-".into(), |f| format!("{f:.4}"));
        let n = finalists.len();
        if tied.is_empty() {
            format!(
                "the fastest of the {n} timed together, {}, clear of the others' intervals",
                latency(best)
            )
        } else {
            format!(
                "{}; tied within noise with {} (latencies whose intervals overlap are one), it \
                 wins on {} {} against {}, then size {}",
                latency(best),
                tied.iter()
                    .map(|v| format!("candidate {} ({})", v.id, latency(v)))
                    .collect::<Vec<_>>()
                    .join(", "),
                self.settings.goal.figure_name(),
                figure(best),
                tied.iter()
                    .map(|v| figure(v))
                    .collect::<Vec<_>>()
                    .join(", "),
                crate::onnx::inspect::human_bytes(best.size_bytes)
            )
        }
    }
}

/// How many of the fastest passing candidates are timed again together at the end.
const FINALISTS: usize = 5;

/// The layers kept float by the first k groups of `ranked`, for each k, within `budget` layers
/// beyond `kept` (groups adding nothing new are skipped).
fn prefixes(kept: &[String], ranked: &[Vec<String>], budget: usize) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = vec![];
    let mut floated = kept.to_vec();
    for unit in ranked {
        let new: Vec<&String> = unit.iter().filter(|n| !floated.contains(n)).collect();
        if new.is_empty() {
            continue;
        }
        if floated.len() - kept.len() + new.len() > budget {
            break;
        }
        floated.extend(new.into_iter().cloned());
        out.push(floated.clone());
    }
    out
}

pub fn tune(
    session: &mut Session,
    bench: &mut Workbench,
    settings: &TuneSettings,
    progress: &Progress,
    mut after_each: impl FnMut(&Session) -> Result<()>,
    mut say: impl FnMut(&str),
) -> Result<Outcome> {
    // One runtime ranks the candidates: the first named (tract when none is).
    let runtime = settings
        .run
        .backends
        .first()
        .copied()
        .unwrap_or(Backend::Tract);
    let backend = runtime.name();
    let mut search = Search {
        session,
        bench,
        settings,
        progress,
        after_each: &mut after_each,
        say: &mut say,
        runtime,
        backend,
        float_top1: None,
        verdicts: vec![],
        log: vec![],
        refused: vec![],
        deadline: settings.time_budget.map(|b| std::time::Instant::now() + b),
        out_of_time: false,
    };
    search.note(format!(
        "goal: {} on {backend}; target {}",
        settings.goal.describe(),
        settings.target.cli_name()
    ));
    search.float()?;
    search.stage_one()?;
    if !search.verdicts.iter().any(|v| v.meets) && !search.out_of_time() {
        let closest = search
            .verdicts
            .iter()
            .filter(|v| v.figure.is_some())
            .max_by(|a, b| {
                a.figure
                    .unwrap_or(f64::MIN)
                    .total_cmp(&b.figure.unwrap_or(f64::MIN))
            })
            .cloned();
        let Some(closest) = closest else {
            bail!("no candidate could be measured on {backend}");
        };
        search.stage_two(&closest)?;
    }
    let chosen = search.choose()?.id;
    Ok(Outcome {
        chosen,
        verdicts: search.verdicts,
        log: search.log,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_grow_by_groups_within_the_budget() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let ranked = vec![s(&["a", "b"]), s(&["b"]), s(&["c"]), s(&["d", "e", "f"])];
        // "b" adds nothing new after "a+b"; "d+e+f" would pass the budget of 4 beyond "k".
        assert_eq!(
            prefixes(&s(&["k"]), &ranked, 4),
            vec![s(&["k", "a", "b"]), s(&["k", "a", "b", "c"])]
        );
    }
}
