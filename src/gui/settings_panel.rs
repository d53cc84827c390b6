//! Editing one `QuantConfig`, validated as you type, with the reason beside the field.

use eframe::egui;

use super::context::AppCtx;
use quantbench::host::Machine;
use quantbench::quant::{
    ActivationType, BiasCorrection, Calibration, Int4Storage, Mode, QuantConfig, Symmetry, Target,
};

/// Op types offered as checkboxes (others can be typed): the defaults.
fn common_ops() -> impl Iterator<Item = &'static str> {
    quantbench::quant::config::DEFAULT_OPS.into_iter()
}

pub struct SettingsPanel {
    pub config: QuantConfig,
    samples_text: String,
    percentile_text: String,
    block_text: String,
    keep_text: String,
    extra_ops_text: String,
    /// Per-field parse or validation errors: (field, reason).
    errors: Vec<(&'static str, String)>,
    /// This CPU (its int8 instruction sets decide what a target's defaults are).
    pub machine: Machine,
    /// Why the chosen target set what it set.
    target_why: Vec<String>,
}

impl Default for SettingsPanel {
    fn default() -> Self {
        let machine = quantbench::host::detect();
        // What the CLI and the standard preset start from: the default config as its target
        // sets it on this CPU.
        let (config, target_why) = QuantConfig::recommended(&machine);
        let mut p = SettingsPanel {
            config,
            samples_text: String::new(),
            percentile_text: Calibration::DEFAULT_PERCENTILE.to_string(),
            block_text: String::new(),
            keep_text: String::new(),
            extra_ops_text: String::new(),
            errors: vec![],
            machine,
            target_why,
        };
        p.sync_text();
        p
    }
}

impl SettingsPanel {
    /// Refreshes the text fields from the config (after it changed elsewhere).
    pub fn sync_text(&mut self) {
        self.samples_text = self.config.samples.to_string();
        self.keep_text = self.config.keep_float.join(", ");
        if let Some(b) = self.config.int4_block_size {
            self.block_text = b.to_string();
        }
        self.extra_ops_text = self
            .config
            .ops
            .iter()
            .filter(|o| !common_ops().any(|c| c == o.as_str()))
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
    }

    /// The first reason the settings cannot be used, if any.
    pub fn first_error(&self) -> Option<String> {
        self.errors.first().map(|(f, e)| {
            if e.starts_with(f) {
                e.clone()
            } else {
                format!("{f}: {e}")
            }
        })
    }

