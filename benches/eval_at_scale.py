#!/usr/bin/env python3
"""Evaluation at scale: peak memory over 1,000 and 50,000 samples (a folder of PNG images, an
uncompressed .npz and a CSV over 32 MB), throughput with 1 and 2 workers, and an interrupted
50,000-image evaluation resumed from its checkpoint.

The samples are the bundled MNIST digits (5,000 real ones), each written several times with a
different one-pixel shift so that every file differs. The candidate is quantbench's int8 model
and the reference the float model: two inferences per sample, as `eval --reference` runs them.

    python3 benches/eval_at_scale.py [--runs 3] [--work target/bench-scale] [--kill-after 0.6] [--checkpoint-every 1]

Needs numpy and pillow: `target/py/bin/pip install pillow` into the venv tests/run_all.sh makes.
"""
import argparse
import csv
import gzip
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QB = os.path.join(ROOT, "target/release/quantbench")
MNIST = os.path.join(ROOT, "sample_data/mnist")
SIZES = (1000, 50000)
PREPROCESS = """preprocess: (color: Grayscale, layout: Nchw, value_scale: Byte, mean: [0.0], std: [1.0]),
    calibration: (start: 0, count: Some(200)),
    evaluation: (start: 200, count: None),"""


def digits():
    import numpy as np

    rows = []
    with gzip.open(os.path.join(MNIST, "mnist_5k.csv.gz"), "rt") as f:
        for row in csv.reader(f):
            rows.append([int(v) for v in row])
    a = np.array(rows, dtype=np.uint8)
    return a[:, :784].reshape(-1, 28, 28), a[:, 784].astype(np.int64)


def variants(images, labels, n):
    """n samples: the digits in order, then shifted copies (right, down, left, up, ...)."""
    import numpy as np

    shifts = [(0, 0), (0, 1), (1, 0), (0, -1), (-1, 0), (1, 1), (-1, -1), (1, -1), (-1, 1)]
    out, out_labels = [], []
    k = 0
    while len(out) < n:
        dy, dx = shifts[k % len(shifts)]
        for img, label in zip(images, labels):
            if len(out) == n:
                break
            out.append(np.roll(np.roll(img, dy, axis=0), dx, axis=1))
            out_labels.append(label)
        k += 1
    return np.stack(out), np.array(out_labels)


def write_desc(work, kind, n, source):
    with open(os.path.join(work, f"{kind}-{n}.ron"), "w") as f:
        f.write(f"DatasetDesc(\n    source: {source},\n    {PREPROCESS}\n)\n")


def write_datasets(work):
    """Writes each size as a PNG class folder, an uncompressed .npz and a CSV, with their
    dataset descriptions `{images,npz,csv}-N.ron`."""
    import numpy as np
    from PIL import Image

    images, labels = digits()
    for n in SIZES:
        x, y = variants(images, labels, n)
        folder = os.path.join(work, f"images-{n}")
        if not os.path.isdir(folder):
            tmp = folder + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            for c in range(10):
                os.makedirs(os.path.join(tmp, str(c)))
            for i, (img, label) in enumerate(zip(x, y)):
                Image.fromarray(img).save(os.path.join(tmp, str(label), f"{i:06d}.png"))
            os.rename(tmp, folder)
        write_desc(work, "images", n, f'ImageFolder(path: "images-{n}", labels: FromSubfolders)')

        npz = os.path.join(work, f"digits-{n}.npz")
        if not os.path.exists(npz):
            # The model's input is named "Input3"; stored (uncompressed) members are read
            # from the file sample by sample.
            np.savez(npz + ".tmp.npz", Input3=x.reshape(n, 1, 28, 28).astype(np.float32), label=y)
            os.rename(npz + ".tmp.npz", npz)
        write_desc(work, "npz", n, f'Npz(path: "digits-{n}.npz")')

        table = os.path.join(work, f"digits-{n}.csv")
        if not os.path.exists(table):
            with open(table + ".tmp", "w") as f:
                for img, label in zip(x, y):
                    f.write(",".join(map(str, img.reshape(-1))) + f",{label}\n")
            os.rename(table + ".tmp", table)
        write_desc(work, "csv", n, f'Csv(path: "digits-{n}.csv", image: (channels: 1, height: 28, '
                   'width: 28), label_column: Some(Last), header: false)')


