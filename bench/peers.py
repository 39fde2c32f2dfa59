"""Peer engines for the side-by-side benchmarks: Tesseract 5 and RapidOCR 3.10, on lines and pages.

Install them with ``scripts/install_bench.sh`` (``requirements/bench.txt`` + Debian's
``tesseract-ocr``, ``tesseract-ocr-eng``, ``tesseract-ocr-fra``). Both are called the way
``/work/shared/ENVIRONMENT.md`` measured to be fastest and faithful on this machine:

- Tesseract: ``OMP_THREAD_LIMIT=1`` (its OpenMP threads made it 2.8x slower on 2 cores); it is given
  file paths, never opened images (pytesseract re-encodes images and so changes the result). Lines
  are read with ``--psm 7`` (one text line) in one batch process over a list file (about 60
  lines/s instead of about 12 with one process per line); pages with the default ``--psm 3``
  (automatic layout) through ``pytesseract.image_to_data``, lines grouped from its word rows.
- RapidOCR (PP-OCR models shipped inside the wheel, run with onnxruntime): recognition only on a
  line crop is ``engine(path, use_det=False, use_cls=False, use_rec=True)``; a full page is
  ``use_det=True, use_cls=False, use_rec=True``; default settings otherwise (``text_score`` 0.5,
  ``max_side_len`` 2000).

Nothing here is imported by the product; only ``bench/`` uses it.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # before any tesseract process starts

TESSERACT_LANGS = {"en": "eng", "fr": "fra"}
# Copiste is French; the other dev sources are English (../shared/data/README.md).
SOURCE_LANGS = {"copiste_dun_jour_fr": "fr", "cremma_mss20_fr": "fr", "hooker_en": "en",
                "stanford_memorials_en": "en"}


class PeerMissing(RuntimeError):
    """A peer engine is not installed; the message says how to install it."""


@dataclass
class PeerLine:
    """One line a peer found on a page: polygon ``[[x, y], ...]`` in page pixels and its text."""

    polygon: list[list[float]]
    text: str


def lang_of(source: str, lang: str | None = None) -> str:
    """Two-letter language of a record (its ``lang`` field, else from its source name; default en)."""
    if lang:
        return lang
    return SOURCE_LANGS.get(source, "fr" if source.endswith("_fr") else "en")


def tesseract_lang(lang: str) -> str:
    """Tesseract's traineddata name for a two-letter language (``en`` → ``eng``, ``fr`` → ``fra``)."""
    return TESSERACT_LANGS.get(lang, "eng")


def _tesseract_bin() -> str:
    path = shutil.which("tesseract")
    if not path:
        raise PeerMissing("tesseract is not installed: run scripts/install_bench.sh")
    return path


def tesseract_version() -> str:
    """First line of ``tesseract --version`` (e.g. ``tesseract 5.3.0``)."""
    out = subprocess.run([_tesseract_bin(), "--version"], capture_output=True, text=True)
    return (out.stdout or out.stderr).splitlines()[0].strip()


def _clean(text: str) -> str:
    return " ".join(text.split())


def tesseract_lines(paths: list[str | Path], lang: str, psm: int = 7) -> list[str]:
    """Tesseract's text for each line image, in one batch process over a list file.

    Args:
        paths: image files (one text line each).
        lang: two-letter language (``en``, ``fr``).
        psm: page segmentation mode; 7 = treat the image as a single text line.

    Returns one string per path (whitespace collapsed, possibly empty). Tesseract's text renderer
    separates the pages of a batch with form feeds; if their count does not match (an unreadable
    image is skipped without one), the batch is redone one process per image.

    Raises:
        PeerMissing: tesseract is not installed.
    """
    if not paths:
        return []
    exe = _tesseract_bin()
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    with tempfile.TemporaryDirectory(prefix="quire-tess-") as tmp:
        listfile = Path(tmp) / "lines.txt"
        listfile.write_text("".join(f"{Path(p).resolve()}\n" for p in paths), encoding="utf-8")
        base = Path(tmp) / "out"
        subprocess.run([exe, str(listfile), str(base), "--psm", str(psm), "-l", tesseract_lang(lang), "txt"],
                       env=env, capture_output=True, check=False)
        out = base.with_suffix(".txt")
        pieces = out.read_text(encoding="utf-8").split("\f") if out.exists() else []
    if len(pieces) == len(paths):
        return [_clean(p) for p in pieces]
    logging.getLogger(__name__).warning("tesseract batch gave %d pages for %d images; redoing one by one",
                                        len(pieces), len(paths))
    texts = []
    for p in paths:
        res = subprocess.run([exe, str(p), "stdout", "--psm", str(psm), "-l", tesseract_lang(lang)],
                             env=env, capture_output=True, text=True, check=False)
        texts.append(_clean(res.stdout.replace("\f", " ")))
    return texts


