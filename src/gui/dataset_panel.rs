//! The dataset: where samples come from (a folder of images, a CSV, `.npy`/`.npz`, ONNX test
//! data, a description, or synthetic inputs), how they are preprocessed (presets, editable),
//! a preview of a few decoded samples as the model will see them, and saving the choice as a
//! description.

use std::path::PathBuf;

use eframe::egui;

use super::context::AppCtx;
use super::AppCommand;
use quantbench::data::infer::Preset;
use quantbench::data::{Color, Dataset, DatasetDesc, Layout, Source, ValueScale};

#[derive(Default)]
pub struct DatasetPanel {
    path_text: String,
    save_text: String,
    /// The description being edited; applied with the button.
    draft: Option<DatasetDesc>,
    fields: Fields,
}

/// The preprocessing fields as typed, and what is wrong with them.
#[derive(Default)]
struct Fields {
    resize_to: String,
    resize: String,
    letterbox: String,
    pad_width: String,
    crop: String,
    mean: String,
    std: String,
    errors: Vec<String>,
}

fn parse_hw(t: &str) -> Option<(u32, u32)> {
    t.split_once(['x', 'X'])
        .and_then(|(h, w)| Some((h.trim().parse().ok()?, w.trim().parse().ok()?)))
}

/// An optional HxW field: empty is none; anything else must parse, else an error is noted.
fn hw_field(text: &str, what: &str, errors: &mut Vec<String>) -> Option<(u32, u32)> {
    match text.trim() {
        "" => None,
        t => {
            let hw = parse_hw(t);
            if hw.is_none() {
                errors.push(format!("{what}: '{t}' is not HxW, e.g. 48x320"));
            }
            hw
        }
    }
}

fn hw_text(hw: Option<(u32, u32)>) -> String {
    hw.map(|(h, w)| format!("{h}x{w}")).unwrap_or_default()
}

fn floats(text: &str) -> Result<Vec<f32>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<f32>()
                .map_err(|_| format!("'{s}' is not a number"))
        })
        .collect()
}

