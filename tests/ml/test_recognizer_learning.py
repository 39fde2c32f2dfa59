"""The recognizer can learn: it overfits a small batch of real lines to their exact transcriptions
(about 500 steps, 30–40 s on one CPU thread)."""
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ml.recognizer.codec import Codec
from ml.recognizer.data import collate_lines, load_gray
from ml.recognizer.image import normalize_line
from ml.recognizer.model import CRNN, RecognizerConfig, widen_cnn, widen_lstm
from ml.recognizer.predictor import Recognizer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _real_lines(n: int):
    rows = [json.loads(r) for r in (FIXTURES / "lines.jsonl").read_text(encoding="utf-8").splitlines() if r.strip()]
    rows = sorted(rows, key=lambda r: len(r["text"]))[:n]
    return [(load_gray(FIXTURES / r["image"]), r["text"]) for r in rows]


def _as_trained(model, codec) -> Recognizer:
    """A Recognizer that reads each line at the one width the model was overfit at: no second
    reading of tight or loose lines (stretched or squeezed, a width it never saw)."""
    rec = Recognizer(model, codec)
    rec.tight_stretch = rec.loose_squeeze = 1.0
    return rec


def test_overfits_one_batch_of_real_lines():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    lines = _real_lines(4)
    texts = [t for _, t in lines]
    codec = Codec.from_texts(texts, base="")
    cfg = RecognizerConfig(num_classes=codec.num_classes, height=48, channels=(16, 32, 48, 64),
                           lstm_hidden=96, dropout=0.0)
    model = CRNN(cfg)
    items = [(normalize_line(img, cfg.height), codec.encode(t), t) for img, t in lines]
    images, widths, targets, target_lengths, _ = collate_lines(items)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(800):
        frames = model.output_lengths(widths)
        # packed, as the Recognizer reads: trained padded, the reading of the shorter lines depended
        # on the thread count (one thread: 'Branne' for 'Branner' at a loss of 0.003)
        log_probs = model(images, frames)
        loss = F.ctc_loss(log_probs, targets, frames, target_lengths, zero_infinity=True)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
        if step % 50 == 49:
            preds = _as_trained(model, codec).recognize_normalized([it[0] for it in items])
            model.train()
            if [p.text for p in preds] == texts:
                break
    preds = _as_trained(model, codec).recognize_normalized([it[0] for it in items])
    assert [p.text for p in preds] == texts, (losses[-1], [p.text for p in preds])
    assert losses[-1] < 0.1 * losses[0]
    assert all(0.5 < p.confidence <= 1.0 for p in preds)
    assert all(len(p.char_confidences) == len(p.text) for p in preds)


