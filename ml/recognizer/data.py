"""Line datasets: real ground-truth lines (``lines.jsonl`` of ``../shared/data``), line packs,
synthetic lines, and their mixture.

A *line pack* is a compact copy of a ``lines.jsonl`` set at the recognizer's input height, so that
training data can travel (to a GPU machine) and load fast: ``index.jsonl`` (one record per line:
``id, text, source, lang, handwritten, offset, length, width, polygon``) and ``lines.bin`` (the
line images as concatenated WebP files, quality 75). ``polygon`` is the line's ground-truth polygon
in the packed image's pixels, simplified to 1 px (or null), used to mask neighbours' strokes like
the inference crops do.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..crop import BAND_QUANTILE, READ_BAND_QUANTILES, crop_bands
from .augment import REAL_SHEAR, augment_real
from .codec import Codec, nfc
from .image import collate as collate_images
from .image import BLANK_MARGIN, TIGHT_STRETCH, is_loose, is_tight, normalize_line, resize_to_height, stretch_width

log = logging.getLogger(__name__)


@dataclass
class LineRecord:
    """One ground-truth line of a ``lines.jsonl`` file (image path made absolute)."""

    id: str
    image: Path
    text: str
    source: str
    lang: str
    handwritten: bool
    polygon: list | None = None  # page pixels
    baseline: list | None = None  # page pixels
    bbox: list | None = None  # page pixels [x0, y0, x1, y1]
    crop_scale: float | None = None  # crop pixels per page pixel
    page: str | None = None  # the page (image) the line was cut from; lines of one page share a hand


def read_lines_jsonl(path: str | Path) -> list[LineRecord]:
    """Records of a ``lines.jsonl`` file; image paths are resolved against the file's folder.

    Raises FileNotFoundError if the file is missing and ValueError naming the row of a malformed
    record.
    """
    path = Path(path)
    out = []
    with open(path, encoding="utf-8") as f:
        for n, row in enumerate(f, 1):
            if not row.strip():
                continue
            try:
                r = json.loads(row)
                out.append(LineRecord(
                    id=str(r["id"]), image=path.parent / r["image"], text=nfc(r["text"]),
                    source=r.get("source", "unknown"), lang=r.get("lang", ""),
                    handwritten=bool(r.get("handwritten", True)), polygon=r.get("polygon"),
                    baseline=r.get("baseline"), bbox=r.get("bbox"), crop_scale=r.get("crop_scale"),
                    page=None if r.get("page") is None else str(r["page"]),
                ))
            except (KeyError, TypeError, json.JSONDecodeError) as exc:
                raise ValueError(f"{path}:{n}: malformed line record ({exc})") from exc
    return out


def load_gray(path: str | Path) -> np.ndarray:
    """An image file as (h, w) uint8 grayscale."""
    with Image.open(path) as im:
        return np.asarray(im.convert("L"))


def simplify_polygon(polygon: list, tolerance: float = 1.0) -> list[list[int]]:
    """Integer polygon with the points that change its outline by under ``tolerance`` pixels dropped
    (Douglas-Peucker, ``cv2.approxPolyDP``); the input itself, rounded, if fewer than 3 points would
    remain. The datasets' line polygons follow the ink closely (50 points for a short line); at a
    pack's 48 px, 1 px tolerance keeps 54 % of the points and makes the train pack's index 3 MB smaller
    (7.7 → 4.3 MB with compact JSON), which the GPU machine's 64 MiB carry needs."""
    pts = np.round(np.asarray(polygon, dtype=np.float64)).astype(np.int32)
    simple = cv2.approxPolyDP(pts.reshape(-1, 1, 2), tolerance, True).reshape(-1, 2)
    return (simple if len(simple) >= 3 else pts).tolist()


