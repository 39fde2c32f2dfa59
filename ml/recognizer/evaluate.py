"""Evaluation CLI of the line recognizer.

    python -m ml.recognizer.evaluate --lines ../shared/data/dev/lines.jsonl --out preds.tsv \\
        [--model ml/artifacts/recognizer.pt] [--beam 0] [--lm [PATH]] [--device cpu] [--batch-size 32] \
        [--crop band|box] [--no-page-slant]

``--lm`` decodes with prefix beam search fused with the character language model (default: the
shipped ``ml/artifacts/charlm.json.gz``; beam width and weights from its card unless ``--beam``).

Reads any ``lines.jsonl`` in the format of ``../shared/data``, writes the predictions as a TSV of
``id<TAB>text`` (one row per record, tabs and newlines inside a prediction become spaces), and
prints per source the corpus CER and WER (total edits / total reference characters or words, after
NFC and whitespace collapsing; only lines with ``handwritten == true`` are scored) and the lines
per second of recognition (image loading excluded).

Each line is read as :func:`ml.recognizer.data.line_images` cuts it (``--crop``): ``band`` cuts it
along the band around its ground-truth baseline, which leaves out the parts of the neighbouring
lines that the datasets' bounding-box crops hold; ``box`` reads the crop as it is; ``best``
(default) reads the bands at :data:`ml.crop.READ_BAND_QUANTILES` (90th and 75th percentile) and
the box, and keeps the most confident reading
(:meth:`ml.recognizer.predictor.Recognizer.recognize_candidates`). The handwritten lines of one
page (the records' ``page``) are also read at the shear chosen for their page, as the pipeline
reads a page (``--no-page-slant``: off); printed lines are read as cut. Records without polygon,
baseline, bbox and crop scale are read as they are whatever ``--crop`` says.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from ..artifact import write_card_markdown
from ..metrics import score_by_source
from .data import CROPS, line_images, read_lines_jsonl
from .image import normalize_line
from .lm import CharLM
from .predictor import DEFAULT_PATH, Recognizer


def evaluate_file(recognizer: Recognizer, lines: str | Path, out_tsv: str | Path | None = None,
                  beam_width: int = 0, batch_size: int = 32, crop: str = "best", page_slant: bool = True) -> dict:
    """Recognise every record of a ``lines.jsonl``, each cut as ``crop`` says
    (:func:`ml.recognizer.data.line_images`), the handwritten lines of one page (the record's
    ``page``) sharing a slant as the pipeline's do unless ``page_slant`` is False
    (:meth:`ml.recognizer.predictor.Recognizer.recognize_candidates`); returns {"sources": {source:
    {cer, wer, lines, chars}}, "all": {...}, "lines_per_s": float, "lines": int, "crop": str,
    "page_slant": bool} and writes ``out_tsv`` if given."""
    records = read_lines_jsonl(lines)
    candidates = [[normalize_line(im, recognizer.height) for im in line_images(r, crop)] for r in records]
    # printed lines have no hand to share a slant with (the pipeline knows them by its line-type classifier)
    pages = [r.page if r.handwritten else None for r in records] if page_slant else None
    t = time.perf_counter()
    preds = recognizer.recognize_candidates(candidates, batch_size=batch_size, beam_width=beam_width, pages=pages)
    elapsed = time.perf_counter() - t
    if out_tsv:
        with open(out_tsv, "w", encoding="utf-8") as f:
            for r, p in zip(records, preds):
                text = " ".join(p.text.replace("\t", " ").replace("\n", " ").split(" "))
                f.write(f"{r.id}\t{text}\n")
    res = score_by_source((r.source, r.text, p.text) for r, p in zip(records, preds) if r.handwritten)
    return {"sources": res["sources"], "all": res["all"], "lines_per_s": round(len(records) / elapsed, 1),
            "lines": len(records), "crop": crop, "page_slant": page_slant}


def decoding_label(recognizer: Recognizer, beam_width: int) -> str:
    """``"greedy"``, ``"beam W"`` or ``"beam W + <language model name>"``."""
    if not beam_width:
        return "greedy"
    return f"beam {beam_width}" + (f" + {recognizer.lm.name}" if recognizer.lm is not None else "")


def update_card(path: str | Path, lines: str | Path, res: dict, decoding: str) -> None:
    """Write an evaluation into the artifact's card (key ``evaluation``: per-source CER/WER on
    ``lines``, with the decoding and the crop) and rewrite the Markdown card beside it; weights are
    left as they are. Results of one crop only are keyed apart (``... [box crops]``)."""
    path = Path(path)
    data = torch.load(path, map_location="cpu", weights_only=True)
    name = Path(lines).parent.name or str(lines)
    crop, slant = res.get("crop", "best"), res.get("page_slant", True)
    suffix = (("" if decoding == "greedy" else f" ({decoding})") + ("" if crop == "best" else f" [{crop} crops]")
              + ("" if slant else " [no page slant]"))
    data["card"].setdefault("evaluation", {})
    data["card"]["evaluation"] = {
        **data["card"]["evaluation"],
        **{f"{name}/{s}{suffix}": {**v, "decoding": decoding, "crop": crop, "page_slant": slant}
           for s, v in res["sources"].items()},
    }
    speed_key = f"{name}_cpu_lines_per_s{suffix}"
    data["card"][speed_key] = res["lines_per_s"]
    tmp = path.with_suffix(".tmp")
    torch.save(data, tmp)
    tmp.replace(path)
    write_card_markdown(path.with_suffix(".md"), data["card"], f"Model card: quire-recognizer {data['version']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", required=True, help="a lines.jsonl file")
    ap.add_argument("--out", required=True, help="TSV of id<TAB>prediction")
    ap.add_argument("--model", default=None)
    ap.add_argument("--beam", type=int, default=0, help="beam width; 0 = greedy (or, with --lm, the LM card's)")
    ap.add_argument("--lm", nargs="?", const="", default=None, metavar="PATH",
                    help="fuse a character language model in beam search (no PATH: the shipped one)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--crop", choices=CROPS, default="best",
                    help="band: cut each line along the band around its baseline; box: the crop as it is; "
                         "best (default): read the bands and the box, keep the most confident reading")
    ap.add_argument("--no-page-slant", action="store_true",
                    help="read every line as cut, without choosing a shear per page (records' page)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--update-card", action="store_true",
                    help="record the result in the artifact's model card (and its .md beside it)")
    args = ap.parse_args(argv)
    rec = Recognizer.load(args.model, args.device)
    beam = args.beam
    if args.lm is not None:
        lm = CharLM.load(args.lm or None)
        rec.use_lm(lm)
        beam = beam or lm.decoding["beam_width"]
    res = evaluate_file(rec, args.lines, args.out, beam, args.batch_size, args.crop, not args.no_page_slant)
    decoding = decoding_label(rec, beam)
    if args.update_card:
        update_card(args.model or DEFAULT_PATH, args.lines, res, decoding)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"model {rec.name}  decoding {decoding}  crop {args.crop}  page slant {'off' if args.no_page_slant else 'on'}")
        print(f"{'source':28s} {'lines':>6s} {'CER':>8s} {'WER':>8s}")
        for s, v in list(res["sources"].items()) + [("all", res["all"])]:
            print(f"{s:28s} {v['lines']:6d} {100 * v['cer']:7.2f}% {100 * v['wer']:7.2f}%")
        print(f"{res['lines']} lines, {res['lines_per_s']} lines/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
