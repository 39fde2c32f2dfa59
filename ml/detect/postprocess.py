"""Turn the detector's probability maps into text lines with polygons, baselines and reading order.

Method: threshold the body map → connected components (OpenCV, 8-connectivity) → per component the
lower edge of the body band, column by column, is the baseline (the body target is drawn from the
baseline up, see ``targets.py``); its median height ``t`` (≈ x-height) sets the polygon: body
extended up by ``asc × t`` (ascenders), down by ``desc × t`` (descenders) and sideways by
``SIDE × t``. With the page image given, ``asc`` and ``desc`` are fitted to each line's own ink
(:func:`fit_extents`: how far its ascenders and descenders reach, short of the neighbouring lines),
else they are the fixed ``ASC`` and ``DESC``. Everything is scaled back to the original page's
pixels and clipped to the page.

Clean-up, in units of the page's body height ``t_page`` (width-weighted median over the page's
components), so the rules hold at any resolution and writing size: with the page image given,
components whose ink is much fainter than the page's median line (``MIN_INK``: bleed-through from
the back of the sheet, body probability over bare paper) are dropped first, so that they neither
stand as lines nor lengthen the line they would join; collinear fragments of one line (gap ≤
``MERGE_GAP``, baseline step ≤ ``MERGE_DY``) are joined; components shorter than ``MIN_LENGTH`` or
thinner than ``MIN_THICKNESS`` (dots, loops of descenders, specks) are dropped.
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

# Settings chosen on the 10 dev pages with cached maps of quire-detector@1.202611292307 (sweeps
# over the values listed in each comment; macro F1 0.794 → 0.873 with `python -m ml.detect.evaluate`).
# Flat optima were resolved towards the simpler or safer value, not the best dev score.
BODY_THRESHOLD = 0.5  # swept 0.4/0.5/0.6: 0.6 one line better, kept the sigmoid midpoint
ASC = 0.8  # ascender extension above the body band, in body heights (swept 0.6–1.3)
DESC = 1.0  # descender extension below the baseline (swept 0.4–1.1); 0.6 scored higher but cut
#             the descenders of Stanford crops (checked visually), 1.0 keeps them
SIDE = 0.2  # horizontal padding, in body heights (0.2/0.4 equal)
MIN_AREA = 24  # px at the working scale; smaller components are noise
MIN_WIDTH_ORIG = 8  # px in the original page; narrower lines are degenerate
MIN_CONFIDENCE = 0.86  # mean body probability of a line. quire-detector@1.202611300452, lines kept
#   at 0.70 and matched to the ground truth or not (dev pages / train pages): 0.84 drops 2 of 136 /
#   3 of 1,718 matched and 6 of 22 / 19 of 100 unmatched lines, 0.86 drops 2 / 5 matched and 10 / 23
#   unmatched, 0.88 2 / 11 and 10 / 31. (The first detector: matched dev lines ≥ 0.86, components on
#   pages of uniform or Gaussian noise ≤ 0.83; 0.55 kept 427 on one.)
MIN_LENGTH = 3.0  # lines shorter than this many page body heights (a short word) are dropped (0–4)
MIN_THICKNESS = 0.5  # ... and bands thinner than this fraction of the page body height (0–0.6)
MERGE_GAP = 2.0  # join collinear fragments at most this many page body heights apart (0–5)
MERGE_DY = 1.0  # ... whose baselines differ by at most this many page body heights (0.5/1.0)
ASC_RANGE = (0.3, 1.2)  # fitted ascender extension is clipped to this range (body heights)
DESC_RANGE = (0.3, 1.4)  # ... and the fitted descender extension to this one
INK_QUANTILE = 0.95  # the fitted extension reaches this quantile of the ink's distances from the
#                      body band (0.9/0.95/0.98/0.995 swept on dev and the 88 train pages: with fixed
#                      ASC/DESC macro F1 0.881 on dev, fitted 0.91 at 0.95; train Hooker 0.897 → 0.900)
MIN_INK = 0.5  # components whose ink strength is under this fraction of the page's median line are
#                dropped: bleed-through from the back measured 0.25–0.35 of the page's real lines.
#                Dropped before fragments are joined (detector 1.202611300452): a bare-paper
#                fragment (ink 0.02) joined to the signature of Stanford Lettre245 widened it past
#                IoU 0.5, dev Stanford F1 0.894 → 0.918; train pages unchanged (0.1–0.5 alike)
ORIENTATION_MIN = 0.90  # orientation confidence below this: page flagged (dev pages with
#                         quire-detector@1.202611300452: upright 0.92–0.95, 180° 0.88–0.93, 90° 0.70–0.87)
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


@dataclass
class _Segment:
    """One line candidate at the working scale: per covered column its x (pixel centre), the top of
    the body band and the baseline (lower edge of the band), smoothed; raw band heights; the mean
    body probability and the pixel count."""

    x: np.ndarray
    top: np.ndarray
    bot: np.ndarray
    heights: np.ndarray
    conf: float
    area: int
    ink: float = 1.0  # ink strength: 95th percentile of ink over the component minus the page's paper

    @property
    def t(self) -> float:  # body (x-height) band thickness, px at the working scale
        return float(max(1.0, np.median(self.heights)))

    @property
    def width(self) -> float:
        return float(self.x[-1] - self.x[0] + 1.0)


def binarize_ink(ink: np.ndarray) -> np.ndarray:
    """Ink pixels of the page at the working scale: ``ink`` (h, w) float in [0, 1] (1 = black)
    thresholded with Otsu's method (OpenCV). Returns a bool (h, w) array."""
    u8 = np.clip(ink * 255.0, 0, 255).astype(np.uint8)
    thr, _ = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return u8 > thr


