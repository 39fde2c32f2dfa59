"""Fine-tune a recognizer artifact on a small set of corrected lines (the retraining loop of the
platform; the workers call :func:`finetune`, which knows nothing of Django or Celery).

    result = finetune("parent.pt", ["gt_pack"], "heldout/lines.jsonl", "out/", steps=300,
                      progress=on_progress, should_cancel=lambda: False)
    result["artifact"]   # Path of out/recognizer.pt (+ out/recognizer.md), a quire-artifact/1
    result["heldout"]    # corpus CER/WER of the new model on the held-out lines

The parent's architecture and codec are kept (characters outside its codec are left out of the
targets and counted in ``result["unknown_chars"]``), as ``ml.recognizer.train --init`` does. The
loop is the one of :mod:`ml.recognizer.train` reduced to what a short run needs: AdamW, CTC loss,
the same augmentation of real lines, optional synthetic lines, linear warm-up then cosine decay of
the learning rate over ``max(step / steps, elapsed / time_budget_s)``. The model after the last
step is saved (no checkpoint is chosen on the held-out lines, so their figures stay unbiased).
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..artifact import code_commit, inherited_card, load_artifact, save_artifact, utc_now, write_card_markdown
from ..metrics import score_by_source
from .codec import Codec
from .data import LineDataset, LinePack, collate_lines, concat_packs, load_gray, read_lines_jsonl
from .image import normalize_line
from .model import CRNN, RecognizerConfig, count_parameters
from .predictor import Recognizer
from .train import ctc_step, lr_factor, seed_everything

log = logging.getLogger(__name__)

WARMUP = 0.05
FINAL_LR_RATIO = 0.1


class TrainingCanceled(Exception):
    """Raised by :func:`finetune` when ``should_cancel()`` returned True."""


def score(recognizer: Recognizer, images: list[np.ndarray], records: list) -> dict:
    """Corpus CER/WER of ``recognizer`` on normalised line images against their records' text.

    ``records`` are :class:`ml.recognizer.data.LineRecord` (only ``handwritten`` ones are scored).
    Returns {"cer", "wer", "lines", "chars", "sources": {source: {...}}}; CER 1.0 with no lines.
    """
    preds = recognizer.recognize_normalized(images, batch_size=32) if images else []
    res = score_by_source((r.source, r.text, p.text) for r, p in zip(records, preds) if r.handwritten)
    if not res["all"]["lines"]:
        res["all"].update(cer=1.0, wer=1.0)
    return {**res["all"], "sources": res["sources"]}


def load_lines(jsonl: str | Path, height: int, max_lines: int = 0) -> tuple[list[np.ndarray], list]:
    """Normalised images and records of a ``lines.jsonl`` (every k-th record when ``max_lines``
    caps the count, so that all sources stay represented)."""
    records = read_lines_jsonl(jsonl)
    if max_lines and len(records) > max_lines:
        records = records[:: max(1, len(records) // max_lines)][:max_lines]
    return [normalize_line(load_gray(r.image), height) for r in records], records


def evaluate_artifact(path: str | Path, jsonl: str | Path, max_lines: int = 0, device: str = "cpu") -> dict:
    """:func:`score` of the recognizer artifact at ``path`` on a ``lines.jsonl``, plus
    ``lines_per_s`` (recognition only) and the model's ``parameters``."""
    rec = Recognizer.load(path, device)
    images, records = load_lines(jsonl, rec.height, max_lines)
    t = time.perf_counter()
    result = score(rec, images, records)
    result["lines_per_s"] = round(len(images) / max(1e-9, time.perf_counter() - t), 1)
    result["parameters"] = count_parameters(rec.model)
    return result


