//! AdaRound (Nagel et al., 2020): whether each weight rounds up or down, chosen per layer to
//! minimize the layer's output error on calibration data instead of rounding to nearest.
//!
//! For a layer `y = W x`, the output error of a rounding is `Σ_rows Δwᵀ H Δw`, with `Δw` the
//! rounding error of one output channel's weights and `H = Σ x xᵀ` the Gram matrix of the
//! layer's inputs (im2col patches for a Conv) over the calibration samples. The paper relaxes
//! the up/down choice to a sigmoid and anneals it to binary; here the binary problem is solved
//! directly by coordinate descent (each weight's flip between its two grid neighbours is taken
//! when it lowers the error, with the gradient `H Δw` kept up to date). Every flip lowers the
//! damped objective `Δwᵀ (H + λI) Δw`, and a flip away from nearest only grows `|Δw|`, so the
//! undamped error never exceeds round-to-nearest's either. The damping (1% of the mean
//! diagonal, as GPTQ) keeps a Gram matrix of few samples from being over-fitted.
//!
//! The inputs are the float model's (each layer alone, as [`crate::taps`]'s isolated
//! copy): upstream error is the business of bias correction.

use anyhow::{bail, Context, Result};
use rayon::prelude::*;

use crate::data::{Dataset, Purpose};
use crate::jobs::Progress;
use crate::onnx::{self, pb, GraphIndex};
use crate::quant::math::{self, QParams, QType};
use crate::quant::rewrite::{weight_slot, Granularity, GroupIndex, Rounding, Roundings};
use crate::runtime::TractModel;

/// What the learning did.
pub struct Learned {
    pub roundings: Roundings,
    pub note: String,
    /// `Σ Δwᵀ H Δw` over the layers, round-to-nearest and learned, on the calibration samples.
    pub error_nearest: f64,
    pub error_learned: f64,
}

/// Positions (patches or rows) whose outer products one sample may add to a layer's Gram
/// matrices: bounds the work per sample at about this many multiply-adds.
const WORK_PER_SAMPLE: usize = 20_000_000;
const DAMPING: f64 = 0.01;
const PASSES: usize = 8;

#[derive(Clone, Debug)]
enum Shape {
    /// Conv: weight `[M, C/g, k...]` (1-D or 2-D kernels).
    Conv {
        group: usize,
        kernel: [usize; 2],
        strides: [usize; 2],
        dilations: [usize; 2],
        /// Padding before and after, per spatial axis; `None`: from `auto_pad`.
        pads: Option<([usize; 2], [usize; 2])>,
        auto_pad: String,
    },
    /// Gemm or MatMul: each row of the input (last axis `K`) is one input vector.
    Rows { transposed: bool },
}

/// One layer to learn: a Conv, Gemm or MatMul of the float graph whose weight the quantized
/// graph quantizes.
#[derive(Clone, Debug)]
struct Layer {
    input: String,
    weight: String,
    dims: Vec<i64>,
    /// Output channels and inputs per output channel.
    m: usize,
    k: usize,
    shape: Shape,
    params: Vec<QParams>,
    granularity: Granularity,
}

impl Layer {
    fn groups(&self) -> usize {
        match self.shape {
            Shape::Conv { group, .. } => group,
            Shape::Rows { .. } => 1,
        }
    }

    /// The flat index in the weight tensor of output channel `m`'s input `k`.
    fn flat(&self, m: usize, k: usize) -> usize {
        match self.shape {
            Shape::Conv { .. } | Shape::Rows { transposed: true } => m * self.k + k,
            Shape::Rows { transposed: false } => k * self.m + m,
        }
    }
}

/// The Conv/Gemm/MatMul layers of `float` whose weights `quantized` quantizes, with the grid
/// the quantization chose for each.
fn layers(float: &pb::ModelProto, quantized: &pb::ModelProto) -> Result<Vec<Layer>> {
    let f = onnx::graph(float);
    let fi = GraphIndex::new(f);
    let q = onnx::graph(quantized);
    let qi = GraphIndex::new(q);
    let mut out = vec![];
    for node in &f.node {
        let Some((w, axis)) = weight_slot(node, &fi, f) else {
            continue;
        };
        let weight = &node.input[w];
        let input = &node.input[0];
        if fi.initializers.contains_key(input) {
            continue;
        }
        let dims = f.initializer[fi.initializers[weight]].dims.clone();
        let Some((params, granularity)) = weight_grid(q, &qi, weight)? else {
            continue;
        };
        let Some((m, k, shape)) = geometry(node, &dims, axis) else {
            continue;
        };
        if m == 0 || k == 0 {
            continue;
        }
        out.push(Layer {
            input: input.clone(),
            weight: weight.clone(),
            dims,
            m,
            k,
            shape,
            params,
            granularity,
        });
    }
    Ok(out)
}

