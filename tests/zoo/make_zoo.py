"""Builds the test zoo: small ONNX models, each with a structure real models have and a past
rewrite got wrong. The .onnx files are checked in (each well under 1 MB); run this script
again (with the project's venv: target/py/bin/python3 tests/zoo/make_zoo.py) after a change.

Weights are drawn from a fixed seed, so the files are the same on every run.
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(7)


def w(name, *shape, scale=0.3):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def const(name, values, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def save(name, graph, opset, ir=None):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="quantbench-zoo")
    if ir is not None:
        model.ir_version = ir
    onnx.checker.check_model(model, full_check=True)
    path = os.path.join(HERE, name + ".onnx")
    onnx.save(model, path)
    print(f"{name}.onnx  {os.path.getsize(path):>7} bytes")


def layer_norm(x, prefix, d, nodes, inits):
    inits += [const(prefix + "_g", np.ones(d) + rng.standard_normal(d) * 0.05),
              const(prefix + "_b", rng.standard_normal(d) * 0.05)]
    nodes.append(helper.make_node("LayerNormalization", [x, prefix + "_g", prefix + "_b"],
                                  [prefix + "_out"], axis=-1, epsilon=1e-5, name=prefix))
    return prefix + "_out"


def linear(x, prefix, d_in, d_out, nodes, inits):
    """MatMul + Add, as PyTorch exports nn.Linear."""
    inits += [w(prefix + "_w", d_in, d_out, scale=1 / np.sqrt(d_in)),
              const(prefix + "_b", rng.standard_normal(d_out) * 0.1)]
    nodes += [helper.make_node("MatMul", [x, prefix + "_w"], [prefix + "_mm"], name=prefix + "_MatMul"),
              helper.make_node("Add", [prefix + "_mm", prefix + "_b"], [prefix + "_out"], name=prefix + "_Add")]
    return prefix + "_out"


def encoder():
    """A BERT-style encoder block with a classifier: int64 input_ids and attention_mask,
    Gather embeddings, MatMul+Add linears, LayerNorm, attention with an additive -1e4 mask,
    Softmax, GELU written with Erf; two outputs (logits, hidden states)."""
    vocab, d, ff = 64, 32, 64
    nodes, inits = [], []
    inits += [w("tok_emb", vocab, d, scale=0.5), w("pos_emb", 16, d, scale=0.1)]
    nodes += [
        helper.make_node("Gather", ["tok_emb", "input_ids"], ["tok"], name="tok_Gather"),
        helper.make_node("Shape", ["input_ids"], ["ids_shape"], name="ids_Shape"),
        helper.make_node("Gather", ["ids_shape", "one"], ["seq_len"], axis=0, name="seq_Gather"),
        helper.make_node("Range", ["zero", "seq_len", "one"], ["positions"], name="pos_Range"),
        helper.make_node("Gather", ["pos_emb", "positions"], ["pos"], name="pos_Gather"),
        helper.make_node("Add", ["tok", "pos"], ["emb"], name="emb_Add"),
    ]
    inits += [const("zero", 0, np.int64), const("one", 1, np.int64)]
    x = layer_norm("emb", "ln0", d, nodes, inits)
    q = linear(x, "q", d, d, nodes, inits)
    k = linear(x, "k", d, d, nodes, inits)
    v = linear(x, "v", d, d, nodes, inits)
    inits += [const("scale", 1 / np.sqrt(d)), const("neg", -1e4), const("fone", 1.0),
              const("axes1", [1], np.int64)]
    nodes += [
        helper.make_node("Transpose", [k], ["kt"], perm=[0, 2, 1], name="k_Transpose"),
        helper.make_node("MatMul", [q, "kt"], ["scores"], name="scores_MatMul"),
        helper.make_node("Mul", ["scores", "scale"], ["scaled"], name="scores_Mul"),
        # additive mask: (1 - mask) * -1e4, broadcast over query positions
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT, name="mask_Cast"),
        helper.make_node("Sub", ["fone", "maskf"], ["inv"], name="mask_Sub"),
        helper.make_node("Mul", ["inv", "neg"], ["bias"], name="mask_Mul"),
        helper.make_node("Unsqueeze", ["bias", "axes1"], ["bias3"], name="mask_Unsqueeze"),
        helper.make_node("Add", ["scaled", "bias3"], ["masked"], name="mask_Add"),
        helper.make_node("Softmax", ["masked"], ["probs"], axis=-1, name="attn_Softmax"),
        helper.make_node("MatMul", ["probs", v], ["ctx"], name="ctx_MatMul"),
    ]
    o = linear("ctx", "o", d, d, nodes, inits)
    nodes.append(helper.make_node("Add", [x, o], ["res1"], name="res1_Add"))
    h = layer_norm("res1", "ln1", d, nodes, inits)
    f1 = linear(h, "ff1", d, ff, nodes, inits)
    inits += [const("sqrt2", np.sqrt(2.0)), const("half", 0.5)]
    nodes += [
        helper.make_node("Div", [f1, "sqrt2"], ["g_div"], name="gelu_Div"),
        helper.make_node("Erf", ["g_div"], ["g_erf"], name="gelu_Erf"),
        helper.make_node("Add", ["g_erf", "fone"], ["g_add"], name="gelu_Add"),
        helper.make_node("Mul", [f1, "g_add"], ["g_mul"], name="gelu_Mul"),
        helper.make_node("Mul", ["g_mul", "half"], ["gelu"], name="gelu_Mul2"),
    ]
    f2 = linear("gelu", "ff2", ff, d, nodes, inits)
    nodes.append(helper.make_node("Add", [h, f2], ["res2"], name="res2_Add"))
    hidden = layer_norm("res2", "ln2", d, nodes, inits)
    nodes.append(helper.make_node("Identity", [hidden], ["last_hidden_state"], name="hidden_Identity"))
    inits += [const("first", 0, np.int64)]
    nodes.append(helper.make_node("Gather", [hidden, "first"], ["cls"], axis=1, name="cls_Gather"))
    logits = linear("cls", "cls_head", d, 3, nodes, inits)
    nodes.append(helper.make_node("Identity", [logits], ["logits"], name="logits_Identity"))
    graph = helper.make_graph(
        nodes, "encoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3]),
         helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", d])],
        inits)
    save("encoder", graph, 17)


def detection_head():
    """A tiny detector: Conv backbone, Resize up, Concat with the earlier feature, Sigmoid
    scores, boxes, and NonMaxSuppression; three outputs (boxes, scores, selected indices)."""
    nodes, inits = [], []
    inits += [w("c1_w", 8, 3, 3, 3), const("c1_b", rng.standard_normal(8) * 0.1),
              w("c2_w", 8, 8, 3, 3, scale=0.2), const("c2_b", rng.standard_normal(8) * 0.1),
              w("c3_w", 5, 16, 1, 1, scale=0.2), const("c3_b", rng.standard_normal(5) * 0.1),
              const("roi", [], np.float32), const("up", [1, 1, 2, 2]),
              const("shape_b", [1, 4, 64], np.int64), const("shape_s", [1, 1, 64], np.int64),
              const("max_out", [10], np.int64), const("iou", [0.5]), const("score_th", [0.3]),
              const("split4", [4, 1], np.int64)]
    nodes += [
        helper.make_node("Conv", ["x", "c1_w", "c1_b"], ["f1"], pads=[1, 1, 1, 1], name="c1"),
        helper.make_node("Relu", ["f1"], ["r1"], name="r1"),
        helper.make_node("Conv", ["r1", "c2_w", "c2_b"], ["f2"], pads=[1, 1, 1, 1], strides=[2, 2], name="c2"),
        helper.make_node("Relu", ["f2"], ["r2"], name="r2"),
        helper.make_node("Resize", ["r2", "roi", "up"], ["u2"], mode="nearest", name="up"),
        helper.make_node("Concat", ["r1", "u2"], ["cat"], axis=1, name="cat"),
        helper.make_node("Conv", ["cat", "c3_w", "c3_b"], ["head"], name="c3"),
        helper.make_node("Split", ["head", "split4"], ["box_raw", "score_raw"], axis=1, name="split"),
        helper.make_node("Reshape", ["box_raw", "shape_b"], ["box_r"], name="box_reshape"),
        helper.make_node("Transpose", ["box_r"], ["boxes"], perm=[0, 2, 1], name="box_T"),
        helper.make_node("Sigmoid", ["score_raw"], ["score_sig"], name="sig"),
        helper.make_node("Reshape", ["score_sig", "shape_s"], ["scores"], name="score_reshape"),
        helper.make_node("NonMaxSuppression", ["boxes", "scores", "max_out", "iou", "score_th"],
                         ["selected"], name="nms"),
    ]
    graph = helper.make_graph(
        nodes, "detection_head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 64, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, 64]),
         helper.make_tensor_value_info("selected", TensorProto.INT64, [None, 3])],
        inits)
    save("detection_head", graph, 13)


def if_branch():
    """An If whose then-branch reads an outer initializer no main-graph node uses."""
    inits = [w("branch_w", 4, 4), const("zero_f", 0.0)]
    then_graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "branch_w"], ["then_out"], name="then_MatMul")],
        "then", [], [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, [1, 4])])
    else_graph = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["else_out"], name="else_Neg")],
        "else", [], [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, [1, 4])])
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0, name="total"),
        helper.make_node("Greater", ["total", "zero_f"], ["cond"], name="cond"),
        helper.make_node("If", ["cond"], ["branch"], then_branch=then_graph, else_branch=else_graph, name="if"),
        helper.make_node("Relu", ["branch"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes, "if_branch",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    save("if_branch", graph, 13)


def loop():
    """A Loop of three steps whose body multiplies by an outer weight."""
    inits = [w("loop_w", 4, 4, scale=0.4), const("trips", 3, np.int64), const("true", True, np.bool_),
             w("pre_w", 4, 4)]
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"], name="body_cond"),
         helper.make_node("MatMul", ["h_in", "loop_w"], ["h_mm"], name="body_MatMul"),
         helper.make_node("Tanh", ["h_mm"], ["h_out"], name="body_Tanh")],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("h_in", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("h_out", TensorProto.FLOAT, [1, 4])])
    nodes = [helper.make_node("MatMul", ["x", "pre_w"], ["h0"], name="pre_MatMul"),
             helper.make_node("Loop", ["trips", "true", "h0"], ["y"], body=body, name="loop")]
    graph = helper.make_graph(
        nodes, "loop", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    save("loop", graph, 13)


def conv_transpose_group2():
    inits = [w("ct_w", 4, 3, 3, 3), const("ct_b", rng.standard_normal(6) * 0.1),
             w("c_w", 4, 4, 3, 3, scale=0.2)]
    nodes = [helper.make_node("Conv", ["x", "c_w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("ConvTranspose", ["r", "ct_w", "ct_b"], ["y"], group=2, strides=[2, 2],
                              name="convT")]
    graph = helper.make_graph(
        nodes, "conv_transpose_group2",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 17, 17])], inits)
    save("conv_transpose_group2", graph, 13)


def gemm_variants():
    inits = [w("g0_w", 8, 6), const("g0_c", rng.standard_normal((1, 6)) * 0.1),
             w("g1_w", 5, 6), const("g1_c", rng.standard_normal((1, 5)) * 0.1)]
    nodes = [helper.make_node("Gemm", ["x", "g0_w", "g0_c"], ["h"], transB=0, name="gemm_transB0"),
             helper.make_node("Relu", ["h"], ["hr"], name="relu"),
             helper.make_node("Gemm", ["hr", "g1_w", "g1_c"], ["y"], transB=1, name="gemm_transB1")]
    graph = helper.make_graph(
        nodes, "gemm_variants", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], inits)
    save("gemm_variants", graph, 13)


def batchnorm_after_gemm():
    inits = [w("g_w", 6, 8), const("g_b", rng.standard_normal(6) * 0.1),
             const("bn_s", 1 + rng.standard_normal(6) * 0.2), const("bn_b", rng.standard_normal(6) * 0.2),
             const("bn_m", rng.standard_normal(6) * 0.2), const("bn_v", 0.5 + rng.random(6))]
    nodes = [helper.make_node("Gemm", ["x", "g_w", "g_b"], ["h"], transB=1, name="gemm"),
             helper.make_node("BatchNormalization", ["h", "bn_s", "bn_b", "bn_m", "bn_v"], ["y"], name="bn")]
    graph = helper.make_graph(
        nodes, "batchnorm_after_gemm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 6])], inits)
    save("batchnorm_after_gemm", graph, 13)


def equal_split():
    """An equal Split with no `split` input at opset 13: raising the opset to 18+ (int4
    blocks need 21) must add `num_outputs`."""
    inits = [w("m_w", 8, 8)]
    nodes = [helper.make_node("MatMul", ["x", "m_w"], ["h"], name="mm"),
             helper.make_node("Split", ["h"], ["a", "b"], axis=1, name="split"),
             helper.make_node("Mul", ["a", "b"], ["y"], name="mul")]
    graph = helper.make_graph(
        nodes, "equal_split", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    save("equal_split", graph, 13)


def unused_input():
    inits = [w("u_w", 4, 3)]
    nodes = [helper.make_node("MatMul", ["x", "u_w"], ["y"], name="mm")]
    graph = helper.make_graph(
        nodes, "unused_input",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("unused", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)
    save("unused_input", graph, 13)


def conv_mul_per_channel():
    """A per-channel Mul after a Conv (a folded scale layer), with channels of very different
    magnitude: quantized per tensor it would zero the small ones."""
    scale = np.array([1.0, 0.01, 5.0, 0.002], dtype=np.float32).reshape(1, 4, 1, 1)
    inits = [w("c_w", 4, 3, 3, 3), const("c_b", rng.standard_normal(4) * 0.1),
             numpy_helper.from_array(scale, "ch_scale")]
    nodes = [helper.make_node("Conv", ["x", "c_w", "c_b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Mul", ["c", "ch_scale"], ["m"], name="scale_mul"),
             helper.make_node("Relu", ["m"], ["y"], name="relu")]
    graph = helper.make_graph(
        nodes, "conv_mul_per_channel", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    save("conv_mul_per_channel", graph, 13)


def lstm_from_constant_state():
    """An LSTM whose initial state comes from ConstantOfShape (as in PP-OCR's recognizer): a
    runtime that keeps execution state between runs gives different outputs for one input."""
    hidden, d = 6, 4
    inits = [w("lstm_W", 1, 4 * hidden, d), w("lstm_R", 1, 4 * hidden, hidden),
             const("lstm_B", rng.standard_normal((1, 8 * hidden)) * 0.1),
             const("state_shape", [1, 1, hidden], np.int64), w("out_w", hidden, 3)]
    nodes = [
        helper.make_node("ConstantOfShape", ["state_shape"], ["h0"],
                         value=numpy_helper.from_array(np.zeros(1, np.float32)), name="h0"),
        helper.make_node("ConstantOfShape", ["state_shape"], ["c0"],
                         value=numpy_helper.from_array(np.zeros(1, np.float32)), name="c0"),
        helper.make_node("LSTM", ["x", "lstm_W", "lstm_R", "lstm_B", "", "h0", "c0"],
                         ["seq", "h_last"], hidden_size=hidden, name="lstm"),
        helper.make_node("Squeeze", ["h_last", "zero_axes"], ["h_sq"], name="squeeze"),
        helper.make_node("MatMul", ["h_sq", "out_w"], ["y"], name="out"),
    ]
    inits.append(const("zero_axes", [0], np.int64))
    graph = helper.make_graph(
        nodes, "lstm_from_constant_state",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 1, d])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)
    save("lstm_from_constant_state", graph, 13)


def batchnorm_after_convtranspose_and_matmul():
    """BatchNormalization in three places: after a Relu (nothing to fold into: left float),
    after a grouped ConvTranspose and after a [M, K] x [K, N] MatMul (both folded)."""
    def bn(prefix, c):
        return [const(prefix + "_s", 1 + rng.standard_normal(c) * 0.2),
                const(prefix + "_b", rng.standard_normal(c) * 0.2),
                const(prefix + "_m", rng.standard_normal(c) * 0.2),
                const(prefix + "_v", 0.5 + rng.random(c))]
    inits = bn("bn0", 4) + [w("ct_w", 4, 3, 3, 3), const("ct_b", rng.standard_normal(6) * 0.1)]
    inits += bn("bn1", 6) + [w("mm_w", 6 * 7 * 7, 10, scale=0.05)] + bn("bn2", 10)
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("BatchNormalization", ["r", "bn0_s", "bn0_b", "bn0_m", "bn0_v"], ["n0"], name="bn_after_relu"),
             helper.make_node("ConvTranspose", ["n0", "ct_w", "ct_b"], ["ct"], group=2, name="convT"),
             helper.make_node("BatchNormalization", ["ct", "bn1_s", "bn1_b", "bn1_m", "bn1_v"], ["n1"], name="bn_after_convT"),
             helper.make_node("Flatten", ["n1"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "mm_w"], ["mm"], name="matmul"),
             helper.make_node("BatchNormalization", ["mm", "bn2_s", "bn2_b", "bn2_m", "bn2_v"], ["y"], name="bn_after_matmul")]
    graph = helper.make_graph(
        nodes, "batchnorm_after_convtranspose_and_matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    save("batchnorm_after_convtranspose_and_matmul", graph, 13)


def decomposed_layer_norm(x, prefix, d, nodes, inits, r):
    """LayerNorm as JAX exports it through tf2onnx: ReduceSum and a multiply by 1/d for the
    means, Sub, Mul, Sqrt, Reciprocal, then the scale and shift."""
    inits += [const(prefix + "/inv_d", 1.0 / d), const(prefix + "/eps", 1e-6),
              const(prefix + "/axes", [-1], np.int64),
              const(prefix + "/scale", np.ones(d) + r.standard_normal(d) * 0.05),
              const(prefix + "/bias", r.standard_normal(d) * 0.05)]
    p = prefix + "/"
    nodes += [
        helper.make_node("ReduceSum", [x, p + "axes"], [p + "sum"], keepdims=1, name=p + "ReduceSum"),
        helper.make_node("Mul", [p + "sum", p + "inv_d"], [p + "mean"], name=p + "mul"),
        helper.make_node("Sub", [x, p + "mean"], [p + "centered"], name=p + "sub"),
        helper.make_node("Mul", [p + "centered", p + "centered"], [p + "sq"], name=p + "mul_1"),
        helper.make_node("ReduceSum", [p + "sq", p + "axes"], [p + "sqsum"], keepdims=1, name=p + "ReduceSum_1"),
        helper.make_node("Mul", [p + "sqsum", p + "inv_d"], [p + "var"], name=p + "mul_2"),
        helper.make_node("Add", [p + "var", p + "eps"], [p + "var_eps"], name=p + "add"),
        helper.make_node("Sqrt", [p + "var_eps"], [p + "std"], name=p + "Sqrt"),
        helper.make_node("Reciprocal", [p + "std"], [p + "rstd"], name=p + "Reciprocal"),
        helper.make_node("Mul", [p + "centered", p + "rstd"], [p + "normed"], name=p + "mul_3"),
        helper.make_node("Mul", [p + "normed", p + "scale"], [p + "scaled"], name=p + "mul_4"),
        helper.make_node("Add", [p + "scaled", p + "bias"], [p + "out"], name=p + "add_1"),
    ]
    return p + "out"


def dense(x, prefix, d_in, d_out, nodes, inits, r):
    """flax.linen.Dense through tf2onnx: MatMul, then Add of the bias."""
    inits += [numpy_helper.from_array((r.standard_normal((d_in, d_out)) / np.sqrt(d_in)).astype(np.float32), prefix + "/kernel"),
              const(prefix + "/bias", r.standard_normal(d_out) * 0.05)]
    nodes += [helper.make_node("MatMul", [x, prefix + "/kernel"], [prefix + "/dot"], name=prefix + "/MatMul"),
              helper.make_node("Add", [prefix + "/dot", prefix + "/bias"], [prefix + "/out"], name=prefix + "/Add")]
    return prefix + "/out"


def decomposed_softmax(x, prefix, nodes, inits):
    p = prefix + "/"
    inits += [const(p + "axes", [-1], np.int64)]
    nodes += [
        helper.make_node("ReduceMax", [x, p + "axes"], [p + "max"], keepdims=1, name=p + "ReduceMax"),
        helper.make_node("Sub", [x, p + "max"], [p + "shifted"], name=p + "sub"),
        helper.make_node("Exp", [p + "shifted"], [p + "exp"], name=p + "Exp"),
        helper.make_node("ReduceSum", [p + "exp", p + "axes"], [p + "sum"], keepdims=1, name=p + "ReduceSum"),
        helper.make_node("Div", [p + "exp", p + "sum"], [p + "out"], name=p + "div"),
    ]
    return p + "out"


def tanh_gelu(x, prefix, nodes, inits):
    """GELU's tanh approximation, as jax.nn.gelu(approximate=True) exports."""
    p = prefix + "/"
    inits += [const(p + "c", 0.044715), const(p + "k", np.sqrt(2 / np.pi)), const(p + "one", 1.0),
              const(p + "half", 0.5)]
    nodes += [
        helper.make_node("Mul", [x, x], [p + "x2"], name=p + "mul"),
        helper.make_node("Mul", [p + "x2", x], [p + "x3"], name=p + "mul_1"),
        helper.make_node("Mul", [p + "x3", p + "c"], [p + "cx3"], name=p + "mul_2"),
        helper.make_node("Add", [x, p + "cx3"], [p + "inner"], name=p + "add"),
        helper.make_node("Mul", [p + "inner", p + "k"], [p + "scaled"], name=p + "mul_3"),
        helper.make_node("Tanh", [p + "scaled"], [p + "tanh"], name=p + "Tanh"),
        helper.make_node("Add", [p + "tanh", p + "one"], [p + "onep"], name=p + "add_1"),
        helper.make_node("Mul", [x, p + "half"], [p + "halfx"], name=p + "mul_4"),
        helper.make_node("Mul", [p + "halfx", p + "onep"], [p + "out"], name=p + "mul_5"),
    ]
    return p + "out"


def jax_block():
    """A byte-level classifier as JAX exports it through tf2onnx: int32 token ids, an
    embedding whose few outlier dimensions dwarf the rest (as trained residual streams have),
    a pre-norm transformer block with every LayerNorm and the softmax spelled out in primitive
    ops, a tanh-GELU MLP, mean pooling, Tanh and a Dense head."""
    r = np.random.default_rng(23)
    vocab, d, ff = 256, 32, 64
    nodes, inits = [], []
    emb = r.standard_normal((vocab, d)) * 0.5
    emb[:, [3, 17]] *= 40.0
    inits += [const("jax2tf_classify_/embed/embedding", emb)]
    nodes.append(helper.make_node("Gather", ["jax2tf_classify_/embed/embedding", "tokens"], ["x0"],
                                  name="jax2tf_classify_/embed/Gather"))
    h = decomposed_layer_norm("x0", "jax2tf_classify_/block/ln_1", d, nodes, inits, r)
    q = dense(h, "jax2tf_classify_/block/attn/query", d, d, nodes, inits, r)
    k = dense(h, "jax2tf_classify_/block/attn/key", d, d, nodes, inits, r)
    v = dense(h, "jax2tf_classify_/block/attn/value", d, d, nodes, inits, r)
    inits += [const("jax2tf_classify_/block/attn/scale", 1 / np.sqrt(d))]
    nodes += [
        helper.make_node("Transpose", [k], ["kt"], perm=[0, 2, 1], name="jax2tf_classify_/block/attn/transpose"),
        helper.make_node("MatMul", [q, "kt"], ["scores"], name="jax2tf_classify_/block/attn/MatMul"),
        helper.make_node("Mul", ["scores", "jax2tf_classify_/block/attn/scale"], ["scaled_scores"],
                         name="jax2tf_classify_/block/attn/mul"),
    ]
    probs = decomposed_softmax("scaled_scores", "jax2tf_classify_/block/attn/softmax", nodes, inits)
    nodes.append(helper.make_node("MatMul", [probs, v], ["ctx"], name="jax2tf_classify_/block/attn/MatMul_1"))
    o = dense("ctx", "jax2tf_classify_/block/attn/out", d, d, nodes, inits, r)
    nodes.append(helper.make_node("Add", ["x0", o], ["x1"], name="jax2tf_classify_/block/add"))
    h2 = decomposed_layer_norm("x1", "jax2tf_classify_/block/ln_2", d, nodes, inits, r)
    f1 = dense(h2, "jax2tf_classify_/block/mlp/fc1", d, ff, nodes, inits, r)
    g = tanh_gelu(f1, "jax2tf_classify_/block/mlp/gelu", nodes, inits)
    f2 = dense(g, "jax2tf_classify_/block/mlp/fc2", ff, d, nodes, inits, r)
    nodes.append(helper.make_node("Add", ["x1", f2], ["x2"], name="jax2tf_classify_/block/add_1"))
    hf = decomposed_layer_norm("x2", "jax2tf_classify_/ln_f", d, nodes, inits, r)
    inits += [const("jax2tf_classify_/pool/axes", [1], np.int64)]
    nodes += [
        helper.make_node("ReduceMean", [hf, "jax2tf_classify_/pool/axes"], ["pooled"], keepdims=0,
                         name="jax2tf_classify_/pool/ReduceMean"),
        helper.make_node("Tanh", ["pooled"], ["pooled_tanh"], name="jax2tf_classify_/pool/Tanh"),
    ]
    logits = dense("pooled_tanh", "jax2tf_classify_/head", d, 4, nodes, inits, r)
    nodes.append(helper.make_node("Identity", [logits], ["logits"], name="jax2tf_classify_/Identity"))
    graph = helper.make_graph(
        nodes, "jax_block",
        [helper.make_tensor_value_info("tokens", TensorProto.INT32, ["batch", 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])],
        inits)
    save("jax_block", graph, 18)


def patterns():
    """One of each spelled-out unit on an MLP, each between two Dense layers: mean-variance
    and RMS normalisation, GELU with Erf and with Tanh, softmax, SiLU, HardSwish as
    x * relu6(x + 3) / 6 and as x * HardSigmoid(x)."""
    r = np.random.default_rng(29)
    d = 16
    nodes, inits = [], []
    x = dense("features", "in", 8, d, nodes, inits, r)
    x = decomposed_layer_norm(x, "mvn", d, nodes, inits, r)
    x = dense(x, "d1", d, d, nodes, inits, r)
    p = "rms/"
    inits += [const(p + "axes", [-1], np.int64), const(p + "eps", 1e-6), const(p + "two", 2.0),
              const(p + "gamma", np.ones(d) + r.standard_normal(d) * 0.05)]
    nodes += [
        helper.make_node("Pow", [x, p + "two"], [p + "sq"], name=p + "Pow"),
        helper.make_node("ReduceMean", [p + "sq", p + "axes"], [p + "ms"], keepdims=1, name=p + "ReduceMean"),
        helper.make_node("Add", [p + "ms", p + "eps"], [p + "ms_eps"], name=p + "Add"),
        helper.make_node("Sqrt", [p + "ms_eps"], [p + "rms"], name=p + "Sqrt"),
        helper.make_node("Div", [x, p + "rms"], [p + "normed"], name=p + "Div"),
        helper.make_node("Mul", [p + "normed", p + "gamma"], [p + "out"], name=p + "Mul"),
    ]
    x = dense(p + "out", "d2", d, d, nodes, inits, r)
    inits += [const("erf/sqrt2", np.sqrt(2.0)), const("erf/one", 1.0), const("erf/half", 0.5)]
    nodes += [
        helper.make_node("Div", [x, "erf/sqrt2"], ["erf/div"], name="erf/Div"),
        helper.make_node("Erf", ["erf/div"], ["erf/erf"], name="erf/Erf"),
        helper.make_node("Add", ["erf/erf", "erf/one"], ["erf/add"], name="erf/Add"),
        helper.make_node("Mul", [x, "erf/add"], ["erf/mul"], name="erf/Mul"),
        helper.make_node("Mul", ["erf/mul", "erf/half"], ["erf/out"], name="erf/Mul_1"),
    ]
    x = dense("erf/out", "d3", d, d, nodes, inits, r)
    x = tanh_gelu(x, "tanh_gelu", nodes, inits)
    x = dense(x, "d4", d, d, nodes, inits, r)
    nodes += [
        helper.make_node("Sigmoid", [x], ["silu/sig"], name="silu/Sigmoid"),
        helper.make_node("Mul", [x, "silu/sig"], ["silu/out"], name="silu/Mul"),
    ]
    x = dense("silu/out", "d5", d, d, nodes, inits, r)
    inits += [const("hs/three", 3.0), const("hs/zero", 0.0), const("hs/six", 6.0)]
    nodes += [
        helper.make_node("Add", [x, "hs/three"], ["hs/add"], name="hs/Add"),
        helper.make_node("Clip", ["hs/add", "hs/zero", "hs/six"], ["hs/relu6"], name="hs/Clip"),
        helper.make_node("Div", ["hs/relu6", "hs/six"], ["hs/div"], name="hs/Div"),
        helper.make_node("Mul", [x, "hs/div"], ["hs/out"], name="hs/Mul"),
    ]
    x = dense("hs/out", "d6", d, d, nodes, inits, r)
    nodes += [
        helper.make_node("HardSigmoid", [x], ["hsig/sig"], alpha=1 / 6, beta=0.5, name="hsig/HardSigmoid"),
        helper.make_node("Mul", [x, "hsig/sig"], ["hsig/out"], name="hsig/Mul"),
    ]
    x = dense("hsig/out", "d7", d, d, nodes, inits, r)
    x = decomposed_softmax(x, "sm", nodes, inits)
    nodes.append(helper.make_node("Identity", [x], ["probs"], name="probs_Identity"))
    graph = helper.make_graph(
        nodes, "patterns",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", d])],
        inits)
    save("patterns", graph, 18)


def relu6_mobilenet():
    """MobileNetV2-style inverted residual blocks with ReLU6 (Clip 0..6) between the
    convolutions and BatchNormalization after each, whose folded channel ranges differ by
    orders of magnitude (the case cross-layer equalization exists for)."""
    r = np.random.default_rng(31)
    nodes, inits = [], []

    def conv_bn(x, name, cin, cout, k, group=1, relu6=True):
        wshape = (cout, cin // group, k, k)
        fan_in = cin // group * k * k
        inits.append(numpy_helper.from_array(
            (r.standard_normal(wshape) * np.sqrt(2.0 / fan_in)).astype(np.float32), name + ".w"))
        gamma = np.exp(r.standard_normal(cout) * 1.2) * 0.5  # channel scales spread over ~2 decades
        inits.extend([const(name + ".g", gamma), const(name + ".b", r.standard_normal(cout) * 0.1),
                      const(name + ".m", r.standard_normal(cout) * 0.1), const(name + ".v", np.ones(cout))])
        nodes.append(helper.make_node("Conv", [x, name + ".w"], [name + ".c"], name=name,
                                      pads=[k // 2] * 4, group=group))
        nodes.append(helper.make_node("BatchNormalization",
                                      [name + ".c", name + ".g", name + ".b", name + ".m", name + ".v"],
                                      [name + ".bn"], name=name + ".BN", epsilon=1e-5))
        if not relu6:
            return name + ".bn"
        nodes.append(helper.make_node("Clip", [name + ".bn", "zero", "six"], [name + ".r"], name=name + ".ReLU6"))
        return name + ".r"

    inits.extend([const("zero", 0.0), const("six", 6.0)])
    x = conv_bn("image", "stem", 3, 16, 3)
    for b in range(3):
        h = conv_bn(x, f"b{b}.expand", 16, 64, 1)
        h = conv_bn(h, f"b{b}.dw", 64, 64, 3, group=64)
        h = conv_bn(h, f"b{b}.project", 64, 16, 1, relu6=False)
        nodes.append(helper.make_node("Add", [x, h], [f"b{b}.out"], name=f"b{b}.Add"))
        x = f"b{b}.out"
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"))
    inits.extend([numpy_helper.from_array((r.standard_normal((16, 10)) * 0.3).astype(np.float32), "fc.w"),
                  const("fc.b", np.zeros(10))])
    nodes.append(helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc"))
    graph = helper.make_graph(
        nodes, "relu6_mobilenet",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        inits)
    save("relu6_mobilenet", graph, 13)


if __name__ == "__main__":
    encoder()
    detection_head()
    if_branch()
    loop()
    conv_transpose_group2()
    gemm_variants()
    batchnorm_after_gemm()
    equal_split()
    unused_input()
    conv_mul_per_channel()
    lstm_from_constant_state()
    batchnorm_after_convtranspose_and_matmul()
    jax_block()
    patterns()
    relu6_mobilenet()
