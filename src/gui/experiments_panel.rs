//! The experiments and the job running them: status, progress bar, elapsed time, Cancel, and
//! per experiment its figures or its error; select, remove and export from here.

use eframe::egui;

use super::context::AppCtx;
use super::dialogs::PathPurpose;
use super::table::{self, Column, Table};
use super::AppCommand;
use quantbench::onnx::inspect::human_bytes;
use quantbench::session::{Experiment, Session};

#[derive(Default)]
pub struct ExperimentsPanel {
    /// The device field as typed; `None` until first shown (then the app's setting).
    device: Option<String>,
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) if v.is_infinite() => "inf".into(),
        Some(v) => format!("{v:.digits$}"),
        None => "–".into(),
    }
}

/// A line of the table: an experiment, or the error of the one above.
#[derive(Clone, Copy)]
enum Line<'a> {
    Experiment(&'a Experiment),
    Error(&'a Experiment),
}

/// "4.88 ±0.15 ms" (the p50 to the digits its interval allows, "(busy)" when the machine was),
/// and whether it was busy.
fn latency_text(e: &Experiment, backend: &str) -> Option<(String, bool)> {
    let x = e.result.bench(backend)?;
    let (lo, hi) = x.interval();
    let d = quantbench::bench::precision(hi - lo, x.p50_ms);
    let half = (x.p50_ms - lo).max(hi - x.p50_ms);
    let busy = x
        .warnings
        .iter()
        .any(|w| w.starts_with("the machine was busy"));
    let mut text = if hi > lo {
        format!("{:.d$} ±{half:.d$} ms", x.p50_ms)
    } else {
        format!("{:.d$} ms", x.p50_ms)
    };
    if busy {
        text += " (busy)";
    }
    Some((text, busy))
}

/// The latency cell: [`latency_text`]; the interval, how it was timed and any warning on hover.
fn latency_cell(ui: &mut egui::Ui, e: &Experiment, backend: &str) {
    let (Some(x), Some((text, busy))) = (e.result.bench(backend), latency_text(e, backend)) else {
        ui.weak("–");
        return;
    };
    let mut hover = format!("p50 {}\nmeasured on {}", x.p50_text(), x.device_label());
    if x.timed_with > 1 {
        hover += &format!("\ntimed in rounds with {} other models", x.timed_with - 1);
    }
    for w in &x.warnings {
        hover += &format!("\n{w}");
    }
    let label = if busy {
        ui.colored_label(ui.visuals().warn_fg_color, text)
    } else {
        ui.label(text)
    };
    label.on_hover_text(hover);
}

impl ExperimentsPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &AppCtx) {
        let Self { device } = self;
        let Some(session) = ctx.session else {
            ui.label("Open a model to start.");
            return;
        };
        // Wraps onto a second line where the window is too narrow for the whole bar.
        ui.horizontal_wrapped(|ui| {
            Self::run_buttons(ui, ctx, session);
            ui.separator();
            Self::export_button(ui, ctx);
            Self::scale_out_row(ui, ctx, device);
            if let Some(p95) = ctx.frame_p95_ms {
                ui.separator();
                ui.weak(format!("frame p95 {p95:.1} ms"));
            }
        });
        if let Some(run) = &ctx.run {
            let (stage, done, total) = run.progress.snapshot();
            ui.horizontal(|ui| {
                let name = run
                    .current
                    .and_then(|id| session.get(id))
                    .map(|e| e.name.as_str())
                    .unwrap_or("starting");
                ui.label(format!("running {name}: {stage}"));
                let fraction = if total > 0 {
                    done as f32 / total as f32
                } else {
                    0.0
                };
                ui.add(
                    egui::ProgressBar::new(fraction)
                        .desired_width(220.0)
                        .text(format!("{done}/{total}")),
                );
                if !ctx.is_test {
                    ui.weak(format!("{:.0} s", run.started.elapsed().as_secs_f64()));
                }
                ui.weak(format!("{} queued", run.queued.len()));
            });
        }
        Self::table(ui, ctx, session);
    }

    fn run_buttons(ui: &mut egui::Ui, ctx: &AppCtx, session: &Session) {
        ui.strong("Experiments");
        let add = ui.add_enabled(
            ctx.settings_error.is_none(),
            egui::Button::new("Add experiment"),
        );
        let add = match &ctx.settings_error {
            Some(e) => add.on_disabled_hover_text(e),
            None => add.on_hover_text("Turn the current settings into an experiment"),
        };
        if add.clicked() {
            ctx.commands.send(AppCommand::AddExperiment);
        }
        if ui.button("Add standard preset").clicked() {
            ctx.commands.send(AppCommand::AddPreset);
        }
        ui.separator();
        let pending = session.experiments.iter().filter(|e| !e.is_done()).count();
        let running = ctx.run.is_some();
        if ui
            .add_enabled(
                !running && !ctx.loading && pending > 0,
                egui::Button::new(format!("Run ({pending} pending)")),
            )
            .clicked()
        {
            ctx.commands.send(AppCommand::Run);
        }
        if ui
            .add_enabled(running, egui::Button::new("Cancel"))
            .clicked()
        {
            ctx.commands.send(AppCommand::Cancel);
        }
        let finished = session
            .experiments
            .iter()
            .filter(|e| e.has_figures())
            .count();
        let remeasure = ui.add_enabled(
            !running && !ctx.loading && finished > 0,
            egui::Button::new("Re-measure"),
        );
        let remeasure = if finished == 0 {
            remeasure.on_disabled_hover_text("no finished experiment to time: run some first")
        } else {
            remeasure.on_hover_text(
                "Time every finished experiment again, together in rounds (A B C A B C…), \
                 without rerunning accuracy: for latencies you can compare",
            )
        };
        if remeasure.clicked() {
            ctx.commands.send(AppCommand::Remeasure);
        }
    }

    fn export_button(ui: &mut egui::Ui, ctx: &AppCtx) {
        let selected = ctx.selected_experiment();
        let why = match selected {
            None => Some("select an experiment first (click its row or its point)".to_string()),
            Some(e) if e.result.error.is_some() => {
                Some(format!("{} failed: nothing to export", e.name))
            }
            Some(e) if !e.is_done() => Some(format!("{} has not run yet", e.name)),
            _ => None,
        };
        let button = ui.add_enabled(why.is_none(), egui::Button::new("Export selected…"));
        let button = match (&why, selected) {
            (Some(w), _) => button.on_disabled_hover_text(w),
            (None, Some(e)) => {
                button.on_hover_text(format!("Write {} as a standard ONNX file", e.name))
            }
            (None, None) => button,
        };
        if button.clicked() {
            if let Some(e) = selected {
                let name = format!("{}.onnx", quantbench::runner::slug(&e.name));
                ctx.commands
                    .send(AppCommand::AskPath(PathPurpose::ExportModel(e.id, name)));
            }
        }
    }

    /// One row per experiment: remove, id, name and status kept in view; size and per
    /// runtime its figures and latency scroll sideways. A failed experiment's error is on a
    /// line of its own below it.
    fn table(ui: &mut egui::Ui, ctx: &AppCtx, session: &Session) {
        let backends = session.backends();
        let lines: Vec<Line> = session
            .experiments
            .iter()
            .flat_map(|e| {
                let error = e.result.error.as_ref().map(|_| Line::Error(e));
                std::iter::once(Line::Experiment(e)).chain(error)
            })
            .collect();
        let names = session.experiments.iter().map(|e| e.name.as_str());
        let mut columns = vec![
            Column::new("", 28.0),
            Column::new("#", 26.0),
            Column::fitted(ui, "config", names, 120.0, 250.0),
            Column::new("status", 70.0),
            Column::new("size", 70.0),
        ];
        for b in &backends {
            columns.push(
                Column::new(format!("{b}: top-1 / agree / SQNR"), 190.0)
                    .hover("top-1 accuracy, agreement with float's top class, output SQNR in dB"),
            );
            let latencies: Vec<String> = session
                .experiments
                .iter()
                .filter_map(|e| latency_text(e, b).map(|(t, _)| t))
                .collect();
            columns.push(
                Column::fitted(
                    ui,
                    format!("{b} p50"),
                    latencies.iter().map(String::as_str),
                    90.0,
                    220.0,
                )
                .hover(
                    "median latency ± half its 95% confidence interval; hover a cell for the interval",
                ),
            );
        }
        let height = ui.available_height();
        Table::new("experiments_table", &columns).frozen(4).show(
            ui,
            lines.len(),
            height,
            |ui, row, column| match lines[row] {
                Line::Experiment(e) => Self::cell(ui, ctx, session, e, &backends, &columns, column),
                Line::Error(e) if column == 2 => {
                    let err = e.result.error.as_deref().unwrap_or_default();
                    let (text, _) = table::elided(ui, err, columns[2].width + 90.0);
                    ui.add(
                        egui::Label::new(text.color(ui.visuals().error_fg_color)).selectable(false),
                    )
                    .on_hover_text(err);
                }
                Line::Error(_) => {}
            },
        );
    }

    fn cell(
        ui: &mut egui::Ui,
        ctx: &AppCtx,
        session: &Session,
        e: &Experiment,
        backends: &[String],
        columns: &[Column],
        column: usize,
    ) {
        let selected = ctx.selected == Some(e.id);
        let toggle = AppCommand::Select(if selected { None } else { Some(e.id) });
        match column {
            0 => {
                if ui
                    .small_button("×")
                    .on_hover_text(format!("Remove {}", e.name))
                    .clicked()
                {
                    ctx.commands.send(AppCommand::RemoveExperiment(e.id));
                }
            }
            1 => {
                if ui.selectable_label(selected, e.id.0.to_string()).clicked() {
                    ctx.commands.send(toggle);
                }
            }
            2 => {
                let padding = 2.0 * ui.spacing().button_padding.x + 2.0;
                let (text, cut) = table::elided(ui, &e.name, columns[2].width - padding);
                let r = ui.selectable_label(selected, text);
                let r = if cut { r.on_hover_text(&e.name) } else { r };
                if r.clicked() {
                    ctx.commands.send(toggle);
                }
            }
            3 => Self::status(ui, ctx, session, e),
            4 => {
                ui.label(if e.result.size_bytes > 0 {
                    human_bytes(e.result.size_bytes)
                } else {
                    "–".into()
                });
            }
            c => {
                let b = &backends[(c - 5) / 2];
                if (c - 5) % 2 == 0 {
                    match e.result.eval(b) {
                        Some(r) => ui.label(format!(
                            "{} / {} / {}",
                            fmt(r.top1, 4),
                            fmt(r.agreement, 3),
                            fmt(r.sqnr_db, 1)
                        )),
                        None => ui.weak("–"),
                    };
                } else {
                    latency_cell(ui, e, b);
                }
            }
        }
    }

    fn status(ui: &mut egui::Ui, ctx: &AppCtx, session: &Session, e: &Experiment) {
        let running = ctx.run.as_ref().is_some_and(|r| r.current == Some(e.id));
        let queued = ctx.run.as_ref().is_some_and(|r| r.queued.contains(&e.id));
        if let Some(err) = &e.result.error {
            ui.colored_label(ui.visuals().error_fg_color, "failed")
                .on_hover_text(err);
        } else if running {
            ui.label("running");
        } else if queued {
            ui.label("queued");
        } else if ctx.run.as_ref().is_some_and(|r| r.untimed.contains(&e.id)) && e.is_done() {
            ui.label("timing…")
                .on_hover_text("timed with the run's other models, in rounds, once they all ran");
        } else if e.is_done()
            && e.result
                .measured_on_other_data(session.dataset.as_ref().map(|d| &d.desc))
        {
            let path = e.result.data.as_ref().map_or("", |d| d.path.as_str());
            ui.colored_label(ui.visuals().warn_fg_color, "other data")
                .on_hover_text(format!(
                    "measured on {path} with another source, preprocessing \
                     or split than the dataset open now"
                ));
        } else if e.is_done() {
            let l = ui.label("done");
            if !e.result.notes.is_empty() {
                l.on_hover_text(e.result.notes.join("\n"));
            }
        } else {
            ui.weak("not run");
        }
    }

    /// Beyond this window: the pending experiments as a plan for a scheduler, and the device
    /// latencies are measured on.
    fn scale_out_row(ui: &mut egui::Ui, ctx: &AppCtx, device: &mut Option<String>) {
        let Some(session) = ctx.session else { return };
        let pending = session.experiments.iter().filter(|e| !e.is_done()).count();
        {
            let why = if pending == 0 {
                Some("no pending experiments: add some first")
            } else if ctx.dataset.is_none() {
                Some("open a dataset first")
            } else {
                None
            };
            let hover = "Write the pending experiments as a plan folder with a Slurm array \
                         script and a Kubernetes Indexed Job; open the folder later to merge \
                         what has finished";
            let button = ui.add_enabled(
                why.is_none(),
                egui::Button::new(format!("Export plan ({pending})…")),
            );
            let button = match why {
                Some(w) => button.on_disabled_hover_text(w),
                None => button.on_hover_text(hover),
            };
            if button.clicked() {
                ctx.commands
                    .send(AppCommand::AskPath(PathPurpose::ExportPlan));
            }
            ui.separator();
            let text = device.get_or_insert_with(|| ctx.bench_device.to_string());
            let l = ui.label("Latency on");
            let edit = ui
                .add(
                    egui::TextEdit::singleline(text)
                        .hint_text("this machine, or user@host:port")
                        .desired_width(190.0),
                )
                .labelled_by(l.id)
                .on_hover_text(
                    "Benchmarks run on this device over SSH (your keys and ~/.ssh/config \
                     apply); accuracy is still measured here. Empty: this machine",
                );
            if edit.lost_focus() && text.trim() != ctx.bench_device {
                ctx.commands.send(AppCommand::SetBenchDevice(text.clone()));
            }
        }
    }
}
