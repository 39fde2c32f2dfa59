"""Property test (Hypothesis): the whole page pipeline (the shipped line detector, crops, a tiny
recognizer artifact) on pages of random size and content, including 1-pixel-thin, tiny, very
long and scaled crops of real handwriting: it returns a result, never raises anything but the
documented PageImageError for a page it refuses, and every polygon, baseline and box lies inside
its page. (tests/ml/test_pipeline.py checks this on the one fixture page with the shipped models.)
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ml.pipeline import PageImageError, PagePipeline


@pytest.fixture(scope="module")
def pipeline(tiny_recognizer):
    return PagePipeline.load(recognizer_path=tiny_recognizer)


@pytest.fixture(scope="module")
def handwriting(handwritten_page) -> np.ndarray:
    with Image.open(handwritten_page["image"]) as image:
        return np.asarray(image.convert("L").resize((image.width // 3, image.height // 3)))


@st.composite
def pages(draw, handwriting):
    kind = draw(st.sampled_from(["noise", "blank", "stripes", "handwriting"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if kind == "handwriting":  # a random window of a real page, resized to a random shape
        h, w = handwriting.shape
        y0, x0 = draw(st.integers(0, h - 40)), draw(st.integers(0, w - 40))
        window = handwriting[y0:y0 + draw(st.integers(40, h - y0)), x0:x0 + draw(st.integers(40, w - x0))]
        size = (draw(st.integers(1, 900)), draw(st.integers(1, 900)))
        return np.asarray(Image.fromarray(window).resize(size))
    height, width = draw(st.integers(1, 700)), draw(st.integers(1, 700))
    if kind == "noise":
        return rng.integers(0, 256, (height, width), dtype=np.uint8)
    page = np.full((height, width), 240, np.uint8)
    if kind == "stripes":
        page[::max(1, height // 8)] = 20
    return page


def test_pipeline_keeps_every_line_inside_its_page(pipeline, handwriting):
    @settings(max_examples=25, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(pages(handwriting))
    def run(gray):
        try:
            result = pipeline.run(gray)
        except PageImageError:
            return
        height, width = gray.shape
        assert (result.width, result.height) == (width, height)
        for line in result.lines:
            x0, y0, x1, y1 = line.bbox
            assert 0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height
            assert len(line.polygon) >= 3
            for x, y in line.polygon + line.baseline:
                assert 0 <= x < width and 0 <= y < height
            assert 0.0 <= line.confidence <= 1.0 and len(line.char_confidences) == len(line.text)

    run()
