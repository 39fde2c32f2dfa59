"""Weight averaging of recognizer checkpoints (ml.recognizer.average): the average itself, the
batch-norm re-estimation, and the CLI on two short real training runs."""
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from ml.recognizer.average import average_state_dicts, main, read_weights, recalibrate_batchnorm
from ml.recognizer.data import pack_lines
from ml.recognizer.model import CRNN, RecognizerConfig
from ml.recognizer.predictor import Recognizer
from ml.recognizer.train import main as train_main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_the_average_is_the_mean_of_the_weights_and_keeps_integer_buffers():
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(5)}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(9)}
    c = {"w": torch.tensor([2.0, 1.0]), "n": torch.tensor(1)}
    out = average_state_dicts([a, b, c])
    assert torch.allclose(out["w"], torch.tensor([2.0, 3.0]))
    assert out["w"].dtype == torch.float32
    assert out["n"].item() == 5  # step counters are not averaged
    assert torch.equal(average_state_dicts([a])["w"], a["w"])


@pytest.mark.parametrize("other, message", [
    ({"w": torch.zeros(3), "n": torch.tensor(1)}, "shape"),
    ({"v": torch.zeros(2), "n": torch.tensor(1)}, "other weights"),
])
def test_checkpoints_of_other_architectures_are_refused(other, message):
    with pytest.raises(ValueError, match=message):
        average_state_dicts([{"w": torch.zeros(2), "n": torch.tensor(1)}, other])
    with pytest.raises(ValueError, match="no checkpoints"):
        average_state_dicts([])


def _tiny() -> CRNN:
    torch.manual_seed(0)
    return CRNN(RecognizerConfig(num_classes=5, height=16, channels=(4, 4, 8, 8), lstm_hidden=8))


def test_batchnorm_statistics_are_re_estimated_on_the_batches():
    model = _tiny()
    first_bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    g = torch.Generator().manual_seed(1)
    batches = [(torch.rand(3, 1, 16, 40, generator=g), torch.tensor([40, 40, 40])) for _ in range(2)]
    assert recalibrate_batchnorm(model, batches) == 6
    with torch.no_grad():  # the first layer's inputs do not depend on any batch-norm statistics
        feats = [first_conv(x) for x, _ in batches]
    expected_mean = torch.stack([f.mean(dim=(0, 2, 3)) for f in feats]).mean(0)  # plain average of batches
    expected_var = torch.stack([f.var(dim=(0, 2, 3), unbiased=True) for f in feats]).mean(0)
    assert torch.allclose(first_bn.running_mean, expected_mean, atol=1e-5)
    assert torch.allclose(first_bn.running_var, expected_var, rtol=1e-4, atol=1e-6)
    assert first_bn.momentum == 0.1 and not model.training
    with pytest.raises(ValueError, match="no training lines"):
        recalibrate_batchnorm(model, [])


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two 4-step runs on the fixture lines, the second fine-tuned from the first's artifact."""
    root = tmp_path_factory.mktemp("avg")
    pack_lines(FIXTURES / "lines.jsonl", root / "pack", 32)
    cfg = {"train_packs": [str(root / "pack")], "dev_pack": str(root / "pack"), "height": 32,
           "channels": [8, 16, 16, 32], "lstm_hidden": 32, "batch_size": 4, "eval_every": 2,
           "synthetic_ratio": 0.0, "workers": 0, "steps": 4}
    (root / "cfg.json").write_text(json.dumps(cfg))
    for name, extra in (("a", []), ("b", ["--init", str(root / "a" / "recognizer.pt"), "--seed", "3"])):
        assert train_main(["--config", str(root / "cfg.json"), "--out", str(root / name), "--device", "cpu",
                           "--threads", "1", *extra]) == 0
    return root


