//! A sensitivity ranking as a session keeps it with its experiment (`sensitivity::rank` makes
//! it).

use serde::{Deserialize, Serialize};

/// One layer kept float.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sensitivity {
    pub layer: String,
    pub op_type: String,
    /// The task metric with this layer kept in float, and what it recovers over the whole model
    /// quantized.
    pub metric: f64,
    pub recovered: f64,
    /// Output SQNR against float with this layer kept float, and what it gains (the tiebreak
    /// where the task metric cannot tell layers apart).
    pub sqnr_db: Option<f64>,
    pub sqnr_gained_db: Option<f64>,
    pub p50_ms: f64,
    pub latency_cost_ms: f64,
    /// `recovered / max(latency_cost_ms, 0.01)`.
    pub score: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SensitivityReport {
    pub backend: String,
    /// `top-1` with labels, `agreement` with float without.
    pub metric_name: String,
    /// The whole model quantized: metric and p50.
    pub metric: f64,
    pub p50_ms: f64,
    pub float_metric: f64,
    pub float_p50_ms: f64,
    /// Best first.
    pub ranking: Vec<Sensitivity>,
    /// Layers whose variant could not be measured, with why.
    pub skipped: Vec<String>,
}
