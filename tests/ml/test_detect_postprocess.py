"""Post-processing of the detector's maps into lines, on hand-made masks (no model needed)."""
import numpy as np
import pytest

from ml.detect import prepare
from ml.detect.metrics import box_iou, greedy_match, page_counts
from ml.detect.postprocess import ASC, ASC_RANGE, DESC, make_line, maps_to_lines, reading_order
from ml.detect.targets import render_targets


def _band(body, x0, x1, y_base, t, slope=0.0):
    for x in range(x0, x1):
        yb = int(round(y_base + slope * (x - x0)))
        body[yb - t:yb, x] = 1.0


def test_single_band_gives_expected_baseline_polygon_and_bbox():
    body = np.zeros((200, 300), np.float32)
    _band(body, 50, 250, 100, 10)
    lines = maps_to_lines(body, None, (300, 200))
    assert len(lines) == 1
    ln = lines[0]
    base = np.array(ln.baseline)
    # baseline is the band's lower edge, y = 100, from x≈50 to x≈250
    assert np.all(np.abs(base[:, 1] - 100) <= 1)
    assert base[:, 0].min() <= 52 and base[:, 0].max() >= 248
    x0, y0, x1, y1 = ln.bbox
    assert y0 == pytest.approx(90 - ASC * 10, abs=2)
    assert y1 == pytest.approx(100 + DESC * 10, abs=2)
    assert x0 < 50 and x1 > 249
    assert 0.99 <= ln.confidence <= 1.0


def test_scaled_back_to_original_pixels():
    body = np.zeros((100, 150), np.float32)
    _band(body, 25, 125, 50, 5)
    lines = maps_to_lines(body, None, (600, 400))  # original page 4x larger
    base = np.array(lines[0].baseline)
    assert np.all(np.abs(base[:, 1] - 200) <= 4)
    assert base[:, 0].min() == pytest.approx(100, abs=4) and base[:, 0].max() == pytest.approx(500, abs=4)


def test_slanted_band_gives_slanted_baseline():
    body = np.zeros((200, 300), np.float32)
    _band(body, 20, 280, 60, 8, slope=0.2)
    (ln,) = maps_to_lines(body, None, (300, 200))
    base = np.array(ln.baseline)
    fit = np.polyfit(base[:, 0], base[:, 1], 1)
    assert fit[0] == pytest.approx(0.2, abs=0.02)


def test_reading_order_top_to_bottom_then_columns_left_to_right():
    body = np.zeros((300, 400), np.float32)
    # right column drawn first, higher up than the left column's second line
    _band(body, 230, 380, 60, 8)
    _band(body, 230, 380, 120, 8)
    _band(body, 20, 170, 90, 8)
    _band(body, 20, 170, 150, 8)
    _band(body, 20, 170, 210, 8)
    lines = maps_to_lines(body, None, (400, 300))
    assert len(lines) == 5
    starts = [(ln.bbox[0] < 200, int(np.mean([p[1] for p in ln.baseline]))) for ln in lines]
    assert starts == [(True, 90), (True, 150), (True, 210), (False, 60), (False, 120)]
    assert [ln.column for ln in lines] == [0, 0, 0, 1, 1]


def test_polygons_and_boxes_inside_page():
    body = np.zeros((100, 100), np.float32)
    _band(body, 0, 100, 8, 6)  # touches the top and both sides: extensions must be clipped
    _band(body, 0, 100, 99, 6)  # touches the bottom
    lines = maps_to_lines(body, None, (333, 321))
    assert len(lines) == 2
    for ln in lines:
        for x, y in ln.polygon + ln.baseline:
            assert 0 <= x < 333 and 0 <= y < 321
        x0, y0, x1, y1 = ln.bbox
        assert 0 <= x0 < x1 < 333 and 0 <= y0 < y1 < 321


def test_blank_and_noise_maps_give_no_lines():
    assert maps_to_lines(np.zeros((64, 64), np.float32), None, (640, 640)) == []
    rng = np.random.default_rng(0)
    noise = (rng.random((256, 256)) < 0.02).astype(np.float32)  # isolated speckles
    assert maps_to_lines(noise, None, (1000, 1000)) == []
    # low confidence everywhere (probability just above threshold is kept, far below is not)
    assert maps_to_lines(np.full((64, 64), 0.3, np.float32), None, (64, 64)) == []


