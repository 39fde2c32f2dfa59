"""Dataset lines cut along the band around their ground-truth baseline (``line_image``), packed
that way, and read that way by the evaluation CLI."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from ml.recognizer.data import LinePack, line_image, load_gray, pack_lines, read_lines_jsonl
from ml.recognizer.evaluate import main as evaluate_main

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
    assert evaluate_main(["--lines", str(LINES), "--out", str(out), "--json"]) == 0
    band = json.loads(capsys.readouterr().out)
    assert evaluate_main(["--lines", str(LINES), "--out", str(out), "--json", "--crop", "box"]) == 0
    box = json.loads(capsys.readouterr().out)
    assert band["crop"] == "band" and box["crop"] == "box"
    assert band["lines"] == box["lines"] == 12
    assert 0 <= band["all"]["cer"] <= 1 and 0 <= box["all"]["cer"] <= 1