def fit_extents(segs: list["_Segment"], ink_mask: np.ndarray, asc_range: tuple[float, float] = ASC_RANGE,
                desc_range: tuple[float, float] = DESC_RANGE,
                quantile: float = INK_QUANTILE) -> list[tuple[float, float]]:
    """Ascender and descender extensions of each line fitted to its ink, in its body heights.

    For each segment, the ink pixels (``ink_mask``: bool (h, w), working scale) in its columns
    above its body band, at most ``asc_range[1] × t`` above it and nearer to it than to the body
    band of any other segment in that column, give their distances to the band; the extension is
    the ``quantile`` of those distances over ``t``, clipped to ``asc_range`` (``asc_range[0]`` when
    there is no ink). Likewise below the baseline with ``desc_range``. Returns ``(asc, desc)`` per
    segment, in the order given. Lines written with tall ascenders get tall polygons, lines of
    small letters tight ones, as ground-truth polygons drawn around the ink are.
    """
    h, w = ink_mask.shape
    K = len(segs)
    cols = [np.clip(np.floor(s.x).astype(int), 0, w - 1) for s in segs]
    # every segment's band on the page's columns (NaN where it has none), to find the neighbours
    top = np.full((K, w), np.nan)
    bot = np.full((K, w), np.nan)
    for k, s in enumerate(segs):
        top[k, cols[k]] = s.top
        bot[k, cols[k]] = s.bot
    out = []
    for k, s in enumerate(segs):
        t, xi = s.t, cols[k]
        up_lim = s.top - asc_range[1] * t
        lo_lim = s.bot + desc_range[1] * t
        if K > 1:
            others = np.r_[0:k, k + 1:K]
            ob, ot = bot[others][:, xi], top[others][:, xi]
            with np.errstate(invalid="ignore"):
                above = np.where(ob <= s.top[None], ob, -np.inf)
                below = np.where(ot >= s.bot[None], ot, np.inf)
            nearest_above = np.max(np.nan_to_num(above, nan=-np.inf), 0)
            nearest_below = np.min(np.nan_to_num(below, nan=np.inf), 0)
            up_lim = np.maximum(up_lim, (nearest_above + s.top) / 2)
            lo_lim = np.minimum(lo_lim, (nearest_below + s.bot) / 2)
        ext = []
        for lo_row, hi_row, dist, rng in (
                (up_lim, s.top, lambda r: s.top[None] - r, asc_range),
                (s.bot, lo_lim, lambda r: r - s.bot[None], desc_range)):
            r0 = int(max(0, np.floor(lo_row.min())))
            r1 = int(min(h, np.ceil(hi_row.max()) + 1))
            if r1 <= r0:
                ext.append(rng[0])
                continue
            rows = np.arange(r0, r1, dtype=np.float64)[:, None]
            sel = ink_mask[r0:r1][:, xi] & (rows >= lo_row[None]) & (rows < hi_row[None])
            d = dist(rows)[sel] if sel.any() else None
            e = float(np.quantile(d, quantile)) / t if d is not None else rng[0]
            ext.append(float(np.clip(e, *rng)))
        out.append((ext[0], ext[1]))
    return out


