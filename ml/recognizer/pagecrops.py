"""Line packs of ground-truth text on crops cut the way the page pipeline cuts them.

The line datasets of ``../shared/data`` ship their own crops (the line's box, at the dataset's
scale). The page pipeline reads other crops: those of the *detected* lines, cut along the detected
polygon and straightened along the detected baseline (:func:`ml.crop.crop_line`). A recognizer
trained only on the former reads the latter worse (see docs/TRAINING.md, "downsampling 2"). This
tool runs the detector on pages with ground truth, matches every detected line to a ground-truth
line and packs the detected line's crop with the ground-truth text, so that the recognizer can be
trained and chosen on what it will read in production::

    python -m ml.recognizer.pagecrops --pages ../shared/data/train/pages/pages.jsonl \\
        --out .gpu_data/rec_train_pagecrops [--ground-truth-polygons] [--cut band]

The pipeline reads every line twice, cut along its polygon and along the band around its baseline
(:func:`ml.crop.crop_band`), and keeps the more confident reading; ``--cut band`` packs the latter.

Matching: one-to-one, greedily by bounding-box IoU (:func:`ml.detect.metrics.greedy_match`), at
IoU ≥ ``min_iou``; a match is kept only when each box covers at least ``min_x_cover`` of the
other's width, so that a detected line holding half of a ground-truth line (and so half its text)
is not packed with the whole text. Printed and empty ground-truth lines are left out.
"""
from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

import cv2

from ml.crop import crop_band, crop_line
from ml.detect import LineDetector
from ml.detect.metrics import greedy_match, is_scored, poly_bbox
from ml.detect.pages import read_pages

from .data import PackWriter

log = logging.getLogger(__name__)

def x_cover(a, b) -> float:
    """Smaller of the two fractions of box width covered by the other box's x-range."""
    inter = min(a[2], b[2]) - max(a[0], b[0])
    if inter <= 0:
        return 0.0
    return inter / max(a[2] - a[0], b[2] - b[0], 1e-9)


def matched_lines(detected: list, gt_lines: list[dict], min_iou: float = 0.5,
                  min_x_cover: float = 0.9) -> list[tuple[object, dict]]:
    """(detected line, ground-truth line) pairs: one-to-one greedy IoU matches of the boxes at
    ``min_iou``, kept when the boxes' x-ranges cover ``min_x_cover`` of each other (the wider
    box's width). Ground-truth lines that are not handwritten or have no text are left out."""
    gts = [g for g in gt_lines if is_scored(g)]
    gt_boxes = [poly_bbox(g["polygon"]) for g in gts]
    det_boxes = [list(d.bbox) for d in detected]
    out = []
    for i, j, _ in greedy_match(det_boxes, gt_boxes, min_iou):
        if x_cover(det_boxes[i], gt_boxes[j]) >= min_x_cover:
            out.append((detected[i], gts[j]))
    return out


def pack_page_crops(pages_path: str | Path, out_dir: str | Path, height: int = 48,
                    detector: LineDetector | None = None, ground_truth_polygons: bool = False,
                    min_iou: float = 0.5, min_x_cover: float = 0.9, source_suffix: str = "",
                    cut: str = "polygon") -> dict:
    """Write a line pack of the matched lines of the pages in ``pages_path`` (``pages.json`` index or
    ``pages.jsonl``) into ``out_dir`` at ``height`` pixels.

    With ``ground_truth_polygons`` the crops are cut along the ground-truth polygon and baseline
    (same :func:`ml.crop.crop_line`) instead of the detected ones, for every scored ground-truth
    line. ``source_suffix`` is appended to each record's source (to score these crops apart from
    the dataset's lines in one dev pack). Returns ``{"pages", "ground_truth", "packed"}`` counts.
    Raises FileNotFoundError for an unreadable page image, ValueError for an unknown ``cut``.
    """
    if cut not in ("polygon", "band"):
        raise ValueError(f"cut must be 'polygon' or 'band', got {cut!r}")
    det = None if ground_truth_polygons else (detector or LineDetector.load())
    counts = {"pages": 0, "ground_truth": 0, "packed": 0}
    with PackWriter(out_dir, height) as w:
        for page in read_pages(pages_path):
            gray = cv2.imread(page["image"], cv2.IMREAD_GRAYSCALE)
            if gray is None:
                raise FileNotFoundError(page["image"])
            gts = [g for g in page["lines"] if is_scored(g)]
            counts["pages"] += 1
            counts["ground_truth"] += len(gts)
            if ground_truth_polygons:
                pairs = [(None, g) for g in gts]
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    detected = det.detect(gray)
                pairs = matched_lines(detected, gts, min_iou, min_x_cover)
            for d, g in pairs:
                poly, base = (g["polygon"], g["baseline"]) if d is None else (d.polygon, d.baseline)
                if cut == "band":
                    crop = crop_band(gray, poly, base)
                    if crop is None:
                        log.warning("%s line %s: no band to cut; skipped", page["image"], g["id"])
                        continue
                else:
                    try:
                        crop = crop_line(gray, poly, base)
                    except ValueError as exc:
                        log.warning("%s line %s: %s; skipped", page["image"], g["id"], exc)
                        continue
                if min(crop.shape) < 2:
                    continue
                w.add(crop, {"id": str(g["id"]), "text": g["text"], "source": page["source"] + source_suffix, "handwritten": True})
        counts["packed"] = w.count
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", required=True, help="pages.json index or pages.jsonl")
    ap.add_argument("--out", required=True)
    ap.add_argument("--height", type=int, default=48, help="pack height in pixels (default 48)")
    ap.add_argument("--detector", help="detector artifact (default: the shipped one)")
    ap.add_argument("--ground-truth-polygons", action="store_true",
                    help="cut along the ground-truth polygons instead of the detected ones")
    ap.add_argument("--min-iou", type=float, default=0.5)
    ap.add_argument("--min-x-cover", type=float, default=0.9)
    ap.add_argument("--source-suffix", default="")
    ap.add_argument("--cut", choices=("polygon", "band"), default="polygon",
                    help="cut each line along its polygon (default) or along the band around its baseline")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    det = None if args.ground_truth_polygons else LineDetector.load(args.detector)
    c = pack_page_crops(args.pages, args.out, args.height, det, args.ground_truth_polygons, args.min_iou,
                        args.min_x_cover, args.source_suffix, args.cut)
    print(f"{c['pages']} pages, {c['ground_truth']} ground-truth lines, {c['packed']} packed into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