/// The grid the quantized model's DequantizeLinear of `weight` uses, if it has one.
fn weight_grid(
    q: &pb::GraphProto,
    qi: &GraphIndex,
    weight: &str,
) -> Result<Option<(Vec<QParams>, Granularity)>> {
    let quantized_name = format!("{weight}_quantized");
    let Some(dq) = qi
        .consumers_of(&quantized_name)
        .iter()
        .map(|&c| &q.node[c])
        .find(|n| n.op_type == "DequantizeLinear")
    else {
        return Ok(None);
    };
    let (Some(&si), Some(&zi)) = (
        dq.input.get(1).and_then(|s| qi.initializers.get(s)),
        dq.input.get(2).and_then(|z| qi.initializers.get(z)),
    ) else {
        return Ok(None);
    };
    let scales = onnx::tensor_to_f32(&q.initializer[si])?;
    let zeros = onnx::tensor_to_f32(&q.initializer[zi])?;
    let granularity = if q.initializer[si].dims.is_empty() {
        Granularity::Tensor
    } else {
        let a = onnx::attr_int(dq, "axis").unwrap_or(1).max(0) as usize;
        match onnx::attr_int(dq, "block_size").filter(|&b| b > 0) {
            Some(size) => Granularity::Block {
                axis: a,
                size: size as usize,
            },
            None => Granularity::Channel(a),
        }
    };
    let params = scales
        .iter()
        .zip(&zeros)
        .map(|(&scale, &z)| QParams {
            scale,
            zero_point: z as i32,
        })
        .collect();
    Ok(Some((params, granularity)))
}

/// A layer's output channels, inputs per output, and how its weight is laid out; `None` for
/// a layer AdaRound does not learn (3-D convolutions, transposed inputs).
fn geometry(node: &pb::NodeProto, dims: &[i64], axis: usize) -> Option<(usize, usize, Shape)> {
    let dims_u: Vec<usize> = dims.iter().map(|&d| d.max(0) as usize).collect();
    match node.op_type.as_str() {
        "Conv" if (3..=4).contains(&dims.len()) => Some((
            dims_u[0],
            dims_u[1..].iter().product(),
            conv_shape(node, &dims_u),
        )),
        "Gemm" if onnx::attr_int(node, "transA").unwrap_or(0) == 0 && dims.len() == 2 => {
            let transposed = axis == 0;
            let (m, k) = if transposed {
                (dims_u[0], dims_u[1])
            } else {
                (dims_u[1], dims_u[0])
            };
            Some((m, k, Shape::Rows { transposed }))
        }
        "MatMul" if dims.len() == 2 => {
            Some((dims_u[1], dims_u[0], Shape::Rows { transposed: false }))
        }
        _ => None,
    }
}

/// A 1-D or 2-D convolution's geometry (1-D as 2-D of height 1).
fn conv_shape(node: &pb::NodeProto, dims: &[usize]) -> Shape {
    let spatial = dims.len() - 2;
    let two = |v: Vec<i64>, default: usize| -> [usize; 2] {
        let v: Vec<usize> = v.iter().map(|&x| x.max(0) as usize).collect();
        match (spatial, v.as_slice()) {
            (1, [a, ..]) => [1, *a],
            (2, [a, b, ..]) => [*a, *b],
            _ => [default, default],
        }
    };
    let ints = |name: &str| onnx::attr_ints(node, name).unwrap_or_default();
    let kernel = if spatial == 1 {
        [1, dims[2]]
    } else {
        [dims[2], dims[3]]
    };
    let pads = onnx::attr_ints(node, "pads").map(|p| {
        let half = p.len() / 2;
        (two(p[..half].to_vec(), 0), two(p[half..].to_vec(), 0))
    });
    Shape::Conv {
        group: onnx::attr_int(node, "group").unwrap_or(1).max(1) as usize,
        kernel,
        strides: two(ints("strides"), 1),
        dilations: two(ints("dilations"), 1),
        pads,
        auto_pad: onnx::attr(node, "auto_pad")
            .map(|a| String::from_utf8_lossy(&a.s).into_owned())
            .unwrap_or_default(),
    }
}

