"""Line detection seconds per page for a 2,500 × 3,300 scan on this CPU, 1 and 2 torch threads.

    python -m bench.detector_speed [--runs 5] [--page IMAGE]

The page is the committed fixture page (3,300 × 2,550) resized to 3,300 × 2,500, or any image
given. Prints the median of ``--runs`` timed runs (after one warm-up) of ``LineDetector.detect``
and, split, of its three steps: resize + pad (``prepare``), network, post-processing.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import torch

from ml.detect import LineDetector, prepare
from ml.detect.postprocess import analyze_maps

FIXTURE = Path(__file__).resolve().parents[1] / "tests/fixtures/pages/copiste_dun_jour_fr/alto_wikitexte_0024_2.jpg"


def _median(fn, runs: int) -> float:
    fn()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--page", default=str(FIXTURE))
    a = ap.parse_args(argv)
    gray = cv2.imread(a.page, cv2.IMREAD_GRAYSCALE)
    gray = cv2.resize(gray, (2500, 3300), interpolation=cv2.INTER_AREA)
    det = LineDetector.load()
    x, (h, w) = prepare(gray)
    body, base, ink = det.maps(gray)
    print(f"page {gray.shape[1]}×{gray.shape[0]}, network input {tuple(x.shape[-2:])}, {det.name}")
    print("threads  detect s  (resize+pad  network  post-processing)")
    for n in (1, 2):
        torch.set_num_threads(n)
        t_all = _median(lambda: det.detect(gray), a.runs)
        t_prep = _median(lambda: prepare(gray), a.runs)
        with torch.inference_mode():
            t_net = _median(lambda: det.model(x), a.runs)
        t_post = _median(lambda: analyze_maps(body, base, (gray.shape[1], gray.shape[0]), ink=ink), a.runs)
        print(f"{n:7d}  {t_all:8.3f}  ({t_prep:10.3f}  {t_net:7.3f}  {t_post:15.3f})")


if __name__ == "__main__":
    main()