def test_a_line_reads_the_same_alone_or_batched_with_a_wider_line():
    """With the lines' frame counts the BiLSTM never sees the padding of a shorter line, and with
    BLANK_MARGIN blank columns after the widest line every line's convolutions see blank paper past
    its end, so all of its log-probabilities, the last frames too, do not depend on what it is
    batched with (without the frame counts, or without the margin, they do)."""
    torch.manual_seed(0)
    model = CRNN(RecognizerConfig(num_classes=12, height=32, channels=(8, 8, 16, 16), lstm_hidden=16)).eval()
    for bn in model.cnn:  # as trained: blank paper (zeros) no longer maps to zero past a batch norm
        if isinstance(bn, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(bn.running_mean, -0.5, 0.5)
            torch.nn.init.uniform_(bn.bias, -0.5, 0.5)
    rng = np.random.default_rng(0)
    short = rng.random((32, 40)).astype(np.float32)
    wide = rng.random((32, 200)).astype(np.float32)
    from ml.recognizer.image import BLANK_MARGIN, collate

    def read(images, margin, packed=True):
        batch, widths = collate(images, margin)
        with torch.no_grad():
            lengths = model.output_lengths(torch.from_numpy(widths)) if packed else None
            return model(torch.from_numpy(batch), lengths)[:10, 0]  # all 10 frames of the short line

    alone, both = read([short], BLANK_MARGIN), read([short, wide], BLANK_MARGIN)
    # equal up to float summation order (the convolutions run on other shapes): measured 2e-7, against
    # 5e-2 when the BiLSTM's backward direction starts in the padding and 4e-3 without the margin
    # (1e-6 with 16 columns: the convolutions reach about 22 px, see BLANK_MARGIN)
    assert (alone - both).abs().max() < 1e-5
    assert (alone - read([short, wide], BLANK_MARGIN, packed=False)).abs().max() > 1e-2
    assert (read([short], 0) - read([short, wide], 0)).abs().max() > 1e-3


def test_widening_the_bilstm_keeps_the_function_and_the_new_units_learn():
    """widen_lstm adds units whose outgoing weights are zero: the log-probabilities are unchanged
    (packed or padded, 3 layers to cover the inter-layer mapping), and one training step gives the
    new units' outgoing weights a gradient, so they do not stay dead."""
    import pytest

    torch.manual_seed(0)
    model = CRNN(RecognizerConfig(num_classes=12, height=32, channels=(8, 8, 16, 16), lstm_hidden=16,
                                  lstm_layers=3)).eval()
    wide = widen_lstm(model, 24).eval()
    assert wide.config.lstm_hidden == 24 and wide.rnn.hidden_size == 24
    x = torch.rand(2, 1, 32, 120)
    lengths = torch.tensor([30, 20])
    with torch.no_grad():
        assert (model(x) - wide(x)).abs().max() < 1e-5
        assert (model(x, lengths) - wide(x, lengths)).abs().max() < 1e-5
    wide.train()
    loss = F.ctc_loss(wide(x, lengths), torch.tensor([[1, 2, 3], [4, 5, 6]]), lengths, torch.tensor([3, 3]))
    loss.backward()
    new_out = torch.cat([wide.head.weight.grad[:, 16:24], wide.head.weight.grad[:, 40:48]], 1)
    assert new_out.abs().sum() > 0
    with pytest.raises(ValueError, match="must exceed"):
        widen_lstm(model, 16)


def test_widening_the_cnn_keeps_the_function_and_the_new_channels_learn():
    """widen_cnn adds channels whose outgoing weights are zero: with trained-looking batch-norm
    statistics the log-probabilities are unchanged, and one training step gives the weights out of
    the new channels (next convolution, BiLSTM input) a gradient, so they do not stay dead."""
    import pytest

    torch.manual_seed(0)
    model = CRNN(RecognizerConfig(num_classes=12, height=32, channels=(8, 8, 16, 16), lstm_hidden=16))
    x = torch.rand(2, 1, 32, 120)
    model.train()
    with torch.no_grad():  # move the running statistics off their defaults
        for _ in range(3):
            model(x)
    model.eval()
    wide = widen_cnn(model, (8, 12, 24, 20)).eval()
    assert wide.config.channels == (8, 12, 24, 20) and wide.rnn.input_size == 20 * 2
    lengths = torch.tensor([30, 20])
    with torch.no_grad():
        assert (model(x, lengths) - wide(x, lengths)).abs().max() < 1e-5
    wide.train()
    loss = F.ctc_loss(wide(x, lengths), torch.tensor([[1, 2, 3], [4, 5, 6]]), lengths, torch.tensor([3, 3]))
    loss.backward()
    assert wide.rnn.weight_ih_l0.grad[:, 32:].abs().sum() > 0  # from the new stage-4 channels
    conv3 = [m for m in wide.cnn if isinstance(m, torch.nn.Conv2d)][2]
    assert conv3.weight.grad[:16, 8:].abs().sum() > 0  # old stage-3 channels from new stage-2 ones
    for bad in [(8, 8, 16, 16), (8, 4, 16, 16), (8, 8, 16)]:
        with pytest.raises(ValueError, match="widen_cnn"):
            widen_cnn(model, bad)


def test_downsampling_two_gives_one_frame_per_two_columns_from_the_same_weights():
    """At downsample 2 the second stage pools the height only: twice the CTC frames, the same
    parameter shapes (so a trained downsample-4 model's weights load into it), and a config
    without the key (artifacts before it existed) builds the downsample-4 network."""
    import pytest

    conf = RecognizerConfig(num_classes=12, height=32, channels=(8, 8, 16, 16), lstm_hidden=16)
    four = CRNN(conf).eval()
    two = CRNN(RecognizerConfig.from_dict({**conf.to_dict(), "downsample": 2})).eval()
    two.load_state_dict(four.state_dict())
    x = torch.rand(2, 1, 32, 120)
    widths = torch.tensor([120, 80])
    with torch.no_grad():
        assert four(x).shape == (30, 2, 12) and two(x).shape == (60, 2, 12)
    assert four.output_lengths(widths).tolist() == [30, 20]
    assert two.output_lengths(widths).tolist() == [60, 40]
    legacy = {k: v for k, v in conf.to_dict().items() if k != "downsample"}
    assert RecognizerConfig.from_dict(legacy).downsample == 4
    with pytest.raises(ValueError, match="downsample must be one of"):
        CRNN(RecognizerConfig(num_classes=12, height=32, downsample=8))
