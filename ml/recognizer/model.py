"""The line recognizer network: CNN feature extractor → 2-layer BiLSTM → linear → CTC.

Architecture (defaults, input height 48):

=====  =======================================  ==================
stage  layers                                   output (C × H × W)
=====  =======================================  ==================
in     line image, ink = 1                      1 × 48 × W
1      conv3×3(16) BN ReLU, maxpool 2×2         16 × 24 × W/2
2      conv3×3(48) BN ReLU, maxpool 2×2         48 × 12 × W/4
3      conv3×3(96) BN ReLU ×2, maxpool 2×1      96 × 6 × W/4
4      conv3×3(128) BN ReLU ×2, maxpool 2×1     128 × 3 × W/4
seq    flatten C×H → 384 per column, dropout    W/4 × 384
rnn    BiLSTM(256) ×2, dropout between          W/4 × 512
out    linear → num_classes (blank = 0)         W/4 × num_classes
=====  =======================================  ==================

Horizontal downsampling factor 4: one CTC frame per 4 input columns, about 3 frames per
character at 48 px line height (median handwritten character ≈ 12 px wide there). Vertical
pooling only after the first two stages keeps horizontal resolution for narrow letters, as in
the CRNN of Shi et al. 2015 ("An End-to-End Trainable Neural Network for Image-based Sequence
Recognition") and kraken's default VGSL specs. About 3.4 M parameters with a 150-class charset.
The first stages are narrow because they run at full resolution: on a 2-core CPU in channels-last
memory layout this net reads about 200 lines/s (32 lines of 48 × 440 px per batch), against 63
lines/s for (32, 64, 96, 128) channels in the default layout.

The shipped model (``ml/configs/recognizer_cpu.json``) is a smaller variant trained on the CPU:
height 32, channels (16, 32, 64, 96), BiLSTM(192) × 2, 1.75 M parameters; one training step on 16
lines takes 0.25 s on one CPU thread against 0.80 s for the default above, which is what let it
see about 20 epochs in a session. At height 32 a median character is about 8 px wide: 2 CTC frames.
The recognizer shipped since 20261130-cpu7-wcnn (now 20261202-cpu14-soup) widens stages 3–4 to 96/128 channels (2.02 M
parameters, :func:`widen_cnn`).

``downsample=2`` (``RecognizerConfig.downsample``) pools the second stage in height only (2 × 1):
one CTC frame per 2 input columns, the same weight shapes, about twice the compute in stages 3–4
and the BiLSTM. Measured with the downsample-4 CPU model on the dev lines: Hooker's median line has
2.0 frames per character (10 % under 1.5), and its lines under 2 frames per character read at 29–41 %
CER against 24 % for the others; CTC needs a frame per character plus one between repeated
letters. The shipped model rebuilt at 2 and fine-tuned 105 minutes read the dev line crops better
(Copiste 11.9 → 11.0 %, Hooker 29.4 → 28.4 %) but the pipeline's crops of detected lines worse, so
it was not shipped (docs/TRAINING.md).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

DOWNSAMPLES = (2, 4)  # horizontal downsampling factors the network can be built with


@dataclass
class RecognizerConfig:
    """Hyper-parameters of :class:`CRNN` (saved in the artifact)."""

    num_classes: int
    height: int = 48
    channels: tuple[int, ...] = (16, 48, 96, 128)
    lstm_hidden: int = 256
    lstm_layers: int = 2
    dropout: float = 0.2
    downsample: int = 4  # horizontal: input columns per CTC frame, 4 or 2 (artifacts before 2026-12 have 4)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RecognizerConfig:
        d = dict(d)
        d["channels"] = tuple(d["channels"])
        return cls(**d)


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class CRNN(nn.Module):
    """CNN-BiLSTM-CTC line recognizer.

    ``forward(x, lengths=None)``: x (B, 1, H, W) float32 in [0, 1] with ink = 1, H =
    ``config.height``, W a multiple of 4 → log-probabilities (T, B, num_classes) float32 with T =
    W / 4, the layout ``torch.nn.functional.ctc_loss`` expects. ``lengths`` (B,) int64: each line's
    own frame count (:meth:`output_lengths` of its width); given, the BiLSTM runs on each line's
    own frames only (a packed sequence), so a line reads the same whatever it is batched with and
    the backward direction does not start in the padding; frames past a line's length are then
    meaningless.
    """

    def __init__(self, config: RecognizerConfig):
        super().__init__()
        if config.height % 16:
            raise ValueError(f"height must be a multiple of 16, got {config.height}")
        if config.downsample not in DOWNSAMPLES:
            raise ValueError(f"downsample must be one of {DOWNSAMPLES}, got {config.downsample}")
        c1, c2, c3, c4 = config.channels
        self.config = config
        pool2 = (2, config.downsample // 2)  # the second stage halves the width only at downsample 4
        self.cnn = nn.Sequential(
            *_conv(1, c1), nn.MaxPool2d(2, 2),
            *_conv(c1, c2), nn.MaxPool2d(pool2, pool2),
            *_conv(c2, c3), *_conv(c3, c3), nn.MaxPool2d((2, 1), (2, 1)),
            *_conv(c3, c4), *_conv(c4, c4), nn.MaxPool2d((2, 1), (2, 1)),
        )
        feat = c4 * (config.height // 16)
        self.dropout = nn.Dropout(config.dropout)
        self.rnn = nn.LSTM(
            feat, config.lstm_hidden, num_layers=config.lstm_layers, bidirectional=True,
            dropout=config.dropout if config.lstm_layers > 1 else 0.0,
        )
        self.head = nn.Linear(2 * config.lstm_hidden, config.num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        f = self.cnn(x)  # (B, C, H/16, W/4)
        b, c, h, w = f.shape
        f = f.permute(3, 0, 1, 2).reshape(w, b, c * h)  # (T, B, C*H)
        f = self.dropout(f)
        if lengths is None:
            f, _ = self.rnn(f)
        else:
            packed = nn.utils.rnn.pack_padded_sequence(f, lengths.clamp(1, w).cpu(), enforce_sorted=False)
            f, _ = nn.utils.rnn.pad_packed_sequence(self.rnn(packed)[0], total_length=w)
        logits = self.head(self.dropout(f))
        return logits.float().log_softmax(-1)

    def output_lengths(self, widths: torch.Tensor) -> torch.Tensor:
        """CTC frames per line for input widths in pixels: ``widths // config.downsample``."""
        return torch.div(widths, self.config.downsample, rounding_mode="floor")