def test_read_weights_takes_training_states_and_artifacts(two_runs, tmp_path):
    sd, step = read_weights(two_runs / "a" / "last.pt")
    assert step == 4 and all(v.dtype == torch.float32 for v in sd.values() if v.is_floating_point())
    art, _ = read_weights(two_runs / "a" / "recognizer.pt")
    assert art.keys() == sd.keys()
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception):
        read_weights(tmp_path / "junk.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="neither"):
        read_weights(tmp_path / "list.pt")
    with pytest.raises(FileNotFoundError):
        read_weights(tmp_path / "missing.pt")


def test_the_cli_writes_an_artifact_of_the_averaged_weights(two_runs, tmp_path, capsys):
    a, b = two_runs / "a" / "last.pt", two_runs / "b" / "last.pt"
    out = tmp_path / "avg.pt"
    assert main(["--like", str(two_runs / "a" / "recognizer.pt"), "--checkpoints", str(a), str(b),
                 "--dev-pack", str(two_runs / "pack"), "--out", str(out), "--version", "t-avg"]) == 0
    rec = Recognizer.load(out)
    assert rec.version == "t-avg" and len(rec.card["averaged_from"]) == 2
    assert "copiste_dun_jour_fr" in rec.card["dev"]
    wa, wb = read_weights(a)[0], read_weights(b)[0]
    got = rec.model.state_dict()
    for k in ("rnn.weight_ih_l0", "head.weight"):
        key = next(n for n in got if n.endswith(k))
        assert torch.allclose(got[key], ((wa[key] + wb[key]) / 2).half().float(), atol=1e-3)
    # with the statistics re-estimated on training lines, the result still reads lines
    out2 = tmp_path / "avg2.pt"
    assert main(["--like", str(two_runs / "a" / "recognizer.pt"), "--checkpoints", str(a), str(b),
                 "--train-packs", str(two_runs / "pack"), "--bn-lines", "8", "--out", str(out2)]) == 0
    rec2 = Recognizer.load(out2)
    assert "re-estimated on 8 augmented training lines" in rec2.card["averaging"]
    assert rec.card["averaging"].endswith("batch-norm statistics averaged (ml/recognizer/average.py)")
    assert len(rec2.recognize([torch.zeros(20, 60, dtype=torch.uint8).numpy() + 255])) == 1
    with pytest.raises(SystemExit):  # re-estimating needs training lines
        main(["--like", str(two_runs / "a" / "recognizer.pt"), "--checkpoints", str(a),
              "--bn-lines", "8", "--out", str(tmp_path / "x.pt")])
    assert "--bn-lines needs --train-packs" in capsys.readouterr().err


def test_the_lineage_is_kept_in_the_card_and_survives_a_new_evaluation(two_runs, tmp_path):
    """``--lineage`` text lands in the card and its Markdown as a section of its own, stays there when
    an evaluation rewrites the card, and is not inherited by an average made without one."""
    from ml.recognizer.evaluate import update_card

    lineage = tmp_path / "lineage.md"
    lineage.write_text("A soup of run a and run b.\n\n```sh\npython -m ml.recognizer.average ...\n```\n")
    out = tmp_path / "avg.pt"
    a, b = two_runs / "a" / "last.pt", two_runs / "b" / "last.pt"
    assert main(["--like", str(two_runs / "a" / "recognizer.pt"), "--checkpoints", str(a), str(b),
                 "--out", str(out), "--version", "t-lineage", "--lineage", str(lineage)]) == 0
    assert Recognizer.load(out).card["lineage"] == lineage.read_text()
    res = {"sources": {"copiste_dun_jour_fr": {"cer": 0.5, "wer": 0.9, "lines": 3, "chars": 40}},
           "lines_per_s": 10.0, "crop": "best"}
    update_card(out, tmp_path / "dev" / "lines.jsonl", res, "greedy")
    md = out.with_suffix(".md").read_text()
    assert "## lineage\n\nA soup of run a and run b.\n\n```sh\n" in md and "## evaluation" in md
    assert "| lineage |" not in md  # not a row of the field table
    out2 = tmp_path / "avg2.pt"
    assert main(["--like", str(out), "--checkpoints", str(a), "--out", str(out2)]) == 0
    assert "lineage" not in Recognizer.load(out2).card
    assert "## lineage" not in out2.with_suffix(".md").read_text()


def test_a_model_made_from_a_parent_does_not_inherit_its_lineage():
    from ml.artifact import inherited_card

    parent = {"name": "quire-recognizer", "lineage": "how the parent\nwas made", "dev": {"a": {"cer": 0.1}},
              "averaged_from": ["x (step 1)"]}
    assert inherited_card(parent) == {"name": "quire-recognizer", "dev": {"a": {"cer": 0.1}},
                                      "averaged_from": ["x (step 1)"]}
    assert inherited_card(parent, scalars_only=True) == {"name": "quire-recognizer"}
    assert inherited_card(None) == {}
