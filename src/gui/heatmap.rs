//! Per-layer error: rows are the model's tensors in graph order, columns the experiments,
//! colour the error between float and quantized activations (a metric, cumulative or
//! isolated); exact values on hover.

use eframe::egui;

use super::context::AppCtx;
use super::AppCommand;
use quantbench::eval::layers::{LayerError, LayerMetrics};
use quantbench::session::{Experiment, ExperimentId, Session};

/// The whole model quantized, or each layer alone with float inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ErrorMode {
    #[default]
    Cumulative,
    Isolated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Metric {
    #[default]
    Sqnr,
    Cosine,
    RelativeRmse,
    RmseOverScale,
}

impl Metric {
    const ALL: [Metric; 4] = [
        Metric::Sqnr,
        Metric::Cosine,
        Metric::RelativeRmse,
        Metric::RmseOverScale,
    ];

    fn name(self) -> &'static str {
        match self {
            Metric::Sqnr => "SQNR dB",
            Metric::Cosine => "cosine",
            Metric::RelativeRmse => "relative RMSE",
            Metric::RmseOverScale => "rmse / scale",
        }
    }

    fn of(self, m: &LayerMetrics) -> Option<f64> {
        match self {
            Metric::Sqnr => Some(m.sqnr_db),
            Metric::Cosine => Some(m.cosine),
            Metric::RelativeRmse => Some(m.relative_rmse),
            Metric::RmseOverScale => m.rmse_over_scale,
        }
    }

    /// The value on the colour scale's dB axis (0 red, 40 green).
    fn as_db(self, v: f64) -> f64 {
        match self {
            Metric::Sqnr => v,
            Metric::RelativeRmse => -20.0 * v.max(1e-12).log10(),
            // 1 − cos ≈ noise / (2 · signal) for small errors.
            Metric::Cosine => -10.0 * (2.0 * (1.0 - v)).max(1e-12).log10(),
            // 0.289 (rounding only) green, ten times that yellow, a hundred times red.
            Metric::RmseOverScale => 40.0 - 20.0 * (v / 0.289).max(1.0).log10(),
        }
    }

    fn text(self, v: f64) -> String {
        match self {
            Metric::Sqnr if v.is_infinite() => "exact".into(),
            Metric::Sqnr => format!("{v:.2} dB"),
            Metric::Cosine => format!("{v:.6}"),
            Metric::RelativeRmse => format!("{v:.5}"),
            Metric::RmseOverScale => format!("{v:.3}"),
        }
    }
}

/// A layer's value for `metric` in `mode`; `None` where it was not measured (the SQNR of
/// older sessions is cumulative).
pub fn value(l: &LayerError, mode: ErrorMode, metric: Metric) -> Option<f64> {
    let measured = match mode {
        ErrorMode::Cumulative => l.cumulative.as_ref(),
        ErrorMode::Isolated => l.isolated.as_ref(),
    };
    match (measured, mode, metric) {
        (Some(m), _, _) => metric.of(m),
        (None, ErrorMode::Cumulative, Metric::Sqnr) => Some(l.sqnr_db),
        (None, _, _) => None,
    }
}

#[derive(Default)]
pub struct HeatmapView {
    /// Only rows where some experiment is under 20 dB (on the colour scale).
    worst_only: bool,
    pub mode: ErrorMode,
    pub metric: Metric,
}

/// Red (0 dB) through yellow (20 dB) to green (40 dB and above); exact copies dark green.
pub fn color_for(db: f64) -> egui::Color32 {
    if db.is_infinite() && db > 0.0 {
        return egui::Color32::from_rgb(20, 110, 60);
    }
    let t = (db / 40.0).clamp(0.0, 1.0) as f32;
    let (r, g, b) = if t < 0.5 {
        let k = t / 0.5;
        (215.0, 48.0 + k * (200.0 - 48.0), 39.0)
    } else {
        let k = (t - 0.5) / 0.5;
        (
            215.0 - k * (215.0 - 40.0),
            200.0 - k * (200.0 - 160.0),
            39.0 + k * (80.0 - 39.0),
        )
    };
    egui::Color32::from_rgb(r as u8, g as u8, b as u8)
}

/// Rows (tensor, op type), columns (experiments by id) and values[row][col].
pub type Matrix = (
    Vec<(String, String)>,
    Vec<ExperimentId>,
    Vec<Vec<Option<f64>>>,
);

