"""Line image normalisation shared by training and inference (the recognizer's "stem").

A line crop (8-bit grayscale, dark ink on light paper, any size) becomes a float32 array of the
model's input height, width scaled to keep the aspect ratio, with ink = 1 and paper = 0 after a
robust contrast stretch between the paper level (90th percentile) and the ink level (1st
percentile). Padding a batch with zeros therefore pads with blank paper.
"""
from __future__ import annotations

import cv2
import numpy as np

#: Widths are rounded up to a multiple of this (the model's horizontal downsampling factor).
WIDTH_MULTIPLE = 4
#: Narrowest normalised line, in pixels (CTC needs at least one frame per character).
MIN_WIDTH = 16
#: Widest normalised line, in pixels; longer lines are squeezed horizontally.
MAX_WIDTH = 2400
#: A line read with fewer CTC frames per character than this is written too tight for the model's
#: horizontal resolution (CTC needs a frame per character, plus a blank between repeated letters):
#: the recognizer reads it again stretched (``Recognizer.recognize_normalized``, characters counted
#: on its first reading) and training stretches it the same way (characters of the ground truth).
#: With 20261130-cpu6-pc, median frames per character on the dev lines: Hooker 2.1, Copiste 2.6,
#: Stanford 3.5; 39 % of the 1,343 handwritten dev lines read under 2.2 (swept 2.0–3.0: flat).
TIGHT_FRAMES_PER_CHAR = 2.2
#: Horizontal stretch of the second reading of a tight line. The shipped model read every dev line
#: stretched by 0.85 / 1.0 / 1.2 / 1.4 at 14.5 / 11.4 / 10.7 / 11.2 % CER (Copiste), 32.1 / 28.2 /
#: 27.5 / 29.4 % (Hooker) and 32.5 / 31.6 / 34.3 / 37.9 % (Stanford, large hands): stretching helps
#: the tight lines and hurts the wide ones, hence the second reading of the tight lines only.
TIGHT_STRETCH = 1.2
#: A line read with more CTC frames per character than this is written wide for the model (large
#: hands: median 3.5 frames per character on the Stanford dev lines, 2.1 on Hooker's): the
#: recognizer reads it again squeezed by ``LOOSE_SQUEEZE`` and decodes that reading instead
#: (``Recognizer.recognize_normalized``; training leaves these lines as they are). Measured with
#: 20261201-cpu9b on the 1,343 handwritten dev lines, greedy, box + two bands (Copiste / Hooker /
#: Stanford CER): off 7.65 / 20.35 / 28.35 %; squeezed by 0.85 above 5 / 4.5 / 4 / 3.5 frames per
#: character 7.64 / 20.23 / 27.96, 7.60 / 20.25 / 27.66, 7.57 / 20.25 / 27.39 (52 % of the lines
#: read twice), 7.63 / 20.21 / 27.58 %; by 0.77 above 4: 7.58 / 20.35 / 27.16 %; by 0.7 above 4:
#: 7.71 / 20.40 / 27.66 %.
LOOSE_FRAMES_PER_CHAR = 4.0
#: Horizontal scale of the second reading of a loose line.
LOOSE_SQUEEZE = 0.85
#: Blank (zero) columns :func:`collate` puts after the widest line of a recognizer batch, so that
#: every line of it, the widest too, is followed by at least this much blank paper. The network's
#: convolutions reach 22 px to either side (3×3 at full, half and quarter width: 1 + 2 + 4 × 4, plus
#: the pooling windows), so with 32 a line's posteriors no longer depend on what it is batched with
#: (without it the widest line of a batch ends at the tensor's edge, where the convolutions pad with
#: zeros past every layer rather than with blank paper at the input: the Stanford dev CER moved by up
#: to 0.8 point with the batching alone; docs/TRAINING.md, "Batch-independent reading").
BLANK_MARGIN = 32


def resize_to_height(gray: np.ndarray, height: int, max_width: int = MAX_WIDTH) -> np.ndarray:
    """Resize an (h, w) uint8 image to (height, w') keeping the aspect ratio, w' in
    [MIN_WIDTH, max_width]. Raises ValueError for an empty image."""
    if gray.ndim != 2 or gray.shape[0] == 0 or gray.shape[1] == 0:
        raise ValueError(f"expected a non-empty (h, w) grayscale image, got shape {gray.shape}")
    h, w = gray.shape
    new_w = int(round(w * height / h))
    new_w = min(max(new_w, MIN_WIDTH), max_width)
    interp = cv2.INTER_AREA if h > height else cv2.INTER_LINEAR
    return cv2.resize(gray, (new_w, height), interpolation=interp)


