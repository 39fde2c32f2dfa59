"""Make line packs (see :mod:`ml.recognizer.data`) from ``lines.jsonl`` files.

    python -m ml.recognizer.pack --jsonl ../shared/data/train/lines.jsonl --out .gpu_data/rec_train \
        [--crop box|band]

``--crop box`` (default) packs the dataset's crops as they are, with their polygons for the
training-time masking; ``band`` cuts each along the band around its baseline
(:func:`ml.recognizer.data.line_image`).
"""
from __future__ import annotations

import argparse
import sys

from .data import pack_lines
from .model import RecognizerConfig


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jsonl", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--height", type=int, default=RecognizerConfig.height)
    ap.add_argument("--crop", choices=("box", "band"), default="box", help="how each line is cut (default: box)")
    args = ap.parse_args(argv)
    n = pack_lines(args.jsonl, args.out, args.height, crop=args.crop)
    print(f"packed {n} lines into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
