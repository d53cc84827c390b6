//! Two experiments side by side: every setting and every figure, differences highlighted.

use eframe::egui;

use super::context::AppCtx;
use super::words;
use quantbench::quant::{Int4Storage, Mode, QuantConfig};
use quantbench::session::{Experiment, ExperimentId, Session};

#[derive(Default)]
pub struct CompareView {
    a: Option<ExperimentId>,
    b: Option<ExperimentId>,
    /// Once the user picks the second experiment, it no longer follows the selection.
    b_picked: bool,
}

/// The settings rows of a quantized experiment: only those that apply to its mode, in words.
fn settings_rows(e: &Experiment, c: &QuantConfig, out: &mut Vec<(String, String)>) {
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    let report = e.result.quantize.as_ref();
    out.push(("mode".into(), words::mode(c.mode).into()));
    out.push(("for".into(), words::target(c.target).into()));
    if words::has_granularity(c.mode) {
        let weights = match (c.mode, c.int4_block_size) {
            (Mode::Int4Weights, Some(b)) => format!("one scale per block of {b}"),
            _ if c.per_channel => "one scale per output channel".into(),
            _ => "one scale per tensor".into(),
        };
        out.push(("weight scales".into(), weights));
    }
    if matches!(c.mode, Mode::Int8 | Mode::Int8Weights | Mode::Int8Dynamic) {
        out.push((
            "weight range".into(),
            if c.reduce_range {
                "7 bits (int8 kernels without VNNI saturate at 8)".into()
            } else {
                "8 bits".into()
            },
        ));
    }
    if words::calibrates(c.mode) {
        out.push(("symmetry".into(), words::symmetry(c.symmetry).into()));
        out.push((
            "activations".into(),
            words::activations(c.activations).into(),
        ));
        out.push(("calibration".into(), calibration_text(c, report)));
        out.push(("cross-layer equalization".into(), yes_no(c.cle)));
        out.push((
            "bias correction".into(),
            match c.bias_correction {
                None => "no",
                Some(quantbench::quant::BiasCorrection::Fast) => "fast",
                Some(quantbench::quant::BiasCorrection::Full) => "full",
            }
            .into(),
        ));
        out.push(("quantized ops".into(), c.ops.join(", ")));
    }
    if matches!(c.mode, Mode::Int8 | Mode::Int4Weights) {
        out.push(("AdaRound".into(), yes_no(c.adaround)));
    }
    if c.mode == Mode::Int4Weights {
        out.push(("4-bit storage".into(), int4_storage_text(c, report)));
    }
    if !c.keep_float.is_empty() {
        out.push(("kept float".into(), c.keep_float.join(", ")));
    }
    if let Some(o) = c.opset {
        out.push(("opset asked".into(), o.to_string()));
    }
}

/// "min–max over 23 samples (200 asked: the calibration split has 23)": the samples used.
fn calibration_text(c: &QuantConfig, report: Option<&quantbench::quant::QuantizeReport>) -> String {
    let method = words::calibration(&c.calibration);
    match report.map(|r| r.calibration_samples) {
        Some(0) => format!("{method}, ranges reused from the experiment varied"),
        Some(used) if used < c.samples => format!(
            "{method} over {used} samples ({} asked: the calibration data has {used})",
            c.samples
        ),
        Some(used) => format!("{method} over {used} samples"),
        None => format!("{method}, up to {} samples", c.samples),
    }
}

/// How the 4-bit weights are stored in the file written, and what that means for its size.
fn int4_storage_text(
    c: &QuantConfig,
    report: Option<&quantbench::quant::QuantizeReport>,
) -> String {
    match report.map(|r| r.opset) {
        Some(o) if o >= 21 && c.int4_storage != Int4Storage::Int8Container => {
            "ONNX INT4 tensors (opset 21): half the size of int8; tract cannot load them".into()
        }
        Some(o) => format!(
            "in int8 tensors ({}opset {o}): the file is as large as with int8 weights",
            if c.int4_storage == Int4Storage::Int8Container {
                "as asked; "
            } else {
                "the model's opset is below 21; "
            }
        ),
        None => words::int4_storage(c.int4_storage).into(),
    }
}