def _rebuilt(model: CRNN, seed: int, **changes) -> tuple[CRNN, dict, dict]:
    """A freshly initialised (seeded) :class:`CRNN` with ``changes`` to ``model``'s config, and the two
    state dicts, for the widening functions to copy the old weights into the new tensors in place."""
    torch.manual_seed(seed)
    new = CRNN(RecognizerConfig.from_dict({**model.config.to_dict(), **changes}))
    return new, model.state_dict(), new.state_dict()


def widen_lstm(model: CRNN, hidden: int, seed: int = 0) -> CRNN:
    """A copy of ``model`` whose BiLSTM has ``hidden`` units per direction instead of
    ``model.config.lstm_hidden``, computing exactly the same function (up to float rounding).

    Each new unit gets PyTorch's default random input and recurrent weights (uniform in
    ±1/sqrt(hidden)), while every weight *from* a new unit (into the old units' gates, into the next
    layer and into the output layer) is zero: the old units and the output ignore the new ones until
    training moves those weights off zero, which the first gradient step does (their gradient is the
    new unit's activation times the error). A function-preserving widening in the spirit of
    Net2WiderNet (Chen, Goodfellow & Shlens 2016, "Net2Net: Accelerating Learning via Knowledge
    Transfer"), with zero outgoing weights instead of replicated units so that no symmetry needs
    breaking. Lets a model trained to its capacity grow without starting over.

    Raises ValueError if ``hidden`` is not larger than the current size.
    """
    old_h = model.config.lstm_hidden
    if hidden <= old_h:
        raise ValueError(f"widen_lstm: new hidden size {hidden} must exceed the current {old_h}")
    new, old_sd, new_sd = _rebuilt(model, seed, lstm_hidden=hidden)
    # positions of the old units' outputs inside a bidirectional layer's output [forward | backward]
    old_cols = torch.cat([torch.arange(old_h), hidden + torch.arange(old_h)])
    # rows of the old units in the stacked gates (i, f, g, o), each block ``hidden`` rows high
    old_rows = torch.cat([g * hidden + torch.arange(old_h) for g in range(4)])
    with torch.no_grad():
        for name, w in new_sd.items():
            src = old_sd[name]
            if not name.startswith(("rnn.", "head.")):
                w.copy_(src)
            elif name.startswith("head.weight"):
                w.zero_()
                w[:, old_cols] = src
            elif name.startswith("head.bias"):
                w.copy_(src)
            elif name.startswith("rnn.bias"):
                w[old_rows] = src
            elif name.startswith("rnn.weight_hh"):
                w[:, old_h:] = 0.0  # nothing flows from the new units ...
                w[old_rows.unsqueeze(1), torch.arange(old_h)] = src
            else:  # rnn.weight_ih_l{k}: layer 0 reads the CNN features, later layers the previous layer
                if name.startswith("rnn.weight_ih_l0"):
                    w[old_rows] = src
                else:
                    new_cols = torch.ones(2 * hidden, dtype=torch.bool)
                    new_cols[old_cols] = False
                    w[:, new_cols] = 0.0  # ... into the next layer either
                    w[old_rows.unsqueeze(1), old_cols] = src
    new.load_state_dict(new_sd)
    return new


