"""Training CLI of the line recognizer.

    python -m ml.recognizer.train --config ml/configs/recognizer.json --out runs/rec \\
        [--device cuda] [--time-budget 540] [--resume] [--init ml/artifacts/recognizer.pt]

Data are line packs (see :mod:`ml.recognizer.data`; make them with ``python -m ml.recognizer.pack``)
mixed with synthetic lines at ``synthetic_ratio`` (the fraction of each epoch's items that are
synthetic). Every ``eval_every`` steps (and at the end) the model is validated with greedy decoding
on the dev pack; the corpus CER per source (handwritten lines only) and their mean are logged, and
the best model by mean CER is written as an artifact (``recognizer.pt`` + ``recognizer.md``).
``last.pt`` holds the full training state for ``--resume``.

Lines written too tight for the model's resolution (fewer than ``TIGHT_FRAMES_PER_CHAR`` CTC frames
per character of their ground truth) are stretched by ``tight_stretch`` (default
:data:`ml.recognizer.image.TIGHT_STRETCH`, as the recognizer reads them; 1.0: off); lines wider
than ``LOOSE_FRAMES_PER_CHAR`` are scaled by ``loose_squeeze`` (default 1.0: off; the recognizer
reads them again at :data:`ml.recognizer.image.LOOSE_SQUEEZE`). Half of the real lines are
sheared by up to ``real_shear`` (default :data:`ml.recognizer.augment.REAL_SHEAR`) in augmentation;
``hand_variety`` > 0 adds :func:`ml.recognizer.augment.other_hand` (another pen, other letter
widths) to real and synthetic lines alike.

Learning rate: linear warm-up over the first ``warmup`` fraction, then cosine decay to
``lr * final_lr_ratio``; progress is ``max(step / steps, elapsed / time_budget)``, so a run bounded
by wall-clock time still completes its schedule.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import shutil
import sys
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Sampler

from ..artifact import code_commit, load_artifact, save_artifact, utc_now, write_card_markdown
from ..metrics import score_by_source
from .augment import REAL_SHEAR, augment_synthetic
from .codec import Codec
from .data import LineDataset, LinePack, collate_lines, concat_packs
from .image import TIGHT_STRETCH, normalize_line
from .model import CRNN, RecognizerConfig, count_parameters, widen_cnn, widen_lstm
from .predictor import Recognizer
from .synth import LineSynthesizer

log = logging.getLogger("ml.recognizer.train")

DEFAULTS = {
    "train_packs": [".gpu_data/rec_train"],
    "dev_pack": ".gpu_data/rec_dev",
    "fonts_dir": "../shared/data/fonts",
    "text_file": "../shared/data/text/austen_lines.txt",
    "height": 48,
    "channels": [16, 48, 96, 128],
    "lstm_hidden": 256,
    "lstm_layers": 2,
    "dropout": 0.2,
    "downsample": 4,
    "batch_size": 32,
    "lr": 1e-3,
    "weight_decay": 1e-2,
    "warmup": 0.03,
    "final_lr_ratio": 0.02,
    "steps": 20000,
    "time_budget": 0,
    "synthetic_ratio": 0.3,
    "mask_prob": 0.5,
    "tight_stretch": TIGHT_STRETCH,
    "loose_squeeze": 1.0,
    "real_shear": REAL_SHEAR,
    "hand_variety": 0.0,
    "eval_every": 1000,
    "eval_max_lines": 0,
    "workers": 2,
    "seed": 1234,
    "version": "",
}


class BucketBatchSampler(Sampler):
    """Endless batches of global indices; index ``epoch * n + i`` names item ``i`` in ``epoch``, so
    that each sample's augmentation is seeded by (seed, epoch, i) even in persistent workers.

    Real lines are shuffled, cut into pools of ``pool`` batches, and each pool is sorted by line
    width before being cut into batches, so that a batch pads little (on the CPU this nearly
    halves the time per line). Synthetic items (indices ≥ ``len(widths)``) form their own batches.
    Batch order is shuffled.
    """

    def __init__(self, widths: list[int], n_total: int, batch_size: int, seed: int,
                 start_epoch: int = 0, pool: int = 50):
        self.widths, self.n, self.bs = widths, n_total, batch_size
        self.seed, self.start_epoch, self.pool = seed, start_epoch, pool

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, epoch])
        n_real = len(self.widths)
        real = rng.permutation(n_real)
        batches = []
        step = self.bs * self.pool
        for start in range(0, n_real, step):
            chunk = sorted(real[start: start + step].tolist(), key=lambda i: self.widths[i])
            batches += [chunk[k: k + self.bs] for k in range(0, len(chunk), self.bs)]
        synth = (n_real + rng.permutation(self.n - n_real)).tolist()
        batches += [synth[k: k + self.bs] for k in range(0, len(synth), self.bs)]
        order = rng.permutation(len(batches))
        return [[epoch * self.n + i for i in batches[j]] for j in order]

    def __iter__(self):
        epoch = self.start_epoch
        while True:
            yield from self.epoch_batches(epoch)
            epoch += 1


def _worker_init(_: int) -> None:
    # the loader workers already fill the cores: one thread each for OpenCV and torch
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


class EpochDataset(torch.utils.data.Dataset):
    """Maps the global index of :class:`BucketBatchSampler` onto a :class:`LineDataset`."""

    def __init__(self, ds: LineDataset):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, g: int):
        self.ds.epoch, i = divmod(g, len(self.ds))
        return self.ds[i]


def lr_factor(progress: float, warmup: float, final_ratio: float) -> float:
    """Warm-up then cosine decay; ``progress`` in [0, 1]."""
    if progress < warmup:
        return max(progress / warmup, 1e-3)
    p = min(1.0, (progress - warmup) / max(1e-9, 1 - warmup))
    return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * p))


def ctc_step(model: CRNN, opt: torch.optim.Optimizer, images: torch.Tensor, widths: torch.Tensor,
             targets: torch.Tensor, target_lengths: torch.Tensor, dev: torch.device) -> float:
    """One optimisation step on a batch of :func:`collate_lines`: forward (bf16 autocast on CUDA),
    CTC loss in float32 (infeasible alignments zeroed), backward, gradient norm clipped at 5, step.
    Returns the batch's mean CTC loss per target character."""
    x = images.to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last)
    in_lengths = model.output_lengths(widths)
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
        # padded, not packed: a packed BiLSTM's backward pass is 1.65x slower per step on this CPU
        # (batch 16, 600 px); reading packed lines with a model trained padded changed dev CER
        # by under 0.5 point either way (see CRNN.forward)
        log_probs = model(x)
    loss = F.ctc_loss(log_probs.float(), targets, in_lengths, target_lengths, blank=0,
                      reduction="mean", zero_infinity=True)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    opt.step()
    return float(loss.detach())


