"""Dataset lines cut along the band around their ground-truth baseline (``line_image``), packed
that way, read that way by the evaluation CLI, and read from several cuts keeping the most confident
reading (``Recognizer.recognize_candidates``)."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from ml.recognizer.data import LinePack, line_image, line_images, load_gray, pack_lines, read_lines_jsonl
from ml.recognizer.evaluate import main as evaluate_main
from ml.recognizer.image import normalize_line, stretch_width
from ml.recognizer.predictor import Recognizer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LINES = FIXTURES / "lines.jsonl"


def test_band_cuts_the_neighbours_out_of_a_tall_crop():
    records = [r for r in read_lines_jsonl(LINES) if r.baseline and r.polygon]
    assert len(records) >= 8
    shorter = 0
    for r in records:
        box, band = line_image(r, "box"), line_image(r, "band")
        assert np.array_equal(box, load_gray(r.image))
        assert band.dtype == np.uint8 and band.ndim == 2 and min(band.shape) >= 1
        assert band.shape[1] <= box.shape[1] + 4
        shorter += band.shape[0] < box.shape[0]
    assert shorter >= len(records) // 2  # most boxes hold parts of the neighbouring lines


def test_band_falls_back_to_the_crop_without_geometry():
    r = read_lines_jsonl(LINES)[0]
    bare = dataclasses.replace(r, polygon=None, baseline=None)
    assert np.array_equal(line_image(bare, "band"), load_gray(r.image))
    assert len(line_images(bare, "best")) == 1  # nothing to choose from: read once
    best = line_images(r, "best")  # the box, then the bands (90th, then 75th percentile)
    assert 2 <= len(best) <= 3
    assert np.array_equal(best[1], line_image(r, "band")) and np.array_equal(best[0], load_gray(r.image))
    assert any(len(line_images(x, "best")) == 3 for x in read_lines_jsonl(LINES))
    with pytest.raises(ValueError, match="unknown crop 'page'"):
        line_image(r, "page")


def test_band_pack_holds_masked_lines_without_polygons(tmp_path):
    assert pack_lines(LINES, tmp_path / "band", 32, crop="band") == 12
    assert pack_lines(LINES, tmp_path / "box", 32) == 12
    band, box = LinePack(tmp_path / "band"), LinePack(tmp_path / "box")
    assert all(rec["polygon"] is None for rec in band.records)
    assert any(rec["polygon"] for rec in box.records)
    assert [r["text"] for r in band.records] == [r["text"] for r in box.records]
    assert all(band[i].shape[0] == 32 for i in range(len(band)))


def test_evaluate_reads_band_by_default_and_box_on_request(tmp_path, capsys):
    out = tmp_path / "p.tsv"
    res = {}
    for crop in ("best", "band", "box"):
        args = ["--lines", str(LINES), "--out", str(out), "--json"] + ([] if crop == "best" else ["--crop", crop])
        assert evaluate_main(args) == 0
        res[crop] = json.loads(capsys.readouterr().out)
        assert res[crop]["crop"] == crop and res[crop]["lines"] == 12
        assert 0 <= res[crop]["all"]["cer"] <= 1


def test_the_more_confident_reading_is_kept():
    """Each line given as itself and squeezed to half its width: the kept reading is whichever of
    the two is the more confident when read alone (one line per batch: no padding to vary)."""
    rec = Recognizer.load()
    records = [r for r in read_lines_jsonl(LINES) if r.handwritten][:6]
    lines = [normalize_line(load_gray(r.image), rec.height) for r in records]
    squeezed = [stretch_width(x, 0.5) for x in lines]
    alone = rec.recognize_normalized(lines, batch_size=1)
    squeezed_alone = rec.recognize_normalized(squeezed, batch_size=1)
    expected = [a if a.confidence >= b.confidence else b for a, b in zip(alone, squeezed_alone)]
    assert any(a.text != b.text for a, b in zip(alone, squeezed_alone))  # a real choice
    done = []
    picked = rec.recognize_candidates([[b, a] for a, b in zip(lines, squeezed)], batch_size=1,
                                      on_batch=done.append)
    assert [p.text for p in picked] == [e.text for e in expected]
    assert [p.confidence for p in picked] == pytest.approx([e.confidence for e in expected], abs=1e-5)
    assert done[-1] == len(lines) and done == sorted(done)
    with pytest.raises(ValueError, match="line 1 has no image"):
        rec.recognize_candidates([[lines[0]], []])
