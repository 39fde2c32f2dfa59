"""Turn the detector's probability maps into text lines with polygons, baselines and reading order.

Method: threshold the body map → connected components (OpenCV, 8-connectivity) → per component the
lower edge of the body band, column by column, is the baseline (the body target is drawn from the
baseline up, see ``targets.py``); its median height ``t`` (≈ x-height) sets the polygon: body
extended up by ``ASC × t`` (ascenders) and down by ``DESC × t`` (descenders) and sideways by
``SIDE × t``. Everything is scaled back to the original page's pixels and clipped to the page.
Reading order: columns found by clustering lines whose x-ranges overlap, columns left to right,
lines in a column top to bottom.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import cv2
import numpy as np

log = logging.getLogger(__name__)

BODY_THRESHOLD = 0.5
ASC = 1.3  # ascender extension above the body band, in body heights
DESC = 1.0  # descender extension below the baseline, in body heights
SIDE = 0.4  # horizontal padding, in body heights
MIN_AREA = 24  # px at the working scale; smaller components are noise
MIN_WIDTH_ORIG = 8  # px in the original page; narrower lines are degenerate
MIN_CONFIDENCE = 0.55
COLUMN_OVERLAP = 0.3  # x-overlap / narrower width that puts two lines in one column


@dataclass
class DetectedLine:
    """One text line in original page pixels: ints, inside the page."""

    polygon: list[list[int]]
    baseline: list[list[int]]
    bbox: list[int]  # [x0, y0, x1, y1]
    confidence: float
    column: int = field(default=0, compare=False)

    def to_dict(self) -> dict:
        return {"polygon": self.polygon, "baseline": self.baseline, "bbox": self.bbox,
                "confidence": self.confidence}


def _smooth(v: np.ndarray, k: int) -> np.ndarray:
    if len(v) < 3 or k < 3:
        return v.astype(np.float64)
    k = min(k | 1, (len(v) // 2) * 2 - 1)
    if k < 3:
        return v.astype(np.float64)
    pad = k // 2
    vp = np.pad(v.astype(np.float64), pad, mode="edge")
    # running median via strided windows (lines have at most a few thousand columns)
    win = np.lib.stride_tricks.sliding_window_view(vp, k)
    return np.median(win, axis=1)


def maps_to_lines(body: np.ndarray, baseline: np.ndarray | None, page_size: tuple[int, int],
                  threshold: float = BODY_THRESHOLD, asc: float = ASC, desc: float = DESC,
                  side: float = SIDE, min_confidence: float = MIN_CONFIDENCE) -> list[DetectedLine]:
    """Probability maps at the working scale → lines in page pixels, in reading order.

    ``body``, ``baseline``: float arrays (h, w) in [0, 1] (``baseline`` may be None; it is not
    needed by this method); ``page_size``: (W, H) of the original page; the maps cover the whole
    page, so the scale is W / w horizontally and H / h vertically.
    """
    W, H = page_size
    h, w = body.shape
    sx, sy = W / w, H / h
    mask = (body > threshold).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    lines: list[DetectedLine] = []
    for k in range(1, n):
        x0, y0, bw, bh, area = stats[k]
        if area < MIN_AREA:
            continue
        sub = labels[y0:y0 + bh, x0:x0 + bw] == k
        conf = float(body[y0:y0 + bh, x0:x0 + bw][sub].mean())
        if conf < min_confidence:
            continue
        has = sub.any(0)
        cols = np.where(has)[0]
        top = np.argmax(sub, 0)[cols]
        bot = bh - 1 - np.argmax(sub[::-1], 0)[cols]
        t = float(max(1.0, np.median(bot - top + 1)))
        if bw < 1.5 * t:  # blobs narrower than tall are not lines
            continue
        win = int(max(3, 2 * t))
        bot_s = _smooth(bot, win) + 1.0  # lower edge of the band = baseline
        top_s = _smooth(top, win)
        xs = cols.astype(np.float64) + 0.5
        # sample every ~t/2 columns, always keeping both ends
        step = max(1, int(t / 2))
        idx = np.unique(np.r_[np.arange(0, len(cols), step), len(cols) - 1])
        bx = (xs[idx] + x0) * sx
        by = (bot_s[idx] + y0) * sy
        ty = (top_s[idx] + y0 - asc * t) * sy
        ly = (bot_s[idx] + y0 + desc * t) * sy
        pad = side * t * sx
        bx_poly = bx.copy()
        bx_poly[0] -= pad
        bx_poly[-1] += pad
        upper = np.stack([bx_poly, ty], 1)
        lower = np.stack([bx_poly, ly], 1)[::-1]
        poly = np.concatenate([upper, lower], 0)
        base = np.stack([bx, by], 1)
        line = _finish(poly, base, conf, W, H)
        if line is not None:
            lines.append(line)
    return reading_order(lines)


def _finish(poly: np.ndarray, base: np.ndarray, conf: float, W: int, H: int) -> DetectedLine | None:
    """Clip to the page, round, drop degenerate lines with a warning."""
    poly = np.round(np.clip(poly, [0, 0], [W - 1, H - 1])).astype(int)
    base = np.round(np.clip(base, [0, 0], [W - 1, H - 1])).astype(int)
    # drop repeated consecutive points
    keep = np.r_[True, np.any(np.diff(poly, axis=0) != 0, axis=1)]
    poly = poly[keep]
    keep = np.r_[True, np.any(np.diff(base, axis=0) != 0, axis=1)]
    base = base[keep]
    return make_line(poly.tolist(), base.tolist(), conf, W, H)


def make_line(polygon, baseline, confidence: float, W: int, H: int) -> DetectedLine | None:
    """Validate one line (ints, page pixels); ``None`` plus a warning if it is degenerate.

    Degenerate: fewer than 3 polygon points or 2 baseline points, zero polygon area, or
    width under ``MIN_WIDTH_ORIG`` px. Coordinates are clipped into the page.
    """
    poly = np.clip(np.asarray(polygon, float).reshape(-1, 2), [0, 0], [W - 1, H - 1]).round().astype(int)
    base = np.clip(np.asarray(baseline, float).reshape(-1, 2), [0, 0], [W - 1, H - 1]).round().astype(int)
    area = abs(cv2.contourArea(poly.astype(np.float32))) if len(poly) >= 3 else 0.0
    width = int(poly[:, 0].max() - poly[:, 0].min()) if len(poly) else 0
    if len(poly) < 3 or len(base) < 2 or area <= 0 or width < MIN_WIDTH_ORIG:
        msg = (f"dropping degenerate line: {len(poly)} polygon points, {len(base)} baseline points, "
               f"area {area:.0f} px², width {width} px")
        warnings.warn(msg, stacklevel=3)
        log.warning(msg)
        return None
    bbox = [int(poly[:, 0].min()), int(poly[:, 1].min()), int(poly[:, 0].max()), int(poly[:, 1].max())]
    return DetectedLine(polygon=poly.tolist(), baseline=base.tolist(), bbox=bbox,
                        confidence=float(np.clip(confidence, 0, 1)))


def reading_order(lines: list[DetectedLine]) -> list[DetectedLine]:
    """Columns left to right, top to bottom inside a column.

    Two lines belong to one column when their x-ranges overlap by at least ``COLUMN_OVERLAP`` of
    the narrower one (union-find over all pairs, O(n²), n is a few hundred at most).
    """
    n = len(lines)
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        a = lines[i].bbox
        for j in range(i + 1, n):
            b = lines[j].bbox
            ov = min(a[2], b[2]) - max(a[0], b[0])
            if ov > COLUMN_OVERLAP * min(a[2] - a[0], b[2] - b[0]):
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    cols = sorted(groups.values(), key=lambda g: min(lines[i].bbox[0] for i in g))
    out = []
    for c, g in enumerate(cols):
        g.sort(key=lambda i: float(np.mean([p[1] for p in lines[i].baseline])))
        for i in g:
            lines[i].column = c
            out.append(lines[i])
    return out
