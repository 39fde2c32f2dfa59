"""Retraining of the recognizer from ground truth, callable without a broker (the Celery task
`workers.tasks.train_model` is a thin shell around :func:`execute`).

    export_ground_truth(lines, out_dir)   corrected lines → line crops + lines.jsonl (../shared/data format)
    split_heldout(records, fraction)      a seeded split of ground truth for validation
    run_training(job)                     the whole run below, progress written to the TrainingJob row
    fail_stuck_training_jobs()            the sweep for running jobs whose worker was lost
    requeue_lost_training_jobs()          the sweep for queued jobs whose message was lost

One run: the production recognizer (the registry's, or the shipped artifact registered first) is
fine-tuned (`ml.recognizer.finetune`) on the corrected lines minus a held-out share, optionally
mixed with base training lines and synthetic lines; the new model and its parent are then both
scored on the held-out lines and on (a capped subset of) the dev set, and the new model is
registered as a candidate with those figures (see `quire.registry.services` for promotion).

Data paths (read-only, never downloaded): dev set `QUIRE_DEV_LINES` (default
`../shared/data/dev/lines.jsonl`), base training lines `QUIRE_BASE_TRAIN_LINES` (default
`../shared/data/train/lines.jsonl`), fonts and text for synthetic lines under `../shared/data`.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import random
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from billiard.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils import timezone
from PIL import Image

from ml.crop import crop_line
from ml.recognizer.data import pack_lines
from ml.recognizer.finetune import TrainingCanceled, evaluate_artifact, finetune
from quire.documents.storage import StorageUnavailable, get_bytes
from quire.jobs.models import InvalidTransition, JobState, TrainingJob
from quire.registry import services
from quire.registry.dispatch import enqueue_training
from quire.registry.models import ModelVersion

from . import models as model_store
from .transcription import fail_job, resend_stuck_job

log = logging.getLogger(__name__)

SHARED_DATA = Path(settings.BASE_DIR).parent / "shared" / "data"
GROUND_TRUTH_SOURCE = "quire_ground_truth"
PROGRESS_EVERY_S = 1.0


class TrainingError(Exception):
    """A run that cannot go on; `code` is the TrainingJob's error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _data_path(env: str, default: Path) -> Path:
    return Path(os.environ.get(env) or default)


#: Real CC-BY dev lines committed with the tests (tests/fixtures/ATTRIBUTION.md): the dev set used
#: where ../shared/data is not mounted, so that a candidate is always scored beside production.
BUNDLED_DEV_LINES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "lines.jsonl"


def dev_lines_path() -> Path:
    """`QUIRE_DEV_LINES`, else ../shared/data/dev/lines.jsonl, else the bundled dev sample."""
    path = _data_path("QUIRE_DEV_LINES", SHARED_DATA / "dev" / "lines.jsonl")
    if not path.exists() and "QUIRE_DEV_LINES" not in os.environ and BUNDLED_DEV_LINES.exists():
        return BUNDLED_DEV_LINES
    return path


def base_lines_path() -> Path:
    return _data_path("QUIRE_BASE_TRAIN_LINES", SHARED_DATA / "train" / "lines.jsonl")


# ----------------------------------------------------------------------------- ground truth export
def _page_gray(page) -> np.ndarray:
    with Image.open(io.BytesIO(get_bytes(page.image.name))) as image:
        return np.asarray(image.convert("L"), dtype=np.uint8)


