"""Writes fuzz/fixtures/: the small files that the dataset fuzz targets' descriptions point at
(images in a folder and in class folders, a CSV, .npy/.npz, ONNX test data, a tokenizer and
sentences). Standard library only; run once, the output is checked in."""
import os, struct, zlib, zipfile, io, shutil

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
shutil.rmtree(here, ignore_errors=True)
os.makedirs(here)

def png(path, w, h, channels, seed):
    rows = b""
    for y in range(h):
        rows += b"\x00" + bytes(((x * 37 + y * 11 + seed * 5 + c * 3) % 256) for x in range(w) for c in range(channels))
    color = {1: 0, 3: 2, 4: 6}[channels]
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)) \
        + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").write(data)

png(os.path.join(here, "photos", "a.png"), 6, 5, 3, 1)
png(os.path.join(here, "photos", "b.png"), 4, 7, 1, 2)
png(os.path.join(here, "photos", "c.png"), 5, 5, 4, 3)
png(os.path.join(here, "classes", "cat", "a.png"), 4, 4, 3, 4)
png(os.path.join(here, "classes", "dog", "b.png"), 4, 4, 3, 5)

with open(os.path.join(here, "rows.csv"), "w") as f:
    for i in range(4):
        f.write(",".join(str((i * 29 + k * 7) % 256) for k in range(4)) + f",{i % 2}\n")

def npy(shape, values, code="<f4", fmt="f"):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        code, "".join(f"{d}," for d in shape))
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + struct.pack("<%d%s" % (len(values), fmt), *values)

open(os.path.join(here, "arr.npy"), "wb").write(npy([3, 1, 2, 2], [i / 7 for i in range(12)]))
os.makedirs(os.path.join(here, "arrs"), exist_ok=True)
for i in range(2):
    open(os.path.join(here, "arrs", f"s{i}.npy"), "wb").write(npy([1, 4], [i + k / 3 for k in range(4)]))
with zipfile.ZipFile(os.path.join(here, "arrs.npz"), "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("x.npy", npy([3, 4], [k / 5 for k in range(12)]))
    z.writestr("label.npy", npy([3], [0, 1, 0], "<i8", "q"))

# ONNX test data: TensorProto float [1, 4] (dims=1, data_type=2, raw_data=4).
def tensor_pb(dims, values):
    out = b""
    for d in dims:
        out += b"\x08" + bytes([d])
    out += b"\x10\x01"
    raw = struct.pack("<%df" % len(values), *values)
    out += b"\x4a" + bytes([len(raw)]) + raw
    return out
ts = os.path.join(here, "onnx_data", "test_data_set_0")
os.makedirs(ts)
open(os.path.join(ts, "input_0.pb"), "wb").write(tensor_pb([1, 4], [0.5, -1.0, 2.0, 0.25]))
open(os.path.join(ts, "output_0.pb"), "wb").write(tensor_pb([1, 2], [1.0, 0.0]))

words = ["the", "cat", "sat", "on", "mat", "dog"]
vocab = ", ".join(['"[PAD]": 0', '"[UNK]": 1'] + [f'"{w}": {i + 2}' for i, w in enumerate(words)])
open(os.path.join(here, "tokenizer.json"), "w").write(
    '{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [], '
    '"normalizer": {"type": "Lowercase"}, "pre_tokenizer": {"type": "Whitespace"}, '
    '"post_processor": null, "decoder": null, "model": {"type": "WordLevel", "vocab": {%s}, '
    '"unk_token": "[UNK]"}}' % vocab)
open(os.path.join(here, "sentences.csv"), "w").write("text,label\nthe cat sat,a\ndog on mat,b\n")
print("wrote", here)
