"""Training CLI of the line-type classifier (handwritten vs printed, :mod:`ml.linetype`).

    python -m ml.linetype.train --out runs/linetype [--train-packs .gpu_data/rec_train] \\
        [--printed-fonts GLOB ...] [--steps 1500] [--threads 1]

Handwritten examples are the real training lines of the recognizer's line packs (all of
``../shared/data/train``: Hooker, Copiste, CREMMA), sometimes masked along their polygon like the
pipeline's crops and passed through the recognizer's real-line augmentation. Printed examples are
Austen text rendered in printed typefaces (``--printed-fonts``, globs; by default those of Debian's
``fonts-dejavu-core``, ``fonts-freefont-ttf`` and ``fonts-urw-base35``: sans, serif, Courier-like
monospaced, bold, italic), 40 % struck character by character at a typewriter's fixed pitch (mostly
in a monospaced face), with even word spacing, a quarter in capitals (letterheads), and scanning
degradations: uneven ink, blur, noise, paper texture, stroke width, small rotations, ruled lines.
Batches are half and half. Lines wider than ``window`` pixels (after normalisation to 32 px) are
cut to a random window of that width.

Evaluation (``--dev``, default ``../shared/data/dev/lines.jsonl``) scores each dev line crop: the
share of handwritten lines that would be set aside as printed, per source, and the share of the
typed Stanford lines (``handwritten == false``) caught, at the artifact's threshold. Writes
``linetype.pt`` + ``linetype.md`` into ``--out``.
"""
from __future__ import annotations

import argparse
import glob
import json
import logging
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
import torch.nn.functional as F

from ..artifact import code_commit, save_artifact, utc_now, write_card_markdown
from ..recognizer import augment as aug
from ..recognizer.data import LinePack, concat_packs, load_gray, mask_outside, read_lines_jsonl
from ..recognizer.image import collate, normalize_line
from ..recognizer.synth import LineSynthesizer, missing_glyphs
from . import LineTypeClassifier, LineTypeConfig, LineTypeNet

log = logging.getLogger("ml.linetype.train")

#: Printed typefaces of Debian's fonts-dejavu-core, fonts-freefont-ttf and fonts-urw-base35 (the
#: last two bring Courier clones, Nimbus Mono PS and FreeMono: the typewriter faces of letters).
DEFAULT_FONTS = ["/usr/share/fonts/truetype/dejavu/*.ttf", "/usr/share/fonts/truetype/freefont/*.ttf",
                 "/usr/share/fonts/opentype/urw-base35/*.otf"]
#: Left out: a calligraphic script face (Zapf Chancery) reads as handwriting.
EXCLUDED_FONTS = ("Z003",)
#: Printable characters the printed renderer draws (text outside it is dropped).
CHARSET = "".join(chr(c) for c in range(32, 127)) + "£€«»“”‘’—–àâäáéèêëîïíôöóùûüúçñÿÀÂÄÁÉÈÊËÎÏÍÔÖÓÙÛÜÚÇÑ"


