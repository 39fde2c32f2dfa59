"""Weight averaging of recognizer checkpoints: along one training run, or across runs fine-tuned
from the same artifact.

    python -m ml.recognizer.average --like runs/a/recognizer.pt \
        --checkpoints runs/a/snaps/e14.pt runs/a/snaps/e16.pt runs/b/last.pt \
        [--bn-lines 2048 --train-packs .gpu_data/rec_train] \
        [--dev-pack .gpu_data/rec_dev] --out runs/avg/recognizer.pt [--version V] [--lineage lineage.md]

Method. The floating-point weights of the checkpoints are averaged uniformly, as stochastic weight
averaging does along one run (Izmailov et al. 2018, "Averaging Weights Leads to Wider Optima and
Better Generalization") and a "uniform soup" does across fine-tunings of one pre-trained model
(Wortsman et al. 2022, "Model soups: averaging weights of multiple fine-tuned models improves
accuracy without increasing inference time"). Both need the checkpoints to lie in one basin of the
loss: checkpoints of one run late in its schedule, or runs started from the same ``--init``.
Batch-normalisation statistics are averaged like the weights by default; ``--bn-lines N``
re-estimates them instead by a forward pass over N real training lines with the training
augmentation (SWA's ``bn_update``). On the dev lines re-estimation moved Hooker and Stanford by about
a point in opposite directions, also for a single checkpoint (docs/TRAINING.md, "Ninth session").
The result is an ordinary recognizer artifact: the same architecture and speed as each checkpoint.

Inputs are training states (``last.pt``, snapshots of it: ``{"model": state_dict, "step": ...}``)
or recognizer artifacts; ``--like`` gives the architecture, codec and model card to start from.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from ..artifact import code_commit, inherited_card, load_artifact, save_artifact, utc_now, write_card_markdown
from .codec import Codec
from .data import LineDataset, LinePack, collate_lines, concat_packs
from .model import CRNN, RecognizerConfig
from .predictor import Recognizer

log = logging.getLogger(__name__)

BN_BATCH = 32


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], int | None]:
    """The float32 state dict of a training state or a recognizer artifact, and its training step
    (None when the file does not say).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is neither a training state (a dict with ``model``) nor a recognizer
            artifact.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    data = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        sd, step = data["model"], data.get("step")
    elif isinstance(data, dict) and "state_dict" in data:
        art = load_artifact(path, "recognizer")
        sd, step = art["state_dict"], (art.get("card") or {}).get("training_steps")
    else:
        raise ValueError(f"{path}: neither a training state nor a recognizer artifact")
    return {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}, step