def _segments(body: np.ndarray, threshold: float, ink: np.ndarray | None = None) -> list[_Segment]:
    """Connected components of ``body > threshold`` (8-connectivity) as segments. ``ink``: the page
    at the working scale, ink = 1 - gray / 255, same shape as ``body`` (for the ink strength)."""
    paper = float(np.median(ink)) if ink is not None else 0.0
    mask = (body > threshold).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    segs = []
    for k in range(1, n):
        x0, y0, bw, bh, area = stats[k]
        if area < MIN_AREA:
            continue
        sub = labels[y0:y0 + bh, x0:x0 + bw] == k
        conf = float(body[y0:y0 + bh, x0:x0 + bw][sub].mean())
        strength = float(np.percentile(ink[y0:y0 + bh, x0:x0 + bw][sub], 95)) - paper if ink is not None else 1.0
        cols = np.where(sub.any(0))[0]
        top = np.argmax(sub, 0)[cols]
        bot = bh - 1 - np.argmax(sub[::-1], 0)[cols]
        heights = (bot - top + 1).astype(np.float64)
        t = float(max(1.0, np.median(heights)))
        win = int(max(3, 2 * t))
        segs.append(_Segment(x=cols.astype(np.float64) + x0 + 0.5, top=_smooth(top, win) + y0,
                             bot=_smooth(bot, win) + y0 + 1.0, heights=heights, conf=conf, area=int(area),
                             ink=strength))
    return segs


def page_body_height(segs: list[_Segment]) -> float:
    """The page's typical body band thickness (px, working scale): the width-weighted median of the
    segments' own thickness, counting line-like segments (at least 3 thicknesses wide) when
    there are any. 0 when there are no segments."""
    if not segs:
        return 0.0
    cand = [s for s in segs if s.width >= 3 * s.t] or segs
    ts = np.array([s.t for s in cand])
    ws = np.array([s.width for s in cand])
    order = np.argsort(ts)
    cum = np.cumsum(ws[order])
    return float(ts[order][np.searchsorted(cum, 0.5 * cum[-1])])


def drop_faint(segs: list[_Segment], min_ink: float = MIN_INK) -> list[_Segment]:
    """The segments whose ink strength is at least ``min_ink`` × the median ink strength of the
    page's line-like segments (at least 3 body thicknesses wide; all segments when there are none):
    bleed-through, faint ghosts and body probability over bare paper go."""
    if not segs:
        return segs
    lines = [s for s in segs if s.width >= 3 * s.t] or segs
    ref = float(np.median([s.ink for s in lines]))
    return [s for s in segs if s.ink >= min_ink * ref]


def _merge(a: _Segment, b: _Segment) -> _Segment:
    x = np.r_[a.x, b.x]
    o = np.argsort(x, kind="stable")
    n = a.area + b.area
    return _Segment(x=x[o], top=np.r_[a.top, b.top][o], bot=np.r_[a.bot, b.bot][o],
                    heights=np.r_[a.heights, b.heights], conf=(a.conf * a.area + b.conf * b.area) / n, area=n,
                    ink=(a.ink * a.area + b.ink * b.area) / n)


def merge_collinear(segs: list[_Segment], t_page: float, gap: float = None, dy: float = None) -> list[_Segment]:
    """Join fragments of one line: two segments whose facing ends are at most ``gap × t_page``
    apart horizontally (overlap up to ``t_page`` allowed) and whose baselines there differ by at
    most ``dy × t_page`` become one segment. Repeated until nothing changes (O(n²) per pass)."""
    gap = MERGE_GAP if gap is None else gap
    dy = MERGE_DY if dy is None else dy
    if gap <= 0 or len(segs) < 2:
        return segs
    segs = sorted(segs, key=lambda s: s.x[0])
    changed = True
    while changed:
        changed = False
        for i in range(len(segs)):
            a = segs[i]
            best, best_d = None, None
            for j in range(len(segs)):
                b = segs[j]
                if i == j or b.x[0] < a.x[0]:
                    continue
                g = b.x[0] - a.x[-1]
                if g > gap * t_page or g < -t_page:
                    continue
                # baseline heights where they face each other (mean over one t_page of each end)
                ya = float(np.mean(a.bot[a.x >= a.x[-1] - t_page]))
                yb = float(np.mean(b.bot[b.x <= b.x[0] + t_page]))
                d = abs(ya - yb)
                if d <= dy * t_page and (best_d is None or d < best_d):
                    best, best_d = j, d
            if best is not None:
                segs[i] = _merge(a, segs[best])
                del segs[best]
                changed = True
                break
    return segs


