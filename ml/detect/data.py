"""Training samples for the line detector: augmented real pages and synthetic pages.

Both kinds go through the same path: a page image at the working scale (long side ~1024 px) with
line geometry → random homography (scale, rotation, shear, slight perspective) that also picks a
``crop``×``crop`` window → targets rendered from the transformed geometry (``targets.py``) →
photometric augmentation (contrast, gamma, blur, noise, ruled lines, stains, paper texture).

A sample is ``(gray (1, C, C) uint8, target (2, C, C) uint8, weight (1, C, C) uint8)`` (``to_float``
turns a batch into ink = 1 - gray/255, float targets and weights);
weight 0 marks pixels not trained on (the printed consent paragraph of Copiste sheets, which the
ground truth does not transcribe, and the padding outside the page).
"""
from __future__ import annotations

import json
import math
import random
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch.utils.data import Dataset

from ml.detect.targets import line_spacing, render_targets


def load_pack(root: str | Path) -> dict:
    """Read ``meta.json`` of a pack folder (``ml.detect.pack``); paths made absolute."""
    root = Path(root)
    meta = json.loads((root / "meta.json").read_text())
    meta["root"] = str(root)
    return meta


def _imread(path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise FileNotFoundError(path)
    return img


def _transform_lines(lines, M):
    out = []
    for ln in lines:
        d = dict(ln)
        for k in ("polygon", "baseline"):
            p = np.asarray(ln[k], np.float64).reshape(-1, 1, 2)
            d[k] = cv2.perspectiveTransform(p, M).reshape(-1, 2)
        out.append(d)
    return out


def _paper_level(img: np.ndarray) -> int:
    return int(np.percentile(img, 75))


# --------------------------------------------------------------------------------------------
# photometric augmentation


def _texture(rng: np.random.Generator, h, w, amp) -> np.ndarray:
    small = rng.normal(0, 1, (max(2, h // 64), max(2, w // 64))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) * amp


def photometric(img: np.ndarray, rng: np.random.Generator, spacing: float) -> np.ndarray:
    """Random contrast/brightness/gamma, ruled lines, stains, blur and noise on uint8 (H, W)."""
    f = img.astype(np.float32)
    h, w = f.shape
    if rng.random() < 0.3:  # ruled lines, roughly one per line spacing
        step = spacing * rng.uniform(0.8, 1.2)
        y = rng.uniform(0, step)
        val = rng.uniform(120, 215)
        th = int(rng.integers(1, 3))
        ang = rng.normal(0, 0.01)
        while y < h:
            cv2.line(f, (0, int(y)), (w - 1, int(y + ang * w)), float(val), th)
            y += step
    if rng.random() < 0.25:  # stains: darker soft blobs
        for _ in range(int(rng.integers(1, 4))):
            m = np.zeros((h, w), np.float32)
            c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            ax = (int(rng.uniform(10, w / 3)), int(rng.uniform(10, h / 3)))
            cv2.ellipse(m, c, ax, rng.uniform(0, 180), 0, 360, 1.0, -1)
            m = cv2.GaussianBlur(m, (0, 0), rng.uniform(3, 20))
            f = f * (1 - m * rng.uniform(0.1, 0.4))
    if rng.random() < 0.5:
        f += _texture(rng, h, w, rng.uniform(2, 15))
    # contrast / brightness / gamma
    lo, hi = rng.uniform(0, 60), rng.uniform(190, 255)
    f = lo + (hi - lo) * np.clip(f / 255.0, 0, 1) ** rng.uniform(0.7, 1.4)
    if rng.random() < 0.3:
        f = cv2.GaussianBlur(f, (0, 0), rng.uniform(0.4, 1.3))
    if rng.random() < 0.5:
        f += rng.normal(0, rng.uniform(2, 12), f.shape).astype(np.float32)
    if rng.random() < 0.1:
        f = 255 - f  # rare: inverted scans / negatives make the net rely on structure, not level
    return np.clip(f, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# synthetic pages


class SynthPages:
    """Compose synthetic pages from real line crops and font-rendered text lines."""

    def __init__(self, meta: dict):
        root = Path(meta["root"])
        self.crops = [(c, root / c["image"]) for c in meta["crops"]]
        self.fonts = [str(root / f) for f in meta["fonts"]]
        self.text = (root / meta["text"]).read_text(encoding="utf-8").splitlines()
        self._crop_cache: dict = {}
        self._font_cache: dict = {}

    def _crop(self, i):
        if i not in self._crop_cache:
            img = _imread(self.crops[i][1]).astype(np.float32)
            inside = img[img < 250]
            bg = np.percentile(inside, 85) if inside.size > 20 else 255.0
            # stretch the crop's own paper to white so no grey box around pasted lines remains
            self._crop_cache[i] = np.clip(img * 255.0 / max(bg, 1.0), 0, 255).astype(np.uint8)
        return self._crop_cache[i]

    def _font(self, path, size):
        key = (path, size)
        if key not in self._font_cache:
            if len(self._font_cache) > 200:
                self._font_cache.clear()
            self._font_cache[key] = ImageFont.truetype(path, size)
        return self._font_cache[key]

    def _font_line(self, rng, xh, max_w):
        """Render text → (ink uint8 patch with white bg, baseline y in patch, width)."""
        path = self.fonts[int(rng.integers(len(self.fonts)))]
        probe = self._font(path, 100)
        bb = probe.getbbox("xoaenu")
        xh100 = max(10, bb[3] - bb[1])
        size = int(np.clip(xh * 100 / xh100, 8, 200))
        font = self._font(path, size)
        text = self.text[int(rng.integers(len(self.text)))]
        if rng.random() < 0.3:
            text = text[: int(rng.integers(3, max(4, len(text))))]
        asc, desc = font.getmetrics()
        w = int(font.getlength(text)) + 4
        img = Image.new("L", (max(8, w), asc + desc + 4), 255)
        ImageDraw.Draw(img).text((2, 2), text, font=font, fill=int(rng.uniform(0, 90)))
        a = np.asarray(img)
        if a.shape[1] > max_w:
            a = a[:, :max_w]
        return a, asc + 2

    def _real_line(self, rng, L, max_w):
        i = int(rng.integers(len(self.crops)))
        c, _ = self.crops[i]
        img = self._crop(i)
        k = L * rng.uniform(0.8, 1.3) / max(4.0, c["height"])
        img = cv2.resize(img, (max(2, int(img.shape[1] * k)), max(2, int(img.shape[0] * k))),
                         interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
        base = np.asarray(c["baseline"], float) * k
        if img.shape[1] > max_w:
            img = img[:, :max_w]
            base = base[base[:, 0] < max_w] if (base[:, 0] < max_w).sum() >= 2 else base
        by = float(np.median(base[:, 1]))
        x0, x1 = max(0.0, base[:, 0].min()), min(img.shape[1] - 1.0, base[:, 0].max())
        return img, by, base, (x0, x1)

    def page(self, rng: np.random.Generator, long_side: int = 1024):
        """→ (gray uint8 (H, W), lines [{polygon, baseline}], ignore mask uint8 or None)."""
        aspect = rng.uniform(0.6, 0.85)
        H, W = (long_side, int(long_side * aspect)) if rng.random() < 0.85 else (int(long_side * aspect), long_side)
        paper = rng.uniform(170, 250)
        page = np.full((H, W), paper, np.float32) + _texture(rng, H, W, rng.uniform(0, 12))
        page = np.clip(page, 0, 255)
        L = float(np.exp(rng.uniform(np.log(14), np.log(70))))
        ncols = 1 if rng.random() < 0.8 else 2
        mx, my = rng.uniform(0.03, 0.15) * W, rng.uniform(0.03, 0.12) * H
        colw = (W - 2 * mx) / ncols
        lines = []
        for col in range(ncols):
            cx0 = mx + col * colw
            y = my + L * rng.uniform(0.8, 3)
            fill_real = rng.random() < 0.6
            while y < H - my:
                if rng.random() < 0.07:  # blank gap
                    y += L * rng.uniform(1, 3)
                    continue
                indent = rng.uniform(0, 0.3) * colw if rng.random() < 0.3 else rng.uniform(0, 0.04) * colw
                max_w = int(colw * rng.uniform(0.85, 1.0) - indent)
                if max_w < 20:
                    break
                use_real = (rng.random() < 0.8) == fill_real
                if use_real:
                    patch, by, base, (bx0, bx1) = self._real_line(rng, L, max_w)
                else:
                    patch, by = self._font_line(rng, L * rng.uniform(0.22, 0.36), max_w)
                    cols = np.where(patch.min(0) < 200)[0]
                    if len(cols) < 2:
                        y += L
                        continue
                    bx0, bx1 = float(cols[0]), float(cols[-1])
                    base = np.array([[bx0, by], [bx1, by]])
                # curvature: vertical sine displacement
                amp = rng.uniform(0, 0.15) * L if rng.random() < 0.4 else 0.0
                per = rng.uniform(1, 4) * max(1, patch.shape[1])
                ph = rng.uniform(0, 2 * np.pi)
                slope = rng.normal(0, 0.015)
                ox, oy = int(cx0 + indent), int(y - by)
                ph_, pw_ = patch.shape
                xs = np.arange(pw_, dtype=np.float32)
                dy = (amp * np.sin(2 * np.pi * xs / per + ph) + slope * xs).astype(np.float32)
                pad = int(abs(dy).max()) + 2
                big = np.full((ph_ + 2 * pad, pw_), 255, np.uint8)
                big[pad:pad + ph_] = patch
                mapx = np.tile(xs, (ph_ + 2 * pad, 1))
                mapy = np.arange(ph_ + 2 * pad, dtype=np.float32)[:, None] - dy[None, :]
                warped = cv2.remap(big, mapx, mapy, cv2.INTER_LINEAR, borderValue=255)
                oy -= pad
                y0, y1 = max(0, oy), min(H, oy + warped.shape[0])
                x0, x1 = max(0, ox), min(W, ox + pw_)
                if y1 <= y0 or x1 <= x0:
                    break
                region = page[y0:y1, x0:x1]
                pw = warped[y0 - oy:y1 - oy, x0 - ox:x1 - ox].astype(np.float32)
                np.minimum(region, pw * (paper / 255.0), out=region)
                bxs = np.linspace(bx0, bx1, max(2, int((bx1 - bx0) / 8)))
                bys = np.interp(bxs, base[:, 0], base[:, 1]) + np.interp(bxs, xs, dy)
                bl = np.stack([bxs + ox, bys + oy + pad], 1)
                top = bl[:, 1].min() - 0.7 * L
                bot = bl[:, 1].max() + 0.3 * L
                poly = [[bl[0, 0], top], [bl[-1, 0], top], [bl[-1, 0], bot], [bl[0, 0], bot]]
                lines.append({"polygon": poly, "baseline": bl.tolist()})
                y += L * rng.uniform(0.9, 1.15)
        if rng.random() < 0.25:  # printed block (typed text counts as lines, as in the Stanford letters)
            self._printed(rng, page, lines, W, H)
        return np.clip(page, 0, 255).astype(np.uint8), lines, None

    def _printed(self, rng, page, lines, W, H):
        scale = rng.uniform(0.35, 0.8)
        thick = 1
        Lp = 40 * scale
        y = rng.uniform(Lp, H * 0.3)
        x = rng.uniform(0.05, 0.3) * W
        font = cv2.FONT_HERSHEY_SIMPLEX if rng.random() < 0.5 else cv2.FONT_HERSHEY_COMPLEX
        for _ in range(int(rng.integers(1, 5))):
            text = self.text[int(rng.integers(len(self.text)))]
            (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
            if x + tw > W:
                text = text[: max(3, int(len(text) * (W - x) / max(tw, 1)) - 1)]
                (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
            # clear the strip first, so the block never overlaps handwriting without labels
            y0, y1 = int(y - 1.2 * th), int(y + 0.6 * th)
            for ln in list(lines):
                b = np.asarray(ln["baseline"])
                if (b[:, 1].max() > y0 - Lp) and (b[:, 1].min() < y1 + Lp):
                    return
            ink = np.full(page.shape, 255, np.uint8)
            cv2.putText(ink, text, (int(x), int(y)), font, scale, int(rng.uniform(0, 80)), thick, cv2.LINE_AA)
            np.minimum(page, ink.astype(np.float32), out=page)
            lines.append({"polygon": [[x, y - th], [x + tw, y - th], [x + tw, y + 0.3 * th], [x, y + 0.3 * th]],
                          "baseline": [[x, y], [x + tw, y]]})
            y += Lp * rng.uniform(1.2, 1.6)


# --------------------------------------------------------------------------------------------


class DetectorDataset(Dataset):
    """Infinite-style dataset: ``length`` random samples mixing real and synthetic pages.

    ``meta``: from ``load_pack``; ``crop``: output side in px (multiple of 32);
    ``p_synth``: share of synthetic pages.
    """

    def __init__(self, meta: dict, crop: int = 512, length: int = 10**7, p_synth: float = 0.4, seed: int = 0):
        self.meta, self.crop, self.length, self.p_synth, self.seed = meta, crop, length, p_synth, seed
        self.root = Path(meta["root"])
        self.pages = meta["train"]
        self.synth = SynthPages(meta) if meta.get("crops") and meta.get("fonts") else None
        self._cache: dict = {}

    def __len__(self):
        return self.length

    def _real(self, rng):
        i = int(rng.integers(len(self.pages)))
        p = self.pages[i]
        if i not in self._cache:
            self._cache[i] = _imread(self.root / p["image"])
        img = self._cache[i]
        lines = p["lines"]
        ignore = None
        if p["source"].startswith("copiste") and lines:
            # printed consent paragraph at the top is not in the ground truth: do not train on it
            top = min(min(q[1] for q in ln["polygon"]) for ln in lines)
            ignore = np.zeros(img.shape, np.uint8)
            ignore[: max(0, int(top - 0.3 * line_spacing(lines)))] = 1
        return img, lines, ignore

    def __getitem__(self, idx):
        rng = np.random.default_rng((self.seed, idx, random.getrandbits(32)))
        if self.synth is not None and rng.random() < self.p_synth:
            try:
                return self.augment(*self.synth.page(rng), rng)
            except Exception as e:  # never let one odd synthetic page stop a training run
                warnings.warn(f"synthetic page failed ({e!r}); using a real page")
        return self.augment(*self._real(rng), rng)

    def augment(self, img, lines, ignore, rng):
        C = self.crop
        h, w = img.shape
        L = line_spacing(lines) if lines else 30.0
        # scale so the line spacing lands in a plausible range at the working scale
        s = float(np.exp(rng.uniform(np.log(0.6), np.log(1.5))))
        s = float(np.clip(s, 10.0 / L, 90.0 / L))
        th = math.radians(rng.normal(0, 2.0)) if rng.random() < 0.8 else math.radians(rng.uniform(-8, 8))
        sh = rng.normal(0, 0.04)
        if lines and rng.random() < 0.85:
            b = np.asarray(lines[int(rng.integers(len(lines)))]["baseline"], float)
            c = b[int(rng.integers(len(b)))] + rng.normal(0, C / (6 * s), 2)
        else:
            c = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        T1 = np.array([[1, 0, -c[0]], [0, 1, -c[1]], [0, 0, 1]])
        A = np.array([[s * math.cos(th), -s * math.sin(th) + sh * s, 0],
                      [s * math.sin(th), s * math.cos(th), 0], [0, 0, 1]])
        P = np.eye(3)
        P[2, :2] = rng.normal(0, 1.5e-4, 2)
        T2 = np.array([[1, 0, C / 2], [0, 1, C / 2], [0, 0, 1]])
        M = T2 @ P @ A @ T1
        paper = _paper_level(img)
        out = cv2.warpPerspective(img, M, (C, C), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                  borderValue=paper)
        valid = cv2.warpPerspective(np.ones_like(img), M, (C, C), flags=cv2.INTER_NEAREST, borderValue=0)
        if rng.random() < 0.5:  # elastic: smooth random displacement field
            amp = rng.uniform(1, 4)
            dx = _texture(rng, C, C, amp)
            dy = _texture(rng, C, C, amp)
            gx, gy = np.meshgrid(np.arange(C, dtype=np.float32), np.arange(C, dtype=np.float32))
            out = cv2.remap(out, gx + dx, gy + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        else:
            dx = dy = None
        tl = _transform_lines(lines, M)
        target = render_targets((C, C), tl)
        if dx is not None:
            # targets follow the inverse displacement only approximately; amp ≤ 4 px so remap them too
            target = np.stack([cv2.remap(t, gx + dx, gy + dy, cv2.INTER_NEAREST) for t in target])
        weight = valid.astype(np.float32)
        if ignore is not None:
            ig = cv2.warpPerspective(ignore, M, (C, C), flags=cv2.INTER_NEAREST, borderValue=0)
            weight[ig > 0] = 0
        out = photometric(out, rng, L * s)
        # uint8 tensors keep loader shared memory small (4 bytes per pixel); ``to_float`` converts
        return (torch.from_numpy(out)[None], torch.from_numpy(target.astype(np.uint8)),
                torch.from_numpy((weight > 0).astype(np.uint8))[None])


def to_float(x, y, w):
    """Batch of uint8 samples → (ink = 1 - gray/255, target {0,1}, weight {0,1}) float32."""
    return 1.0 - x.float() / 255.0, y.float(), w.float()
