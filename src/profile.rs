//! Run profiles: how much measuring a run does, named once for every face. `quick` answers in
//! seconds on a few samples, `standard` is what the CLI, the window and `tune` use unless told
//! otherwise, `thorough` is for figures that go into a report. Each command's flags override
//! single fields; their defaults come from here, never from a number typed again elsewhere.

use crate::bench::BenchSettings;
use crate::quant::DEFAULT_CALIBRATION_SAMPLES;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Profile {
    Quick,
    #[default]
    Standard,
    Thorough,
}

/// Which runtimes a run measures on when none are named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendSet {
    /// The runtime the model is deployed on: ONNX Runtime when its library is found, else tract.
    Deployment,
    /// tract, and ONNX Runtime when its library is found.
    All,
}

/// What a profile sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProfileSettings {
    /// Calibration samples per quantized experiment.
    pub samples: usize,
    /// Evaluation samples at most (`None`: the whole evaluation split).
    pub eval_limit: Option<usize>,
    /// Evaluation samples compared per layer.
    pub layer_samples: usize,
    /// Timed runs per model and runtime, after `warmup` untimed ones.
    pub runs: usize,
    pub warmup: usize,
    pub backends: BackendSet,
}

impl Profile {
    pub const ALL: [Profile; 3] = [Profile::Quick, Profile::Standard, Profile::Thorough];

    pub fn name(self) -> &'static str {
        match self {
            Profile::Quick => "quick",
            Profile::Standard => "standard",
            Profile::Thorough => "thorough",
        }
    }

    pub fn settings(self) -> ProfileSettings {
        match self {
            Profile::Quick => ProfileSettings {
                samples: 32,
                eval_limit: Some(200),
                layer_samples: 4,
                runs: 20,
                warmup: 2,
                backends: BackendSet::Deployment,
            },
            Profile::Standard => ProfileSettings {
                samples: DEFAULT_CALIBRATION_SAMPLES,
                eval_limit: None,
                layer_samples: 16,
                runs: 50,
                warmup: 5,
                backends: BackendSet::All,
            },
            Profile::Thorough => ProfileSettings {
                samples: 500,
                eval_limit: None,
                layer_samples: 64,
                runs: 200,
                warmup: 20,
                backends: BackendSet::All,
            },
        }
    }

    /// The benchmark this profile runs (one thread: latency, not throughput).
    pub fn bench(self) -> BenchSettings {
        let s = self.settings();
        BenchSettings {
            runs: s.runs,
            warmup: s.warmup,
            threads: 1,
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Profile::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown profile '{s}' (expected quick, standard or thorough)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_grow_from_quick_to_thorough_and_parse_by_name() {
        let [q, s, t] = Profile::ALL.map(Profile::settings);
        assert!(q.samples < s.samples && s.samples < t.samples);
        assert!(q.layer_samples < s.layer_samples && s.layer_samples < t.layer_samples);
        assert!(q.runs < s.runs && s.runs < t.runs);
        assert!(q.warmup < s.warmup && s.warmup < t.warmup);
        // The standard profile calibrates on what a config without a sample count does.
        assert_eq!(
            s.samples,
            crate::quant::QuantConfig::default().samples,
            "standard"
        );
        for p in Profile::ALL {
            assert_eq!(p.name().parse::<Profile>(), Ok(p));
        }
        assert!("fast".parse::<Profile>().is_err());
    }
}
