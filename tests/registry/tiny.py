"""A tiny but real recognizer artifact (CRNN with a few thousand weights, the standard codec), used
until and beside the shipped `ml/artifacts/recognizer.pt`: it loads, recognises and fine-tunes
like the shipped one, in well under a second per step on the CPU."""
from __future__ import annotations

from pathlib import Path

import torch

from ml.artifact import save_artifact
from ml.recognizer.codec import Codec
from ml.recognizer.model import CRNN, RecognizerConfig, count_parameters

TINY = {"height": 16, "channels": (4, 4, 8, 8), "lstm_hidden": 8, "lstm_layers": 1, "dropout": 0.0}


def make_tiny_recognizer(path: str | Path, version: str, seed: int = 0) -> Path:
    """Write an untrained tiny recognizer artifact of `version` to `path` and return the path."""
    torch.manual_seed(seed)
    codec = Codec.from_texts([])
    config = RecognizerConfig(num_classes=codec.num_classes, **TINY)
    model = CRNN(config)
    card = {"name": "quire-recognizer", "version": version, "parameters": count_parameters(model),
            "dev_mean_cer": 1.0, "dev": {"tiny": {"cer": 1.0, "wer": 1.0}}, "licence": "test only"}
    return save_artifact(path, kind="recognizer", version=version, config=config.to_dict(),
                         state_dict=model.state_dict(), card=card, codec=codec.to_dict())
