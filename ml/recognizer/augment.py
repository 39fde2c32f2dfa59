"""Augmentations that make line images look differently written and scanned.

All functions take and return (h, w) uint8 grayscale, dark ink on light paper, and draw their
randomness from the ``numpy.random.Generator`` they are given (so a seeded generator replays them).
Used on real line crops and, with stronger settings, on rendered synthetic lines.
"""
from __future__ import annotations

import cv2
import numpy as np

from .image import shear_line


def shear(img: np.ndarray, rng: np.random.Generator, max_shear: float = 0.35) -> np.ndarray:
    """Slant the writing: horizontal shear by a factor in [-max_shear, max_shear], canvas widened
    (:func:`ml.recognizer.image.shear_line`)."""
    return shear_line(img, rng.uniform(-max_shear, max_shear), _paper(img))


def rotate(img: np.ndarray, rng: np.random.Generator, max_deg: float = 2.0) -> np.ndarray:
    """Small rotation about the centre, in degrees."""
    h, w = img.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-max_deg, max_deg), 1.0)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=_paper(img))


def wobble(img: np.ndarray, rng: np.random.Generator, max_amp: float = 0.06) -> np.ndarray:
    """Baseline wobble: each column shifted vertically along a smooth random curve whose amplitude
    is up to ``max_amp`` of the line height."""
    h, w = img.shape
    amp = rng.uniform(0, max_amp) * h
    period = rng.uniform(0.5, 3.0) * h * 4
    phase = rng.uniform(0, 2 * np.pi)
    xs = np.arange(w, dtype=np.float32)
    dy = amp * np.sin(2 * np.pi * xs / period + phase)
    map_x = np.tile(xs, (h, 1))
    map_y = (np.arange(h, dtype=np.float32)[:, None] + dy[None, :]).astype(np.float32)
    return cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderValue=_paper(img))


def elastic(img: np.ndarray, rng: np.random.Generator, alpha: float = 2.0, sigma: float = 6.0) -> np.ndarray:
    """Elastic distortion (Simard et al. 2003): smooth random displacement fields of up to about
    ``alpha`` pixels, Gaussian-smoothed with ``sigma`` pixels."""
    h, w = img.shape
    dx = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma)
    dy = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma)
    scale = alpha / max(float(np.abs(dx).max()), float(np.abs(dy).max()), 1e-6)
    map_x = (np.arange(w, dtype=np.float32)[None, :] + dx * scale).astype(np.float32)
    map_y = (np.arange(h, dtype=np.float32)[:, None] + dy * scale).astype(np.float32)
    return cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderValue=_paper(img))


