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


#: Percentile of the polygon's extents above and below the baseline that :func:`baseline_band`
#: keeps. Chosen on the dev lines with the recognizer 20261201-cpu8a, greedy, the dataset crops cut
#: to the band without retraining (Copiste / Hooker / Stanford CER): box as given 9.7 / 26.2 / 30.3 %;
#: the polygon itself (``crop_line`` on the ground-truth polygon) 9.5 / 28.5 / 31.3 %; band at the
#: 75th percentile grown 1.3× 8.7 / 25.0 / 30.5 %, 80th grown 1.1× 8.4 / 24.8 / 30.0 %, 90th 8.2 /
#: 25.0 / 29.8 %, 95th shrunk 0.95× 8.1 / 25.5 / 29.7 %, 100th (the polygon's envelope) 8.8 / 26.7 /
#: 29.8 %.
BAND_QUANTILE = 90.0
#: The band cuts a dataset line is read from besides its box (evaluation, ``--crop best``), the most
#: confident reading kept (:meth:`ml.recognizer.predictor.Recognizer.recognize_candidates`). A
#: tighter band leaves out more of the neighbouring lines' ascenders and descenders, and more of the
#: line's own flourishes; the recognizer is more sure of one or the other line by line. Measured
#: with 20261201-cpu9b on the 1,343 handwritten dev lines, greedy, box + bands (Copiste / Hooker /
#: Stanford CER): box + 90th 8.1 / 21.3 / 29.1 %; + 50th 7.8 / 20.5 / 28.5 %; + 60th 7.7 / 20.5 /
#: 28.9 %; + 75th 7.65 / 20.35 / 28.35 %; + 82nd 7.9 / 20.6 / 28.6 %; + 60th and 75th 7.6 / 20.2 /
#: 28.4 % (a fourth cut gains a tenth of a point for a quarter more time). The page pipeline reads
#: one band (:data:`BAND_QUANTILE`): the detector's polygons are smooth, not the annotators' zig-zags,
#: and a second band did not lower page CER on the 10 dev pages (beam 10 + LM, polygon + 90th 8.6 /
#: 23.0 / 29.6 %, + 75th 8.5 / 23.2 / 30.4 %, + 75th and 60th 8.7 / 22.9 / 30.0 %).
READ_BAND_QUANTILES = (BAND_QUANTILE, 75.0)


def baseline_band(polygon, baseline, quantile: float = BAND_QUANTILE, points: int = 40) -> list[list[float]] | None:
    """A smooth line polygon: the band that follows ``baseline`` from ``quantile`` percent of the
    polygon's height above it to ``quantile`` percent of its depth below it.

    Ground-truth polygons of some collections zig-zag around every letter (Hooker's) or reach into
    the neighbouring lines, and their bounding-box crops hold parts of two or three lines. The
    band keeps the line's own ascenders and descenders (the polygon's typical extents around the
    baseline, measured per pixel column) and leaves the rest out, as kraken's baseline-based line
    extraction does with a fixed band.

    ``polygon``: [[x, y], ...] (≥ 3 points), ``baseline``: [[x, y], ...] (≥ 2 points), same pixels.
    Returns the band as ``2 * points`` [x, y] points (upper edge left to right, lower edge back),
    spanning the columns of the polygon and the baseline together, or None when the geometry
    cannot give one (fewer than 3 polygon or 2 baseline points, a polygon under 2 px wide).
    """
    poly = np.asarray(polygon, np.float64).reshape(-1, 2)
    base = np.asarray(baseline, np.float64).reshape(-1, 2)
    if len(poly) < 3 or len(base) < 2:
        return None
    base = base[np.argsort(base[:, 0], kind="stable")]
    x0, y0 = np.floor(poly.min(0)).astype(int)
    x1, y1 = np.ceil(poly.max(0)).astype(int)
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    cv2.fillPoly(mask, [np.round(poly - [x0, y0]).astype(np.int32)], 1)
    cols = np.where(mask.any(0))[0]
    if len(cols) < 2:
        return None
    top = np.argmax(mask[:, cols], 0) + y0
    bottom = mask.shape[0] - 1 - np.argmax(mask[::-1, cols], 0) + y0
    by = np.interp(cols + x0, base[:, 0], base[:, 1])  # constant beyond the baseline's ends
    above = max(float(np.percentile(by - top, quantile)), 1.0)
    below = max(float(np.percentile(bottom - by, quantile)), 1.0)
    xs = np.linspace(min(x0, base[0, 0]), max(x1, base[-1, 0]), points)
    ys = np.interp(xs, base[:, 0], base[:, 1])
    upper = np.stack([xs, ys - above], 1)
    lower = np.stack([xs, ys + below], 1)[::-1]
    return np.concatenate([upper, lower]).tolist()


def crop_band(page: np.ndarray, polygon, baseline, pad: int = 4,
              quantile: float = BAND_QUANTILE) -> np.ndarray | None:
    """:func:`crop_line` along :func:`baseline_band` (at ``quantile``) of ``polygon`` and ``baseline``
    instead of the polygon itself; None when no band can be cut (see :func:`baseline_band`), the band
    lies outside ``page`` or the cut is under 2 px in height or width."""
    band = baseline_band(polygon, baseline, quantile)
    if band is None:
        return None
    try:
        cut = crop_line(page, band, baseline, pad=pad)
    except ValueError:
        return None
    return cut if min(cut.shape) >= 2 else None


def crop_bands(page: np.ndarray, polygon, baseline, pad: int = 4,
               quantiles: tuple[float, ...] = READ_BAND_QUANTILES) -> list[np.ndarray]:
    """The line cut along its baseline band at each of ``quantiles`` (:func:`crop_band`), in that
    order, bands that cannot be cut and cuts equal to an earlier one left out (a polygon whose
    extents are the same in every column gives one band at every quantile). Returns [] when no band
    can be cut."""
    cuts: list[np.ndarray] = []
    for q in quantiles:
        cut = crop_band(page, polygon, baseline, pad, q)
        if cut is not None and not any(np.array_equal(c, cut) for c in cuts):
            cuts.append(cut)
    return cuts
