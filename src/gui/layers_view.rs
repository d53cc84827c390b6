//! The per-layer table of one experiment (every metric, both ways, sortable by any column),
//! where a layer is switched between int8 and float in a new variant of the experiment, and the
//! calibration inspector of an activation (histogram, each method's range, pinning one).

use eframe::egui;
use egui_plot::{Bar, BarChart, Legend, Plot, VLine};

use super::commands::Variation;
use super::context::AppCtx;
use super::table;
use super::AppCommand;
use quantbench::eval::layers::{LayerError, LayerMetrics};
use quantbench::quant::inspect::Inspection;
use quantbench::sensitivity::{Sensitivity, SensitivityReport};
use quantbench::session::ExperimentId;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Column {
    Graph,
    Tensor,
    Op,
    /// The sensitivity ranking's place (1: keep this one float first).
    Rank,
    Recovered,
    SqnrGained,
    Cost,
    PerMs,
    IsolatedSqnr,
    CumulativeSqnr,
    Cosine,
    RelativeRmse,
    MaxAbs,
    RmseOverScale,
}

/// A layer's place in the sensitivity ranking, and its entry.
type Ranked<'a> = Option<(usize, &'a Sensitivity)>;

impl Column {
    const METRICS: [Column; 6] = [
        Column::IsolatedSqnr,
        Column::CumulativeSqnr,
        Column::Cosine,
        Column::RelativeRmse,
        Column::MaxAbs,
        Column::RmseOverScale,
    ];

    const SENSITIVITY: [Column; 5] = [
        Column::Rank,
        Column::Recovered,
        Column::SqnrGained,
        Column::Cost,
        Column::PerMs,
    ];

    /// The columns after the actions: the op, the ranking's when there is one, the metrics.
    fn shown(ranked: bool) -> Vec<Column> {
        let mut out = vec![Column::Op];
        if ranked {
            out.extend(Column::SENSITIVITY);
        }
        out.extend(Column::METRICS);
        out
    }

    fn title(self) -> &'static str {
        match self {
            Column::Graph => "order",
            Column::Tensor => "layer",
            Column::Op => "op",
            Column::Rank => "rank",
            Column::Recovered => "float recovers",
            Column::SqnrGained => "SQNR gained",
            Column::Cost => "costs ms",
            Column::PerMs => "per ms",
            Column::IsolatedSqnr => "isolated SQNR",
            Column::CumulativeSqnr => "cumulative SQNR",
            Column::Cosine => "cosine",
            Column::RelativeRmse => "rel. RMSE",
            Column::MaxAbs => "max |err|",
            Column::RmseOverScale => "rmse/scale",
        }
    }

    fn hover(self) -> &'static str {
        match self {
            Column::Rank => "the sensitivity ranking: keep the first float first",
            Column::Recovered => {
                "what keeping this layer float (alone) recovers of the task metric"
            }
            Column::SqnrGained => "what keeping it float gains in output SQNR: the tiebreak where the task metric cannot tell layers apart",
            Column::Cost => "what it costs in p50 latency, timed in rounds with the whole model",
            Column::PerMs => "recovered per millisecond of latency (the ranking's key)",
            _ => "sort by this column; again to reverse",
        }
    }

    /// The cumulative metrics (the ones the user watches), isolated for its own column, and
    /// the sensitivity ranking's figures.
    fn number(self, l: &LayerError, ranked: Ranked) -> Option<f64> {
        let c = l.cumulative.as_ref();
        let m = |f: fn(&LayerMetrics) -> f64| c.map(f);
        match self {
            Column::IsolatedSqnr => l.isolated.as_ref().map(|i| i.sqnr_db),
            Column::CumulativeSqnr => Some(c.map_or(l.sqnr_db, |c| c.sqnr_db)),
            Column::Cosine => m(|c| c.cosine),
            Column::RelativeRmse => m(|c| c.relative_rmse),
            Column::MaxAbs => m(|c| c.max_abs_error),
            Column::RmseOverScale => c.and_then(|c| c.rmse_over_scale),
            Column::Rank => ranked.map(|(k, _)| k as f64 + 1.0),
            Column::Recovered => ranked.map(|(_, s)| s.recovered),
            Column::SqnrGained => ranked.and_then(|(_, s)| s.sqnr_gained_db),
            Column::Cost => ranked.map(|(_, s)| s.latency_cost_ms),
            Column::PerMs => ranked.map(|(_, s)| s.score),
            Column::Graph | Column::Tensor | Column::Op => None,
        }
    }
}