def test_degenerate_lines_dropped_with_warning():
    with pytest.warns(UserWarning, match="degenerate"):
        assert make_line([[5, 5]], [[5, 5], [6, 5]], 0.9, 100, 100) is None
    with pytest.warns(UserWarning, match="degenerate"):
        assert make_line([[5, 5], [50, 5], [90, 5]], [[5, 5], [90, 5]], 0.9, 100, 100) is None  # zero area
    with pytest.warns(UserWarning, match="degenerate"):
        assert make_line([[5, 5], [8, 5], [8, 30], [5, 30]], [[5, 28], [8, 28]], 0.9, 100, 100) is None  # narrow
    with pytest.warns(UserWarning, match="degenerate"):
        assert make_line([[5, 5], [80, 5], [80, 30]], [[5, 28]], 0.9, 100, 100) is None  # one baseline point
    ok = make_line([[5, 5], [80, 5], [80, 30], [5, 30]], [[5, 28], [80, 28]], 0.9, 100, 100)
    assert ok is not None and ok.bbox == [5, 5, 80, 30]


def test_thin_band_below_page_resolution_dropped_with_warning():
    # a component 2 columns wide in a 50x map of a 100 px page: 4 px in the page, degenerate
    body = np.zeros((50, 50), np.float32)
    body[20:22, 10:40] = 1.0  # wide enough at the map scale...
    with pytest.warns(UserWarning, match="degenerate"):
        assert maps_to_lines(body, None, (10, 100)) == []  # ...but 6 px wide in a 10 px wide page


def test_targets_round_trip_through_postprocess():
    """Body targets rendered from baselines decode back to the same baselines."""
    lines = [{"baseline": [[40, 100 + 40 * i], [560, 104 + 40 * i]],
              "polygon": [[40, 70 + 40 * i], [560, 70 + 40 * i], [560, 110 + 40 * i], [40, 110 + 40 * i]]}
             for i in range(5)]
    t = render_targets((400, 600), lines)
    assert t.shape == (2, 400, 600) and t[1].sum() > 0
    out = maps_to_lines(t[0].astype(np.float32), t[1].astype(np.float32), (600, 400))
    assert len(out) == 5
    for gt, pr in zip(lines, out):
        b = np.array(pr.baseline)
        ys = np.interp(b[:, 0], *np.array(gt["baseline"]).T)
        assert np.abs(b[:, 1] - ys).max() <= 2


def test_metrics_greedy_match_and_unscored():
    assert box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(1 / 3)
    m = greedy_match([[0, 0, 10, 10], [0, 0, 10, 9]], [[0, 0, 10, 10]])
    assert m == [(0, 0, 1.0)]
    gt = [{"polygon": [[0, 0], [100, 0], [100, 20], [0, 20]]},
          {"polygon": [[0, 40], [100, 40], [100, 60], [0, 60]], "scored": False}]
    preds = [[[0, 0], [100, 0], [100, 20], [0, 20]],  # tp
             [[0, 40], [100, 40], [100, 60], [0, 60]],  # matches an unscored line: ignored
             [[0, 500], [100, 500], [100, 520], [0, 520]],  # outside the gt area: ignored
             [[0, 22], [30, 22], [30, 38], [0, 38]],  # between the lines, matched to none: fp
             [[60, 38], [100, 38], [100, 62], [60, 62]]]  # part of the unscored line (IoU < 0.5): ignored
    c = page_counts(preds, gt)
    assert (c["tp"], c["fp"], c["fn"]) == (1, 1, 0)
    assert c["scored_pred"] == [0, 3]  # the predictions whose text page CER scores
    # when that line is scored, the part of it is a false positive
    c = page_counts(preds, [gt[0], dict(gt[1], scored=True)])
    assert (c["tp"], c["fp"], c["fn"]) == (2, 2, 0) and c["scored_pred"] == [0, 1, 3, 4]


def test_prepare_rejects_bad_input_and_pads():
    with pytest.raises(ValueError):
        prepare(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError):
        prepare(np.zeros((10, 10), np.float32))
    x, (h, w) = prepare(np.full((3300, 2500), 255, np.uint8))
    assert (h, w) == (1024, 776) and x.shape[-2] % 32 == 0 and x.shape[-1] % 32 == 0
    assert float(x.max()) == 0.0  # white paper is 0 ink


def test_reading_order_empty():
    assert reading_order([]) == []


def test_collinear_fragments_of_one_line_are_merged():
    body = np.zeros((200, 400), np.float32)
    _band(body, 20, 150, 100, 8)
    _band(body, 162, 380, 101, 8)  # gap 12 px = 1.5 body heights, baseline 1 px lower
    _band(body, 20, 380, 150, 8)  # a second, whole line sets the page's body height too
    lines = maps_to_lines(body, None, (400, 200))
    assert len(lines) == 2
    base = np.array(lines[0].baseline)
    assert base[:, 0].min() <= 22 and base[:, 0].max() >= 378
    # far apart (gap 10 body heights) or a line step apart: two lines
    body = np.zeros((200, 400), np.float32)
    _band(body, 20, 150, 100, 8)
    _band(body, 230, 380, 100, 8)
    _band(body, 160, 380, 125, 8)
    assert len(maps_to_lines(body, None, (400, 200))) == 3


