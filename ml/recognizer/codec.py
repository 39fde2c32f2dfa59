"""Character codec for CTC: maps NFC text to class indices and back.

Index 0 is the CTC blank; characters take indices 1..N in the order of ``Codec.charset``. The
charset is the union of the training ground truth's characters and :data:`BASE_CHARSET`, the
characters users are expected to write (Latin letters with French/German/Spanish accents, digits,
punctuation, currency signs, quotes and dashes). The codec is saved inside the model artifact.
"""
from __future__ import annotations

import collections
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

BLANK = 0

#: Characters every model can emit, whatever its training data held.
BASE_CHARSET = (
    " !\"#$%&'()*+,-./0123456789:;<=>?@[\\]^_`{|}~"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    "ÀÂÄÆÇÈÉÊËÎÏÔÖŒÙÛÜŸàâäæçèéêëîïôöœùûüÿ"  # French
    "ßẞ"  # German (with ÄÖÜäöü above)
    "ÁÍÑÓÚáíñóú¡¿"  # Spanish
    "£€§°¢¥"  # ($ % & are in the ASCII line)
    "‘’‚“”„«»‹›"  # quotes
    "–—‐…·•"  # dashes and dots
    "⟦⟧"  # struck-text brackets used by the Stanford ground truth
)


def nfc(text: str) -> str:
    """Unicode NFC form of ``text``."""
    return unicodedata.normalize("NFC", text)


@dataclass
class Codec:
    """Bidirectional map between characters and CTC class indices (blank = 0).

    Attributes:
        charset: the characters, each one code point after NFC, index ``i`` ↔ class ``i + 1``.
        unknown: counts of characters met by :meth:`encode` that are not in the charset; a dataset
            loader reports them (they are left out of the target, and the report says so).
    """

    charset: str
    unknown: collections.Counter = field(default_factory=collections.Counter, compare=False)

    def __post_init__(self) -> None:
        if len(set(self.charset)) != len(self.charset):
            raise ValueError("charset holds duplicate characters")
        self._index = {c: i + 1 for i, c in enumerate(self.charset)}

    @classmethod
    def from_texts(cls, texts: Iterable[str], base: str = BASE_CHARSET) -> Codec:
        """Build a codec from ``base`` plus every character of ``texts`` (after NFC), sorted."""
        chars = set(nfc(base))
        for text in texts:
            chars.update(nfc(text))
        chars.discard("\n")
        chars.discard("\t")
        return cls("".join(sorted(chars)))

    @property
    def num_classes(self) -> int:
        """Number of output classes including the blank."""
        return len(self.charset) + 1

    def encode(self, text: str) -> list[int]:
        """Class indices of the NFC form of ``text``; unknown characters are counted in ``unknown``
        and skipped."""
        out = []
        for c in nfc(text):
            i = self._index.get(c)
            if i is None:
                self.unknown[c] += 1
            else:
                out.append(i)
        return out

    def decode(self, indices: Iterable[int]) -> str:
        """Text of a sequence of class indices (already collapsed; blanks are skipped)."""
        return "".join(self.charset[i - 1] for i in indices if i != BLANK)

    def covers(self, text: str) -> bool:
        """True when every character of ``text`` (after NFC) is in the charset."""
        return all(c in self._index for c in nfc(text))

    def to_dict(self) -> dict:
        return {"charset": self.charset}

    @classmethod
    def from_dict(cls, d: dict) -> Codec:
        return cls(d["charset"])
