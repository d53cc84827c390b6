#!/usr/bin/env python3
"""Evaluation throughput with 1 and 2 rayon workers on the 4,800 MNIST evaluation rows,
alternating runs in one session; also checks that accuracy and agreement are identical.

    python3 benches/eval_scaling.py [--runs 7] [--model M.onnx]
"""
import argparse
import json
import os
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QB = os.path.join(ROOT, "target/release/quantbench")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--model", default=os.path.join(ROOT, "sample_data/mnist/model.onnx"))
    ap.add_argument("--backend", default="tract")
    args = ap.parse_args()
    data = os.path.join(ROOT, "sample_data/mnist/dataset.ron")
    ref = os.path.join(ROOT, "sample_data/mnist/model.onnx")
    seconds = {1: [], 2: []}
    results = {}
    for _ in range(args.runs):
        for workers in (1, 2):
            env = dict(os.environ, RAYON_NUM_THREADS=str(workers))
            out = subprocess.run([QB, "eval", args.model, "--data", data, "--reference", ref,
                                  "--backend", args.backend, "--json"],
                                 env=env, check=True, capture_output=True, text=True).stdout
            d = json.loads(out)
            seconds[workers].append(d["seconds"])
            results.setdefault(workers, (d["top1"], d["agreement"], d["sqnr_db"]))
    m1, m2 = statistics.median(seconds[1]), statistics.median(seconds[2])
    n = 4800
    print(f"{args.backend}, {os.path.basename(args.model)}, {n} rows, medians of {args.runs} alternating runs")
    print(f"1 worker : {m1:.3f} s  ({n / m1:.0f} samples/s)")
    print(f"2 workers: {m2:.3f} s  ({n / m2:.0f} samples/s)")
    print(f"speed-up : {m1 / m2:.2f}x")
    print(f"identical metrics: {results[1] == results[2]} {results[1]}")


if __name__ == "__main__":
    main()
