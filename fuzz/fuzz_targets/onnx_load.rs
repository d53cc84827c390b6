//! Any bytes as an ONNX file: decoded and validated, then inspected the way `quantbench
//! inspect` and the GUI's model panel do, its inputs bound, its tensors converted, its opset
//! upgraded. Errors are fine; a panic, a hang or an allocation beyond the input is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quantbench::onnx;

fuzz_target!(|data: &[u8]| {
    let Ok(model) = onnx::decode_model(data) else {
        return;
    };
    let _ = onnx::inspect::summarize(&model, std::path::Path::new("fuzz.onnx"))
        .map(|s| s.to_text());
    let _ = quantbench::tensor::model_inputs(&model);
    for t in &onnx::graph(&model).initializer {
        let _ = onnx::tensor_to_f32(t);
    }
    let mut upgraded = model.clone();
    if onnx::opset::upgrade(&mut upgraded, 13).is_ok() {
        let _ = onnx::decode_model(&onnx::encode_model(&upgraded));
    }
});
