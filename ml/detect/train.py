"""Train the line detector.

    python -m ml.detect.train --data .gpu_data/detector --out runs/detector --device cuda \
        --time-budget 480 --workers 14

``--data``: a pack folder (``python -m ml.detect.pack``) or the shared data folder (packed on the
fly into ``OUT/pack``). Training stops at the time budget (wall clock, including evaluation),
evaluates on the dev pages of the pack every ``--eval-every`` seconds and keeps the best
checkpoint (macro F1 over sources) in ``OUT/detector.pt`` with its card ``OUT/detector.md``;
``OUT/detector_log.jsonl`` logs losses and evaluations. SIGTERM/SIGINT stop it gracefully.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import shutil
import signal
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

from ml.detect import FORMAT, INPUT_LONG, prepare
from ml.detect.data import DetectorDataset, load_pack, to_float
from ml.detect.metrics import page_counts, prf
from ml.detect.model import DEPTHS, WIDTHS, LineUNet, count_params
from ml.detect.postprocess import maps_to_lines

VERSION_PREFIX = "1"


def _worker_init(_):
    # one thread per loader worker: the workers already fill the cores
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def loss_fn(logits, target, weight):
    """Weighted BCE (baseline pixels ×4, they are rare) + soft Dice per channel, averaged."""
    logits = logits.float()
    pw = torch.tensor([1.0, 4.0], device=logits.device).view(1, 2, 1, 1)
    w = weight * (1 + (pw - 1) * target)
    bce = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * w).sum() / w.sum().clamp(min=1)
    p = torch.sigmoid(logits) * weight
    t = target * weight
    inter = (p * t).sum((0, 2, 3))
    dice = 1 - (2 * inter + 1) / (p.sum((0, 2, 3)) + t.sum((0, 2, 3)) + 1)
    return bce + dice.mean(), bce.detach(), dice.detach()


@torch.no_grad()
def evaluate_pack(model, meta, device, amp) -> dict:
    """Dev F1 per source on the pack's dev pages (coordinates of the packed images)."""
    model.eval()
    root = Path(meta["root"])
    counts: dict = {}
    for p in meta["dev"]:
        gray = cv2.imread(str(root / p["image"]), cv2.IMREAD_GRAYSCALE)
        x, (h, w) = prepare(gray, INPUT_LONG)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            y = model(x.to(device))
        y = torch.sigmoid(y.float())[0, :, :h, :w].cpu().numpy()
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lines = maps_to_lines(y[0], y[1], (gray.shape[1], gray.shape[0]))
        c = page_counts([ln.polygon for ln in lines], p["lines"])
        agg = counts.setdefault(p["source"], [0, 0, 0])
        agg[0] += c["tp"]
        agg[1] += c["fp"]
        agg[2] += c["fn"]
    model.train()
    res = {s: prf(*v) for s, v in counts.items()}
    res["macro_f1"] = float(np.mean([r["f1"] for r in res.values()])) if counts else 0.0
    return res


def save_checkpoint(model, out: Path, cfg: dict, card: dict, version: str):
    sd = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    ck = {"format": FORMAT, "version": version, "config": cfg, "state_dict": sd, "card": card}
    tmp = out / "detector.pt.tmp"
    torch.save(ck, tmp)
    tmp.replace(out / "detector.pt")
    (out / "detector.md").write_text(card_markdown(card, version))


