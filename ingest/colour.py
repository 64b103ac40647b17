"""An item's colours: a small histogram of the garment's pixels in HSV, computed from the
network's input at ingest and kept in the payload (`colour`), which the blended ranking
compares (engine/recommend/pool.py). The background is left out: the pixels masking
blacked out, and a product photo's white studio."""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image

HUES: Final = 8  # hue bins of the coloured pixels, each split by saturation and value
GREYS: Final = 4  # value bins of the pixels with little saturation
BINS: Final = HUES * 4 + GREYS  # 36
GREY: Final = 51  # saturation (of 255) under which a pixel is a grey: 0.2
BRIGHT: Final = 153  # saturation or value (of 255) from which it is vivid or light: 0.6
STRIDE: Final = 4  # 224×224 network inputs: 56×56 pixels counted
WHITE_FROM: Final = 235  # a pixel whose every channel is this bright is studio background


def colour_histograms(pixels: NDArray[np.uint8], masked: NDArray[np.bool_]) -> NDArray[np.float32]:
    """Each image's histogram (N×3×H×W uint8 in; N×BINS out): the square roots of the
    garment pixels' shares, so that a dot product is the Bhattacharyya coefficient (1 for
    the same colours, 0 for none shared); zeros for an image with no garment pixel."""
    out = np.zeros((len(pixels), BINS), dtype=np.float32)
    for n, image in enumerate(pixels):  # every STRIDE-th pixel each way: enough for 36 bins
        rgb = np.ascontiguousarray(image[:, ::STRIDE, ::STRIDE].transpose(1, 2, 0))
        flat = rgb.reshape(-1, 3)
        background = flat.max(axis=1) == 0 if masked[n] else flat.min(axis=1) >= WHITE_FROM
        if background.all():
            continue
        hsv = np.asarray(Image.fromarray(rgb, "RGB").convert("HSV")).reshape(-1, 3)[~background]
        h, s, v = (hsv[:, c].astype(np.int32) for c in range(3))  # each 0..255
        colour_bin = (h * HUES >> 8) * 4 + (s >= BRIGHT) * 2 + (v >= BRIGHT)
        grey_bin = HUES * 4 + (v * GREYS >> 8)
        counts = np.bincount(np.where(s < GREY, grey_bin, colour_bin), minlength=BINS)
        out[n] = np.sqrt(counts / counts.sum())
    return out
