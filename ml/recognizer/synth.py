"""Synthetic handwritten-looking lines rendered from handwriting fonts and real text.

Text comes from ``../shared/data/text/austen_lines.txt`` (public-domain prose), sometimes cut,
joined with digits, dates and punctuation, and with accented letters substituted in, so that every
character of the codec appears. Each line is rendered word by word (keeping a cursive font's joins)
with a random font from ``../shared/data/fonts`` at a random size, random word spacing and
per-word vertical jitter, then passed through :func:`ml.recognizer.augment.augment_synthetic`.
"""
from __future__ import annotations

import json
import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .augment import augment_synthetic

#: Letters replaced by an accented form with some probability (French, German, Spanish).
ACCENTS = {
    "a": "àâäá", "e": "éèêë", "i": "îïí", "o": "ôöó", "u": "ùûüú", "c": "ç", "n": "ñ", "y": "ÿ",
    "A": "ÀÂÄÁ", "E": "ÉÈÊË", "I": "ÎÏÍ", "O": "ÔÖÓ", "U": "ÙÛÜÚ", "C": "Ç", "N": "Ñ",
}
EXTRA_TOKENS = ["£", "€", "$", "%", "&", "«", "»", "“", "”", "‘", "’", "—", "–", "-", "(", ")",
                "!", "?", ";", ":", "/", "'", '"', "&c.", "No.", "½", "^", ">", "<"]
MONTHS = ["Jan", "Feb", "March", "April", "May", "June", "July", "Aug", "Sept", "Oct", "Nov", "Dec",
          "janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août"]


def missing_glyphs(path: str, chars: str) -> set[str]:
    """Characters of ``chars`` that the font at ``path`` draws as its .notdef box.

    A character is missing when its rendered mask equals the mask of a private-use code point
    (U+E000), which no handwriting font defines. Subset files (latin-ext only, say) lack whole
    alphabets, which the manifest does not list.
    """
    font = ImageFont.truetype(path, 32)
    ref = font.getmask(chr(0xE000))
    ref_key = (ref.size, bytes(ref))
    out = set()
    for c in chars:
        if c.isspace():
            continue
        m = font.getmask(c)
        if (m.size, bytes(m)) == ref_key:
            out.add(c)
    return out


def list_fonts(fonts_dir: str | Path, charset: str) -> list[dict]:
    """Font files usable for rendering, from ``manifest.json``: [{"path", "missing"}].

    ``missing`` holds the charset's characters the file cannot draw (see :func:`missing_glyphs`);
    they are left out of the text a font renders. Files lacking any basic Latin letter are skipped.
    Raises FileNotFoundError when no font is usable.
    """
    fonts_dir = Path(fonts_dir)
    out = []
    for fam in json.loads((fonts_dir / "manifest.json").read_text()):
        if fam.get("use", "ok") != "ok":
            continue
        for f in fam["files"]:
            p = fonts_dir / fam["family"] / f
            if not p.exists():
                continue
            missing = missing_glyphs(str(p), charset) | set(fam.get("missing_chars", ""))
            if missing & set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"):
                continue
            out.append({"path": str(p), "missing": missing})
    if not out:
        raise FileNotFoundError(f"no usable fonts in {fonts_dir}")
    return out


@lru_cache(maxsize=512)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


