#!/usr/bin/env python3
"""The zoo's spelled-out-pattern models (tests/zoo/jax_block.onnx, tests/zoo/patterns.onnx),
quantbench's defaults next to ONNX Runtime's quantize_static and NNCF's defaults, side by side
in one run. Every tool calibrates on the same 64 synthetic samples; every file is judged in
ONNX Runtime on 64 other samples none of them saw.

    python3 -m venv target/nncf-venv && target/nncf-venv/bin/pip install "nncf==3.4.*" onnx onnxruntime
    target/py/bin/python3 benches/patterns_vs_peers.py [--nncf-python target/nncf-venv/bin/python3]

Prints a Markdown table: output SQNR / agreement with float (ONNX Runtime, default kernels),
and each tool's wall time (whole process).
"""
import argparse
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nncf_compare import NNCF, evaluate, cell  # noqa: E402
from real_models import QB, ROOT, ort_quantize, run  # noqa: E402

MODELS = ["jax_block", "patterns"]


def split(npz, calibration, report, n):
    d = np.load(npz)
    np.savez(calibration, **{k: v[:n] for k, v in d.items()})
    np.savez(report, **{k: v[n:] for k, v in d.items()})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nncf-python", default=os.path.join(ROOT, "target/nncf-venv/bin/python3"))
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="qb_patterns_")
    print("| model | quantbench default | quantbench --quantize-patterns | ONNX Runtime quantize_static | NNCF 3.4 |")
    print("|---|---|---|---|---|")
    for name in MODELS:
        model = os.path.join(ROOT, "tests/zoo", name + ".onnx")
        npz, cal, rep = (os.path.join(tmp, f"{name}-{s}.npz") for s in ("all", "cal", "report"))
        run([QB, "dataset", "show", "synthetic", "--model", model, "--export", npz, "--synthetic-samples", "128"])
        split(npz, cal, rep, 64)
        cells = []
        for flags in ([], ["--quantize-patterns"]):
            out = os.path.join(tmp, f"{name}-qb{len(flags)}.onnx")
            p, wall = run([QB, "quantize", model, "--data", cal, "--samples", "64", "--out", out] + flags)
            cells.append(cell(evaluate(out, rep, model, "ort")) + f", {wall:.2f} s" if p.returncode == 0
                         else "fails: " + p.stderr.strip()[-80:])
        out = os.path.join(tmp, f"{name}-ort.onnx")
        seconds, err = ort_quantize(model, cal, out, True)
        cells.append(cell(evaluate(out, rep, model, "ort")) + f", {seconds:.2f} s" if not err else "fails: " + err)
        out = os.path.join(tmp, f"{name}-nncf.onnx")
        p, wall = run([args.nncf_python, "-c", NNCF, model, cal, out])
        cells.append(cell(evaluate(out, rep, model, "ort")) + f", {wall:.2f} s" if p.returncode == 0
                     else "fails: " + p.stderr.strip().splitlines()[-1][:80])
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
