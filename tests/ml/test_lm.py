"""Character language model (ml.recognizer.lm) and its fusion into CTC beam search."""
import gzip
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from ml.metrics import ErrorRate
from ml.recognizer.data import load_gray, read_lines_jsonl
from ml.recognizer.decode import beam_decode, greedy_decode
from ml.recognizer.lm import EOS, CharLM
from ml.recognizer.predictor import Recognizer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_witten_bell_by_hand():
    # one line "ab", bigrams. Empty history: C = 3 (a, b, EOS), N1+ = 3, uniform 1/3 below it:
    # P(x) = (1 + 3 · 1/3) / 6 = 1/3 for each of a, b, EOS. History "a" (and the line start):
    # C = 1, N1+ = 1: P(b|a) = (1 + 1/3) / 2 = 2/3, P(a|a) = (0 + 1/3) / 2 = 1/6.
    lm = CharLM.train(["ab"], order=2, min_count=1)
    assert lm.prob("a", "b") == pytest.approx(2 / 3)
    assert lm.prob("a", "a") == pytest.approx(1 / 6)
    assert lm.prob("", "a") == pytest.approx(2 / 3)  # "" is the line start: P(a|BOS)
    assert lm.prob("b", EOS) == pytest.approx(2 / 3)
    assert lm.prob("b", "b") == pytest.approx(1 / 6)


@pytest.mark.parametrize("min_count", [1, 2, 3])
def test_every_conditional_distribution_sums_to_one(min_count):
    texts = [r.text for r in read_lines_jsonl(FIXTURES / "lines.jsonl")]
    lm = CharLM.train(texts * 2 + texts[:3], order=4, min_count=min_count)
    symbols = lm.vocab + [EOS]
    histories = ["", "l", "la", "la ", "de l", "zzz", texts[0][:10]]
    for h in histories:
        assert math.fsum(lm.prob(h, c) for c in symbols) == pytest.approx(1.0, abs=1e-9), h


def test_text_is_normalised_like_the_metrics():
    lm = CharLM.train(["e\u0301te  été"], order=3, min_count=1)  # decomposed é, double space
    assert "\u0301" not in lm.vocab and "é" in lm.vocab
    assert lm.line_logprob("été été") == pytest.approx(lm.line_logprob("e\u0301te\u0301   été"))


def test_save_and_load_keep_the_probabilities(tmp_path):
    texts = [r.text for r in read_lines_jsonl(FIXTURES / "lines.jsonl")]
    lm = CharLM.train(texts, order=5, min_count=2)
    lm.save(tmp_path / "lm.json.gz", {"version": "t1", "decoding": {"alpha": 0.7}})
    back = CharLM.load(tmp_path / "lm.json.gz")
    assert back.name == "quire-charlm@t1" and back.decoding["alpha"] == 0.7 and back.decoding["beam_width"] > 0
    for text in texts[:4]:
        assert back.line_logprob(text) == pytest.approx(lm.line_logprob(text))


def test_loading_something_else_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError):
        CharLM.load(tmp_path / "missing.json.gz")
    (tmp_path / "plain.json.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="not a character language model"):
        CharLM.load(tmp_path / "plain.json.gz")
    with gzip.open(tmp_path / "other.json.gz", "wt") as f:
        json.dump({"format": "something/9"}, f)
    with pytest.raises(ValueError, match="quire-charlm/1"):
        CharLM.load(tmp_path / "other.json.gz")


def _posteriors(rows: list[dict[str, float]], chars: str) -> np.ndarray:
    """(T, C) log-probabilities from per-frame {char or '-' (blank): probability}."""
    lp = np.full((len(rows), len(chars) + 1), 1e-6)
    for t, row in enumerate(rows):
        for ch, p in row.items():
            lp[t, 0 if ch == "-" else chars.index(ch) + 1] = p
    lp /= lp.sum(1, keepdims=True)
    return np.log(lp).astype(np.float32)


def test_language_model_corrects_an_ambiguous_character():
    chars = "acot"
    label_chars = [""] + list(chars)
    # the image says "c?t" with o slightly ahead of a
    lp = _posteriors([{"c": 0.9, "-": 0.1}, {"-": 1.0}, {"o": 0.52, "a": 0.46, "-": 0.02}, {"-": 1.0},
                      {"t": 0.9, "-": 0.1}], chars)
    decode = lambda d: "".join(label_chars[k] for k in d.labels)  # noqa: E731
    assert decode(greedy_decode(lp)) == "cot"
    assert decode(beam_decode(lp, 8)) == "cot"
    lm = CharLM.train(["cat", "a cat", "cats", "the cat sat"] * 5, order=3, min_count=1)
    fused = beam_decode(lp, 8, lm=lm, label_chars=label_chars, alpha=0.5, beta=0.5)
    assert decode(fused) == "cat"
    # confidences still come from the image alone
    assert fused.char_confidences[1] == pytest.approx(0.46, abs=0.01)
    with pytest.raises(ValueError, match="label_chars"):
        beam_decode(lp, 8, lm=lm)


def test_shipped_language_model_reads_committed_lines_better_than_greedy():
    """The LM reading makes no more character errors than greedy decoding and fewer word errors.
    Measured on the 12 fixture lines: recognizer 20261202-cpu14-soup greedy CER / WER 0.168 / 0.483,
    beam + LM 0.145 / 0.433 (on all 1,343 dev lines 13.43 → 10.95 % CER); 20261202-cpu12-soup 0.162 /
    0.517 and 0.162 / 0.467 (12 lines are too few to expect a character gain from every model);
    20261130-cpu5-pc greedy CER 0.239, beam + LM 0.179
    (20261130-cpu3: 0.241 and 0.190; 20261130-cpu2: 0.247 and 0.207; 20261130-cpu: 0.270 and 0.219)."""
    lm = CharLM.load()
    assert lm.order >= 3 and lm.decoding["beam_width"] > 0
    rec = Recognizer.load()
    records = [r for r in read_lines_jsonl(FIXTURES / "lines.jsonl") if r.handwritten]
    crops = [load_gray(r.image) for r in records]
    greedy, fused = ErrorRate(), ErrorRate()
    for r, p in zip(records, rec.recognize(crops)):
        greedy.update(r.text, p.text)
    rec.use_lm(lm)
    for r, p in zip(records, rec.recognize(crops, beam_width=lm.decoding["beam_width"])):
        fused.update(r.text, p.text)
        assert len(p.char_confidences) == len(p.text)
    assert fused.cer <= greedy.cer and fused.wer < greedy.wer, (fused, greedy)


def test_all_orders_of_history_padding_agree():
    lm = CharLM.train(["abc", "abd"], order=4, min_count=1)
    # a history shorter than order-1 is padded with the line-start symbol: "" and "\x02" agree
    for a, b in itertools.product(["", "\x02", "\x02\x02"], ["a", "b"]):
        assert lm.prob(a, b) == pytest.approx(lm.prob("\x02" * 3, b))
