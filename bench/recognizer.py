"""Line recognition side by side: Quire's recognizer vs Tesseract 5 and RapidOCR on the same dev lines.

    python -m bench.recognizer [--model ml/artifacts/recognizer.pt] [--beam 8] [--no-lm] [--limit 100] \\
        [--threads 2] [--engines quire,tesseract,rapidocr] [--lines ../shared/data/dev/lines.jsonl] \
        [--crop best|band|box]

One run, the same lines for every engine: the handwritten lines of ``--lines`` (``handwritten ==
true``: the typed/printed Stanford lines are neither run nor scored). ``--limit N`` takes N lines
spread evenly over the file (every source stays in) for smoke tests.

Every engine reads the same line images, cut as ``--crop`` says (:data:`ml.recognizer.data.CROPS`,
as ``ml.recognizer.evaluate`` reads lines): ``band``, each line cut along the band around its
ground-truth baseline (written as PNG files into a temporary folder for the peers, outside the
timings); ``box``, the dataset's crops as they are; ``best`` (default), the box and the bands at
:data:`ml.crop.READ_BAND_QUANTILES` (90th and 75th percentile), each engine keeping its own most
confident reading of the three (ours: :meth:`Recognizer.recognize_candidates`, which also reads
the lines of each page, the records' ``page``, at the slant chosen for the page, as the pipeline
does; RapidOCR: its recognition score); Tesseract, whose batch mode gives no score, reads the first
band then.

Engines (issue 3, "Targets"):

- ``quire``: ``ml.recognizer.evaluate.evaluate_file`` with greedy decoding (the issue's target
  row), a row ``quire_lm`` with prefix beam search fused with the shipped character language model
  (``ml/artifacts/charlm.json.gz``, beam width and weights from its card; ``--no-lm`` skips it) and,
  with ``--beam W``, a row with plain prefix beam search of width W; torch limited to ``--threads``
  threads (default 2). Its lines/s is measured the way the peers' is: wall time from image files to text (image
  decoding, height normalisation, the network, decoding); ``model_lines_per_s`` is
  ``evaluate_file``'s own figure, which leaves image loading and normalisation out.
- ``tesseract``: Tesseract 5 (Debian ``tesseract-ocr``), ``--psm 7``, ``eng`` for English sources and
  ``fra`` for Copiste, ``OMP_THREAD_LIMIT=1``, one batch process per language over a list file.
- ``rapidocr``: RapidOCR 3.10 recognition only (``use_det=False, use_cls=False``), one call per
  line file, onnxruntime's default threads.

Scores: corpus CER and WER per source (total edits / total reference characters or words, after NFC
and whitespace collapsing: ``ml.metrics.ErrorRate``), lines per second over all lines, and ratios of
ours to each peer (CER ratio < 1 and speed ratio > 1 are wins). Prints a Markdown table and writes
``bench/out/recognizer.json`` (+ ``recognizer_preds.tsv``: id, source, reference, each engine's text).

The machine is shared (a training may run beside it): speeds are those of this run, on this load;
the load average is recorded in the JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LINES = ROOT.parent / "shared" / "data" / "dev" / "lines.jsonl"
OUT_DIR = ROOT / "bench" / "out"


def pick(records: list, limit: int | None) -> list:
    """``limit`` records spread evenly over ``records`` (all of them when ``limit`` is None or larger)."""
    if not limit or limit >= len(records):
        return list(records)
    step = len(records) / limit
    return [records[int(i * step)] for i in range(limit)]


def score(records: list, texts: list[str]) -> dict:
    """Per-source and overall corpus CER/WER of ``texts`` against the records' ground truth."""
    from ml.metrics import ErrorRate

    acc: dict[str, ErrorRate] = {}
    total = ErrorRate()
    for r, t in zip(records, texts):
        acc.setdefault(r.source, ErrorRate()).update(r.text, t)
        total.update(r.text, t)

    def row(a: ErrorRate) -> dict:
        return {"cer": round(a.cer, 4), "wer": round(a.wer, 4), "lines": a.lines, "chars": a.chars}

    return {"sources": {s: row(a) for s, a in sorted(acc.items())}, "all": row(total)}


def cut_lines(records: list, folder: Path, crop: str) -> list[list[Path]]:
    """Each record's candidate images, cut as :func:`ml.recognizer.data.line_images` cuts them for
    ``crop`` (``best``: the box, then the baseline bands), written as PNG files into ``folder``; one
    list of files per record, in the records' order."""
    import cv2

    from ml.recognizer.data import line_images

    out = []
    for i, r in enumerate(records):
        out.append([])
        for k, im in enumerate(line_images(r, crop)):
            out[-1].append(folder / f"{i:05d}_{k}.png")
            cv2.imwrite(str(out[-1][-1]), im)
    return out