pub struct LayersView {
    /// `None`: the default, the ranking where there is one, the isolated SQNR otherwise.
    sort: Option<Column>,
    descending: bool,
    /// How many of the ranking's top layers "Keep the top K float" keeps.
    top_k: usize,
    /// The layer the table last scrolled to on request (it scrolls once per request).
    scrolled_to: Option<String>,
}

impl Default for LayersView {
    fn default() -> Self {
        LayersView {
            sort: None,
            descending: false,
            top_k: 3,
            scrolled_to: None,
        }
    }
}

/// Where `l` stands in `report`'s ranking.
fn ranked<'a>(l: &LayerError, report: Option<&'a SensitivityReport>) -> Ranked<'a> {
    report?
        .ranking
        .iter()
        .enumerate()
        .find(|(_, s)| !l.node.is_empty() && s.layer == l.node)
}

/// The rows of `layers` in the order `sort` asks (graph order breaks ties).
fn order(
    layers: &[LayerError],
    report: Option<&SensitivityReport>,
    sort: Column,
    descending: bool,
) -> Vec<usize> {
    let mut rows: Vec<usize> = (0..layers.len()).collect();
    rows.sort_by(|&a, &b| {
        let (x, y) = (&layers[a], &layers[b]);
        let o = match sort {
            Column::Graph => a.cmp(&b),
            Column::Tensor => layer_name(x).cmp(&layer_name(y)),
            Column::Op => x.op_type.cmp(&y.op_type),
            _ => {
                // Unranked or unmeasured rows last either way.
                let key = |l: &LayerError| sort.number(l, ranked(l, report));
                match (key(x), key(y)) {
                    (Some(p), Some(q)) => {
                        let o = p.total_cmp(&q);
                        if descending {
                            o.reverse()
                        } else {
                            o
                        }
                    }
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                }
            }
        };
        let o = match sort {
            Column::Graph | Column::Tensor | Column::Op if descending => o.reverse(),
            _ => o,
        };
        o.then(a.cmp(&b))
    });
    rows
}

fn short(name: &str, chars: usize) -> String {
    let n = name.chars().count();
    if n <= chars {
        return name.to_string();
    }
    let tail: String = name.chars().skip(n - (chars - 1)).collect();
    format!("…{tail}")
}

impl LayersView {
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &AppCtx) {
        let Some(session) = ctx.session else {
            ui.weak("Open a model to see its layers.");
            return;
        };
        // The selected experiment, or the last one with per-layer figures.
        let chosen = ctx
            .selected_experiment()
            .filter(|e| !e.result.layers.is_empty())
            .or_else(|| {
                session
                    .experiments
                    .iter()
                    .rfind(|e| !e.result.layers.is_empty())
            });
        let Some(e) = chosen else {
            ui.weak("The per-layer table appears here once a quantized experiment has run.");
            return;
        };
        chooser(ui, ctx, session, e);
        let Some(config) = e.config.clone() else {
            return;
        };
        super::sensitivity_bar::ui(ui, ctx, e, &config, &mut self.top_k);
        self.table(ui, ctx, e, &config);
    }

    /// The per-layer table of `e`: sortable by any column but the actions.
    fn table(
        &mut self,
        ui: &mut egui::Ui,
        ctx: &AppCtx,
        e: &quantbench::session::Experiment,
        config: &quantbench::quant::QuantConfig,
    ) {
        let layers = &e.result.layers;
        let report = e.result.sensitivity.as_ref();
        let default_sort = if report.is_some() {
            Column::Rank
        } else {
            Column::IsolatedSqnr
        };
        let rows = order(
            layers,
            report,
            self.sort.unwrap_or(default_sort),
            self.descending,
        );
        let names: Vec<String> = layers.iter().map(layer_name).collect();
        let after = Column::shown(report.is_some());
        let columns = columns(ui, &names, &after);
        // The table's columns: order, layer, (actions), then `after`.
        let sort_of = |k: usize| match k {
            0 => Some(Column::Graph),
            1 => Some(Column::Tensor),
            2 => None,
            k => Some(after[k - 3]),
        };
        let height = ui.available_height();
        let (focus, scroll) = table::focused_rows(ctx.layer_focus, &mut self.scrolled_to, |node| {
            rows.iter().position(|&r| layers[r].node == node)
        });
        let descending = &mut self.descending;
        // The default follows the ranking's arrival until the user sorts by a column.
        let mut current = self.sort.unwrap_or(default_sort);
        let chosen = &mut self.sort;
        table::Table::new("layer_table", &columns)
            .frozen(3)
            .scroll_to(scroll)
            .highlight(focus)
            .show_with_header(
                ui,
                rows.len(),
                height,
                |ui, k| {
                    if let Some(c) = sort_of(k) {
                        if sort_header(ui, c, &mut current, descending) {
                            *chosen = Some(current);
                        }
                    }
                },
                |ui, row, k| {
                    let r = rows[row];
                    let l = &layers[r];
                    match k {
                        0 => {
                            ui.label(format!("{}", r + 1));
                        }
                        1 => {
                            let name = &names[r];
                            let (text, cut) = table::elided(ui, name, columns[1].width);
                            let shown = ui.add(egui::Label::new(text).selectable(false));
                            if *name != l.tensor {
                                shown.on_hover_text(format!("{name}\nits output: {}", l.tensor));
                            } else if cut {
                                shown.on_hover_text(name);
                            }
                        }
                        2 => actions(ui, ctx, e.id, &e.name, l, config),
                        k => match after[k - 3] {
                            Column::Op => {
                                ui.label(&l.op_type);
                            }
                            c => {
                                ui.label(cell_text(c, l, ranked(l, report)));
                            }
                        },
                    }
                },
            );
    }
}