impl DatasetPanel {
    /// Loads a description into the editor.
    pub fn edit(&mut self, desc: &DatasetDesc) {
        let p = &desc.preprocess;
        let join = |v: &[f32]| {
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        self.fields = Fields {
            resize_to: hw_text(p.resize_to),
            resize: p.resize_shorter.map(|r| r.to_string()).unwrap_or_default(),
            letterbox: hw_text(p.letterbox),
            pad_width: hw_text(p.pad_to_width),
            crop: hw_text(p.center_crop),
            mean: join(&p.mean),
            std: join(&p.std),
            errors: vec![],
        };
        self.draft = Some(desc.clone());
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &AppCtx) {
        let Self {
            path_text,
            save_text,
            draft,
            fields,
        } = self;
        source_rows(ui, ctx, path_text);
        let Some(loaded) = ctx.dataset else {
            ui.label("No dataset: int8 needs calibration data, evaluation needs samples.");
            return;
        };
        summary(ui, loaded);
        ui.horizontal(|ui| {
            let l = ui.label("Save description as");
            let edit = ui
                .add(
                    egui::TextEdit::singleline(save_text)
                        .hint_text("dataset.ron")
                        .desired_width(130.0),
                )
                .labelled_by(l.id);
            let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            let path = save_text.trim();
            let save = ui
                .add_enabled(!path.is_empty(), egui::Button::new("Save"))
                .clicked();
            if (save || enter) && !path.is_empty() {
                ctx.commands
                    .send(AppCommand::SaveDatasetDesc(PathBuf::from(path)));
            }
        });
        let pixels = matches!(
            loaded.dataset.desc.source,
            Source::Csv { .. } | Source::ImageFolder { .. }
        );
        if !pixels {
            ui.small("Tensors are fed as they are: no preprocessing.");
            return;
        }
        fields.errors.clear();
        let Some(draft) = draft.as_mut() else {
            return;
        };
        let is_image_folder = matches!(draft.source, Source::ImageFolder { .. });
        let chosen_preset = egui::Grid::new("preprocess")
            .num_columns(2)
            .show(ui, |ui| preprocess_grid(ui, fields, draft, is_image_folder))
            .inner;
        fields.read_into(&mut draft.preprocess, chosen_preset);
        for e in &fields.errors {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        let changed = *draft != loaded.dataset.desc;
        // A preset chosen applies at once; typed fields wait for the button.
        let apply = ui
            .add_enabled(
                changed && fields.errors.is_empty(),
                egui::Button::new("Apply preprocessing"),
            )
            .on_disabled_hover_text(if changed {
                "fix the fields in red first"
            } else {
                "nothing changed: edit a field or choose a preset"
            })
            .clicked();
        if (apply || chosen_preset.is_some()) && changed && fields.errors.is_empty() {
            ctx.commands
                .send(AppCommand::ApplyDatasetDesc(Box::new(draft.clone())));
        }
    }
}

/// Where the data comes from: a typed path, a folder, a file, or synthetic inputs.
fn source_rows(ui: &mut egui::Ui, ctx: &AppCtx, path_text: &mut String) {
    ui.horizontal(|ui| {
        let l = ui.label("Data");
        let edit = ui
            .add(
                egui::TextEdit::singleline(path_text)
                    .hint_text("folder, .csv, .npz, .ron or synthetic")
                    .desired_width(170.0),
            )
            .labelled_by(l.id);
        let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        if (ui.button("Open").clicked() || enter) && !path_text.trim().is_empty() {
            ctx.commands
                .send(AppCommand::OpenDataset(PathBuf::from(path_text.trim())));
        }
    });
    ui.horizontal(|ui| {
        if ui
            .button("Folder…")
            .on_hover_text(
                "A folder of images (class sub-folders give labels), or of test_data_set_* folders",
            )
            .clicked()
        {
            ctx.commands
                .send(AppCommand::AskPath(super::dialogs::PathPurpose::DataFolder));
        }
        if ui.button("File…").clicked() {
            ctx.commands
                .send(AppCommand::AskPath(super::dialogs::PathPurpose::DataFile));
        }
        if ui
            .button("Synthetic")
            .on_hover_text("Random inputs of the model's types and shapes: fidelity only")
            .clicked()
        {
            ctx.commands.send(AppCommand::OpenDataset(PathBuf::from(
                quantbench::data::infer::SYNTHETIC,
            )));
        }
    });
}

/// What is open: its name, sample count, labels, notes, mismatch and previews.
fn summary(ui: &mut egui::Ui, loaded: &super::context::LoadedDataset) {
    ui.label(format!(
        "{}: {} samples{}",
        loaded
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| loaded.path.display().to_string()),
        loaded.dataset.len(),
        if loaded.dataset.is_synthetic() {
            ", SYNTHETIC (random inputs: fidelity only)"
        } else if loaded.dataset.has_labels() {
            ", labelled"
        } else {
            ", no labels"
        }
    ));
    for n in &loaded.notes {
        ui.small(n);
    }
    if let Some(m) = &loaded.mismatch {
        ui.colored_label(ui.visuals().error_fg_color, format!("{m:#}"));
    }
    ui.horizontal_wrapped(|ui| {
        for (texture, caption) in &loaded.previews {
            ui.vertical(|ui| {
                ui.add(egui::Image::new(texture).fit_to_exact_size(egui::vec2(64.0, 64.0)));
                ui.small(caption);
            });
        }
    });
}

/// A text field in the grid, with its label.
fn field(
    ui: &mut egui::Ui,
    label: &str,
    text: &mut String,
    hint: &str,
    width: f32,
) -> egui::Response {
    let l = ui.label(label);
    let r = ui
        .add(
            egui::TextEdit::singleline(text)
                .hint_text(hint)
                .desired_width(width),
        )
        .labelled_by(l.id);
    ui.end_row();
    r
}

/// The preprocessing rows; the preset chosen in this frame, if one.
fn preprocess_grid(
    ui: &mut egui::Ui,
    fields: &mut Fields,
    draft: &mut DatasetDesc,
    is_image_folder: bool,
) -> Option<Preset> {
    let p = &mut draft.preprocess;
    let mut chosen_preset = None;
    let l = ui.label("Preset");
    let current = Preset::matching(p)
        .map(|p| p.describe())
        .unwrap_or("custom");
    egui::ComboBox::from_id_salt("preset")
        .selected_text(current)
        .show_ui(ui, |ui| {
            for preset in Preset::ALL {
                if ui.selectable_label(false, preset.describe()).clicked() {
                    chosen_preset = Some(preset);
                }
            }
        })
        .response
        .labelled_by(l.id);
    ui.end_row();
    field(ui, "Resize to (HxW)", &mut fields.resize_to, "none", 80.0);
    field(ui, "Resize shorter side", &mut fields.resize, "none", 60.0);
    field(
        ui,
        "Letterbox into (HxW)",
        &mut fields.letterbox,
        "none",
        80.0,
    )
    .on_hover_text("keep the aspect ratio, fit inside, pad around (detectors)");
    field(
        ui,
        "Text line: pad to (HxW)",
        &mut fields.pad_width,
        "none",
        80.0,
    )
    .on_hover_text("resize to height H keeping the aspect ratio, pad on the right to W");
    field(ui, "Centre crop (HxW)", &mut fields.crop, "none", 80.0);
    let l = ui.label("Pad value (0–255)");
    ui.add(egui::DragValue::new(&mut p.pad_value).range(0.0..=255.0))
        .labelled_by(l.id);
    ui.end_row();
    if is_image_folder {
        let l = ui.label("Calibration variants");
        ui.add(
            egui::DragValue::new(&mut draft.augment).range(1..=quantbench::data::AUGMENT_VARIANTS),
        )
        .labelled_by(l.id)
        .on_hover_text(
            "calibrate on each image, mirrored, and its corner and centre crops: \
             more samples from a few photos (evaluation sees the images as they are)",
        );
        ui.end_row();
    }
    ui.label("Colour");
    ui.horizontal(|ui| {
        ui.radio_value(&mut p.color, Color::Rgb, "RGB");
        ui.radio_value(&mut p.color, Color::Bgr, "BGR");
        ui.radio_value(&mut p.color, Color::Grayscale, "gray");
    });
    ui.end_row();
    ui.label("Layout");
    ui.horizontal(|ui| {
        ui.radio_value(&mut p.layout, Layout::Nchw, "NCHW");
        ui.radio_value(&mut p.layout, Layout::Nhwc, "NHWC");
    });
    ui.end_row();
    ui.label("Pixels");
    ui.horizontal(|ui| {
        ui.radio_value(&mut p.value_scale, ValueScale::Byte, "0–255");
        ui.radio_value(&mut p.value_scale, ValueScale::Unit, "0–1");
    });
    ui.end_row();
    field(ui, "Mean", &mut fields.mean, "", 150.0);
    field(ui, "Std", &mut fields.std, "", 150.0);
    chosen_preset
}

impl Fields {
    /// Reads the typed fields into `p` (after applying `preset`, if one was chosen), noting
    /// what does not parse.
    fn read_into(&mut self, p: &mut quantbench::data::Preprocess, preset: Option<Preset>) {
        if let Some(preset) = preset {
            preset.apply(p);
            let join = |v: &[f32]| {
                v.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            self.mean = join(&p.mean);
            self.std = join(&p.std);
        }
        p.resize_to = hw_field(&self.resize_to, "resize to", &mut self.errors);
        p.letterbox = hw_field(&self.letterbox, "letterbox", &mut self.errors);
        p.pad_to_width = hw_field(&self.pad_width, "text line", &mut self.errors);
        p.center_crop = hw_field(&self.crop, "crop", &mut self.errors);
        p.resize_shorter = match self.resize.trim() {
            "" => None,
            t => match t.parse() {
                Ok(v) => Some(v),
                Err(_) => {
                    self.errors
                        .push(format!("resize: '{t}' is not a whole number"));
                    None
                }
            },
        };
        if p.resizes() > 1 {
            self.errors
                .push("give one of resize to, resize shorter side, letterbox and text line".into());
        }
        match (floats(&self.mean), floats(&self.std)) {
            (Ok(m), Ok(s)) => {
                if s.contains(&0.0) {
                    self.errors.push("std: must not be zero".into());
                }
                p.mean = m;
                p.std = s;
            }
            (Err(e), _) => self.errors.push(format!("mean: {e}")),
            (_, Err(e)) => self.errors.push(format!("std: {e}")),
        }
    }
}

/// The first `n` samples as images (each stretched to its own min..max), with their captions:
/// decoded on a job's thread; the window only uploads them as textures.
pub fn previews(dataset: &Dataset, n: usize) -> Vec<(egui::ColorImage, String)> {
    let mut out = vec![];
    for i in 0..n.min(dataset.len()) {
        let Ok(sample) = dataset.sample(i) else {
            continue;
        };
        let label = sample.label;
        let (shape, data) = sample.first_f32();
        let shape = &shape;
        if shape.len() != 4 {
            continue;
        }
        let from_pixels = matches!(
            dataset.desc.source,
            quantbench::data::Source::Csv { .. } | quantbench::data::Source::ImageFolder { .. }
        );
        let nhwc = dataset.desc.preprocess.layout == Layout::Nhwc && from_pixels;
        let (c, h, w) = if nhwc {
            (shape[3], shape[1], shape[2])
        } else {
            (shape[1], shape[2], shape[3])
        };
        if c == 0 || h == 0 || w == 0 {
            continue;
        }
        let (lo, hi) = data
            .iter()
            .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        let scale = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
        let at = |ch: usize, y: usize, x: usize| {
            let k = if nhwc {
                (y * w + x) * c + ch
            } else {
                (ch * h + y) * w + x
            };
            ((data[k] - lo) * scale) as u8
        };
        let mut pixels = Vec::with_capacity(h * w);
        for y in 0..h {
            for x in 0..w {
                let (r, g, b) = if c >= 3 {
                    (at(0, y, x), at(1, y, x), at(2, y, x))
                } else {
                    (at(0, y, x), at(0, y, x), at(0, y, x))
                };
                pixels.push(egui::Color32::from_rgb(r, g, b));
            }
        }
        let image = egui::ColorImage::new([w, h], pixels);
        let caption = label
            .map(|l| format!("#{i}: {l}"))
            .unwrap_or_else(|| format!("#{i}"));
        out.push((image, caption));
    }
    out
}
