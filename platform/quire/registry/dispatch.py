"""Send training jobs to the `train` queue, by task name (quire never imports workers).

Same publishing path as `quire.jobs.dispatch` (a publisher-only client app following
`CELERY_BROKER_URL`; eager only in embedded mode with the workers' app loaded).
"""

import logging

from celery import current_app
from django.conf import settings

from quire.jobs.dispatch import _client

log = logging.getLogger(__name__)

TRAIN_TASK = "workers.tasks.train_model"
TRAIN_QUEUE = "train"


def enqueue_training(job_id: int) -> bool:
    """Queue `train_model(job_id)` on the `train` queue; True when the broker took the message.

    A message that cannot be published is logged; the job stays `queued` and the periodic sweep
    sends it again (workers.training.requeue_lost_training_jobs), or cancel it.
    """
    try:
        if settings.CELERY_TASK_ALWAYS_EAGER and TRAIN_TASK in current_app.tasks:
            current_app.tasks[TRAIN_TASK].apply_async((job_id,), queue=TRAIN_QUEUE)
        else:
            _client(settings.CELERY_BROKER_URL).send_task(TRAIN_TASK, (job_id,), queue=TRAIN_QUEUE,
                                                          routing_key=TRAIN_QUEUE)
    except Exception:  # broker unreachable (kombu/redis errors)
        log.warning("could not queue training job %s; it stays queued", job_id, exc_info=True)
        return False
    return True