/// (row names with op types, columns as experiments, values[row][col]); rows in the order of
/// `graph_order` (tensor names as the graph produces them), unknown ones last. `metric` in
/// `mode` for each cell.
pub fn matrix_of(
    session: &Session,
    graph_order: &[String],
    mode: ErrorMode,
    metric: Metric,
) -> Matrix {
    let columns: Vec<&Experiment> = session
        .experiments
        .iter()
        .filter(|e| !e.result.layers.is_empty())
        .collect();
    let mut rows: Vec<(String, String)> = vec![];
    for e in &columns {
        for l in &e.result.layers {
            if !rows.iter().any(|(t, _)| *t == l.tensor) {
                rows.push((l.tensor.clone(), l.op_type.clone()));
            }
        }
    }
    let position = |t: &str| {
        graph_order
            .iter()
            .position(|g| g == t)
            .unwrap_or(usize::MAX)
    };
    rows.sort_by_key(|(t, _)| position(t));
    let values = rows
        .iter()
        .map(|(t, _)| {
            columns
                .iter()
                .map(|e| {
                    e.result
                        .layers
                        .iter()
                        .find(|l| l.tensor == *t)
                        .and_then(|l| value(l, mode, metric))
                })
                .collect()
        })
        .collect();
    (rows, columns.iter().map(|e| e.id).collect(), values)
}

/// The grid's geometry.
struct Cells {
    label_width: f32,
    gap: f32,
    w: f32,
    h: f32,
}

impl HeatmapView {
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &AppCtx) {
        let Some(session) = ctx.session else { return };
        let order: Vec<String> = ctx
            .model
            .map(|m| {
                let s = &m.summary;
                s.inputs
                    .iter()
                    .map(|i| i.name.clone())
                    .chain(s.nodes.iter().flat_map(|n| n.outputs.iter().cloned()))
                    .collect()
            })
            .unwrap_or_default();
        let (rows, columns, values) = matrix_of(session, &order, self.mode, self.metric);
        self.controls(ui);
        if columns.is_empty() {
            ui.weak("Per-layer error appears here once quantized experiments have run.");
            return;
        }
        legend(ui, self.metric);
        let shown: Vec<usize> = (0..rows.len())
            .filter(|&r| {
                !self.worst_only
                    || values[r]
                        .iter()
                        .flatten()
                        .any(|v| self.metric.as_db(*v) < 20.0)
            })
            .collect();
        let label_width = 150.0;
        let gap = 4.0;
        // Leave room for the scroll bar.
        let w = ((ui.available_width() - label_width - gap - 18.0) / columns.len() as f32)
            .clamp(14.0, 60.0);
        let cells = Cells {
            label_width,
            gap,
            w,
            h: 14.0,
        };
        let experiments: Vec<&Experiment> =
            columns.iter().filter_map(|&id| session.get(id)).collect();
        headers(ui, ctx, &experiments, &cells);
        egui::ScrollArea::vertical()
            .id_salt("heatmap_rows")
            .auto_shrink([false, true])
            .max_height(ui.available_height())
            .show_rows(ui, cells.h, shown.len(), |ui, range| {
                for &r in &shown[range] {
                    ui.horizontal(|ui| {
                        ui.spacing_mut().item_spacing.x = 0.0;
                        self.row(ui, ctx, &rows[r], &experiments, &values[r], &cells);
                    });
                }
            });
    }

    fn controls(&mut self, ui: &mut egui::Ui) {
        let Self {
            worst_only,
            mode,
            metric,
        } = self;
        ui.horizontal(|ui| {
            let label = ui.strong("Per-layer");
            egui::ComboBox::from_id_salt("heatmap_metric")
                .selected_text(metric.name())
                .show_ui(ui, |ui| {
                    for m in Metric::ALL {
                        ui.selectable_value(metric, m, m.name());
                    }
                })
                .response
                .labelled_by(label.id);
            ui.radio_value(mode, ErrorMode::Cumulative, "cumulative")
                .on_hover_text("The whole model quantized, compared with float at this tensor");
            ui.radio_value(mode, ErrorMode::Isolated, "isolated")
                .on_hover_text(
                "Only the layer producing this tensor quantized, its inputs from the float model",
            );
            ui.checkbox(worst_only, "only the worst rows");
        });
    }

    /// One tensor's row: its name, then a cell per experiment.
    fn row(
        &self,
        ui: &mut egui::Ui,
        ctx: &AppCtx,
        (name, op): &(String, String),
        experiments: &[&Experiment],
        values: &[Option<f64>],
        cells: &Cells,
    ) {
        let (label_rect, label_resp) =
            ui.allocate_exact_size(egui::vec2(cells.label_width, cells.h), egui::Sense::hover());
        let n = name.chars().count();
        let short: String = if n > 22 {
            format!("…{}", name.chars().skip(n - 21).collect::<String>())
        } else {
            name.clone()
        };
        ui.painter().text(
            label_rect.left_center(),
            egui::Align2::LEFT_CENTER,
            short,
            egui::FontId::proportional(11.0),
            ui.visuals().text_color(),
        );
        label_resp.on_hover_text(format!("{name} ({op})"));
        ui.add_space(cells.gap);
        for (e, value) in experiments.iter().zip(values) {
            let (rect, resp) =
                ui.allocate_exact_size(egui::vec2(cells.w, cells.h), egui::Sense::click());
            let Some(v) = *value else {
                ui.painter().rect_stroke(
                    rect.shrink(1.0),
                    0.0,
                    ui.visuals().widgets.noninteractive.bg_stroke,
                    egui::StrokeKind::Inside,
                );
                continue;
            };
            ui.painter()
                .rect_filled(rect.shrink(0.5), 0.0, color_for(self.metric.as_db(v)));
            let node = e
                .result
                .layers
                .iter()
                .find(|l| l.tensor == *name)
                .filter(|l| {
                    e.config
                        .as_ref()
                        .is_some_and(|cfg| cfg.can_keep_float(&l.op_type))
                })
                .map(|l| l.node.clone())
                .filter(|n| !n.is_empty());
            let resp = resp.on_hover_text(format!(
                "{name} ({op})\n{}\n{} {}: {}{}",
                e.name,
                match self.mode {
                    ErrorMode::Cumulative => "cumulative",
                    ErrorMode::Isolated => "isolated",
                },
                self.metric.name(),
                self.metric.text(v),
                match &node {
                    Some(n) => format!("\nclick: a variant with {n} kept float"),
                    None => String::new(),
                }
            ));
            if let (true, Some(node)) = (resp.clicked(), node) {
                ctx.commands.send(AppCommand::Vary {
                    experiment: e.id,
                    change: super::commands::Variation::ToggleFloat(node),
                });
            }
        }
    }
}

