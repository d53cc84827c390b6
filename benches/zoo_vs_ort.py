#!/usr/bin/env python3
"""The test zoo's models, int8 static per tensor, quantbench next to ONNX Runtime's
quantize_static on the same synthetic inputs (32 samples, calibration = evaluation).

    target/py/bin/python3 benches/zoo_vs_ort.py

Prints a Markdown table of output SQNR (scored output) on tract and ONNX Runtime.
"""
import glob
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from real_models import QB, ROOT, cell, evaluate, ort_quantize, run  # noqa: E402


def main():
    tmp = tempfile.mkdtemp(prefix="qb_zoo_")
    print("| zoo model | quantbench tract | quantbench ORT | ORT file, tract | ORT file, ORT |")
    print("|---|---|---|---|---|")
    for model in sorted(glob.glob(os.path.join(ROOT, "tests/zoo/*.onnx"))):
        name = os.path.basename(model)[:-5]
        npz = os.path.join(tmp, name + ".npz")
        run([QB, "dataset", "show", "synthetic", "--model", model, "--export", npz, "--synthetic-samples", "32"])
        qb = os.path.join(tmp, name + "-qb.onnx")
        p, _ = run([QB, "quantize", model, "--data", npz, "--out", qb])
        qcells = [cell(evaluate(qb, npz, model, b)) for b in ("tract", "ort")] if p.returncode == 0 \
            else ["fails: " + p.stderr.strip()[:80]] * 2
        ort = os.path.join(tmp, name + "-ort.onnx")
        _, err = ort_quantize(model, npz, ort, False)
        ocells = [cell(evaluate(ort, npz, model, b)) for b in ("tract", "ort")] if not err else ["fails: " + err[:80]] * 2
        print(f"| {name} | {qcells[0]} | {qcells[1]} | {ocells[0]} | {ocells[1]} |")


if __name__ == "__main__":
    main()
