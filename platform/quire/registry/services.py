"""Registry operations shared by the API, the admin and the management commands.

    production(kind)                  the production ModelVersion of a kind, or None
    promote(version, user, override)  candidate/archived → production (the old one archived)
    rollback(kind, user)              production → archived, the previous production restored
    start_training(kind, user, raw)   a queued TrainingJob on the `train` queue
    training_params(raw)              validated training parameters (defaults filled in)

A candidate's metrics (written by workers.training) hold its own figures and those of the
production version it was trained from, measured in the same run on the same lines::

    {"heldout": {"cer", "wer", "lines", "chars"}, "dev": {...} | absent,
     "baseline": {"version": str, "heldout": {...}, "dev": {...} | absent}, ...}

Promotion compares them: a candidate whose held-out CER (the ground truth held out from its
training) is higher than the baseline's, while that baseline is still production, is "worse" and
is promoted only with `override=True`.
"""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from quire.documents.models import Line
from quire.jobs.models import InvalidTransition, JobState, TrainingJob

from .dispatch import enqueue_training
from .models import ModelVersion

log = logging.getLogger(__name__)

#: Fewest ground-truth lines a retraining accepts (at least one to train on, one held out).
MIN_GROUND_TRUTH_LINES = 2

#: name: (type, default, minimum, maximum) of each training parameter.
TRAINING_PARAMS: dict[str, tuple[type, object, float | None, float | None]] = {
    "steps": (int, 300, 1, 1_000_000),
    "time_budget_s": (float, 900.0, 0, 7 * 86400),  # 0 = steps only
    "batch_size": (int, 16, 1, 256),
    "lr": (float, 3e-4, 1e-7, 1e-1),
    "heldout_fraction": (float, 0.2, 0.01, 0.9),
    "eval_every": (int, 50, 1, 1_000_000),
    "synthetic_ratio": (float, 0.0, 0.0, 0.9),
    "mix_base": (bool, False, None, None),
    "base_max_lines": (int, 2000, 0, 1_000_000),
    "dev_max_lines": (int, 300, 0, 100_000),  # 0 = no dev-set evaluation
    "seed": (int, 1234, 0, 2**31 - 1),
}


class RegistryError(Exception):
    """A registry action that cannot be done; `status` is the HTTP status the API answers."""

    status = 409

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class PromotionRefused(RegistryError):
    """The candidate is worse than production (override needed) or cannot be promoted."""


class RollbackImpossible(RegistryError):
    """No production version, or no earlier production version to go back to."""


class TrainingRefused(RegistryError):
    """Bad training parameters, an unsupported kind, or too little ground truth (HTTP 400)."""

    status = 400


class TrainingBusy(RegistryError):
    """A training job of that kind is already queued or running (HTTP 409)."""


def production(kind: str) -> ModelVersion | None:
    """The production version of `kind` ('detector' or 'recognizer'), or None."""
    return ModelVersion.objects.filter(kind=kind, state=ModelVersion.State.PRODUCTION).first()


def comparison(candidate: ModelVersion, current: ModelVersion | None) -> dict | None:
    """How `candidate` compares with production `current` on the held-out ground truth.

    Returns {"candidate_cer", "production_cer", "worse": bool, "production": version} when the
    candidate's metrics hold a baseline measured on that same production version, else None.
    """
    baseline = (candidate.metrics or {}).get("baseline") or {}
    if current is None or baseline.get("version") != current.version:
        return None
    try:
        ours = float(candidate.metrics["heldout"]["cer"])
        theirs = float(baseline["heldout"]["cer"])
    except (KeyError, TypeError, ValueError):
        return None
    return {"candidate_cer": ours, "production_cer": theirs, "worse": ours > theirs,
            "production": current.version}


def promote(version: ModelVersion, user=None, override: bool = False) -> ModelVersion:
    """Make `version` the production version of its kind; the previous one becomes archived.

    Raises PromotionRefused when the candidate is worse than production on the held-out ground
    truth of its training run and `override` is False. Promoting the production version is a no-op.
    """
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        current = (ModelVersion.objects.select_for_update()
                   .filter(kind=version.kind, state=ModelVersion.State.PRODUCTION).first())
        if current is not None and current.pk == version.pk:
            return version
        cmp = comparison(version, current)
        if cmp and cmp["worse"] and not override:
            raise PromotionRefused(
                f"{version.name} is worse than production {current.name} on held-out ground truth "
                f"(CER {cmp['candidate_cer']:.4f} > {cmp['production_cer']:.4f}); "
                f"send override=true to promote it anyway")
        if current is not None:
            ModelVersion.objects.filter(pk=current.pk).update(state=ModelVersion.State.ARCHIVED)
        ModelVersion.objects.filter(pk=version.pk).update(state=ModelVersion.State.PRODUCTION,
                                                          promoted_at=timezone.now())
    version.refresh_from_db()
    log.info("%s promoted by %s (override=%s, was %s)", version.name, user, override,
             current.name if current else None)
    return version