def run_quire(records: list, model: str | None, beams: list[int], threads: int, batch_size: int,
              lm: bool = False, crop: str = "best") -> dict:
    """Our recognizer through ``ml.recognizer.evaluate.evaluate_file``; one result per beam width
    (0: greedy), plus, with ``lm``, one for beam search with the shipped character language model
    (``quire_lm``, settings from its card)."""
    import torch

    from ml.recognizer.data import load_gray
    from ml.recognizer.evaluate import decoding_label, evaluate_file
    from ml.recognizer.lm import CharLM
    from ml.recognizer.predictor import Recognizer

    torch.set_num_threads(threads)
    rec = Recognizer.load(model, "cpu")
    rec.recognize([load_gray(r.image) for r in records[:8]], batch_size=8)  # warm-up
    out = {}
    with tempfile.TemporaryDirectory(prefix="quire-bench-") as tmp:
        subset = Path(tmp) / "lines.jsonl"
        with open(subset, "w", encoding="utf-8") as f:
            for r in records:  # absolute image paths: read_lines_jsonl keeps them as they are
                f.write(json.dumps({"id": r.id, "image": str(Path(r.image).resolve()), "text": r.text,
                                    "source": r.source, "lang": r.lang, "handwritten": True,
                                    "polygon": r.polygon, "baseline": r.baseline, "bbox": r.bbox,
                                    "crop_scale": r.crop_scale, "page": r.page}) + "\n")
        runs = [("quire" if beam == 0 else f"quire_beam{beam}", beam, None) for beam in beams]
        if lm:
            charlm = CharLM.load()
            runs.append(("quire_lm", charlm.decoding["beam_width"], charlm))
        for name, beam, charlm in runs:
            rec.use_lm(charlm)
            tsv = Path(tmp) / f"preds_{name}.tsv"
            t = time.perf_counter()
            res = evaluate_file(rec, subset, tsv, beam_width=beam, batch_size=batch_size, crop=crop)
            wall = time.perf_counter() - t
            preds = dict(line.rstrip("\n").split("\t", 1) for line in tsv.read_text(encoding="utf-8").splitlines())
            out[name] = {
                "engine": f"{rec.name} ({decoding_label(rec, beam)}, {threads} torch threads, batch {batch_size}, "
                          f"{crop} crops)",
                "sources": res["sources"], "all": res["all"],
                "lines_per_s": round(len(records) / wall, 1), "model_lines_per_s": res["lines_per_s"],
                "seconds": round(wall, 2), "texts": [preds.get(r.id, "") for r in records],
            }
    return out


def run_tesseract(records: list, paths: list[Path], crop: str) -> dict:
    """Tesseract 5, ``--psm 7``, one batch process per language, on the line files ``paths``."""
    from bench.peers import lang_of, tesseract_lines, tesseract_version

    by_lang: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_lang.setdefault(lang_of(r.source, r.lang), []).append(i)
    texts = [""] * len(records)
    t = time.perf_counter()
    for lang, idx in by_lang.items():
        for i, text in zip(idx, tesseract_lines([paths[i] for i in idx], lang, psm=7)):
            texts[i] = text
    wall = time.perf_counter() - t
    return {"tesseract": {"engine": f"{tesseract_version()} (--psm 7, eng/fra, OMP_THREAD_LIMIT=1, batch mode, "
                                    f"{crop} crops)",
                          **score(records, texts), "lines_per_s": round(len(records) / wall, 1),
                          "seconds": round(wall, 2), "texts": texts}}


def run_rapidocr(records: list, candidates: list[list[Path]], crop: str) -> dict:
    """RapidOCR, recognition only, one call per line file; ``candidates`` holds each record's line
    files, of which the reading with the highest RapidOCR score is kept."""
    from bench.peers import RapidOCREngine

    eng = RapidOCREngine()
    eng.line(candidates[0][0])  # warm-up (model load)
    t = time.perf_counter()
    texts = [max((eng.line_scored(path) for path in paths), key=lambda ts: ts[1])[0] for paths in candidates]
    wall = time.perf_counter() - t
    return {"rapidocr": {"engine": f"{eng.version()} (PP-OCR rec only, no det/cls, {crop} crops)",
                         **score(records, texts),
                         "lines_per_s": round(len(records) / wall, 1), "seconds": round(wall, 2), "texts": texts}}


def ratios(results: dict) -> dict:
    """Ours (greedy, and beam rows) against each peer: CER ratio (ours / peer) and speed ratio."""
    ours = [k for k in results if k.startswith("quire")]
    peers = [k for k in results if not k.startswith("quire")]
    out = {}
    for o in ours:
        for p in peers:
            a, b = results[o], results[p]
            row = {"speed_ratio": round(a["lines_per_s"] / b["lines_per_s"], 2) if b["lines_per_s"] else None,
                   "cer_ratio": {}}
            for s in list(b["sources"]) + ["all"]:
                pa = a["all"] if s == "all" else a["sources"].get(s)
                pb = b["all"] if s == "all" else b["sources"].get(s)
                if pa and pb and pb["cer"]:
                    row["cer_ratio"][s] = round(pa["cer"] / pb["cer"], 3)
            out[f"{o}_vs_{p}"] = row
    return out


