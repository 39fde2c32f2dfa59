"""Recognition metrics: character and word error rates.

Corpus CER is the total edit distance divided by the total number of reference characters, after
Unicode NFC and whitespace collapsing (the convention of ``../shared/data/README.md`` and of
kraken's ``ketos test``); WER does the same on whitespace-separated words. Edit distances are
Levenshtein distances computed by rapidfuzz.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

_WS = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Return ``text`` in Unicode NFC with runs of whitespace collapsed to one space and trimmed."""
    return _WS.sub(" ", unicodedata.normalize("NFC", text)).strip()


def char_edits(reference: str, prediction: str) -> int:
    """Levenshtein distance between the normalised strings, in characters (code points after NFC)."""
    return Levenshtein.distance(normalize_text(reference), normalize_text(prediction))


def word_edits(reference: str, prediction: str) -> int:
    """Levenshtein distance between the normalised strings' word sequences, in words."""
    return Levenshtein.distance(normalize_text(reference).split(), normalize_text(prediction).split())


@dataclass
class ErrorRate:
    """Accumulates corpus CER and WER over (reference, prediction) pairs.

    ``cer`` and ``wer`` are fractions (0.05 = 5 %); with no reference characters (or words) they are
    0.0 when nothing was predicted either and 1.0 otherwise, so an empty reference never divides by
    zero. They can exceed 1.0 when the prediction is much longer than the reference.
    """

    char_errors: int = 0
    chars: int = 0
    word_errors: int = 0
    words: int = 0
    lines: int = 0

    def update(self, reference: str, prediction: str) -> None:
        """Add one pair of texts."""
        ref, hyp = normalize_text(reference), normalize_text(prediction)
        self.char_errors += Levenshtein.distance(ref, hyp)
        self.chars += len(ref)
        self.word_errors += Levenshtein.distance(ref.split(), hyp.split())
        self.words += len(ref.split())
        self.lines += 1

    @property
    def cer(self) -> float:
        if self.chars == 0:
            return 0.0 if self.char_errors == 0 else 1.0
        return self.char_errors / self.chars

    @property
    def wer(self) -> float:
        if self.words == 0:
            return 0.0 if self.word_errors == 0 else 1.0
        return self.word_errors / self.words


def cer(reference: str, prediction: str) -> float:
    """CER of one pair (see :class:`ErrorRate` for the empty-reference convention)."""
    acc = ErrorRate()
    acc.update(reference, prediction)
    return acc.cer


def wer(reference: str, prediction: str) -> float:
    """WER of one pair (see :class:`ErrorRate` for the empty-reference convention)."""
    acc = ErrorRate()
    acc.update(reference, prediction)
    return acc.wer


def score_by_source(rows) -> dict:
    """Corpus CER/WER per source and over all rows.

    Args:
        rows: iterable of ``(source, reference, prediction)`` (already filtered: callers leave out
            what is not scored, such as typed lines).

    Returns:
        ``{"sources": {source: row}, "all": row, "mean_cer": float}`` where a row is ``{"cer",
        "wer", "lines", "chars"}`` (rates rounded to 4 decimals) and ``mean_cer`` is the
        unweighted mean of the sources' CERs (1.0 with no rows), the figure models are chosen by.
    """
    per: dict[str, ErrorRate] = {}
    total = ErrorRate()
    for source, ref, hyp in rows:
        per.setdefault(source, ErrorRate()).update(ref, hyp)
        total.update(ref, hyp)

    def row(a: ErrorRate) -> dict:
        return {"cer": round(a.cer, 4), "wer": round(a.wer, 4), "lines": a.lines, "chars": a.chars}

    sources = {s: row(a) for s, a in sorted(per.items())}
    mean = sum(v["cer"] for v in sources.values()) / len(sources) if sources else 1.0
    return {"sources": sources, "all": row(total), "mean_cer": round(mean, 4)}
