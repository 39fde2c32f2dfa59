"""Celery tasks: thin shells around workers.transcription that map errors to job outcomes.

    transient (storage, broker or database unreachable) → job back to `queued`, retried with
        exponential backoff; after QUIRE_TASK_MAX_RETRIES it fails with `storage_unavailable`,
        `broker_unavailable` or `database_unavailable`
    ml.pipeline.Canceled → the job stays `canceled` (the cancel request already set it)
    soft time limit → failed `timeout`;  a page the pipeline refuses → failed `bad_image`
    anything else → failed `internal_error` with the exception's message; the worker lives on
"""

import logging
import os

from billiard.exceptions import SoftTimeLimitExceeded
from django.db import InterfaceError as DatabaseInterfaceError
from django.db import OperationalError as DatabaseOperationalError
from kombu.exceptions import OperationalError as BrokerOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ml.pipeline import Canceled, PageImageError
from quire.documents.storage import StorageUnavailable
from quire.jobs.models import JobState

from . import training, transcription
from .app import app

log = logging.getLogger(__name__)

MAX_RETRIES = int(os.environ.get("QUIRE_TASK_MAX_RETRIES") or 5)
TRAIN_SOFT_TIME_LIMIT_S = int(os.environ.get("QUIRE_TRAIN_SOFT_TIME_LIMIT") or 6 * 3600)
RETRY_BACKOFF_S = float(os.environ.get("QUIRE_RETRY_BACKOFF_S") or 2)
RETRY_BACKOFF_MAX_S = 300.0

_TRANSIENT = (
    (StorageUnavailable, "storage_unavailable"),
    ((RedisConnectionError, RedisTimeoutError, BrokerOperationalError), "broker_unavailable"),
    ((DatabaseOperationalError, DatabaseInterfaceError), "database_unavailable"),
)


def transient_code(exc: BaseException) -> str | None:
    """The error code of a transient failure (worth a retry), or None for a permanent one."""
    for types, code in _TRANSIENT:
        if isinstance(exc, types):
            return code
    return None


def retry_delay(retries: int) -> float:
    """Seconds before retry number `retries + 1`: RETRY_BACKOFF_S · 2^retries, at most 300 s."""
    return min(RETRY_BACKOFF_S * 2 ** retries, RETRY_BACKOFF_MAX_S)


@app.task(bind=True, name="workers.tasks.transcribe_page", max_retries=MAX_RETRIES)
def transcribe_page(self, job_id: int) -> str:
    """Transcribe the page of TranscriptionJob `job_id`; returns the job's outcome as a string."""
    job = transcription.start_job(job_id)
    if job is None:
        return "skipped"
    try:
        stored = transcription.run_job(job)
        return JobState.SUCCEEDED if stored else "superseded"
    except Canceled:
        return JobState.CANCELED
    except SoftTimeLimitExceeded:
        transcription.fail_job(job, "timeout", f"no result within {app.conf.task_soft_time_limit} s")
        return JobState.FAILED
    except PageImageError as exc:
        transcription.fail_job(job, "bad_image", str(exc))
        return JobState.FAILED
    except Exception as exc:  # noqa: BLE001 - every failure becomes a job outcome, never a dead worker
        code = transient_code(exc)
        if code is None:
            log.exception("job %s failed", job_id)
            transcription.fail_job(job, "internal_error", f"{type(exc).__name__}: {exc}")
            return JobState.FAILED
        if self.request.retries >= self.max_retries:
            transcription.fail_job(job, code, f"gave up after {self.request.retries} retries: {exc}")
            return JobState.FAILED
        log.warning("job %s: %s (%s), retry %d", job_id, code, exc, self.request.retries + 1)
        try:
            transcription.retry_later(job, code, str(exc))
        except (DatabaseOperationalError, DatabaseInterfaceError):
            pass  # the database itself is down: the redelivered task will start the job again
        raise self.retry(exc=exc, countdown=retry_delay(self.request.retries)) from exc


@app.task(name="workers.tasks.requeue_stuck_jobs")
def requeue_stuck_jobs() -> dict:
    """Periodic sweep (celery beat): re-send transcription jobs stuck in queued/running, fail
    hopeless ones; re-send training jobs queued too long (`training_requeued`; their message was
    lost) and fail training jobs running past their deadline or out of attempts (`training_failed`)."""
    outcome = transcription.requeue_stuck_jobs()
    lost = training.requeue_lost_training_jobs()
    outcome["training_requeued"] = lost["requeued"]
    outcome["training_failed"] = training.fail_stuck_training_jobs() + lost["failed"]
    return outcome


@app.task(name="workers.tasks.train_model", soft_time_limit=TRAIN_SOFT_TIME_LIMIT_S,
          time_limit=TRAIN_SOFT_TIME_LIMIT_S + 600)
def train_model(job_id: int) -> str:
    """Run TrainingJob `job_id` (fine-tune, evaluate, register a candidate; workers.training)."""
    return training.execute(job_id)
