"""Line detection precision/recall/F1 on full pages, per source.

    python -m ml.detect.evaluate --pages ../shared/data/dev/pages/pages.json [--model PATH] [--json OUT]

Protocol in ``ml.detect.metrics``: IoU ≥ 0.5 on bounding boxes of polygons, greedy one-to-one
matching; typed lines (``handwritten`` false) and lines without text are not scored; predicted
lines mostly outside the area covered by ground-truth lines are not scored. Detection runs on the
original page images; coordinates are compared in their own pixels.
"""
from __future__ import annotations

import argparse
import json
import time
import warnings

import cv2

from ml.detect import LineDetector
from ml.detect.metrics import is_scored, page_counts, prf
from ml.detect.pages import read_pages_index


def evaluate(pages_json: str, model: str | None = None, device: str = "cpu", detector=None) -> dict:
    """Scores per source plus ``macro_f1`` and per-page rows (``pages``)."""
    det = detector or LineDetector.load(model, device=device)
    counts, rows = {}, []
    for p in read_pages_index(pages_json):
        gray = cv2.imread(p["image"], cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise FileNotFoundError(p["image"])
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lines = det.detect(gray)
        sec = time.perf_counter() - t
        gt = [dict(g, scored=is_scored(g)) for g in p["lines"]]
        c = page_counts([ln.polygon for ln in lines], gt)
        agg = counts.setdefault(p["source"], [0, 0, 0])
        for i, k in enumerate(("tp", "fp", "fn")):
            agg[i] += c[k]
        rows.append({"image": p["image"], "source": p["source"], "n_pred": len(lines), "n_gt": len(gt),
                     "tp": c["tp"], "fp": c["fp"], "fn": c["fn"], "seconds": round(sec, 3)})
    res = {s: prf(*v) for s, v in counts.items()}
    res["macro_f1"] = sum(r["f1"] for r in res.values()) / max(1, len(counts))
    res["pages"] = rows
    res["model"] = det.name
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description="Evaluate the line detector on full pages.")
    ap.add_argument("--pages", required=True, help="pages.json index (format of dev/pages/pages.json)")
    ap.add_argument("--model", default=None, help="detector.pt (default: shipped artifact)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None, help="write the full result here")
    a = ap.parse_args(argv)
    res = evaluate(a.pages, a.model, a.device)
    for r in res["pages"]:
        print(f"{r['source']:24s} pred {r['n_pred']:3d} gt {r['n_gt']:3d}  tp {r['tp']:3d} fp {r['fp']:3d} "
              f"fn {r['fn']:3d}  {r['seconds']:.2f}s  {r['image'].rsplit('/', 1)[-1]}")
    print(f"model {res['model']}")
    for s, r in res.items():
        if isinstance(r, dict):
            print(f"{s:24s} P {r['precision']:.3f} R {r['recall']:.3f} F1 {r['f1']:.3f}")
    print(f"macro F1 {res['macro_f1']:.3f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