def tesseract_page(path: str | Path, lang: str) -> list[PeerLine]:
    """Tesseract's lines on a full page (default layout analysis, ``--psm 3``).

    Lines are Tesseract's own text lines (``image_to_data`` level 4): box from its line row, text
    the line's words (level 5, confidence ≠ -1) joined with spaces. Lines with no word text are
    dropped. Coordinates are the image's pixels.

    Raises:
        PeerMissing: tesseract or pytesseract is not installed.
    """
    _tesseract_bin()
    try:
        import pytesseract
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise PeerMissing("pytesseract is not installed: run scripts/install_bench.sh") from exc
    os.environ["OMP_THREAD_LIMIT"] = "1"
    d = pytesseract.image_to_data(str(Path(path).resolve()), lang=tesseract_lang(lang), config="--psm 3",
                                  output_type=pytesseract.Output.DICT)
    boxes: dict[tuple, list[float]] = {}
    words: dict[tuple, list[str]] = {}
    for i, level in enumerate(d["level"]):
        key = (d["page_num"][i], d["block_num"][i], d["par_num"][i], d["line_num"][i])
        if level == 4:
            x, y, w, h = d["left"][i], d["top"][i], d["width"][i], d["height"][i]
            boxes[key] = [x, y, x + w, y + h]
        elif level == 5 and str(d["text"][i]).strip() and float(d["conf"][i]) != -1:
            words.setdefault(key, []).append(str(d["text"][i]).strip())
    lines = []
    for key, (x0, y0, x1, y1) in boxes.items():
        text = _clean(" ".join(words.get(key, [])))
        if text:
            lines.append(PeerLine([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], text))
    return lines


class RapidOCREngine:
    """RapidOCR 3.10 with its shipped PP-OCR ONNX models, angle classifier off.

    ``params`` are passed to ``rapidocr.RapidOCR`` over ours (``Global.use_cls`` False,
    ``Global.log_level`` warning). Raises :class:`PeerMissing` when rapidocr is not installed.
    """

    def __init__(self, params: dict | None = None):
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise PeerMissing("rapidocr is not installed: run scripts/install_bench.sh") from exc
        self.engine = RapidOCR(params={"Global.use_cls": False, "Global.log_level": "warning", **(params or {})})

    @staticmethod
    def version() -> str:
        import importlib.metadata as md
        return f"rapidocr {md.version('rapidocr')}, onnxruntime {md.version('onnxruntime')}"

    def line(self, path: str | Path) -> str:
        """Recognition only on one line image file; the text (whitespace collapsed, maybe empty)."""
        return self.line_scored(path)[0]

    def line_scored(self, path: str | Path) -> tuple[str, float]:
        """As :meth:`line`, with RapidOCR's recognition score in [0, 1] (0 for no text)."""
        res = self.engine(str(path), use_det=False, use_cls=False, use_rec=True)
        texts = [t for t in (res.txts or ()) if t]
        scores = [float(x) for x in (res.scores or ())]
        return _clean(" ".join(texts)), (sum(scores) / len(scores) if scores else 0.0)

    def page(self, path: str | Path) -> list[PeerLine]:
        """Detection + recognition on a full page; its text boxes (4-point polygons) with text."""
        res = self.engine(str(path), use_det=True, use_cls=False, use_rec=True)
        if res.boxes is None or res.txts is None:
            return []
        return [PeerLine([[float(x), float(y)] for x, y in box], _clean(text))
                for box, text in zip(res.boxes, res.txts)]
