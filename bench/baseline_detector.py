"""A classical line detector beside the learned one, scored the same way on the dev pages.

    python -m bench.baseline_detector [--pages ../shared/data/dev/pages/pages.json]

Classical method (no learning): page scaled to a 1,024 px long side; Sauvola-like local
binarisation (ink where gray < local mean − k·σ, window 31 px, OpenCV box filters); specks removed;
ink smeared horizontally by a closing with a (w × 1) kernel, w = 3 × the median connected-component
height (run-length smearing, Wong et al. 1982), and vertically opened by 1/4 of that height to cut
thin touching strokes; each smeared component at least 3 heights wide and between 0.3 and 3 median
heights tall is a line, its box the polygon. Scored with ``ml.detect.metrics`` (IoU ≥ 0.5 on boxes,
greedy one-to-one, unscored typed lines and lines outside the ground-truth area ignored), beside
``ml.detect.evaluate`` on the shipped detector, in one run; prints a table.
"""
from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from ml.detect.evaluate import evaluate
from ml.detect.metrics import is_scored, page_counts, prf
from ml.detect.pages import read_pages_index

LONG = 1024


def classical_lines(gray: np.ndarray) -> list[list[list[int]]]:
    """Line polygons (boxes, 4 points, page pixels) of a uint8 (H, W) page."""
    H, W = gray.shape
    s = LONG / max(H, W)
    g = cv2.resize(gray, (round(W * s), round(H * s)), interpolation=cv2.INTER_AREA).astype(np.float32)
    mean = cv2.boxFilter(g, -1, (31, 31))
    sq = cv2.boxFilter(g * g, -1, (31, 31))
    std = np.sqrt(np.maximum(sq - mean * mean, 0))
    ink = ((g < mean - 0.2 * std - 8) & (g < 200)).astype(np.uint8)
    n, lab, st, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    keep = st[:, cv2.CC_STAT_AREA] >= 6
    keep[0] = False
    ink = keep[lab].astype(np.uint8)
    hs = st[1:, cv2.CC_STAT_HEIGHT][keep[1:] & (st[1:, cv2.CC_STAT_AREA] >= 20)]
    if len(hs) == 0:
        return []
    hmed = float(np.median(hs))
    k = max(3, int(3 * hmed))
    sm = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, 1)))
    sm = cv2.morphologyEx(sm, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, max(1, int(hmed / 4)))))
    n, lab, st, _ = cv2.connectedComponentsWithStats(sm, connectivity=8)
    out = []
    for x, y, w, h, _a in st[1:]:
        if w < 3 * hmed or h < 0.3 * hmed or h > 3 * hmed:
            continue
        x0, y0, x1, y1 = x / s, y / s, (x + w) / s, (y + h) / s
        out.append([[round(x0), round(y0)], [round(x1), round(y0)], [round(x1), round(y1)], [round(x0), round(y1)]])
    return out


def evaluate_classical(pages_json: str) -> dict:
    counts, secs = {}, []
    for p in read_pages_index(pages_json):
        gray = cv2.imread(p["image"], cv2.IMREAD_GRAYSCALE)
        t = time.perf_counter()
        polys = classical_lines(gray)
        secs.append(time.perf_counter() - t)
        gt = [dict(g, scored=is_scored(g)) for g in p["lines"]]
        c = page_counts(polys, gt)
        agg = counts.setdefault(p["source"], [0, 0, 0])
        for i, key in enumerate(("tp", "fp", "fn")):
            agg[i] += c[key]
    res = {s: prf(*v) for s, v in counts.items()}
    res["macro_f1"] = sum(r["f1"] for r in res.values()) / max(1, len(counts))
    res["seconds"] = float(np.median(secs))
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", default="../shared/data/dev/pages/pages.json")
    a = ap.parse_args(argv)
    base = evaluate_classical(a.pages)
    learned = evaluate(a.pages)
    learned["seconds"] = float(np.median([r["seconds"] for r in learned["pages"]]))
    print(f"{'source':24s} {'classical P / R / F1':>22s}   {'learned P / R / F1':>22s}")
    for s in [k for k in base if isinstance(base[k], dict)]:
        b, m = base[s], learned[s]
        print(f"{s:24s} {b['precision']:.2f} / {b['recall']:.2f} / {b['f1']:.3f}     "
              f"{m['precision']:.2f} / {m['recall']:.2f} / {m['f1']:.3f}")
    print(f"{'macro F1':24s} {base['macro_f1']:22.3f}   {learned['macro_f1']:22.3f}")
    print(f"{'median s/page':24s} {base['seconds']:22.3f}   {learned['seconds']:22.3f}   ({learned['model']})")


if __name__ == "__main__":
    main()