def evaluate_pack(recognizer: Recognizer, pack: LinePack, max_lines: int = 0) -> dict:
    """Greedy-decoding corpus CER/WER per source on a pack's handwritten lines.

    Returns {"sources": {source: {"cer", "wer", "lines", "chars"}}, "mean_cer": float,
    "lines_per_s": float}.
    """
    idx = [i for i, r in enumerate(pack.records) if r.get("handwritten", True)]
    if max_lines:
        idx = idx[:: max(1, len(idx) // max_lines)][:max_lines]
    images = [normalize_line(pack[i], recognizer.height) for i in idx]
    t = time.perf_counter()
    preds = recognizer.recognize_normalized(images, batch_size=64)
    elapsed = time.perf_counter() - t
    res = score_by_source((pack.records[i]["source"], pack.records[i]["text"], p.text) for i, p in zip(idx, preds))
    return {"sources": res["sources"], "mean_cer": res["mean_cer"], "lines_per_s": round(len(idx) / elapsed, 1)}


def build_codec(packs: list[LinePack], init: dict | None) -> Codec:
    """The parent artifact's codec when fine-tuning, else one built from the packs' texts."""
    if init is not None:
        return Codec.from_dict(init["codec"])
    return Codec.from_texts(r["text"] for p in packs for r in p.records)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(cfg: dict, out: Path, device: str, resume: bool = False, init_path: str | None = None,
          widen_lstm_to: int | None = None, init_config: dict | None = None,
          widen_cnn_to: tuple[int, ...] | None = None) -> dict:
    """Run one training; returns the best validation result. See the module docstring.

    Fine-tuning (``init_path``) keeps the artifact's codec and architecture, except that
    ``widen_lstm_to`` grows its BiLSTM to that many units per direction without changing what it
    computes (:func:`ml.recognizer.model.widen_lstm`), ``widen_cnn_to`` grows its convolutional
    stages to those channel counts in the same way (:func:`ml.recognizer.model.widen_cnn`) and
    ``init_config`` replaces fields of its
    :class:`RecognizerConfig` that leave the weights' shapes alone (``dropout``; ``downsample``:
    only the second stage's pooling changes, so the fine-tuning starts from the trained filters).
    Raises ValueError for either without ``init_path``.
    """
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg["seed"])
    dev = torch.device(device)
    # no cudnn.benchmark: every batch has another width, and benchmarking each new shape made a
    # GPU run 50 times slower (34 lines/s on an H200)
    packs = [LinePack(p) for p in cfg["train_packs"]]
    dev_paths = [cfg["dev_pack"]] if isinstance(cfg["dev_pack"], str) else cfg["dev_pack"]
    dev_pack = concat_packs(*[LinePack(p) for p in dev_paths])
    init = load_artifact(init_path, "recognizer") if init_path else None
    codec = build_codec(packs, init)
    if init is not None:
        mconf = RecognizerConfig.from_dict({**init["config"], **(init_config or {})})
    else:
        mconf = RecognizerConfig(num_classes=codec.num_classes, height=cfg["height"],
                                 channels=tuple(cfg["channels"]), lstm_hidden=cfg["lstm_hidden"],
                                 lstm_layers=cfg["lstm_layers"], dropout=cfg["dropout"],
                                 downsample=cfg["downsample"])
    model = CRNN(mconf)
    if init is not None:
        model.load_state_dict(init["state_dict"])
        if widen_lstm_to:
            model = widen_lstm(model, widen_lstm_to, cfg["seed"])
            mconf = model.config
            log.info("BiLSTM widened from %d to %d units per direction", init["config"]["lstm_hidden"],
                     widen_lstm_to)
        if widen_cnn_to:
            model = widen_cnn(model, widen_cnn_to, cfg["seed"])
            mconf = model.config
            log.info("CNN widened from %s to %s channels", init["config"]["channels"], list(widen_cnn_to))
    elif widen_lstm_to or widen_cnn_to or init_config:
        raise ValueError("--widen-lstm, --widen-cnn, --init-dropout and --init-downsample need --init "
                         "(a new model takes them from its config)")
    model = model.to(dev).to(memory_format=torch.channels_last)
    n_params = count_parameters(model)

    # one real pack (concatenated) + synthetic lines
    real = concat_packs(*packs)
    synth = None
    n_synth = 0
    if cfg["synthetic_ratio"] > 0:
        synth = LineSynthesizer(cfg["fonts_dir"], cfg["text_file"], codec.charset,
                                augment=partial(augment_synthetic, hand_variety=cfg["hand_variety"]))
        n_synth = int(len(real) * cfg["synthetic_ratio"] / (1 - cfg["synthetic_ratio"]))
    ds = LineDataset(real, codec, mconf.height, synth, n_synth, augment=True,
                     mask_prob=cfg["mask_prob"], seed=cfg["seed"], downsample=mconf.downsample,
                     tight_stretch=cfg["tight_stretch"], loose_squeeze=cfg["loose_squeeze"],
                     real_shear=cfg["real_shear"], hand_variety=cfg["hand_variety"])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    step, best, start_epoch, elapsed_before = 0, None, 0, 0.0
    history: list[dict] = []
    last_path = out / "last.pt"
    if resume and last_path.exists():
        state = torch.load(last_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, best, history = state["step"], state["best"], state["history"]
        elapsed_before = state.get("elapsed", 0.0)
        start_epoch = step * cfg["batch_size"] // len(ds) + 1
        log.info("resumed at step %d", step)

    sampler = BucketBatchSampler([r["width"] for r in real.records], len(ds), cfg["batch_size"], cfg["seed"],
                                 start_epoch)
    loader = DataLoader(
        EpochDataset(ds), batch_sampler=sampler, collate_fn=collate_lines, num_workers=cfg["workers"],
        pin_memory=dev.type == "cuda", persistent_workers=cfg["workers"] > 0,
        prefetch_factor=4 if cfg["workers"] > 0 else None, worker_init_fn=_worker_init,
    )
    total_steps = cfg["steps"]
    budget = cfg["time_budget"]
    t0 = time.time() - elapsed_before
    log_file = open(out / "train_log.jsonl", "a", encoding="utf-8")
    log.info("params=%d classes=%d real=%d synthetic/epoch=%d device=%s", n_params, codec.num_classes,
             len(real), n_synth, device)
    try:
        from tqdm import tqdm
        bar = tqdm(total=total_steps, initial=step, disable=not sys.stderr.isatty(), desc="train")
    except ImportError:  # pragma: no cover - tqdm is in requirements
        bar = None
    model.train()
    loss_avg, seen, t_window = None, 0, time.time()
    stop_reason = "steps"
    for images, widths, targets, target_lengths, _ in loader:
        elapsed = time.time() - t0
        progress = step / total_steps
        if budget:
            progress = max(progress, elapsed / budget)
        if progress >= 1.0:
            stop_reason = "time budget" if budget and elapsed >= budget else "steps"
            break
        for g in opt.param_groups:
            g["lr"] = cfg["lr"] * lr_factor(progress, cfg["warmup"], cfg["final_lr_ratio"])
        lv = ctc_step(model, opt, images, widths, targets, target_lengths, dev)
        step += 1
        seen += images.shape[0]
        loss_avg = lv if loss_avg is None else 0.98 * loss_avg + 0.02 * lv
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss_avg:.3f}", lr=f"{opt.param_groups[0]['lr']:.2e}")
        if step % cfg["eval_every"] == 0:
            rate = seen / (time.time() - t_window)
            best = _validate(model, codec, mconf, dev_pack, cfg, out, step, loss_avg, rate, time.time() - t0,
                             best, history, log_file, device, n_params)
            seen, t_window = 0, time.time()
            _save_state(last_path, model, opt, step, best, history, time.time() - t0)
    rate = seen / max(1e-9, time.time() - t_window)
    if not history or history[-1]["step"] != step:
        best = _validate(model, codec, mconf, dev_pack, cfg, out, step, loss_avg, rate, time.time() - t0,
                         best, history, log_file, device, n_params)
    _save_state(last_path, model, opt, step, best, history, time.time() - t0)
    log.info("stopped (%s) at step %d after %.0f s; best mean dev CER %.4f", stop_reason, step,
             time.time() - t0, best["mean_cer"])
    log_file.close()
    return best


def _save_state(path: Path, model, opt, step, best, history, elapsed) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "best": best,
                "history": history, "elapsed": elapsed}, tmp)
    tmp.replace(path)