def run(args, env=None, kill_after=None):
    """Runs quantbench; returns (wall seconds, peak RSS in MiB, stdout, killed)."""
    start = time.monotonic()
    p = subprocess.Popen([QB] + args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         env=dict(os.environ, **(env or {})), text=True)
    killed = False
    if kill_after is not None:
        try:
            p.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            killed = True
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - start
    if not killed and p.returncode != 0:
        raise SystemExit(f"quantbench {' '.join(args)} failed ({p.returncode})")
    return wall, usage.ru_maxrss / 1024, out, killed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", default=os.path.join(ROOT, "target/bench-scale"))
    ap.add_argument("--kill-after", type=float, default=0.6,
                    help="kill the interrupted run after this share of an uninterrupted one")
    ap.add_argument("--checkpoint-every", type=float, default=1.0)
    ap.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    if args.generate_only:
        write_datasets(args.work)
        return
    # The datasets are written by a child process: a child's peak RSS on Linux counts the pages
    # it shared with its parent between fork and exec, so this process must stay small for
    # the peak memory of the quantbench processes it starts to mean anything.
    t = time.monotonic()
    subprocess.run([sys.executable, __file__, "--work", args.work, "--generate-only"], check=True)
    made = {(kind, n): os.path.join(args.work, f"{kind}-{n}.ron")
            for kind in ("images", "npz", "csv") for n in SIZES}
    print(f"datasets ready in {time.monotonic() - t:.0f} s under {args.work}")
    _, floor, _, _ = run(["--version"])
    print(f"peak RSS of `quantbench --version` (the floor this measurement can see): {floor:.1f} MiB")

    float_model = os.path.join(MNIST, "model.onnx")
    int8 = os.path.join(args.work, "mnist-int8.onnx")
    subprocess.run([QB, "quantize", float_model, "--data", os.path.join(MNIST, "dataset.ron"),
                    "--out", int8], check=True, capture_output=True)
    checkpoint = os.path.join(args.work, "eval.ckpt.ron")

    def eval_args(desc, extra=()):
        return ["eval", int8, "--reference", float_model, "--data", desc, "--json",
                "--checkpoint", checkpoint, "--checkpoint-every", str(args.checkpoint_every),
                *extra]

    print("\npeak memory (max RSS) and wall time of `quantbench eval` (2 workers, one run each)")
    print(f"{'format':8} {'samples':>8} {'peak MiB':>9} {'wall s':>7} {'samples/s':>10}  top-1   agreement")
    for kind in ("images", "npz", "csv"):
        for n in SIZES:
            wall, rss, out, _ = run(eval_args(made[(kind, n)]))
            d = json.loads(out)
            print(f"{kind:8} {d['samples']:>8} {rss:>9.1f} {wall:>7.2f} {d['samples'] / wall:>10.0f}"
                  f"  {d['top1']:.4f}  {d['agreement']:.4f}")

    print(f"\nthroughput on {SIZES[-1]} images, 1 vs 2 workers, medians of {args.runs} alternating runs")
    walls = {1: [], 2: []}
    figures = {}
    for _ in range(args.runs):
        for workers in (1, 2):
            wall, _, out, _ = run(eval_args(made[("images", SIZES[-1])]),
                                  env={"RAYON_NUM_THREADS": str(workers)})
            walls[workers].append(wall)
            d = json.loads(out)
            figures.setdefault(workers, (d["top1"], d["agreement"], d["sqnr_db"]))
    m1, m2 = statistics.median(walls[1]), statistics.median(walls[2])
    n = SIZES[-1] - 200
    print(f"1 worker : {m1:.2f} s  ({n / m1:.0f} samples/s)   runs {[round(w, 2) for w in walls[1]]}")
    print(f"2 workers: {m2:.2f} s  ({n / m2:.0f} samples/s)   runs {[round(w, 2) for w in walls[2]]}")
    print(f"speed-up : {m1 / m2:.2f}x   identical figures: {figures[1] == figures[2]}")

    print(f"\ninterrupted evaluation of {SIZES[-1]} images (SIGKILL after {args.kill_after:.0%} "
          f"of {m2:.1f} s, checkpoint every {args.checkpoint_every:g} s), then resumed")
    if os.path.exists(checkpoint):
        os.remove(checkpoint)
    first, _, _, killed = run(eval_args(made[("images", SIZES[-1])]), kill_after=m2 * args.kill_after)
    assert killed, "the evaluation finished before it was killed"
    saved = os.path.exists(checkpoint)
    second, _, out, _ = run(eval_args(made[("images", SIZES[-1])]))
    d = json.loads(out)
    resumed = (d["top1"], d["agreement"], d["sqnr_db"])
    print(f"killed after {first:.2f} s (checkpoint on disk: {saved}); resumed run {second:.2f} s")
    print(f"total {first + second:.2f} s vs {m2:.2f} s uninterrupted: {first + second - m2:.2f} s lost")
    print(f"same figures as uninterrupted: {resumed == figures[2]} {resumed}")


if __name__ == "__main__":
    main()
