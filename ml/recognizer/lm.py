"""Character n-gram language model for CTC beam search (shallow fusion).

A line of text is scored character by character, ``log P(c | previous n-1 characters)``, with an
end-of-line symbol, and the beam search (:func:`ml.recognizer.decode.beam_decode`) adds
``alpha * log P_LM + beta`` for every character it emits, as in Hannun et al. 2014 ("First-Pass
Large Vocabulary Continuous Speech Recognition using Bi-Directional Recurrent DNNs", eq. 3).

Smoothing: interpolated Witten-Bell (Witten & Bell 1991; the form in Chen & Goodman 1998, "An
Empirical Study of Smoothing Techniques for Language Modeling", §2.5)::

    P(c | h) = (C(h c) + N1+(h •) · P(c | h')) / (C(h) + N1+(h •))

with ``h'`` the history without its first character and a uniform distribution over the
vocabulary (plus the end symbol) below the unigrams. Pruning drops the rare n-grams
``C(h c) < min_count`` of the longer histories and moves their counts to the backoff weight
(``N1+(h •) + C(pruned)``), so every conditional distribution still sums to one.

Text is NFC with whitespace collapsed (as the metrics see it). The model is saved as gzipped JSON
(``quire-charlm/1``), a few MB, and loaded offline.
"""
from __future__ import annotations

import argparse
import datetime
import gzip
import json
import math
import random
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

FORMAT = "quire-charlm/1"
#: The shipped model (trained by the command in its card, ``charlm.md`` beside it).
DEFAULT_PATH = Path(__file__).resolve().parent.parent / "artifacts" / "charlm.json.gz"
#: Probabilities remembered per model (about 200 bytes each); the cache is emptied when full.
CACHE_MAX = 200_000
#: Beam-search settings used when a model's card does not give its own (see ``decoding`` in the card).
DEFAULT_DECODING = {"beam_width": 10, "prune": 0.01, "alpha": 0.4, "beta": 1.5}
BOS = "\x02"  # padding before the first character of a line
EOS = "\x03"  # end-of-line symbol, scored after the last character


def normalize_text(text: str) -> str:
    """NFC, whitespace runs collapsed to one space, stripped (the metrics' normal form)."""
    return " ".join(unicodedata.normalize("NFC", text).split())


