"""The line-type classifier (handwritten vs printed): the shipped artifact keeps the committed
handwritten lines and catches the committed typed ones; a line's score does not depend on what it
is batched with; the training CLI writes an artifact with its card."""
import glob
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ml.linetype import LineTypeClassifier, LineTypeConfig, LineTypeNet
from ml.recognizer.data import load_gray, pack_lines

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DEJAVU = "/usr/share/fonts/truetype/dejavu/*.ttf"


def _crops(jsonl: str) -> list[np.ndarray]:
    rows = [json.loads(r) for r in (FIXTURES / jsonl).read_text(encoding="utf-8").splitlines() if r.strip()]
    return [load_gray(FIXTURES / r["image"]) for r in rows]


def test_shipped_classifier_keeps_handwriting_and_catches_typed_lines():
    clf = LineTypeClassifier.load()
    handwritten = clf.printed_probability(_crops("lines.jsonl"))
    typed = clf.printed_probability(_crops("typed_lines.jsonl"))
    assert len(handwritten) == 12 and len(typed) == 4
    # no committed handwritten line is taken for printed (measured: all under 0.02)
    assert (handwritten < clf.threshold).all(), handwritten
    # the two letterhead lines (measured 0.99, 0.98) and the two typewriter lines (0.64, 0.56)
    # are caught (the card: 85 of 110 typed dev lines)
    assert (typed >= clf.threshold).all(), typed
    assert handwritten.max() < 0.1 < typed.min()


def test_a_line_scores_the_same_alone_or_batched_with_a_wider_line():
    torch.manual_seed(0)
    clf = LineTypeClassifier(LineTypeNet(LineTypeConfig()))
    rng = np.random.default_rng(0)
    short = (rng.random((40, 90)) * 255).astype(np.uint8)
    wide = (rng.random((40, 700)) * 255).astype(np.uint8)
    alone = clf.printed_probability([short])
    both = clf.printed_probability([short, wide])
    # the padding is left out of the mean; what remains is the last strip's receptive field seeing
    # the batch's zero padding instead of the convolutions' own (measured 1e-5)
    assert abs(float(alone[0]) - float(both[0])) < 1e-3


@pytest.mark.skipif(not glob.glob(DEJAVU), reason="needs the DejaVu typefaces (Debian fonts-dejavu-core)")
def test_training_cli_writes_an_artifact_with_its_card(tmp_path):
    from ml.linetype.train import main

    pack = tmp_path / "pack"
    assert pack_lines(FIXTURES / "lines.jsonl", pack, 32) == 12
    text = tmp_path / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog\nSan Francisco, March 20, 1905\n", encoding="utf-8")
    out = tmp_path / "run"
    assert main(["--out", str(out), "--train-packs", str(pack), "--text-file", str(text),
                 "--printed-fonts", DEJAVU, "--dev", str(FIXTURES / "lines.jsonl"), "--steps", "3",
                 "--batch-size", "4", "--version", "test"]) == 0
    clf = LineTypeClassifier.load(out / "linetype.pt")
    assert clf.version == "test" and clf.threshold == 0.5
    assert clf.card["dev"]["copiste_dun_jour_fr"]["handwritten"] == 8
    assert (out / "linetype.md").read_text().startswith("# Model card")
    with pytest.raises(FileNotFoundError, match="no printed typefaces"):
        main(["--out", str(out), "--train-packs", str(pack), "--printed-fonts", str(tmp_path / "none*.ttf")])