    fn error_for(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, e)| e.as_str())
    }

    /// A grid row with the field's error under it, only when there is one.
    fn error_row(&self, ui: &mut egui::Ui, field: &str) {
        if let Some(e) = self.error_for(field) {
            ui.label("");
            ui.colored_label(ui.visuals().error_fg_color, e);
            ui.end_row();
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &AppCtx) {
        self.errors.clear();
        let mut c = self.config.clone();
        egui::Grid::new("settings")
            .num_columns(2)
            .spacing([8.0, 6.0])
            .show(ui, |ui| {
                self.mode_and_target(ui, &mut c);
                recovery(ui, &mut c);
                let l = ui.label("Symmetry");
                egui::ComboBox::from_id_salt("symmetry")
                    .selected_text(symmetry_name(c.symmetry))
                    .show_ui(ui, |ui| {
                        for s in [Symmetry::WeightsOnly, Symmetry::All, Symmetry::None] {
                            ui.selectable_value(&mut c.symmetry, s, symmetry_name(s));
                        }
                    })
                    .response
                    .labelled_by(l.id);
                ui.end_row();
                if c.mode == Mode::Int8 {
                    self.activation_rows(ui, &mut c);
                }
                if c.mode == Mode::Int4Weights {
                    self.int4_rows(ui, &mut c);
                }
                if c.mode != Mode::Fp16 {
                    self.ops_row(ui, &mut c);
                }
                self.keep_float_row(ui, ctx, &mut c);
            });
        if let Err(e) = c.validate() {
            let text = e.to_string();
            let field = ["calibration", "samples", "int4_block_size", "opset", "ops"]
                .into_iter()
                .find(|f| text.starts_with(&format!("{f}:")))
                .unwrap_or("config");
            if self.error_for(field).is_none() {
                self.errors.push((field, text));
            }
        }
        self.config = c;
        for (field, e) in &self.errors {
            if ![
                "calibration",
                "samples",
                "int4_block_size",
                "keep_float",
                "ops",
            ]
            .contains(field)
            {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
        }
        ui.weak(format!("label: {}", self.config.label()));
    }

    /// Mode and target, with why the target set what it set.
    fn mode_and_target(&mut self, ui: &mut egui::Ui, c: &mut QuantConfig) {
        let l = ui.label("Mode");
        egui::ComboBox::from_id_salt("mode")
            .selected_text(super::words::mode(c.mode))
            .width(230.0)
            .show_ui(ui, |ui| {
                for m in Mode::ALL {
                    ui.selectable_value(&mut c.mode, m, super::words::mode(m));
                }
            })
            .response
            .labelled_by(l.id);
        ui.end_row();

        let l = ui.label("Target");
        let mut target = c.target;
        egui::ComboBox::from_id_salt("target")
            .selected_text(super::words::target(target))
            .width(230.0)
            .show_ui(ui, |ui| {
                for t in Target::ALL {
                    ui.selectable_value(&mut target, t, super::words::target(t));
                }
            })
            .response
            .labelled_by(l.id)
            .on_hover_text(
                "The runtime the model is for: sets the defaults that run exactly there on this CPU",
            );
        if target != c.target {
            self.target_why = c.apply_target(target, &self.machine);
        }
        ui.end_row();
        let hint = if c.target == Target::Generic
            && is_int8_family(c.mode)
            && !self.machine.has_vnni()
            && self.machine.os.ends_with("x86_64")
        {
            vec!["This CPU has no VNNI: ONNX Runtime's int8 kernels saturate on it. For ONNX Runtime, choose target ort-cpu (7-bit weights).".to_string()]
        } else if c.target == target {
            self.target_why.clone()
        } else {
            vec![]
        };
        for why in hint {
            ui.label("");
            ui.add(egui::Label::new(egui::RichText::new(why).weak()).wrap());
            ui.end_row();
        }
    }

    /// int8's activation type, calibration method and samples.
    fn activation_rows(&mut self, ui: &mut egui::Ui, c: &mut QuantConfig) {
        ui.label("Activations");
        ui.horizontal(|ui| {
            ui.radio_value(&mut c.activations, ActivationType::Uint8, "uint8");
            ui.radio_value(&mut c.activations, ActivationType::Int8, "int8");
        });
        ui.end_row();

        let cal_label = ui.label("Calibration");
        ui.vertical(|ui| self.calibration_choice(ui, cal_label.id, c));
        ui.end_row();
        self.error_row(ui, "calibration");

        let l = ui.label("Samples");
        ui.add(egui::TextEdit::singleline(&mut self.samples_text).desired_width(70.0))
            .labelled_by(l.id);
        match self.samples_text.trim().parse::<usize>() {
            Ok(n) => c.samples = n,
            Err(_) => self.errors.push((
                "samples",
                format!("'{}' is not a whole number", self.samples_text.trim()),
            )),
        }
        ui.end_row();
        self.error_row(ui, "samples");
    }

    fn calibration_choice(&mut self, ui: &mut egui::Ui, label: egui::Id, c: &mut QuantConfig) {
        let current = match c.calibration {
            Calibration::MinMax => 0,
            Calibration::Percentile(_) => 1,
            Calibration::Entropy => 2,
            Calibration::Mse => 3,
            Calibration::MeanMinMax => 4,
        };
        const NAMES: [&str; 5] = [
            "min-max",
            "percentile",
            "entropy (KL)",
            "MSE",
            "mean of per-sample min-max",
        ];
        let mut choice = current;
        egui::ComboBox::from_id_salt("calibration")
            .selected_text(NAMES[current])
            .show_ui(ui, |ui| {
                for (i, name) in NAMES.iter().enumerate() {
                    ui.selectable_value(&mut choice, i, *name);
                }
            })
            .response
            .labelled_by(label);
        if choice == 1 {
            ui.horizontal(|ui| {
                let l = ui.label("percentile");
                ui.add(egui::TextEdit::singleline(&mut self.percentile_text).desired_width(70.0))
                    .labelled_by(l.id);
            });
        }
        let percentile = self.percentile_text.trim().parse::<f64>();
        c.calibration = match choice {
            1 => Calibration::Percentile(
                percentile
                    .as_ref()
                    .copied()
                    .unwrap_or(Calibration::DEFAULT_PERCENTILE),
            ),
            2 => Calibration::Entropy,
            3 => Calibration::Mse,
            4 => Calibration::MeanMinMax,
            _ => Calibration::MinMax,
        };
        if choice == 1 && percentile.is_err() {
            self.errors.push((
                "calibration",
                format!("'{}' is not a number", self.percentile_text.trim()),
            ));
        }
    }

    fn int4_rows(&mut self, ui: &mut egui::Ui, c: &mut QuantConfig) {
        let l = ui.label("int4 blocks");
        ui.horizontal(|ui| {
            ui.add(
                egui::TextEdit::singleline(&mut self.block_text)
                    .hint_text("none: per channel")
                    .desired_width(90.0),
            )
            .labelled_by(l.id);
            let t = self.block_text.trim();
            c.int4_block_size = if t.is_empty() {
                None
            } else {
                match t.parse::<usize>() {
                    Ok(b) => Some(b),
                    Err(_) => {
                        self.errors
                            .push(("int4_block_size", format!("'{t}' is not a whole number")));
                        c.int4_block_size
                    }
                }
            };
        });
        ui.end_row();
        self.error_row(ui, "int4_block_size");
        let l = ui.label("int4 storage");
        egui::ComboBox::from_id_salt("int4_storage")
            .selected_text(super::words::int4_storage(c.int4_storage))
            .width(230.0)
            .show_ui(ui, |ui| {
                for s in [
                    Int4Storage::Auto,
                    Int4Storage::Int8Container,
                    Int4Storage::OnnxInt4,
                ] {
                    ui.selectable_value(&mut c.int4_storage, s, super::words::int4_storage(s));
                }
            })
            .response
            .labelled_by(l.id);
        ui.end_row();
    }

    fn ops_row(&mut self, ui: &mut egui::Ui, c: &mut QuantConfig) {
        ui.label("Quantize ops");
        ui.vertical(|ui| {
            ui.horizontal_wrapped(|ui| {
                for op in common_ops() {
                    let mut on = c.ops.iter().any(|o| o == op);
                    if ui.checkbox(&mut on, op).changed() {
                        if on {
                            c.ops.push(op.to_string());
                        } else {
                            c.ops.retain(|o| o != op);
                        }
                    }
                }
            });
            ui.horizontal(|ui| {
                let l = ui.label("more");
                ui.add(
                    egui::TextEdit::singleline(&mut self.extra_ops_text)
                        .hint_text("e.g. Resize, Sigmoid")
                        .desired_width(150.0),
                )
                .labelled_by(l.id);
            });
            let extra: Vec<String> = self
                .extra_ops_text
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            c.ops.retain(|o| common_ops().any(|c| c == o.as_str()));
            c.ops.extend(extra);
        });
        ui.end_row();
        self.error_row(ui, "ops");
    }

    fn keep_float_row(&mut self, ui: &mut egui::Ui, ctx: &AppCtx, c: &mut QuantConfig) {
        let l = ui.label("Keep in float");
        ui.add(
            egui::TextEdit::singleline(&mut self.keep_text)
                .hint_text("node names or op types, comma-separated"),
        )
        .labelled_by(l.id);
        c.keep_float = self
            .keep_text
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        ui.end_row();
        if let Some(model) = ctx.model {
            let unknown: Vec<&str> = c
                .keep_float
                .iter()
                .filter(|k| {
                    !model
                        .summary
                        .nodes
                        .iter()
                        .any(|n| n.name == **k || n.op_type == **k)
                })
                .map(|s| s.as_str())
                .collect();
            if !unknown.is_empty() {
                self.errors.push((
                    "keep_float",
                    format!("not in this model: {}", unknown.join(", ")),
                ));
            }
        }
        self.error_row(ui, "keep_float");
    }
}

fn is_int8_family(mode: Mode) -> bool {
    matches!(mode, Mode::Int8 | Mode::Int8Weights | Mode::Int8Dynamic)
}

/// Granularity, reduce range and the recovery algorithms that apply to the mode.
fn recovery(ui: &mut egui::Ui, c: &mut QuantConfig) {
    ui.label("Weights");
    ui.horizontal(|ui| {
        ui.radio_value(&mut c.per_channel, false, "per-tensor");
        ui.radio_value(&mut c.per_channel, true, "per-channel");
    });
    ui.end_row();
    if is_int8_family(c.mode) {
        ui.label("");
        ui.checkbox(&mut c.reduce_range, "reduce range (7-bit weights)")
            .on_hover_text(
                "Exact on CPUs without VNNI, where ONNX Runtime's int8 kernels saturate",
            );
        ui.end_row();
    }
    if c.mode != Mode::Fp16 {
        ui.label("Recovery");
        ui.checkbox(&mut c.cle, "cross-layer equalization")
            .on_hover_text("Rescale Conv pairs joined by ReLU, ReLU6 or MaxPool so that channel weight ranges even out; the float model computes the same");
        ui.end_row();
    }
    if matches!(c.mode, Mode::Int8 | Mode::Int8Weights | Mode::Int4Weights) {
        ui.label("");
        ui.checkbox(&mut c.adaround, "AdaRound (learned rounding)")
            .on_hover_text("Round each weight up or down as minimizes its layer's output error on the calibration data, instead of to nearest");
        ui.end_row();
    } else {
        c.adaround = false;
    }
    if c.mode == Mode::Int8 {
        let l = ui.label("Bias correction");
        let name = |b: Option<BiasCorrection>| match b {
            None => "off",
            Some(BiasCorrection::Fast) => "fast (each layer alone)",
            Some(BiasCorrection::Full) => "full (in the quantized model)",
        };
        egui::ComboBox::from_id_salt("bias_correction")
            .selected_text(name(c.bias_correction))
            .show_ui(ui, |ui| {
                for b in [None, Some(BiasCorrection::Fast), Some(BiasCorrection::Full)] {
                    ui.selectable_value(&mut c.bias_correction, b, name(b));
                }
            })
            .response
            .labelled_by(l.id);
        ui.end_row();
    } else {
        c.bias_correction = None;
    }
}

fn symmetry_name(s: Symmetry) -> &'static str {
    match s {
        Symmetry::WeightsOnly => "weights symmetric",
        Symmetry::All => "all symmetric",
        Symmetry::None => "all asymmetric",
    }
}
