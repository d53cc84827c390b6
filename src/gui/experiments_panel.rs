//! The experiments and the job running them: status, progress bar, elapsed time, Cancel, and
//! per experiment its figures or its error; select, remove and export from here.

use eframe::egui;

use super::context::AppCtx;
use super::AppCommand;
use quantbench::onnx::inspect::human_bytes;
use quantbench::session::{Experiment, Session};

#[derive(Default)]
pub struct ExperimentsPanel {
    export_path: String,
    plan_path: String,
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

impl ExperimentsPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &AppCtx) {
        let Self {
            export_path,
            plan_path,
            device,
        } = self;
        let Some(session) = ctx.session else {
            ui.label("Open a model to start.");
            return;
        };
        // Wraps onto a second line where the window is too narrow for the whole bar.
        ui.horizontal_wrapped(|ui| {
            Self::run_buttons(ui, ctx, session);
            ui.separator();
            Self::export_row(ui, ctx, export_path);
            if let Some(p95) = ctx.frame_p95_ms {
                ui.separator();
                ui.weak(format!("frame p95 {p95:.1} ms"));
            }
        });
        Self::scale_out_row(ui, ctx, plan_path, device);
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
        egui::ScrollArea::vertical()
            .id_salt("experiments_table")
            .show(ui, |ui| Self::table(ui, ctx, session));
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
    }

    fn export_row(ui: &mut egui::Ui, ctx: &AppCtx, export_path: &mut String) {
        let selected = ctx.selected_experiment();
        let l = ui.label("Export selected to");
        ui.add(
            egui::TextEdit::singleline(export_path)
                .hint_text("model.int8.onnx")
                .desired_width(120.0),
        )
        .labelled_by(l.id);
        let can_export = selected.is_some_and(|e| e.result.error.is_none());
        if ui
            .add_enabled(
                can_export && !export_path.trim().is_empty(),
                egui::Button::new("Export"),
            )
            .clicked()
        {
            if let Some(e) = selected {
                ctx.commands.send(AppCommand::ExportModel {
                    experiment: e.id,
                    path: export_path.trim().into(),
                });
            }
        }
        if ui
            .add_enabled(can_export, egui::Button::new("Export…"))
            .clicked()
        {
            if let Some(e) = selected {
                let name = format!("{}.onnx", quantbench::runner::slug(&e.name));
                if let Some(p) = rfd::FileDialog::new()
                    .add_filter("ONNX", &["onnx"])
                    .set_file_name(name)
                    .save_file()
                {
                    ctx.commands.send(AppCommand::ExportModel {
                        experiment: e.id,
                        path: p,
                    });
                }
            }
        }
    }

    /// One row per experiment: its id, name, status, size, and per runtime its figures.
    fn table(ui: &mut egui::Ui, ctx: &AppCtx, session: &Session) {
        let backends = session.backends();
        egui::Grid::new("experiments_grid")
            .striped(true)
            .num_columns(6 + 2 * backends.len())
            .show(ui, |ui| {
                for h in ["#", "config", "status", "size"] {
                    ui.strong(h);
                }
                for b in &backends {
                    ui.strong(format!("{b}: top-1 / agree / SQNR"));
                    ui.strong(format!("{b} p50"));
                }
                ui.strong("");
                ui.end_row();
                for e in &session.experiments {
                    Self::row(ui, ctx, session, e, &backends);
                }
            });
    }

    fn row(
        ui: &mut egui::Ui,
        ctx: &AppCtx,
        session: &Session,
        e: &Experiment,
        backends: &[String],
    ) {
        let selected = ctx.selected == Some(e.id);
        let toggle = AppCommand::Select(if selected { None } else { Some(e.id) });
        if ui
            .selectable_label(selected, format!("{}", e.id.0))
            .clicked()
        {
            ctx.commands.send(toggle.clone());
        }
        if ui.selectable_label(selected, &e.name).clicked() {
            ctx.commands.send(toggle);
        }
        Self::status(ui, ctx, session, e);
        ui.label(if e.result.size_bytes > 0 {
            human_bytes(e.result.size_bytes)
        } else {
            "–".into()
        });
        for b in backends {
            match e.result.eval(b) {
                Some(r) => ui.label(format!(
                    "{} / {} / {}",
                    fmt(r.top1, 4),
                    fmt(r.agreement, 3),
                    fmt(r.sqnr_db, 1)
                )),
                None => ui.weak("–"),
            };
            match e.result.bench(b) {
                Some(x) => ui
                    .label(format!("{:.3} ms", x.p50_ms))
                    .on_hover_text(format!("measured on {}", x.device_label())),
                None => ui.label("–"),
            };
        }
        if ui.small_button("Remove").clicked() {
            ctx.commands.send(AppCommand::RemoveExperiment(e.id));
        }
        ui.end_row();
        if let Some(err) = &e.result.error {
            ui.label("");
            ui.colored_label(ui.visuals().error_fg_color, err);
            ui.end_row();
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
    fn scale_out_row(
        ui: &mut egui::Ui,
        ctx: &AppCtx,
        plan_path: &mut String,
        device: &mut Option<String>,
    ) {
        let Some(session) = ctx.session else { return };
        let pending = session.experiments.iter().filter(|e| !e.is_done()).count();
        ui.horizontal_wrapped(|ui| {
            let l = ui.label("Plan folder");
            ui.add(
                egui::TextEdit::singleline(plan_path)
                    .hint_text("plan/")
                    .desired_width(150.0),
            )
            .labelled_by(l.id);
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
                why.is_none() && !plan_path.trim().is_empty(),
                egui::Button::new(format!("Export plan ({pending})")),
            );
            let button = match why {
                Some(w) => button.on_disabled_hover_text(w),
                None => button.on_hover_text(hover),
            };
            if button.clicked() {
                ctx.commands
                    .send(AppCommand::ExportPlan(plan_path.trim().into()));
            }
            if ui
                .add_enabled(why.is_none(), egui::Button::new("Export plan…"))
                .on_hover_text(hover)
                .clicked()
            {
                if let Some(dir) = rfd::FileDialog::new().pick_folder() {
                    ctx.commands.send(AppCommand::ExportPlan(dir));
                }
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
        });
    }
}
