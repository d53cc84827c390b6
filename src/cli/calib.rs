//! `quantbench calib`: the calibration inspector. Without `--tensor`, the activations int8
//! calibrates; with it, that tensor's histogram and what each calibration method keeps.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use quantbench::jobs::Progress;
use quantbench::onnx;
use quantbench::quant::inspect::{self, RangeFigures};

use super::args::{open_data, InferArgs};
use super::quantize::ConfigArgs;

#[derive(clap::Args)]
pub struct CalibArgs {
    model: PathBuf,
    /// Calibration data (as for quantize).
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    infer: InferArgs,
    /// The activation to inspect (default: list them).
    #[arg(long)]
    tensor: Option<String>,
    #[command(flatten)]
    settings: ConfigArgs,
    #[arg(long)]
    json: bool,
}

pub fn calib(args: CalibArgs) -> Result<ExitCode> {
    let (config, _) = args.settings.config(Some(quantbench::quant::Mode::Int8))?;
    let model = onnx::read_model(&args.model)?;
    let Some(tensor) = &args.tensor else {
        let tensors = inspect::calibrated_tensors(&model, &config)
            .with_context(|| args.model.display().to_string())?;
        if args.json {
            println!("{}", serde_json::to_string(&tensors)?);
        } else {
            println!(
                "{}: {} activations calibrated by int8 ({}); inspect one with --tensor NAME",
                args.model.display(),
                tensors.len(),
                config.label()
            );
            for t in tensors {
                println!("  {t}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    };
    let dataset = open_data(&args.data, &model, &args.infer)?;
    let inputs = quantbench::tensor::model_inputs(&model)
        .with_context(|| args.model.display().to_string())?;
    dataset.check_fits(&inputs)?;
    let found = inspect::inspect(&model, &config, &dataset, tensor, &Progress::new())
        .with_context(|| args.model.display().to_string())?;
    if args.json {
        println!("{}", serde_json::to_string(&found)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{tensor}: {} values over {} calibration samples, from {} to {}",
        found.values, found.samples, found.min, found.max
    );
    if let Some(note) = &found.note {
        println!("note: {note}");
    }
    // Sixteen rows, bar lengths on a square-root scale so that the tails show.
    let per_row = found.counts.len().div_ceil(16).max(1);
    let rows: Vec<u64> = found
        .counts
        .chunks(per_row)
        .map(|c| c.iter().sum())
        .collect();
    let peak = rows.iter().copied().max().unwrap_or(1).max(1) as f64;
    for (r, &count) in rows.iter().enumerate() {
        let left = found.first_edge + (r * per_row) as f32 * found.bin_width;
        let bar = ((count as f64 / peak).sqrt() * 60.0).round() as usize;
        println!("  {left:>12.5} {:<60} {count}", "#".repeat(bar));
    }
    println!(
        "  {:<18} {:>24} {:>9} {:>10}",
        "method", "range", "clipped", "SQNR"
    );
    let line = |f: &RangeFigures, mark: &str| {
        println!(
            "  {:<18} {:>24} {:>8.4}% {:>7.2} dB{mark}",
            f.method,
            format!("[{:.5}, {:.5}]", f.range.0, f.range.1),
            100.0 * f.clipped,
            f.sqnr_db
        )
    };
    for f in &found.methods {
        line(
            f,
            if f.method == found.configured {
                "  (configured)"
            } else {
                ""
            },
        );
    }
    if let Some(p) = &found.pinned {
        line(p, "  (used)");
    }
    Ok(ExitCode::SUCCESS)
}
