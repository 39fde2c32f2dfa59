"""The shipped detector (ml/artifacts/detector.pt) on a committed real page, blank/noise pages and rotations.

The fixture page is a Copiste d'un jour sheet (CC-BY 4.0, BAnQ; tests/fixtures/pages/pages.json) with
its ALTO ground truth: 8 handwritten lines under a printed consent paragraph. Measured with
quire-detector@1.202611300452 and the post-processing defaults: 8 of 8 lines found, no false
positive, IoU of the matches 0.79–0.95; upright orientation confidence 0.945, rotated by 90° 0.71
and 0.82 (quire-detector@1.202611292307: IoU 0.63–0.77, 0.93, 0.72 and 0.80). The bounds below leave a margin (one line missed or one extra line still passes).
"""
from pathlib import Path

import cv2
import numpy as np
import pytest

from ml.detect import DEFAULT_PATH, LineDetector
from ml.detect.metrics import page_counts, prf
from ml.detect.pages import read_pages_index

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pages" / "pages.json"

pytestmark = pytest.mark.skipif(not DEFAULT_PATH.exists(), reason="shipped detector artifact missing")


@pytest.fixture(scope="module")
def detector():
    return LineDetector.load()


@pytest.fixture(scope="module")
def page():
    (p,) = read_pages_index(FIXTURES)
    gray = cv2.imread(p["image"], cv2.IMREAD_GRAYSCALE)
    assert gray is not None, p["image"]
    return gray, p["lines"]


def _scores(lines, gt):
    c = page_counts([ln.polygon for ln in lines], gt)
    return prf(c["tp"], c["fp"], c["fn"])


def test_finds_the_lines_of_the_fixture_page(detector, page):
    gray, gt = page
    res = detector.detect_page(gray)
    s = _scores(res.lines, gt)
    assert s["recall"] >= 0.8 and s["precision"] >= 0.8, s
    assert res.upright
    H, W = gray.shape
    for ln in res.lines:
        assert all(0 <= x < W and 0 <= y < H for x, y in ln.polygon + ln.baseline)
    # reading order: the handwritten lines top to bottom
    ys = [np.mean([p[1] for p in ln.baseline]) for ln in res.lines]
    assert ys == sorted(ys)


def test_blank_page_has_no_lines(detector):
    assert detector.detect(np.full((3300, 2500), 255, np.uint8)) == []
    assert detector.detect(np.full((800, 600), 180, np.uint8)) == []


@pytest.mark.parametrize("kind", ["uniform", "gauss", "salt"])
def test_noise_page_has_almost_no_lines(detector, kind):
    rng = np.random.default_rng(0)
    shape = (2200, 1700)
    if kind == "uniform":
        g = rng.integers(0, 256, shape, dtype=np.uint8)
    elif kind == "gauss":
        g = np.clip(rng.normal(180, 50, shape), 0, 255).astype(np.uint8)
    else:
        g = np.where(rng.random(shape) < 0.02, 0, 255).astype(np.uint8)
    assert len(detector.detect(g)) <= 2


@pytest.mark.parametrize("rot", [cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_90_COUNTERCLOCKWISE])
def test_page_rotated_by_90_degrees_is_flagged(detector, page, rot):
    gray, _ = page
    res = detector.detect_page(cv2.rotate(gray, rot))
    assert not res.upright, res.orientation_confidence


def test_page_upside_down_is_detected_in_its_orientation(detector, page):
    gray, gt = page
    H, W = gray.shape
    gt180 = [dict(g, polygon=[[W - 1 - x, H - 1 - y] for x, y in g["polygon"]]) for g in gt]
    res = detector.detect_page(cv2.rotate(gray, cv2.ROTATE_180))
    s = _scores(res.lines, gt180)
    assert s["recall"] >= 0.8 and s["precision"] >= 0.8, s
