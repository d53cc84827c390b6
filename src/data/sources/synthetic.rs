//! Synthetic inputs: deterministic random values of the model's types and shapes.

use crate::data::SyntheticInput;
use crate::tensor::{Feed, TensorData};

/// Deterministic values for synthetic input `k` of sample `index` (xorshift, seeded by both).
pub(crate) fn synthetic_feed(s: &SyntheticInput, index: usize, k: usize) -> Feed {
    let n: usize = s.shape.iter().product();
    let mut state = (index as u64 + 1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(k as u64 * 0xBF58_476D_1CE4_E5B9)
        | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let span = s.high - s.low;
    let data = if s.elem.is_float() {
        TensorData::F64((0..n).map(|_| s.low + next() * span).collect())
    } else {
        TensorData::I64(
            (0..n)
                .map(|_| (s.low + (next() * (span + 1.0)).floor()).min(s.high) as i64)
                .collect(),
        )
    };
    Feed {
        name: s.name.clone(),
        shape: s.shape.clone(),
        // Values are drawn within the type's range, so the conversion cannot fail.
        data: data.clone().convert(s.elem).unwrap_or(data),
    }
}