/// Gram matrices of one layer's inputs, one per convolution group (upper triangle filled).
struct Gram {
    k: usize,
    h: Vec<Vec<f64>>,
}

impl Gram {
    fn new(layer: &Layer) -> Self {
        Gram {
            k: layer.k,
            h: (0..layer.groups())
                .map(|_| vec![0.0; layer.k * layer.k])
                .collect(),
        }
    }

    fn merge(&mut self, other: Gram) {
        for (a, b) in self.h.iter_mut().zip(other.h) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
    }
}

/// Adds `p pᵀ` (upper triangle) to `h` (`k × k`, f32 scratch).
fn add_outer(h: &mut [f32], p: &[f32], k: usize) {
    for i in 0..k {
        let pi = p[i];
        if pi == 0.0 {
            continue;
        }
        let row = &mut h[i * k + i..i * k + k];
        for (x, &pj) in row.iter_mut().zip(&p[i..]) {
            *x += pi * pj;
        }
    }
}

fn flush(into: &mut [f64], scratch: &mut [f32]) {
    for (a, b) in into.iter_mut().zip(scratch.iter_mut()) {
        *a += *b as f64;
        *b = 0.0;
    }
}

/// Adds one sample's input `x` (shape `shape`) of `layer` to `gram`; `salt` varies which
/// positions are taken when not all are.
fn observe(layer: &Layer, x: &[f32], shape: &[usize], gram: &mut Gram, salt: usize) -> Result<()> {
    let k = layer.k;
    let budget = (WORK_PER_SAMPLE / (layer.groups() * k * k).max(1)).max(16);
    if let Shape::Rows { .. } = layer.shape {
        if shape.last() != Some(&k) || !x.len().is_multiple_of(k) {
            bail!(
                "input '{}' has shape {shape:?}; the weight '{}' needs {k} on its last axis",
                layer.input,
                layer.weight
            );
        }
        let mut scratch = vec![0.0f32; k * k];
        let rows = x.len() / k;
        let step = rows.div_ceil(budget).max(1);
        for r in (salt % step..rows).step_by(step) {
            add_outer(&mut scratch, &x[r * k..r * k + k], k);
        }
        flush(&mut gram.h[0], &mut scratch);
        return Ok(());
    }
    observe_conv(layer, x, shape, gram, salt, budget)
}

/// A convolution's padding before the input and its output size, per spatial axis.
fn conv_window(
    input: [usize; 2],
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
    pads: &Option<([usize; 2], [usize; 2])>,
    auto_pad: &str,
) -> ([usize; 2], [usize; 2]) {
    let extent = |a: usize| dilations[a] * (kernel[a] - 1) + 1;
    let mut before = [0usize; 2];
    let mut out = [0usize; 2];
    for a in 0..2 {
        let (begin, end) = match (pads, auto_pad) {
            (_, "SAME_UPPER" | "SAME_LOWER") => {
                let o = input[a].div_ceil(strides[a]);
                let total = ((o.max(1) - 1) * strides[a] + extent(a)).saturating_sub(input[a]);
                let small = total / 2;
                if auto_pad == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                }
            }
            (Some((b, e)), _) => (b[a], e[a]),
            _ => (0, 0),
        };
        before[a] = begin;
        out[a] = (input[a] + begin + end).saturating_sub(extent(a)) / strides[a] + 1;
    }
    (before, out)
}

