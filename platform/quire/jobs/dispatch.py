"""Send transcription jobs to the `transcribe` queue, by task name (quire never imports workers).

Where the workers' Celery app is loaded in this process (a worker, the embedded mode, tests), its
registered task is used, so `CELERY_TASK_ALWAYS_EAGER` runs the job in-process. Elsewhere (the web
server) a light client app publishes the message by name. A message that cannot be published is
logged and the job stays `queued`: the periodic sweep (`requeue_stuck_jobs`) sends it again.
"""

import functools
import logging

from celery import Celery, current_app
from django.conf import settings

log = logging.getLogger(__name__)

TRANSCRIBE_TASK = "workers.tasks.transcribe_page"
TRANSCRIBE_QUEUE = "transcribe"


@functools.cache
def _client() -> Celery:
    """A publisher-only Celery app configured from Django settings (built once per process)."""
    app = Celery("quire-client", set_as_current=False)
    app.conf.update(
        broker_url=settings.CELERY_BROKER_URL,
        result_backend=settings.CELERY_RESULT_BACKEND,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_timeout=3,
        # Give up quickly when the broker is down: the sweep re-sends, the request is not held.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
    )
    return app


def enqueue_transcription(job_id: int) -> bool:
    """Queue `transcribe_page(job_id)`; True when the message was handed to the broker (or ran eagerly)."""
    task = current_app.tasks.get(TRANSCRIBE_TASK)
    try:
        if task is not None:
            task.apply_async((job_id,), queue=TRANSCRIBE_QUEUE)
        else:
            _client().send_task(TRANSCRIBE_TASK, (job_id,), queue=TRANSCRIBE_QUEUE)
    except Exception:  # broker unreachable (kombu/redis errors): the sweep will re-send
        log.warning("could not queue transcription job %s; it stays queued for the sweep", job_id, exc_info=True)
        return False
    return True
