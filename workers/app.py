"""The Celery app of Quire's workers (`celery -A workers.app worker -Q transcribe|train`).

Importing this module sets Django up (`quire.settings`, with `platform/` on sys.path), so tasks
use the ORM and storage directly. Configuration comes from the environment, through Django
settings for what the web side shares (broker/result URLs) and directly for worker-only knobs:

| variable | default | meaning |
|---|---|---|
| `QUIRE_TASK_SOFT_TIME_LIMIT` | 900 | seconds before SoftTimeLimitExceeded in a task (job fails `timeout`) |
| `QUIRE_TASK_TIME_LIMIT` | 960 | seconds before the worker process running the task is killed |
| `QUIRE_TASK_MAX_RETRIES` | 5 | retries of a transient error (storage/broker/database unreachable) |
| `QUIRE_RETRY_BACKOFF_S` | 2 | first retry delay; doubles each time (capped at 300 s) |
| `QUIRE_BROKER_VISIBILITY_TIMEOUT` | 3600 | seconds before Redis redelivers an unacknowledged message |
| `QUIRE_SWEEP_INTERVAL_S` | 60 | period of `requeue_stuck_jobs` under celery beat |
| `QUIRE_TRAIN_STUCK_AFTER_S` | soft limit + 1500 | a training job `running` this long after its start is failed `stuck` by the sweep |
| `QUIRE_TRAIN_QUEUED_STUCK_AFTER_S` | `QUIRE_JOB_STUCK_AFTER_S` | a training job `queued` this long (message lost) is re-sent by the sweep |

Django settings read by the workers: `QUIRE_DEVICE` (`cpu`/`cuda`) and `QUIRE_DECODING` (`lm`: beam
search with the character language model, the default; `greedy`), see docs/ARCHITECTURE.md.

Delivery: `task_acks_late` + `task_reject_on_worker_lost` + prefetch 1, so a task whose worker
dies is delivered again; the job row (not the message) says what is done, which makes a second
delivery harmless (see workers.transcription).
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT / "platform", ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quire.settings")

import django  # noqa: E402

django.setup()

from celery import Celery  # noqa: E402
from django.conf import settings  # noqa: E402
from kombu import Exchange, Queue  # noqa: E402

TRANSCRIBE_QUEUE = "transcribe"
TRAIN_QUEUE = "train"


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


app = Celery("quire")
app.conf.update(
    broker_url=settings.CELERY_BROKER_URL,
    result_backend=settings.CELERY_RESULT_BACKEND,
    task_always_eager=settings.CELERY_TASK_ALWAYS_EAGER,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_queues=tuple(Queue(name, Exchange(name, type="direct"), routing_key=name)
                      for name in (TRANSCRIBE_QUEUE, TRAIN_QUEUE)),
    task_default_queue=TRANSCRIBE_QUEUE,
    task_default_exchange=TRANSCRIBE_QUEUE,
    task_default_routing_key=TRANSCRIBE_QUEUE,
    task_routes={
        "workers.tasks.transcribe_page": {"queue": TRANSCRIBE_QUEUE},
        "workers.tasks.requeue_stuck_jobs": {"queue": TRANSCRIBE_QUEUE},
        "workers.tasks.train_*": {"queue": TRAIN_QUEUE},
    },
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_soft_time_limit=_env_int("QUIRE_TASK_SOFT_TIME_LIMIT", 900),
    task_time_limit=_env_int("QUIRE_TASK_TIME_LIMIT", 960),
    broker_connection_retry_on_startup=True,
    broker_transport_options={"visibility_timeout": _env_int("QUIRE_BROKER_VISIBILITY_TIMEOUT", 3600)},
    result_expires=24 * 3600,
    beat_schedule={
        "requeue-stuck-jobs": {
            "task": "workers.tasks.requeue_stuck_jobs",
            "schedule": float(_env_int("QUIRE_SWEEP_INTERVAL_S", 60)),
        },
    },
    include=["workers.tasks"],
)
