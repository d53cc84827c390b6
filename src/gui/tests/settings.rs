//! The Settings tab: targets and their defaults, ops offered, validation as you type.

use super::*;

/// Choosing ONNX Runtime as the target sets what runs exactly on this CPU and says why beside
/// the field; the experiment added records the target.
#[test]
fn the_target_sets_its_defaults_and_says_why() {
    let mut h = harness();
    click(&mut h, "Settings");
    h.run();
    click(&mut h, "Target");
    h.run();
    click(&mut h, "ONNX Runtime on this CPU");
    h.run();
    let machine = quantbench::host::detect();
    let saturates = machine.os.ends_with("x86_64") && !machine.has_vnni();
    let config = h.state().settings.config.clone();
    assert_eq!(config.target, quantbench::quant::Target::OrtCpu);
    assert_eq!(config.reduce_range, saturates);
    let why = if saturates {
        "has no VNNI, and ONNX Runtime's u8×s8 int8 kernels saturate"
    } else {
        "runs ONNX Runtime's int8 kernels exactly at 8 bits"
    };
    h.get_by_label_contains(why);
    click(&mut h, "Add experiment");
    h.run();
    let added = experiments(&h).last().cloned();
    assert_eq!(
        added.and_then(|e| e.config).map(|c| c.target),
        Some(config.target)
    );
}

#[test]
fn each_quantizable_op_is_offered_once() {
    let mut h = harness();
    click(&mut h, "Settings");
    h.run();
    for op in quantbench::quant::config::DEFAULT_OPS {
        assert_eq!(h.query_all_by_label(op).count(), 1, "{op}");
    }
}

#[test]
fn settings_are_validated_as_you_type() {
    let mut h = harness();
    choose_percentile_calibration(&mut h);
    type_into(&mut h, "percentile", "x");
    h.get_by_label_contains("is not a number");
    h.run();
    assert!(
        h.get_by_label("Add experiment")
            .accesskit_node()
            .is_disabled(),
        "a bad setting cannot be added"
    );
}
