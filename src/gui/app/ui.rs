//! Drawing a frame: the context panels borrow, the panels laid out around the central view,
//! then the commands they sent applied; screenshot mode driven from here.

use std::path::PathBuf;
use std::time::Duration;

use eframe::egui;

use super::super::context::AppCtx;
use super::{file_name, CentralView, FrameMark, Panels, SetupTab, WorkbenchApp};
use crate::gui::AppCommand;

impl WorkbenchApp {
    pub fn draw(&mut self, ui: &mut egui::Ui) {
        let _frame = FrameMark::enter();
        let ctx = ui.ctx().clone();
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        for p in dropped {
            self.commands.send(AppCommand::OpenPath(p));
        }
        let keep_float = self.settings.config.keep_float.clone();
        let settings_error = self.settings.first_error();
        let app_ctx = AppCtx {
            model: self.model.as_ref(),
            dataset: self.dataset.as_ref(),
            session: self.session.as_ref(),
            run: self.tasks.run(),
            loading: self.tasks.is_running(super::TaskKind::Open),
            activity: self.tasks.activity(),
            offer: self.offer.as_ref(),
            messages: &self.messages,
            recent: &self.persisted.recent,
            selected: self.selected,
            keep_float: &keep_float,
            scored_output: self.run_settings.output.as_deref(),
            settings_error,
            bench_device: &self.persisted.bench_device,
            frame_p95_ms: if self.is_test || !self.persisted.frame_times {
                None
            } else {
                self.frame_p95_ms()
            },
            frame_times: self.persisted.frame_times,
            ranking: self.rank_status(),
            explanations: &self.explanations,
            explaining: self.tasks.explaining(),
            layer_focus: self.layer_focus.as_deref(),
            search: &self.search,
            searching: self.searching(),
            commands: &self.commands,
            is_test: self.is_test,
        };
        let view = self.persisted.view;
        layout(
            ui,
            &app_ctx,
            &mut self.panels,
            &mut self.settings,
            &mut self.persisted.setup_tab,
            view,
        );
        if let Some((experiment, found)) = &self.inspection {
            super::super::layers_view::inspector_window(&ctx, &app_ctx, *experiment, found);
        }
        if let Some(prompt) = self.prompt.as_mut() {
            path_prompt(&ctx, prompt, &self.commands);
        }
        for c in self.commands.take() {
            self.apply(c);
        }
        self.drive_screenshot(&ctx);
        if !self.is_idle() {
            // Progress bars, spinners and elapsed time move: keep drawing while work is in
            // flight.
            ctx.request_repaint_after(Duration::from_millis(100));
        }
    }

    /// Screenshot mode: once every experiment has run and a few frames have settled, grab it.
    fn drive_screenshot(&mut self, ctx: &egui::Context) {
        let Some(plan) = self.screenshots.plan.clone() else {
            return;
        };
        // Mid-search: taken while the search runs, once it has a few candidates to show.
        let mid_search = plan.tune == Some(super::super::TuneShot::MidSearch)
            && self.searching()
            && self.search.candidates.len() >= 4;
        if (!self.is_idle() && !mid_search) || self.screenshots.pending {
            return;
        }
        if plan.tune.is_some() && !mid_search && self.search.request.is_none() {
            self.start_default_tune(10.0);
            return;
        }
        let inspect = self
            .screenshots
            .plan
            .as_mut()
            .and_then(|p| p.inspect.take());
        if let Some(tensor) = inspect {
            let last = self.session.as_ref().and_then(|s| {
                s.experiments
                    .iter()
                    .rfind(|e| e.config.is_some() && e.is_done())
                    .map(|e| e.id)
            });
            self.selected = self.selected.or(last);
            let experiment = self.selected;
            self.apply(AppCommand::InspectCalibration { experiment, tensor });
            return;
        }
        if let Some(layer) = self.screenshots.plan.as_mut().and_then(|p| p.focus.take()) {
            self.layer_focus = Some(layer);
        }
        let rank = self
            .screenshots
            .plan
            .as_mut()
            .is_some_and(|p| std::mem::take(&mut p.rank));
        if rank {
            self.rank_for_screenshot();
            return;
        }
        self.screenshots.settled_frames += 1;
        ctx.request_repaint();
        if self.screenshots.settled_frames != 5 {
            return;
        }
        if let (Some(out), Some(s)) = (&plan.session_out, &self.session) {
            let (out, s) = (out.clone(), s.clone());
            let result = self.write(format!("Saving {}…", file_name(&out)), move || {
                s.save(&out)?;
                Ok(String::new())
            });
            if let Err(e) = result {
                self.error(&e);
            }
        }
        self.screenshots.pending = true;
        self.apply(AppCommand::SaveScreenshot(plan.out.clone()));
        if let Some(p95) = self.frame_p95_ms() {
            eprintln!(
                "frames: {} , CPU time p95 {p95:.1} ms; first frame {:.0} ms after start",
                self.frames.cpu.len(),
                self.frames
                    .first
                    .map(|d| d.as_secs_f64() * 1000.0)
                    .unwrap_or(0.0)
            );
        }
    }
}

/// The experiments panel's default height: its bar and six rows.
const EXPERIMENTS_HEIGHT: f32 = 262.0;

