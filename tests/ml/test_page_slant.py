"""Page slant: the lines of one page are also read at the shear their page reads best at
(``Recognizer.recognize_candidates(..., pages=...)``, ``ml.recognizer.image.shear_line``)."""
from pathlib import Path

import numpy as np
import pytest

from ml.metrics import char_edits
from ml.recognizer.data import load_gray, read_lines_jsonl
from ml.recognizer.image import MAX_WIDTH, WIDTH_MULTIPLE, normalize_line, shear_line, slant_line
from ml.recognizer.predictor import PAGE_SHEARS, Recognizer

LINES = Path(__file__).resolve().parents[1] / "fixtures" / "lines.jsonl"


@pytest.mark.parametrize("factor", [0.3, -0.15])
def test_shear_line_moves_the_foot_of_a_stroke_against_its_top(factor):
    h, w = 32, 40
    img = np.zeros((h, w), np.float32)
    img[:, 19:21] = 1.0  # a vertical stroke, ink = 1 on blank paper
    out = shear_line(img, factor)
    assert out.shape == (h, w + int(np.ceil(abs(factor) * h)) + 1) and out.dtype == np.float32
    top, foot = (float(np.average(np.arange(out.shape[1]), weights=out[y])) for y in (0, h - 1))
    assert foot - top == pytest.approx(factor * (h - 1), abs=0.6)  # positive: the foot moves right
    assert out.sum() == pytest.approx(img.sum(), rel=0.02)  # no ink cut off
    assert shear_line(img, 0.0) is img


def test_slant_line_keeps_the_model_width_rules():
    line = np.ones((32, MAX_WIDTH - 4), np.float32)
    for factor in PAGE_SHEARS:
        out = slant_line(line[:, :101], factor)
        assert out.shape[0] == 32 and out.shape[1] % WIDTH_MULTIPLE == 0 and out.shape[1] > 101
        assert slant_line(line, factor).shape == (32, MAX_WIDTH)  # widened past the limit: squeezed back


@pytest.fixture(scope="module")
def rec():
    return Recognizer.load()


@pytest.fixture(scope="module")
def lines(rec):
    records = [r for r in read_lines_jsonl(LINES) if r.handwritten]
    return records, [normalize_line(load_gray(r.image), rec.height) for r in records]


def test_a_page_leaning_further_is_read_stood_up(rec, lines):
    """The same lines as written (page "a") and leaning further right by 0.6 (page "b", a hand
    slanted more than training's augmentation ever shears, ±0.25): page b chooses a shear that
    stands its writing up by at least 0.3 more than page a's, and reads better with page slant than
    without (measured: 65 against 72 character edits; page a: −0.15, b: +0.3)."""
    records, images = lines
    leaning = [slant_line(x, -0.6) for x in images]
    pages = ["a"] * len(images) + ["b"] * len(leaning)
    done = []
    both = rec.recognize_candidates([[x] for x in images + leaning], pages=pages, on_batch=done.append)
    shear_a = {r.shear for r in both[: len(images)]} - {0.0}
    shear_b = {r.shear for r in both[len(images):]} - {0.0}
    assert len(shear_a) <= 1 and len(shear_b) == 1  # one shear per page (or the line as cut)
    assert shear_b.pop() >= (shear_a.pop() if shear_a else 0.0) + 0.3
    truth = [r.text for r in records]
    as_cut = rec.recognize_candidates([[x] for x in leaning])
    assert all(r.shear == 0.0 for r in as_cut)
    edits_slant = sum(map(char_edits, truth, [r.text for r in both[len(images):]]))
    edits_cut = sum(map(char_edits, truth, [r.text for r in as_cut]))
    assert edits_slant < edits_cut
    assert done == sorted(done) and done[-1] == len(pages)


def test_page_slant_off_and_lines_of_no_page_read_as_cut(rec, lines):
    _, images = lines
    leaning = [[slant_line(x, -0.3)] for x in images]
    plain = rec.recognize_candidates(leaning)
    no_page = rec.recognize_candidates(leaning, pages=[None] * len(leaning))
    assert [r.text for r in no_page] == [r.text for r in plain] and {r.shear for r in no_page} == {0.0}
    saved = rec.page_shears
    try:
        rec.page_shears = ()
        off = rec.recognize_candidates(leaning, pages=["p"] * len(leaning))
    finally:
        rec.page_shears = saved
    assert [r.text for r in off] == [r.text for r in plain]
    with pytest.raises(ValueError, match="3 page keys for"):
        rec.recognize_candidates(leaning, pages=["p"] * 3)


def test_progress_counts_the_beam_search_too(lines):
    """With the language model, decoding is the slow part: progress (and the pipeline's cancel
    check, which runs in ``on_batch``) keeps moving through it instead of reaching the end when the
    last line is read."""
    from ml.recognizer.lm import CharLM

    _, images = lines
    rec = Recognizer.load()
    lm = CharLM.load()
    rec.use_lm(lm)
    done = []
    rec.recognize_candidates([[x] for x in images], batch_size=4, beam_width=lm.decoding["beam_width"],
                             on_batch=done.append)
    assert done == [2, 4, 6, 8, 10, 12]  # 3 batches read, then 3 batches decoded, of 12 lines
