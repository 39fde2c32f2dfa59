"""The Celery app of the fault tests: `workers.app` itself, plus two test-only hooks set through the
environment of the worker process (`celery -A tests.reliability.fault_worker_app worker`).

- `QUIRE_TEST_RECOGNIZER_PATH`: the page pipeline is loaded at import with this recognizer
  artifact (a tiny untrained CRNN built by the test; the shipped detector is used), so the worker
  runs the real pipeline end to end without waiting for `ml/artifacts/recognizer.pt`.
- `QUIRE_TEST_HOLD_FILE`: on a job's FIRST attempt, the progress callback (first called after line
  detection, with the job `running` and its progress stored) writes the PID of the process running
  the task to `<hold file>.pid` and then waits while the hold file exists (at most 300 s). The test
  decides when the task goes on (deletes the file), or kills the process while it waits. Later
  attempts (a redelivery, a retry) never wait.

Nothing else differs from the production app: same queues, acks_late, reject_on_worker_lost,
visibility timeout (`QUIRE_BROKER_VISIBILITY_TIMEOUT`), retries and sweep.
"""
import os
import time
from pathlib import Path

from workers.app import app  # noqa: F401 - the app `celery -A` looks for; sets Django up first
from workers import tasks  # noqa: F401, I001 - registers the tasks
from workers import transcription  # noqa: I001

HOLD_LIMIT_S = 300.0

if os.environ.get("QUIRE_TEST_RECOGNIZER_PATH"):
    from django.conf import settings

    from ml.pipeline import PagePipeline

    transcription._PIPELINE = PagePipeline.load(recognizer_path=os.environ["QUIRE_TEST_RECOGNIZER_PATH"],
                                                device=settings.QUIRE_DEVICE)

_progress = transcription._Progress.__call__


def _held_progress(self, fraction: float) -> None:
    _progress(self, fraction)
    hold = os.environ.get("QUIRE_TEST_HOLD_FILE")
    if not hold or self.job.attempts != 1 or not Path(hold).exists():
        return
    Path(hold + ".pid").write_text(str(os.getpid()))
    deadline = time.monotonic() + HOLD_LIMIT_S
    while Path(hold).exists() and time.monotonic() < deadline:
        time.sleep(0.1)


transcription._Progress.__call__ = _held_progress
