//! The command line: clap derive, `run()` dispatching to one module per command, each a thin
//! caller of the engine; `main` prints the whole error chain.

mod args;
mod bench;
mod calib;
mod dataset;
mod eval;
mod layers;
mod plan;
mod quantize;
mod sweep;
mod tune;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use quantbench::onnx;

#[derive(Parser)]
#[command(
    name = "quantbench",
    version,
    about = "Post-training quantization workbench for ONNX models"
)]
struct Cli {
    /// Without a command, the workbench opens on the bundled MNIST sample.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Open the workbench on a model (.onnx) or a saved session (.ron).
    #[cfg(feature = "gui")]
    Gui { path: Option<PathBuf> },
    /// Open the window, run what the session lacks, save a PNG of a view and close.
    #[cfg(feature = "gui")]
    Screenshot {
        /// A session (.ron) or a model (.onnx); default: the bundled MNIST sample with the standard preset.
        path: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// all (the overview), tradeoff, heatmap, compare, layers, sensitivity (Layers, ranked),
        /// speed-up (or explain), tune (the search to its end) or tune-running (mid-search).
        #[arg(long, default_value = "all")]
        view: String,
        /// The left panel's tab: model, dataset or settings.
        #[arg(long, default_value = "model")]
        tab: String,
        /// Also write the session with everything that ran.
        #[arg(long)]
        session_out: Option<PathBuf>,
        /// Open the calibration inspector on this tensor (last quantized experiment's settings).
        #[arg(long)]
        inspect: Option<String>,
        /// Scroll the heatmap and the Layers view to this layer (node name) and highlight it.
        #[arg(long)]
        focus: Option<String>,
    },
    /// Time the workbench's frames in a real window while it opens MODEL, runs an int8-weights
    /// experiment on DATA, exports it and searches for a minute (p50/p95/max of the UI
    /// thread's work per frame).
    #[cfg(feature = "gui")]
    BenchGui {
        model: PathBuf,
        #[arg(long, default_value = "synthetic")]
        data: PathBuf,
        /// Where the quantized model is exported.
        #[arg(long)]
        export: PathBuf,
    },
    /// Print a model's inputs, outputs, opset, op histogram, nodes and weights.
    Inspect {
        model: PathBuf,
        /// One JSON object on stdout instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Quantize a model and write the result as a standard ONNX file.
    Quantize(quantize::QuantizeArgs),
    /// Evaluate a model on a dataset: accuracy, and fidelity against a reference model.
    Eval(eval::EvalArgs),
    /// Measure latency (batch 1) and throughput (1..N streams) of a model.
    Bench(bench::BenchArgs),
    /// Quantize, evaluate and benchmark a family of configurations; write a session file.
    Sweep(sweep::SweepArgs),
    /// Write a sweep as a plan folder that any scheduler runs one index at a time (with
    /// --emit slurm,kubernetes: a ready-to-submit array script and Indexed Job manifest).
    Plan(plan::PlanArgs),
    /// Run one experiment of a plan (--index, or the scheduler's SLURM_ARRAY_TASK_ID or
    /// JOB_COMPLETION_INDEX); writes PLAN/results/I.ron atomically; a second run is harmless.
    RunPlan(plan::RunPlanArgs),
    /// Gather a plan's finished results into a session the workbench opens.
    Merge(plan::MergeArgs),
    /// Per-layer error of a quantization (isolated and cumulative) and, with --sensitivity,
    /// the layers ranked by what keeping each in float recovers per millisecond.
    Layers(layers::LayersArgs),
    /// Search settings, recovery and layers kept float for the fastest model that meets a
    /// tolerance (--max-drop, --min-agreement or --min-sqnr) on the target's runtime.
    Tune(tune::TuneArgs),
    /// The calibration inspector: an activation's histogram, the range each calibration
    /// method keeps, the share it clips and the SQNR it gives (pin one with quantize --pin).
    Calib(calib::CalibArgs),
    /// Write a dataset description from a folder or file, or show what the model will see.
    #[command(subcommand)]
    Dataset(dataset::DatasetCommand),
}

pub fn run() -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        return open_window(started);
    };
    match command {
        #[cfg(feature = "gui")]
        Command::Gui { path } => {
            crate::gui::launch(crate::gui::Launch::Open(path), started)?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "gui")]
        Command::Screenshot {
            path,
            out,
            view,
            tab,
            session_out,
            inspect,
            focus,
        } => {
            quantbench::fileio::check_output_dir(&out)?;
            let launch = crate::gui::Launch::Screenshot {
                path,
                out: out.clone(),
                view,
                tab,
                session_out,
                inspect,
                focus,
            };
            crate::gui::launch(launch, started)?;
            if !out.is_file() {
                anyhow::bail!(
                    "{}: the window closed before the screenshot was taken",
                    out.display()
                );
            }
            eprintln!("wrote {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "gui")]
        Command::BenchGui {
            model,
            data,
            export,
        } => {
            let launch = crate::gui::Launch::FrameBench {
                model,
                data,
                export,
            };
            crate::gui::launch(launch, started)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect { model, json } => inspect(&model, json),
        Command::Quantize(args) => quantize::quantize(args),
        Command::Eval(args) => eval::eval(args),
        Command::Bench(args) => bench::bench(args),
        Command::Sweep(args) => sweep::sweep(args),
        Command::Plan(args) => plan::plan(args),
        Command::RunPlan(args) => plan::run_plan(args),
        Command::Merge(args) => plan::merge(args),
        Command::Layers(args) => layers::layers(args),
        Command::Tune(args) => tune::tune(args),
        Command::Calib(args) => calib::calib(args),
        Command::Dataset(command) => dataset::run(command),
    }
}

#[cfg(feature = "gui")]
fn open_window(started: std::time::Instant) -> Result<ExitCode> {
    crate::gui::launch(crate::gui::Launch::Open(None), started)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "gui"))]
fn open_window(_started: std::time::Instant) -> Result<ExitCode> {
    anyhow::bail!(
        "this quantbench was built without the workbench (cargo feature 'gui'); give a command, e.g. quantbench quantize --help"
    )
}

fn inspect(path: &Path, json: bool) -> Result<ExitCode> {
    let model = onnx::read_model(path)?;
    let mut summary = onnx::inspect::summarize(&model, path)?;
    quantbench::quant::patterns::annotate(&mut summary, &model);
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.to_text());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    /// Every command's flags are consistent (no two options with one name): clap checks it.
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