class CharLM:
    """Interpolated Witten-Bell character n-gram model.

    Args:
        order: n (the longest n-gram; histories have up to ``order - 1`` characters).
        vocab: characters seen in training (``EOS`` is added for scoring).
        histories: ``{history: (denominator, backoff, {char: count})}`` for histories of length
            0 .. order-1: ``denominator`` = C(h) + N1+(h •) and ``backoff`` = N1+(h •) + the
            pruned counts, both counted before pruning.
    """

    def __init__(self, order: int, vocab: Iterable[str], histories: dict[str, tuple[int, int, dict[str, int]]]):
        if order < 1:
            raise ValueError(f"order must be at least 1, got {order}")
        self.order = order
        self.vocab = sorted(set(vocab))
        self.histories = histories
        self._uniform = 1.0 / (len(self.vocab) + 1)
        self._cache: dict[tuple[str, str], float] = {}
        self.card: dict = {}

    @property
    def name(self) -> str:
        """``quire-charlm@<version>`` (what jobs record)."""
        return f"quire-charlm@{self.card.get('version', 'unsaved')}"

    @property
    def decoding(self) -> dict:
        """Beam-search settings tuned with this model: ``beam_width``, ``prune``, ``alpha``, ``beta``."""
        return {**DEFAULT_DECODING, **self.card.get("decoding", {})}

    # -- training ---------------------------------------------------------------------------
    @classmethod
    def train(cls, lines: Iterable[str], order: int = 6, min_count: int = 2) -> CharLM:
        """Count the n-grams of ``lines`` (normalised with :func:`normalize_text`; empty lines
        skipped). n-grams of histories longer than one character seen fewer than ``min_count``
        times are pruned (their history totals are kept)."""
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        vocab: set[str] = set()
        for raw in lines:
            text = normalize_text(raw)
            if not text:
                continue
            vocab.update(text)
            padded = BOS * (order - 1) + text + EOS
            for i in range(order - 1, len(padded)):
                c = padded[i]
                for n in range(order):  # history lengths 0 .. order-1
                    counts[padded[i - n:i]][c] += 1
        histories = {}
        for h, nxt in counts.items():
            total, types = sum(nxt.values()), len(nxt)
            kept = nxt if len(h) <= 1 else {c: k for c, k in nxt.items() if k >= min_count}
            if kept or len(h) <= 1:  # a history with nothing kept is all backoff: the lower order serves
                histories[h] = (total + types, types + total - sum(kept.values()), dict(kept))
        return cls(order, vocab, histories)

    # -- scoring ----------------------------------------------------------------------------
    def prob(self, history: str, char: str) -> float:
        """P(char | history) in (0, 1]; ``history`` may be longer than order-1 (its end is used)
        and may start with ``BOS`` padding; ``char`` may be ``EOS``."""
        h = history[-(self.order - 1):] if self.order > 1 else ""
        if len(h) < self.order - 1:
            h = BOS * (self.order - 1 - len(h)) + h
        key = (h, char)
        p = self._cache.get(key)
        if p is None:
            p = self._prob(h, char)
            if len(self._cache) >= CACHE_MAX:  # bounded memory in a long-lived worker
                self._cache.clear()
            self._cache[key] = p
        return p

    def _prob(self, h: str, char: str) -> float:
        p = self._uniform
        for n in range(0, len(h) + 1):  # from the empty history up to the full one
            sub = h[len(h) - n:] if n else ""
            entry = self.histories.get(sub)
            if entry is None:
                break  # a longer history was never seen either
            denom, backoff, nxt = entry
            p = (nxt.get(char, 0) + backoff * p) / denom
        return p

    def logprob(self, history: str, char: str) -> float:
        """Natural log of :meth:`prob`."""
        return math.log(self.prob(history, char))

    def line_logprob(self, text: str) -> float:
        """Natural-log probability of a whole line (normalised), including its end symbol."""
        text = normalize_text(text)
        lp, hist = 0.0, ""
        for c in text + EOS:
            lp += self.logprob(hist, c)
            hist += c
        return lp

    def bits_per_char(self, lines: Iterable[str]) -> float:
        """Cross-entropy in bits per character (end symbols counted) over ``lines``."""
        total, n = 0.0, 0
        for line in lines:
            text = normalize_text(line)
            if text:
                total += self.line_logprob(text)
                n += len(text) + 1
        return -total / max(1, n) / math.log(2)

    # -- files ------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": FORMAT, "order": self.order, "vocab": "".join(self.vocab),
                "histories": {h: [t, k, nxt] for h, (t, k, nxt) in self.histories.items()}}

    def save(self, path: str | Path, card: dict | None = None) -> None:
        """Write gzipped JSON (``card``: free-form training notes kept beside the counts)."""
        d = self.to_dict()
        d["card"] = card or {}
        with gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as f:
            json.dump(d, f, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def load(cls, path: str | Path | None = None) -> CharLM:
        """Read a file written by :meth:`save`. Raises FileNotFoundError, or ValueError for a file
        of another format. ``None`` loads the shipped model."""
        path = path or DEFAULT_PATH
        try:
            with gzip.open(path, "rt", encoding="utf-8") as f:
                d = json.load(f)
        except (OSError, json.JSONDecodeError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise ValueError(f"{path}: not a character language model ({exc})") from exc
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} file")
        hist = {h: (int(t), int(k), dict(nxt)) for h, (t, k, nxt) in d["histories"].items()}
        lm = cls(int(d["order"]), d["vocab"], hist)
        lm.card = d.get("card", {})
        return lm


def _read_lines(path: str) -> list[str]:
    p = Path(path)
    if p.suffix == ".jsonl":
        return [json.loads(r)["text"] for r in p.read_text(encoding="utf-8").splitlines() if r.strip()]
    return p.read_text(encoding="utf-8").splitlines()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Train a character n-gram language model for beam search.")
    ap.add_argument("--text", nargs="+", required=True,
                    help="lines.jsonl files (their 'text') or plain text files (one line each); "
                         "FILE:N takes a seeded random sample of N lines")
    ap.add_argument("--order", type=int, default=6)
    ap.add_argument("--min-count", type=int, default=2)
    ap.add_argument("--dev", default=None, help="lines.jsonl to report bits per character on, per source")
    ap.add_argument("--version", default=None, help="version recorded in the card (default: today's date)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    lines, used = [], []
    for spec in a.text:
        path, _, n = spec.partition(":")
        rows = _read_lines(path)
        if n:
            rows = random.Random(0).sample(rows, min(int(n), len(rows)))
        lines += rows
        used.append(f"{Path(path).name} ({len(rows)} lines)")
    lm = CharLM.train(lines, a.order, a.min_count)
    card = {"version": a.version or datetime.date.today().strftime("%Y%m%d"), "order": a.order,
            "min_count": a.min_count, "trained_on": used, "decoding": dict(DEFAULT_DECODING),
            "histories": len(lm.histories), "ngrams": sum(len(v[2]) for v in lm.histories.values())}
    if a.dev:
        by: dict[str, list[str]] = defaultdict(list)
        for r in Path(a.dev).read_text(encoding="utf-8").splitlines():
            rec = json.loads(r)
            if rec.get("handwritten", True):
                by[rec.get("source", "")].append(rec["text"])
        card["dev_bits_per_char"] = {s: round(lm.bits_per_char(v), 3) for s, v in sorted(by.items())}
    lm.save(a.out, card)
    print(json.dumps(card, indent=1), f"\n{a.out}: {Path(a.out).stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