/// [`observe`] for a convolution: the input patch of each output position (up to `budget` of
/// them), per group.
fn observe_conv(
    layer: &Layer,
    x: &[f32],
    shape: &[usize],
    gram: &mut Gram,
    salt: usize,
    budget: usize,
) -> Result<()> {
    let Shape::Conv {
        group,
        kernel,
        strides,
        dilations,
        pads,
        auto_pad,
    } = &layer.shape
    else {
        return Ok(());
    };
    let k = layer.k;
    let (n, c, ih, iw) = match shape {
        [n, c, w] => (*n, *c, 1, *w),
        [n, c, h, w] => (*n, *c, *h, *w),
        _ => bail!(
            "input '{}' has shape {shape:?}: not a 1-D or 2-D image",
            layer.input
        ),
    };
    let cg = c / group;
    if cg * kernel[0] * kernel[1] != k || cg * group != c {
        bail!(
            "input '{}' has {c} channels; the weight '{}' {:?} does not fit it",
            layer.input,
            layer.weight,
            layer.dims
        );
    }
    let (before, out) = conv_window([ih, iw], *kernel, *strides, *dilations, pads, auto_pad);
    let positions = n * out[0] * out[1];
    let step = positions.div_ceil(budget).max(1);
    let mut scratch = vec![0.0f32; k * k];
    let mut patch = vec![0.0f32; k];
    for g in 0..*group {
        for pos in (salt % step..positions).step_by(step) {
            let (b, rest) = (pos / (out[0] * out[1]), pos % (out[0] * out[1]));
            let (oy, ox) = (rest / out[1], rest % out[1]);
            let mut e = 0;
            for cl in 0..cg {
                let plane = &x[((b * c) + g * cg + cl) * ih * iw..][..ih * iw];
                for ky in 0..kernel[0] {
                    let y = (oy * strides[0] + ky * dilations[0]) as isize - before[0] as isize;
                    for kx in 0..kernel[1] {
                        let xx =
                            (ox * strides[1] + kx * dilations[1]) as isize - before[1] as isize;
                        patch[e] = if y >= 0 && (y as usize) < ih && xx >= 0 && (xx as usize) < iw {
                            plane[y as usize * iw + xx as usize]
                        } else {
                            0.0
                        };
                        e += 1;
                    }
                }
            }
            add_outer(&mut scratch, &patch, k);
        }
        flush(&mut gram.h[g], &mut scratch);
    }
    Ok(())
}

/// One output channel's learned values that differ from nearest (flat index, value), and its
/// errors with nearest and learned rounding.
type RowResult = (Vec<(usize, i32)>, f64, f64);

/// Learns a rounding for every row of `layer` from its Gram matrices; returns the integer
/// values (flat, in the weight's layout), how many differ from nearest, and the errors of
/// nearest and learned rounding.
fn learn_layer(
    layer: &Layer,
    weight: &[f32],
    gram: &Gram,
    qtype: QType,
) -> (Vec<i32>, usize, f64, f64) {
    let groups_index = GroupIndex::new(&layer.dims, layer.granularity);
    let mut values: Vec<i32> = weight
        .iter()
        .enumerate()
        .map(|(i, &w)| math::quantize(w, layer.params[groups_index.of(i)], qtype))
        .collect();
    let per_group = layer.m / layer.groups();
    let grams = damped(gram);
    let rows: Vec<RowResult> = (0..layer.m)
        .into_par_iter()
        .map(|m| {
            let (h, lambda) = &grams[m / per_group.max(1)];
            let row = Row {
                layer,
                groups_index: &groups_index,
                weight,
                values: &values,
                qtype,
            };
            row.learn(m, h, *lambda)
        })
        .collect();
    let (mut nearest, mut learned, mut flipped) = (0.0, 0.0, 0);
    for (changed, n, l) in rows {
        nearest += n;
        learned += l;
        flipped += changed.len();
        for (f, v) in changed {
            values[f] = v;
        }
    }
    (values, flipped, nearest, learned)
}

/// Each group's Gram matrix made symmetric (the upper triangle copied down), with its damping
/// (a share of the mean diagonal).
fn damped(gram: &Gram) -> Vec<(Vec<f64>, f64)> {
    let k = gram.k;
    gram.h
        .iter()
        .map(|h| {
            let mut full = h.clone();
            for i in 0..k {
                for j in 0..i {
                    full[i * k + j] = full[j * k + i];
                }
            }
            let mean_diag = (0..k).map(|i| full[i * k + i]).sum::<f64>() / k as f64;
            (full, DAMPING * mean_diag)
        })
        .collect()
}