class LineSynthesizer:
    """Renders random text lines as (h, w) uint8 images (dark ink on light paper).

    Args:
        fonts_dir: folder with ``manifest.json`` and one sub-folder per family.
        text_file: one text line per row (25–65 characters in Austen's file).
        charset: characters the model can emit; rendered text is limited to them.
        max_text_lines: read at most this many text rows (memory).
        fonts: font files to use instead of ``fonts_dir``'s manifest (``[{"path", "missing"}]``,
            as :func:`list_fonts` returns; printed typefaces for :mod:`ml.linetype.train`).
        augment: applied to each rendered line (default :func:`augment_synthetic`).
        word_jitter: largest per-word baseline shift, as a fraction of the font size.
        spacing: range of the space between words, in widths of the font's space.
    """

    def __init__(self, fonts_dir: str | Path | None, text_file: str | Path, charset: str,
                 max_text_lines: int = 100_000, fonts: list[dict] | None = None,
                 augment=augment_synthetic, word_jitter: float = 0.06, spacing: tuple[float, float] = (0.6, 1.8)):
        self.fonts = fonts if fonts is not None else list_fonts(fonts_dir, charset)
        self.augment, self.word_jitter, self.spacing = augment, word_jitter, spacing
        with open(text_file, encoding="utf-8") as f:
            rows = [unicodedata.normalize("NFC", r.strip()) for _, r in zip(range(max_text_lines), f)]
        self.texts = [r for r in rows if r]
        self.charset = set(charset)
        self.rare = sorted(c for c in charset if c.isprintable() and c != " ")

    def sample_text(self, rng: np.random.Generator) -> str:
        """A random line of text (3–80 characters) limited to the charset."""
        r = rng.random()
        text = self.texts[int(rng.integers(len(self.texts)))]
        if r < 0.35:  # a fragment
            words = text.split()
            a = int(rng.integers(len(words)))
            b = min(len(words), a + int(rng.integers(1, 8)))
            text = " ".join(words[a:b])
        elif r < 0.45:  # dates, numbers, money
            text = self._numbers(rng)
        if rng.random() < 0.3:
            text = self._accents(text, rng)
        if rng.random() < 0.3:
            words = text.split(" ")
            words.insert(int(rng.integers(len(words) + 1)), EXTRA_TOKENS[int(rng.integers(len(EXTRA_TOKENS)))])
            text = " ".join(words)
        if rng.random() < 0.15:  # rare characters of the charset
            k = int(rng.integers(1, 4))
            text += " " + "".join(self.rare[int(i)] for i in rng.integers(len(self.rare), size=k))
        if rng.random() < 0.1:
            text = text.upper()
        text = "".join(c for c in text if c in self.charset)
        return " ".join(text.split())[:80] or "the"

    def _numbers(self, rng: np.random.Generator) -> str:
        kind = rng.integers(4)
        if kind == 0:
            return f"{rng.integers(1, 32)} {MONTHS[int(rng.integers(len(MONTHS)))]} {rng.integers(1800, 2030)}"
        if kind == 1:
            return f"{rng.integers(1, 13)}/{rng.integers(1, 32)}/{rng.integers(0, 100):02d}"
        if kind == 2:
            return f"£{rng.integers(1, 999)}.{rng.integers(0, 20)}.{rng.integers(0, 12)}"
        return " ".join(str(rng.integers(0, 10 ** int(rng.integers(1, 6)))) for _ in range(int(rng.integers(1, 5))))

    @staticmethod
    def _accents(text: str, rng: np.random.Generator) -> str:
        out = []
        for c in text:
            if c in ACCENTS and rng.random() < 0.06:
                opts = ACCENTS[c]
                c = opts[int(rng.integers(len(opts)))]
            out.append(c)
        return "".join(out)

    def pick_font(self, rng: np.random.Generator, text: str, fonts: list[dict] | None = None) -> tuple[dict, str]:
        """A random font of ``fonts`` (default: all of this synthesizer's) and ``text`` without the
        characters it cannot draw ("the" if none is left)."""
        fonts = fonts or self.fonts
        font_info = fonts[int(rng.integers(len(fonts)))]
        return font_info, "".join(c for c in text if c not in font_info["missing"]) or "the"

    def render(self, rng: np.random.Generator, text: str | None = None) -> tuple[np.ndarray, str]:
        """Render ``text`` (or a random one). Returns ((h, w) uint8 image, the text drawn in NFC)."""
        text = text if text is not None else self.sample_text(rng)
        font_info, text = self.pick_font(rng, text)
        size = int(rng.integers(28, 56))
        font = _font(font_info["path"], size)
        space = font.getlength(" ") or size * 0.3
        jitter = rng.uniform(0, self.word_jitter) * size
        ascent, descent = font.getmetrics()
        words = text.split(" ")
        # whole words keep a cursive font's joins; spacing and baseline vary between words
        gaps = [space * rng.uniform(*self.spacing) for _ in words]
        widths = [font.getlength(w) for w in words]
        total = int(sum(widths) + sum(gaps) + size)
        h = ascent + descent + int(2 * jitter) + int(size * 0.3)
        img = Image.new("L", (max(total, 8), h), 255)
        draw = ImageDraw.Draw(img)
        x = size * 0.5
        y0 = jitter + size * 0.15
        for word, w, gap in zip(words, widths, gaps):
            draw.text((x, y0 + rng.uniform(-jitter, jitter)), word, font=font, fill=0)
            x += w + gap
        arr = np.asarray(img)
        cols = np.nonzero((arr < 200).any(axis=0))[0]
        rows = np.nonzero((arr < 200).any(axis=1))[0]
        if len(cols) and len(rows):  # trim to the ink with a small random margin
            mx = int(rng.integers(2, 12))
            my = int(rng.integers(1, 6))
            arr = arr[max(0, rows[0] - my): rows[-1] + my + 1, max(0, cols[0] - mx): cols[-1] + mx + 1]
        return self.augment(np.ascontiguousarray(arr), rng), unicodedata.normalize("NFC", text)
