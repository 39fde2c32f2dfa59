"""The line segmentation network: a small U-Net-like fully convolutional net.

Input  (B, 1, H, W) float, ink = 1, paper = 0 (``1 - gray / 255``), H and W multiples of 32.
Output (B, 2, H, W) logits: channel 0 line body (x-height band), channel 1 baseline.

Encoder: a stride-2 stem then four stride-2 stages (feature strides 2, 4, 8, 16, 32; widths
``WIDTHS``), each stage ``conv3x3-BN-ReLU`` × n. Decoder: FPN-style top-down path (1×1 lateral
projection, bilinear ×2 upsampling, sum with the skip, one 3×3 conv) back to stride 2, a 1×1 head,
and bilinear ×2 upsampling of the logits to input size. Summing instead of concatenating keeps the
stride-2 level cheap (it dominates the cost on CPU).

Receptive field (3×3 convs, counted through the encoder): about 400 input px at stride 32, i.e.
several line spacings on a page scaled to a 1024 px long side, so the net sees the neighbouring
lines and the margins it needs to tell lines apart. Parameters: about 0.9 M (``count_params``).
Design after U-Net (Ronneberger et al. 2015) and FPN (Lin et al. 2017); line body + baseline
targets after dhSegment / ARU-Net style baseline detection (Grüning et al. 2019).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

WIDTHS = (16, 32, 64, 96, 128)  # channels at strides 2, 4, 8, 16, 32
DEPTHS = (1, 2, 2, 2, 2)  # 3x3 convs per stage (after the strided one)


def _cbr(cin, cout, stride=1, dilation=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class LineUNet(nn.Module):
    """See module docstring. ``widths``/``depths``: per stage, strides 2..32."""

    def __init__(self, widths=WIDTHS, depths=DEPTHS, n_out: int = 2):
        super().__init__()
        self.widths, self.depths = tuple(widths), tuple(depths)
        stages = []
        cin = 1
        for i, (w, d) in enumerate(zip(widths, depths)):
            layers = [_cbr(cin, w, stride=2)]
            for k in range(d):
                # dilate in the deepest stage to widen the receptive field cheaply
                layers.append(_cbr(w, w, dilation=2 if (i == len(widths) - 1 and k == d - 1) else 1))
            stages.append(nn.Sequential(*layers))
            cin = w
        self.stages = nn.ModuleList(stages)
        dw = widths[0] * 2  # decoder width
        self.lateral = nn.ModuleList([nn.Conv2d(w, dw, 1) for w in widths])
        self.smooth = nn.ModuleList([_cbr(dw, dw) for _ in widths[:-1]])
        self.head = nn.Conv2d(dw, n_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        feats = []
        for st in self.stages:
            x = st(x)
            feats.append(x)
        y = self.lateral[-1](feats[-1])
        for i in range(len(feats) - 2, -1, -1):
            y = F.interpolate(y, size=feats[i].shape[-2:], mode="bilinear", align_corners=False)
            y = self.smooth[i](y + self.lateral[i](feats[i]))
        y = self.head(y)
        return F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
