"""Peak memory of quantbench opening hostile ONNX files: each file is small, but claims (or
would make a naive reader allocate) far more memory than the machine has. For each one, the
command's exit status, its one error line and its peak resident memory (/usr/bin/time -f %M).

    target/py/bin/python3 benches/hostile_models.py [path/to/quantbench]

Needs the onnx package (tests/run_all.sh puts it in target/py)."""
import os
import subprocess
import sys
import tempfile

import onnx
from onnx import TensorProto, helper

qb = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "quantbench")
work = tempfile.mkdtemp(prefix="hostile-")


def model(nodes, inits, inputs=None, outputs=None, opset=13):
    g = helper.make_graph(
        nodes, "hostile",
        inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def save(name, m):
    path = os.path.join(work, name + ".onnx")
    onnx.save(m, path)
    return path


def raw(name, dims, data=b""):
    t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims)
    t.raw_data = data
    return t


files = {}
# Dimensions whose product overflows 64 bits, with no data.
files["dims overflow 2^93"] = save("overflow", model(
    [helper.make_node("Add", ["x", "w"], ["y"])], [raw("w", [1 << 31, 1 << 31, 1 << 31])]))
# 2^40 floats (4 TiB) claimed, 16 bytes held.
files["4 TiB initializer, 16 B held"] = save("tib", model(
    [helper.make_node("Add", ["x", "w"], ["y"])], [raw("w", [1 << 20, 1 << 20], b"\0" * 16)]))
# A graph input of 10^12 x 10^12 (the synthetic data would be that size).
files["input [10^12, 10^12]"] = save("bigin", model(
    [helper.make_node("Relu", ["x"], ["y"])], [],
    inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [10**12, 10**12])]))
# External data that claims 1 TiB from a 16-byte file beside the model.
ext = raw("w", [1 << 18, 1 << 20])
ext.data_location = TensorProto.EXTERNAL
for k, v in [("location", "w.bin"), ("length", str(1 << 40))]:
    e = ext.external_data.add()
    e.key, e.value = k, v
open(os.path.join(work, "w.bin"), "wb").write(b"\0" * 16)
files["external data: 1 TiB tensor, file empty"] = save("external", model(
    [helper.make_node("Add", ["x", "w"], ["y"])], [ext]))
# Subgraphs nested 90 deep.
inner = helper.make_graph([helper.make_node("Identity", ["x"], ["y0"])], "b0", [],
                          [helper.make_tensor_value_info("y0", TensorProto.FLOAT, None)])
leaf = inner
for d in range(1, 30):
    node = helper.make_node("If", ["c"], [f"y{d}"], then_branch=inner, else_branch=leaf)
    inner = helper.make_graph([node], f"b{d}", [],
                              [helper.make_tensor_value_info(f"y{d}", TensorProto.FLOAT, None)])
top = helper.make_node("If", ["c"], ["y"], then_branch=inner, else_branch=leaf)
files["If nested 30 deep"] = save("nested", model(
    [top], [], inputs=[helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                       helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])]))
# 300,000 nodes (a 10 MB file): memory proportional to the file, nothing more.
chain = [helper.make_node("Identity", ["x"], ["t0"])]
chain += [helper.make_node("Identity", [f"t{i}"], [f"t{i + 1}"]) for i in range(299_999)]
chain.append(helper.make_node("Identity", ["t299999"], ["y"]))
files["300,000 nodes"] = save("many", model(chain, []))
# A protobuf field that says 2 GB follow, in a 40-byte file.
path = os.path.join(work, "lying.onnx")
open(path, "wb").write(b"\x08\x08\x3a\xff\xff\xff\xff\x07" + b"\0" * 32)
files["protobuf length prefix 2 GB, file 40 B"] = path


LIMIT_S = 120


def peak(args):
    # `timeout` stops a run that takes longer than LIMIT_S; time's figure covers its child.
    out = subprocess.run(["/usr/bin/time", "-f", "%M", "timeout", str(LIMIT_S), qb] + args,
                         capture_output=True, text=True)
    lines = out.stderr.strip().splitlines()
    kib = int(lines[-1])
    message = next((l for l in lines if l.startswith("error:")), "ok")
    if out.returncode == 124:
        message = f"still running after {LIMIT_S} s: stopped"
    return out.returncode, kib, message


print(f"{'file':<42} {'size':>9}  {'command':<22} {'peak RSS':>9}  answer")
for name, path in files.items():
    size = os.path.getsize(path)
    for command in (["inspect", path], ["quantize", path, "--mode", "fp16", "--out",
                                        os.path.join(work, "q.onnx")],
                    ["eval", path, "--data", "synthetic"]):
        code, kib, message = peak(command)
        message = message.replace(work + "/", "")
        if len(message) > 110:
            message = message[:107] + "..."
        print(f"{name:<42} {size:>9}  {command[0]:<22} {kib / 1024:>7.1f} MB  exit {code}: {message}")
