"""The recognizer's single inference entry point, used by the pipeline, the evaluation CLI,
training-time validation and the tests.

    rec = Recognizer.load()                     # shipped artifact ml/artifacts/recognizer.pt
    results = rec.recognize([crop1, crop2])     # (h, w) uint8 grayscale line crops
    results[0].text, results[0].confidence, results[0].char_confidences
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..artifact import ARTIFACTS_DIR, load_artifact
from .codec import Codec
from .decode import Decoded, beam_decode, greedy_decode
from .image import (BLANK_MARGIN, LOOSE_FRAMES_PER_CHAR, LOOSE_SQUEEZE, TIGHT_FRAMES_PER_CHAR, TIGHT_STRETCH, collate,
                    is_loose, is_tight, normalize_line, slant_line, stretch_width)
from .model import CRNN, RecognizerConfig

DEFAULT_PATH = ARTIFACTS_DIR / "recognizer.pt"
#: Shears a page's lines are also read at when their page is known (``pages`` of
#: :meth:`Recognizer.recognize_candidates`; factors of :func:`ml.recognizer.image.shear_line`,
#: positive stands up writing that leans right). Slant is a property of a hand: a writer keeps it
#: over a page, and the model reads best the slants it saw most (Hooker's 5,256 training lines).
#: Measured with 20261202-cpu14-soup on the 1,343 handwritten dev lines, greedy, Copiste / Hooker /
#: Stanford CER: off 6.94 / 19.30 / 26.20 %, on 6.83 / 19.23 / 24.93 % for 1.8 times the reading time
#: (with the language model 5.36 / 15.99 / 22.17 → 5.27 / 16.04 / 21.06 %; docs/TRAINING.md, "Page slant").
PAGE_SHEARS = (-0.3, -0.15, 0.15, 0.3)
#: Lines per page, spread over it, whose first image is read at every shear to choose the page's.
SLANT_PROBE_LINES = 8


@dataclass
class Recognition:
    """Text of one line (NFC), its confidence in [0, 1], one confidence per character, and the
    shear of the reading kept (:meth:`Recognizer.recognize_candidates`)."""

    text: str
    confidence: float
    char_confidences: list[float]
    shear: float = 0.0  # the page shear the kept reading was made at (0: as cut)


class Recognizer:
    """A loaded line recognizer.

    Args:
        model: a :class:`CRNN` (put in eval mode here).
        codec: the artifact's :class:`Codec`.
        device: ``"cpu"`` or ``"cuda"``.
        version: artifact version string, for job records.
    """

    def __init__(self, model: CRNN, codec: Codec, device: str = "cpu", version: str = "unsaved",
                 card: dict | None = None):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.model = self.model.to(memory_format=torch.channels_last)
        self.codec, self.version, self.card = codec, version, card or {}
        self.height = model.config.height
        self.lm, self.lm_alpha, self.lm_beta, self.beam_prune = None, 0.0, 0.0, 1e-3
        self._label_chars = [""] + list(codec.charset)
        self.tight_frames_per_char, self.tight_stretch = TIGHT_FRAMES_PER_CHAR, TIGHT_STRETCH
        self.loose_frames_per_char, self.loose_squeeze = LOOSE_FRAMES_PER_CHAR, LOOSE_SQUEEZE
        self.page_shears, self.slant_probe_lines = PAGE_SHEARS, SLANT_PROBE_LINES

    def use_lm(self, lm, alpha: float | None = None, beta: float | None = None, prune: float | None = None) -> None:
        """Let beam search (``beam_width`` > 0) fuse the character language model ``lm``
        (:class:`ml.recognizer.lm.CharLM`, or None to stop) with weight ``alpha``, a per-character
        bonus ``beta`` and per-frame pruning ``prune`` (see :func:`ml.recognizer.decode.beam_decode`;
        None takes the value tuned in the model's card, ``lm.decoding``). Greedy decoding ignores it."""
        if lm is None:
            self.lm, self.lm_alpha, self.lm_beta, self.beam_prune = None, 0.0, 0.0, 1e-3
            return
        d = lm.decoding
        self.lm = lm
        self.lm_alpha = d["alpha"] if alpha is None else alpha
        self.lm_beta = d["beta"] if beta is None else beta
        self.beam_prune = d["prune"] if prune is None else prune

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "cpu") -> Recognizer:
        """Load an artifact (default: the shipped one). Raises FileNotFoundError or
        :class:`ml.artifact.ArtifactError`."""
        data = load_artifact(path or DEFAULT_PATH, "recognizer")
        model = CRNN(RecognizerConfig.from_dict(data["config"]))
        model.load_state_dict(data["state_dict"])
        return cls(model, Codec.from_dict(data["codec"]), device, data["version"], data["card"])

    @property
    def name(self) -> str:
        return f"quire-recognizer@{self.version}"

    def recognize(self, crops: Sequence[np.ndarray], batch_size: int = 32, beam_width: int = 0,
                  on_batch: Callable[[int], None] | None = None) -> list[Recognition]:
        """Transcribe line crops ((h, w) uint8 grayscale, dark ink on light paper).

        Lines are batched by similar width. ``beam_width`` 0 means greedy decoding, otherwise
        prefix beam search of that width. ``on_batch(n_done)`` is called after each batch (it may
        raise to stop early). Empty crops raise ValueError.
        """
        return self.recognize_normalized([normalize_line(c, self.height) for c in crops],
                                         batch_size, beam_width, on_batch)

    def recognize_normalized(self, images: Sequence[np.ndarray], batch_size: int = 32, beam_width: int = 0,
                             on_batch: Callable[[int], None] | None = None) -> list[Recognition]:
        """As :meth:`recognize`, for lines already through :func:`normalize_line`.

        A line whose greedy reading has fewer than ``tight_frames_per_char`` CTC frames per
        character is read a second time stretched by ``tight_stretch`` (:func:`stretch_width`), and
        that reading is the one decoded (``tight_stretch = 1`` turns the second reading off); a line
        with more than ``loose_frames_per_char`` is read again squeezed by ``loose_squeeze`` the same
        way (``loose_squeeze = 1`` turns it off; see :data:`ml.recognizer.image.LOOSE_SQUEEZE`).
        Measured on the 1,343 handwritten dev lines with 20261130-cpu6-pc (39 % read twice): greedy
        CER 11.4 / 28.2 / 31.8 % → 10.5 / 27.2 / 32.0 % (Copiste / Hooker / Stanford), beam 10 +
        LM 8.3 / 24.1 / 26.0 % → 7.9 / 23.0 / 26.4 % (docs/TRAINING.md). A line reads the same
        whatever it is batched with: the BiLSTM runs on each line's own frames, and every batch
        ends in :data:`ml.recognizer.image.BLANK_MARGIN` blank columns, so the convolutions see
        blank paper past every line's right end.
        """
        return self.recognize_candidates([[im] for im in images], batch_size, beam_width, on_batch)

    @torch.inference_mode()
    def recognize_candidates(self, candidates: Sequence[Sequence[np.ndarray]], batch_size: int = 32,
                             beam_width: int = 0, on_batch: Callable[[int], None] | None = None,
                             pages: Sequence[Hashable] | None = None) -> list[Recognition]:
        """Lines given as one or more normalised images each (the same line cut in different ways,
        each through :func:`normalize_line`; the first is the line as detected or given, the
        others cut closer): every image is read greedily (tight ones twice, as
        :meth:`recognize_normalized` says), each line keeps the reading with the highest line
        confidence, and that reading's posteriors are decoded (greedy, or beam search of
        ``beam_width`` with the language model if one is set), so the beam search runs once per line.

        Measured with 20261201-cpu8a on the 1,343 handwritten dev lines, greedy, the dataset's box
        crops / cut along the baseline band (:func:`ml.crop.baseline_band`) / the more confident of
        the two: Copiste 9.7 / 8.3 / 8.1 %, Hooker 26.1 / 24.6 / 21.6 %, Stanford 30.3 / 30.0 / 29.6 %
        CER (docs/TRAINING.md).

        ``pages`` (one key per line, e.g. the page's name, None for a line of no known page; None:
        off) groups the lines written by one hand, whose slant the page shares: each page then also
        gets a shear chosen among ``page_shears`` (:meth:`_page_shear`) and, where one is chosen,
        all of its lines' images are read again sheared by it
        (:func:`ml.recognizer.image.slant_line`) and join the candidates, so that a line keeps its
        upright reading when that stays the most confident. ``Recognition.shear`` tells which
        reading a line kept.

        ``on_batch(n)`` is called after every batch read or decoded, ``n`` the lines done so far in
        proportion to the work done (it may raise to stop). Raises ValueError for a line without
        candidates or for ``pages`` of another length.
        """
        counts = [len(c) for c in candidates]
        if 0 in counts:
            raise ValueError(f"line {counts.index(0)} has no image to read")
        if pages is not None and len(pages) != len(candidates):
            raise ValueError(f"{len(pages)} page keys for {len(candidates)} lines")
        n = len(candidates)
        shears = tuple(s for s in self.page_shears if s != 0) if pages is not None else ()
        groups: dict[Hashable, list[int]] = {}
        for k, key in enumerate(pages or ()):
            if key is not None:  # a line of no known page is read as cut
                groups.setdefault(key, []).append(k)
        probes = {key: ks[:: max(1, len(ks) // self.slant_probe_lines)][: self.slant_probe_lines]
                  for key, ks in groups.items()}
        upright = sum(counts)
        decodes = n if beam_width > 0 else 0  # beam search is work to count; a greedy reading is decoded already
        # work units: readings (the sheared rereading counted as large as the upright one until the
        # pages' shears are known) and beam decodings
        planned = upright + len(shears) * sum(map(len, probes.values())) + (upright if shears else 0) + decodes
        worked = 0

        def progress(units: int) -> None:
            nonlocal worked
            worked += units
            if on_batch is not None:
                on_batch(min(n, n * worked // max(1, planned)))

        best: list[tuple[np.ndarray, Decoded, float] | None] = [None] * n
        first_confidence = [0.0] * n  # of each line's first image, upright

        def keep(k: int, c: int, lp: np.ndarray, g: Decoded, shear: float = 0.0) -> None:
            if best[k] is None or g.confidence > best[k][1].confidence:
                best[k] = (lp, g, shear)
            if c == 0 and shear == 0:
                first_confidence[k] = g.confidence

        self._read_all([(k, c, im) for k, cands in enumerate(candidates) for c, im in enumerate(cands)],
                       batch_size, keep, progress)
        if shears:
            probe_reads: dict[tuple[int, float], tuple[np.ndarray, Decoded]] = {}
            self._read_all([(k, s, slant_line(candidates[k][0], s)) for ks in probes.values() for k in ks
                            for s in shears], batch_size, lambda k, s, lp, g: probe_reads.update({(k, s): (lp, g)}),
                           progress)
            chosen = {key: self._page_shear([first_confidence[k] for k in ks],
                                            {s: [probe_reads[k, s][1].confidence for k in ks] for s in shears})
                      for key, ks in probes.items()}
            shear_of = [0.0 if key is None else chosen[key] for key in pages]  # type: ignore[union-attr]
            for (k, s), (lp, g) in probe_reads.items():
                if s == shear_of[k]:  # a probe's first image at its page's shear: read already
                    keep(k, 0, lp, g, s)
            again = [(k, c, slant_line(im, shear_of[k])) for k in range(n) if shear_of[k] != 0
                     for c, im in enumerate(candidates[k]) if c or (k, shear_of[k]) not in probe_reads]
            planned += len(again) - upright
            self._read_all(again, batch_size, lambda k, c, lp, g: keep(k, c, lp, g, shear_of[k]), progress)
        out = []
        for k, (lp, g, shear) in enumerate(best):  # type: ignore[misc]
            d = beam_decode(lp, beam_width, self.beam_prune, lm=self.lm, label_chars=self._label_chars,
                            alpha=self.lm_alpha, beta=self.lm_beta) if beam_width > 0 else g
            out.append(Recognition(self.codec.decode(d.labels), d.confidence, d.char_confidences, shear))
            if decodes and ((k + 1) % batch_size == 0 or k + 1 == n):
                progress((k % batch_size) + 1)
        return out

    @staticmethod
    def _page_shear(upright: list[float], sheared: dict[float, list[float]]) -> float:
        """The shear (0 or a key of ``sheared``) at which a page's probe lines read with the highest
        mean line confidence; ties keep 0. ``upright`` and each ``sheared[s]`` hold the
        confidences of the same probe lines' first images. Comparing one image per line at every
        shear, rather than the most confident of several cuts, avoids favouring the shear that had
        more readings to choose from (docs/TRAINING.md, "Page slant")."""
        score = {0.0: sum(upright)}
        score.update({s: sum(c) for s, c in sheared.items()})
        return max(score, key=lambda s: (score[s], s == 0))

    def _read_all(self, items: list[tuple[int, float, np.ndarray]], batch_size: int,
                  take: Callable[[int, float, np.ndarray, Decoded], None], progress: Callable[[int], None]) -> None:
        """Read ``(a, b, image)`` items in batches of similar width (:meth:`_read`), calling
        ``take(a, b, posteriors, greedy reading)`` for each and ``progress(n)`` after each batch of n."""
        order = sorted(range(len(items)), key=lambda i: items[i][2].shape[1])
        for start in range(0, len(order), batch_size):
            idx = order[start: start + batch_size]
            for i, lp, g in zip(idx, *self._read([items[i][2] for i in idx])):
                take(items[i][0], items[i][1], lp, g)
            progress(len(idx))

    def _read(self, images: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[Decoded]]:
        """Posteriors and greedy readings of normalised lines, the tight ones read again stretched
        and the loose ones read again squeezed (one more forward pass for both)."""
        posteriors = self._posteriors(images)
        greedy = [greedy_decode(lp) for lp in posteriors]
        again: dict[int, float] = {}
        for j, (lp, g) in enumerate(zip(posteriors, greedy)):
            if self.tight_stretch != 1.0 and is_tight(lp.shape[0], len(g.labels), self.tight_frames_per_char):
                again[j] = self.tight_stretch
            elif self.loose_squeeze != 1.0 and is_loose(lp.shape[0], len(g.labels), self.loose_frames_per_char):
                again[j] = self.loose_squeeze
        if again:
            reread = self._posteriors([stretch_width(images[j], f) for j, f in again.items()])
            for j, lp in zip(again, reread):
                posteriors[j], greedy[j] = lp, greedy_decode(lp)
        return posteriors, greedy

    def _posteriors(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One forward pass over normalised lines: each line's CTC log-probabilities, (T_i, C)
        float32 numpy, T_i its own frame count."""
        batch, widths = collate(list(images), BLANK_MARGIN)
        x = torch.from_numpy(batch).to(self.device).contiguous(memory_format=torch.channels_last)
        frames = self.model.output_lengths(torch.from_numpy(widths))
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            log_probs = self.model(x, frames)  # each line's own frames: batch-independent
        lp = log_probs.float().cpu().numpy()
        return [lp[:n, j] for j, n in enumerate(frames.tolist())]
