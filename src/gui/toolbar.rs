//! The top bar: open (dialog, typed path, recent), save, screenshot and export the table, the
//! central view; below it what runs in the background, an offer to recover or restore earlier
//! work, and the latest messages.

use std::path::PathBuf;

use eframe::egui;

use super::app::CentralView;
use super::context::{AppCtx, Level, Offer};
use super::dialogs::PathPurpose;
use super::AppCommand;

#[derive(Default)]
pub struct Toolbar {
    pub typed_path: String,
}

impl Toolbar {
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &AppCtx, view: CentralView) {
        let Self { typed_path } = self;
        ui.horizontal_wrapped(|ui| {
            open_buttons(ui, ctx, typed_path);
            ui.separator();
            save_buttons(ui, ctx);
            ui.separator();
            for (v, name) in [
                (CentralView::Overview, "Overview"),
                (CentralView::Tradeoff, "Trade-off"),
                (CentralView::Heatmap, "Heatmap"),
                (CentralView::Compare, "Compare"),
                (CentralView::Layers, "Layers"),
                (CentralView::SpeedUp, "Speed-up"),
                (CentralView::Tune, "Tune"),
            ] {
                if ui.selectable_label(view == v, name).clicked() {
                    ctx.commands.send(AppCommand::SetView(v));
                }
            }
            ui.menu_button("More", |ui| {
                if ui
                    .button("Export table…")
                    .on_hover_text("The results table as CSV, or Markdown with a .md name")
                    .clicked()
                {
                    ctx.commands
                        .send(AppCommand::AskPath(PathPurpose::ExportTable));
                    ui.close();
                }
                if ui
                    .button("Open plan…")
                    .on_hover_text(
                        "Open a plan folder (quantbench plan, or Export plan): what has finished \
                         on the cluster is merged into a session, the rest is pending",
                    )
                    .clicked()
                {
                    ctx.commands
                        .send(AppCommand::AskPath(PathPurpose::OpenPlan));
                    ui.close();
                }
                let mut on = ctx.frame_times;
                if ui
                    .checkbox(&mut on, "Frame times (developer)")
                    .on_hover_text("The UI thread's frame CPU time p95, under Export")
                    .changed()
                {
                    ctx.commands.send(AppCommand::ShowFrameTimes(on));
                }
            });
        });
        for (label, cancellable) in &ctx.activity {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(label);
                if *cancellable && ui.small_button("Stop").clicked() {
                    ctx.commands.send(AppCommand::CancelLoading);
                }
            });
        }
        if let Some(offer) = ctx.offer {
            offer_row(ui, ctx, offer);
        }
        // The latest three, each wrapped to the window's width, whole.
        for (i, (level, text)) in ctx.messages.iter().enumerate().rev().take(3) {
            ui.horizontal(|ui| {
                let color = match level {
                    Level::Error => ui.visuals().error_fg_color,
                    Level::Info => ui.visuals().weak_text_color(),
                };
                if ui
                    .small_button("×")
                    .on_hover_text("Dismiss this message")
                    .clicked()
                {
                    ctx.commands.send(AppCommand::DismissMessage(i));
                }
                ui.add(egui::Label::new(egui::RichText::new(text).color(color)).wrap());
            });
        }
        if ctx.messages.len() > 3 {
            ui.horizontal(|ui| {
                ui.weak(format!("{} earlier messages", ctx.messages.len() - 3));
                if ui.small_button("Dismiss all").clicked() {
                    ctx.commands.send(AppCommand::DismissAllMessages);
                }
            });
        }
    }
}

/// Open by dialog, plan folder, typed path or the recent list.
fn open_buttons(ui: &mut egui::Ui, ctx: &AppCtx, typed_path: &mut String) {
    let send = |c| ctx.commands.send(c);
    if ui
        .button("Open…")
        .on_hover_text("Open a model (.onnx) or a session (.ron)")
        .clicked()
    {
        send(AppCommand::AskPath(PathPurpose::Open));
    }
    let edit = ui.add(
        egui::TextEdit::singleline(typed_path)
            .hint_text("model, session, plan/")
            .desired_width(150.0),
    );
    let edit = edit.labelled_by(ui.label("Path").id);
    let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
    if (ui.button("Open path").clicked() || enter) && !typed_path.trim().is_empty() {
        send(AppCommand::OpenPath(PathBuf::from(typed_path.trim())));
    }
    ui.menu_button("Recent", |ui| {
        if ctx.recent.is_empty() {
            ui.label("nothing yet");
        }
        for r in ctx.recent {
            if ui.button(r).clicked() {
                send(AppCommand::OpenPath(PathBuf::from(r)));
                ui.close();
            }
        }
    });
}

/// Save the session, a screenshot, the results table.
fn save_buttons(ui: &mut egui::Ui, ctx: &AppCtx) {
    let send = |c| ctx.commands.send(c);
    if ui.button("Save session…").clicked() {
        send(AppCommand::AskPath(PathPurpose::SaveSession));
    }
    if ui.button("Save screenshot…").clicked() {
        send(AppCommand::AskPath(PathPurpose::SaveScreenshot));
    }
}

/// Recover an interrupted session, or restore a model's earlier results.
fn offer_row(ui: &mut egui::Ui, ctx: &AppCtx, offer: &Offer) {
    ui.horizontal_wrapped(|ui| {
        let (text, yes, no) = match offer {
            Offer::Interrupted(i) => (
                format!(
                    "quantbench stopped while working on {} ({} of {} experiments finished{}).",
                    i.session.display(),
                    i.done,
                    i.experiments,
                    saved_ago(i.saved, ctx.is_test)
                ),
                "Recover",
                "Dismiss",
            ),
            Offer::Earlier(e) => (
                format!(
                    "This model has earlier results: {} of {} experiments finished{} ({}).",
                    e.done,
                    e.experiments,
                    saved_ago(e.saved, ctx.is_test),
                    e.path.display()
                ),
                "Restore",
                "Start afresh",
            ),
        };
        ui.colored_label(ui.visuals().warn_fg_color, text);
        if ui.button(yes).clicked() {
            ctx.commands.send(AppCommand::AcceptOffer);
        }
        if ui.button(no).clicked() {
            ctx.commands.send(AppCommand::DismissOffer);
        }
    });
}

/// ", saved 12 min ago" (nothing in tests, whose snapshots must not move).
fn saved_ago(saved: Option<std::time::SystemTime>, is_test: bool) -> String {
    let Some(age) = saved.and_then(|s| s.elapsed().ok()).filter(|_| !is_test) else {
        return String::new();
    };
    let minutes = age.as_secs() / 60;
    match minutes {
        0 => ", saved just now".into(),
        1..=119 => format!(", saved {minutes} min ago"),
        _ => format!(", saved {} h ago", minutes / 60),
    }
}
