"""The page pipeline: page image → detected lines → line crops → recognised text, in reading order.

This is the one entry point the workers and the embedded ``transcribe`` command call (contract in
``docs/ARCHITECTURE.md``)::

    pipeline = PagePipeline.load()                       # shipped detector + recognizer, CPU
    result = pipeline.run(gray, progress=cb, should_cancel=cb)

Large pages are downscaled for detection only (inside :class:`ml.detect.LineDetector`); lines are
cropped from the full-resolution page along their polygons (:func:`ml.crop.crop_line`). With
``band_cut`` (default) each line is also cut along the band around its baseline
(:func:`ml.crop.baseline_band`), both cuts are read and the more confident reading is kept
(:meth:`Recognizer.recognize_candidates`; the beam search runs once per line). On the 10 dev pages
with recognizer 20261201-cpu8a this lowered page CER from 9.8 / 24.0 / 35.2 % to 9.3 / 23.4 / 33.1 %
(Copiste / Hooker / Stanford, beam 10 + LM; greedy 12.4 / 26.9 / 39.7 → 12.0 / 26.0 / 38.6 %) for
about a third more time per page.

Page slant. One hand writes a page and keeps its slant over it, and the recognizer reads best
the slants it was trained on most; so the page's handwritten lines are also read sheared by
the factor (of :data:`ml.recognizer.predictor.PAGE_SHEARS`) at which a few of them read most
confidently, and each line keeps its most confident reading, upright or sheared
(:meth:`Recognizer.recognize_candidates` with ``pages``; docs/TRAINING.md, "Page slant").

Orientation. A page turned by 90° is recognised by the detector's orientation confidence (its
lines look unlike upright text, see :class:`ml.detect.postprocess.PageLines`); the pipeline then
detects on the page turned both ways and keeps the turn whose lines look upright. A page upside
down looks upright to the detector, so the recognizer decides: the widest lines are read as cut
and turned by 180°, and when the turned crops read with clearly higher confidence (mean line
confidence higher by ``FLIP_MARGIN``) the page is turned by 180° and read again. Lines are always
returned in the uploaded page's pixels; ``PageResult.rotation`` says by how many degrees
(clockwise) the page was turned to read it, and a warning says so.

Printed lines. Letterheads, typed bodies and printed forms are found by the detector like
handwriting; the line-type classifier (:mod:`ml.linetype`) tells them apart on the crops. With
``printed_lines="keep"`` (the default: archives differ, the Hooker transcriptions keep their
letterheads, the Stanford ones leave them out) they are read like the rest and marked
``printed``; with ``"drop"`` they are set aside before recognition and a warning counts them.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from .crop import crop_band, crop_line
from .detect import LineDetector
from .detect.postprocess import PageLines
from .linetype import LineTypeClassifier
from .recognizer.image import normalize_line
from .recognizer.lm import CharLM
from .recognizer.predictor import Recognizer

log = logging.getLogger(__name__)

#: Lines (the widest) read both ways to tell an upside-down page.
FLIP_PROBE_LINES = 8
#: Turned crops must read with a mean line confidence higher by this to turn the page by 180°
#: (pages of four or more lines; with n < 4 lines the margin is ``FLIP_MARGIN * 4 / n``). Measured
#: with the shipped recognizer on the 1,453 dev line crops: the turned crop reads better by more
#: than the margin for 0.2–0.4 % of upright groups of 1–4 lines (none of 8 lines), while 60 % (one
#: line), 90 % (two) and 97 % (four) of upside-down groups are turned. On the 10 dev pages turned
#: by 0/90/180/270° the pipeline found the right turn 40 times out of 40.
FLIP_MARGIN = 0.05
#: A page the detector finds not upright is turned by 90° or 270° when that turn's orientation
#: confidence beats the page as uploaded by at least this much (dev pages: the upright reading
#: beats both quarter turns by 0.066 or more, see ``ml.detect.postprocess.PageLines``).
TURN_MARGIN = 0.03

#: What :class:`PagePipeline` does with lines the line-type classifier takes for printed.
PRINTED_LINES = ("keep", "drop")

_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def rotate_page(gray: np.ndarray, rotation: int) -> np.ndarray:
    """``gray`` (H, W) turned clockwise by ``rotation`` ∈ {0, 90, 180, 270} degrees."""
    return gray if rotation == 0 else cv2.rotate(gray, _ROTATE[rotation])


def unrotate_points(points, rotation: int, width: int, height: int) -> np.ndarray:
    """Points [[x, y], ...] on the page turned clockwise by ``rotation`` degrees, mapped back to
    the original (``width`` × ``height`` pixels) page. Returns float64 (N, 2)."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    x, y = p[:, 0], p[:, 1]
    if rotation == 0:
        return p.copy()
    if rotation == 90:  # turned (x', y') = (H - 1 - y, x)
        return np.stack([y, height - 1 - x], 1)
    if rotation == 180:
        return np.stack([width - 1 - x, height - 1 - y], 1)
    if rotation == 270:  # turned (x', y') = (y, W - 1 - x)
        return np.stack([width - 1 - y, x], 1)
    raise ValueError(f"rotation must be 0, 90, 180 or 270, got {rotation}")


