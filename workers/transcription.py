"""Domain logic of a transcription job, callable without a broker (the Celery task is a thin shell).

    start_job(job_id)        queued/running → running; None when there is nothing to do
    run_job(job)             page image from storage → pipeline.run → Line rows + result JSON
    fail_job / retry_later   record a permanent failure / put the job back in the queue
    requeue_stuck_jobs()     the periodic sweep for jobs whose message or worker was lost
    resend_stuck_job(job)    its step for one job (also used for lost training messages)

The database row is the source of truth: a redelivered message for a succeeded job does nothing;
one for a job left `running` by a dead worker runs it again, and the lines of a page are always
replaced in one transaction, so a page never has two sets of lines.
"""

import io
import json
import logging
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from PIL import Image

from ml.pipeline import PageImageError
from quire.documents.models import Line
from quire.documents.storage import get_bytes, put_bytes, result_key
from quire.jobs.dispatch import enqueue_transcription
from quire.jobs.models import InvalidTransition, JobState, TrainingJob, TranscriptionJob

log = logging.getLogger(__name__)


#: A pipeline set here (tests, fault injection) is used as is, bypassing the model registry.
_PIPELINE = None


def load_pipeline():
    """The page pipeline of the production models (registry, env overrides or shipped artifacts),
    cached per process and re-checked at each call so a promotion is picked up (workers.models)."""
    if _PIPELINE is not None:
        return _PIPELINE
    from .models import current_pipeline

    return current_pipeline()


def start_job(job_id: int) -> TranscriptionJob | None:
    """Move the job to `running` (counting an attempt) and return it.

    None when the job is gone or already final (a duplicate delivery: nothing to do). A job found
    `running` was left so by a worker that died (acks_late redelivery) and is started again,
    unless it already had QUIRE_JOB_MAX_ATTEMPTS attempts: then it fails with `worker_lost`, so a
    page that kills its worker cannot do so forever.
    """
    job = TranscriptionJob.objects.filter(pk=job_id).first()
    if job is None or job.is_final:
        return None
    if job.state == JobState.RUNNING and job.attempts >= settings.QUIRE_JOB_MAX_ATTEMPTS:
        fail_job(job, "worker_lost", f"the worker running this job was lost {job.attempts} times")
        return None
    try:
        job.transition(JobState.RUNNING)
    except InvalidTransition:  # canceled or finished between the read and the update
        return None
    return job


def read_page_image(job: TranscriptionJob) -> np.ndarray:
    """The page's normalised image as a uint8 (H, W) array.

    Raises StorageUnavailable when it cannot be read, PageImageError when the stored bytes are
    not a decodable image.
    """
    data = get_bytes(job.page.image.name)
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("L"), dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise PageImageError(f"stored page image {job.page.image.name} is unreadable: {exc}") from exc


class _Progress:
    """Progress callback: stores the fraction when it moved by at least 1 % (one UPDATE each)."""

    def __init__(self, job: TranscriptionJob):
        self.job = job
        self.last = 0.0

    def __call__(self, fraction: float) -> None:
        if fraction - self.last >= 0.01 or fraction >= 1.0:
            self.last = fraction
            self.job.set_progress(min(fraction, 0.99))  # 1.0 only when the lines are stored


def _canceled(job_id: int):
    def should_cancel() -> bool:
        state = TranscriptionJob.objects.filter(pk=job_id).values_list("state", flat=True).first()
        return state != JobState.RUNNING
    return should_cancel


def run_job(job: TranscriptionJob, get_pipeline=load_pipeline) -> bool:
    """Run the pipeline on the job's page and store the outcome; True when the job succeeded.

    The page image is read before `get_pipeline()` is called, so a storage outage fails fast.
    Raises StorageUnavailable (transient), `ml.pipeline.Canceled` when the job was canceled while
    running, and whatever the pipeline raises for a page it cannot process.
    """
    gray = read_page_image(job)
    result = get_pipeline().run(gray, progress=_Progress(job), should_cancel=_canceled(job.pk))
    return store_result(job, result)