def card_markdown(card: dict, version: str) -> str:
    dev = card.get("dev", {})
    rows = "\n".join(f"| {s} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['tp']} | {r['fp']} | {r['fn']} |"
                     for s, r in dev.items() if isinstance(r, dict))
    return f"""# quire-detector@{version}

Text line detector of Quire (`ml/detect`).

- Architecture: {card['architecture']}
- Parameters: {card['params']:,}
- Input: page scaled so its long side is {card['input_long']} px, grayscale, ink = 1 - gray/255,
  padded to a multiple of 32; outputs line-body and baseline probability maps.
- Training data: {card['training_data']}
- Training: {card['steps']} steps, batch {card['batch']}, crops {card['crop']} px, AdamW lr {card['lr']},
  {card['seconds']:.0f} s on {card['device']}; checkpoint chosen at step {card['best_step']} by dev macro F1.
- Command: `{card['command']}`
- Date: {card['date']}

## Dev line detection (10 dev pages, IoU ≥ 0.5 on polygon boxes, greedy one-to-one; typed Stanford lines
and predictions mostly outside the ground-truth area not scored; packed 1024 px pages)

| source | precision | recall | F1 | TP | FP | FN |
|---|---|---|---|---|---|---|
{rows}

Macro F1: {dev.get('macro_f1', 0):.3f}

## Licence and sources

Trained on CC-BY / CC-BY-SA line data (Joseph Hooker correspondence, Copiste d'un jour (BAnQ),
CREMMA-MSS-20) and synthetic pages from OFL/Apache handwriting fonts and public-domain Austen text;
see `../shared/data/README.md`.
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description="Train the Quire line detector.")
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--time-budget", type=float, default=600.0, help="seconds of wall clock, all included")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--batch", type=int, default=None, help="default 24 on cuda, 4 on cpu")
    ap.add_argument("--crop", type=int, default=None, help="default 512 on cuda, 384 on cpu")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval-every", type=float, default=None, help="seconds; default budget/10, ≥ 20")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", default=None, help="start from this detector.pt")
    a = ap.parse_args(argv)

    t_start = time.time()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(a.data)
    if not (data / "meta.json").exists():
        from ml.detect.pack import pack
        pack(data, out / "pack")
        data = out / "pack"
    meta = load_pack(data)
    device = torch.device(a.device)
    cuda = device.type == "cuda"
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    batch = a.batch or (24 if cuda else 4)
    crop = a.crop or (512 if cuda else 384)
    eval_every = a.eval_every or max(20.0, a.time_budget / 10)
    if cuda:
        torch.backends.cudnn.benchmark = True

    model = LineUNet(WIDTHS, DEPTHS)
    if a.init:
        ck = torch.load(a.init, map_location="cpu", weights_only=True)
        model.load_state_dict({k: v.float() for k, v in ck["state_dict"].items()})
    model.to(device).train()
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    ds = DetectorDataset(meta, crop=crop, seed=a.seed)
    workers = a.workers
    prefetch = 2
    if workers > 0:
        # loader batches travel through /dev/shm: keep what is in flight well under its free space
        try:
            free = shutil.disk_usage("/dev/shm").free
        except OSError:
            free = 0
        per_batch = batch * crop * crop * 4 * 2  # 4 uint8 channels, ×2 for copies in transit
        while workers > 0 and workers * prefetch * per_batch > 0.5 * free:
            if prefetch > 1:
                prefetch = 1
            else:
                workers -= 1
        if workers != a.workers:
            print(f"warning: /dev/shm has {free / 1e6:.0f} MB free; using {workers} loader workers", flush=True)

    def make_loader(nw):
        return DataLoader(ds, batch_size=batch, num_workers=nw, pin_memory=cuda, drop_last=True,
                          persistent_workers=nw > 0, prefetch_factor=prefetch if nw > 0 else None,
                          worker_init_fn=_worker_init if nw > 0 else None)
    dl = make_loader(workers)

    stop = {"flag": False}

    def _sig(*_):
        stop["flag"] = True
    signal.signal(signal.SIGTERM, _sig)
    signal.signal(signal.SIGINT, _sig)

    version = f"{VERSION_PREFIX}.{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%d%H%M')}"
    cfg = {"widths": list(WIDTHS), "depths": list(DEPTHS), "input_long": INPUT_LONG, "postprocess": {}}
    card = {
        "architecture": f"LineUNet (U-Net/FPN, widths {list(WIDTHS)}, depths {list(DEPTHS)}, BatchNorm, ReLU), "
                        "2 output maps (line body, baseline)",
        "params": count_params(model), "input_long": INPUT_LONG,
        "training_data": f"{len(meta['train'])} real train pages (hooker_en, copiste_dun_jour_fr, cremma_mss20_fr) "
                         f"with augmentation + synthetic pages from {len(meta['crops'])} real line crops and "
                         f"{len(meta['fonts'])} handwriting fonts (share {ds.p_synth:.0%})",
        "batch": batch, "crop": crop, "lr": a.lr, "device": str(device), "command": " ".join(["python -m ml.detect.train"] + sys.argv[1:]),
    }
    log = open(out / "detector_log.jsonl", "a")
    budget_end = t_start + a.time_budget
    # keep a margin for the final evaluation and save
    margin = 15.0 if cuda else 30.0
    t_train0 = time.time()
    train_span = max(1.0, budget_end - margin - t_train0)
    best, best_step, step, last_eval = -1.0, 0, 0, time.time()
    run_loss = None
    amp = cuda

    def do_eval():
        nonlocal best, best_step
        res = evaluate_pack(model, meta, device, amp)
        rec = {"step": step, "time": round(time.time() - t_start, 1), "eval": res}
        log.write(json.dumps(rec) + "\n")
        log.flush()
        print(f"[eval] step {step} macro F1 {res['macro_f1']:.3f} " +
              " ".join(f"{s}:{r['f1']:.3f}" for s, r in res.items() if isinstance(r, dict)), flush=True)
        if res["macro_f1"] > best:
            best, best_step = res["macro_f1"], step
            card.update({"steps": step, "best_step": step, "seconds": time.time() - t_start, "dev": res,
                         "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
            save_checkpoint(model, out, cfg, card, version)

    done = False
    while not done:
        try:
            batches = iter(dl)
        except RuntimeError as e:
            print(f"warning: data loader failed to start ({e}); continuing without workers", flush=True)
            dl = make_loader(0)
            batches = iter(dl)
        while True:
            try:
                x, y, w = next(batches)
            except StopIteration:
                break
            except RuntimeError as e:  # a loader worker died (e.g. out of shared memory): go on without workers
                print(f"warning: data loader failed ({e}); continuing without workers", flush=True)
                dl = make_loader(0)
                batches = iter(dl)
                continue
            now = time.time()
            if stop["flag"] or now > budget_end - margin:
                done = True
                break
            frac = (now - t_train0) / train_span
            lr = a.lr * min(1.0, (step + 1) / 200) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))
            for g in opt.param_groups:
                g["lr"] = lr
            x, y, w = to_float(x.to(device, non_blocking=True), y.to(device, non_blocking=True),
                               w.to(device, non_blocking=True))
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                logits = model(x)
            loss, bce, dice = loss_fn(logits, y, w)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            step += 1
            if step % 20 == 0 or step <= 3:
                lv = float(loss.detach())
                run_loss = lv if run_loss is None else 0.7 * run_loss + 0.3 * lv
                rec = {"step": step, "time": round(time.time() - t_start, 1), "loss": round(lv, 4),
                       "loss_avg": round(run_loss, 4), "bce": round(float(bce), 4),
                       "dice_body": round(float(dice[0]), 4), "dice_base": round(float(dice[1]), 4), "lr": lr}
                log.write(json.dumps(rec) + "\n")
                log.flush()
                print(json.dumps(rec), flush=True)
            if time.time() - last_eval > eval_every:
                do_eval()
                last_eval = time.time()
    do_eval()
    if best < 0 or not (out / "detector.pt").exists():
        card.update({"steps": step, "best_step": step, "seconds": time.time() - t_start, "dev": {},
                     "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
        save_checkpoint(model, out, cfg, card, version)
    log.write(json.dumps({"done": True, "steps": step, "best_macro_f1": best, "best_step": best_step,
                          "seconds": round(time.time() - t_start, 1)}) + "\n")
    log.close()
    print(f"done: {step} steps, best dev macro F1 {best:.3f} at step {best_step}, {time.time() - t_start:.0f} s; "
          f"wrote {out / 'detector.pt'}", flush=True)


if __name__ == "__main__":
    main()