/// A sortable column's title: a click sorts by it, again reverses; whether it was clicked.
fn sort_header(ui: &mut egui::Ui, c: Column, sort: &mut Column, descending: &mut bool) -> bool {
    let sorted = *sort == c;
    let clicked = ui
        .selectable_label(sorted, c.title())
        .on_hover_text(c.hover())
        .clicked();
    if sorted {
        table::sort_arrow(ui, *descending);
    }
    if clicked {
        if sorted {
            *descending = !*descending;
        } else {
            *sort = c;
            *descending = false;
        }
    }
    clicked
}

/// The table's columns, each wide enough for its sortable title (padding and sort arrow).
fn columns(ui: &egui::Ui, names: &[String], after: &[Column]) -> Vec<table::Column> {
    let header = |c: Column| {
        table::text_width(ui, c.title(), egui::TextStyle::Body)
            + 2.0 * ui.spacing().button_padding.x
            + 18.0
    };
    let mut columns = vec![
        table::Column::new(Column::Graph.title(), header(Column::Graph)),
        table::Column::fitted(
            ui,
            Column::Tensor.title(),
            names.iter().map(String::as_str),
            header(Column::Tensor).max(120.0),
            230.0,
        ),
        table::Column::new("", 196.0),
    ];
    for &c in after {
        let min = match c {
            Column::Op => 110.0,
            Column::Rank => 0.0,
            _ => 96.0,
        };
        columns.push(table::Column::new(c.title(), header(c).max(min)));
    }
    columns
}

/// "Layers of [experiment]": which experiment the table shows, and a choice of another.
fn chooser(
    ui: &mut egui::Ui,
    ctx: &AppCtx,
    session: &quantbench::session::Session,
    e: &quantbench::session::Experiment,
) {
    ui.horizontal_wrapped(|ui| {
            let l = ui.strong("Layers of");
            egui::ComboBox::from_id_salt("layers_experiment")
                .selected_text(format!("{} {}", e.id.0, e.name))
                .width(260.0)
                .show_ui(ui, |ui| {
                    for x in session.experiments.iter().filter(|x| !x.result.layers.is_empty()) {
                        if ui
                            .selectable_label(x.id == e.id, format!("{} {}", x.id.0, x.name))
                            .clicked()
                        {
                            ctx.commands.send(AppCommand::Select(Some(x.id)));
                        }
                    }
                })
                .response
                .labelled_by(l.id);
            ui.weak("click a header to sort; Float / 16-bit: a variant with that layer float, or that activation on 16 bits");
        });
}

/// A layer's name in every view: its node's (the name kept float, as the Model tab lists it),
/// or its tensor's where no node makes it (a graph input).
pub fn layer_name(l: &LayerError) -> String {
    if l.node.is_empty() {
        l.tensor.clone()
    } else {
        l.node.clone()
    }
}

