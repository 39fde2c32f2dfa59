"""The page command of issue 4: run the whole pipeline on every page of a ``pages.json`` index and
write one PAGE XML 2019 file per page, plus the seconds each page took.

    python -m bench.transcribe_pages --pages ../shared/data/dev/pages/pages.json --out-dir bench/out/page_xml \\
        [--detector ml/artifacts/detector.pt] [--recognizer ml/artifacts/recognizer.pt] [--threads 2] [--beam 0] [--decoding greedy|lm]

``--pages`` is an index in the format of ``../shared/data/dev/pages/pages.json`` (a list of records
with ``image``, paths relative to the split folder when they start with ``pages/``, else to the
index's folder). For each page, ``OUT_DIR/<image stem>.xml`` holds the lines in reading order with
polygon, baseline and text (``TextEquiv`` with the line confidence), in the page image's pixels;
``OUT_DIR/seconds.json`` lists ``{"image", "xml", "lines", "seconds", "timings"}`` per page, where
``seconds`` is the wall time from reading the image file to the recognised lines (models loaded
once, before the first page) and ``timings`` the pipeline's own detect / recognize / total.

The XML comes from the product's own exporter (``quire.documents.exports``: lxml only, no Django),
so it is the PAGE XML the API serves.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PAGES = ROOT.parent / "shared" / "data" / "dev" / "pages" / "pages.json"


def page_images(pages_json: str | Path) -> list[dict]:
    """``[{"image": absolute path, "source": str}]`` of a ``pages.json`` index (same path rules as
    ``ml.detect.pages.read_pages_index``, without reading the ground truth)."""
    path = Path(pages_json)
    index = json.loads(path.read_text(encoding="utf-8"))
    base = path.parent.parent if index and str(index[0]["image"]).startswith("pages/") else path.parent
    return [{"image": str(base / p["image"]), "source": p.get("source", "")} for p in index]


def read_gray(path: str | Path):
    """A page image file as an (H, W) uint8 grayscale array (OpenCV, EXIF orientation applied, as
    ``ml.detect.evaluate`` reads pages). Raises FileNotFoundError when it cannot be read."""
    import cv2

    gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        raise FileNotFoundError(f"{path}: missing or not an image")
    return gray


def transcribe(pipeline, image: str | Path):
    """Read one page and run ``pipeline`` on it; returns ``(PageResult, seconds)``."""
    t = time.perf_counter()
    result = pipeline.run(read_gray(image))
    return result, time.perf_counter() - t


def page_xml(result, image: str | Path) -> bytes:
    """PAGE XML 2019 bytes of a ``PageResult`` through the product's exporter."""
    if str(ROOT / "platform") not in sys.path:
        sys.path.insert(0, str(ROOT / "platform"))
    from quire.documents.exports import export_page, to_page_xml

    return to_page_xml(export_page(result.to_dict(), image_filename=Path(image).name, page_number=1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", default=str(DEFAULT_PAGES), help="pages.json index")
    ap.add_argument("--out-dir", required=True, help="folder for the PAGE XML files and seconds.json")
    ap.add_argument("--detector", default=None, help="detector artifact (default: shipped)")
    ap.add_argument("--recognizer", default=None, help="recognizer artifact (default: shipped)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--beam", type=int, default=0, help="beam width; 0 = greedy (with --decoding lm: the LM card's)")
    ap.add_argument("--decoding", choices=["greedy", "lm"], default="greedy",
                    help="lm: beam search with the shipped character language model")
    ap.add_argument("--line-cuts", choices=["both", "polygon"], default="both",
                    help="both: each line read along its polygon and its baseline band, the more confident kept")
    args = ap.parse_args(argv)

    from bench.pages import require_pages_index

    pages_json = require_pages_index(args.pages)
    import torch

    from ml.pipeline import PagePipeline

    torch.set_num_threads(args.threads)
    kw = {"beam_width": args.beam} if args.beam else {}
    kw["band_cut"] = args.line_cuts == "both"
    pipeline = PagePipeline.load(args.detector, args.recognizer, device=args.device, decoding=args.decoding, **kw)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for p in page_images(pages_json):
        result, sec = transcribe(pipeline, p["image"])
        xml = out_dir / (Path(p["image"]).stem + ".xml")
        xml.write_bytes(page_xml(result, p["image"]))
        rows.append({"image": p["image"], "source": p["source"], "xml": str(xml), "lines": len(result.lines),
                     "seconds": round(sec, 3), "timings": result.timings})
        print(f"{sec:6.2f} s  {len(result.lines):3d} lines  {xml}")
    (out_dir / "seconds.json").write_text(json.dumps({"models": pipeline.models, "pages": rows}, indent=1),
                                          encoding="utf-8")
    total = sum(r["seconds"] for r in rows)
    print(f"{len(rows)} pages, {total / max(1, len(rows)):.2f} s per page ({pipeline.models['detector']}, "
          f"{pipeline.models['recognizer']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
