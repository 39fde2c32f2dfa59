"""Line type: is a detected line handwritten or printed (typed, letterpress, engraved)?

    from ml.linetype import LineTypeClassifier
    clf = LineTypeClassifier.load()                  # shipped ml/artifacts/linetype.pt
    p = clf.printed_probability([crop1, crop2])      # (N,) float32 in [0, 1]
    clf.is_printed([crop1, crop2])                   # (N,) bool: p >= clf.threshold

Letters carry printed letterheads, typed bodies and printed forms beside the handwriting; the
detector finds their lines too. Quire reads handwriting, and the ground truth of the archives it
serves leaves printed matter out (Copiste sheets' printed consent paragraph, Stanford letterheads),
so the page pipeline sets printed lines aside (``ml.pipeline``: ``printed_lines="drop"``, the
default) or keeps them marked ``printed``.

The classifier is a small fully convolutional network over the recognizer's normalised line image
(:func:`ml.recognizer.image.normalize_line`, 32 px high): four conv stages reduce each 8-column
strip to a feature vector, a 1×1 head scores each strip, and the line's logit is the mean strip
score over the line's own width (padding excluded), so a line of any width is scored in one pass.
Trained by ``python -m ml.linetype.train`` on real handwritten training lines against lines
rendered in printed typefaces (see that module).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..artifact import ARTIFACTS_DIR, load_artifact
from ..recognizer.image import collate, normalize_line

__all__ = ["LineTypeClassifier", "LineTypeNet", "LineTypeConfig", "DEFAULT_PATH", "STRIP"]

DEFAULT_PATH = ARTIFACTS_DIR / "linetype.pt"
#: Input columns per strip score (the net's horizontal downsampling).
STRIP = 8
#: Widest part of a line scored, in pixels at the input height: a longer line is scored on its
#: middle this wide (the training windows' width; a line's type shows in any stretch of it, and
#: reading whole 3,000-pixel letterhead lines cost 6 ms a line on one CPU thread).
WINDOW = 320


@dataclass
class LineTypeConfig:
    """Hyper-parameters of :class:`LineTypeNet` (saved in the artifact)."""

    height: int = 32
    channels: tuple[int, ...] = (16, 32, 64, 64)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> LineTypeConfig:
        return cls(height=int(d["height"]), channels=tuple(d["channels"]))


class LineTypeNet(nn.Module):
    """Printed-vs-handwritten scorer.

    ``forward(x, widths)``: x (B, 1, H, W) float32 in [0, 1] with ink = 1 (H = ``config.height``),
    widths (B,) int64 each line's own width in pixels → logits (B,) float32, positive = printed.

    =====  ==========================================  ==================
    stage  layers                                      output (C × H × W)
    =====  ==========================================  ==================
    1      conv3×3(16) BN ReLU, maxpool 2×2            16 × 16 × W/2
    2      conv3×3(32) BN ReLU, maxpool 2×2            32 × 8 × W/4
    3      conv3×3(64) BN ReLU, maxpool 2×2            64 × 4 × W/8
    4      conv3×3(64) BN ReLU, mean over height       64 × W/8
    head   conv1×1 → one score per 8-column strip,     1
           mean over the line's strips
    =====  ==========================================  ==================

    About 61 k parameters.
    """

    def __init__(self, config: LineTypeConfig):
        super().__init__()
        self.config = config
        c1, c2, c3, c4 = config.channels

        def conv(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            *conv(1, c1), nn.MaxPool2d(2), *conv(c1, c2), nn.MaxPool2d(2),
            *conv(c2, c3), nn.MaxPool2d(2), *conv(c3, c4),
        )
        self.head = nn.Conv1d(c4, 1, 1)

    def forward(self, x: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
        f = self.features(x).mean(dim=2)  # (B, C, W/8)
        scores = self.head(f)[:, 0]  # (B, W/8)
        n = scores.shape[1]
        # whole strips of the line only (the pooling drops a partial one when the line is alone)
        strips = torch.div(widths, STRIP, rounding_mode="floor").clamp(1, n).to(scores.device)
        mask = (torch.arange(n, device=scores.device)[None, :] < strips[:, None]).to(scores.dtype)
        return (scores * mask).sum(1) / mask.sum(1)


class LineTypeClassifier:
    """A loaded line-type classifier.

    Args:
        model: a :class:`LineTypeNet` (put in eval mode here).
        threshold: printed probability at or above which a line counts as printed.
        version, card: from the artifact.
    """

    def __init__(self, model: LineTypeNet, threshold: float = 0.5, device: str = "cpu",
                 version: str = "unsaved", card: dict | None = None):
        self.device = torch.device(device)
        # channels-last: the convolutions run 1.6x faster on the CPU (measured, one thread)
        self.model = model.to(self.device).eval().to(memory_format=torch.channels_last)
        self.threshold, self.version, self.card = float(threshold), version, card or {}
        self.height = model.config.height

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "cpu") -> LineTypeClassifier:
        """Load an artifact (default: the shipped one). Raises FileNotFoundError or
        :class:`ml.artifact.ArtifactError`."""
        data = load_artifact(path or DEFAULT_PATH, "linetype")
        model = LineTypeNet(LineTypeConfig.from_dict(data["config"]))
        model.load_state_dict(data["state_dict"])
        return cls(model, data["config"].get("threshold", 0.5), device, data["version"], data["card"])

    @property
    def name(self) -> str:
        return f"quire-linetype@{self.version}"

    def printed_probability(self, crops: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """Probability that each line crop ((h, w) uint8 grayscale, dark ink on light paper) is
        printed: (N,) float32 in [0, 1]. Empty crops raise ValueError."""
        return self.printed_probability_normalized([normalize_line(c, self.height) for c in crops], batch_size)

    @torch.inference_mode()
    def printed_probability_normalized(self, images: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """As :meth:`printed_probability`, for lines already through ``normalize_line``; lines
        wider than ``WINDOW`` are scored on their middle ``WINDOW`` columns."""
        images = [_middle(im) for im in images]
        out = np.zeros(len(images), np.float32)
        order = sorted(range(len(images)), key=lambda i: images[i].shape[1])
        for start in range(0, len(order), batch_size):
            idx = order[start: start + batch_size]
            batch, widths = collate([images[i] for i in idx])
            x = torch.from_numpy(batch).to(self.device).contiguous(memory_format=torch.channels_last)
            logits = self.model(x, torch.from_numpy(widths))
            out[idx] = torch.sigmoid(logits).float().cpu().numpy()
        return out

    def is_printed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N,) bool: printed probability at or above ``threshold``."""
        return self.printed_probability(crops) >= self.threshold


def _middle(image: np.ndarray) -> np.ndarray:
    w = image.shape[1]
    if w <= WINDOW:
        return image
    a = (w - WINDOW) // 2
    return image[:, a: a + WINDOW]
