"""Pack what detector training needs from ``../shared/data`` into one compact folder.

    python -m ml.detect.pack --out .gpu_data/detector [--data ../shared/data]

Writes ``OUT/meta.json`` and images:
- ``train/*.jpg``: the 88 train pages (grayscale) downscaled so the long side is ``PACK_LONG``,
  with their line polygons/baselines scaled to the packed image;
- ``dev/*.jpg``: the 10 dev pages likewise, geometry parsed from their PAGE/ALTO XML, with the
  ``handwritten`` flag (typed Stanford lines are not scored);
- ``crops/*.png``: ``N_CROPS`` real train line crops, masked outside their (dilated) polygon, with the
  baseline in crop pixels, for synthetic pages;
- ``fonts/``: a few small handwriting fonts (with their LICENSE.txt) and ``text.txt`` (Austen lines).
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path

import cv2
import numpy as np

from ml.detect.pages import read_pages_index

PACK_LONG = 1024  # long side of packed pages (= the detector's working size)
N_CROPS = 300
N_TEXT = 4000
FONTS = [
    "sue-ellen-francisco", "covered-by-your-grace", "handlee", "gochi-hand", "zeyada", "the-girl-next-door",
    "cedarville-cursive", "delius", "satisfy", "deb-kristi", "schoolbell", "shadows-into-light",
    "la-belle-aurore", "indie-flower", "deb-ecolier-court", "courgette", "neucha", "deb-breip", "dawning-of-a-new-day",
]
MAX_FONT_BYTES = 100_000


def _scale_lines(lines, s):
    out = []
    for ln in lines:
        out.append({
            "polygon": [[round(x * s), round(y * s)] for x, y in ln["polygon"]],
            "baseline": [[round(x * s, 1), round(y * s, 1)] for x, y in ln["baseline"]],
            "handwritten": bool(ln.get("handwritten", True)),
            "scored": bool(ln.get("handwritten", True)) and bool((ln.get("text") or "").strip()),
        })
    return out


def _save_page(gray: np.ndarray, dst: Path) -> float:
    h, w = gray.shape
    s = PACK_LONG / max(h, w)
    small = cv2.resize(gray, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(dst), small, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return s


def pack(data: Path, out: Path, seed: int = 0) -> dict:
    """Build the pack folder; returns the meta dict (also written to ``out/meta.json``)."""
    rng = random.Random(seed)
    if out.exists():
        shutil.rmtree(out)
    for sub in ("train", "dev", "crops", "fonts"):
        (out / sub).mkdir(parents=True)
    meta = {"pack_long": PACK_LONG, "train": [], "dev": [], "crops": [], "fonts": [], "text": "text.txt"}

    for i, raw in enumerate((data / "train/pages/pages.jsonl").read_text().splitlines()):
        r = json.loads(raw)
        gray = cv2.imread(str(data / "train" / r["image"]), cv2.IMREAD_GRAYSCALE)
        name = f"train/{i:03d}.jpg"
        s = _save_page(gray, out / name)
        meta["train"].append({"image": name, "source": r["source"], "lines": _scale_lines(r["lines"], s)})

    for i, p in enumerate(read_pages_index(data / "dev/pages/pages.json")):
        gray = cv2.imread(p["image"], cv2.IMREAD_GRAYSCALE)
        name = f"dev/{i:03d}.jpg"
        s = _save_page(gray, out / name)
        meta["dev"].append({"image": name, "source": p["source"], "orig": p["image"],
                            "orig_size": [gray.shape[1], gray.shape[0]], "lines": _scale_lines(p["lines"], s)})

    recs = [json.loads(x) for x in (data / "train/lines.jsonl").read_text().splitlines()]
    recs = [r for r in recs if r.get("handwritten", True) and len(r["baseline"]) >= 2]
    rng.shuffle(recs)
    for i, r in enumerate(recs[:N_CROPS]):
        img = cv2.imread(str(data / "train" / r["image"]), cv2.IMREAD_GRAYSCALE)
        if img is None:
            continue
        s, (x0, y0) = r["crop_scale"], r["bbox"][:2]
        poly = (np.asarray(r["polygon"], float) - [x0, y0]) * s
        base = (np.asarray(r["baseline"], float) - [x0, y0]) * s
        mask = np.zeros_like(img)
        cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 255)
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
        img = np.where(mask > 0, img, 255).astype(np.uint8)
        name = f"crops/{i:03d}.jpg"
        cv2.imwrite(str(out / name), img, [cv2.IMWRITE_JPEG_QUALITY, 85])
        meta["crops"].append({"image": name, "source": r["source"],
                              "baseline": np.round(base, 1).tolist(),
                              "height": float(np.ptp(poly[:, 1]))})

    for fam in FONTS:
        d = data / "fonts" / fam
        if not d.is_dir():
            continue
        files = sorted(f for f in d.iterdir() if f.suffix.lower() in (".ttf", ".otf")
                       and f.stat().st_size <= MAX_FONT_BYTES and "ext" not in f.name)
        if not files:
            continue
        (out / "fonts" / fam).mkdir()
        shutil.copy(files[0], out / "fonts" / fam / files[0].name)
        if (d / "LICENSE.txt").exists():
            shutil.copy(d / "LICENSE.txt", out / "fonts" / fam / "LICENSE.txt")
        meta["fonts"].append(f"fonts/{fam}/{files[0].name}")

    text = (data / "text/austen_lines.txt").read_text(encoding="utf-8").splitlines()
    rng.shuffle(text)
    (out / "text.txt").write_text("\n".join(text[:N_TEXT]) + "\n", encoding="utf-8")
    (out / "meta.json").write_text(json.dumps(meta))
    return meta


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "../shared/data"))
    ap.add_argument("--out", default=".gpu_data/detector")
    a = ap.parse_args(argv)
    meta = pack(Path(a.data), Path(a.out))
    size = sum(f.stat().st_size for f in Path(a.out).rglob("*") if f.is_file())
    print(f"packed {len(meta['train'])} train pages, {len(meta['dev'])} dev pages, {len(meta['crops'])} crops, "
          f"{len(meta['fonts'])} fonts into {a.out} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
