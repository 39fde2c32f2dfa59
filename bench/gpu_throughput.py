"""GPU inference throughput of the shipped (or given) models, for the closing notes.

    python -m bench.gpu_throughput --recognizer R.pt --detector D.pt --dev-pack .gpu_data/rec_dev

Prints JSON: recognizer lines/s per batch size on the dev pack's lines (greedy decoding included,
normalisation excluded), detector seconds per page on a 2,500 × 3,300 synthetic page.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from ml.recognizer.data import LinePack
from ml.recognizer.image import normalize_line
from ml.recognizer.predictor import Recognizer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recognizer")
    ap.add_argument("--detector")
    ap.add_argument("--dev-pack", required=True)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    out: dict = {"device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu"}
    pack = LinePack(args.dev_pack)
    try:
        rec = Recognizer.load(args.recognizer, args.device)
        images = [normalize_line(pack[i], rec.height) for i in range(len(pack))]
        rec.recognize_normalized(images[:256], batch_size=64)  # warm-up
        for bs in (32, 128, 512):
            if args.device == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            rec.recognize_normalized(images, batch_size=bs)
            if args.device == "cuda":
                torch.cuda.synchronize()
            out[f"recognizer_lines_per_s_bs{bs}"] = round(len(images) / (time.perf_counter() - t), 1)
    except Exception as exc:  # report, keep measuring the other model
        out["recognizer_error"] = repr(exc)
    try:
        from ml.detect import LineDetector
        det = LineDetector.load(args.detector, args.device)
        page = np.full((3300, 2500), 235, np.uint8)
        page[::60, :] = 40
        det.detect(page)
        t = time.perf_counter()
        for _ in range(5):
            det.detect(page)
        out["detector_s_per_page_2500x3300"] = round((time.perf_counter() - t) / 5, 4)
    except Exception as exc:
        out["detector_error"] = repr(exc)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