def average_state_dicts(state_dicts: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Uniform average of the floating-point tensors of ``state_dicts`` (accumulated in float64,
    returned as float32); integer tensors (batch-norm step counters) are taken from the first.

    Raises ValueError when ``state_dicts`` is empty or their keys or shapes differ.
    """
    if not state_dicts:
        raise ValueError("no checkpoints to average")
    first = state_dicts[0]
    for i, sd in enumerate(state_dicts[1:], 2):
        if sd.keys() != first.keys():
            raise ValueError(f"checkpoint {i} has other weights than the first: "
                             f"{sorted(set(sd) ^ set(first))[:5]}")
        for k, v in sd.items():
            if v.shape != first[k].shape:
                raise ValueError(f"checkpoint {i}: {k} has shape {tuple(v.shape)}, the first "
                                 f"{tuple(first[k].shape)} (another architecture)")
    out = {}
    for k, v in first.items():
        if v.is_floating_point():
            acc = torch.zeros(v.shape, dtype=torch.float64)
            for sd in state_dicts:
                acc += sd[k].double()
            out[k] = (acc / len(state_dicts)).float()
        else:
            out[k] = v.clone()
    return out


def recalibrate_batchnorm(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> int:
    """Re-estimate every batch-norm layer's running mean and variance as the plain average over
    ``batches``, with ``torch.optim.swa_utils.update_bn`` (SWA's ``bn_update``). The batch norms sit
    in the CNN only, ahead of dropout and the BiLSTM, so the lines' own lengths are not needed.

    Args:
        model: a :class:`CRNN`; left in eval mode.
        batches: ``(images (B, 1, H, W) float32 in [0, 1], widths (B,) int64 pixels)``.

    Returns the number of lines seen. Raises ValueError when ``batches`` is empty (the statistics
    would be left reset).
    """
    seen = 0

    def images():
        nonlocal seen
        for x, _ in batches:
            seen += x.shape[0]
            yield x.contiguous(memory_format=torch.channels_last)

    model.eval()
    update_bn(images(), model, device=next(model.parameters()).device)
    if not seen:
        raise ValueError("no training lines to re-estimate the batch-norm statistics on")
    return seen


def training_batches(packs: Sequence[str | Path], codec: Codec, config: RecognizerConfig, n_lines: int,
                     seed: int = 0, batch_size: int = BN_BATCH):
    """``n_lines`` real lines drawn at random from ``packs`` with the training augmentation (and
    tight-line stretching), as ``(images, widths)`` batches of lines of similar width."""
    real = concat_packs(*[LinePack(p) for p in packs])
    ds = LineDataset(real, codec, config.height, augment=True, seed=seed, downsample=config.downsample)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(ds), size=min(n_lines, len(ds)), replace=False)
    items = [ds[int(i)] for i in idx]
    items.sort(key=lambda it: it[0].shape[1])
    for s in range(0, len(items), batch_size):
        images, widths, *_ = collate_lines(items[s: s + batch_size])
        yield images, widths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--like", required=True, help="recognizer artifact: architecture, codec and card")
    ap.add_argument("--checkpoints", nargs="+", required=True, help="training states or artifacts")
    ap.add_argument("--bn-lines", type=int, default=0,
                    help="re-estimate the batch-norm statistics on this many training lines (default 0: "
                         "average the checkpoints' statistics)")
    ap.add_argument("--train-packs", nargs="+", help="line packs for --bn-lines")
    ap.add_argument("--dev-pack", nargs="+", help="score the result (greedy) and record it in the card")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--version")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--lineage", type=Path, metavar="FILE",
                    help="Markdown telling how the result was made (runs, seeds, commands), kept in the card as "
                         "'lineage'; without it the --like card's lineage is dropped, as it tells of another model")
    args = ap.parse_args(argv)
    if args.bn_lines > 0 and not args.train_packs:
        ap.error("--bn-lines needs --train-packs")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    like = load_artifact(args.like, "recognizer")
    config = RecognizerConfig.from_dict(like["config"])
    codec = Codec.from_dict(like["codec"])
    weights, steps = zip(*(read_weights(p) for p in args.checkpoints))
    model = CRNN(config)
    model.load_state_dict(average_state_dicts(weights))
    n = recalibrate_batchnorm(model, training_batches(args.train_packs, codec, config, args.bn_lines, args.seed)) \
        if args.bn_lines > 0 else 0
    log.info("averaged %d checkpoints (steps %s); batch-norm statistics from %d training lines",
             len(weights), list(steps), n)
    version = args.version or f"{like['version']}-avg{len(weights)}"
    card = inherited_card(like["card"])
    card.update({
        "version": version, "code_commit": code_commit(), "date": utc_now(), "command": " ".join(sys.argv),
        "averaged_from": [f"{p} (step {s})" for p, s in zip(args.checkpoints, steps)],
        "averaging": "uniform weight average (SWA, Izmailov et al. 2018; model soups, Wortsman et al. 2022), "
                     + (f"batch-norm statistics re-estimated on {n} augmented training lines" if n else
                        "batch-norm statistics averaged") + " (ml/recognizer/average.py)",
    })
    if args.lineage:
        card["lineage"] = args.lineage.read_text(encoding="utf-8")
    if args.dev_pack:
        from .train import evaluate_pack

        result = evaluate_pack(Recognizer(model, codec), concat_packs(*[LinePack(p) for p in args.dev_pack]))
        card.update({"dev": result["sources"], "dev_mean_cer": result["mean_cer"]})
        log.info("dev greedy CER %s (mean %.4f)", {s: round(v["cer"], 4) for s, v in result["sources"].items()},
                 result["mean_cer"])
    save_artifact(args.out, kind="recognizer", version=version, config=config.to_dict(),
                  state_dict=model.state_dict(), card=card, codec=codec.to_dict())
    write_card_markdown(args.out.with_suffix(".md"), card, f"Model card: quire-recognizer {version}")
    print(f"wrote {args.out} ({version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
