"""Line detection scores: bounding-box IoU, greedy one-to-one matching, precision/recall/F1.

Protocol (issue 4): predicted and ground-truth lines are matched one-to-one, greedily by IoU of
the bounding boxes of their polygons, a match counts at IoU ≥ 0.5. Ground-truth lines marked not
scored (typed Stanford lines, lines without text) neither count as misses nor make their matched
prediction a false positive. Predicted lines lying mostly (> half their box) outside the area
covered by the ground-truth lines (union of their boxes, grown by half a median line height) are
not scored: the Copiste consent paragraph is not transcribed in the ground truth. Nor are unmatched
predicted lines lying mostly (> half their box) over the boxes of unscored ground-truth lines: they
are typed lines too, found merged or split (a Stanford letterhead's typed place and date detected
as one line matches neither at IoU ≥ 0.5, and its text is not in the ground truth).
"""
from __future__ import annotations

import numpy as np


def is_scored(gt_line: dict) -> bool:
    """A ground-truth line counts in the scores: handwritten (typed Stanford lines are not) and with text."""
    return bool(gt_line.get("handwritten", True)) and bool(gt_line.get("text", "").strip())


def poly_bbox(poly) -> list[float]:
    p = np.asarray(poly, float).reshape(-1, 2)
    return [float(p[:, 0].min()), float(p[:, 1].min()), float(p[:, 0].max()), float(p[:, 1].max())]


def box_iou(a, b) -> float:
    """IoU of two boxes [x0, y0, x1, y1]."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / ua) if ua > 0 else 0.0


def greedy_match(pred_boxes, gt_boxes, thr: float = 0.5) -> list[tuple[int, int, float]]:
    """One-to-one matches (pred index, gt index, iou), greedily by decreasing IoU, IoU ≥ thr."""
    pairs = []
    for i, p in enumerate(pred_boxes):
        for j, g in enumerate(gt_boxes):
            v = box_iou(p, g)
            if v >= thr:
                pairs.append((v, i, j))
    pairs.sort(reverse=True)
    used_p, used_g, out = set(), set(), []
    for v, i, j in pairs:
        if i in used_p or j in used_g:
            continue
        used_p.add(i)
        used_g.add(j)
        out.append((i, j, v))
    return out


def page_counts(pred_polys, gt_lines, thr: float = 0.5) -> dict:
    """Counts for one page. ``gt_lines``: dicts with ``polygon`` and optional ``scored`` (default True).

    Returns ``{"tp", "fp", "fn", "matches", "scored_pred"}``; ``scored_pred`` lists the indices of the
    predicted lines that are scored (matched to a scored ground-truth line, or false positives).
    Unmatched predictions lying mostly outside the ground truth's area, or mostly over unscored
    ground-truth lines, are neither (module docstring).
    """
    gt_boxes = [poly_bbox(g["polygon"]) for g in gt_lines]
    scored = [bool(g.get("scored", True)) for g in gt_lines]
    pred_boxes = [poly_bbox(p) for p in pred_polys]
    matches = greedy_match(pred_boxes, gt_boxes, thr)
    matched_p = {i: j for i, j, _ in matches}
    matched_g = {j for _, j, _ in matches}
    # area covered by gt lines
    if gt_boxes:
        hs = np.median([b[3] - b[1] for b in gt_boxes])
        grow = 0.5 * hs
        cover = [[b[0] - grow, b[1] - grow, b[2] + grow, b[3] + grow] for b in gt_boxes]
    else:
        cover = []
    unscored = [b for b, s in zip(gt_boxes, scored) if not s]
    tp = fp = 0
    scored_pred = []
    for i, pb in enumerate(pred_boxes):
        if i in matched_p:
            if scored[matched_p[i]]:
                tp += 1
                scored_pred.append(i)
            continue
        if _inside_fraction(pb, cover) <= 0.5:
            continue  # mostly outside the area of the ground truth: not scored
        if _inside_fraction(pb, unscored) > 0.5:
            continue  # mostly over typed (unscored) lines: a typed line itself, not scored
        fp += 1
        scored_pred.append(i)
    fn = sum(1 for j in range(len(gt_lines)) if scored[j] and j not in matched_g)
    return {"tp": tp, "fp": fp, "fn": fn, "matches": matches, "scored_pred": scored_pred}


def _inside_fraction(box, cover) -> float:
    """Fraction of ``box``'s area covered by the union of ``cover`` boxes (raster estimate)."""
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0 or not cover:
        return 0.0
    n = 24
    xs = np.linspace(x0, x1, n)
    ys = np.linspace(y0, y1, n)
    gx, gy = np.meshgrid(xs, ys)
    inside = np.zeros_like(gx, bool)
    for c in cover:
        inside |= (gx >= c[0]) & (gx <= c[2]) & (gy >= c[1]) & (gy <= c[3])
    return float(inside.mean())


def prf(tp: int, fp: int, fn: int) -> dict:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "tp": tp, "fp": fp, "fn": fn}