def store_result(job: TranscriptionJob, result) -> bool:
    """Write the result JSON, replace the page's lines and mark the job succeeded, atomically.

    `result` follows the ml contract (PageResult: width, height, lines, timings, models,
    to_dict()). False (and nothing written to the database) when the job is no longer running,
    e.g. canceled meanwhile or finished by another delivery.
    """
    key = put_bytes(result_key(job.pk), json.dumps(result.to_dict(), ensure_ascii=False).encode("utf-8"))
    try:
        with transaction.atomic():
            Line.objects.filter(page_id=job.page_id).delete()
            Line.objects.bulk_create([
                Line(page_id=job.page_id, index=index, polygon=line.polygon, baseline=line.baseline,
                     bbox=line.bbox, text=line.text, confidence=line.confidence,
                     char_confidences=line.char_confidences, printed=bool(getattr(line, "printed", False)))
                for index, line in enumerate(result.lines)
            ])
            job.transition(JobState.SUCCEEDED, models_used=dict(result.models), timings=dict(result.timings),
                           result=key, warnings=list(getattr(result, "warnings", []) or []))
    except InvalidTransition as exc:
        log.info("job %s not stored: %s", job.pk, exc)
        return False
    return True


def fail_job(job: TranscriptionJob | TrainingJob, code: str, message: str) -> None:
    """Mark a transcription or training job failed with a machine-readable `code` and a message
    (no-op once it is final; both kinds share the state machine's `transition`)."""
    try:
        job.transition(JobState.FAILED, error_code=code, error_message=message[:2000])
    except InvalidTransition:
        log.info("job %s is %s; failure %s not recorded", job.pk, job.state, code)


def retry_later(job: TranscriptionJob, code: str, message: str) -> bool:
    """Put a running job back to `queued` before a retry, noting why; False when it is no longer running."""
    try:
        job.transition(JobState.QUEUED, error_code=code, error_message=f"retrying: {message}"[:2000])
    except InvalidTransition:
        return False
    return True


def requeue_stuck_jobs(now=None, enqueue=enqueue_transcription) -> dict:
    """Find jobs stuck in `queued` or `running` past QUIRE_JOB_STUCK_AFTER_S and send them again.

    A re-sent `queued` job (its message was lost) counts an attempt, as a restarted `running` one
    does when it starts again; a job with QUIRE_JOB_MAX_ATTEMPTS attempts fails with code `stuck`
    instead. `enqueue(job_id)` sends the message. The deadline must exceed the task's hard time
    limit, so a job that is merely slow is never taken for a lost one.
    Returns {"requeued": [ids], "failed": [ids]}.
    """
    now = now or timezone.now()
    deadline = now - timedelta(seconds=settings.QUIRE_JOB_STUCK_AFTER_S)
    stuck = TranscriptionJob.objects.filter(state=JobState.QUEUED, queued_at__lt=deadline) | \
        TranscriptionJob.objects.filter(state=JobState.RUNNING, started_at__lt=deadline)
    outcome: dict[str, list[int]] = {"requeued": [], "failed": []}
    for job in stuck.order_by("pk"):
        if (result := resend_stuck_job(job, now, enqueue)) is not None:
            outcome[result].append(job.pk)
    if any(outcome.values()):
        log.warning("sweep of stuck jobs: %s", outcome)
    return outcome


def resend_stuck_job(job: TranscriptionJob | TrainingJob, now, enqueue) -> str | None:
    """Send a stuck job's message again (the sweep's step for one job, transcription or training).

    With QUIRE_JOB_MAX_ATTEMPTS attempts the job fails with code `stuck` ("failed"). Otherwise a
    `queued` job (its message was lost) gets `queued_at` = `now` and counts an attempt, a
    `running` one goes back to `queued` (`retry_later`), and `enqueue(job.pk)` sends the message
    ("requeued"). None when the job left that state meanwhile (nothing sent).
    """
    if job.attempts >= settings.QUIRE_JOB_MAX_ATTEMPTS:
        fail_job(job, "stuck", f"no result after {job.attempts} attempts")
        return "failed"
    if job.state == JobState.QUEUED:
        moved = type(job).objects.filter(pk=job.pk, state=JobState.QUEUED).update(
            queued_at=now, attempts=F("attempts") + 1)
    else:
        moved = retry_later(job, "requeued", "the worker running it was lost")
    if not moved:
        return None
    enqueue(job.pk)
    return "requeued"

