//! Why is it not faster? For a quantized experiment: its latency against float's, which
//! weighted ops are int8 node units and which still compute in float (their share of the
//! multiply-accumulates, and why), the Q/DQ pairs read by ops with no int8 kernel, the CPU's
//! int8 instruction sets, and what to try. Every layer named is a link to the Layers view.

use eframe::egui;

use super::context::AppCtx;
use super::AppCommand;
use quantbench::bench::explain::SpeedExplanation;
use quantbench::quant::Mode;
use quantbench::session::{Experiment, ExperimentId, Session};

#[derive(Default)]
pub struct SpeedUpView {}

impl SpeedUpView {
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &AppCtx) {
        let Some(session) = ctx.session else {
            ui.weak("Open a model to see why its quantized versions are or are not faster.");
            return;
        };
        // The selected experiment, or the last int8 one (the mode meant to be faster), or the
        // last quantized one.
        let quantized = |e: &&Experiment| e.config.is_some() && e.has_figures();
        let chosen = ctx.selected_experiment().filter(quantized).or_else(|| {
            let mut done = session.experiments.iter().filter(quantized);
            done.clone()
                .rfind(|e| e.config.as_ref().is_some_and(|c| c.mode == Mode::Int8))
                .or_else(|| done.next_back())
        });
        let Some(e) = chosen else {
            ui.weak(
                "Run a quantized experiment: this view says why it is or is not faster than float.",
            );
            return;
        };
        chooser(ui, ctx, session, e);
        egui::ScrollArea::vertical()
            .id_salt("speedup")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                super::table::scrolled(ui, |ui| {
                    latency(ui, session, e);
                    mode_note(ui, e);
                    ui.add_space(6.0);
                    match ctx.explanations.get(&e.id) {
                        Some(Ok(found)) => explanation(ui, ctx, e.id, found),
                        Some(Err(why)) => {
                            ui.colored_label(
                                ui.visuals().error_fg_color,
                                format!("Could not look into {}: {why}", e.name),
                            );
                        }
                        None if ctx.explaining == Some(e.id) => {
                            ui.horizontal(|ui| {
                                ui.spinner();
                                ui.label("Looking at the graph (shapes, node units)…");
                            });
                        }
                        None => {
                            // Cheap (the model's shapes and node units): found out on sight.
                            ctx.commands.send(AppCommand::Explain(e.id));
                        }
                    }
                });
            });
    }
}