fn cell_text(c: Column, l: &LayerError, ranked: Ranked) -> String {
    match c.number(l, ranked) {
        None => "–".into(),
        Some(v) if v.is_infinite() => "exact".into(),
        Some(v) => match c {
            Column::Rank => format!("{v:.0}"),
            Column::Recovered => format!("{v:+.4}"),
            Column::SqnrGained => format!("{v:+.2} dB"),
            Column::Cost => format!("{v:+.3}"),
            Column::PerMs => format!("{v:.3}"),
            Column::IsolatedSqnr | Column::CumulativeSqnr => format!("{v:.2} dB"),
            Column::Cosine => format!("{v:.5}"),
            Column::RmseOverScale => format!("{v:.3}"),
            _ => format!("{v:.4}"),
        },
    }
}

/// A row's buttons: keep the layer float in a variant, inspect the tensor's calibration.
fn actions(
    ui: &mut egui::Ui,
    ctx: &AppCtx,
    id: ExperimentId,
    experiment: &str,
    l: &LayerError,
    config: &quantbench::quant::QuantConfig,
) {
    ui.horizontal(|ui| {
        let can_float = !l.node.is_empty()
            && !config.keep_float.contains(&l.node)
            && config.can_keep_float(&l.op_type);
        if ui
            .add_enabled(can_float, egui::Button::new("Float"))
            .on_hover_text(format!(
                "a new experiment: {experiment} with '{}' kept float (calibration reused)",
                l.node
            ))
            .clicked()
        {
            ctx.commands.send(AppCommand::Vary {
                experiment: id,
                change: Variation::ToggleFloat(l.node.clone()),
            });
        }
        if ui
            .button("16-bit")
            .on_hover_text("a new experiment with this activation quantized to 16 bits (ONNX Runtime, opset 21; tract cannot run it)")
            .clicked()
        {
            ctx.commands.send(AppCommand::Vary {
                experiment: id,
                change: Variation::ToggleInt16(l.tensor.clone()),
            });
        }
        if ui
            .button("Calibration")
            .on_hover_text(
                "this activation's histogram and the range each calibration method keeps",
            )
            .clicked()
        {
            ctx.commands.send(AppCommand::InspectCalibration {
                experiment: Some(id),
                tensor: l.tensor.clone(),
            });
        }
    });
}

/// The calibration inspector window: `found` for experiment `experiment`'s settings (`None`:
/// the Settings tab's).
pub fn inspector_window(
    ctx: &egui::Context,
    app: &AppCtx,
    experiment: Option<ExperimentId>,
    found: &Inspection,
) {
    let mut open = true;
    egui::Window::new(format!("Calibration of {}", short(&found.tensor, 40)))
        .open(&mut open)
        .default_size([620.0, 460.0])
        .default_pos([ctx.content_rect().center().x - 200.0, 90.0])
        .show(ctx, |ui| {
            ui.label(format!(
                "{}: {} values over {} calibration samples, from {:.5} to {:.5}",
                found.tensor, found.values, found.samples, found.min, found.max
            ));
            if let Some(note) = &found.note {
                ui.weak(note);
            }
            histogram(ui, found);
            methods(ui, app, experiment, found);
        });
    if !open {
        app.commands.send(AppCommand::CloseInspector);
    }
}

/// The activation's histogram (log counts), each method's range and the pinned one.
fn histogram(ui: &mut egui::Ui, found: &Inspection) {
    let bars: Vec<Bar> = found
        .counts
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let x = found.first_edge as f64 + (i as f64 + 0.5) * found.bin_width as f64;
            // log10(1 + count): the tails that clipping decides are visible.
            Bar::new(x, (1.0 + c as f64).log10()).width(found.bin_width as f64)
        })
        .collect();
    let colours = [
        egui::Color32::from_rgb(31, 119, 180),
        egui::Color32::from_rgb(255, 127, 14),
        egui::Color32::from_rgb(44, 160, 44),
        egui::Color32::from_rgb(214, 39, 40),
        egui::Color32::from_rgb(148, 103, 189),
    ];
    Plot::new("calibration_histogram")
        .height(220.0)
        .legend(Legend::default())
        .y_axis_label("log10(1 + count)")
        .allow_scroll(false)
        .show(ui, |plot| {
            plot.bar_chart(BarChart::new("values", bars).color(egui::Color32::from_gray(150)));
            for (f, &colour) in found.methods.iter().zip(colours.iter().cycle()) {
                for x in [f.range.0, f.range.1] {
                    plot.vline(VLine::new(&f.method, x as f64).color(colour));
                }
            }
            if let Some(p) = &found.pinned {
                for x in [p.range.0, p.range.1] {
                    plot.vline(
                        VLine::new("pinned", x as f64)
                            .color(egui::Color32::BLACK)
                            .width(2.0),
                    );
                }
            }
        });
}