@dataclass
class PageLines:
    """Lines of one page in reading order plus ``orientation_confidence`` in [0, 1]: the mean body
    probability of the page's line-like components (before the confidence filter), weighted by
    width; 0 without any. On the 10 dev pages (quire-detector@1.202611300452) upright it is
    0.92–0.95, rotated by 180° 0.88–0.93, by 90° either way 0.70–0.87 (columns of text read as
    fragments of low body probability), and on each page the upright reading beats both 90° turns
    by at least 0.066; pages of noise 0.55–0.71. ``upright`` is ``orientation_confidence ≥
    ORIENTATION_MIN``. A page upside down is not told apart by it: its lines are found in place
    (:class:`ml.pipeline.PagePipeline` tells it with the recognizer and turns the page).
    """

    lines: list[DetectedLine]
    orientation_confidence: float

    @property
    def upright(self) -> bool:
        return self.orientation_confidence >= ORIENTATION_MIN


def maps_to_lines(*args, **kwargs) -> list[DetectedLine]:
    """:func:`analyze_maps` and keep only the lines (same arguments)."""
    return analyze_maps(*args, **kwargs).lines


def analyze_maps(body: np.ndarray, baseline: np.ndarray | None, page_size: tuple[int, int],
                  threshold: float = BODY_THRESHOLD, asc: float = ASC, desc: float = DESC,
                  side: float = SIDE, min_confidence: float = MIN_CONFIDENCE,
                  min_length: float = MIN_LENGTH, min_thickness: float = MIN_THICKNESS,
                  merge_gap: float = MERGE_GAP, merge_dy: float = MERGE_DY, min_ink: float = MIN_INK,
                  ink: np.ndarray | None = None, fit_to_ink: bool = True) -> PageLines:
    """Probability maps at the working scale → lines in page pixels, in reading order.

    ``body``, ``baseline``: float arrays (h, w) in [0, 1] (``baseline`` may be None; it is not
    needed by this method); ``page_size``: (W, H) of the original page; the maps cover the whole
    page, so the scale is W / w horizontally and H / h vertically. The keyword arguments are the
    post-processing settings (module constants by default; an artifact's config ``postprocess``
    may override them): lengths are in units of the page's body height ``t_page``
    (:func:`page_body_height`), ``asc``/``desc``/``side`` in units of the line's own body height.
    ``ink``: the page at the working scale (1 - gray / 255, shape of ``body``); with it and
    ``fit_to_ink``, each line's ascender/descender extensions are fitted to its ink
    (:func:`fit_extents`) instead of the fixed ``asc``/``desc``.
    """
    W, H = page_size
    h, w = body.shape
    sx, sy = W / w, H / h
    if ink is not None and ink.shape != body.shape:
        raise ValueError(f"ink image {ink.shape} and body map {body.shape} differ in shape")
    segs = _segments(body, threshold, ink)
    t_page = page_body_height(segs)
    if ink is not None and min_ink > 0:
        segs = drop_faint(segs, min_ink)
    segs = merge_collinear(segs, t_page, merge_gap, merge_dy)
    segs = [s for s in segs if s.width >= 1.5 * s.t  # blobs narrower than tall are not lines
            and s.width >= min_length * t_page and s.t >= min_thickness * t_page]  # specks, dots, loops
    wsum = sum(s.width for s in segs)
    orientation = float(sum(s.conf * s.width for s in segs) / wsum) if wsum > 0 else 0.0
    segs = [s for s in segs if s.conf >= min_confidence]
    if ink is not None and fit_to_ink and segs:
        extents = fit_extents(segs, binarize_ink(ink))
    else:
        extents = [(asc, desc)] * len(segs)
    lines: list[DetectedLine] = []
    for s, (asc_s, desc_s) in zip(segs, extents):
        t = s.t
        # sample every ~t/2 columns, always keeping both ends
        step = max(1, int(t / 2))
        idx = np.unique(np.r_[np.arange(0, len(s.x), step), len(s.x) - 1])
        bx = s.x[idx] * sx
        by = s.bot[idx] * sy
        ty = (s.top[idx] - asc_s * t) * sy
        ly = (s.bot[idx] + desc_s * t) * sy
        pad = side * t * sx
        bx_poly = bx.copy()
        bx_poly[0] -= pad
        bx_poly[-1] += pad
        upper = np.stack([bx_poly, ty], 1)
        lower = np.stack([bx_poly, ly], 1)[::-1]
        poly = np.concatenate([upper, lower], 0)
        base = np.stack([bx, by], 1)
        line = _finish(poly, base, s.conf, W, H)
        if line is not None:
            lines.append(line)
    return PageLines(reading_order(lines), orientation)


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
