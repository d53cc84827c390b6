//! The search in the window: a goal, the runtime it is for and a budget; Start, Stop and
//! Resume; its steps in words as it goes, candidates on the trade-off plot as they finish, and
//! the chosen one with why it won, to export.

use eframe::egui;

use super::app::TuneRequest;
use super::context::AppCtx;
use super::dialogs::PathPurpose;
use super::AppCommand;
use quantbench::quant::Target;
use quantbench::tune::Goal;

#[derive(Clone, Copy, PartialEq, Eq)]
enum GoalKind {
    MaxDrop,
    MinAgreement,
    MinSqnr,
}

pub struct TuneView {
    kind: Option<GoalKind>,
    drop: f64,
    agreement: f64,
    sqnr_db: f64,
    target: Target,
    minutes: f64,
    /// 0: half of the layers quantized.
    max_float_layers: usize,
    plot: super::tradeoff::TradeoffView,
}

impl Default for TuneView {
    fn default() -> Self {
        TuneView {
            kind: None,
            drop: 0.01,
            agreement: 0.99,
            sqnr_db: 20.0,
            target: Target::DEFAULT,
            minutes: 10.0,
            max_float_layers: 0,
            plot: super::tradeoff::TradeoffView::named("tune"),
        }
    }
}

impl TuneView {
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &AppCtx) {
        if ctx.session.is_none() {
            ui.weak("Open a model and a dataset: the search finds the fastest model that meets your goal.");
            return;
        }
        let labelled = ctx.dataset.is_some_and(|d| d.dataset.has_labels());
        self.kind.get_or_insert(if labelled {
            GoalKind::MaxDrop
        } else {
            GoalKind::MinSqnr
        });
        let full = ui.available_size();
        let left = (full.x * 0.46).max(360.0).min(full.x - 200.0);
        ui.horizontal_top(|ui| {
            ui.allocate_ui_with_layout(
                egui::vec2(left, full.y),
                egui::Layout::top_down(egui::Align::Min),
                |ui| {
                    ui.set_min_size(egui::vec2(left, full.y));
                    self.form(ui, ctx, labelled);
                    ui.separator();
                    status(ui, ctx);
                    steps(ui, ctx);
                },
            );
            ui.separator();
            ui.vertical(|ui| self.plot.ui(ui, ctx));
        });
    }

    fn request(&self) -> TuneRequest {
        TuneRequest {
            goal: match self.kind.unwrap_or(GoalKind::MinSqnr) {
                GoalKind::MaxDrop => Goal::MaxDrop(self.drop),
                GoalKind::MinAgreement => Goal::MinAgreement(self.agreement),
                GoalKind::MinSqnr => Goal::MinSqnr(self.sqnr_db),
            },
            target: self.target,
            minutes: (self.minutes > 0.0).then_some(self.minutes),
            max_float_layers: (self.max_float_layers > 0).then_some(self.max_float_layers),
        }
    }

    fn form(&mut self, ui: &mut egui::Ui, ctx: &AppCtx, labelled: bool) {
        ui.strong("Search: the fastest model that meets a goal");
        let running = ctx.searching;
        ui.add_enabled_ui(!running, |ui| {
            egui::Grid::new("tune_form").num_columns(2).show(ui, |ui| {
                self.goal_row(ui, labelled);
                let l = ui.label("For");
                egui::ComboBox::from_id_salt("tune_target")
                    .selected_text(super::words::target(self.target))
                    .width(220.0)
                    .show_ui(ui, |ui| {
                        for t in Target::ALL {
                            ui.selectable_value(&mut self.target, t, super::words::target(t));
                        }
                    })
                    .response
                    .labelled_by(l.id)
                    .on_hover_text("The runtime the candidates are measured on and ranked for");
                ui.end_row();
                let l = ui.label("Time budget");
                ui.horizontal(|ui| {
                    ui.add(
                        egui::DragValue::new(&mut self.minutes)
                            .range(0.0..=600.0)
                            .speed(0.5)
                            .suffix(" min"),
                    )
                    .labelled_by(l.id);
                    ui.weak("0: none; then the best of those measured");
                });
                ui.end_row();
                let l = ui.label("Layers kept float");
                ui.horizontal(|ui| {
                    ui.add(egui::DragValue::new(&mut self.max_float_layers).range(0..=10_000))
                        .labelled_by(l.id);
                    ui.weak("at most; 0: half of those quantized");
                });
                ui.end_row();
            });
        });
        self.buttons(ui, ctx);
    }

    /// The goal: what it is on, and its value.
    fn goal_row(&mut self, ui: &mut egui::Ui, labelled: bool) {
        let l = ui.label("Goal");
        ui.horizontal(|ui| {
            let kind = self.kind.get_or_insert(GoalKind::MinSqnr);
            let name = |k: GoalKind| match k {
                GoalKind::MaxDrop => "top-1 at most this below float",
                GoalKind::MinAgreement => "agreement with float at least",
                GoalKind::MinSqnr => "output SQNR at least (dB)",
            };
            egui::ComboBox::from_id_salt("tune_goal")
                .selected_text(name(*kind))
                .width(220.0)
                .show_ui(ui, |ui| {
                    if labelled {
                        ui.selectable_value(kind, GoalKind::MaxDrop, name(GoalKind::MaxDrop));
                    }
                    ui.selectable_value(kind, GoalKind::MinAgreement, name(GoalKind::MinAgreement));
                    ui.selectable_value(kind, GoalKind::MinSqnr, name(GoalKind::MinSqnr));
                })
                .response
                .labelled_by(l.id);
            let value = match kind {
                GoalKind::MaxDrop => egui::DragValue::new(&mut self.drop)
                    .range(0.0..=1.0)
                    .speed(0.001)
                    .fixed_decimals(3),
                GoalKind::MinAgreement => egui::DragValue::new(&mut self.agreement)
                    .range(0.0..=1.0)
                    .speed(0.001)
                    .fixed_decimals(3),
                GoalKind::MinSqnr => egui::DragValue::new(&mut self.sqnr_db)
                    .range(0.0..=120.0)
                    .speed(0.1)
                    .suffix(" dB"),
            };
            ui.add(value).labelled_by(l.id);
        });
        ui.end_row();
    }

    /// Start, Stop, Resume.
    fn buttons(&self, ui: &mut egui::Ui, ctx: &AppCtx) {
        let running = ctx.searching;
        ui.horizontal(|ui| {
            let start = ui.add_enabled(
                !running && ctx.run.is_none() && ctx.dataset.is_some(),
                egui::Button::new("Start"),
            );
            let start = if ctx.dataset.is_none() {
                start.on_disabled_hover_text("open a dataset first (the Dataset tab)")
            } else if ctx.run.is_some() {
                start.on_disabled_hover_text("experiments are running: start once they end")
            } else {
                start.on_hover_text(
                    "Measure candidates (the session's own are reused when measured the same \
                     way) until the fastest that meets the goal is found",
                )
            };
            if start.clicked() {
                ctx.commands.send(AppCommand::StartTune(self.request()));
            }
            if ui.add_enabled(running, egui::Button::new("Stop")).clicked() {
                ctx.commands.send(AppCommand::StopTune);
            }
            let resumable = !running && ctx.search.request.is_some() && ctx.search.chosen.is_none();
            let resume = ui
                .add_enabled(resumable, egui::Button::new("Resume"))
                .on_hover_text("Go on with the last search: what it measured is reused");
            if resume.clicked() {
                if let Some(r) = &ctx.search.request {
                    ctx.commands.send(AppCommand::StartTune(r.clone()));
                }
            }
        });
    }
}