class Canceled(Exception):
    """Raised by :meth:`PagePipeline.run` when ``should_cancel()`` returned True."""


class PageImageError(ValueError):
    """The page image is not an 8-bit grayscale 2-D array of a usable size."""


@dataclass
class LineResult:
    """One recognised line; coordinates are integers in page pixels."""

    polygon: list[list[int]]
    baseline: list[list[int]]
    bbox: list[int]  # [x0, y0, x1, y1]
    text: str
    confidence: float  # in [0, 1]
    char_confidences: list[float] = field(default_factory=list)  # one per character of text
    detection_confidence: float = 0.0
    printed: bool = False  # the line-type classifier takes it for printed or typed text (letterhead, typewriter)


@dataclass
class PageResult:
    """All lines of one page in reading order, with timings (seconds) and model names."""

    width: int
    height: int
    lines: list[LineResult]
    timings: dict[str, float]
    models: dict[str, str]
    orientation_confidence: float = 1.0  # see ml.detect.postprocess.PageLines (of the page as read)
    warnings: list[str] = field(default_factory=list)
    rotation: int = 0  # degrees clockwise the page was turned to read it (coordinates stay the page's own)

    @property
    def text(self) -> str:
        """The transcription: one line of text per line, in reading order."""
        return "\n".join(line.text for line in self.lines)

    def to_dict(self) -> dict:
        """JSON-serialisable form (the result JSON the workers store)."""
        return asdict(self)


def _choose_device(device: str | None) -> str:
    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        log.warning("device %s asked for but CUDA is not available; using the CPU", device)
        return "cpu"
    return device