def widen_cnn(model: CRNN, channels: tuple[int, ...], seed: int = 0) -> CRNN:
    """A copy of ``model`` whose four convolutional stages have ``channels`` (c1, c2, c3, c4) output
    channels instead of ``model.config.channels``, computing exactly the same function (up to float
    rounding), as :func:`widen_lstm` does for the BiLSTM.

    Each new channel gets PyTorch's default random filters over *all* its input channels and a
    fresh batch norm (weight 1, bias 0, running mean 0, variance 1), while every weight *from* a new
    channel (into the next convolution's old channels, and into the BiLSTM's first layer from the
    new columns of the flattened ``C × H/16`` features) is zero, so the old channels and everything
    after them ignore the new ones until training moves those weights off zero. Measured on one CPU
    thread (16 lines of 32 × 440 px, forward + backward): (16, 32, 64, 96) 0.40 s per step, widened to
    (16, 32, 96, 128) 0.46 s, 1.74 M → 2.01 M parameters.

    Raises ValueError unless every new count is at least the current one and one is larger.
    """
    old_c = tuple(model.config.channels)
    channels = tuple(int(c) for c in channels)
    if len(channels) != len(old_c) or any(n < o for n, o in zip(channels, old_c)) or channels == old_c:
        raise ValueError(f"widen_cnn: channels {channels} must be 4 counts, none below the current {old_c}, "
                         "at least one above")
    new, old_sd, new_sd = _rebuilt(model, seed, channels=list(channels))
    old_feat = old_c[-1] * (model.config.height // 16)  # flattened (C, H) features, channel-major
    with torch.no_grad():
        for name, w in new_sd.items():
            src = old_sd[name]
            if name.startswith("cnn.") and w.dim() == 4:  # conv (out, in, kh, kw)
                o, i = src.shape[:2]
                w[:o] = 0.0  # the old channels read nothing from the new ones ...
                w[:o, :i] = src
            elif name.startswith("cnn.") and w.dim() == 1:  # batch norm of the old channels
                w[: src.shape[0]] = src
            elif name.startswith("rnn.weight_ih_l0"):
                w.zero_()  # ... and neither does the BiLSTM
                w[:, :old_feat] = src
            else:
                w.copy_(src)
    new.load_state_dict(new_sd)
    return new


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
