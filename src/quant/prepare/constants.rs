//! `Constant` nodes become initializers (weights exported as constants are still weights), and
//! a `Reshape`/`Identity` of a weight is folded into a new weight.

use anyhow::Result;

use crate::onnx::{self, pb, GraphIndex};

pub(super) fn constants_to_initializers(graph: &mut pb::GraphProto) -> usize {
    let mut count = 0;
    let mut kept = Vec::with_capacity(graph.node.len());
    for node in std::mem::take(&mut graph.node) {
        let tensor = (node.op_type == "Constant" && node.domain.is_empty())
            .then(|| onnx::attr(&node, "value").and_then(|a| a.t.clone()))
            .flatten();
        match tensor {
            Some(mut t) if node.output.len() == 1 => {
                t.name = node.output[0].clone();
                graph.initializer.push(t);
                count += 1;
            }
            _ => kept.push(node),
        }
    }
    graph.node = kept;
    count
}

pub(super) fn fold_weight_reshapes(graph: &mut pb::GraphProto) -> Result<usize> {
    let mut count = 0;
    loop {
        let index = GraphIndex::new(graph);
        let found = graph.node.iter().position(|n| {
            let data_const = n.input.first().is_some_and(|i| index.is_initializer(i));
            match n.op_type.as_str() {
                "Identity" => data_const,
                "Reshape" => data_const && n.input.get(1).is_some_and(|i| index.is_initializer(i)),
                _ => false,
            }
        });
        let Some(pos) = found else { break };
        let node = graph.node.remove(pos);
        let data = graph.initializer[index.initializers[&node.input[0]]].clone();
        let mut folded = data.clone();
        folded.name = node.output[0].clone();
        if node.op_type == "Reshape" {
            let shape =
                onnx::tensor_to_i64(&graph.initializer[index.initializers[&node.input[1]]])?;
            folded.dims = resolve_reshape(&data.dims, &shape).ok_or_else(|| {
                anyhow::anyhow!(
                    "node '{}' (Reshape): shape {shape:?} does not fit {:?}",
                    node.name,
                    data.dims
                )
            })?;
        }
        graph.initializer.push(folded);
        count += 1;
    }
    Ok(count)
}

fn resolve_reshape(dims: &[i64], shape: &[i64]) -> Option<Vec<i64>> {
    let total: i64 = dims.iter().product();
    let mut out: Vec<i64> = shape
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            if s == 0 {
                dims.get(i).copied().unwrap_or(0)
            } else {
                s
            }
        })
        .collect();
    let known: i64 = out.iter().filter(|&&d| d != -1).product();
    if let Some(free) = out.iter().position(|&d| d == -1) {
        if known == 0 || total % known != 0 {
            return None;
        }
        out[free] = total / known;
    }
    (out.iter().product::<i64>() == total).then_some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reshape_resolution() {
        assert_eq!(
            super::resolve_reshape(&[16, 4, 4, 10], &[256, 10]),
            Some(vec![256, 10])
        );
        assert_eq!(
            super::resolve_reshape(&[2, 3, 4], &[0, -1]),
            Some(vec![2, 12])
        );
        assert_eq!(super::resolve_reshape(&[2, 3], &[4, 2]), None);
    }
}
