//! quantbench: post-training quantization of ONNX models, as a library.
//!
//! One engine, called alike by the CLI (`src/main.rs`), the GUI and the tests: open a model
//! ([`onnx`]), describe data ([`data`]), quantize it ([`quant`]), run it ([`runtime`]) and
//! measure it ([`eval`]). Nothing here depends on a GUI toolkit.

pub mod bench;
pub mod data;
pub mod eval;
pub mod fileio;
pub mod host;
pub mod jobs;
pub mod onnx;
pub mod paths;
pub mod plan;
pub mod profile;
pub mod quant;
pub mod report;
pub mod runner;
pub mod runtime;
pub mod sensitivity;
pub mod session;
pub mod taps;
pub mod tensor;
pub mod tune;