def finetune(parent_artifact: str | Path, train_packs: list[str | Path], heldout_jsonl: str | Path,
             out_dir: str | Path, *, steps: int = 300, time_budget_s: float = 0.0, batch_size: int = 16,
             lr: float = 3e-4, eval_every: int = 50, synthetic_ratio: float = 0.0,
             fonts_dir: str | Path | None = None, text_file: str | Path | None = None, seed: int = 1234,
             version: str | None = None, device: str = "cpu",
             progress: Callable[[dict], None] | None = None,
             should_cancel: Callable[[], bool] | None = None, card_extra: dict | None = None) -> dict:
    """Fine-tune the recognizer ``parent_artifact`` and save the result in ``out_dir``.

    Args:
        parent_artifact: a recognizer ``quire-artifact/1`` file.
        train_packs: line packs (:func:`ml.recognizer.data.pack_lines`) of the training lines;
            the first is usually the ground truth, others (base training data) are mixed in.
        heldout_jsonl: ``lines.jsonl`` of the held-out ground truth, scored every ``eval_every``
            steps and at the end (greedy decoding, corpus CER over handwritten lines).
        steps / time_budget_s: the run stops at whichever comes first (0 s = no time limit).
        synthetic_ratio: share of synthetic lines per epoch (needs ``fonts_dir`` and ``text_file``).
        version: the new artifact's version (default ``<parent version>-ft<YYYYmmddHHMMSS>``).
        progress: called after every step with {"step", "steps", "epoch", "loss", "lr",
            "fraction", "elapsed_s"} and after each validation also "val_cer", "val_wer".
        should_cancel: polled before every step; True stops the run with TrainingCanceled.
        card_extra: entries added to the new model card (e.g. training data, job id).

    Returns {"artifact": Path, "card": Path, "version", "parent_version", "steps", "epochs",
    "seconds", "loss", "parameters", "train_lines", "unknown_chars": {char: count},
    "heldout": score dict, "history": [validation entries]}.

    Raises FileNotFoundError / ml.artifact.ArtifactError for a bad parent, ValueError for empty
    training or held-out data, TrainingCanceled.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(seed)
    dev = torch.device(device)
    parent = load_artifact(parent_artifact, "recognizer")
    codec = Codec.from_dict(parent["codec"])
    mconf = RecognizerConfig.from_dict(parent["config"])
    model = CRNN(mconf)
    model.load_state_dict(parent["state_dict"])
    model = model.to(dev)

    packs = [LinePack(p) for p in train_packs]
    if not packs or not sum(len(p) for p in packs):
        raise ValueError("no training lines")
    real = concat_packs(*packs)
    synth = None
    n_synth = 0
    if synthetic_ratio > 0 and fonts_dir and text_file:
        from .synth import LineSynthesizer

        synth = LineSynthesizer(fonts_dir, text_file, codec.charset)
        n_synth = max(1, int(len(real) * synthetic_ratio / (1 - synthetic_ratio)))
    ds = LineDataset(real, codec, mconf.height, synth, n_synth, augment=True, mask_prob=0.5, seed=seed,
                     downsample=mconf.downsample)
    unknown = dict(codec.unknown)
    val_images, val_records = load_lines(heldout_jsonl, mconf.height)
    if not val_records:
        raise ValueError(f"{heldout_jsonl}: no held-out lines")

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    rng = np.random.default_rng(seed)
    history: list[dict] = []
    step, epoch, loss_avg = 0, 0, None
    order: list[int] = []
    t0 = time.time()

    def validate(state: dict) -> dict:
        model.eval()
        res = score(Recognizer(model, codec, device), val_images, val_records)
        model.train()
        entry = {"step": step, "loss": round(loss_avg or 0.0, 4), "val_cer": res["cer"], "val_wer": res["wer"],
                 "elapsed_s": round(time.time() - t0, 1)}
        history.append(entry)
        log.info("fine-tune step %d loss %.3f held-out CER %.4f", step, loss_avg or 0.0, res["cer"])
        if progress:
            progress({**state, "val_cer": res["cer"], "val_wer": res["wer"]})
        return res

    model.train()
    state: dict = {}
    while True:
        elapsed = time.time() - t0
        fraction = step / steps
        if time_budget_s:
            fraction = max(fraction, elapsed / time_budget_s)
        if fraction >= 1.0:
            break
        if should_cancel is not None and should_cancel():
            raise TrainingCanceled(f"training canceled at step {step}")
        if len(order) < batch_size:
            ds.epoch = epoch
            order += [int(i) for i in rng.permutation(len(ds))]
            epoch += 1
        batch_idx, order = order[:batch_size], order[batch_size:]
        images, widths, targets, target_lengths, _ = collate_lines([ds[i] for i in batch_idx])
        for g in opt.param_groups:
            g["lr"] = lr * lr_factor(fraction, WARMUP, FINAL_LR_RATIO)
        lv = ctc_step(model, opt, images, widths, targets, target_lengths, dev)
        step += 1
        loss_avg = lv if loss_avg is None else 0.9 * loss_avg + 0.1 * lv
        elapsed = time.time() - t0
        done = step / steps
        if time_budget_s:
            done = max(done, elapsed / time_budget_s)
        state = {"step": step, "steps": steps, "epoch": epoch, "loss": round(loss_avg, 4),
                 "lr": opt.param_groups[0]["lr"], "fraction": round(min(1.0, done), 4),
                 "elapsed_s": round(elapsed, 1)}
        if progress:
            progress(state)
        if step % eval_every == 0 and done < 1.0:
            validate(state)
    heldout = validate(state or {"step": step, "steps": steps, "epoch": epoch, "loss": None, "fraction": 1.0})
    seconds = round(time.time() - t0, 1)

    version = version or f"{parent['version']}-ft{time.strftime('%Y%m%d%H%M%S')}"
    n_params = count_parameters(model)
    card = inherited_card(parent.get("card"), scalars_only=True)
    card.update({
        "name": "quire-recognizer", "version": version, "parent": f"quire-recognizer@{parent['version']}",
        "fine_tuning": f"{step} steps, batch {batch_size}, AdamW lr {lr}, {seconds} s on {device}, "
                       f"synthetic ratio {synthetic_ratio}",
        "training_lines": len(real), "parameters": n_params, "heldout_cer": heldout["cer"],
        "heldout_wer": heldout["wer"], "heldout_lines": heldout["lines"], "code_commit": code_commit(),
        "date": utc_now(), "weights": "float16",
    })
    card.update(card_extra or {})
    artifact = save_artifact(out_dir / "recognizer.pt", kind="recognizer", version=version,
                             config=mconf.to_dict(), state_dict=model.state_dict(), card=card,
                             codec=codec.to_dict())
    card_path = write_card_markdown(out_dir / "recognizer.md", card, f"Model card: quire-recognizer {version}")
    (out_dir / "history.json").write_text(json.dumps(history, indent=1))
    return {"artifact": artifact, "card": card_path, "version": version, "parent_version": parent["version"],
            "steps": step, "epochs": epoch, "seconds": seconds, "loss": round(loss_avg or 0.0, 4),
            "parameters": n_params, "train_lines": len(real), "unknown_chars": unknown,
            "heldout": heldout, "history": history}
