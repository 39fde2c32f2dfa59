"""The codec round-trips every character of the train and dev ground truth after NFC."""
import json
import unicodedata
from pathlib import Path

import pytest

from ml.recognizer.codec import BASE_CHARSET, BLANK, Codec

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _texts(path: Path) -> list[str]:
    return [json.loads(r)["text"] for r in path.read_text(encoding="utf-8").splitlines() if r.strip()]


@pytest.fixture(scope="module")
def ground_truth() -> list[str]:
    files = [DATA / "train" / "lines.jsonl", DATA / "dev" / "lines.jsonl"]
    if not all(f.exists() for f in files):
        files = [FIXTURES / "lines.jsonl"]
    return [t for f in files for t in _texts(f)]


def test_round_trip_of_all_ground_truth(ground_truth):
    codec = Codec.from_texts(ground_truth)
    for text in ground_truth:
        nfc = unicodedata.normalize("NFC", text)
        assert codec.decode(codec.encode(text)) == nfc
    assert not codec.unknown


def test_shipped_codec_covers_the_ground_truth(ground_truth):
    from ml.artifact import ARTIFACTS_DIR, load_artifact

    codec = Codec.from_dict(load_artifact(ARTIFACTS_DIR / "recognizer.pt", "recognizer")["codec"])
    missing = {c for t in ground_truth for c in unicodedata.normalize("NFC", t) if not codec.covers(c)}
    assert not missing


def test_blank_is_zero_and_never_a_character():
    codec = Codec.from_texts(["abc"])
    assert BLANK == 0
    assert 0 not in codec.encode("abc")
    assert codec.num_classes == len(codec.charset) + 1
    assert codec.decode([0, codec.encode("a")[0], 0]) == "a"


def test_base_charset_has_the_characters_users_write():
    codec = Codec.from_texts([])
    for c in "éèêëàâçîïôûùüÿœæÄÖÜßñáíóú¡¿£€$%&“”‘’«»–—0123456789":
        assert codec.covers(c), c
    assert len(set(BASE_CHARSET)) == len(BASE_CHARSET)


def test_unknown_characters_are_reported_not_silently_dropped():
    codec = Codec.from_texts(["abc"], base="")
    assert codec.encode("abΩc") == codec.encode("abc")
    assert codec.unknown == {"Ω": 1}


def test_decomposed_input_is_encoded_as_nfc():
    codec = Codec.from_texts(["é"], base="")
    assert codec.encode(unicodedata.normalize("NFD", "é")) == codec.encode("é")