def _validate(model, codec, mconf, dev_pack, cfg, out, step, loss_avg, rate, elapsed, best, history,
              log_file, device, n_params):
    model.eval()
    rec = Recognizer(model, codec, device)
    result = evaluate_pack(rec, dev_pack, cfg["eval_max_lines"])
    model.train()
    entry = {"step": step, "elapsed_s": round(elapsed, 1), "loss": round(loss_avg or 0.0, 4),
             "train_lines_per_s": round(rate, 1), **result}
    history.append(entry)
    log_file.write(json.dumps(entry) + "\n")
    log_file.flush()
    log.info("step %d loss %.3f dev mean CER %.4f %s (%.0f lines/s)", step, loss_avg or 0.0,
             result["mean_cer"], {s: v["cer"] for s, v in result["sources"].items()}, rate)
    if best is None or result["mean_cer"] < best["mean_cer"]:
        best = dict(entry)
        _write_artifact(model, codec, mconf, cfg, out, best, n_params, device)
    return best


def _write_artifact(model, codec, mconf, cfg, out, best, n_params, device) -> None:
    version = cfg["version"] or time.strftime("%Y%m%d-%H%M")
    card = {
        "name": "quire-recognizer", "version": version, "architecture": "CNN(4 stages)-BiLSTM-CTC, see ml/recognizer/model.py",
        "parameters": n_params, "input_height_px": mconf.height, "horizontal_downsampling": mconf.downsample,
        "charset_size": len(codec.charset), "charset": codec.charset,
        "training_data": f"real lines {cfg['train_packs']} + synthetic lines (ratio {cfg['synthetic_ratio']}) "
                         f"from {cfg['fonts_dir']} and {cfg['text_file']}",
        "training_steps": best["step"], "batch_size": cfg["batch_size"], "training_seconds": best["elapsed_s"],
        "device": device, "dev_mean_cer": best["mean_cer"],
        "dev": best["sources"], "code_commit": code_commit(), "date": utc_now(),
        "decoding": "greedy (beam search available)", "weights": "float16",
        "licence": "model weights: CC-BY-SA 4.0 (trained on CC-BY-SA/CC-BY ground truth)",
        "command": " ".join(sys.argv),
    }
    save_artifact(out / "recognizer.pt", kind="recognizer", version=version, config=mconf.to_dict(),
                  state_dict=model.state_dict(), card=card, codec=codec.to_dict())
    write_card_markdown(out / "recognizer.md", card, f"Model card: quire-recognizer {version}")


