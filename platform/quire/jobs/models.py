"""Jobs and their state machine. The database row is the source of truth for a job's state.

    queued ──▶ running ──▶ succeeded
      │ ▲        │ │ ▲
      │ └────────┘ │ └─ running (redelivery after a lost worker restarts the work)
      ▼            ▼
    canceled     failed        failed/canceled ──▶ queued (retry)

Transitions are conditional UPDATEs (`WHERE state IN allowed sources`), so two processes racing
(a cancel and a worker finishing) cannot both win; the loser gets `InvalidTransition`.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone


class JobState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED})

TRANSITIONS: dict[str, frozenset[str]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELED, JobState.FAILED}),
    JobState.RUNNING: frozenset(
        {JobState.RUNNING, JobState.QUEUED, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED}
    ),
    JobState.FAILED: frozenset({JobState.QUEUED}),
    JobState.CANCELED: frozenset({JobState.QUEUED}),
    JobState.SUCCEEDED: frozenset(),
}


def sources_of(target: str) -> list[str]:
    """States from which `target` may be entered."""
    return [src for src, targets in TRANSITIONS.items() if target in targets]


class InvalidTransition(Exception):
    """Raised when a job cannot move from its current state to the requested one."""

    def __init__(self, current: str, target: str):
        super().__init__(f"cannot move a {current} job to {target}")
        self.current = current
        self.target = target


class JobBase(models.Model):
    """Fields and state machine shared by transcription and training jobs."""

    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.QUEUED, db_index=True)
    progress = models.FloatField(default=0.0, help_text="Fraction done in [0, 1].")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    queued_at = models.DateTimeField(default=timezone.now, help_text="Last time the job entered 'queued'.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Times the job was started.")
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)

    class Meta:
        abstract = True

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    def transition(self, target: str, *, only_from: tuple[str, ...] | None = None, **fields) -> None:
        """Move the job to `target` atomically and reload it.

        Entering `running` stamps `started_at`, counts an attempt and resets progress and error;
        entering a final state stamps `finished_at` (and `succeeded` sets progress to 1); entering
        `queued` stamps `queued_at` and clears timings, progress and error. `fields` are saved in the same UPDATE.
        `only_from` narrows the allowed source states (e.g. `(JobState.QUEUED,)` to claim a job:
        of two processes claiming it at once, one wins even though running → running is allowed).
        Raises InvalidTransition when the in-memory or the stored state does not allow it.
        """
        sources = [src for src in sources_of(target) if only_from is None or src in only_from]
        if self.state not in sources:
            raise InvalidTransition(self.state, target)
        now = timezone.now()
        values: dict = {"state": target}
        if target == JobState.RUNNING:
            values.update(started_at=now, finished_at=None, progress=0.0, attempts=F("attempts") + 1,
                          error_code="", error_message="")
        elif target == JobState.QUEUED:
            values.update(queued_at=now, started_at=None, finished_at=None, progress=0.0, error_code="",
                          error_message="")
        else:
            values["finished_at"] = now
            if target == JobState.SUCCEEDED:
                values["progress"] = 1.0
        values.update(fields)
        updated = type(self).objects.filter(pk=self.pk, state__in=sources).update(**values)
        self.refresh_from_db()
        if not updated:
            raise InvalidTransition(self.state, target)

    def set_progress(self, fraction: float) -> bool:
        """Store progress (clamped to [0, 1]) while running; False when the job is no longer running."""
        fraction = min(1.0, max(0.0, float(fraction)))
        updated = type(self).objects.filter(pk=self.pk, state=JobState.RUNNING).update(progress=fraction)
        if updated:
            self.progress = fraction
        return bool(updated)


def _job_constraints(prefix: str) -> list:
    return [
        models.CheckConstraint(condition=Q(progress__gte=0.0) & Q(progress__lte=1.0), name=f"{prefix}_progress_0_1"),
        models.CheckConstraint(condition=Q(state__in=JobState.values), name=f"{prefix}_state_valid"),
    ]


class TranscriptionJobQuerySet(models.QuerySet):
    def for_user(self, user) -> "TranscriptionJobQuerySet":
        """Jobs on pages of documents owned by `user`."""
        return self.filter(page__document__owner=user)


class TranscriptionJob(JobBase):
    """Transcribe one page: detect lines, recognise them, store Line rows and a result JSON."""

    page = models.ForeignKey("documents.Page", on_delete=models.CASCADE, related_name="jobs")
    models_used = models.JSONField(default=dict, blank=True, help_text='{"detector": ..., "recognizer": ...}')
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds per pipeline stage.")
    result = models.FileField(max_length=255, blank=True, help_text="Result JSON in storage.")
    warnings = models.JSONField(default=list, blank=True,
                                help_text="What the pipeline noticed about the page, e.g. that it was read turned by 180°.")

    objects = TranscriptionJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = _job_constraints("transcriptionjob")

    def __str__(self) -> str:
        return f"transcription #{self.pk} ({self.state})"


class TrainingJob(JobBase):
    """Fine-tune a model on the `train` queue (workers.training); `metrics` holds its live progress."""

    class Kind(models.TextChoices):
        DETECTOR = "detector"
        RECOGNIZER = "recognizer"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    params = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True, help_text="Epoch, loss, validation CER, ...")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = _job_constraints("trainingjob") + [
            # one training job per kind at a time (issue 5): a second queued/running one is refused
            models.UniqueConstraint(fields=["kind"], condition=Q(state__in=[JobState.QUEUED, JobState.RUNNING]),
                                    name="trainingjob_one_active_per_kind"),
        ]

    def __str__(self) -> str:
        return f"training {self.kind} #{self.pk} ({self.state})"