def test_short_fragments_dropped_relative_to_page_line_height():
    body = np.zeros((200, 400), np.float32)
    _band(body, 20, 380, 60, 8)
    _band(body, 20, 380, 120, 8)
    _band(body, 200, 216, 170, 8)  # 2 body heights long: a dot, a loop, a speck
    _band(body, 100, 300, 190, 3)  # a hairline, well under half the page's body height
    lines = maps_to_lines(body, None, (400, 200))
    assert [round(np.mean([p[1] for p in ln.baseline])) for ln in lines] == [60, 120]


def test_faint_ink_lines_dropped_when_page_image_given():
    body = np.zeros((200, 400), np.float32)
    ink = np.zeros((200, 400), np.float32)
    for y, strength in ((60, 0.8), (100, 0.7), (140, 0.15)):  # the third is bleed-through
        _band(body, 20, 380, y, 8)
        ink[y - 8:y, 20:380:3] = strength  # strokes every third column
    assert len(maps_to_lines(body, None, (400, 200))) == 3
    lines = maps_to_lines(body, None, (400, 200), ink=ink)
    assert [round(np.mean([p[1] for p in ln.baseline])) for ln in lines] == [60, 100]
    with pytest.raises(ValueError, match="shape"):
        maps_to_lines(body, None, (400, 200), ink=ink[:10])


def test_fragment_over_bare_paper_does_not_lengthen_the_line_it_would_join():
    """Body probability over paper without ink (a signature's flourish misread, a stain) beside a
    line is dropped before collinear fragments are joined: with the page image the line starts
    where its ink does."""
    body = np.zeros((200, 400), np.float32)
    ink = np.zeros((200, 400), np.float32)
    for y in (60, 120):
        _band(body, 120, 380, y, 8)
        ink[y - 8:y, 120:380:3] = 0.8
    _band(body, 80, 110, 120, 8)  # a fragment 10 px before the second line, no ink under it
    no_ink = maps_to_lines(body, None, (400, 200))
    assert [round(ln.bbox[0]) for ln in no_ink] == [119, 79]  # joined: the line starts at 80
    lines = maps_to_lines(body, None, (400, 200), ink=ink)
    assert [round(ln.bbox[0]) for ln in lines] == [119, 119]


def test_ascenders_and_descenders_fitted_to_each_lines_ink():
    """With the page image, each polygon reaches as far as its own line's ink does (within
    ASC_RANGE / DESC_RANGE), not a fixed multiple of the body height."""
    body = np.zeros((300, 400), np.float32)
    ink = np.zeros((300, 400), np.float32)
    for y in (100, 200):
        _band(body, 20, 380, y, 10)
        ink[y - 10:y, 20:380:3] = 0.9  # x-height strokes
    ink[78:90, 100:110] = 0.9  # line 1: ascenders 12 px (1.2 body heights) above its band
    ink[200:213, 200:210] = 0.9  # line 2: descenders 13 px below its baseline
    lines = maps_to_lines(body, None, (400, 300), ink=ink)
    assert len(lines) == 2
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = lines[0].bbox, lines[1].bbox
    assert 77 <= ay0 <= 81  # the ascenders' reach
    assert ay1 == pytest.approx(100 + ASC_RANGE[0] * 10, abs=1)  # no descenders: the minimum
    assert by0 == pytest.approx(190 - ASC_RANGE[0] * 10, abs=1)  # no ascenders: the minimum
    assert 211 <= by1 <= 214  # the descenders' reach
    # without fitting, the fixed extensions
    fixed = maps_to_lines(body, None, (400, 300), ink=ink, fit_to_ink=False)
    assert fixed[0].bbox[1] == pytest.approx(90 - ASC * 10, abs=2)
    assert fixed[1].bbox[3] == pytest.approx(200 + DESC * 10, abs=2)


def test_fitted_extents_stop_halfway_to_the_neighbouring_line():
    body = np.zeros((200, 400), np.float32)
    ink = np.zeros((200, 400), np.float32)
    for y in (60, 84):  # bands 50–59 and 74–83: 14 px of paper between them
        _band(body, 20, 380, y, 10)
        ink[y - 10:y, 20:380:3] = 0.9
    ink[60:74, 20:380:5] = 0.9  # ink filling the gap between the lines
    upper, lower = maps_to_lines(body, None, (400, 200), ink=ink)
    assert upper.bbox[3] <= 68  # 60 + 7: the upper line's descender zone ends halfway
    assert lower.bbox[1] >= 66  # 74 - 7 (± rounding): the lower line's ascender zone too