/// What learning one output channel's rounding reads.
struct Row<'a> {
    layer: &'a Layer,
    groups_index: &'a GroupIndex,
    weight: &'a [f32],
    /// Round-to-nearest values of the whole weight.
    values: &'a [i32],
    qtype: QType,
}

impl Row<'_> {
    /// Output channel `m`: starting from nearest, each weight flipped to its other grid
    /// neighbour where that lowers `Δwᵀ (H + λ) Δw`, in passes until none does.
    fn learn(&self, m: usize, h: &[f64], lambda: f64) -> RowResult {
        let k = self.layer.k;
        if lambda <= 0.0 {
            return (vec![], 0.0, 0.0); // the layer never saw a non-zero input
        }
        let (qmin, qmax) = self.qtype.range();
        let flats: Vec<usize> = (0..k).map(|i| self.layer.flat(m, i)).collect();
        let p: Vec<QParams> = flats
            .iter()
            .map(|&f| self.layer.params[self.groups_index.of(f)])
            .collect();
        let mut q: Vec<i32> = flats.iter().map(|&f| self.values[f]).collect();
        let w: Vec<f64> = flats.iter().map(|&f| self.weight[f] as f64).collect();
        let delta_of = |i: usize, q: i32| math::dequantize(q, p[i]) as f64 - w[i];
        let mut delta: Vec<f64> = (0..k).map(|i| delta_of(i, q[i])).collect();
        // The other grid neighbour of each weight, where one exists inside the range.
        let mut alt: Vec<Option<i32>> = (0..k)
            .map(|i| {
                let x = w[i] / p[i].scale as f64 + p[i].zero_point as f64;
                let lo = x.floor() as i32;
                let alt = match q[i] {
                    _ if x.fract() == 0.0 => None,
                    v if v == lo => Some(lo + 1),
                    v if v == lo + 1 => Some(lo),
                    _ => None, // clamped to the range: no second neighbour
                };
                alt.filter(|a| (qmin..=qmax).contains(a))
            })
            .collect();
        let error = |delta: &[f64]| -> f64 {
            (0..k)
                .map(|i| {
                    let row = &h[i * k..i * k + k];
                    delta[i] * row.iter().zip(delta).map(|(a, b)| a * b).sum::<f64>()
                })
                .sum()
        };
        let nearest = error(&delta);
        let original = q.clone();
        let mut g: Vec<f64> = (0..k)
            .map(|i| {
                h[i * k..i * k + k]
                    .iter()
                    .zip(&delta)
                    .map(|(a, b)| a * b)
                    .sum::<f64>()
                    + lambda * delta[i]
            })
            .collect();
        for _ in 0..PASSES {
            let mut flips = 0;
            for i in 0..k {
                let Some(a) = alt[i] else { continue };
                let d = delta_of(i, a) - delta[i];
                let gain = 2.0 * d * g[i] + d * d * (h[i * k + i] + lambda);
                if gain < -1e-12 * nearest.abs().max(f64::MIN_POSITIVE) {
                    alt[i] = Some(q[i]);
                    q[i] = a;
                    delta[i] += d;
                    for (gj, hj) in g.iter_mut().zip(&h[i * k..i * k + k]) {
                        *gj += d * hj;
                    }
                    g[i] += d * lambda;
                    flips += 1;
                }
            }
            if flips == 0 {
                break;
            }
        }
        let learned = error(&delta);
        if learned > nearest {
            return (vec![], nearest, nearest);
        }
        let changed = (0..k)
            .filter(|&i| q[i] != original[i])
            .map(|i| (flats[i], q[i]))
            .collect();
        (changed, nearest, learned)
    }
}

