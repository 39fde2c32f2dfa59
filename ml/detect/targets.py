"""Training targets for the line detector, rendered from line baselines (and polygons).

Baselines are the reliable geometry (Hooker polygons zig-zag), so the *body* target is a band
drawn from each baseline upwards by a fraction of the page's line spacing: it covers the
x-height (core) zone of the writing and leaves a gap between neighbouring lines, so lines stay
separate connected components even when ascenders touch the line above. The *baseline* target is
the baseline polyline drawn a few pixels thick.

Line spacing ``L`` is estimated per page as the median vertical distance between baselines of
horizontally overlapping neighbouring lines; where a page has no such pair, from the median
polygon height. The body thickness is ``BODY_FRAC * L`` (x-height is about a third of the line
spacing in handwriting; 0.3 keeps a gap of ~0.7 L between bands).
"""
from __future__ import annotations

import cv2
import numpy as np

BODY_FRAC = 0.30  # body band thickness as a fraction of line spacing
BODY_MAX_POLY_FRAC = 0.45  # ... but at most this fraction of the line's own polygon height
BASELINE_THICK = 3  # px at the working scale


def _interp_baseline(base: np.ndarray, step: float = 2.0) -> np.ndarray:
    """Baseline sorted by x and resampled every ``step`` px → (N, 2) float."""
    base = base[np.argsort(base[:, 0], kind="stable")]
    x0, x1 = base[0, 0], base[-1, 0]
    if x1 - x0 < step:
        return base
    xs = np.arange(x0, x1 + 1e-6, step)
    ys = np.interp(xs, base[:, 0], base[:, 1])
    return np.stack([xs, ys], 1)


def line_spacing(lines: list[dict]) -> float:
    """Median baseline-to-baseline distance of horizontally overlapping neighbours, in px.

    ``lines``: dicts with ``baseline`` and ``polygon`` ([[x, y], ...]). Falls back to 1.1 × the
    median polygon height (ymax - ymin) and to 30 px when there are no lines.
    """
    bases = [np.asarray(ln["baseline"], float) for ln in lines if len(ln["baseline"]) >= 1]
    gaps = []
    for i, a in enumerate(bases):
        best = None
        for j, b in enumerate(bases):
            if i == j:
                continue
            lo, hi = max(a[:, 0].min(), b[:, 0].min()), min(a[:, 0].max(), b[:, 0].max())
            if hi - lo < 10:
                continue
            xm = 0.5 * (lo + hi)
            ya = np.interp(xm, *a[np.argsort(a[:, 0])].T)
            yb = np.interp(xm, *b[np.argsort(b[:, 0])].T)
            d = yb - ya
            if d > 3 and (best is None or d < best):
                best = d
        if best is not None:
            gaps.append(best)
    if gaps:
        return float(np.median(gaps))
    hs = [np.ptp(np.asarray(ln["polygon"], float)[:, 1]) for ln in lines if len(ln["polygon"]) >= 3]
    return float(1.1 * np.median(hs)) if hs else 30.0


def body_thickness(lines: list[dict]) -> list[float]:
    """Per line body band thickness in px (see module docstring)."""
    L = line_spacing(lines)
    out = []
    for ln in lines:
        poly = np.asarray(ln["polygon"], float)
        ph = np.ptp(poly[:, 1]) if len(poly) >= 3 else L
        out.append(float(max(2.0, min(BODY_FRAC * L, BODY_MAX_POLY_FRAC * ph))))
    return out


def render_targets(shape: tuple[int, int], lines: list[dict], scale: float = 1.0) -> np.ndarray:
    """Render (2, H, W) uint8 {0, 1} targets: channel 0 body band, channel 1 baseline.

    ``shape``: (H, W) of the target image; ``lines``: dicts with ``baseline``/``polygon`` in the
    coordinates of the original page; ``scale``: page px → target px.
    """
    h, w = shape
    body = np.zeros((h, w), np.uint8)
    base = np.zeros((h, w), np.uint8)
    thick = body_thickness(lines)
    for ln, t in zip(lines, thick):
        b = np.asarray(ln["baseline"], float) * scale
        if len(b) < 2:
            continue
        b = _interp_baseline(b)
        t *= scale
        top = b.copy()
        top[:, 1] -= t
        poly = np.concatenate([b, top[::-1]], 0)
        cv2.fillPoly(body, [np.round(poly * 4).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=2)
        cv2.polylines(base, [np.round(b * 4).astype(np.int32)], False, 1,
                      thickness=BASELINE_THICK, lineType=cv2.LINE_8, shift=2)
    return np.stack([body, base])