/// "Why is [experiment] not faster?": which experiment, and a choice of another.
fn chooser(ui: &mut egui::Ui, ctx: &AppCtx, session: &Session, e: &Experiment) {
    ui.horizontal_wrapped(|ui| {
        let l = ui.strong("Why is");
        egui::ComboBox::from_id_salt("speedup_experiment")
            .selected_text(format!("{} {}", e.id.0, e.name))
            .width(260.0)
            .show_ui(ui, |ui| {
                for x in session
                    .experiments
                    .iter()
                    .filter(|x| x.config.is_some() && x.has_figures())
                {
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
        ui.strong("not faster?");
    });
}

/// Its latency against float's on each runtime, with the intervals.
fn latency(ui: &mut egui::Ui, session: &Session, e: &Experiment) {
    ui.strong("Latency");
    let float = session.float();
    for b in &e.result.benches {
        let reference = float.and_then(|f| f.result.bench(&b.backend));
        let text = match reference {
            Some(f) if b.p50_ms > 0.0 => {
                let ratio = f.p50_ms / b.p50_ms;
                let tie = quantbench::bench::stats::overlap(b.interval(), f.interval());
                let verdict = if tie {
                    "a tie within noise".to_string()
                } else if ratio > 1.0 {
                    format!("{ratio:.2}× float's speed")
                } else {
                    format!("{ratio:.2}× float's speed: slower than float")
                };
                format!(
                    "on {}: {} against float's {}: {verdict}",
                    b.backend,
                    b.p50_text(),
                    f.p50_text()
                )
            }
            _ => format!("on {}: {} (float not timed)", b.backend, b.p50_text()),
        };
        ui.add(egui::Label::new(text).wrap());
    }
    if e.result.benches.is_empty() {
        ui.weak("not timed: Re-measure times it");
    }
}

/// What the mode itself promises: only int8 is meant to compute faster.
fn mode_note(ui: &mut egui::Ui, e: &Experiment) {
    let Some(mode) = e.config.as_ref().map(|c| c.mode) else {
        return;
    };
    let note = match mode {
        Mode::Int8 => return,
        Mode::Int8Dynamic => {
            "int8 with activations quantized at run time: each input is measured and quantized \
             as the model runs, which costs time of its own; on CPUs it pays off for large \
             MatMuls (transformers) more than for convolutions."
        }
        _ => {
            "This mode stores the weights smaller and turns them back into float to compute: it \
             is meant to be smaller, not faster. A runtime that does not fold the \
             dequantization into the weights pays it at every run. For speed, use int8 (weights \
             and activations)."
        }
    };
    ui.add_space(4.0);
    ui.add(
        egui::Label::new(
            egui::RichText::new(format!("{}: {note}", super::words::mode(mode)))
                .color(ui.visuals().warn_fg_color),
        )
        .wrap(),
    );
}

/// The explanation's sections.
fn explanation(ui: &mut egui::Ui, ctx: &AppCtx, id: ExperimentId, found: &SpeedExplanation) {
    ui.strong("What runs in int8 (ONNX Runtime's node units)");
    ui.add(
        egui::Label::new(format!(
            "{} of {} weighted ops (Conv, MatMul, Gemm) are int8 node units: every input from a \
             dequantize, the one output to a quantize. {:.1}% of the {} multiply-accumulates still \
             run in float.",
            found.int8_ops,
            found.weighted_ops,
            100.0 * found.float_share(),
            macs_text(found.total_macs)
        ))
        .wrap(),
    );
    egui::CollapsingHeader::new(format!("The {} int8 node units", found.int8_nodes.len()))
        .id_salt("int8_units")
        .show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                for n in &found.int8_nodes {
                    layer_link(ui, ctx, id, n, "an int8 node unit");
                }
            });
        });
    if !found.float_ops.is_empty() {
        ui.add_space(6.0);
        ui.strong("Still in float, largest first");
        egui::Grid::new("float_ops")
            .striped(true)
            .num_columns(4)
            .show(ui, |ui| {
                for h in ["layer", "op", "share of MACs", "why"] {
                    ui.weak(h);
                }
                ui.end_row();
                for f in found.float_ops.iter().take(40) {
                    layer_link(ui, ctx, id, &f.node, &f.reason);
                    ui.label(&f.op_type);
                    ui.label(format!(
                        "{:.1}%",
                        100.0 * f.macs as f64 / found.total_macs.max(1) as f64
                    ));
                    super::table::elided_text(ui, &f.reason, 360.0);
                    ui.end_row();
                }
            });
    }
    if !found.unfused_reads.is_empty() {
        ui.add_space(6.0);
        ui.strong("Q/DQ pairs read by ops with no int8 kernel in ONNX Runtime");
        egui::Grid::new("unfused")
            .striped(true)
            .num_columns(3)
            .show(ui, |ui| {
                for h in ["layer", "op", "reads"] {
                    ui.weak(h);
                }
                ui.end_row();
                for r in found.unfused_reads.iter().take(60) {
                    layer_link(
                        ui,
                        ctx,
                        id,
                        &r.node,
                        "reads a dequantized activation, in float",
                    );
                    ui.label(&r.op_type);
                    super::table::elided_text(ui, &r.tensor, 260.0);
                    ui.end_row();
                }
            });
    }
    ui.add_space(6.0);
    ui.strong("This CPU");
    let machine = quantbench::host::detect();
    ui.add(
        egui::Label::new(format!(
            "{}: int8 instruction sets {}; {}",
            machine.cpu,
            if found.int8_features.is_empty() {
                "none found".to_string()
            } else {
                found.int8_features.join(", ")
            },
            if machine.has_vnni() {
                "VNNI: int8 dot products in one instruction"
            } else {
                "no VNNI: int8 dot products go through 16-bit sums"
            }
        ))
        .wrap(),
    );
    ui.add_space(6.0);
    ui.strong("What to try");
    for a in &found.advice {
        ui.horizontal_top(|ui| {
            ui.label("•");
            ui.add(egui::Label::new(a).wrap());
        });
    }
}

/// A layer's name as a link: a click shows it in the Layers view.
fn layer_link(ui: &mut egui::Ui, ctx: &AppCtx, id: ExperimentId, node: &str, why: &str) {
    let (text, _) = super::table::elided(ui, node, 260.0);
    if ui
        .link(text)
        .on_hover_text(format!("{node}: {why}\nclick: show it in the Layers view"))
        .clicked()
    {
        ctx.commands
            .send(AppCommand::ShowLayer(id, node.to_string()));
    }
}

/// "123.4 M", "2.1 G".
fn macs_text(macs: u64) -> String {
    let m = macs as f64;
    if m >= 1e9 {
        format!("{:.2} G", m / 1e9)
    } else if m >= 1e6 {
        format!("{:.1} M", m / 1e6)
    } else {
        format!("{macs}")
    }
}
