"""Property test (Hypothesis) of the line cropping code, `ml.crop.crop_line`: for random page sizes
and contents and random polygons and baselines, degenerate ones included (repeated points,
collinear points, zero-area, partly or wholly off the page, a single baseline point, vertical
baselines), the only exception is the documented ValueError and every output is a non-empty
2-D uint8 array no wider than the page. tests/ml/test_crop.py checks what the crop looks like.

Coordinates stay within a few page sizes of the page: that is all the API lets a corrected
line hold (quire.api.serializers checks that points are non-negative and inside the page) and
all the detector produces.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ml.crop import crop_line

PROPERTY = settings(max_examples=300, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def pages(draw):
    height, width = draw(st.integers(1, 120)), draw(st.integers(1, 160))
    kind = draw(st.sampled_from(["noise", "flat", "black", "white"]))
    if kind == "noise":
        page = np.random.default_rng(draw(st.integers(0, 2**16))).integers(0, 256, (height, width), dtype=np.uint8)
    else:
        page = np.full((height, width), {"flat": draw(st.integers(0, 255)), "black": 0, "white": 255}[kind], np.uint8)
    return page


def coordinate(limit: int):
    return st.one_of(st.integers(-2 * limit, 3 * limit),
                     st.floats(-2.0 * limit, 3.0 * limit, allow_nan=False, allow_infinity=False))


@st.composite
def geometry(draw, page):
    height, width = page.shape
    point = st.tuples(coordinate(width), coordinate(height)).map(list)
    shape = draw(st.sampled_from(["random", "repeated", "collinear", "box"]))
    if shape == "random":
        polygon = draw(st.lists(point, min_size=0, max_size=8))
    elif shape == "repeated":
        polygon = [draw(point)] * draw(st.integers(1, 5))
    elif shape == "collinear":
        (x0, y0), (dx, dy) = draw(point), (draw(st.integers(-20, 20)), draw(st.integers(-20, 20)))
        polygon = [[x0 + k * dx, y0 + k * dy] for k in range(draw(st.integers(3, 6)))]
    else:
        x0, y0 = draw(st.integers(-5, width + 5)), draw(st.integers(-5, height + 5))
        x1, y1 = x0 + draw(st.integers(0, width)), y0 + draw(st.integers(0, height))
        polygon = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
    baseline = draw(st.one_of(
        st.lists(point, min_size=0, max_size=6),
        st.builds(lambda x, y0, y1: [[x, y0], [x, y1]], coordinate(width), coordinate(height), coordinate(height)),
    ))
    return polygon, baseline, draw(st.integers(0, 8))


@st.composite
def cases(draw):
    page = draw(pages())
    return (page, *draw(geometry(page)))


def check(page, polygon, baseline, pad):
    try:
        crop = crop_line(page, polygon, baseline, pad=pad)
    except ValueError:
        return None
    assert isinstance(crop, np.ndarray) and crop.dtype == np.uint8 and crop.ndim == 2
    assert crop.shape[0] >= 1 and 1 <= crop.shape[1] <= page.shape[1]
    assert crop.flags["C_CONTIGUOUS"]
    return crop


@PROPERTY
@given(cases())
@example((np.zeros((1, 1), np.uint8), [[0, 0], [0, 0], [0, 0]], [], 0))
@example((np.full((10, 10), 200, np.uint8), [[0, 0], [9, 0], [9, 9]], [[5, 0], [5, 9]], 4))  # vertical baseline
@example((np.full((10, 10), 200, np.uint8), [[-50, -50], [-40, -50], [-40, -40]], [[3, 3]], 0))  # off the page
def test_crop_line_gives_a_uint8_image_or_a_value_error(case):
    check(*case)


def test_polygons_inside_the_page_always_give_a_crop():
    """The pipeline's polygons lie inside the page and have 3+ points: those never raise."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        height, width = rng.integers(1, 80, size=2)
        page = rng.integers(0, 256, (height, width), dtype=np.uint8)
        polygon = np.stack([rng.integers(0, width, 5), rng.integers(0, height, 5)], 1).tolist()
        baseline = np.stack([rng.integers(0, width, 3), rng.integers(0, height, 3)], 1).tolist()
        assert check(page, polygon, baseline, int(rng.integers(0, 5))) is not None


@pytest.mark.parametrize("polygon,baseline", [
    ([[0, 0], [float("nan"), 1], [2, 2]], [[0, 1], [2, 1]]),
    ([[0, 0], [5, 0], [5, 5]], [[0, float("nan")], [5, 2]]),
    ([[0, 0], [float("inf"), 0], [5, 5]], [[0, 1], [5, 1]]),
    ([[0, 0], [5, 0], [5, 5]], [[0, 1], [5, float("-inf")]]),
])
def test_non_finite_coordinates_break_nothing(polygon, baseline):
    """NaN/inf cannot reach crop_line from the API (integer points only) nor from the detector;
    if they did, the outcome is still a ValueError or a well-formed crop (today: a crop, since the
    box is clipped to the page; noted for ml/ in the report of issue 7)."""
    check(np.full((10, 10), 200, np.uint8), polygon, baseline, 4)


@pytest.mark.parametrize("page", [np.zeros((10, 10), np.float32), np.zeros((10, 10, 3), np.uint8),
                                  np.zeros((10,), np.uint8), [[0, 0], [0, 0]]])
def test_pages_that_are_not_2d_uint8_are_a_value_error(page):
    with pytest.raises(ValueError, match="2-D uint8"):
        crop_line(page, [[0, 0], [5, 0], [5, 5]], [[0, 1], [5, 1]])
