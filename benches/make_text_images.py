#!/usr/bin/env python3
"""Text images for the OCR models' benchmarks, rendered locally with PIL (no download):

    target/py/bin/python3 benches/make_text_images.py OUT_DIR

OUT_DIR/lines/: 40 single text lines (what PP-OCR's recognizer and classifier read), dark
words on light backgrounds and light on dark, some rotated 180 degrees (the classifier's job);
OUT_DIR/pages/: 12 scenes of 320x320 with several lines of words over the sample photos (what
the detector looks for). Deterministic (seeded). Needs pillow (pip install pillow)."""
import os
import random
import sys

from PIL import Image, ImageDraw, ImageFont

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = os.path.join(ROOT, "sample_data/photos")
WORDS = ("quantize model layer scale int8 float tensor runtime accuracy latency batch kernel "
         "weight bias channel sample photo export session invoice total amount date 2026 "
         "receipt order 42 07 road street north station price 19.99 ticket").split()


def font(size):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def text(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def lines(out, rng):
    os.makedirs(out, exist_ok=True)
    for i in range(40):
        words = text(rng, rng.randint(1, 4))
        f = font(rng.randint(22, 36))
        w = int(f.getlength(words)) + 16
        dark = rng.random() < 0.7
        bg = tuple(rng.randint(200, 255) for _ in range(3)) if dark else tuple(rng.randint(0, 60) for _ in range(3))
        fg = tuple(rng.randint(0, 60) for _ in range(3)) if dark else tuple(rng.randint(200, 255) for _ in range(3))
        img = Image.new("RGB", (w, 48), bg)
        ImageDraw.Draw(img).text((8, 6), words, fill=fg, font=f)
        if i % 5 == 4:
            img = img.rotate(180)
        img.save(os.path.join(out, f"line_{i:02d}.png"))


def pages(out, rng):
    os.makedirs(out, exist_ok=True)
    photos = sorted(os.listdir(PHOTOS))
    for i in range(12):
        base = Image.open(os.path.join(PHOTOS, photos[i % len(photos)])).convert("RGB")
        img = base.resize((320, 320), Image.BILINEAR)
        d = ImageDraw.Draw(img)
        for _ in range(rng.randint(3, 6)):
            f = font(rng.randint(16, 30))
            words = text(rng, rng.randint(1, 3))
            x, y = rng.randint(0, 160), rng.randint(0, 290)
            box = d.textbbox((x, y), words, font=f)
            d.rectangle([box[0] - 4, box[1] - 4, box[2] + 4, box[3] + 4], fill=(245, 245, 240))
            d.text((x, y), words, fill=(20, 20, 20), font=f)
        img.save(os.path.join(out, f"page_{i:02d}.png"))


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/text-images")
    rng = random.Random(7)
    lines(os.path.join(out, "lines"), rng)
    pages(os.path.join(out, "pages"), rng)
    print(out)
