"""Line crops: cut along the polygon, neighbours masked, straightened along the baseline."""
import numpy as np
import pytest

from ml.crop import crop_line


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
