"""The page pipeline: page image → detected lines → line crops → recognised text, in reading order.

This is the one entry point the workers and the embedded ``transcribe`` command call (contract in
``docs/ARCHITECTURE.md``)::

    pipeline = PagePipeline.load()                       # shipped detector + recognizer, CPU
    result = pipeline.run(gray, progress=cb, should_cancel=cb)

Large pages are downscaled for detection only (inside :class:`ml.detect.LineDetector`); lines are
cropped from the full-resolution page along their polygons (:func:`ml.crop.crop_line`).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .crop import crop_line
from .detect import LineDetector
from .recognizer.predictor import Recognizer

log = logging.getLogger(__name__)


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


@dataclass
class PageResult:
    """All lines of one page in reading order, with timings (seconds) and model names."""

    width: int
    height: int
    lines: list[LineResult]
    timings: dict[str, float]
    models: dict[str, str]
    orientation_confidence: float = 1.0  # see ml.detect.postprocess.PageLines
    warnings: list[str] = field(default_factory=list)

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
    """

    def __init__(self, detector: LineDetector, recognizer: Recognizer, batch_size: int = 32,
                 beam_width: int = 0):
        self.detector, self.recognizer = detector, recognizer
        self.batch_size, self.beam_width = batch_size, beam_width

    @classmethod
    def load(cls, detector_path: str | Path | None = None, recognizer_path: str | Path | None = None,
             device: str | None = "cpu", **kwargs) -> PagePipeline:
        """Load both models (None = the shipped artifacts in ``ml/artifacts/``). ``device`` may be
        ``"cpu"``, ``"cuda"`` or ``"auto"``. Raises FileNotFoundError / ValueError for a missing
        or wrong artifact."""
        device = _choose_device(device)
        return cls(LineDetector.load(detector_path, device), Recognizer.load(recognizer_path, device), **kwargs)

    @property
    def models(self) -> dict[str, str]:
        return {"detector": self.detector.name, "recognizer": self.recognizer.name}

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

        page_lines = self.detector.detect_page(gray)
        detected = page_lines.lines
        warnings = []
        if detected and not page_lines.upright:
            warnings.append(f"the page may be rotated by 90°: its lines look unlike upright text "
                            f"(orientation confidence {page_lines.orientation_confidence:.2f})")
        t_detect = time.perf_counter() - t0
        if progress:
            progress(0.1)
        check_cancel()
        crops, kept = [], []
        for line in detected:
            crop = crop_line(gray, line.polygon, line.baseline)
            if crop.size == 0 or min(crop.shape) < 2:
                log.warning("line %s gave an empty crop; skipped", line.bbox)
                continue
            crops.append(crop)
            kept.append(line)
        t1 = time.perf_counter()

        def on_batch(done: int) -> None:
            if progress:
                progress(0.1 + 0.9 * done / max(1, len(crops)))
            check_cancel()

        recognitions = self.recognizer.recognize(crops, self.batch_size, self.beam_width, on_batch) if crops else []
        t_recognize = time.perf_counter() - t1
        lines = [
            LineResult(polygon=[list(map(int, p)) for p in d.polygon], baseline=[list(map(int, p)) for p in d.baseline],
                       bbox=[int(v) for v in d.bbox], text=r.text, confidence=round(r.confidence, 4),
                       char_confidences=[round(c, 4) for c in r.char_confidences],
                       detection_confidence=round(float(d.confidence), 4))
            for d, r in zip(kept, recognitions)
        ]
        if progress:
            progress(1.0)
        timings = {"detect": round(t_detect, 4), "recognize": round(t_recognize, 4),
                   "total": round(time.perf_counter() - t0, 4)}
        return PageResult(gray.shape[1], gray.shape[0], lines, timings, self.models,
                          round(float(page_lines.orientation_confidence), 4), warnings)