fn legend(ui: &mut egui::Ui, metric: Metric) {
    ui.horizontal(|ui| {
        for db in [0.0, 10.0, 20.0, 30.0, 40.0] {
            let (rect, _) = ui.allocate_exact_size(egui::vec2(14.0, 10.0), egui::Sense::hover());
            ui.painter().rect_filled(rect, 0.0, color_for(db));
            ui.small(format!("{db:.0}"));
        }
        ui.small(match metric {
            Metric::Sqnr => "dB (exact: dark green)",
            _ => "on the SQNR scale",
        });
    });
}

/// Column headers: id and name of each experiment, written upwards (the full name on hover),
/// at most `HEADER_MAX` tall; a click selects the experiment.
fn headers(ui: &mut egui::Ui, ctx: &AppCtx, experiments: &[&Experiment], cells: &Cells) {
    const HEADER_MAX: f32 = 175.0;
    let font = egui::FontId::proportional(11.5);
    let galleys: Vec<_> = experiments
        .iter()
        .map(|e| {
            let color = if ctx.selected == Some(e.id) {
                ui.visuals().strong_text_color()
            } else {
                ui.visuals().text_color()
            };
            let text = format!("{} {}", e.id.0, e.name);
            let mut job = egui::text::LayoutJob::simple_singleline(text, font.clone(), color);
            job.wrap = egui::text::TextWrapping::truncate_at_width(HEADER_MAX);
            ui.painter().layout_job(job)
        })
        .collect();
    let header_h = galleys
        .iter()
        .map(|g| g.size().x)
        .fold(0.0, f32::max)
        .min(HEADER_MAX)
        + 4.0;
    ui.horizontal(|ui| {
        ui.spacing_mut().item_spacing.x = 0.0;
        ui.add_space(cells.label_width + cells.gap);
        for (e, galley) in experiments.iter().zip(galleys) {
            let (rect, response) =
                ui.allocate_exact_size(egui::vec2(cells.w, header_h), egui::Sense::click());
            // Rotated a quarter turn: the text runs up from the bottom of the header.
            let pos = egui::pos2(rect.center().x - galley.size().y / 2.0, rect.bottom() - 2.0);
            let color = ui.visuals().text_color();
            ui.painter().add(
                egui::epaint::TextShape::new(pos, galley, color)
                    .with_angle(-std::f32::consts::FRAC_PI_2),
            );
            if response.clicked() {
                ctx.commands.send(AppCommand::Select(Some(e.id)));
            }
            response.on_hover_text(&e.name);
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn colour_scale_runs_red_to_green() {
        let red = super::color_for(0.0);
        let green = super::color_for(40.0);
        assert!(red.r() > 200 && red.g() < 60);
        assert!(green.g() > 150 && green.r() < 60);
        assert_eq!(super::color_for(100.0), green);
        assert_eq!(super::color_for(f64::INFINITY), egui_color(20, 110, 60));
    }

    fn egui_color(r: u8, g: u8, b: u8) -> eframe::egui::Color32 {
        eframe::egui::Color32::from_rgb(r, g, b)
    }
}