def uneven_ink(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ink that varies along the line, as typewriter strikes and worn type leave it: the darkness
    of each column is scaled by a smooth random gain (about one value per character width)."""
    h, w = img.shape
    k = max(2, w // max(4, h // 2))
    gain = cv2.resize(rng.uniform(0.35, 1.0, (1, k)).astype(np.float32), (w, 1), interpolation=cv2.INTER_LINEAR)
    ink = (255.0 - img.astype(np.float32)) * gain
    return np.clip(255.0 - ink, 0, 255).astype(np.uint8)


def render_typewriter(text: str, font_path: str, rng: np.random.Generator) -> np.ndarray:
    """``text`` typed: each character drawn at a fixed pitch (0.55–0.7 of the font size), shifted
    up or down by up to 4 % of the size and struck with its own ink level, as a typewriter's
    type bars leave it. Returns (h, w) uint8, dark ink on white."""
    size = int(rng.integers(28, 48))
    font = ImageFont.truetype(font_path, size)
    pitch = size * rng.uniform(0.55, 0.7)
    ascent, descent = font.getmetrics()
    h = ascent + descent + size // 2
    img = Image.new("L", (int(pitch * (len(text) + 2)), h), 255)
    draw = ImageDraw.Draw(img)
    for k, ch in enumerate(text):
        if ch == " ":
            continue
        x = pitch * (k + 1) + (pitch - font.getlength(ch)) / 2
        draw.text((x, size * 0.25 + rng.uniform(-0.04, 0.04) * size), ch, font=font,
                  fill=int(rng.uniform(0, 110)))
    return np.asarray(img)


def paper_of(real: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The paper of a real scanned line (its ink removed by a grey-level closing: a max filter wider
    than a stroke, then smoothed), resized to ``shape`` (h, w): uint8."""
    k = max(3, real.shape[0] // 6) | 1
    bg = cv2.GaussianBlur(cv2.dilate(real, np.ones((k, k), np.uint8)), (0, 0), k / 2)
    return cv2.resize(bg, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def augment_printed(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scanning and printing degradations for a rendered printed line ((h, w) uint8 → (h, w') uint8):
    no shear, wobble or elastic distortion, which would make type look written."""
    if rng.random() < 0.5:
        img = uneven_ink(img, rng)
    if rng.random() < 0.3:
        img = aug.rotate(img, rng, 1.0)
    if rng.random() < 0.4:
        img = aug.stroke_width(img, rng)
    if rng.random() < 0.3:
        img = aug.stretch(img, rng, 0.85, 1.2)
    if rng.random() < 0.5:
        img = aug.vertical_margin(img, rng, 0.15)
    if rng.random() < 0.2:
        img = aug.ruled_line(img, rng)
    if rng.random() < 0.5:
        img = aug.paper_texture(img, rng)
    if rng.random() < 0.8:
        img = aug.photometric(img, rng)
    return img


def printed_fonts(patterns: list[str]) -> list[dict]:
    """Font files matching any of ``patterns`` (globs) that draw basic Latin, except
    ``EXCLUDED_FONTS``, as ``[{"path", "missing"}]``. Raises FileNotFoundError when none does."""
    fonts = []
    paths = sorted({p for pattern in patterns for p in glob.glob(pattern)})
    for path in paths:
        if any(x in Path(path).name for x in EXCLUDED_FONTS):
            continue
        missing = missing_glyphs(path, CHARSET)
        if not missing & set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"):
            fonts.append({"path": path, "missing": missing})
    if not fonts:
        raise FileNotFoundError(f"no printed typefaces match {patterns} (Debian: apt-get install "
                                f"fonts-dejavu-core fonts-freefont-ttf fonts-urw-base35)")
    return fonts


class Examples:
    """Endless half-and-half batches: handwritten lines (label 0) and rendered printed ones (1).

    Handwritten lines are real ones, and a share ``synthetic_handwriting`` rendered from
    handwriting fonts, so that "rendered" is not what tells printed from handwritten; most
    rendered lines (printed or not) are laid on the paper of a real scanned line (:func:`paper_of`)
    so that "scanned" is not either.
    """

    def __init__(self, pack: LinePack, printed: LineSynthesizer, height: int, window: int, seed: int,
                 handwriting: LineSynthesizer | None = None, synthetic_handwriting: float = 0.3):
        self.pack, self.printed, self.height, self.window = pack, printed, height, window
        self.handwriting, self.synthetic_handwriting = handwriting, synthetic_handwriting
        self.rng = np.random.default_rng(seed)

    def _on_real_paper(self, img: np.ndarray) -> np.ndarray:
        if self.rng.random() < 0.3:
            return img
        bg = paper_of(self.pack[int(self.rng.integers(len(self.pack)))], img.shape)
        return (img.astype(np.float32) * bg.astype(np.float32) / 255.0).astype(np.uint8)

    def _cut(self, x: np.ndarray) -> np.ndarray:
        if x.shape[1] <= self.window:
            return x
        a = int(self.rng.integers(0, x.shape[1] - self.window + 1))
        return x[:, a: a + self.window]

    def handwritten(self) -> np.ndarray:
        if self.handwriting is not None and self.rng.random() < self.synthetic_handwriting:
            img, _ = self.handwriting.render(self.rng)
            return self._cut(normalize_line(self._on_real_paper(self._margins(img)), self.height))
        i = int(self.rng.integers(len(self.pack)))
        img, poly = self.pack[i], self.pack.records[i].get("polygon")
        if poly and self.rng.random() < 0.5:
            img = mask_outside(img, poly, self.rng)
        if self.rng.random() < 0.5:
            img = aug.augment_real(img, self.rng)
        return self._cut(normalize_line(img, self.height))

    def printed_line(self) -> np.ndarray:
        text = self.printed.sample_text(self.rng)
        if self.rng.random() < 0.25:
            text = text.upper()
        if self.rng.random() < 0.4:  # typewritten: mostly in a monospaced (Courier-like) face
            mono = [f for f in self.printed.fonts if "Mono" in Path(f["path"]).name]
            font, text = self.printed.pick_font(self.rng, text, mono if mono and self.rng.random() < 0.7 else None)
            img = augment_printed(render_typewriter(text, font["path"], self.rng), self.rng)
        else:
            img, _ = self.printed.render(self.rng, text)
        if self.rng.random() < 0.5:  # like a detector crop: the neighbouring lines' edges above and below
            img = self._with_neighbours(img)
        return self._cut(normalize_line(self._on_real_paper(self._margins(img)), self.height))

    def _margins(self, img: np.ndarray) -> np.ndarray:
        """Paper above and below (up to half the line's height each), as line crops have it."""
        return aug.vertical_margin(img, self.rng, 0.5, min_frac=0.0)

    def _with_neighbours(self, img: np.ndarray) -> np.ndarray:
        h, w = img.shape
        parts = [img]
        for side in (0, 1):
            if self.rng.random() < 0.6:
                other, _ = self.printed.render(self.rng)
                k = max(1, int(other.shape[0] * self.rng.uniform(0.1, 0.35)))
                strip = other[-k:] if side == 0 else other[:k]
                strip = np.pad(strip[:, :w], ((0, 0), (0, max(0, w - strip.shape[1]))), constant_values=int(np.percentile(img, 90)))
                gap = np.full((int(self.rng.integers(0, max(1, h // 4))), w), int(np.percentile(img, 90)), np.uint8)
                parts = [strip, gap, *parts] if side == 0 else [*parts, gap, strip]
        return np.vstack(parts)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(images (B, 1, H, W) float32, widths (B,) int64, labels (B,) float32 1 = printed)."""
        half = size // 2
        images = [self.handwritten() for _ in range(size - half)] + [self.printed_line() for _ in range(half)]
        labels = np.array([0.0] * (size - half) + [1.0] * half, np.float32)
        x, widths = collate(images)
        return torch.from_numpy(x), torch.from_numpy(widths), torch.from_numpy(labels)


def evaluate_dev(clf: LineTypeClassifier, dev_jsonl: str | Path) -> dict:
    """Printed probabilities of the dev line crops, summarised: per source the share of
    handwritten lines at or above the threshold (``handwritten_flagged``), and the share of typed
    lines caught (``typed_caught``), with counts."""
    recs = read_lines_jsonl(dev_jsonl)
    p = clf.printed_probability([load_gray(r.image) for r in recs])
    out: dict[str, dict] = {}
    for r, pr in zip(recs, p):
        row = out.setdefault(r.source, {"handwritten": 0, "handwritten_flagged": 0, "typed": 0, "typed_caught": 0})
        key = "handwritten" if r.handwritten else "typed"
        row[key] += 1
        row[key + ("_flagged" if r.handwritten else "_caught")] += int(pr >= clf.threshold)
    return {"threshold": clf.threshold, "sources": out,
            "probabilities": {"handwritten": [float(v) for r, v in zip(recs, p) if r.handwritten],
                              "typed": [float(v) for r, v in zip(recs, p) if not r.handwritten]}}


def train(args: argparse.Namespace) -> dict:
    """Train, evaluate on dev, write the artifact; returns the dev summary."""
    torch.manual_seed(args.seed)
    packs = [LinePack(p) for p in args.train_packs]
    pack = concat_packs(*packs)
    fonts = printed_fonts(args.printed_fonts)
    printed = LineSynthesizer(None, args.text_file, CHARSET, fonts=fonts, augment=augment_printed,
                              word_jitter=0.02, spacing=(0.9, 1.3))
    handwriting = LineSynthesizer(args.fonts_dir, args.text_file, CHARSET) if args.synthetic_handwriting > 0 else None
    conf = LineTypeConfig()
    model = LineTypeNet(conf)
    data = Examples(pack, printed, conf.height, args.window, args.seed, handwriting, args.synthetic_handwriting)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-2)
    t0, loss_avg = time.time(), None
    model.train()
    for step in range(1, args.steps + 1):
        for g in opt.param_groups:  # cosine decay
            g["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        x, widths, y = data.batch(args.batch_size)
        loss = F.binary_cross_entropy_with_logits(model(x, widths), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        lv = loss.item()
        loss_avg = lv if loss_avg is None else 0.98 * loss_avg + 0.02 * lv
        if step % 200 == 0:
            log.info("step %d loss %.4f (%.0f s)", step, loss_avg, time.time() - t0)
    seconds = time.time() - t0
    clf = LineTypeClassifier(model, args.threshold, version=args.version or time.strftime("%Y%m%d-%H%M"))
    dev = evaluate_dev(clf, args.dev)
    n_params = sum(p.numel() for p in model.parameters())
    card = {
        "name": "quire-linetype", "version": clf.version, "task": "handwritten (0) vs printed (1) text line",
        "architecture": "4-stage CNN, one score per 8-column strip, mean over the line; see ml/linetype/__init__.py",
        "parameters": n_params, "input_height_px": conf.height, "threshold": args.threshold,
        "training_data": f"handwritten: real lines {args.train_packs} and ({args.synthetic_handwriting:.0%}) lines "
                         f"rendered from {args.fonts_dir}; printed: {args.text_file} rendered in {len(fonts)} "
                         f"typefaces ({', '.join(args.printed_fonts)})",
        "training_steps": args.steps, "batch_size": args.batch_size, "training_seconds": round(seconds, 1),
        "dev": dev["sources"], "code_commit": code_commit(), "date": utc_now(), "command": " ".join(sys.argv),
        "licence": "model weights: CC-BY-SA 4.0 (trained on CC-BY-SA/CC-BY ground truth)",
    }
    out = Path(args.out)
    save_artifact(out / "linetype.pt", kind="linetype", version=clf.version,
                  config={**conf.to_dict(), "threshold": args.threshold}, state_dict=model.state_dict(), card=card)
    write_card_markdown(out / "linetype.md", card, f"Model card: quire-linetype {clf.version}")
    (out / "dev_probabilities.json").write_text(json.dumps(dev["probabilities"]))
    log.info("dev at threshold %.2f: %s", args.threshold, json.dumps(dev["sources"]))
    return dev


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--train-packs", nargs="+", default=[".gpu_data/rec_train"])
    ap.add_argument("--text-file", default="../shared/data/text/austen_lines.txt")
    ap.add_argument("--printed-fonts", nargs="+", default=DEFAULT_FONTS, help="globs of printed typeface files")
    ap.add_argument("--fonts-dir", default="../shared/data/fonts", help="handwriting fonts (manifest.json)")
    ap.add_argument("--synthetic-handwriting", type=float, default=0.3,
                    help="share of handwritten examples rendered from handwriting fonts")
    ap.add_argument("--dev", default="../shared/data/dev/lines.jsonl")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--window", type=int, default=384, help="widest training window, pixels at 32 px height")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--version", default="")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(args.threads)
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
