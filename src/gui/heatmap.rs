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
    /// The focused layer the table last scrolled to (it scrolls once per new focus).
    scrolled_to: Option<String>,
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
        let experiments: Vec<&Experiment> =
            columns.iter().filter_map(|&id| session.get(id)).collect();
        let names: Vec<String> = rows
            .iter()
            .map(|(tensor, _)| layer_name_of(&experiments, tensor))
            .collect();
        let label_width = names
            .iter()
            .map(|n| super::table::text_width(ui, n, egui::TextStyle::Small))
            .fold(60.0, f32::max)
            .min(200.0);
        // Columns fill the width when few, and scroll sideways (names kept in view) when many.
        let fill = (ui.available_width() - label_width - 30.0) / experiments.len() as f32 - 8.0;
        let w = fill.clamp(18.0, 52.0);
        let mut table_columns = vec![super::table::Column::new("layer", label_width)];
        table_columns.extend(
            experiments
                .iter()
                .map(|e| super::table::Column::new(e.name.clone(), w)),
        );
        let header_height = header_height(ui, &experiments);
        let height = ui.available_height();
        // The layer focused elsewhere (Why no speed-up?, Layers) is highlighted and scrolled to.
        let (focus, scroll) =
            super::table::focused_rows(ctx.layer_focus, &mut self.scrolled_to, |node| {
                shown.iter().position(|&r| names[r] == node)
            });
        super::table::Table::new("heatmap", &table_columns)
            .frozen(1)
            .scroll_to(scroll)
            .highlight(focus)
            .row_height(16.0)
            .header_height(header_height)
            .striped(false)
            .show_with_header(
                ui,
                shown.len(),
                height,
                |ui, k| match k {
                    0 => {
                        ui.weak("layer");
                    }
                    k => header(ui, ctx, experiments[k - 1], header_height),
                },
                |ui, row, k| {
                    let r = shown[row];
                    match k {
                        0 => {
                            let (text, cut) = elided_small(ui, &names[r], label_width);
                            let l = ui.add(egui::Label::new(text).selectable(false));
                            let (tensor, op) = &rows[r];
                            if cut || names[r] != *tensor {
                                l.on_hover_text(format!("{} ({op}), output {tensor}", names[r]));
                            } else {
                                l.on_hover_text(format!("{} ({op})", names[r]));
                            }
                        }
                        k => self.cell(
                            ui,
                            ctx,
                            &rows[r],
                            &names[r],
                            experiments[k - 1],
                            values[r][k - 1],
                        ),
                    }
                },
            );
    }

    fn controls(&mut self, ui: &mut egui::Ui) {
        let Self {
            worst_only,
            mode,
            metric,
            ..
        } = self;
        ui.horizontal_wrapped(|ui| {
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

    /// One experiment's cell of a tensor's row: its colour, the figure on hover; a click makes
    /// a variant with the layer kept float.
    fn cell(
        &self,
        ui: &mut egui::Ui,
        ctx: &AppCtx,
        (tensor, op): &(String, String),
        name: &str,
        e: &Experiment,
        value: Option<f64>,
    ) {
        let size = ui.available_size();
        let (rect, resp) = ui.allocate_exact_size(size, egui::Sense::click());
        let Some(v) = value else {
            ui.painter().rect_stroke(
                rect.shrink(1.0),
                0.0,
                ui.visuals().widgets.noninteractive.bg_stroke,
                egui::StrokeKind::Inside,
            );
            return;
        };
        ui.painter()
            .rect_filled(rect.shrink(0.5), 0.0, color_for(self.metric.as_db(v)));
        let node = e
            .result
            .layers
            .iter()
            .find(|l| l.tensor == *tensor)
            .filter(|l| {
                e.config
                    .as_ref()
                    .is_some_and(|cfg| cfg.can_keep_float(&l.op_type))
            })
            .map(|l| l.node.clone())
            .filter(|n| !n.is_empty());
        let resp = resp.on_hover_text(format!(
            "{name} ({op})\n{}. {}\n{} {}: {}{}",
            e.id.0,
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

/// A tensor's layer name as every view gives it (the node that makes it; the tensor itself
/// for a graph input), from the first experiment that measured it.
fn layer_name_of(experiments: &[&Experiment], tensor: &str) -> String {
    experiments
        .iter()
        .flat_map(|e| &e.result.layers)
        .find(|l| l.tensor == tensor)
        .map_or_else(|| tensor.to_string(), super::layers_view::layer_name)
}

/// `text` in the small style, cut to `width` with "…".
fn elided_small(ui: &egui::Ui, text: &str, width: f32) -> (egui::WidgetText, bool) {
    let font = egui::TextStyle::Small.resolve(ui.style());
    let mut job =
        egui::text::LayoutJob::simple_singleline(text.to_owned(), font, ui.visuals().text_color());
    job.wrap = egui::text::TextWrapping {
        overflow_character: Some('…'),
        ..egui::text::TextWrapping::truncate_at_width(width)
    };
    let galley = ui.ctx().fonts_mut(|f| f.layout_job(job));
    let cut = galley.elided;
    (egui::WidgetText::Galley(galley), cut)
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

const HEADER_MAX: f32 = 175.0;

fn header_galley(ui: &egui::Ui, e: &Experiment, selected: bool) -> std::sync::Arc<egui::Galley> {
    let color = if selected {
        ui.visuals().strong_text_color()
    } else {
        ui.visuals().text_color()
    };
    let mut job = egui::text::LayoutJob::simple_singleline(
        format!("{} {}", e.id.0, e.name),
        egui::FontId::proportional(11.5),
        color,
    );
    job.wrap = egui::text::TextWrapping {
        overflow_character: Some('…'),
        ..egui::text::TextWrapping::truncate_at_width(HEADER_MAX)
    };
    ui.ctx().fonts_mut(|f| f.layout_job(job))
}

/// The header row's height: the longest name written upwards, at most `HEADER_MAX`.
fn header_height(ui: &egui::Ui, experiments: &[&Experiment]) -> f32 {
    experiments
        .iter()
        .map(|e| header_galley(ui, e, false).size().x)
        .fold(0.0, f32::max)
        .min(HEADER_MAX)
        + 6.0
}

/// An experiment's column header: its id and name written upwards (the whole name on hover);
/// a click selects the experiment.
fn header(ui: &mut egui::Ui, ctx: &AppCtx, e: &Experiment, height: f32) {
    let galley = header_galley(ui, e, ctx.selected == Some(e.id));
    let width = ui.available_width();
    let (rect, response) = ui.allocate_exact_size(egui::vec2(width, height), egui::Sense::click());
    // Rotated a quarter turn: the text runs up from the bottom of the header.
    let pos = egui::pos2(rect.center().x - galley.size().y / 2.0, rect.bottom() - 3.0);
    let color = ui.visuals().text_color();
    ui.painter().add(
        egui::epaint::TextShape::new(pos, galley, color).with_angle(-std::f32::consts::FRAC_PI_2),
    );
    if response.clicked() {
        ctx.commands.send(AppCommand::Select(Some(e.id)));
    }
    response.on_hover_text(format!("{}. {}", e.id.0, e.name));
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
