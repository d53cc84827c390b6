//! Above the Layers table: rank the experiment's layers by sensitivity (a job), see how far
//! it is, and make the variant that keeps the top K float.

use eframe::egui;

use super::commands::Variation;
use super::context::AppCtx;
use super::AppCommand;
use quantbench::quant::QuantConfig;
use quantbench::session::Experiment;

pub fn ui(
    ui: &mut egui::Ui,
    ctx: &AppCtx,
    e: &Experiment,
    config: &QuantConfig,
    top_k: &mut usize,
) {
    if let Some((id, p)) = &ctx.ranking {
        progress_row(ui, ctx, *id, p);
        return;
    }
    let Some(report) = &e.result.sensitivity else {
        rank_button(ui, ctx, e);
        return;
    };
    report_rows(ui, ctx, e, config, report, top_k);
}

/// The ranking going on: which experiment, how far, Stop.
fn progress_row(
    ui: &mut egui::Ui,
    ctx: &AppCtx,
    id: quantbench::session::ExperimentId,
    p: &super::app::RankProgress,
) {
    ui.horizontal_wrapped(|ui| {
        ui.spinner();
        let of = ctx
            .session
            .and_then(|s| s.get(id))
            .map_or("", |x| x.name.as_str());
        let text = if p.total == 0 {
            format!("Ranking the layers of {of}: measuring it and float first…")
        } else {
            format!(
                "Ranking the layers of {of}: {} of {} ({})",
                p.done + 1,
                p.total,
                p.layer
            )
        };
        ui.label(text);
        let fraction = if p.total > 0 {
            p.done as f32 / p.total as f32
        } else {
            0.0
        };
        ui.add(egui::ProgressBar::new(fraction).desired_width(160.0));
        if ui.button("Stop").clicked() {
            ctx.commands.send(AppCommand::StopSensitivity);
        }
    });
}

/// No ranking yet: the button that starts one, or why it cannot.
fn rank_button(ui: &mut egui::Ui, ctx: &AppCtx, e: &Experiment) {
    ui.horizontal_wrapped(|ui| {
        let running = ctx.run.is_some();
        let button = ui.add_enabled(
            !running && e.has_figures(),
            egui::Button::new("Rank layers by sensitivity"),
        );
        let button = if running {
            button.on_disabled_hover_text("experiments are running: rank once they end")
        } else if !e.has_figures() {
            button.on_disabled_hover_text("run this experiment first")
        } else {
            button.on_hover_text(
                "Keeps each quantized layer float alone, measures the task metric and times \
                 it in rounds with the whole model: ranks the layers by what each recovers \
                 per millisecond it costs. One run per layer.",
            )
        };
        if button.clicked() {
            ctx.commands.send(AppCommand::RankSensitivity(e.id));
        }
        ui.weak("which layers are worth keeping float");
    });
}

/// The ranking's summary, and the variant that keeps its top K float.
fn report_rows(
    ui: &mut egui::Ui,
    ctx: &AppCtx,
    e: &Experiment,
    config: &QuantConfig,
    report: &quantbench::sensitivity::SensitivityReport,
    top_k: &mut usize,
) {
    ui.horizontal_wrapped(|ui| {
        ui.label(format!(
            "Sensitivity on {}: {} {:.4} at {:.2} ms quantized, {:.4} at {:.2} ms float.",
            report.backend,
            report.metric_name,
            report.metric,
            report.p50_ms,
            report.float_metric,
            report.float_p50_ms
        ));
        if !report.skipped.is_empty() {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!("{} not ranked", report.skipped.len()),
            )
            .on_hover_text(report.skipped.join("\n"));
        }
    });
    let n = report.ranking.len();
    if n == 0 {
        return;
    }
    ui.horizontal_wrapped(|ui| {
        *top_k = (*top_k).clamp(1, n);
        let l = ui.label("Keep the top");
        ui.add(egui::DragValue::new(top_k).range(1..=n))
            .labelled_by(l.id);
        ui.label(format!("of {n} float:"));
        let layers: Vec<String> = report
            .ranking
            .iter()
            .take(*top_k)
            .map(|s| s.layer.clone())
            .collect();
        let recovered: f64 = report
            .ranking
            .iter()
            .take(*top_k)
            .map(|s| s.recovered)
            .sum();
        let already = layers.iter().all(|l| config.keep_float.contains(l));
        let button = ui.add_enabled(!already, egui::Button::new("Make the variant"));
        let button = if already {
            button.on_disabled_hover_text("this experiment keeps them float already")
        } else {
            button.on_hover_text(format!(
                "A new experiment: {} with {} kept float (each alone recovered {:+.4} in all; \
                 together they may recover more or less)",
                e.name,
                layers.join(", "),
                recovered
            ))
        };
        if button.clicked() {
            ctx.commands.send(AppCommand::Vary {
                experiment: e.id,
                change: Variation::KeepFloat(layers),
            });
        }
        if ui.small_button("Rank again").clicked() {
            ctx.commands.send(AppCommand::RankSensitivity(e.id));
        }
    });
}