def export_ground_truth(lines, out_dir: str | Path) -> list[dict]:
    """Write the crops of `lines` (Line rows with text) and their `lines.jsonl` into `out_dir`.

    Crops are cut from each page's stored normalised image along the line polygon (ml.crop,
    as the pipeline does: outside the polygon painted with paper, the baseline straightened)
    and saved as PNG under `lines/<page id>/<line id>.png`. Records follow ../shared/data's
    `lines.jsonl` (id, image, text, source, lang, handwritten, group, page, page_image,
    page_size, bbox, polygon, baseline, line_type, region_type, xml_line_id); `crop_scale` is
    null because the crop is cut along the polygon, not the bbox. Lines whose polygon cannot
    be cut are skipped (logged). Returns the records written. Raises StorageUnavailable.
    """
    out_dir = Path(out_dir)
    records: list[dict] = []
    by_page: dict[int, list] = {}
    for line in lines:
        by_page.setdefault(line.page_id, []).append(line)
    for page_lines in by_page.values():
        page = page_lines[0].page
        gray = _page_gray(page)
        for line in sorted(page_lines, key=lambda ln: ln.index):
            try:
                crop = crop_line(gray, line.polygon, line.baseline or [])
            except ValueError as exc:
                log.warning("line %s not exported: %s", line.pk, exc)
                continue
            rel = Path("lines") / str(page.pk) / f"{line.pk}.png"
            (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(crop).save(out_dir / rel)
            records.append({
                "id": f"quire-line-{line.pk}", "image": rel.as_posix(), "text": line.text,
                "source": GROUND_TRUTH_SOURCE, "lang": "", "handwritten": True,
                "group": f"document-{page.document_id}", "page": f"page-{page.pk}",
                "page_image": page.image.name, "page_size": [page.width, page.height], "bbox": line.bbox,
                "crop_scale": None, "polygon": line.polygon, "baseline": line.baseline,
                "line_type": "", "region_type": "", "xml_line_id": f"line-{line.pk}",
            })
    write_jsonl(out_dir / "lines.jsonl", records)
    return records


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return path


def split_heldout(records: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, held-out) from `records`: round(n · fraction) lines held out, at least one on
    each side; the same seed gives the same split. Raises ValueError for fewer than 2 records."""
    if len(records) < 2:
        raise ValueError(f"need at least 2 ground-truth lines to hold some out, got {len(records)}")
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n_held = min(len(records) - 1, max(1, round(len(records) * fraction)))
    held = set(order[:n_held])
    return ([r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held])


def _absolute(records: list[dict], folder: Path) -> list[dict]:
    return [dict(r, image=str((folder / r["image"]).resolve())) for r in records]


def _subset_jsonl(src: Path, dst: Path, max_lines: int) -> Path:
    """Every k-th record of `src` (at most `max_lines`), images made absolute, written to `dst`."""
    rows = [json.loads(r) for r in src.read_text(encoding="utf-8").splitlines() if r.strip()]
    if max_lines and len(rows) > max_lines:
        rows = rows[:: max(1, len(rows) // max_lines)][:max_lines]
    return write_jsonl(dst, _absolute(rows, src.parent))


# ------------------------------------------------------------------------------------ job helpers
def start_training_job(job_id: int) -> TrainingJob | None:
    """Claim the job (`queued` → `running`, one conditional UPDATE) and return it; None when it
    is gone, final, or already running: a second delivery of its message (redelivered, or re-sent
    by the sweep while the first one was only late) never starts a second training, even when
    both arrive at once. A job left running by a lost worker is failed by
    `fail_stuck_training_jobs`."""
    job = TrainingJob.objects.filter(pk=job_id).first()
    if job is None or job.state != JobState.QUEUED:
        return None
    try:
        job.transition(JobState.RUNNING, only_from=(JobState.QUEUED,))
    except InvalidTransition:
        return None
    return job


class _Reporter:
    """Writes progress and live metrics to the job row (at most once a second, and at every
    validation) and answers `should_cancel` from the row's state (read at most once a second)."""

    def __init__(self, job: TrainingJob):
        self.job = job
        self.metrics: dict = dict(job.metrics or {})
        self.last_write = 0.0
        self.last_check = 0.0
        self.canceled = False

    def update(self, fraction: float | None = None, force: bool = False, **values) -> None:
        self.metrics.update(values)
        now = time.monotonic()
        if not force and now - self.last_write < PROGRESS_EVERY_S:
            return
        self.last_write = now
        fields = {"metrics": self.metrics}
        if fraction is not None:
            fields["progress"] = min(0.99, max(0.0, fraction))
        TrainingJob.objects.filter(pk=self.job.pk, state=JobState.RUNNING).update(**fields)

    def on_step(self, state: dict) -> None:
        values = {k: state[k] for k in ("step", "steps", "epoch", "loss", "elapsed_s") if k in state}
        validated = "val_cer" in state
        if validated:
            values.update(val_cer=state["val_cer"], val_wer=state["val_wer"])
            history = list(self.metrics.get("history", []))
            history.append({k: state.get(k) for k in ("step", "epoch", "loss", "val_cer", "val_wer")})
            values["history"] = history[-200:]
        self.update(0.05 + 0.8 * state.get("fraction", 0.0), force=validated, phase="training", **values)

    def should_cancel(self) -> bool:
        now = time.monotonic()
        if now - self.last_check >= PROGRESS_EVERY_S:
            self.last_check = now
            state = TrainingJob.objects.filter(pk=self.job.pk).values_list("state", flat=True).first()
            self.canceled = state != JobState.RUNNING
        return self.canceled


# ------------------------------------------------------------------------------------------- run
def parent_version() -> ModelVersion:
    """The production recognizer; the shipped artifact is registered first when there is none.
    Raises TrainingError('no_model') when there is no recognizer at all."""
    current = services.production(ModelVersion.Kind.RECOGNIZER)
    if current is None and model_store.SHIPPED[ModelVersion.Kind.RECOGNIZER].exists():
        model_store.register_shipped_models()
        current = services.production(ModelVersion.Kind.RECOGNIZER)
    if current is None:
        raise TrainingError("no_model", "there is no production recognizer to fine-tune")
    return current


def run_training(job: TrainingJob, work_dir: str | Path | None = None) -> ModelVersion:
    """Fine-tune, evaluate and register a candidate for running TrainingJob `job`; marks it succeeded.

    Raises TrainingError (no model, too little ground truth), TrainingCanceled (the job was
    canceled), StorageUnavailable, and what torch raises.
    """
    params = services.training_params({k: v for k, v in job.params.items() if k in services.TRAINING_PARAMS})
    report = _Reporter(job)
    parent = parent_version()
    parent_path = model_store.version_path(parent)
    report.update(0.01, force=True, phase="exporting ground truth", parent=parent.version)
    with tempfile.TemporaryDirectory(prefix=f"quire-train-{job.pk}-", dir=work_dir) as tmp:
        tmp = Path(tmp)
        records = export_ground_truth(services.ground_truth_lines().order_by("page_id", "index"), tmp / "gt")
        try:
            train, heldout = split_heldout(records, params["heldout_fraction"], params["seed"])
        except ValueError as exc:
            raise TrainingError("no_ground_truth", str(exc)) from None
        train_jsonl = write_jsonl(tmp / "train.jsonl", _absolute(train, tmp / "gt"))
        heldout_jsonl = write_jsonl(tmp / "heldout.jsonl", _absolute(heldout, tmp / "gt"))
        height = int(model_store.read_card_config(parent_path)["height"])
        pack_lines(train_jsonl, tmp / "pack_gt", height)
        packs = [tmp / "pack_gt"]
        data_note = f"{len(train)} corrected lines (held out: {len(heldout)})"
        if params["mix_base"] and params["base_max_lines"] and base_lines_path().exists():
            report.update(0.03, force=True, phase="packing base training lines")
            pack_lines(_subset_jsonl(base_lines_path(), tmp / "base.jsonl", params["base_max_lines"]),
                       tmp / "pack_base", height)
            packs.append(tmp / "pack_base")
            data_note += f" + up to {params['base_max_lines']} base lines of {base_lines_path()}"
        fonts, text = SHARED_DATA / "fonts", SHARED_DATA / "text" / "austen_lines.txt"
        synthetic = params["synthetic_ratio"] if fonts.exists() and text.exists() else 0.0
        if synthetic:
            data_note += f" + synthetic lines (ratio {synthetic})"
        report.update(0.05, force=True, phase="training", train_lines=len(train), heldout_lines=len(heldout),
                      training_data=data_note)
        version = f"{time.strftime('%Y%m%d-%H%M%S')}-ft{job.pk}"
        result = finetune(
            parent_path, packs, heldout_jsonl, tmp / "out", steps=params["steps"],
            time_budget_s=params["time_budget_s"], batch_size=params["batch_size"], lr=params["lr"],
            eval_every=params["eval_every"], synthetic_ratio=synthetic, fonts_dir=fonts, text_file=text,
            seed=params["seed"], version=version, device=settings.QUIRE_DEVICE,
            progress=report.on_step, should_cancel=report.should_cancel,
            card_extra={"training_data": data_note, "training_job": job.pk},
        )
        report.update(0.86, force=True, phase="evaluating")
        baseline = {"version": parent.version, "heldout": _strip(evaluate_artifact(parent_path, heldout_jsonl))}
        metrics = {"heldout": _strip(result["heldout"]), "parameters": result["parameters"],
                   "training": {k: result[k] for k in ("steps", "epochs", "seconds", "loss", "train_lines")},
                   "training_data": data_note, "baseline": baseline}
        if result["unknown_chars"]:
            metrics["training"]["unknown_chars"] = result["unknown_chars"]
        if params["dev_max_lines"] and dev_lines_path().exists():
            dev_jsonl = _subset_jsonl(dev_lines_path(), tmp / "dev.jsonl", params["dev_max_lines"])
            new_dev = evaluate_artifact(result["artifact"], dev_jsonl)
            metrics["dev"] = _strip(new_dev)
            metrics["lines_per_s"] = new_dev["lines_per_s"]
            report.update(0.93, force=True, phase="evaluating")
            baseline["dev"] = _strip(evaluate_artifact(parent_path, dev_jsonl))
        if report.should_cancel():
            raise TrainingCanceled("training canceled during evaluation")
        report.update(0.97, force=True, phase="registering")
        candidate, _ = model_store.register_artifact(
            result["artifact"], ModelVersion.Kind.RECOGNIZER, state=ModelVersion.State.CANDIDATE,
            metrics=metrics, parent=parent, training_job=job, created_by=job.created_by)
    report.metrics.update(phase="done", candidate={"id": candidate.pk, "version": candidate.version},
                          heldout=metrics["heldout"], baseline=baseline,
                          **({"dev": metrics["dev"]} if "dev" in metrics else {}))
    job.transition(JobState.SUCCEEDED, metrics=report.metrics)
    return candidate


def env_seconds(name: str, default: float) -> float:
    """A positive number of seconds from the environment variable ``name``; ``default`` when it
    is unset, or (logged as an error, so a typo never stops the sweep) when it is not one."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if math.isfinite(value) and value > 0:
        return value
    log.error("%s=%r is not a positive number of seconds; using %s", name, raw, default)
    return float(default)


def stuck_after_s() -> float:
    """Seconds after its start at which a `running` training job counts as lost:
    QUIRE_TRAIN_STUCK_AFTER_S, by default the training task's hard time limit
    (QUIRE_TRAIN_SOFT_TIME_LIMIT + 600 s, see workers.tasks) plus 15 minutes, so that a run that
    is merely long is never taken for a lost one."""
    limit = env_seconds("QUIRE_TRAIN_SOFT_TIME_LIMIT", 6 * 3600)
    return env_seconds("QUIRE_TRAIN_STUCK_AFTER_S", limit + 600 + 900)


def fail_stuck_training_jobs(now=None, after_s: float | None = None) -> list[int]:
    """Fail (code `stuck`) every training job still `running` `after_s` seconds (default
    :func:`stuck_after_s`) after it started: its worker was lost, and a redelivered message
    does not restart a running job (:func:`start_training_job`), so without this the kind
    stays blocked for new trainings (one active job per kind). Returns the ids failed."""
    now = now or timezone.now()
    deadline = now - timedelta(seconds=stuck_after_s() if after_s is None else after_s)
    failed = []
    for job in TrainingJob.objects.filter(state=JobState.RUNNING, started_at__lt=deadline).order_by("pk"):
        try:
            job.transition(JobState.FAILED, error_code="stuck",
                           error_message=f"no outcome {int((now - job.started_at).total_seconds())} s after "
                                         "its start: the worker running it was lost")
        except InvalidTransition:
            continue  # it finished meanwhile
        failed.append(job.pk)
    if failed:
        log.warning("sweep: stuck training jobs failed: %s", failed)
    return failed


def queued_stuck_after_s() -> float:
    """Seconds in `queued` after which a training job's message counts as lost:
    QUIRE_TRAIN_QUEUED_STUCK_AFTER_S, by default QUIRE_JOB_STUCK_AFTER_S (as for transcription)."""
    return env_seconds("QUIRE_TRAIN_QUEUED_STUCK_AFTER_S", settings.QUIRE_JOB_STUCK_AFTER_S)


def requeue_lost_training_jobs(now=None, after_s: float | None = None, enqueue=enqueue_training) -> dict:
    """Send again every training job still `queued` `after_s` seconds (default
    :func:`queued_stuck_after_s`) after it was queued: its message was lost (the broker was down
    when it was sent, or lost it). Each goes through the transcription sweep's step
    (`transcription.resend_stuck_job`): `queued_at` renewed and an attempt counted, then
    `enqueue(job_id)`; at QUIRE_JOB_MAX_ATTEMPTS attempts it fails `stuck` instead, freeing the
    kind. A message that was only late is harmless: the first delivery claims the job, the
    other is skipped (:func:`start_training_job`). Returns {"requeued": [ids], "failed": [ids]}.
    """
    now = now or timezone.now()
    deadline = now - timedelta(seconds=queued_stuck_after_s() if after_s is None else after_s)
    outcome: dict[str, list[int]] = {"requeued": [], "failed": []}
    for job in TrainingJob.objects.filter(state=JobState.QUEUED, queued_at__lt=deadline).order_by("pk"):
        if (result := resend_stuck_job(job, now, enqueue)) is not None:
            outcome[result].append(job.pk)
    if any(outcome.values()):
        log.warning("sweep: lost training messages: %s", outcome)
    return outcome


def _strip(result: dict) -> dict:
    """Evaluation figures worth keeping in the registry (per-source detail included)."""
    return {k: result[k] for k in ("cer", "wer", "lines", "chars", "sources") if k in result}


def execute(job_id: int) -> str:
    """Run TrainingJob `job_id` to an outcome ('succeeded', 'failed', 'canceled', 'skipped');
    every failure becomes the job's error code and message, never a dead worker."""
    job = start_training_job(job_id)
    if job is None:
        return "skipped"
    try:
        run_training(job)
        return JobState.SUCCEEDED
    except TrainingCanceled:
        job.refresh_from_db()
        if job.state == JobState.RUNNING:  # canceled from inside (should not happen): record it
            job.transition(JobState.CANCELED)
        return JobState.CANCELED
    except SoftTimeLimitExceeded:
        fail_job(job, "timeout", "training exceeded the task's time limit")
    except TrainingError as exc:
        fail_job(job, exc.code, str(exc))
    except StorageUnavailable as exc:
        fail_job(job, "storage_unavailable", str(exc))
    except Exception as exc:  # noqa: BLE001 - every failure becomes a job outcome
        log.exception("training job %s failed", job_id)
        fail_job(job, "internal_error", f"{type(exc).__name__}: {exc}")
    return JobState.FAILED
