"""The training CLI end to end on a tiny real pack: checkpoints, artifact with card, resume, seeds."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ml.recognizer.augment import other_hand, pen_nib, rhythm, shear
from ml.recognizer.codec import Codec
from ml.recognizer.data import LineDataset, LinePack, pack_lines, simplify_polygon
from ml.recognizer.image import LOOSE_FRAMES_PER_CHAR, TIGHT_FRAMES_PER_CHAR, normalize_line
from ml.recognizer.predictor import Recognizer
from ml.recognizer.train import BucketBatchSampler, load_config, main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def packs(tmp_path_factory):
    root = tmp_path_factory.mktemp("packs")
    assert pack_lines(FIXTURES / "lines.jsonl", root / "train", 32) == 12
    pack_lines(FIXTURES / "lines.jsonl", root / "dev", 32)
    return root


def _args(packs: Path, out: Path, steps: int) -> list[str]:
    cfg = {"train_packs": [str(packs / "train")], "dev_pack": str(packs / "dev"), "height": 32,
           "channels": [8, 16, 16, 32], "lstm_hidden": 32, "batch_size": 4, "eval_every": 2,
           "synthetic_ratio": 0.0, "workers": 0, "steps": steps}
    (out.parent / "cfg.json").write_text(json.dumps(cfg))
    return ["--config", str(out.parent / "cfg.json"), "--out", str(out), "--device", "cpu", "--threads", "1"]


def test_train_writes_an_artifact_and_resumes(packs, tmp_path):
    out = tmp_path / "run"
    assert main(_args(packs, out, 4)) == 0
    rec = Recognizer.load(out / "recognizer.pt")
    assert rec.card["training_steps"] in (2, 4)
    assert "copiste_dun_jour_fr" in rec.card["dev"]
    assert (out / "recognizer.md").read_text().startswith("# Model card")
    steps = [json.loads(r)["step"] for r in (out / "train_log.jsonl").read_text().splitlines()]
    assert steps == [2, 4]
    assert main(_args(packs, out, 6) + ["--resume"]) == 0
    steps = [json.loads(r)["step"] for r in (out / "train_log.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6]
    # the fp16 artifact reads like the model it came from
    assert all(p.dtype == torch.float32 for p in rec.model.parameters())


def test_fine_tuning_keeps_the_parent_codec_and_architecture(packs, tmp_path):
    parent = tmp_path / "parent"
    main(_args(packs, parent, 2))
    child = tmp_path / "child"
    main(_args(packs, child, 2) + ["--init", str(parent / "recognizer.pt")])
    a, b = Recognizer.load(parent / "recognizer.pt"), Recognizer.load(child / "recognizer.pt")
    assert a.codec.charset == b.codec.charset
    assert a.model.config == b.model.config


def test_fine_tuning_can_widen_the_bilstm_and_cnn_change_dropout_and_downsampling(packs, tmp_path):
    parent = tmp_path / "parent"
    main(_args(packs, parent, 2))
    child = tmp_path / "child"
    main(_args(packs, child, 2) + ["--init", str(parent / "recognizer.pt"), "--widen-lstm", "48",
                                  "--widen-cnn", "8", "16", "24", "40", "--init-dropout", "0.05", "--init-downsample", "2"])
    a, b = Recognizer.load(parent / "recognizer.pt"), Recognizer.load(child / "recognizer.pt")
    assert a.codec.charset == b.codec.charset
    assert (a.model.config.lstm_hidden, b.model.config.lstm_hidden) == (32, 48)
    assert b.model.config.dropout == 0.05
    assert (a.model.config.downsample, b.model.config.downsample) == (4, 2)
    assert b.card["horizontal_downsampling"] == 2
    assert (a.model.config.channels, b.model.config.channels) == ((8, 16, 16, 32), (8, 16, 24, 40))
    for option in (["--widen-lstm", "48"], ["--widen-cnn", "8", "16", "24", "40"], ["--init-downsample", "2"]):
        with pytest.raises(ValueError, match="need --init"):
            main(_args(packs, tmp_path / "fresh", 2) + option)


def test_batches_cover_each_epoch_once_and_replay_with_the_seed():
    widths = list(np.random.default_rng(0).integers(50, 900, 37))
    s = BucketBatchSampler(widths, 45, 4, seed=7)
    e0 = s.epoch_batches(0)
    assert sorted(i for b in e0 for i in b) == list(range(45))
    assert e0 == BucketBatchSampler(widths, 45, 4, seed=7).epoch_batches(0)
    assert e0 != s.epoch_batches(1)
    real = [b for b in e0 if all(i < 37 for i in b)]
    spread = np.mean([max(widths[i] for i in b) - min(widths[i] for i in b) for b in real])
    assert spread < 0.5 * (max(widths) - min(widths))  # batches group similar widths


def test_config_rejects_unknown_keys(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"batchsize": 3}))
    with pytest.raises(ValueError, match="batchsize"):
        load_config(str(p), {})


def test_pack_round_trip(packs):
    pack = LinePack(packs / "train")
    assert len(pack) == 12
    img = pack[0]
    assert img.dtype == np.uint8 and img.shape[0] == 32
    assert pack.records[0]["polygon"] is None or len(pack.records[0]["polygon"]) >= 3


@pytest.mark.parametrize("kind", ["tight", "loose"])
def test_lines_too_tight_or_loose_for_the_model_are_rescaled_in_training(packs, kind):
    """A line with fewer CTC frames per character of its text than TIGHT_FRAMES_PER_CHAR comes out of
    the dataset stretched by tight_stretch, one with more than LOOSE_FRAMES_PER_CHAR scaled by
    loose_squeeze; the others come out as normalize_line makes them. (At downsampling 4 the fixture
    lines have 2.5-7.4 frames per character: counted at 8, some are tight; at 4, some are loose.)"""
    pack = LinePack(packs / "train")
    codec = Codec.from_texts(r["text"] for r in pack.records)
    downsample, factor, arg = {"tight": (8, 1.5, "tight_stretch"), "loose": (4, 0.7, "loose_squeeze")}[kind]
    plain = LineDataset(pack, codec, 32, augment=False, downsample=downsample, tight_stretch=1.0)
    rescaled = LineDataset(pack, codec, 32, augment=False, downsample=downsample,
                           **{"tight_stretch": 1.0, arg: factor})
    n_rescaled = 0
    for i in range(len(pack)):
        x, target, _ = plain[i]
        assert x.shape == normalize_line(pack[i], 32).shape
        y, _, _ = rescaled[i]
        frames = x.shape[1] // downsample
        if (frames < TIGHT_FRAMES_PER_CHAR * len(target) if kind == "tight"
                else frames > LOOSE_FRAMES_PER_CHAR * len(target)):
            n_rescaled += 1
            assert abs(y.shape[1] - factor * x.shape[1]) <= 4
        else:
            assert y.shape == x.shape
    assert 0 < n_rescaled < len(pack), f"the fixture lines should hold {kind} lines and others"


@pytest.mark.parametrize("max_shear", [0.25, 0.4])
def test_shear_slants_a_vertical_stroke_by_at_most_the_bound(max_shear):
    """The augmentation's shear (``real_shear`` in training) moves the top of a vertical stroke
    sideways against its foot by up to ``max_shear`` times the height, both ways, and widens the
    canvas so that no ink is cut off."""
    h, w = 40, 30
    img = np.full((h, w), 255, np.uint8)
    img[:, 14:16] = 0
    offsets = []
    for seed in range(40):
        out = shear(img, np.random.default_rng(seed), max_shear)
        assert out.shape[0] == h and w < out.shape[1] <= w + max_shear * h + 1
        assert (out < 128).sum() >= (img < 128).sum() * 0.9
        top, foot = (float(np.flatnonzero(out[y] < 128).mean()) for y in (0, h - 1))
        offsets.append(foot - top)
    assert max(abs(o) for o in offsets) <= max_shear * h + 1
    assert min(offsets) < -0.5 * max_shear * h and max(offsets) > 0.5 * max_shear * h


def test_simplify_polygon_drops_points_within_the_tolerance_only():
    # a box whose top edge wobbles by half a pixel, and one point 5 px off it that must stay
    top = [[x, 10 + (x % 2) * 0.5] for x in range(0, 101, 5)]
    poly = top + [[100, 40], [50, 45], [0, 40]]
    simple = simplify_polygon(poly)
    assert len(simple) < len(poly) and [50, 45] in simple
    assert all(isinstance(v, int) for pt in simple for v in pt)
    mask_a, mask_b = np.zeros((60, 110), np.uint8), np.zeros((60, 110), np.uint8)
    cv2.fillPoly(mask_a, [np.round(np.array(poly)).astype(np.int32)], 1)
    cv2.fillPoly(mask_b, [np.array(simple, np.int32)], 1)
    assert np.abs(mask_a.astype(int) - mask_b).sum() < 0.02 * mask_a.sum()
    # too few points left: the rounded input comes back
    assert simplify_polygon([[0, 0], [10, 0.2], [20, 0]]) == [[0, 0], [10, 0], [20, 0]]


def test_pen_nib_thickens_strokes_across_its_direction_only():
    """A vertical and a horizontal stroke, one pixel wide: the nib's erosion widens the stroke that
    crosses the nib's direction and leaves the one along it (near 0°: the vertical stroke thickens,
    the horizontal one keeps its thickness), and never removes ink."""
    img = np.full((60, 60), 255, np.uint8)
    img[5:55, 30] = 0  # vertical stroke
    img[45, 5:25] = 0  # horizontal stroke
    widened = []
    for seed in range(60):
        rng = np.random.default_rng(seed)
        out = pen_nib(img, rng, max_len=5)
        assert out.shape == img.shape and out.dtype == np.uint8
        assert (out[img < 128] < 128).all()
        vertical_w = int((out[30, 20:45] < 128).sum())  # row through the vertical stroke only
        horizontal_h = int((out[35:56, 12] < 128).sum())  # column through the horizontal stroke only
        widened.append((vertical_w, horizontal_h))
    assert max(v for v, _ in widened) >= 4 and max(h for _, h in widened) >= 4
    # strokes along the nib stay thin: no draw thickens both by its full length
    assert all(min(v, h) <= 3 for v, h in widened)
    assert any(v >= 3 and h == 1 for v, h in widened)  # a flat nib: thick downstrokes, thin hairlines


def test_rhythm_varies_letter_widths_within_its_bound_and_keeps_the_ink_in_order():
    """Equal strokes every 10 pixels: after :func:`rhythm` the gaps between them vary, each within
    the scale bound, the strokes keep their order and count, and the height is unchanged."""
    h, w = 20, 400
    img = np.full((h, w), 255, np.uint8)
    img[:, 5::10] = 0
    for seed in range(10):
        out = rhythm(img, np.random.default_rng(seed), max_var=0.3)
        assert out.shape[0] == h and 0.7 * w - 1 <= out.shape[1] <= 1.3 * w + 1
        row = out[h // 2] < 160
        starts = np.flatnonzero(row[1:] & ~row[:-1]) + 1
        assert len(starts) in (len(range(5, w, 10)) - 1, len(range(5, w, 10)))
        gaps = np.diff(starts)
        assert gaps.min() >= 10 * 0.7 - 1 and gaps.max() <= 10 * 1.3 + 1
        assert gaps.max() - gaps.min() >= 2  # the widths do vary


def test_other_hand_at_zero_draws_nothing_so_old_recipes_replay():
    """``hand_variety = 0`` (the default) leaves the image and the generator as they were, so a
    training recipe without it augments every line exactly as before it existed."""
    img = (np.random.default_rng(0).random((32, 120)) * 255).astype(np.uint8)
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    assert other_hand(img, a, 0.0) is img
    assert a.random() == b.random()
    changed = [not np.array_equal(other_hand(img, np.random.default_rng(s), 1.0), img) for s in range(5)]
    assert all(changed)
