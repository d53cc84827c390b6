//! Named families of experiments.

use super::Experiment;
use crate::host::Machine;
use crate::quant::{Calibration, Int4Storage, Mode, QuantConfig};

/// The `standard` preset: float, fp16, int8 weight-only, int8 per-tensor and per-channel, int8
/// per-channel with entropy calibration, int4 weight-only (int8 storage, runs everywhere); each
/// from the recommended config for `machine` ([`QuantConfig::recommended`]).
pub fn standard_preset(samples: usize, machine: &Machine) -> Vec<Experiment> {
    let base = QuantConfig {
        samples,
        ..QuantConfig::recommended(machine).0
    };
    let mut experiments = vec![Experiment::float()];
    for config in [
        QuantConfig {
            mode: Mode::Fp16,
            ..base.clone()
        },
        QuantConfig {
            mode: Mode::Int8Weights,
            per_channel: true,
            ..base.clone()
        },
        QuantConfig {
            per_channel: false,
            ..base.clone()
        },
        QuantConfig {
            per_channel: true,
            ..base.clone()
        },
        QuantConfig {
            per_channel: true,
            calibration: Calibration::Entropy,
            ..base.clone()
        },
        QuantConfig {
            mode: Mode::Int4Weights,
            per_channel: true,
            int4_storage: Int4Storage::Int8Container,
            ..base
        },
    ] {
        experiments.push(Experiment::quantized(config));
    }
    experiments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_preset_has_the_seven_configurations() {
        let names: Vec<String> = standard_preset(200, &Machine::default())
            .iter()
            .map(|e| e.name.clone())
            .collect();
        assert_eq!(
            names,
            [
                "float",
                "fp16",
                "int8-weights per-channel",
                "int8 per-tensor minmax",
                "int8 per-channel minmax",
                "int8 per-channel entropy",
                "int4-weights per-channel"
            ]
        );
    }
}