def markdown(results: dict, sources: list[str]) -> str:
    """A Markdown table: one row per engine, CER / WER per source and overall, lines/s."""
    head = "| engine | " + " | ".join(f"{s} CER / WER" for s in sources) + " | all CER / WER | lines/s |"
    lines = [head, "|" + "---|" * (len(sources) + 3)]
    for name, r in results.items():
        cells = []
        for s in sources:
            v = r["sources"].get(s)
            cells.append(f"{100 * v['cer']:.1f} % / {100 * v['wer']:.1f} %" if v else "–")
        a = r["all"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {100 * a['cer']:.1f} % / {100 * a['wer']:.1f} % | "
                     f"{r['lines_per_s']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", default=str(DEFAULT_LINES), help="a lines.jsonl (default: the dev lines)")
    ap.add_argument("--model", default=None, help="our recognizer artifact (default: ml/artifacts/recognizer.pt)")
    ap.add_argument("--beam", type=int, default=0, help="also run beam search of this width (0: greedy only)")
    ap.add_argument("--no-lm", action="store_true",
                    help="skip the row of beam search with the shipped character language model")
    ap.add_argument("--limit", type=int, default=None, help="only N lines, spread evenly (smoke tests)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for our recognizer (default 2)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--engines", default="quire,tesseract,rapidocr", help="comma list of engines to run")
    ap.add_argument("--crop", choices=("best", "band", "box"), default="best",  # ml.recognizer.data.CROPS
                    help="the line images every engine reads: two bands and the box, the most confident reading kept (default), "
                         "the baseline band, or the dataset's crops")
    ap.add_argument("--out", default=str(OUT_DIR / "recognizer.json"), help="JSON result path")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))

    from ml.recognizer.data import read_lines_jsonl

    records = pick([r for r in read_lines_jsonl(args.lines) if r.handwritten], args.limit)
    if not records:
        raise SystemExit(f"{args.lines}: no handwritten lines")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(engines) - {"quire", "tesseract", "rapidocr"}
    if unknown:
        raise SystemExit(f"unknown engine(s): {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="quire-bench-lines-") as tmp:
        candidates = [[Path(r.image)] for r in records] if args.crop == "box" else \
            cut_lines(records, Path(tmp), args.crop)
        return run(args, engines, records, candidates)


def run(args, engines: list[str], records: list, candidates: list[list[Path]]) -> int:
    """``engines`` on ``records``, whose line files, cut as ``--crop`` says, are ``candidates``; the
    tables and the JSON."""
    load0 = os.getloadavg()
    print(f"{len(records)} handwritten lines from {args.lines} ({args.crop} crops); load average {load0[0]:.2f}", file=sys.stderr)
    results: dict = {}
    for e in engines:
        t = time.perf_counter()
        if e == "quire":
            results.update(run_quire(records, args.model, [0] + ([args.beam] if args.beam else []),
                                     args.threads, args.batch_size, lm=not args.no_lm, crop=args.crop))
        elif e == "tesseract":
            results.update(run_tesseract(records, [c[1] if len(c) > 1 else c[0] for c in candidates],  # best: box, bands
                                         "band" if args.crop == "best" else args.crop))
        else:
            results.update(run_rapidocr(records, candidates, args.crop))
        print(f"{e}: {time.perf_counter() - t:.1f} s", file=sys.stderr)

    sources = sorted({r.source for r in records})
    table = markdown(results, sources)
    rat = ratios(results)
    print(table)
    if rat:
        print()
        print("| ours vs peer | " + " | ".join(f"CER ratio {s}" for s in sources) + " | CER ratio all | speed ratio |")
        print("|" + "---|" * (len(sources) + 3))
        for k, v in rat.items():
            cells = [f"{v['cer_ratio'][s]:.2f}" if s in v["cer_ratio"] else "–" for s in sources + ["all"]]
            print(f"| {k.replace('_vs_', ' vs ')} | " + " | ".join(cells) + f" | {v['speed_ratio']} |")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"lines_file": str(args.lines), "lines": len(records), "crop": args.crop, "limit": args.limit,
            "threads": args.threads,
            "load_average_start": [round(x, 2) for x in load0],
            "load_average_end": [round(x, 2) for x in os.getloadavg()], "cpu_count": os.cpu_count(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    with open(out.with_name(out.stem + "_preds.tsv"), "w", encoding="utf-8") as f:
        f.write("id\tsource\treference\t" + "\t".join(results) + "\n")
        for i, r in enumerate(records):
            f.write("\t".join([r.id, r.source, r.text] + [results[k]["texts"][i].replace("\t", " ")
                                                             for k in results]) + "\n")
    slim = {k: {kk: vv for kk, vv in v.items() if kk != "texts"} for k, v in results.items()}
    out.write_text(json.dumps({"meta": meta, "engines": slim, "ratios": rat, "table": table}, indent=1,
                              ensure_ascii=False), encoding="utf-8")
    print(f"\nwrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