class PackWriter:
    """Writes a line pack into ``out_dir`` (created), one line at a time; use as a context manager.

    ``add(gray, record)`` resizes the (h, w) uint8 line image to ``height`` pixels (aspect kept),
    stores it as WebP at ``quality`` and writes ``record`` (``id, text, source, lang,
    handwritten``) with its ``offset, length, width``; ``polygon`` (in the line image's pixels, or
    None) is scaled along. Raises ValueError if an image cannot be encoded.
    """

    def __init__(self, out_dir: str | Path, height: int, quality: int = 75):
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.height, self.quality, self.count = height, quality, 0
        self._blob = open(out_dir / "lines.bin", "wb")
        self._index = open(out_dir / "index.jsonl", "w", encoding="utf-8")

    def add(self, gray: np.ndarray, record: dict, polygon: list | None = None) -> None:
        img = resize_to_height(gray, self.height)
        scale = img.shape[0] / gray.shape[0]
        ok, buf = cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, self.quality])
        if not ok:
            raise ValueError(f"line {record.get('id')}: could not be encoded")
        offset = self._blob.tell()
        self._blob.write(buf.tobytes())
        poly = None if polygon is None else simplify_polygon([[x * scale, y * scale] for x, y in polygon])
        self._index.write(json.dumps({**record, "offset": offset, "length": len(buf), "width": img.shape[1],
                                      "polygon": poly}, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.count += 1

    def __enter__(self) -> "PackWriter":
        return self

    def __exit__(self, *exc) -> None:
        self._blob.close()
        self._index.close()


def _to_crop(rec: LineRecord, points: list | None) -> list[list[float]] | None:
    """Page-pixel ``points`` of ``rec`` in the pixels of its crop (None without them, a bbox and a crop scale)."""
    if not (points and rec.bbox and rec.crop_scale):
        return None
    x0, y0 = rec.bbox[0], rec.bbox[1]
    return [[(x - x0) * rec.crop_scale, (y - y0) * rec.crop_scale] for x, y in points]


#: How a dataset line is cut: ``box`` reads the record's crop as it is (the bounding box of its
#: polygon, with whatever of the neighbouring lines it holds); ``band`` cuts the crop along
#: :func:`ml.crop.baseline_band` of its ground-truth polygon and baseline, straightened (the crop as
#: it is when the record has no such geometry); ``best`` gives the bands at each of
#: :data:`ml.crop.READ_BAND_QUANTILES` and the box, for the recognizer to keep the most confident
#: reading (:meth:`ml.recognizer.predictor.Recognizer.recognize_candidates`).
CROPS = ("best", "band", "box")


def _bands(rec: LineRecord, gray: np.ndarray, quantiles: tuple[float, ...]) -> list[np.ndarray]:
    """The crop ``gray`` of ``rec`` cut along its baseline bands (:func:`ml.crop.crop_bands`); []
    without the geometry to cut one."""
    polygon, baseline = _to_crop(rec, rec.polygon), _to_crop(rec, rec.baseline)
    return crop_bands(gray, polygon, baseline, pad=2, quantiles=quantiles) if polygon and baseline else []


def line_image(rec: LineRecord, crop: str = "band") -> np.ndarray:
    """The (h, w) uint8 image of a dataset line, cut as ``crop`` (``band``, at
    :data:`ml.crop.BAND_QUANTILE`, or ``box``) says.

    Raises ValueError for another ``crop`` and what :func:`load_gray` raises for a missing or
    unreadable image."""
    if crop not in ("band", "box"):
        raise ValueError(f"unknown crop {crop!r}: expected band or box")
    gray = load_gray(rec.image)
    if crop == "box":
        return gray
    bands = _bands(rec, gray, (BAND_QUANTILE,))
    return bands[0] if bands else gray  # no band to cut: the crop as it is


def line_images(rec: LineRecord, crop: str = "best") -> list[np.ndarray]:
    """The candidate images of a dataset line (:data:`CROPS`): ``best`` → the box, then the bands
    at :data:`ml.crop.READ_BAND_QUANTILES` (just the box when the record has no geometry to cut a
    band with), else [:func:`line_image`]. The box comes first as the pipeline's own crop does
    (the first image is the one a page's slant is chosen on, ``Recognizer.recognize_candidates``)."""
    if crop != "best":
        return [line_image(rec, crop)]
    gray = load_gray(rec.image)
    bands = _bands(rec, gray, READ_BAND_QUANTILES)
    return [gray] + [b for b in bands if not np.array_equal(b, gray)]


def pack_lines(jsonl: str | Path, out_dir: str | Path, height: int, quality: int = 75,
               crop: str = "box") -> int:
    """Write a line pack of ``jsonl`` at ``height`` pixels into ``out_dir``; returns the count.

    ``crop``: how each line is cut (:func:`line_image`); ``box`` lines keep their polygon for the
    training-time masking, ``band`` lines are masked already."""
    with PackWriter(out_dir, height, quality) as w:
        for rec in read_lines_jsonl(jsonl):
            w.add(line_image(rec, crop), {"id": rec.id, "text": rec.text, "source": rec.source,
                                          "lang": rec.lang, "handwritten": rec.handwritten},
                  _to_crop(rec, rec.polygon) if crop == "box" else None)
        return w.count


class LinePack:
    """Random access to a line pack: ``pack[i]`` → (h, w) uint8; ``pack.records[i]`` → dict."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        with open(folder / "index.jsonl", encoding="utf-8") as f:
            self.records = [json.loads(r) for r in f if r.strip()]
        self.blob = np.fromfile(folder / "lines.bin", dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> np.ndarray:
        r = self.records[i]
        return cv2.imdecode(self.blob[r["offset"]: r["offset"] + r["length"]], cv2.IMREAD_GRAYSCALE)


def concat_packs(*packs: LinePack) -> LinePack:
    """One :class:`LinePack` holding the lines of ``packs`` in order (in memory; a pack given twice
    weighs double). Raises ValueError without packs."""
    if not packs:
        raise ValueError("no line packs to concatenate")
    merged = LinePack.__new__(LinePack)
    merged.records, shift = [], 0
    for p in packs:
        merged.records += [dict(r, offset=r["offset"] + shift) for r in p.records]
        shift += len(p.blob)
    merged.blob = np.concatenate([p.blob for p in packs])
    return merged


def mask_outside(img: np.ndarray, polygon: list, rng: np.random.Generator) -> np.ndarray:
    """Paint what lies outside ``polygon`` (dilated by a few pixels) with the paper tone, as the
    inference crops of :mod:`ml.crop` do."""
    mask = np.zeros(img.shape, np.uint8)
    cv2.fillPoly(mask, [np.asarray(polygon, np.int32)], 255)
    k = int(rng.integers(1, 6))
    mask = cv2.dilate(mask, np.ones((2 * k + 1, 2 * k + 1), np.uint8))
    out = img.copy()
    out[mask == 0] = int(np.percentile(img, 90))
    return out


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random generator of one sample: the same (seed, epoch, index) replays the same
    augmentation whichever DataLoader worker draws it."""
    return np.random.default_rng([seed, epoch, index])


class LineDataset(Dataset):
    """Real lines (from a :class:`LinePack`) mixed with synthetic lines.

    Items ``0 .. len(pack) - 1`` are real lines; the next ``n_synthetic`` items are rendered by
    ``synthesizer``. Each item is ``(image (H, w) float32 in [0, 1], target list[int], text)``.

    Args:
        pack: real lines, or None for synthetic only.
        codec: encodes targets (unknown characters are counted in ``codec.unknown``).
        height: model input height in pixels.
        synthesizer: a :class:`ml.recognizer.synth.LineSynthesizer` or None.
        n_synthetic: number of synthetic items per epoch.
        augment: apply :func:`ml.recognizer.augment.augment_real` to real lines.
        mask_prob: probability of masking a real line outside its polygon.
        seed: base seed of the per-sample generators.
        downsample: the model's horizontal downsampling factor (input columns per CTC frame).
        tight_stretch: lines with fewer than ``TIGHT_FRAMES_PER_CHAR`` frames per character of
            their text are stretched horizontally by this factor, as the recognizer reads them
            (default :data:`ml.recognizer.image.TIGHT_STRETCH`); 1.0 leaves them as they are.
        loose_squeeze: lines with more than ``LOOSE_FRAMES_PER_CHAR`` frames per character of
            their text are scaled horizontally by this factor, as the recognizer reads them again
            (:data:`ml.recognizer.image.LOOSE_SQUEEZE`); 1.0 (default) leaves them as they are.
        real_shear: the largest shear factor (horizontal pixels per pixel of height) that
            augmentation applies to real lines (default :data:`ml.recognizer.augment.REAL_SHEAR`).
        hand_variety: probability of each of :func:`ml.recognizer.augment.other_hand`'s steps (another
            pen, other letter widths) on real lines; 0 (default) leaves them out.
    """

    def __init__(self, pack: LinePack | None, codec: Codec, height: int, synthesizer=None,
                 n_synthetic: int = 0, augment: bool = True, mask_prob: float = 0.5, seed: int = 0,
                 downsample: int = 4, tight_stretch: float = TIGHT_STRETCH, loose_squeeze: float = 1.0,
                 real_shear: float = REAL_SHEAR, hand_variety: float = 0.0):
        self.pack, self.codec, self.height = pack, codec, height
        self.downsample, self.tight_stretch, self.loose_squeeze = downsample, tight_stretch, loose_squeeze
        self.synth, self.n_synth = synthesizer, (n_synthetic if synthesizer is not None else 0)
        self.augment, self.mask_prob, self.seed, self.epoch = augment, mask_prob, seed, 0
        self.real_shear, self.hand_variety = real_shear, hand_variety
        self.n_real = len(pack) if pack is not None else 0
        self.targets = [codec.encode(r["text"]) for r in (pack.records if pack else [])]
        if codec.unknown:
            log.warning("characters not in the codec (left out of the targets): %s",
                        dict(codec.unknown.most_common()))

    def __len__(self) -> int:
        return self.n_real + self.n_synth

    def __getitem__(self, i: int):
        rng = sample_rng(self.seed, self.epoch, i)
        if i < self.n_real:
            img = self.pack[i]
            rec = self.pack.records[i]
            if self.augment:
                if rec.get("polygon") and rng.random() < self.mask_prob:
                    img = mask_outside(img, rec["polygon"], rng)
                img = augment_real(img, rng, self.real_shear, self.hand_variety)
            return self._normalized(img, self.targets[i]), self.targets[i], rec["text"]
        img, text = self.synth.render(rng)
        target = self.codec.encode(text)
        return self._normalized(img, target), target, text

    def _normalized(self, img: np.ndarray, target: list[int]) -> np.ndarray:
        x = normalize_line(img, self.height)
        frames = x.shape[1] // self.downsample
        if self.tight_stretch != 1.0 and is_tight(frames, len(target)):
            x = stretch_width(x, self.tight_stretch)
        elif self.loose_squeeze != 1.0 and is_loose(frames, len(target)):
            x = stretch_width(x, self.loose_squeeze)
        return x


def collate_lines(items):
    """Batch of dataset items → (images (B, 1, H, W) float32 with :data:`ml.recognizer.image.BLANK_MARGIN`
    blank columns after the widest line, as the recognizer reads them, widths (B,) int64 pixels,
    targets (sum of target lengths,) int64, target_lengths (B,) int64, texts list[str])."""
    images, targets, texts = zip(*items)
    batch, widths = collate_images(list(images), BLANK_MARGIN)
    flat = [c for t in targets for c in t]
    return (torch.from_numpy(batch), torch.from_numpy(widths), torch.tensor(flat, dtype=torch.int64),
            torch.tensor([len(t) for t in targets], dtype=torch.int64), list(texts))