class PagePipeline:
    """Detector + recognizer on one torch device.

    Args:
        detector: a loaded :class:`ml.detect.LineDetector`.
        recognizer: a loaded :class:`ml.recognizer.predictor.Recognizer`.
        batch_size: lines per recognition batch (progress is reported per batch).
        beam_width: 0 for greedy decoding, else the CTC prefix beam width.
        line_types: a loaded :class:`ml.linetype.LineTypeClassifier`, or None to take every line
            for handwriting.
        printed_lines: ``"keep"`` (lines the classifier takes for printed are read and marked
            ``printed``) or ``"drop"`` (they are not read).
        band_cut: also read each line cut along the band around its baseline and keep the more
            confident reading (False: one cut, along the polygon, about a quarter faster).
        page_slant: also read the page's handwritten lines at the shear they read best at
            together (:meth:`Recognizer.recognize_candidates` with ``pages``; one hand per page),
            keeping each line's most confident reading (False: about half the reading time).

    Raises ValueError for another ``printed_lines``.
    """

    def __init__(self, detector: LineDetector, recognizer: Recognizer, batch_size: int = 32,
                 beam_width: int = 0, line_types: LineTypeClassifier | None = None, printed_lines: str = "keep",
                 band_cut: bool = True, page_slant: bool = True):
        if printed_lines not in PRINTED_LINES:
            raise ValueError(f"printed_lines must be one of {PRINTED_LINES}, got {printed_lines!r}")
        self.detector, self.recognizer = detector, recognizer
        self.batch_size, self.beam_width = batch_size, beam_width
        self.line_types, self.printed_lines, self.band_cut = line_types, printed_lines, band_cut
        self.page_slant = page_slant

    @classmethod
    def load(cls, detector_path: str | Path | None = None, recognizer_path: str | Path | None = None,
             device: str | None = "cpu", decoding: str = "greedy", lm_path: str | Path | None = None,
             linetype_path: str | Path | None = None, **kwargs) -> PagePipeline:
        """Load the models (None = the shipped artifacts in ``ml/artifacts/``): detector,
        recognizer and line-type classifier. ``device`` may be ``"cpu"``, ``"cuda"`` or ``"auto"``.
        ``decoding``: ``"greedy"``, or ``"lm"`` for prefix beam search fused with the character
        language model ``lm_path`` (None = the shipped ``charlm.json.gz``; beam width and weights
        from its card unless ``beam_width`` is given). Other keyword arguments (``printed_lines``,
        ``batch_size``, ``beam_width``, ``band_cut``, ``page_slant``) go to the constructor.
        Raises FileNotFoundError / ValueError for a missing or wrong artifact or decoding."""
        if decoding not in ("greedy", "lm"):
            raise ValueError(f"decoding must be 'greedy' or 'lm', got {decoding!r}")
        device = _choose_device(device)
        recognizer = Recognizer.load(recognizer_path, device)
        if decoding == "lm":
            lm = CharLM.load(lm_path)
            recognizer.use_lm(lm)
            kwargs.setdefault("beam_width", lm.decoding["beam_width"])
        return cls(LineDetector.load(detector_path, device), recognizer,
                   line_types=LineTypeClassifier.load(linetype_path, device), **kwargs)

    @property
    def models(self) -> dict[str, str]:
        """Names of the models in use (what jobs record): detector, recognizer and, when beam
        search uses it, the language model."""
        names = {"detector": self.detector.name, "recognizer": self.recognizer.name}
        if self.recognizer.lm is not None and self.beam_width > 0:
            names["language_model"] = self.recognizer.lm.name
        if self.line_types is not None:
            names["line_type"] = self.line_types.name
        return names

    def run(self, gray: np.ndarray, progress: Callable[[float], None] | None = None,
            should_cancel: Callable[[], bool] | None = None) -> PageResult:
        """Transcribe one page.

        Args:
            gray: (H, W) uint8 grayscale page, dark ink on light paper, in page pixels.
            progress: called with the fraction done in [0, 1] (0.1 after detection, then per batch
                of recognised lines, 1.0 at the end).
            should_cancel: polled after detection and after each batch; when it returns True the
                run stops with :class:`Canceled`.

        Raises:
            PageImageError: ``gray`` is not a non-empty 2-D uint8 array.
            Canceled: ``should_cancel()`` returned True.
        """
        if not isinstance(gray, np.ndarray) or gray.ndim != 2 or gray.dtype != np.uint8 or min(gray.shape) < 1:
            raise PageImageError("page must be a non-empty (H, W) uint8 grayscale array")
        t0 = time.perf_counter()

        def check_cancel() -> None:
            if should_cancel is not None and should_cancel():
                raise Canceled("transcription canceled")

        rotation, page_lines = self._detect_oriented(gray)
        page = rotate_page(gray, rotation)
        crops, kept = self._crops(page, page_lines.lines)
        if self._upside_down(crops):
            rotation = (rotation + 180) % 360
            page = rotate_page(gray, rotation)
            page_lines = self.detector.detect_page(page)
            crops, kept = self._crops(page, page_lines.lines)
        images = [normalize_line(c, self.recognizer.height) for c in crops]  # read once, used twice
        printed = self._printed(crops, images)
        warnings = []
        n_printed = 0
        if printed.any() and self.printed_lines == "drop":
            n_printed = int(printed.sum())
            crops = [c for c, p in zip(crops, printed) if not p]
            images = [im for im, p in zip(images, printed) if not p]
            kept = [d for d, p in zip(kept, printed) if not p]
            printed = np.zeros(len(crops), bool)
            warnings.append(f"{n_printed} printed line{'s' if n_printed > 1 else ''} (letterhead, typed or printed "
                            f"text) set aside, not transcribed")
        if rotation:
            warnings.append(f"the page was turned by {rotation}° clockwise to read it; line coordinates are "
                            f"in the page as uploaded")
        if not kept:
            warnings.append("no handwritten lines were found on this page" if n_printed else
                            "no text lines were found on this page")
        elif not page_lines.upright:
            warnings.append(f"the page may be rotated by 90°: its lines look unlike upright text "
                            f"(orientation confidence {page_lines.orientation_confidence:.2f})")
        t_detect = time.perf_counter() - t0
        if progress:
            progress(0.1)
        check_cancel()
        t1 = time.perf_counter()

        def on_batch(done: int) -> None:
            if progress:
                progress(0.1 + 0.9 * done / max(1, len(crops)))
            check_cancel()

        candidates = [[im] for im in images]
        if self.band_cut:
            for cands, line in zip(candidates, kept):
                cut = crop_band(page, line.polygon, line.baseline)
                if cut is not None:  # else the polygon's cut alone
                    cands.append(normalize_line(cut, self.recognizer.height))
        # one hand per page: its handwritten lines share a slant (printed lines are read as cut)
        pages = [None if p else 0 for p in printed] if self.page_slant else None
        recognitions = self.recognizer.recognize_candidates(candidates, self.batch_size, self.beam_width,
                                                            on_batch, pages) if images else []
        t_recognize = time.perf_counter() - t1
        W, H = gray.shape[1], gray.shape[0]
        lines = []
        for d, r, is_printed in zip(kept, recognitions, printed):
            poly = np.rint(unrotate_points(d.polygon, rotation, W, H)).astype(int)
            base = np.rint(unrotate_points(d.baseline, rotation, W, H)).astype(int)
            bbox = [int(v) for v in d.bbox] if rotation == 0 else \
                [int(poly[:, 0].min()), int(poly[:, 1].min()), int(poly[:, 0].max()), int(poly[:, 1].max())]
            lines.append(LineResult(polygon=poly.tolist(), baseline=base.tolist(), bbox=bbox, text=r.text,
                                    confidence=round(r.confidence, 4),
                                    char_confidences=[round(c, 4) for c in r.char_confidences],
                                    detection_confidence=round(float(d.confidence), 4),
                                    printed=bool(is_printed)))
        if progress:
            progress(1.0)
        timings = {"detect": round(t_detect, 4), "recognize": round(t_recognize, 4),
                   "total": round(time.perf_counter() - t0, 4)}
        return PageResult(W, H, lines, timings, self.models,
                          round(float(page_lines.orientation_confidence), 4), warnings, rotation)

    def _detect_oriented(self, gray: np.ndarray) -> tuple[int, PageLines]:
        """Detect lines on ``gray``; when they look turned by 90° (not ``upright``), also on the
        page turned by 90° and 270° and keep the turn with the highest orientation confidence if
        it beats the page as uploaded by ``TURN_MARGIN``. Returns ``(rotation in degrees
        clockwise, PageLines)``."""
        page_lines = self.detector.detect_page(gray)
        if page_lines.upright or page_lines.orientation_confidence <= 0:  # upright, or nothing line-like
            return 0, page_lines
        best_rotation, best = 0, page_lines
        for rotation in (90, 270):
            cand = self.detector.detect_page(rotate_page(gray, rotation))
            if cand.orientation_confidence > best.orientation_confidence:
                best_rotation, best = rotation, cand
        if best.orientation_confidence >= page_lines.orientation_confidence + TURN_MARGIN:
            return best_rotation, best
        return 0, page_lines

    @staticmethod
    def _crops(page: np.ndarray, detected: list) -> tuple[list[np.ndarray], list]:
        """Crops (:func:`ml.crop.crop_line`) of the detected lines, and the lines kept (empty or
        sub-2-pixel crops are skipped with a warning in the log)."""
        crops, kept = [], []
        for line in detected:
            crop = crop_line(page, line.polygon, line.baseline)
            if crop.size == 0 or min(crop.shape) < 2:
                log.warning("line %s gave an empty crop; skipped", line.bbox)
                continue
            crops.append(crop)
            kept.append(line)
        return crops, kept

    def _printed(self, crops: list[np.ndarray], images: list[np.ndarray]) -> np.ndarray:
        """(N,) bool: the line-type classifier takes the line for printed (all False without one).
        ``images`` are the crops normalised for the recognizer, reused when the heights agree."""
        if self.line_types is None or not crops:
            return np.zeros(len(crops), bool)
        if self.line_types.height == self.recognizer.height:
            return self.line_types.printed_probability_normalized(images) >= self.line_types.threshold
        return self.line_types.is_printed(crops)

    def _upside_down(self, crops: list[np.ndarray]) -> bool:
        """True when the ``FLIP_PROBE_LINES`` widest crops read with a mean line confidence higher
        by more than ``FLIP_MARGIN`` (``FLIP_MARGIN * 4 / n`` for n < 4 lines) once turned by 180°."""
        if not crops:
            return False
        probe = sorted(crops, key=lambda c: -c.shape[1])[:FLIP_PROBE_LINES]
        as_cut = self.recognizer.recognize(probe, self.batch_size)
        turned = self.recognizer.recognize([np.ascontiguousarray(c[::-1, ::-1]) for c in probe], self.batch_size)
        gain = float(np.mean([t.confidence for t in turned]) - np.mean([a.confidence for a in as_cut]))
        return gain > FLIP_MARGIN * 4 / min(len(probe), 4)