def stretch_contrast(gray: np.ndarray) -> np.ndarray:
    """Map uint8 (h, w) paper-light/ink-dark pixels to float32 ink intensity in [0, 1]."""
    g = gray.astype(np.float32)
    paper = np.percentile(g, 90)
    ink = np.percentile(g, 1)
    span = max(paper - ink, 32.0)  # a blank crop must not turn its noise into ink
    return np.clip((paper - g) / span, 0.0, 1.0)


def normalize_line(gray: np.ndarray, height: int) -> np.ndarray:
    """Full stem: (h, w) uint8 → (height, w') float32 in [0, 1], ink = 1, w' a multiple of
    WIDTH_MULTIPLE."""
    return _pad_to_multiple(stretch_contrast(resize_to_height(gray, height)))


def _pad_to_multiple(x: np.ndarray) -> np.ndarray:
    """(H, W) → (H, W') with blank (zero) columns on the right, W' the next multiple of WIDTH_MULTIPLE."""
    pad = (-x.shape[1]) % WIDTH_MULTIPLE
    return np.pad(x, ((0, 0), (0, pad))) if pad else x


def stretch_width(image: np.ndarray, factor: float, max_width: int = MAX_WIDTH) -> np.ndarray:
    """A normalised line (H, W) float32 stretched horizontally by ``factor`` (linear interpolation),
    its width rounded up to a multiple of WIDTH_MULTIPLE and at most ``max_width``. The height is
    kept. Raises ValueError for a factor that is not positive."""
    if not factor > 0:
        raise ValueError(f"stretch factor must be positive, got {factor}")
    h, w = image.shape
    new_w = min(max(int(round(w * factor)), MIN_WIDTH), max_width)
    return _pad_to_multiple(cv2.resize(image, (new_w, h), interpolation=cv2.INTER_LINEAR))


def shear_line(image: np.ndarray, factor: float, fill: float = 0.0) -> np.ndarray:
    """A line image (H, W), uint8 or float32, sheared horizontally about its middle row: a pixel
    at height y moves by ``factor`` × (y − H/2) pixels (positive: the foot of a stroke moves right
    of its top, so writing that leans right stands up). The canvas is widened by ⌈|factor|·H⌉ + 1
    columns, the line centred in it, so no ink is cut off; new pixels are ``fill`` (0 is blank
    paper for a normalised line). The width is not rounded: pass a normalised line through
    :func:`_pad_to_multiple` (:func:`slant_line` does). ``factor`` 0 returns ``image`` itself."""
    if factor == 0:
        return image
    h, w = image.shape
    pad = int(np.ceil(abs(factor) * h)) + 1
    m = np.float32([[1, factor, pad / 2 - factor * h / 2], [0, 1, 0]])
    return cv2.warpAffine(image, m, (w + pad, h), flags=cv2.INTER_LINEAR, borderValue=fill)


def slant_line(image: np.ndarray, factor: float, max_width: int = MAX_WIDTH) -> np.ndarray:
    """A normalised line (H, W) float32 sheared by ``factor`` (:func:`shear_line`), its width a
    multiple of WIDTH_MULTIPLE, squeezed to ``max_width`` when the shear widens it past that."""
    out = _pad_to_multiple(shear_line(image, factor))
    return stretch_width(out, max_width / out.shape[1]) if out.shape[1] > max_width else out


def is_tight(frames: int, n_chars: int, frames_per_char: float = TIGHT_FRAMES_PER_CHAR) -> bool:
    """Whether a line of ``n_chars`` characters read over ``frames`` CTC frames has fewer than
    ``frames_per_char`` frames per character (False for an empty reading)."""
    return n_chars > 0 and frames < frames_per_char * n_chars


def is_loose(frames: int, n_chars: int, frames_per_char: float = LOOSE_FRAMES_PER_CHAR) -> bool:
    """Whether a line of ``n_chars`` characters read over ``frames`` CTC frames has more than
    ``frames_per_char`` frames per character (False for an empty reading)."""
    return n_chars > 0 and frames > frames_per_char * n_chars


def collate(images: list[np.ndarray], margin: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stack normalised lines of equal height into a (B, 1, H, W_max + margin) float32 batch,
    padded with zeros (blank paper) on the right; also returns the widths (B,) int64 in pixels.
    ``margin`` (a multiple of WIDTH_MULTIPLE; the recognizer's is :data:`BLANK_MARGIN`) adds blank
    columns after the widest line."""
    h = images[0].shape[0]
    widths = np.array([im.shape[1] for im in images], dtype=np.int64)
    batch = np.zeros((len(images), 1, h, int(widths.max()) + margin), dtype=np.float32)
    for i, im in enumerate(images):
        batch[i, 0, :, : im.shape[1]] = im
    return batch, widths
