"""Line crops: cut along the polygon, neighbours masked, straightened along the baseline; the band
around a baseline that stands in for a zig-zag ground-truth polygon."""
import numpy as np
import pytest

from ml.crop import READ_BAND_QUANTILES, baseline_band, crop_band, crop_bands, crop_line


def _page():
    page = np.full((200, 300), 220, np.uint8)
    page[60:80, 20:280] = 30  # the line's ink
    page[30:50, 20:280] = 0  # the line above (its descenders reach into our box)
    page[82:100, 20:280] = 0  # the line below
    return page


def test_crop_masks_neighbours_with_paper():
    page = _page()
    poly = [[15, 55], [285, 55], [285, 81], [15, 81]]
    c = crop_line(page, poly, [[20, 80], [280, 80]], pad=2)
    assert c.dtype == np.uint8 and c.ndim == 2
    # box with pad spans y 53..84, which overlaps the line below; those rows must be paper, not ink 0
    assert (c == 0).sum() == 0
    assert (c == 30).sum() >= 20 * 250
    assert c.max() == 220


def test_crop_straightens_curved_baseline():
    page = np.full((200, 300), 255, np.uint8)
    xs = np.arange(20, 280)
    ys = (100 + 20 * np.sin((xs - 20) / 260 * np.pi)).astype(int)  # an arc, 20 px deep
    for x, y in zip(xs, ys):
        page[y - 10:y, x] = 0
    base = [[int(x), int(y)] for x, y in zip(xs[::10], ys[::10])] + [[279, int(ys[-1])]]
    poly = [[15, 80], [285, 80], [285, 130], [15, 130]]
    c = crop_line(page, poly, base, pad=0)
    ink_rows = np.where((c < 128).any(1))[0]
    # straightened: the 10 px band occupies about 10 rows, not 10 + 20
    assert len(ink_rows) <= 13
    # each column's ink starts on the same row
    tops = [np.argmax(c[:, x] < 128) for x in range(10, c.shape[1] - 10) if (c[:, x] < 128).any()]
    assert max(tops) - min(tops) <= 2


def test_crop_clipped_to_page_and_errors():
    page = np.full((50, 60), 200, np.uint8)
    c = crop_line(page, [[-10, -10], [100, -10], [100, 100], [-10, 100]], [[0, 40], [59, 40]])
    assert c.shape[1] == 60
    with pytest.raises(ValueError):
        crop_line(page, [[0, 0], [10, 0]], [[0, 0], [10, 0]])
    with pytest.raises(ValueError):
        crop_line(page, [[100, 100], [120, 100], [120, 120]], [[100, 110], [120, 110]])
    with pytest.raises(ValueError):
        crop_line(page.astype(np.float32), [[0, 0], [10, 0], [10, 10]], [[0, 5], [10, 5]])


def _zigzag(base_y: float, x0: int = 20, x1: int = 280) -> list[list[float]]:
    """A Hooker-like polygon around a flat baseline at ``base_y``: its top zig-zags between 30 and
    5 px above the baseline, its bottom lies 10 px below except one spike 45 px down (a descender
    that the annotator followed into the line below)."""
    top = [[x, base_y - (30 if (x // 20) % 2 else 5)] for x in range(x0, x1 + 1, 20)]
    bottom = [[x, base_y + (45 if 140 <= x <= 150 else 10)] for x in range(x1, x0 - 1, -5)]
    return top + bottom


def test_band_keeps_typical_extents_and_drops_the_spike():
    band = np.asarray(baseline_band(_zigzag(100), [[20, 100], [280, 100]]))
    assert band.shape == (80, 2)
    upper, lower = band[:40, 1], band[40:, 1]
    assert np.allclose(upper, upper[0]) and np.allclose(lower, lower[0])  # flat baseline, flat band
    assert 70 <= upper[0] <= 76  # the high points of the zig-zag are kept (90th percentile of 5..30 px)
    assert 109 <= lower[0] <= 112  # the spike (under 10 % of the columns) is not
    assert band[:, 0].min() == 20 and band[:, 0].max() == 280


def test_band_follows_a_slanted_baseline_and_reads_cleanly():
    slope = 0.1
    poly = [[x, y + slope * (x - 20)] for x, y in _zigzag(100)]
    base = [[20, 100], [280, 100 + slope * 260]]
    band = np.asarray(baseline_band(poly, base))
    upper = band[:40]
    assert np.allclose(np.diff(upper[:, 1]) / np.diff(upper[:, 0]), slope)
    page = np.full((260, 320), 230, np.uint8)
    for x in range(20, 281):
        y = int(round(100 + slope * (x - 20)))
        page[y - 20:y, x] = 20  # the line's ink
        page[y + 30:y + 50, x] = 0  # the next line, which the spike reaches
    c = crop_line(page, band.tolist(), base, pad=2)
    assert (c == 0).sum() == 0 and (c == 20).sum() > 0  # the next line is out, ours is in, straight
    assert c.shape[0] <= 42  # straightened: the band is 38 px high, its slanted box 64


def test_band_needs_a_polygon_and_a_baseline():
    assert baseline_band([[0, 0], [10, 0]], [[0, 5], [10, 5]]) is None
    assert baseline_band([[0, 0], [10, 0], [10, 10]], [[0, 5]]) is None
    assert baseline_band([[5, 0], [5, 10], [5.4, 5]], [[0, 5], [10, 5]]) is None  # under 2 px wide


def test_bands_at_each_quantile_tighter_ones_lower_and_no_repeats():
    page = np.full((200, 320), 230, np.uint8)
    page[70:100, 20:281] = 20  # the line's ink
    zig = _zigzag(100)
    cuts = crop_bands(page, zig, [[20, 100], [280, 100]], pad=2)
    assert len(cuts) == len(READ_BAND_QUANTILES) == 2
    assert np.array_equal(cuts[0], crop_band(page, zig, [[20, 100], [280, 100]], pad=2))  # the 90th first
    assert cuts[1].shape[0] < cuts[0].shape[0]  # the 75th percentile of 5..30 px above is lower
    # a rectangle has the same extents in every column: one band whatever the quantile
    rect = [[20, 70], [280, 70], [280, 110], [20, 110]]
    assert len(crop_bands(page, rect, [[20, 100], [280, 100]], pad=2)) == 1
    assert crop_bands(page, [[0, 0], [10, 0]], [[0, 5], [10, 5]]) == []  # no band to cut