def load_config(path: str | None, overrides: dict) -> dict:
    """DEFAULTS, updated by a JSON config file, updated by non-None CLI overrides."""
    cfg = dict(DEFAULTS)
    if path:
        cfg.update(json.loads(Path(path).read_text()))
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown config keys: {sorted(unknown)}")
    return cfg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init", help="fine-tune from this recognizer artifact (keeps its codec and architecture)")
    for key in ("steps", "batch_size", "workers", "eval_every", "eval_max_lines", "seed"):
        ap.add_argument("--" + key.replace("_", "-"), type=int, dest=key)
    for key in ("lr", "time_budget", "synthetic_ratio", "tight_stretch", "loose_squeeze", "real_shear",
                "hand_variety"):
        ap.add_argument("--" + key.replace("_", "-"), type=float, dest=key)
    ap.add_argument("--train-packs", nargs="+", dest="train_packs")
    ap.add_argument("--dev-pack", nargs="+", dest="dev_pack",
                    help="dev line pack(s); several are scored as one (give their lines distinct sources)")
    ap.add_argument("--fonts-dir", dest="fonts_dir")
    ap.add_argument("--text-file", dest="text_file")
    ap.add_argument("--version")
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument("--widen-lstm", type=int, metavar="UNITS",
                    help="with --init: grow the BiLSTM to UNITS per direction, function-preserving")
    ap.add_argument("--widen-cnn", type=int, nargs=4, metavar=("C1", "C2", "C3", "C4"),
                    help="with --init: grow the four convolutional stages to these channels, function-preserving")
    ap.add_argument("--init-dropout", type=float, metavar="P", help="with --init: use this dropout instead")
    ap.add_argument("--init-downsample", type=int, choices=(2, 4), metavar="F",
                    help="with --init: read one CTC frame per F input columns instead (2 or 4)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:  # loader workers pass batches through /dev/shm; small ones (containers, VMs) make them crash
        if shutil.disk_usage("/dev/shm").free < 2 << 30:
            torch.multiprocessing.set_sharing_strategy("file_system")
    except OSError:
        pass
    overrides = {k: getattr(args, k) for k in DEFAULTS if hasattr(args, k)}
    cfg = load_config(args.config, overrides)
    (args.out).mkdir(parents=True, exist_ok=True)
    (args.out / "config.json").write_text(json.dumps(cfg, indent=2))
    init_config = {k: v for k, v in (("dropout", args.init_dropout), ("downsample", args.init_downsample))
                   if v is not None}
    best = train(cfg, args.out, args.device, args.resume, args.init, args.widen_lstm, init_config,
                 widen_cnn_to=tuple(args.widen_cnn) if args.widen_cnn else None)
    print(json.dumps(best))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
