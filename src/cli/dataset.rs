//! `quantbench dataset new|show`: describe data for a model without writing RON by hand, and
//! print (or export) what the model will see.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use quantbench::data::Dataset;
use quantbench::onnx;

use super::args::{open_data, InferArgs};

#[derive(Subcommand)]
pub enum DatasetCommand {
    /// Infer a description (RON) for SOURCE from the model: a folder of images (class
    /// sub-folders give labels), .csv/.tsv(.gz), .npy, .npz, test_data_set_* folders, or
    /// 'synthetic'.
    New {
        source: PathBuf,
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        infer: InferArgs,
    },
    /// Print what the model will see: samples, inputs (name, type, shape, value range), labels,
    /// splits; or write the split's preprocessed inputs to a .npy file.
    Show {
        /// A description (.ron), or any source `--data` accepts (with --model).
        data: PathBuf,
        /// The model, to bind inputs and infer a description for a folder or file.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Write the split's preprocessed inputs, stacked along a first axis: .npy (one input)
        /// or .npz (one array per model input), for feeding the same inputs to other tools.
        #[arg(long)]
        export: Option<PathBuf>,
        /// calibration or evaluation
        #[arg(long, default_value = "calibration")]
        split: String,
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        infer: InferArgs,
    },
}

pub fn run(command: DatasetCommand) -> Result<ExitCode> {
    match command {
        DatasetCommand::New {
            source,
            model,
            out,
            infer,
        } => dataset_new(&source, &model, &out, &infer),
        DatasetCommand::Show {
            data,
            model,
            export,
            split,
            limit,
            infer,
        } => dataset_show(
            &data,
            model.as_deref(),
            export.as_deref(),
            &split,
            limit,
            &infer,
        ),
    }
}

fn dataset_new(
    source: &Path,
    model_path: &Path,
    out: &Path,
    infer: &InferArgs,
) -> Result<ExitCode> {
    quantbench::fileio::check_output_dir(out)?;
    let model = onnx::read_model(model_path)?;
    let inferred = quantbench::data::infer::describe(source, &model, &infer.options())?;
    // Check that it opens and fits before writing it.
    let dataset = Dataset::from_desc(inferred.desc.clone(), Path::new(""), source)?;
    dataset.check_fits(&quantbench::tensor::model_inputs(&model)?)?;
    quantbench::data::infer::save_description(&inferred.desc, Path::new(""), out)?;
    for n in &inferred.notes {
        println!("note: {n}");
    }
    println!(
        "wrote {} ({} samples{})",
        out.display(),
        dataset.len(),
        if dataset.has_labels() {
            ", labelled"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn dataset_show(
    path: &Path,
    model_path: Option<&Path>,
    export: Option<&Path>,
    split: &str,
    limit: Option<usize>,
    infer: &InferArgs,
) -> Result<ExitCode> {
    let model = model_path.map(onnx::read_model).transpose()?;
    let dataset = match &model {
        Some(m) => open_data(path, m, infer)?,
        None => Dataset::open(path)?,
    };
    let purpose = match split {
        "calibration" => quantbench::data::Purpose::Calibration,
        "evaluation" => quantbench::data::Purpose::Evaluation,
        other => anyhow::bail!("unknown split '{other}' (expected calibration or evaluation)"),
    };
    let inputs = model
        .as_ref()
        .map(quantbench::tensor::model_inputs)
        .transpose()?;
    if let Some(out) = export {
        let (n, arrays) = dataset.export(purpose, limit, inputs.as_deref(), out)?;
        let shapes: Vec<String> = arrays
            .iter()
            .map(|(name, shape)| format!("{name} {shape:?}"))
            .collect();
        println!(
            "wrote {n} samples ({}) to {}",
            shapes.join(", "),
            out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let first = match &inputs {
        Some(inputs) => dataset.bound(0, inputs)?,
        None => dataset.sample(0)?,
    };
    println!("dataset     {}", path.display());
    println!(
        "source      {}",
        ron::to_string(&dataset.desc.source).unwrap_or_default()
    );
    let pre = &dataset.desc.preprocess;
    if matches!(
        dataset.desc.source,
        quantbench::data::Source::Csv { .. } | quantbench::data::Source::ImageFolder { .. }
    ) {
        println!("preprocess  {}", quantbench::data::describe_preprocess(pre));
    }
    println!(
        "samples     {}{}",
        dataset.len(),
        if dataset.is_synthetic() {
            " (SYNTHETIC: random inputs, fidelity only)"
        } else {
            ""
        }
    );
    for feed in &first.inputs {
        let values = feed.data.to_f32();
        let (lo, hi) = values
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
                (l.min(v), h.max(v))
            });
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / values.len().max(1) as f64;
        println!(
            "input       {}: {} {:?}, sample 0 from {lo} to {hi}, mean {mean:.4}",
            if feed.name.is_empty() {
                "(the model's input)"
            } else {
                &feed.name
            },
            feed.data.elem_type(),
            feed.shape
        );
    }
    println!(
        "labels      {}",
        if dataset.has_labels() {
            let classes = dataset.class_names();
            if classes.is_empty() {
                "yes".to_string()
            } else {
                format!("{} classes ({})", classes.len(), classes.join(", "))
            }
        } else {
            "no".into()
        }
    );
    if first.expected.is_some() {
        println!("reference   outputs stored with the data (fidelity without a reference model)");
    }
    for (name, p) in [
        ("calibration", quantbench::data::Purpose::Calibration),
        ("evaluation", quantbench::data::Purpose::Evaluation),
    ] {
        let r = dataset.indices(p)?;
        println!("{name:<11} samples {}..{} ({})", r.start, r.end, r.len());
    }
    Ok(ExitCode::SUCCESS)
}