def stroke_width(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Thinner or thicker strokes: grayscale erosion (thicker ink) or dilation (thinner ink)."""
    k = np.ones((2, 2), np.uint8)
    r = rng.random()
    if r < 0.33:
        return cv2.erode(img, k)
    if r < 0.66:
        return cv2.dilate(img, k)
    return img


def pen_nib(img: np.ndarray, rng: np.random.Generator, max_len: int | None = None) -> np.ndarray:
    """A pen whose stroke width depends on the stroke's direction: grayscale erosion (the ink spreads)
    with a straight line of ``length`` pixels at an angle drawn from [0°, 75°] above the horizontal,
    so strokes across that direction thicken by up to ``length`` pixels and strokes along it stay as
    they were (a broad nib held at that angle; near 0° the thick downstrokes and thin hairlines of a
    pointed pen). ``length`` is drawn from 2 … ``max_len`` (default: a fourteenth of the height,
    at least 2), so a font's uniform line turns into the thick and thin of pen writing, and a real
    hand into another pen's. (h, w) uint8 in, (h, w) uint8 out."""
    h, w = img.shape
    top = max(2, max_len if max_len is not None else h // 14)
    length = int(rng.integers(2, top + 1))
    angle = np.deg2rad(rng.uniform(0.0, 75.0))
    dx, dy = np.cos(angle) * (length - 1) / 2, np.sin(angle) * (length - 1) / 2
    k = length | 1  # odd, so the line is centred on the anchor
    kernel = np.zeros((k, k), np.uint8)
    c = k // 2
    cv2.line(kernel, (int(round(c - dx)), int(round(c + dy))), (int(round(c + dx)), int(round(c - dy))), 1, 1)
    return cv2.erode(img, kernel, borderType=cv2.BORDER_REPLICATE)


def rhythm(img: np.ndarray, rng: np.random.Generator, max_var: float = 0.3) -> np.ndarray:
    """Letters of uneven width: the line is scaled horizontally by a factor that varies smoothly
    along it, within [1 − v, 1 + v] for v drawn from [0.1, ``max_var``], changing over one to three
    line heights (a few letters), as one writer's letters are wider or narrower than another's in
    different places. The width changes with it. (h, w) uint8 in, (h, w') uint8 out."""
    h, w = img.shape
    var = rng.uniform(0.1, max_var)
    knots = max(2, int(np.ceil(w / (h * rng.uniform(1.0, 3.0)))) + 1)
    scale = 1.0 + var * rng.uniform(-1.0, 1.0, knots)
    per_col = np.interp(np.linspace(0, knots - 1, w), np.arange(knots), scale)
    out_x = np.concatenate([[0.0], np.cumsum(per_col)])  # where each input column edge lands
    new_w = max(8, int(round(out_x[-1])))
    src = np.interp(np.arange(new_w) + 0.5, out_x, np.arange(w + 1)) - 0.5  # inverse map, column centres
    map_x = np.tile(src.astype(np.float32), (h, 1))
    map_y = np.tile(np.arange(h, dtype=np.float32)[:, None], (1, new_w))
    return cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def stretch(img: np.ndarray, rng: np.random.Generator, lo: float = 0.8, hi: float = 1.2) -> np.ndarray:
    """Horizontal scaling (narrower or wider writing) by a factor in [lo, hi]."""
    h, w = img.shape
    nw = max(8, int(round(w * rng.uniform(lo, hi))))
    return cv2.resize(img, (nw, h), interpolation=cv2.INTER_LINEAR)


def vertical_margin(img: np.ndarray, rng: np.random.Generator, max_frac: float = 0.15,
                    min_frac: float | None = None) -> np.ndarray:
    """Crop or pad top and bottom independently by a fraction of the height drawn from
    [``min_frac``, ``max_frac``] (``min_frac`` defaults to ``-max_frac``; negative crops, positive
    pads with paper), so that the text's vertical position and size within the line box vary like
    detector crops do."""
    h, w = img.shape
    lo = -max_frac if min_frac is None else min_frac
    out = img
    for side in (0, 1):
        d = int(round(rng.uniform(lo, max_frac) * h))
        if d > 0:
            pad = np.full((d, w), _paper(img), np.uint8)
            out = np.vstack([pad, out] if side == 0 else [out, pad])
        elif d < 0 and out.shape[0] + d > h // 2:
            out = out[-d:] if side == 0 else out[:d]
    return out


def photometric(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ink intensity, paper level, contrast, gamma, blur and sensor noise."""
    x = img.astype(np.float32) / 255.0
    paper = rng.uniform(0.7, 1.0)
    ink = rng.uniform(0.0, 0.45)
    x = ink + (paper - ink) * x  # remap the [0, 1] range to [ink, paper]
    x = np.clip(x, 0, 1) ** rng.uniform(0.7, 1.4)
    if rng.random() < 0.4:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.3, 1.2))
    if rng.random() < 0.5:
        x = x + rng.normal(0, rng.uniform(0.01, 0.06), x.shape).astype(np.float32)
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


def paper_texture(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Multiply by low-frequency blotches (uneven paper, stains, shadows)."""
    h, w = img.shape
    small = rng.uniform(0.75, 1.0, (max(2, h // 16), max(2, w // 16))).astype(np.float32)
    field = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(img.astype(np.float32) * field, 0, 255).astype(np.uint8)


def ruled_line(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw a faint ruled line near the baseline or the top, as on lined paper."""
    h, w = img.shape
    out = img.copy()
    y = int(rng.uniform(0.7, 0.95) * h) if rng.random() < 0.7 else int(rng.uniform(0.0, 0.15) * h)
    tone = int(rng.uniform(120, 210))
    cv2.line(out, (0, y), (w - 1, y + int(rng.integers(-2, 3))), tone, int(rng.integers(1, 3)))
    return np.minimum(out, img)


def _paper(img: np.ndarray) -> int:
    return int(np.percentile(img, 90)) if img.size else 255


#: Largest shear of real lines in :func:`augment_real` (training's ``real_shear`` default).
REAL_SHEAR = 0.25


def other_hand(img: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    """With probability ``p`` each, :func:`pen_nib` and :func:`rhythm`: the same text as another pen
    and another writer's letter widths would make it. ``p = 0`` draws nothing from ``rng``, so
    the augmentations that follow replay as they did before this step existed."""
    if p <= 0:
        return img
    if rng.random() < p:
        img = pen_nib(img, rng)
    if rng.random() < p:
        img = rhythm(img, rng)
    return img


def augment_real(img: np.ndarray, rng: np.random.Generator, max_shear: float = REAL_SHEAR,
                 hand_variety: float = 0.0) -> np.ndarray:
    """Moderate augmentation for real line crops (each step applied with some probability; half of
    the lines are sheared by a factor drawn from [-``max_shear``, ``max_shear``]; with
    ``hand_variety`` > 0, :func:`other_hand` first)."""
    img = other_hand(img, rng, hand_variety)
    if rng.random() < 0.5:
        img = shear(img, rng, max_shear)
    if rng.random() < 0.3:
        img = rotate(img, rng, 1.5)
    if rng.random() < 0.3:
        img = wobble(img, rng, 0.04)
    if rng.random() < 0.3:
        img = elastic(img, rng, 1.5, 5.0)
    if rng.random() < 0.3:
        img = stroke_width(img, rng)
    if rng.random() < 0.5:
        img = stretch(img, rng, 0.85, 1.15)
    if rng.random() < 0.5:
        img = vertical_margin(img, rng, 0.12)
    if rng.random() < 0.1:
        img = ruled_line(img, rng)
    if rng.random() < 0.6:
        img = photometric(img, rng)
    return img


def augment_synthetic(img: np.ndarray, rng: np.random.Generator, hand_variety: float = 0.0) -> np.ndarray:
    """Stronger augmentation for rendered lines, so that fonts look written and scanned (with
    ``hand_variety`` > 0, :func:`other_hand` first)."""
    img = other_hand(img, rng, hand_variety)
    if rng.random() < 0.7:
        img = shear(img, rng, 0.4)
    if rng.random() < 0.6:
        img = wobble(img, rng, 0.07)
    if rng.random() < 0.6:
        img = elastic(img, rng, 2.5, 6.0)
    if rng.random() < 0.3:
        img = rotate(img, rng, 2.0)
    if rng.random() < 0.5:
        img = stroke_width(img, rng)
    if rng.random() < 0.5:
        img = vertical_margin(img, rng, 0.15)
    if rng.random() < 0.25:
        img = ruled_line(img, rng)
    if rng.random() < 0.5:
        img = paper_texture(img, rng)
    return photometric(img, rng)
