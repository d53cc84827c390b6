"""Reference pixels from PIL (what torchvision's transforms compute on PIL images) for the
sample photos, checked in as tests/data/pil_reference.npz and compared with quantbench's own
decoding in src/data (test `preprocessing_matches_pil`). Run with the test venv's python
after `pip install pillow`: python tests/data/make_pil_reference.py"""
import os

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
PHOTOS = os.path.join(HERE, "..", "..", "sample_data", "photos")


def resize_shorter(img, short):
    # torchvision.transforms.Resize(int): the longer side is int(short * long / shorter).
    w, h = img.size
    if w <= h:
        size = (short, int(short * h / w))
    else:
        size = (int(short * w / h), short)
    return img.resize(size, Image.BILINEAR)


def center_crop(img, ch, cw):
    # torchvision.transforms.CenterCrop: offsets int(round((size - crop) / 2)).
    w, h = img.size
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    return img.crop((left, top, left + cw, top + ch))


cases = {}
for name in ["astronaut", "chelsea", "coffee"]:
    img = Image.open(os.path.join(PHOTOS, name + ".png"))
    rgb = img.convert("RGB")
    cases[f"{name}_shorter256_crop224"] = np.asarray(center_crop(resize_shorter(rgb, 256), 224, 224))
    cases[f"{name}_to48x64"] = np.asarray(rgb.resize((64, 48), Image.BILINEAR))
    cases[f"{name}_gray_to28x28"] = np.asarray(img.convert("L").resize((28, 28), Image.BILINEAR))
np.savez_compressed(os.path.join(HERE, "pil_reference.npz"), **cases)
for k, v in cases.items():
    print(k, v.shape, v.dtype)
