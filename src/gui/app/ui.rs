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
            frame_p95_ms: if self.is_test {
                None
            } else {
                self.frame_p95_ms()
            },
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
        if !self.is_idle() || self.screenshots.pending {
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
        toolbar,
        model,
        dataset,
        experiments,
        tradeoff,
        heatmap,
        compare,
        layers,
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
            egui::ScrollArea::vertical().show(ui, |ui| match tab {
                SetupTab::Model => model.ui(ui, ctx),
                SetupTab::Dataset => dataset.ui(ui, ctx),
                SetupTab::Settings => settings.ui(ui, ctx),
            });
        });
    egui::Panel::bottom("experiments")
        .resizable(true)
        .default_size(210.0)
        .show(ui, |ui| {
            experiments.ui(ui, ctx);
        });
    egui::CentralPanel::default().show(ui, |ui| match view {
        CentralView::Overview => {
            let full = ui.available_size();
            let top = (full.y * 0.6).max(220.0);
            let half = (full.x - 16.0) / 2.0;
            ui.horizontal_top(|ui| {
                for side in 0..2 {
                    let layout = egui::Layout::top_down(egui::Align::Min);
                    ui.allocate_ui_with_layout(egui::vec2(half, top), layout, |ui| {
                        ui.set_min_size(egui::vec2(half, top));
                        if side == 0 {
                            tradeoff.ui(ui, ctx);
                        } else {
                            heatmap.ui(ui, ctx);
                        }
                    });
                    if side == 0 {
                        ui.add_sized([8.0, top], egui::Separator::default().vertical());
                    }
                }
            });
            ui.separator();
            compare.ui(ui, ctx);
        }
        CentralView::Tradeoff => tradeoff.ui(ui, ctx),
        CentralView::Heatmap => heatmap.ui(ui, ctx),
        CentralView::Compare => compare.ui(ui, ctx),
        CentralView::Layers => layers.ui(ui, ctx),
    });
}
