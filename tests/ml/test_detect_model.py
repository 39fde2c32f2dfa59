"""The detector net, its artifact round trip and the blank-page behaviour (small, CPU)."""
import numpy as np
import torch

from ml.detect import LineDetector
from ml.detect.model import LineUNet
from ml.detect.train import card_markdown, loss_fn, save_checkpoint


def test_output_shape_matches_input():
    m = LineUNet().eval()
    with torch.no_grad():
        y = m(torch.rand(1, 1, 128, 96))
    assert y.shape == (1, 2, 128, 96)


def test_artifact_round_trip_and_blank_page(tmp_path):
    torch.manual_seed(0)
    m = LineUNet()
    card = {"architecture": "x", "params": 1, "input_long": 256, "training_data": "none", "steps": 0,
            "batch": 1, "crop": 64, "lr": 0.0, "seconds": 0.0, "device": "cpu", "best_step": 0,
            "command": "test", "date": "today", "dev": {}}
    cfg = {"widths": list(m.widths), "depths": list(m.depths), "input_long": 256, "postprocess": {}}
    save_checkpoint(m.eval(), tmp_path, cfg, card, "0.test")
    assert (tmp_path / "detector.md").read_text().startswith("# quire-detector@0.test")
    det = LineDetector.load(tmp_path / "detector.pt")
    assert det.name == "quire-detector@0.test"
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(det.model(x), m.eval()(x), atol=0.05)  # fp16 weights
    # a blank page: whatever the weights, a constant map gives no line components
    det.model.head.bias.data[:] = -10.0
    assert det.detect(np.full((300, 200), 255, np.uint8)) == []


def test_loss_ignores_weight_zero_pixels():
    logits = torch.zeros(1, 2, 8, 8)
    target = torch.ones(1, 2, 8, 8)
    w0 = torch.zeros(1, 1, 8, 8)
    w0[..., :4] = 1
    l_half, _, _ = loss_fn(logits, target, w0)
    target2 = target.clone()
    target2[..., 4:] = 0  # changes only ignored pixels
    l_half2, _, _ = loss_fn(logits, target2, w0)
    assert torch.isclose(l_half, l_half2)
