"""Cut one text line out of a page for the recognizer.

``crop_line`` cuts the line along its polygon at full page resolution, paints what lies outside the
polygon with the line's own paper colour (so the neighbours' ascenders and descenders stay out),
and straightens a curved or slanted line by shifting every pixel column vertically so that the
baseline becomes a horizontal row (a "dewarp" by column shifts, as in ocropus/kraken-style
baseline-based line extraction). The crop keeps native resolution: the recognizer resizes it.
"""
from __future__ import annotations

import cv2
import numpy as np

STRAIGHTEN_MIN_PX = 2.0  # straighten only when the baseline deviates from a flat line by more than this


def crop_line(page: np.ndarray, polygon, baseline, pad: int = 4) -> np.ndarray:
    """Line image cut from ``page``.

    ``page``: uint8 (H, W) grayscale; ``polygon``: [[x, y], ...] (≥ 3 points) and ``baseline``:
    [[x, y], ...] (≥ 1 point) in page pixels; ``pad``: px of paper margin around the polygon's box
    (everything outside the polygon itself is painted with paper). Returns uint8 (h, w), h, w ≥ 1.
    Raises ``ValueError`` for a non-2-D/non-uint8 page or a polygon of fewer than 3 points or
    lying outside the page.
    """
    if not isinstance(page, np.ndarray) or page.ndim != 2 or page.dtype != np.uint8:
        raise ValueError("page must be a 2-D uint8 array")
    poly = np.asarray(polygon, np.float64).reshape(-1, 2)
    base = np.asarray(baseline, np.float64).reshape(-1, 2)
    if len(poly) < 3:
        raise ValueError(f"polygon needs at least 3 points, got {len(poly)}")
    H, W = page.shape
    pts = np.concatenate([poly, base]) if len(base) else poly
    x0 = int(max(0, np.floor(pts[:, 0].min()) - pad))
    y0 = int(max(0, np.floor(pts[:, 1].min()) - pad))
    x1 = int(min(W, np.ceil(pts[:, 0].max()) + pad + 1))
    y1 = int(min(H, np.ceil(pts[:, 1].max()) + pad + 1))
    if x1 <= x0 or y1 <= y0:
        raise ValueError("polygon lies outside the page")
    sub = page[y0:y1, x0:x1]
    mask = np.zeros(sub.shape, np.uint8)
    cv2.fillPoly(mask, [np.round(poly - [x0, y0]).astype(np.int32)], 255)
    inside = sub[mask > 0]
    if inside.size == 0:
        return np.full((1, 1), 255, np.uint8)
    paper = int(np.percentile(inside, 90))  # the line's own paper: most pixels of a line are background
    out = np.where(mask > 0, sub, paper).astype(np.uint8)

    if len(base) >= 2:
        b = base[np.argsort(base[:, 0], kind="stable")] - [x0, y0]
        xs = np.arange(out.shape[1], dtype=np.float64)
        by = np.interp(xs, b[:, 0], b[:, 1])  # constant beyond the baseline's ends
        ref = float(np.median(by))
        dev = by - ref
        if np.abs(dev).max() > STRAIGHTEN_MIN_PX:
            up, down = int(np.ceil(max(0.0, -dev.min()))), int(np.ceil(max(0.0, dev.max())))
            h = out.shape[0] + up + down
            gx, gy = np.meshgrid(xs.astype(np.float32), np.arange(h, dtype=np.float32))
            mapy = gy - up + dev[None, :].astype(np.float32)  # output row r shows input row r - up + dev
            out = cv2.remap(out, gx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=paper)
            m = cv2.remap(mask, gx, mapy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            rows = np.where(m.max(1) > 0)[0]
            if len(rows):
                out = out[rows[0]:rows[-1] + 1]
    return np.ascontiguousarray(out)
