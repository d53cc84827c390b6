//! The model: file, inputs and outputs, op histogram, and a searchable node list where nodes
//! can be kept in float.

use eframe::egui;

use super::context::AppCtx;
use super::AppCommand;
use quantbench::onnx::inspect::{human_bytes, ModelSummary};

#[derive(Default)]
pub struct ModelPanel {
    search: String,
}

impl ModelPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &AppCtx) {
        let Self { search } = self;
        let Some(model) = ctx.model else {
            ui.label(
                "No model open. Open one from the toolbar, or drop a .onnx file on the window.",
            );
            return;
        };
        facts(ui, model);
        let s = &model.summary;
        if s.outputs.len() > 1 {
            scored_output(ui, ctx, s);
        }
        let ops: Vec<String> = s
            .op_histogram
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        ui.label(format!("{} nodes: {}", s.nodes.len(), ops.join(", ")));
        if !s.units.is_empty() {
            let kinds: Vec<&str> = s.units.iter().map(|u| u.kind.as_str()).collect();
            let mut counted: Vec<(usize, &str)> = vec![];
            for k in kinds {
                match counted.iter_mut().find(|(_, c)| *c == k) {
                    Some((n, _)) => *n += 1,
                    None => counted.push((1, k)),
                }
            }
            let text: Vec<String> = counted.iter().map(|(n, k)| format!("{n} {k}")).collect();
            ui.label(format!("Kept float inside: {}", text.join(", ")))
                .on_hover_text(
                    s.units
                        .iter()
                        .map(|u| {
                            format!(
                                "{}: {} -> {} ({} nodes)",
                                u.kind,
                                u.input,
                                u.output,
                                u.nodes.len()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n"),
                );
        }
        ui.horizontal(|ui| {
            let label = ui.label("Find node");
            ui.add(
                egui::TextEdit::singleline(search)
                    .hint_text("name or op type")
                    .desired_width(160.0),
            )
            .labelled_by(label.id);
        });
        node_list(ui, ctx, s, search);
    }
}

/// File, size, opset, inputs and outputs.
fn facts(ui: &mut egui::Ui, model: &super::context::LoadedModel) {
    let s = &model.summary;
    egui::Grid::new("model_facts")
        .num_columns(2)
        .show(ui, |ui| {
            ui.label("file");
            ui.label(
                model
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            )
            .on_hover_text(model.path.display().to_string());
            ui.end_row();
            ui.label("size");
            ui.label(format!(
                "{}, {} parameters",
                human_bytes(s.file_bytes),
                s.parameters
            ));
            ui.end_row();
            ui.label("opset");
            ui.label(format!("{} (IR {})", s.opset, s.ir_version));
            ui.end_row();
            for (label, values) in [("input", &s.inputs), ("output", &s.outputs)] {
                for v in values {
                    ui.label(label);
                    let dims: Vec<String> = v.shape.iter().map(|d| d.to_string()).collect();
                    ui.label(format!("{} {} [{}]", v.name, v.elem_type, dims.join(", ")));
                    ui.end_row();
                }
            }
        });
}

fn scored_output(ui: &mut egui::Ui, ctx: &AppCtx, s: &ModelSummary) {
    ui.horizontal(|ui| {
        let l = ui.label("Scored output").on_hover_text(
            "The output top-1/top-5 and the headline fidelity figures describe; every output's fidelity is measured",
        );
        let current = ctx
            .scored_output
            .unwrap_or(s.outputs[0].name.as_str())
            .to_string();
        egui::ComboBox::from_id_salt("scored_output")
            .selected_text(&current)
            .show_ui(ui, |ui| {
                for (k, o) in s.outputs.iter().enumerate() {
                    if ui.selectable_label(o.name == current, &o.name).clicked() {
                        ctx.commands
                            .send(AppCommand::SetScoredOutput((k > 0).then(|| o.name.clone())));
                    }
                }
            })
            .response
            .labelled_by(l.id);
    });
}

/// The nodes matching `search`, each with a tick that keeps it in float.
fn node_list(ui: &mut egui::Ui, ctx: &AppCtx, s: &ModelSummary, search: &str) {
    let needle = search.to_lowercase();
    let nodes: Vec<_> = s
        .nodes
        .iter()
        .filter(|n| {
            needle.is_empty()
                || n.name.to_lowercase().contains(&needle)
                || n.op_type.to_lowercase().contains(&needle)
        })
        .collect();
    ui.weak("tick a node to keep it in float");
    egui::ScrollArea::vertical()
        .id_salt("node_list")
        .max_height(420.0)
        .show_rows(
            ui,
            ui.text_style_height(&egui::TextStyle::Body) + 4.0,
            nodes.len(),
            |ui, range| {
                super::table::scrolled(ui, |ui| {
                    for n in &nodes[range] {
                        ui.horizontal(|ui| {
                            let mut kept = ctx.keep_float.contains(&n.name);
                            let weights: usize = n.weights.iter().map(|w| w.bytes).sum();
                            let text = if weights > 0 {
                                format!(
                                    "{} ({}, {})",
                                    n.name,
                                    n.op_type,
                                    human_bytes(weights as u64)
                                )
                            } else {
                                format!("{} ({})", n.name, n.op_type)
                            };
                            if ui.checkbox(&mut kept, text).changed() {
                                ctx.commands
                                    .send(AppCommand::ToggleKeepFloat(n.name.clone()));
                            }
                        });
                    }
                })
            },
        );
}