/// The Gram matrices of each layer's inputs over the calibration samples `indices`.
fn gram_matrices(
    layers: &[Layer],
    float: &pb::ModelProto,
    dataset: &Dataset,
    indices: &[usize],
    first: usize,
    progress: &Progress,
) -> Result<Vec<Gram>> {
    let mut tensors: Vec<String> = vec![];
    for l in layers {
        if !tensors.contains(&l.input) {
            tensors.push(l.input.clone());
        }
    }
    let slot: Vec<usize> = layers
        .iter()
        .map(|l| tensors.iter().position(|t| *t == l.input).unwrap_or(0))
        .collect();
    let inputs = crate::tensor::model_inputs(float)?;
    let example = dataset.bound(first, &inputs)?.inputs;
    let run = TractModel::load(float, &example, Some(&tensors))
        .context("adaround: the float model with the layers' inputs exposed")?;
    let shapes = run.output_shapes()?;
    progress.stage("adaround: layer inputs", indices.len() as u64);
    let empty = || layers.iter().map(Gram::new).collect::<Vec<_>>();
    let per_worker = indices
        .len()
        .div_ceil(rayon::current_num_threads().max(1))
        .max(1);
    indices
        .par_chunks(per_worker)
        .map(|chunk| -> Result<Vec<Gram>> {
            let mut acc = empty();
            for &i in chunk {
                progress.check()?;
                let sample = dataset.bound(i, &inputs)?;
                let outputs = run
                    .run(&sample.inputs)
                    .with_context(|| format!("adaround: calibration sample {i}"))?;
                for ((layer, gram), &s) in layers.iter().zip(&mut acc).zip(&slot) {
                    observe(layer, &outputs[s], &shapes[s], gram, i).with_context(|| {
                        format!("adaround: calibration sample {i}, layer '{}'", layer.weight)
                    })?;
                }
                progress.step();
            }
            Ok(acc)
        })
        .try_reduce(empty, |mut a, b| {
            for (x, y) in a.iter_mut().zip(b) {
                x.merge(y);
            }
            Ok(a)
        })
}

/// Learns roundings for the weights `quantized` (the round-to-nearest quantization of the
/// prepared float model `float`) quantizes, on up to `samples` calibration samples.
pub fn learn(
    float: &pb::ModelProto,
    quantized: &pb::ModelProto,
    qtype: QType,
    dataset: &Dataset,
    samples: usize,
    progress: &Progress,
) -> Result<Learned> {
    crate::jobs::checkpoint("adaround")?;
    let layers = layers(float, quantized)?;
    if layers.is_empty() {
        return Ok(Learned {
            roundings: Roundings::new(),
            note: "adaround: no quantized Conv, Gemm or MatMul weight to learn".into(),
            error_nearest: 0.0,
            error_learned: 0.0,
        });
    }
    let memory: usize = layers.iter().map(|l| l.groups() * l.k * l.k * 8).sum();
    crate::host::check_fits_in_memory(
        memory as u64 * (rayon::current_num_threads() as u64 + 1),
        &"adaround: the Gram matrices of the layers' inputs",
    )?;
    let indices: Vec<usize> = dataset
        .indices(Purpose::Calibration)?
        .take(samples)
        .collect();
    let Some(&first) = indices.first() else {
        bail!("{}: no calibration samples", dataset.path.display());
    };
    let grams = gram_matrices(&layers, float, dataset, &indices, first, progress)?;
    progress.stage("adaround: rounding", layers.len() as u64);
    let f = onnx::graph(float);
    let fi = GraphIndex::new(f);
    let mut roundings = Roundings::new();
    let (mut nearest, mut learned, mut flipped, mut total) = (0.0, 0.0, 0usize, 0usize);
    for (layer, gram) in layers.iter().zip(&grams) {
        progress.check()?;
        let weight = onnx::tensor_to_f32(&f.initializer[fi.initializers[&layer.weight]])?;
        let (values, changed, n, l) = learn_layer(layer, &weight, gram, qtype);
        nearest += n;
        learned += l;
        flipped += changed;
        total += values.len();
        roundings.insert(
            layer.weight.clone(),
            Rounding {
                scales: layer.params.iter().map(|p| p.scale).collect(),
                values,
            },
        );
        progress.step();
    }
    let reduction = if nearest > 0.0 {
        10.0 * (nearest / learned.max(f64::MIN_POSITIVE)).log10()
    } else {
        0.0
    };
    Ok(Learned {
        roundings,
        note: format!(
            "adaround: {} layers, {flipped} of {total} weights ({:.1}%) round the other way; layer output error {reduction:.2} dB lower than round-to-nearest on {} calibration samples",
            layers.len(),
            100.0 * flipped as f64 / total.max(1) as f64,
            indices.len()
        ),
        error_nearest: nearest,
        error_learned: learned,
    })
}
