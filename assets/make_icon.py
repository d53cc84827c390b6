"""Draws assets/icon.png, the window icon (a smooth curve over its quantized steps):
target/py/bin/python3 assets/make_icon.py (needs pillow)."""
import math
import os

from PIL import Image, ImageDraw

S = 256
img = Image.new("RGBA", (S, S), (0, 0, 0, 0))
d = ImageDraw.Draw(img)
d.rounded_rectangle([8, 8, S - 8, S - 8], radius=44, fill=(28, 36, 52, 255))
x0, x1, y0, y1 = 40, 216, 200, 56
n = 11
w = (x1 - x0) / n


def curve(t):
    return 0.5 - 0.42 * math.cos(math.pi * t)


for i in range(n):
    level = round(curve((i + 0.5) / n) * 7) / 7
    top = y0 - (y0 - y1) * level
    d.rectangle([x0 + i * w + 3, top, x0 + (i + 1) * w - 3, y0], fill=(90, 170, 255, 255))
pts = [(x0 + (x1 - x0) * k / 100, y0 - (y0 - y1) * curve(k / 100)) for k in range(101)]
d.line(pts, fill=(255, 190, 80, 255), width=6)
img.save(os.path.join(os.path.dirname(os.path.abspath(__file__)), "icon.png"))
