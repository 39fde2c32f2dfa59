"""Line image normalisation shared by training and inference (the recognizer's "stem").

A line crop (8-bit grayscale, dark ink on light paper, any size) becomes a float32 array of the
model's input height, width scaled to keep the aspect ratio, with ink = 1 and paper = 0 after a
robust contrast stretch between the paper level (90th percentile) and the ink level (1st
percentile). Padding a batch with zeros therefore pads with blank paper.
"""
from __future__ import annotations

import cv2
import numpy as np

#: Widths are rounded up to a multiple of this (the model's horizontal downsampling factor).
WIDTH_MULTIPLE = 4
#: Narrowest normalised line, in pixels (CTC needs at least one frame per character).
MIN_WIDTH = 16
#: Widest normalised line, in pixels; longer lines are squeezed horizontally.
MAX_WIDTH = 2400


def resize_to_height(gray: np.ndarray, height: int, max_width: int = MAX_WIDTH) -> np.ndarray:
    """Resize an (h, w) uint8 image to (height, w') keeping the aspect ratio, w' in
    [MIN_WIDTH, max_width]. Raises ValueError for an empty image."""
    if gray.ndim != 2 or gray.shape[0] == 0 or gray.shape[1] == 0:
        raise ValueError(f"expected a non-empty (h, w) grayscale image, got shape {gray.shape}")
    h, w = gray.shape
    new_w = int(round(w * height / h))
    new_w = min(max(new_w, MIN_WIDTH), max_width)
    interp = cv2.INTER_AREA if h > height else cv2.INTER_LINEAR
    return cv2.resize(gray, (new_w, height), interpolation=interp)


def stretch_contrast(gray: np.ndarray) -> np.ndarray:
    """Map uint8 (h, w) paper-light/ink-dark pixels to float32 ink intensity in [0, 1]."""
    g = gray.astype(np.float32)
    paper = np.percentile(g, 90)
    ink = np.percentile(g, 1)
    span = max(paper - ink, 32.0)  # a blank crop must not turn its noise into ink
    return np.clip((paper - g) / span, 0.0, 1.0)


def normalize_line(gray: np.ndarray, height: int) -> np.ndarray:
    """Full stem: (h, w) uint8 → (height, w') float32 in [0, 1], ink = 1, w' a multiple of
    WIDTH_MULTIPLE."""
    x = stretch_contrast(resize_to_height(gray, height))
    pad = (-x.shape[1]) % WIDTH_MULTIPLE
    if pad:
        x = np.pad(x, ((0, 0), (0, pad)))
    return x


def collate(images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack normalised lines of equal height into a (B, 1, H, W_max) float32 batch, padded with
    zeros on the right; also returns the widths (B,) int64 in pixels."""
    h = images[0].shape[0]
    widths = np.array([im.shape[1] for im in images], dtype=np.int64)
    batch = np.zeros((len(images), 1, h, int(widths.max())), dtype=np.float32)
    for i, im in enumerate(images):
        batch[i, 0, :, : im.shape[1]] = im
    return batch, widths