/// Where `e` stores 4-bit weights in int8 tensors: why its file is as large as int8's, and a
/// variant with ONNX INT4 storage where ONNX Runtime (which runs it) is measured.
fn int4_offer(ui: &mut egui::Ui, ctx: &AppCtx, e: &Experiment, backends: &[String]) {
    if !int4_in_int8(e) {
        return;
    }
    ui.add(
        egui::Label::new(format!(
            "{}: its 4-bit weights are stored in int8 tensors, so the file is no smaller than \
             int8's.",
            e.name
        ))
        .wrap(),
    );
    if backends.iter().any(|b| b == "ort") {
        if ui
            .button("Add an ONNX INT4 variant")
            .on_hover_text(
                "The same weights in ONNX INT4 tensors (opset 21): half the size. ONNX Runtime \
                 runs it; tract cannot load it.",
            )
            .clicked()
        {
            ctx.commands.send(super::AppCommand::Vary {
                experiment: e.id,
                change: super::commands::Variation::OnnxInt4,
            });
        }
    } else {
        ui.add(
            egui::Label::new(
                egui::RichText::new(
                    "ONNX INT4 storage (opset 21) halves it, for ONNX Runtime, which is not \
                     found here.",
                )
                .weak(),
            )
            .wrap(),
        );
    }
}

/// Whether `e` stores 4-bit weights in int8 tensors, where ONNX INT4 would halve its file.
fn int4_in_int8(e: &Experiment) -> bool {
    let Some(c) = &e.config else { return false };
    c.mode == Mode::Int4Weights
        && c.int4_storage != Int4Storage::OnnxInt4
        && e.result.quantize.as_ref().is_some_and(|r| r.opset < 21)
}

fn rows(e: &Experiment, backends: &[String]) -> Vec<(String, String)> {
    let opt = |v: Option<f64>, d: usize| match v {
        Some(v) if v.is_infinite() => "exact".to_string(),
        Some(v) => format!("{v:.d$}"),
        None => "–".to_string(),
    };
    let mut out = vec![];
    match &e.config {
        None => out.push(("mode".to_string(), "float (the reference)".to_string())),
        Some(c) => settings_rows(e, c, &mut out),
    }
    out.push((
        "file size".into(),
        quantbench::onnx::inspect::human_bytes(e.result.size_bytes),
    ));
    if let Some(q) = &e.result.quantize {
        out.push(("opset written".into(), q.opset.to_string()));
    }
    for b in backends {
        let r = e.result.eval(b);
        if let Some(n) = r.map(|r| r.samples) {
            out.push((format!("{b}: evaluated on"), format!("{n} samples")));
        }
        out.push((format!("{b}: top-1"), opt(r.and_then(|r| r.top1), 4)));
        out.push((
            format!("{b}: agreement with float"),
            opt(r.and_then(|r| r.agreement), 4),
        ));
        out.push((
            format!("{b}: output SQNR (dB)"),
            opt(r.and_then(|r| r.sqnr_db), 2),
        ));
        out.push((format!("{b}: cosine"), opt(r.and_then(|r| r.cosine), 5)));
        out.push((
            format!("{b}: p50 latency"),
            e.result.bench(b).map_or("–".into(), |x| x.p50_text()),
        ));
    }
    out
}

fn pick(
    ui: &mut egui::Ui,
    id: &str,
    label: egui::Id,
    slot: &mut Option<ExperimentId>,
    session: &Session,
) {
    let text = slot
        .and_then(|id| session.get(id))
        .map(|e| e.name.clone())
        .unwrap_or("choose…".into());
    egui::ComboBox::from_id_salt(id)
        .selected_text(text)
        .width(190.0)
        .show_ui(ui, |ui| {
            for e in &session.experiments {
                ui.selectable_value(slot, Some(e.id), format!("{}: {}", e.id, e.name));
            }
        })
        .response
        .labelled_by(label);
}

