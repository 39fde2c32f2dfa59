"""Full pages side by side: Quire's pipeline vs Tesseract 5 and RapidOCR full-page runs, same pages, one run.

    python -m bench.pages [--pages ../shared/data/dev/pages/pages.json] [--detector D.pt] \\
        [--recognizer R.pt] [--limit 2] [--threads 2] [--engines quire,quire_lm,tesseract,rapidocr] [--xml-dir DIR] \\
        [--line-cuts both|polygon]

Engines:

- ``quire``: ``ml.pipeline.PagePipeline`` (detector + recognizer, greedy), torch ``--threads``
  threads (default 2); ``--xml-dir`` also writes its PAGE XML per page (as ``bench.transcribe_pages``).
- ``quire_lm``: the same with beam search fused with the shipped character language model (what
  the workers run by default, ``QUIRE_DECODING=lm``).
- ``tesseract``: Tesseract 5 on the whole page (``--psm 3``), ``eng`` / ``fra`` by source, its own
  text lines as line boxes, ``OMP_THREAD_LIMIT=1``.
- ``rapidocr``: RapidOCR 3.10 detection + recognition (no angle classifier), its text boxes as lines.

Protocol (issue 4, "Targets"), shared with ``ml.detect.evaluate`` through ``ml.detect.metrics``:

- Line detection: predicted and ground-truth lines are matched one-to-one, greedily by IoU of the
  bounding boxes of their polygons; a match counts at IoU ≥ 0.5. Precision, recall, F1 per source
  (counts summed over its pages).
- Not scored: ground-truth lines that are typed/printed (Stanford letterheads and typed bodies) or
  have no text; predicted lines matched to such a line; predicted lines lying mostly (> half their
  box) outside the area covered by the ground-truth lines (the printed consent paragraph of the
  Copiste sheets is not in the ground truth); unmatched predicted lines lying mostly over unscored
  ground-truth lines (typed lines found merged or split: a Stanford letterhead's typed place and
  date detected as one line; counted as false positives, with their text, until 2026-12-01).
- Page CER: the scored ground-truth lines and the scored predicted lines, each sorted top to bottom
  (by the vertical centre of the box, then left to right) and joined with spaces, compared as one
  text per page; corpus CER/WER per source (``ml.metrics.ErrorRate``, NFC + whitespace collapsing).
- Seconds per page: wall time from the image file to the lines, models loaded before the first page.

``--limit N`` takes N pages round-robin over the sources (smoke tests). Prints Markdown tables and
writes ``bench/out/pages.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PAGES = ROOT.parent / "shared" / "data" / "dev" / "pages" / "pages.json"
OUT_DIR = ROOT / "bench" / "out"


def pick_pages(pages: list[dict], limit: int | None) -> list[dict]:
    """``limit`` pages taken round-robin over the sources, in index order within each source."""
    if not limit or limit >= len(pages):
        return list(pages)
    by_source: dict[str, list[dict]] = {}
    for p in pages:
        by_source.setdefault(p["source"], []).append(p)
    out, queues = [], [list(v) for v in by_source.values()]
    while len(out) < limit:
        for q in queues:
            if q and len(out) < limit:
                out.append(q.pop(0))
    return out


def require_pages_index(path: str | Path) -> str:
    """``path`` if it is a file, else SystemExit with a message naming ``--pages`` (a fresh clone has
    no ``../shared/data``; the bundled page's index is ``tests/fixtures/pages/pages.json``)."""
    if not Path(path).is_file():
        raise SystemExit(f"no pages index at {path} (the dev set lives in ../shared/data): pass "
                         "--pages, e.g. --pages tests/fixtures/pages/pages.json for the bundled page")
    return str(path)


def _center(poly) -> tuple[float, float]:
    from ml.detect.metrics import poly_bbox

    x0, y0, x1, y1 = poly_bbox(poly)
    return ((y0 + y1) / 2, (x0 + x1) / 2)


def page_text(lines: list[tuple[list, str]]) -> str:
    """Texts of ``(polygon, text)`` pairs sorted top to bottom (box centre y, then x), joined with spaces."""
    return " ".join(t for _, t in sorted(lines, key=lambda pt: _center(pt[0])) if t.strip())


def score_page(pred: list[tuple[list, str]], gt_lines: list[dict]) -> dict:
    """Detection counts and the two page texts of one page.

    Args:
        pred: ``(polygon, text)`` per predicted line, page pixels.
        gt_lines: ground-truth dicts from ``ml.detect.pages`` (``polygon``, ``text``, ``handwritten``).

    Returns ``{"tp", "fp", "fn", "reference", "prediction", "scored_pred"}``.
    """
    from ml.detect.metrics import is_scored, page_counts

    gt = [dict(g, scored=is_scored(g)) for g in gt_lines]
    c = page_counts([p for p, _ in pred], gt)
    scored_pred = [pred[i] for i in c["scored_pred"]]
    reference = page_text([(g["polygon"], g["text"]) for g in gt if g["scored"]])
    return {"tp": c["tp"], "fp": c["fp"], "fn": c["fn"], "reference": reference,
            "prediction": page_text(scored_pred), "scored_pred": len(scored_pred)}


class Quire:
    """Our pipeline as a page engine: ``(path, lang) -> [(polygon, text)]``."""

    def __init__(self, detector: str | None, recognizer: str | None, threads: int, xml_dir: str | None,
                 decoding: str = "greedy", band_cut: bool = True):
        import torch

        from ml.pipeline import PagePipeline

        torch.set_num_threads(threads)
        self.pipeline = PagePipeline.load(detector, recognizer, device="cpu", decoding=decoding, band_cut=band_cut)
        self.xml_dir = Path(xml_dir) if xml_dir else None
        m = self.pipeline.models
        how = "greedy" if decoding == "greedy" else f"beam {self.pipeline.beam_width} + {m['language_model']}"
        cuts = "polygon and baseline band cuts" if band_cut else "polygon cuts"
        self.name = f"{m['detector']} + {m['recognizer']} ({how}, {cuts}, {threads} torch threads)"

    def __call__(self, path: str, lang: str) -> list[tuple[list, str]]:
        from bench.transcribe_pages import page_xml, read_gray

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = self.pipeline.run(read_gray(path))
        if self.xml_dir:
            self.xml_dir.mkdir(parents=True, exist_ok=True)
            (self.xml_dir / (Path(path).stem + ".xml")).write_bytes(page_xml(result, path))
        return [(ln.polygon, ln.text) for ln in result.lines]


def make_engines(names: list[str], args) -> dict:
    """Engine name → (description, callable(path, lang) -> [(polygon, text)])."""
    from bench import peers

    out = {}
    for n in names:
        if n in ("quire", "quire_lm"):
            q = Quire(args.detector, args.recognizer, args.threads, args.xml_dir,
                      "lm" if n == "quire_lm" else "greedy", args.line_cuts == "both")
            out[n] = (q.name, q)
        elif n == "tesseract":
            out[n] = (f"{peers.tesseract_version()} (--psm 3, eng/fra, OMP_THREAD_LIMIT=1)",
                      lambda path, lang: [(pl.polygon, pl.text) for pl in peers.tesseract_page(path, lang)])
        elif n == "rapidocr":
            eng = peers.RapidOCREngine()
            out[n] = (f"{eng.version()} (PP-OCR det + rec, no cls)",
                      lambda path, lang, eng=eng: [(pl.polygon, pl.text) for pl in eng.page(path)])
        else:
            raise SystemExit(f"unknown engine {n!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", default=str(DEFAULT_PAGES), help="pages.json index")
    ap.add_argument("--detector", default=None, help="detector artifact (default: ml/artifacts/detector.pt)")
    ap.add_argument("--recognizer", default=None, help="recognizer artifact (default: ml/artifacts/recognizer.pt)")
    ap.add_argument("--limit", type=int, default=None, help="only N pages, round-robin over sources")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for our pipeline (default 2)")
    ap.add_argument("--engines", default="quire,quire_lm,tesseract,rapidocr")
    ap.add_argument("--xml-dir", default=None, help="also write our PAGE XML per page here")
    ap.add_argument("--line-cuts", choices=["both", "polygon"], default="both",
                    help="both (default): each line read along its polygon and its baseline band, the more confident "
                         "reading kept, as the workers do; polygon: one cut")
    ap.add_argument("--out", default=str(OUT_DIR / "pages.json"))
    args = ap.parse_args(argv)

    from bench.peers import lang_of
    from ml.detect.metrics import prf
    from ml.detect.pages import read_pages_index
    from ml.metrics import ErrorRate

    pages = pick_pages(read_pages_index(require_pages_index(args.pages)), args.limit)
    engines = make_engines([e.strip() for e in args.engines.split(",") if e.strip()], args)
    load0 = os.getloadavg()
    print(f"{len(pages)} pages from {args.pages}; load average {load0[0]:.2f}", file=sys.stderr)
    results, rows = {}, []
    for name, (desc, run) in engines.items():
        counts: dict[str, list[int]] = {}
        cer: dict[str, ErrorRate] = {}
        secs: dict[str, list[float]] = {}
        if name != "tesseract":  # warm-up (lazy model loading, first-call allocations); tesseract starts fresh anyway
            run(pages[0]["image"], lang_of(pages[0]["source"]))
        for p in pages:
            t = time.perf_counter()
            pred = run(p["image"], lang_of(p["source"]))
            sec = time.perf_counter() - t
            s = score_page(pred, p["lines"])
            agg = counts.setdefault(p["source"], [0, 0, 0])
            agg[0] += s["tp"]
            agg[1] += s["fp"]
            agg[2] += s["fn"]
            cer.setdefault(p["source"], ErrorRate()).update(s["reference"], s["prediction"])
            secs.setdefault(p["source"], []).append(sec)
            page_cer = ErrorRate()
            page_cer.update(s["reference"], s["prediction"])
            rows.append({"engine": name, "image": p["image"], "source": p["source"], "pred_lines": len(pred),
                         "scored_pred": s["scored_pred"], "tp": s["tp"], "fp": s["fp"], "fn": s["fn"],
                         "cer": round(page_cer.cer, 4), "seconds": round(sec, 2),
                         "reference": s["reference"], "prediction": s["prediction"]})
            print(f"{name:9s} {p['source']:22s} {sec:6.1f} s  tp {s['tp']:3d} fp {s['fp']:3d} fn {s['fn']:3d}  "
                  f"CER {100 * page_cer.cer:5.1f} %  {Path(p['image']).name}", file=sys.stderr)
        results[name] = {"engine": desc, "sources": {
            src: {**{k: round(v, 4) if isinstance(v, float) else v for k, v in prf(*counts[src]).items()},
                  "page_cer": round(cer[src].cer, 4), "page_wer": round(cer[src].wer, 4), "pages": len(secs[src]),
                  "seconds_per_page": round(sum(secs[src]) / len(secs[src]), 2)}
            for src in sorted(counts)}}
        tot = [sum(c[i] for c in counts.values()) for i in range(3)]
        allc = ErrorRate()
        for a in cer.values():
            allc.char_errors += a.char_errors
            allc.chars += a.chars
            allc.word_errors += a.word_errors
            allc.words += a.words
        n = sum(len(v) for v in secs.values())
        results[name]["all"] = {**{k: round(v, 4) if isinstance(v, float) else v for k, v in prf(*tot).items()},
                                "page_cer": round(allc.cer, 4), "page_wer": round(allc.wer, 4), "pages": n,
                                "seconds_per_page": round(sum(sum(v) for v in secs.values()) / max(1, n), 2)}

    sources = sorted({p["source"] for p in pages})
    head = "| engine | " + " | ".join(f"{s} P / R / F1 / page CER / s" for s in sources) + " | all F1 / page CER / s |"
    table = [head, "|" + "---|" * (len(sources) + 2)]
    for name, r in results.items():
        cells = [f"{v['precision']:.2f} / {v['recall']:.2f} / {v['f1']:.2f} / {100 * v['page_cer']:.0f} % / "
                 f"{v['seconds_per_page']:.1f}" for v in (r["sources"][s] for s in sources)]
        a = r["all"]
        table.append(f"| {name} | " + " | ".join(cells) +
                     f" | {a['f1']:.2f} / {100 * a['page_cer']:.0f} % / {a['seconds_per_page']:.1f} |")
    table = "\n".join(table)
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"pages_file": str(args.pages), "pages": len(pages), "limit": args.limit, "threads": args.threads,
            "iou": 0.5, "load_average_start": [round(x, 2) for x in load0],
            "load_average_end": [round(x, 2) for x in os.getloadavg()], "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    out.write_text(json.dumps({"meta": meta, "engines": results, "pages": rows, "table": table}, indent=1,
                              ensure_ascii=False), encoding="utf-8")
    print(f"\nwrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
