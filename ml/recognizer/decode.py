"""CTC decoding: greedy (best path) and prefix beam search, with per-character confidences.

Inputs are log-probabilities of one line, (T, C) float32 numpy with the blank at index 0, as
produced by :class:`ml.recognizer.model.CRNN` (one line's slice, cut to its CTC length).

Per-character confidence is the highest posterior probability among the frames aligned to that
character (the frames of its run for greedy decoding; the Viterbi forced alignment of the chosen
labels for beam search). A line's confidence is the mean of its characters' confidences, or the
mean blank probability of an empty line.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .codec import BLANK
from .lm import EOS

NEG_INF = -math.inf


@dataclass
class Decoded:
    """One decoded line: class ``labels`` (no blanks), ``char_confidences`` in [0, 1] (one per
    label) and line ``confidence`` in [0, 1]."""

    labels: list[int]
    char_confidences: list[float]
    confidence: float


def _line_confidence(char_conf: list[float], log_probs: np.ndarray) -> float:
    if char_conf:
        return float(np.mean(char_conf))
    if log_probs.shape[0] == 0:
        return 0.0
    return float(np.exp(log_probs[:, BLANK]).mean())


def greedy_decode(log_probs: np.ndarray) -> Decoded:
    """Best-path decoding: argmax per frame, merge repeats, drop blanks."""
    best = log_probs.argmax(axis=1)
    probs = np.exp(log_probs.max(axis=1))
    labels: list[int] = []
    conf: list[float] = []
    prev = BLANK
    for t, c in enumerate(best.tolist()):
        if c != BLANK:
            if c != prev:
                labels.append(c)
                conf.append(float(probs[t]))
            else:
                conf[-1] = max(conf[-1], float(probs[t]))
        prev = c
    return Decoded(labels, conf, _line_confidence(conf, log_probs))


def _logadd(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    m = max(a, b)
    return m + math.log1p(math.exp(-abs(a - b)))


def align_confidences(log_probs: np.ndarray, labels: list[int]) -> list[float]:
    """Per-label confidence from the Viterbi CTC alignment of ``labels`` to ``log_probs``.

    Returns one probability per label (empty list for no labels). If no valid alignment exists
    (more labels than frames allow) the labels get the per-frame maximum probability instead.
    """
    if not labels:
        return []
    T = log_probs.shape[0]
    ext = np.full(2 * len(labels) + 1, BLANK, dtype=np.int64)
    ext[1::2] = labels
    S = len(ext)
    # a state may come from itself, the one before, or (a label different from the label two
    # states back) skip the blank in between; the recursion is vectorised over the states
    skip = np.zeros(S, dtype=bool)
    skip[3::2] = ext[3::2] != ext[1:-2:2]
    emit = log_probs[:, ext]  # (T, S)
    score = np.full((T, S), NEG_INF)
    back = np.zeros((T, S), dtype=np.int64)
    score[0, 0] = emit[0, 0]
    if S > 1:
        score[0, 1] = emit[0, 1]
    idx = np.arange(S)
    for t in range(1, T):
        prev = score[t - 1]
        one = np.r_[NEG_INF, prev[:-1]]
        two = np.where(skip, np.r_[NEG_INF, NEG_INF, prev[:-2]], NEG_INF)
        cand = np.stack([prev, one, two])  # (3, S): from s, s - 1, s - 2
        k = cand.argmax(0)  # a tie stays in the same state
        score[t] = cand[k, idx] + emit[t]
        back[t] = idx - k
    end = S - 1 if score[T - 1, S - 1] >= score[T - 1, S - 2] else S - 2
    if score[T - 1, end] == NEG_INF:
        frame_max = float(np.exp(log_probs.max()))
        return [frame_max] * len(labels)
    conf = [0.0] * len(labels)
    s = end
    for t in range(T - 1, -1, -1):
        if ext[s] != BLANK:
            k = (s - 1) // 2
            conf[k] = max(conf[k], float(np.exp(log_probs[t, ext[s]])))
        s = back[t, s] if t > 0 else s
    return conf


def beam_decode(log_probs: np.ndarray, beam_width: int = 10, prune: float = 1e-3, lm=None,
                label_chars: Sequence[str] | None = None, alpha: float = 0.5, beta: float = 1.0) -> Decoded:
    """CTC prefix beam search, optionally with a character language model (shallow fusion).

    Method: Hannun et al. 2014, "First-Pass Large Vocabulary Continuous Speech Recognition using
    Bi-Directional Recurrent DNNs" (prefix beam search, eq. 3 for the language model), in log space.
    Per frame only classes with probability ≥ ``prune`` are extended (the blank always is).

    Args:
        log_probs: (T, C) float32 log-probabilities of one line, blank at 0.
        beam_width: prefixes kept per frame.
        prune: per-frame probability under which a class is not tried.
        lm: a :class:`ml.recognizer.lm.CharLM` or None. With it, prefixes are ranked by
            ``log P_CTC + alpha * log P_LM + beta * length`` (the end-of-line probability is added
            before the final choice); ``label_chars[k]`` is the character of class k (required).
        alpha, beta: language-model weight and per-character bonus (natural-log units).

    Returns the best labelling with confidences from :func:`align_confidences` (CTC posteriors
    only, so a character the language model chose still shows how sure the image was). Raises
    ValueError when ``lm`` is given without ``label_chars``.
    """
    if lm is not None and label_chars is None:
        raise ValueError("beam_decode with a language model needs label_chars")
    log_prune = math.log(prune)
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}  # (p_blank, p_non_blank)
    texts: dict[tuple[int, ...], str] = {(): ""}
    lm_score: dict[tuple[int, ...], float] = {(): 0.0}  # alpha * log P_LM(prefix) + beta * len(prefix)

    def extend_lm(prefix: tuple[int, ...], c: int) -> tuple[int, ...]:
        ext = prefix + (c,)
        if ext not in lm_score:
            if lm is None:
                lm_score[ext] = 0.0
            else:
                text, ch = texts[prefix], label_chars[c]
                texts[ext] = text + ch
                lm_score[ext] = lm_score[prefix] + alpha * lm.logprob(text, ch) + beta
        return ext

    for t in range(log_probs.shape[0]):
        lp = log_probs[t]
        cands = [c for c in np.nonzero(lp >= log_prune)[0].tolist() if c != BLANK]
        nxt: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [NEG_INF, NEG_INF])
        for prefix, (pb, pnb) in beams.items():
            total = _logadd(pb, pnb)
            entry = nxt[prefix]
            entry[0] = _logadd(entry[0], total + float(lp[BLANK]))
            last = prefix[-1] if prefix else None
            for c in cands:
                p = float(lp[c])
                ext = extend_lm(prefix, c)
                if c == last:
                    nxt[ext][1] = _logadd(nxt[ext][1], pb + p)
                    entry[1] = _logadd(entry[1], pnb + p)
                else:
                    nxt[ext][1] = _logadd(nxt[ext][1], total + p)
        ranked = sorted(nxt.items(), key=lambda kv: _logadd(*kv[1]) + lm_score[kv[0]], reverse=True)[:beam_width]
        beams = {k: (v[0], v[1]) for k, v in ranked}

    def final(kv) -> float:
        prefix, (pb, pnb) = kv
        end = alpha * lm.logprob(texts[prefix], EOS) if lm is not None else 0.0
        return _logadd(pb, pnb) + lm_score[prefix] + end

    best = max(beams.items(), key=final)[0]
    labels = list(best)
    conf = align_confidences(log_probs, labels)
    return Decoded(labels, conf, _line_confidence(conf, log_probs))
