//! Two experiments side by side: every setting and every figure, differences highlighted.

use eframe::egui;

use super::context::AppCtx;
use quantbench::session::{Experiment, ExperimentId, Session};

#[derive(Default)]
pub struct CompareView {
    a: Option<ExperimentId>,
    b: Option<ExperimentId>,
    /// Once the user picks the second experiment, it no longer follows the selection.
    b_picked: bool,
}

fn rows(e: &Experiment, backends: &[String]) -> Vec<(String, String)> {
    let opt = |v: Option<f64>, d: usize| match v {
        Some(v) if v.is_infinite() => "inf".to_string(),
        Some(v) => format!("{v:.d$}"),
        None => "–".to_string(),
    };
    let mut out = vec![];
    match &e.config {
        None => out.push(("mode".to_string(), "float (baseline)".to_string())),
        Some(c) => {
            out.push(("mode".into(), c.mode.cli_name().into()));
            out.push((
                "weights".into(),
                if c.per_channel {
                    "per-channel"
                } else {
                    "per-tensor"
                }
                .into(),
            ));
            out.push(("symmetry".into(), format!("{:?}", c.symmetry)));
            out.push(("activations".into(), format!("{:?}", c.activations)));
            out.push((
                "calibration".into(),
                format!("{} ({} samples)", c.calibration, c.samples),
            ));
            out.push((
                "kept float".into(),
                if c.keep_float.is_empty() {
                    "–".into()
                } else {
                    c.keep_float.join(", ")
                },
            ));
            out.push((
                "reduce range".into(),
                if c.reduce_range { "yes (7-bit)" } else { "no" }.into(),
            ));
            out.push(("target".into(), c.target.cli_name().into()));
            out.push((
                "cross-layer equalization".into(),
                if c.cle { "yes" } else { "no" }.into(),
            ));
            out.push((
                "AdaRound".into(),
                if c.adaround { "yes" } else { "no" }.into(),
            ));
            out.push((
                "bias correction".into(),
                match c.bias_correction {
                    None => "no",
                    Some(quantbench::quant::BiasCorrection::Fast) => "fast",
                    Some(quantbench::quant::BiasCorrection::Full) => "full",
                }
                .into(),
            ));
            out.push(("ops".into(), c.ops.join(", ")));
            out.push((
                "int4 blocks".into(),
                c.int4_block_size
                    .map_or("–".into(), |b| format!("{b} ({:?})", c.int4_storage)),
            ));
            out.push((
                "opset asked".into(),
                c.opset.map_or("model's".into(), |o| o.to_string()),
            ));
        }
    }
    out.push((
        "size".into(),
        quantbench::onnx::inspect::human_bytes(e.result.size_bytes),
    ));
    if let Some(q) = &e.result.quantize {
        out.push(("opset written".into(), q.opset.to_string()));
    }
    for b in backends {
        let r = e.result.eval(b);
        out.push((format!("{b} top-1"), opt(r.and_then(|r| r.top1), 4)));
        out.push((
            format!("{b} agreement"),
            opt(r.and_then(|r| r.agreement), 4),
        ));
        out.push((format!("{b} SQNR dB"), opt(r.and_then(|r| r.sqnr_db), 2)));
        out.push((format!("{b} cosine"), opt(r.and_then(|r| r.cosine), 5)));
        out.push((
            format!("{b} p50 ms"),
            opt(e.result.bench(b).map(|x| x.p50_ms), 3),
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
        let (ra, rb) = (rows(ea, &backends), rows(eb, &backends));
        egui::ScrollArea::vertical()
            .id_salt("compare_rows")
            .auto_shrink([false, true])
            .show(ui, |ui| {
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
                            if va != vb {
                                let hl = ui.visuals().warn_fg_color;
                                ui.label(egui::RichText::new(&va).color(hl).strong());
                                ui.label(egui::RichText::new(&vb).color(hl).strong());
                            } else {
                                ui.label(&va);
                                ui.label(&vb);
                            }
                            ui.end_row();
                        }
                    });
            });
    }
}

#[cfg(test)]
mod tests {
    use quantbench::quant::QuantConfig;
    use quantbench::session::Experiment;

    /// Every setting of the config is a row, so two experiments differing only in it show it.
    #[test]
    fn every_setting_is_listed() {
        let e = Experiment::quantized(QuantConfig {
            reduce_range: true,
            int4_block_size: Some(32),
            opset: Some(21),
            ops: vec!["Conv".into(), "MatMul".into()],
            target: quantbench::quant::Target::TensorRt,
            cle: true,
            bias_correction: Some(quantbench::quant::BiasCorrection::Full),
            ..Default::default()
        });
        let rows = super::rows(&e, &[]);
        let get = |k: &str| {
            rows.iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no row '{k}': {rows:?}"))
        };
        assert_eq!(get("reduce range"), "yes (7-bit)");
        assert_eq!(get("ops"), "Conv, MatMul");
        assert_eq!(get("target"), "tensorrt");
        assert_eq!(get("cross-layer equalization"), "yes");
        assert_eq!(get("bias correction"), "full");
        assert!(get("int4 blocks").starts_with("32"));
        assert_eq!(get("opset asked"), "21");
        for k in [
            "mode",
            "weights",
            "symmetry",
            "activations",
            "calibration",
            "kept float",
        ] {
            get(k);
        }
    }
}
