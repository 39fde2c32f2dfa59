"""Send transcription jobs to the `transcribe` queue, by task name (quire never imports workers).

Messages are published by name through a light client app built from the current settings (so
it follows `CELERY_BROKER_URL` wherever it points). With `CELERY_TASK_ALWAYS_EAGER` and the
workers' Celery app loaded in this process (embedded mode), the registered task runs in-process.
A message that cannot be published is logged and the job stays `queued`: the periodic sweep
(`requeue_stuck_jobs`) sends it again.
"""

import functools
import logging

from celery import Celery, current_app
from django.conf import settings

log = logging.getLogger(__name__)

TRANSCRIBE_TASK = "workers.tasks.transcribe_page"
TRANSCRIBE_QUEUE = "transcribe"


@functools.cache
def _client(broker_url: str) -> Celery:
    """A publisher-only Celery app for one broker (built once per process and URL).

    It has no result backend: the job row, not a Celery result, says how a job went.
    """
    app = Celery("quire-client", set_as_current=False)
    app.conf.update(
        broker_url=broker_url,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_timeout=3,
        # Give up quickly when the broker is down: the sweep re-sends, the request is not held.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
    )
    return app


def enqueue_transcription(job_id: int) -> bool:
    """Queue `transcribe_page(job_id)`; True when the message was handed to the broker (or ran eagerly)."""
    try:
        if settings.CELERY_TASK_ALWAYS_EAGER and TRANSCRIBE_TASK in current_app.tasks:
            current_app.tasks[TRANSCRIBE_TASK].apply_async((job_id,), queue=TRANSCRIBE_QUEUE)
        else:
            client = _client(settings.CELERY_BROKER_URL)
            client.send_task(TRANSCRIBE_TASK, (job_id,), queue=TRANSCRIBE_QUEUE, routing_key=TRANSCRIBE_QUEUE)
    except Exception:  # broker unreachable (kombu/redis errors): the sweep will re-send
        log.warning("could not queue transcription job %s; it stays queued for the sweep", job_id, exc_info=True)
        return False
    return True
