"""Line packs of the page pipeline's crops (ml/recognizer/pagecrops.py) and the page readers they use.

The fixture page is the Copiste sheet of tests/fixtures/pages (8 handwritten lines, ALTO ground
truth; the shipped detector finds all 8, see test_detect_artifact.py).
"""
import json
from pathlib import Path

import pytest

from ml.detect import DEFAULT_PATH, LineDetector
from ml.detect.pages import read_pages, read_pages_index
from ml.detect.postprocess import DetectedLine
from ml.metrics import cer
from ml.recognizer.data import LinePack, pack_lines
from ml.recognizer.pagecrops import matched_lines, pack_page_crops, x_cover
from ml.recognizer.predictor import DEFAULT_PATH as RECOGNIZER_PATH
from ml.recognizer.predictor import Recognizer
from ml.recognizer.train import main as train_main

PAGES = Path(__file__).resolve().parents[1] / "fixtures" / "pages" / "pages.json"
LINES = Path(__file__).resolve().parents[1] / "fixtures" / "lines.jsonl"


def _box_line(x0, y0, x1, y1) -> DetectedLine:
    return DetectedLine(polygon=[[x0, y0], [x1, y0], [x1, y1], [x0, y1]], baseline=[[x0, y1 - 5], [x1, y1 - 5]],
                        bbox=[x0, y0, x1, y1], confidence=0.9)


def _gt(x0, y0, x1, y1, text="a line", handwritten=True) -> dict:
    return {"id": text, "polygon": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]], "text": text,
            "handwritten": handwritten}


def test_x_cover_is_the_overlap_over_the_wider_box():
    assert x_cover([0, 0, 100, 10], [0, 5, 100, 20]) == 1.0
    assert x_cover([0, 0, 100, 10], [50, 0, 100, 10]) == 0.5
    assert x_cover([50, 0, 100, 10], [0, 0, 100, 10]) == 0.5
    assert x_cover([0, 0, 10, 10], [20, 0, 30, 10]) == 0.0


def test_matches_keep_whole_lines_only_and_skip_printed_and_empty_ground_truth():
    gts = [_gt(0, 0, 1000, 50, "first line"), _gt(0, 60, 1000, 110, "second line"),
           _gt(0, 120, 1000, 170, "LETTERHEAD", handwritten=False), _gt(0, 180, 1000, 230, "  ")]
    detected = [_box_line(5, 2, 995, 52),  # the first line, whole
                _box_line(0, 58, 620, 112),  # 62 % of the second line: IoU ≥ 0.5 but its text is cut
                _box_line(0, 120, 1000, 170), _box_line(0, 180, 1000, 230)]
    pairs = matched_lines(detected, gts)
    assert [(d.bbox, g["text"]) for d, g in pairs] == [([5, 2, 995, 52], "first line")]
    # a looser cover admits the cut line
    assert len(matched_lines(detected, gts, min_x_cover=0.6)) == 2


def test_reads_pages_jsonl_like_the_index(tmp_path):
    (page,) = read_pages_index(PAGES)
    split = tmp_path / "split"
    (split / "pages").mkdir(parents=True)
    row = {"image": str(Path(page["image"])), "source": page["source"],
           "lines": [{k: ln[k] for k in ("id", "text", "handwritten", "polygon", "baseline")} for ln in page["lines"]]}
    (split / "pages" / "pages.jsonl").write_text(json.dumps(row) + "\n\n")
    (got,) = read_pages(split / "pages" / "pages.jsonl")
    assert got["image"] == page["image"]  # absolute paths stay as they are
    assert got["lines"] == page["lines"]
    (split / "pages" / "pages.jsonl").write_text(json.dumps(row) + "\n" + json.dumps({"image": "x.jpg"}) + "\n")
    with pytest.raises(ValueError, match=r"pages.jsonl:2: malformed page record"):
        read_pages(split / "pages" / "pages.jsonl")


@pytest.mark.skipif(not (DEFAULT_PATH.exists() and RECOGNIZER_PATH.exists()), reason="shipped artifacts missing")
def test_packs_the_detected_lines_of_a_real_page_with_their_ground_truth(tmp_path):
    detector = LineDetector.load()
    (page,) = read_pages_index(PAGES)
    gt_text = {ln["id"]: ln["text"] for ln in page["lines"]}
    counts = pack_page_crops(PAGES, tmp_path / "detected", 48, detector, source_suffix="@pages")
    assert counts["pages"] == 1 and counts["ground_truth"] == 8
    assert counts["packed"] >= 7  # measured: 8
    pack = LinePack(tmp_path / "detected")
    assert len(pack) == counts["packed"]
    assert {r["source"] for r in pack.records} == {"copiste_dun_jour_fr@pages"}
    assert all(r["text"] == gt_text[r["id"]] for r in pack.records)
    assert all(pack[i].shape == (48, r["width"]) for i, r in enumerate(pack.records))
    # the crops are the lines the text belongs to: the shipped recognizer reads them
    rec = Recognizer.load()
    preds = rec.recognize([pack[i] for i in range(len(pack))])
    refs = " ".join(r["text"] for r in pack.records)
    assert cer(refs, " ".join(p.text for p in preds)) < 0.3  # measured 0.167 (20261130-cpu5-pc, greedy; cpu3 0.176)

    gt_counts = pack_page_crops(PAGES, tmp_path / "gt", 48, detector, ground_truth_polygons=True)
    assert gt_counts["packed"] == 8

    # the same lines cut along the band around their baselines (the pipeline's second cut): same
    # records, other images
    band = pack_page_crops(PAGES, tmp_path / "band", 48, detector, cut="band")
    assert band["packed"] == counts["packed"]
    band_pack = LinePack(tmp_path / "band")
    assert [r["id"] for r in band_pack.records] == [r["id"] for r in pack.records]
    assert any(band_pack[i].shape != pack[i].shape or (band_pack[i] != pack[i]).any() for i in range(len(pack)))
    band_preds = rec.recognize([band_pack[i] for i in range(len(band_pack))])
    assert cer(refs, " ".join(p.text for p in band_preds)) < 0.3
    with pytest.raises(ValueError, match="cut must be"):
        pack_page_crops(PAGES, tmp_path / "x", 48, detector, cut="box")


def test_training_scores_several_dev_packs_as_one(tmp_path):
    pack_lines(LINES, tmp_path / "train", 32)
    pack_page_crops(PAGES, tmp_path / "dev_pages", 32, ground_truth_polygons=True,
                    source_suffix="@pages")
    cfg = {"train_packs": [str(tmp_path / "train")], "height": 32, "channels": [8, 16, 16, 32],
           "lstm_hidden": 32, "batch_size": 4, "eval_every": 2, "synthetic_ratio": 0.0, "workers": 0, "steps": 2}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    out = tmp_path / "run"
    assert train_main(["--config", str(tmp_path / "cfg.json"), "--out", str(out), "--device", "cpu",
                       "--threads", "1", "--dev-pack", str(tmp_path / "train"), str(tmp_path / "dev_pages")]) == 0
    card = Recognizer.load(out / "recognizer.pt").card
    assert {"copiste_dun_jour_fr", "copiste_dun_jour_fr@pages"} <= set(card["dev"])
