"""Text line detection on page images.

    from ml.detect import LineDetector
    det = LineDetector.load()               # shipped ml/artifacts/detector.pt
    lines = det.detect(gray)                # gray: uint8 (H, W) page
    lines[0].polygon, .baseline, .bbox, .confidence   # original page pixels, reading order
    page = det.detect_page(gray)            # PageLines: .lines, .orientation_confidence, .upright
    page.upright                            # False: page probably rotated by 90° (or not text)

The page is downscaled so its long side is ``input_long`` (1024) px, padded to a multiple of 32,
run through ``model.LineUNet`` and the body map is turned into lines by ``postprocess``.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from ml.detect.model import LineUNet
from ml.detect.postprocess import ORIENTATION_MIN, DetectedLine, PageLines, analyze_maps

__all__ = ["LineDetector", "DetectedLine", "PageLines", "DEFAULT_PATH", "FORMAT", "ORIENTATION_MIN"]

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "artifacts" / "detector.pt"
FORMAT = "quire-detector/1"
INPUT_LONG = 1024


def prepare(gray: np.ndarray, input_long: int = INPUT_LONG) -> tuple[torch.Tensor, tuple[int, int]]:
    """uint8 (H, W) page → (1, 1, h', w') float tensor (ink = 1) and the unpadded (h, w).

    Long side scaled to ``input_long`` (area interpolation), padded with paper to multiples of 32.
    Raises ``ValueError`` for anything but a non-empty 2-D uint8 array.
    """
    if not isinstance(gray, np.ndarray) or gray.ndim != 2 or gray.dtype != np.uint8 or min(gray.shape) < 1:
        raise ValueError(f"expected a 2-D uint8 grayscale page, got {getattr(gray, 'dtype', type(gray))} "
                         f"{getattr(gray, 'shape', '')}")
    H, W = gray.shape
    s = input_long / max(H, W)
    w, h = max(1, round(W * s)), max(1, round(H * s))
    small = cv2.resize(gray, (w, h), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    ph, pw = (-h) % 32, (-w) % 32
    x = 1.0 - small.astype(np.float32) / 255.0
    x = np.pad(x, ((0, ph), (0, pw)), constant_values=0.0)
    return torch.from_numpy(x)[None, None], (h, w)


class LineDetector:
    """A trained line detector (model + post-processing settings) on one torch device."""

    def __init__(self, model: LineUNet, config: dict, card: dict | None = None, version: str = "0",
                 device: str = "cpu"):
        self.model = model.to(device).eval()
        self.config = config
        self.card = card or {}
        self.version = version
        self.device = device

    @property
    def name(self) -> str:
        return f"quire-detector@{self.version}"

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "cpu") -> "LineDetector":
        """Load a ``detector.pt`` (None = shipped ``ml/artifacts/detector.pt``).

        Raises ``FileNotFoundError`` if missing, ``ValueError`` if it is not a detector artifact.
        """
        path = Path(path) if path is not None else DEFAULT_PATH
        if not path.exists():
            raise FileNotFoundError(f"detector artifact not found: {path}")
        ck = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(ck, dict) or ck.get("format") != FORMAT:
            raise ValueError(f"{path} is not a {FORMAT} artifact")
        cfg = ck["config"]
        model = LineUNet(cfg["widths"], cfg["depths"])
        model.load_state_dict({k: v.float() for k, v in ck["state_dict"].items()})
        return cls(model, cfg, ck.get("card"), ck.get("version", "0"), device)

    @torch.inference_mode()
    def maps(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Body and baseline probability maps and the ink image (1 - gray / 255), each (h, w)
        float32 at the working scale. Raises ``ValueError`` for a bad page (see ``prepare``)."""
        x, (h, w) = prepare(gray, self.config.get("input_long", INPUT_LONG))
        y = torch.sigmoid(self.model(x.to(self.device)).float())[0, :, :h, :w].cpu().numpy()
        return y[0], y[1], x[0, 0, :h, :w].numpy()

    def probabilities(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Body and baseline probability maps (h, w) float32 at the working scale."""
        body, base, _ = self.maps(gray)
        return body, base

    def detect_page(self, gray: np.ndarray) -> PageLines:
        """Lines of a uint8 (H, W) page in reading order, in the page's own pixels, with the
        page's orientation confidence (see ``postprocess.PageLines``).

        Post-processing settings: the module defaults of ``postprocess`` (chosen on the dev
        pages), overridden by the artifact's config ``postprocess`` where it sets any.
        """
        body, base, ink = self.maps(gray)
        pp = self.config.get("postprocess", {})
        return analyze_maps(body, base, (gray.shape[1], gray.shape[0]), ink=ink, **pp)

    def detect(self, gray: np.ndarray) -> list[DetectedLine]:
        """Lines of a uint8 (H, W) page in reading order, in the page's own pixels."""
        return self.detect_page(gray).lines