/// Running: how far; ended: the chosen candidate, why it won, Export best.
fn status(ui: &mut egui::Ui, ctx: &AppCtx) {
    let search = ctx.search;
    if ctx.searching {
        ui.horizontal_wrapped(|ui| {
            ui.spinner();
            let elapsed = search
                .started
                .filter(|_| !ctx.is_test)
                .map_or(String::new(), |s| {
                    format!(", {:.0} s", s.elapsed().as_secs_f64())
                });
            ui.label(format!(
                "Searching: {} candidates measured{elapsed}",
                search.candidates.len()
            ));
        });
    }
    if let Some((id, why)) = &search.chosen {
        let name = ctx
            .session
            .and_then(|s| s.get(*id))
            .map_or(String::new(), |e| e.name.clone());
        ui.add(
            egui::Label::new(
                egui::RichText::new(format!("Chosen: {id}. {name}"))
                    .strong()
                    .color(ui.visuals().hyperlink_color),
            )
            .wrap(),
        );
        ui.add(egui::Label::new(why.trim_start_matches("chosen: ")).wrap());
        if let Some(note) = slower_than_float(ctx, *id) {
            ui.add(
                egui::Label::new(egui::RichText::new(note).color(ui.visuals().warn_fg_color))
                    .wrap(),
            );
            if ui.button("Why no speed-up?").clicked() {
                ctx.commands.send(AppCommand::Select(Some(*id)));
                ctx.commands
                    .send(AppCommand::SetView(super::CentralView::SpeedUp));
            }
        }
        ui.horizontal(|ui| {
            if ui.button("Select it").clicked() {
                ctx.commands.send(AppCommand::Select(Some(*id)));
            }
            if ui
                .button("Export best…")
                .on_hover_text("Write the chosen model as a standard ONNX file")
                .clicked()
            {
                let file = format!("{}.onnx", quantbench::runner::slug(&name));
                ctx.commands
                    .send(AppCommand::AskPath(PathPurpose::ExportModel(*id, file)));
            }
        });
    }
    if let Some(e) = &search.error {
        ui.add(egui::Label::new(egui::RichText::new(e).color(ui.visuals().error_fg_color)).wrap());
    }
}

/// The fastest model that meets the goal can still be slower than float (int8 kernels that do
/// not pay off on this CPU): said beside the choice, measured in the same rounds.
fn slower_than_float(ctx: &AppCtx, id: quantbench::session::ExperimentId) -> Option<String> {
    let session = ctx.session?;
    let chosen = session.get(id)?;
    let float = session.float()?;
    let backend = match ctx.search.request.as_ref()?.target {
        Target::OrtCpu if chosen.result.bench("ort").is_some() => "ort",
        _ => chosen.result.benches.first()?.backend.as_str(),
    };
    let (c, f) = (chosen.result.bench(backend)?, float.result.bench(backend)?);
    let tie = quantbench::bench::stats::overlap(c.interval(), f.interval());
    (c.p50_ms > f.p50_ms && !tie).then(|| {
        format!(
            "It is slower than float on {backend}: {} against {}. The goal is met, but the \
             float model is the faster one here.",
            c.p50_text(),
            f.p50_text()
        )
    })
}

/// The search's steps in words, the latest last.
fn steps(ui: &mut egui::Ui, ctx: &AppCtx) {
    if ctx.search.log.is_empty() {
        return;
    }
    ui.add_space(4.0);
    ui.strong("Steps");
    egui::ScrollArea::vertical()
        .id_salt("tune_steps")
        .auto_shrink([false, false])
        .stick_to_bottom(true)
        .show(ui, |ui| {
            super::table::scrolled(ui, |ui| {
                for line in &ctx.search.log {
                    ui.add(egui::Label::new(egui::RichText::new(line).small()).wrap());
                }
            })
        });
}