impl CompareView {
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &AppCtx) {
        let Self { a, b, b_picked } = self;
        let Some(session) = ctx.session else { return };
        // Defaults: the float baseline against the selected (or the last finished) experiment.
        if a.is_none_or(|id| session.get(id).is_none()) {
            *a = session.float().map(|e| e.id);
        }
        if !*b_picked || b.is_none_or(|id| session.get(id).is_none()) {
            *b = ctx.selected.or_else(|| {
                session
                    .experiments
                    .iter()
                    .rfind(|e| e.is_done() && e.config.is_some())
                    .map(|e| e.id)
            });
        }
        ui.horizontal(|ui| {
            let title = ui.strong("Compare");
            pick(ui, "compare_a", title.id, a, session);
            let with = ui.label("with");
            let before = *b;
            pick(ui, "compare_b", with.id, b, session);
            if *b != before {
                *b_picked = true;
            }
            if *b_picked && ui.small_button("follow selection").clicked() {
                *b_picked = false;
            }
        });
        let (Some(ea), Some(eb)) = (
            a.and_then(|id| session.get(id)),
            b.and_then(|id| session.get(id)),
        ) else {
            ui.weak("Choose two experiments.");
            return;
        };
        let mut backends: Vec<String> = ea
            .result
            .evals
            .iter()
            .chain(&eb.result.evals)
            .map(|v| v.backend.clone())
            .collect();
        backends.sort();
        backends.dedup();
        for e in [ea, eb] {
            int4_offer(ui, ctx, e, &backends);
        }
        let (ra, rb) = (rows(ea, &backends), rows(eb, &backends));
        // Each value elided to half of what the key column leaves (whole on hover).
        let value_width = ((ui.available_width() - 230.0) / 2.0).max(140.0);
        egui::ScrollArea::vertical()
            .id_salt("compare_rows")
            .auto_shrink([false, true])
            .show(ui, |ui| {
                super::table::scrolled(ui, |ui| {
                    egui::Grid::new("compare_grid")
                        .striped(true)
                        .num_columns(3)
                        .show(ui, |ui| {
                            ui.strong("");
                            ui.strong(&ea.name);
                            ui.strong(&eb.name);
                            ui.end_row();
                            // Every row either side has: the first's, then what only the second has.
                            let mut keys: Vec<&String> = ra.iter().map(|(k, _)| k).collect();
                            for (k, _) in &rb {
                                if !keys.contains(&k) {
                                    keys.push(k);
                                }
                            }
                            let value = |rows: &[(String, String)], key: &str| {
                                rows.iter()
                                    .find(|(k, _)| k == key)
                                    .map(|(_, v)| v.clone())
                                    .unwrap_or("–".into())
                            };
                            for key in keys {
                                let (va, vb) = (value(&ra, key), value(&rb, key));
                                ui.label(key);
                                let differ = va != vb;
                                for v in [&va, &vb] {
                                    let (text, cut) = super::table::elided(ui, v, value_width);
                                    let text = if differ {
                                        text.color(ui.visuals().warn_fg_color).strong()
                                    } else {
                                        text
                                    };
                                    let shown = ui.add(egui::Label::new(text).selectable(false));
                                    if cut {
                                        shown.on_hover_text(v.as_str());
                                    }
                                }
                                ui.end_row();
                            }
                        });
                })
            });
    }
}

#[cfg(test)]
mod tests {
    use quantbench::quant::{Mode, QuantConfig};
    use quantbench::session::Experiment;

    fn rows_of(config: QuantConfig) -> Vec<(String, String)> {
        super::rows(&Experiment::quantized(config), &[])
    }

    fn get(rows: &[(String, String)], k: &str) -> Option<String> {
        rows.iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
    }

    /// int8 lists every setting it has, in words; a weight-only mode has no activation or
    /// calibration rows (they do not apply); no Rust name anywhere.
    #[test]
    fn the_settings_that_apply_in_words() {
        let int8 = rows_of(QuantConfig {
            reduce_range: true,
            opset: Some(21),
            ops: vec!["Conv".into(), "MatMul".into()],
            target: quantbench::quant::Target::TensorRt,
            cle: true,
            keep_float: vec!["Conv.3".into()],
            bias_correction: Some(quantbench::quant::BiasCorrection::Full),
            ..Default::default()
        });
        assert_eq!(
            get(&int8, "weight range").unwrap(),
            "7 bits (int8 kernels without VNNI saturate at 8)"
        );
        assert_eq!(get(&int8, "quantized ops").unwrap(), "Conv, MatMul");
        assert_eq!(get(&int8, "for").unwrap(), "TensorRT");
        assert_eq!(get(&int8, "cross-layer equalization").unwrap(), "yes");
        assert_eq!(get(&int8, "bias correction").unwrap(), "full");
        assert_eq!(get(&int8, "opset asked").unwrap(), "21");
        assert_eq!(get(&int8, "kept float").unwrap(), "Conv.3");
        assert_eq!(get(&int8, "activations").unwrap(), "unsigned 8-bit (0…255)");
        assert_eq!(
            get(&int8, "calibration").unwrap(),
            format!("min–max, up to {} samples", QuantConfig::default().samples)
        );
        let weights = rows_of(QuantConfig {
            mode: Mode::Int8Weights,
            ..Default::default()
        });
        for absent in [
            "activations",
            "calibration",
            "symmetry",
            "quantized ops",
            "AdaRound",
        ] {
            assert_eq!(get(&weights, absent), None, "{weights:?}");
        }
        assert_eq!(
            get(&weights, "mode").unwrap(),
            "int8 weights, float compute"
        );
        for (_, v) in int8.iter().chain(&weights) {
            for rust in [
                "WeightsOnly",
                "Uint8",
                "Int8Weights",
                "OrtCpu",
                "Some(",
                "None",
            ] {
                assert!(!v.contains(rust), "{v}");
            }
        }
    }
}
