//! `quantbench bench-gui`: the workbench in a real window, driven through a fixed script
//! (open a model, run one experiment, export it, search for a minute), timing the UI thread's work in every frame.
//! A phase lasts from the frame its command is sent to the frame its result shows; the figure
//! that matters is the p95 of the frames inside it: a frame that waits on the engine shows up
//! there as a frozen window.

use std::path::PathBuf;
use std::time::Instant;

use super::app::WorkbenchApp;
use super::AppCommand;

#[derive(Clone, Debug)]
pub struct FrameBenchPlan {
    /// The model to open (the phase "open").
    pub model: PathBuf,
    /// Data for the experiment; `synthetic` when the model has none.
    pub data: PathBuf,
    /// Where the quantized model is exported (the phase "export").
    pub export: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Step {
    Settle(usize),
    Open,
    OpenData,
    Run,
    Export,
    Tune,
    Done,
}

pub struct FrameBench {
    plan: FrameBenchPlan,
    step: Step,
    /// (phase, UI-thread milliseconds) of every frame inside a phase.
    frames: Vec<(&'static str, f64)>,
    phase_started: Option<Instant>,
    durations: Vec<(&'static str, f64)>,
}

impl FrameBench {
    pub fn new(plan: FrameBenchPlan) -> Self {
        FrameBench {
            plan,
            step: Step::Settle(10),
            frames: vec![],
            phase_started: None,
            durations: vec![],
        }
    }

    fn phase(&self) -> Option<&'static str> {
        match self.step {
            Step::Open => Some("open"),
            Step::OpenData => Some("open data"),
            Step::Run => Some("run"),
            Step::Export => Some("export"),
            Step::Tune => Some("tune"),
            Step::Settle(_) | Step::Done => None,
        }
    }

    /// Records the frame that just ended (`ms` of work on the UI thread).
    pub fn record(&mut self, ms: f64) {
        if let Some(p) = self.phase() {
            self.frames.push((p, ms));
        }
    }

    fn begin(&mut self, step: Step) {
        self.step = step;
        self.phase_started = Some(Instant::now());
    }

    fn end(&mut self) {
        if let (Some(p), Some(t)) = (self.phase(), self.phase_started.take()) {
            self.durations.push((p, t.elapsed().as_secs_f64() * 1000.0));
        }
    }

    /// Advances the script; returns true once it is finished.
    pub fn drive(&mut self, app: &mut WorkbenchApp) -> bool {
        let stuck = self
            .phase_started
            .is_some_and(|t| t.elapsed().as_secs() > 300);
        if stuck {
            eprintln!(
                "bench-gui: {:?} did not finish in 5 minutes: {:?}",
                self.step, app.messages
            );
            self.step = Step::Done;
            return true;
        }
        match self.step {
            Step::Settle(0) => {
                self.begin(Step::Open);
                app.apply(AppCommand::OpenPath(self.plan.model.clone()));
            }
            Step::Settle(n) => {
                if app.is_idle() {
                    self.step = Step::Settle(n - 1);
                }
            }
            Step::Open => {
                let opened = app
                    .model
                    .as_ref()
                    .is_some_and(|m| m.path == self.plan.model);
                if opened && app.is_idle() {
                    self.end();
                    self.begin(Step::OpenData);
                    app.apply(AppCommand::OpenDataset(self.plan.data.clone()));
                }
            }
            Step::OpenData => {
                if app.dataset.is_some() && app.is_idle() {
                    self.end();
                    app.settings.config.mode = quantbench::quant::Mode::Int8Weights;
                    app.settings.sync_text();
                    app.apply(AppCommand::AddExperiment);
                    self.begin(Step::Run);
                    app.apply(AppCommand::Run);
                }
            }
            Step::Run => {
                if app.is_idle() {
                    self.end();
                    let index = app.session.as_ref().and_then(|s| {
                        s.experiments
                            .iter()
                            .find(|e| e.config.is_some())
                            .map(|e| e.id)
                    });
                    let Some(experiment) = index else {
                        eprintln!("bench-gui: no quantized experiment: {:?}", app.messages);
                        self.step = Step::Done;
                        return true;
                    };
                    let _ = std::fs::remove_file(&self.plan.export);
                    self.begin(Step::Export);
                    app.apply(AppCommand::ExportModel {
                        experiment,
                        path: self.plan.export.clone(),
                    });
                }
            }
            Step::Export => {
                if app.is_idle() && !self.plan.export.is_file() {
                    let failed = app
                        .messages
                        .iter()
                        .rev()
                        .find(|(level, _)| *level == super::context::Level::Error);
                    if let Some((_, why)) = failed {
                        eprintln!("bench-gui: the export failed: {why}");
                        self.step = Step::Done;
                        return true;
                    }
                }
                if app.is_idle() && self.plan.export.is_file() {
                    self.end();
                    // The Tune view drawn while candidates arrive, for a minute's budget.
                    self.begin(Step::Tune);
                    app.start_default_tune(1.0);
                }
            }
            Step::Tune => {
                if !app.searching() && app.is_idle() {
                    self.end();
                    self.step = Step::Done;
                    self.report(app);
                    return true;
                }
            }
            Step::Done => return true,
        }
        false
    }

    fn report(&self, app: &WorkbenchApp) {
        for (level, m) in &app.messages {
            eprintln!("bench-gui: message ({level:?}): {m}");
        }
        println!("phase       frames   p50 ms   p95 ms   max ms   phase ms");
        for (phase, duration) in &self.durations {
            let mut v: Vec<f64> = self
                .frames
                .iter()
                .filter(|(p, _)| p == phase)
                .map(|(_, ms)| *ms)
                .collect();
            v.sort_by(f64::total_cmp);
            let q = |f: f64| quantbench::bench::quantile(&v, f);
            println!(
                "{phase:<10} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>10.0}",
                v.len(),
                q(0.5),
                q(0.95),
                v.last().copied().unwrap_or(0.0),
                duration
            );
        }
    }
}