def rollback(kind: str, user=None) -> ModelVersion:
    """Archive the production version of `kind` and restore the one promoted before it.

    The restored version keeps its promotion date, so successive roll-backs walk further back.
    Raises RollbackImpossible when there is no production version or none before it.
    """
    with transaction.atomic():
        current = (ModelVersion.objects.select_for_update()
                   .filter(kind=kind, state=ModelVersion.State.PRODUCTION).first())
        if current is None:
            raise RollbackImpossible(f"no production {kind} to roll back")
        earlier = ModelVersion.objects.filter(kind=kind, state=ModelVersion.State.ARCHIVED,
                                              promoted_at__isnull=False)
        if current.promoted_at is not None:
            earlier = earlier.filter(promoted_at__lt=current.promoted_at)
        previous = earlier.order_by("-promoted_at", "-id").first()
        if previous is None:
            raise RollbackImpossible(f"{current.name} has no earlier production version to go back to")
        ModelVersion.objects.filter(pk=current.pk).update(state=ModelVersion.State.ARCHIVED)
        ModelVersion.objects.filter(pk=previous.pk).update(state=ModelVersion.State.PRODUCTION)
    previous.refresh_from_db()
    log.info("%s rolled back to %s by %s", current.name, previous.name, user)
    return previous


def _coerce(name: str, kind: type, value):
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off", ""}:
            return False
        raise TrainingRefused(f"{name} must be true or false, got {value!r}")
    if isinstance(value, bool):
        raise TrainingRefused(f"{name} must be a number, got {value!r}")
    try:
        number = kind(value)
        if kind is int and float(value) != number:
            raise ValueError
    except (TypeError, ValueError):
        raise TrainingRefused(f"{name} must be {'an integer' if kind is int else 'a number'}, got {value!r}") from None
    return number


def training_params(raw: dict | None) -> dict:
    """Training parameters: `raw` values checked against TRAINING_PARAMS, defaults filled in.

    Raises TrainingRefused naming an unknown parameter or a value of the wrong type or range.
    """
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(TRAINING_PARAMS))
    if unknown:
        raise TrainingRefused(f"unknown training parameter(s): {', '.join(unknown)}; "
                              f"known: {', '.join(TRAINING_PARAMS)}")
    params = {}
    for name, (kind, default, low, high) in TRAINING_PARAMS.items():
        value = _coerce(name, kind, raw[name]) if raw.get(name) not in (None, "") else default
        if low is not None and not low <= value <= high:
            raise TrainingRefused(f"{name} must be between {low} and {high}, got {value}")
        params[name] = value
    return params


def ground_truth_lines():
    """Every corrected line (`is_ground_truth`) with text, of every user: the retraining data."""
    return Line.objects.filter(is_ground_truth=True).exclude(text="").select_related("page")


def start_training(kind: str, user=None, raw_params: dict | None = None, enqueue: bool = True) -> TrainingJob:
    """Create a queued TrainingJob for `kind` and send it to the `train` queue after commit
    (`enqueue=False`: the caller runs it, e.g. `manage.py retrain` in-process). A message that is
    lost on the way is sent again by the periodic sweep once the job has been queued too long
    (workers.training.requeue_lost_training_jobs).

    Raises TrainingRefused (bad parameters, a kind that cannot be retrained, fewer than
    MIN_GROUND_TRUTH_LINES corrected lines) or TrainingBusy (one already queued or running).
    """
    if kind != ModelVersion.Kind.RECOGNIZER:
        raise TrainingRefused(f"only the recognizer can be retrained from corrected lines, not {kind!r}")
    params = training_params(raw_params)
    n_lines = ground_truth_lines().count()
    if n_lines < MIN_GROUND_TRUTH_LINES:
        raise TrainingRefused(f"retraining needs at least {MIN_GROUND_TRUTH_LINES} corrected lines "
                              f"(ground truth); there are {n_lines}")
    parent = production(kind)
    params["parent"] = parent.version if parent else None
    params["ground_truth_lines"] = n_lines
    try:
        with transaction.atomic():
            job = TrainingJob.objects.create(kind=kind, created_by=user, params=params)
            if enqueue:
                transaction.on_commit(lambda: enqueue_training(job.pk))
    except IntegrityError:
        active = TrainingJob.objects.filter(kind=kind, state__in=[JobState.QUEUED, JobState.RUNNING]).first()
        raise TrainingBusy(f"a {kind} training job is already {active.state if active else 'active'}"
                           + (f" (#{active.pk})" if active else "")) from None
    return job


def cancel_training(job: TrainingJob) -> TrainingJob:
    """Cancel a queued or running training job (a running one stops at its next step).

    Raises RegistryError (409) when the job is already finished.
    """
    try:
        job.transition(JobState.CANCELED)
    except InvalidTransition as exc:
        raise RegistryError(f"cannot cancel a {exc.current} training job") from None
    return job