/// Each method's range, clipped share and SQNR, with Pin (a variant of `experiment` with that
/// range) or Unpin.
fn methods(ui: &mut egui::Ui, app: &AppCtx, experiment: Option<ExperimentId>, found: &Inspection) {
    egui::Grid::new("calibration_methods")
        .striped(true)
        .num_columns(5)
        .show(ui, |ui| {
            for h in ["method", "range", "clipped", "SQNR", ""] {
                ui.strong(h);
            }
            ui.end_row();
            for f in found.methods.iter().chain(&found.pinned) {
                let mark = if f.method == found.configured {
                    " (configured)"
                } else {
                    ""
                };
                ui.label(format!("{}{mark}", f.method));
                ui.label(format!("[{:.5}, {:.5}]", f.range.0, f.range.1));
                ui.label(format!("{:.4}%", 100.0 * f.clipped));
                ui.label(format!("{:.2} dB", f.sqnr_db));
                let change = if f.method == "pinned" {
                    let unpin = ui.add_enabled(experiment.is_some(), egui::Button::new("Unpin"));
                    unpin
                        .clicked()
                        .then(|| Variation::Unpin(found.tensor.clone()))
                } else {
                    let pin = ui
                        .add_enabled(
                            found.pinnable && experiment.is_some(),
                            egui::Button::new("Pin"),
                        )
                        .on_hover_text("a new experiment with this range for this tensor (calibration reused); export writes it")
                        .on_disabled_hover_text("open the inspector from an experiment's Layers row to pin a range in a variant of it");
                    pin.clicked()
                        .then(|| Variation::Pin(found.tensor.clone(), f.range))
                };
                if let (Some(experiment), Some(change)) = (experiment, change) {
                    app.commands
                        .send(AppCommand::Vary { experiment, change });
                }
                ui.end_row();
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(tensor: &str, isolated: f64, cumulative: f64) -> LayerError {
        let m = |sqnr_db| LayerMetrics {
            sqnr_db,
            cosine: 1.0,
            relative_rmse: 0.0,
            max_abs_error: 0.0,
            rmse_over_scale: None,
        };
        LayerError {
            tensor: tensor.into(),
            op_type: "Conv".into(),
            node: tensor.into(),
            sqnr_db: cumulative,
            cumulative: Some(m(cumulative)),
            isolated: Some(m(isolated)),
        }
    }

    #[test]
    fn rows_sort_by_any_column_either_way() {
        let layers = vec![
            layer("b", 30.0, 10.0),
            layer("a", 20.0, 25.0),
            layer("c", 40.0, 5.0),
        ];
        assert_eq!(
            order(&layers, None, Column::IsolatedSqnr, false),
            vec![1, 0, 2]
        );
        assert_eq!(
            order(&layers, None, Column::CumulativeSqnr, true),
            vec![1, 0, 2]
        );
        assert_eq!(order(&layers, None, Column::Tensor, false), vec![1, 0, 2]);
        assert_eq!(order(&layers, None, Column::Graph, true), vec![2, 1, 0]);
        // By the ranking: its order, ascending or not; an unranked layer last either way.
        let entry = |layer: &str, score: f64| Sensitivity {
            layer: layer.into(),
            op_type: "Conv".into(),
            metric: 0.9,
            recovered: 0.01,
            sqnr_db: None,
            sqnr_gained_db: None,
            p50_ms: 1.0,
            latency_cost_ms: 0.1,
            score,
        };
        let report = SensitivityReport {
            backend: "tract".into(),
            metric_name: "top-1".into(),
            metric: 0.89,
            p50_ms: 1.0,
            float_metric: 0.9,
            float_p50_ms: 2.0,
            ranking: vec![entry("c", 0.3), entry("b", 0.1)],
            skipped: vec![],
        };
        assert_eq!(
            order(&layers, Some(&report), Column::Rank, false),
            vec![2, 0, 1]
        );
        assert_eq!(
            order(&layers, Some(&report), Column::Rank, true),
            vec![0, 2, 1]
        );
        assert_eq!(
            order(&layers, Some(&report), Column::PerMs, true),
            vec![2, 0, 1]
        );
    }
}