/// The toolbar on top, the setup tabs on the left, the experiments at the bottom, the chosen
/// view in the middle.
fn layout(
    ui: &mut egui::Ui,
    ctx: &AppCtx,
    panels: &mut Panels,
    settings: &mut super::super::settings_panel::SettingsPanel,
    tab: &mut SetupTab,
    view: CentralView,
) {
    let Panels {
        experiments_height,
        toolbar,
        model,
        dataset,
        experiments,
        tradeoff,
        heatmap,
        compare,
        layers,
        speedup,
        tune,
    } = panels;
    egui::Panel::top("toolbar").show(ui, |ui| toolbar.ui(ui, ctx, view));
    egui::Panel::left("setup")
        .default_size(340.0)
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.selectable_value(tab, SetupTab::Model, "Model");
                ui.selectable_value(tab, SetupTab::Dataset, "Dataset");
                ui.selectable_value(tab, SetupTab::Settings, "Settings");
            });
            ui.separator();
            egui::ScrollArea::vertical().show(ui, |ui| {
                super::super::table::scrolled(ui, |ui| match tab {
                    SetupTab::Model => model.ui(ui, ctx),
                    SetupTab::Dataset => dataset.ui(ui, ctx),
                    SetupTab::Settings => settings.ui(ui, ctx),
                })
            });
        });
    // Tall enough for the bar and six experiment rows at 1280x800. The user's drag sets the
    // height; a window squeezed for a moment (the first frames of a new one) must not leave the
    // panel at its squeezed size, so the height is put back when there is room again.
    let id = ui.scope_id().with("experiments");
    let room = (ui.available_height() - 160.0).max(120.0);
    let dragging = ui.input(|i| i.pointer.primary_down());
    let wanted = experiments_height
        .unwrap_or(EXPERIMENTS_HEIGHT)
        .clamp(120.0, room);
    if let Some(state) = egui::PanelState::load(ui.ctx(), id).filter(|_| !dragging) {
        if (state.size().y - wanted).abs() > 0.5 {
            let outer_rect = egui::Rect::from_min_size(
                state.outer_rect.min,
                egui::vec2(state.outer_rect.width(), wanted),
            );
            ui.ctx()
                .data_mut(|d| d.insert_persisted(id, egui::PanelState { outer_rect }));
        }
    }
    egui::Panel::bottom("experiments")
        .resizable(true)
        .default_size(wanted)
        .min_size(120.0)
        .show(ui, |ui| {
            experiments.ui(ui, ctx);
        });
    if dragging {
        if let Some(state) = egui::PanelState::load(ui.ctx(), id) {
            *experiments_height = Some(state.size().y);
        }
    }
    egui::CentralPanel::default().show(ui, |ui| match view {
        CentralView::Overview => {
            let full = ui.available_size();
            let half = (full.x - 16.0) / 2.0;
            ui.horizontal_top(|ui| {
                for side in 0..2 {
                    let layout = egui::Layout::top_down(egui::Align::Min);
                    ui.allocate_ui_with_layout(egui::vec2(half, full.y), layout, |ui| {
                        ui.set_min_size(egui::vec2(half, full.y));
                        if side == 0 {
                            tradeoff.ui(ui, ctx);
                        } else {
                            heatmap.ui(ui, ctx);
                        }
                    });
                    if side == 0 {
                        ui.add_sized([8.0, full.y], egui::Separator::default().vertical());
                    }
                }
            });
        }
        CentralView::Tradeoff => tradeoff.ui(ui, ctx),
        CentralView::Heatmap => heatmap.ui(ui, ctx),
        CentralView::Compare => compare.ui(ui, ctx),
        CentralView::Layers => layers.ui(ui, ctx),
        CentralView::SpeedUp => speedup.ui(ui, ctx),
        CentralView::Tune => tune.ui(ui, ctx),
    });
}

/// The typed-path prompt shown when no file dialog could open: Enter or the button acts, Escape
/// or Cancel closes it.
fn path_prompt(
    ctx: &egui::Context,
    prompt: &mut super::super::dialogs::PathPrompt,
    commands: &super::super::commands::Commands,
) {
    egui::Modal::new(egui::Id::unique("path_prompt")).show(ctx, |ui| {
        ui.set_width(520.0);
        ui.strong(prompt.purpose.title());
        ui.add(
            egui::Label::new(egui::RichText::new(format!("{}: type the path.", prompt.why)).weak())
                .wrap(),
        );
        let l = ui.label("Location");
        let edit = ui
            .add(egui::TextEdit::singleline(&mut prompt.text).desired_width(f32::INFINITY))
            .labelled_by(l.id);
        let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        // Typing goes to the field from the start.
        if !enter && ui.memory(|m| m.focused().is_none()) {
            edit.request_focus();
        }
        let text = prompt.text.trim();
        ui.horizontal(|ui| {
            let go = ui.add_enabled(!text.is_empty(), egui::Button::new("OK"));
            if (go.clicked() || enter) && !text.is_empty() {
                commands.send(AppCommand::PromptDone(Some(PathBuf::from(text))));
            }
            if ui.button("Cancel").clicked() || ui.input(|i| i.key_pressed(egui::Key::Escape)) {
                commands.send(AppCommand::PromptDone(None));
            }
        });
    });
}
