"""Workers that die or restart in the middle of a transcription (issue 7, faults).

Real processes throughout: a Redis of the test's own, the session's SeaweedFS S3 server, the test
database, `celery worker` processes of tests/reliability/fault_worker_app.py (the production app
plus a hold on a job's first attempt, so that a kill lands mid-task: after line detection, with
the job `running`), the shipped line detector and a tiny recognizer artifact.
"""
import os
import signal
import time
from pathlib import Path

import pytest

from quire.jobs.models import TranscriptionJob
from tests.platform.factories import client_for, make_user
from tests.reliability.conftest import assert_one_set_of_lines, queue_is_drained, upload, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

VISIBILITY_TIMEOUT_S = 3


def final(job_id: int):
    job = TranscriptionJob.objects.get(pk=job_id)
    return job if job.is_final else None


def held_job(hold: Path, client, page: bytes) -> int:
    """Upload `page`, wait until its first attempt holds (job running, progress stored) and return the job id."""
    response = upload(client, page)
    assert response["status"] == 202, response
    job_id = response["body"]["jobs"][0]["id"]
    wait_for(lambda: Path(f"{hold}.pid").exists(), "the first attempt holding after line detection")
    job = TranscriptionJob.objects.get(pk=job_id)
    assert (job.state, job.attempts) == ("running", 1) and job.progress > 0
    return job_id


def test_sigkilled_worker_task_is_delivered_again_and_the_job_finishes_once(
        own_redis, fault_worker, page_jpeg, tmp_path):
    hold = tmp_path / "hold"
    hold.touch()
    env = {"QUIRE_BROKER_VISIBILITY_TIMEOUT": VISIBILITY_TIMEOUT_S, "QUIRE_TEST_HOLD_FILE": hold}
    first = fault_worker(own_redis.url, env=env)
    job_id = held_job(hold, client_for(make_user("kate")), page_jpeg)

    first.kill(signal.SIGKILL)
    assert TranscriptionJob.objects.get(pk=job_id).state == "running"  # nobody finished it
    redis = own_redis.client()
    assert redis.hlen("unacked") == 1  # acks_late: delivered, never acknowledged
    # Redis hands the message out again once it has been unacknowledged for the visibility
    # timeout; a worker started after that restores it when it starts polling.
    wait_for(lambda: redis.zrangebyscore("unacked_index", 0, time.time() - VISIBILITY_TIMEOUT_S - 0.5),
             "the message past its visibility timeout")
    second = fault_worker(own_redis.url, env=env)

    job = wait_for(lambda: final(job_id), "the redelivered job finishing")
    assert job.attempts == 2
    assert len(assert_one_set_of_lines(job)) > 0
    wait_for(lambda: queue_is_drained(redis), "no message left (the job is not run a third time)")
    assert TranscriptionJob.objects.get(pk=job_id).attempts == 2 and second.alive()


def test_killed_pool_process_is_rejected_and_requeued_at_once(own_redis, fault_worker, page_jpeg, tmp_path):
    """Prefork pool: SIGKILL of the process running the task. `reject_on_worker_lost` requeues the
    message at once (the visibility timeout is an hour here), the pool starts a new process, and
    the job finishes on the same worker."""
    hold = tmp_path / "hold"
    hold.touch()
    env = {"QUIRE_BROKER_VISIBILITY_TIMEOUT": 3600, "QUIRE_TEST_HOLD_FILE": hold}
    worker = fault_worker(own_redis.url, env=env, extra_args=("--pool=prefork", "--concurrency=1"))
    job_id = held_job(hold, client_for(make_user("karl")), page_jpeg)
    child = int(Path(f"{hold}.pid").read_text())
    assert child != worker.pid

    os.kill(child, signal.SIGKILL)
    job = wait_for(lambda: final(job_id), "the requeued job finishing")
    assert job.attempts == 2
    assert len(assert_one_set_of_lines(job)) > 0
    wait_for(lambda: queue_is_drained(own_redis.client()), "no message left")
    assert worker.alive() and "WorkerLostError" in worker.log_text()


def test_restarted_worker_whose_message_is_lost_does_not_leave_the_job_running(
        own_redis, fault_worker, page_jpeg, tmp_path):
    """The worker is restarted as an orchestrator does it (SIGTERM, SIGKILL after a grace period)
    while its job runs, and Redis loses the unacknowledged message too. The periodic sweep (celery
    beat inside the new worker) finds the job `running` past its deadline and queues it again."""
    hold = tmp_path / "hold"
    hold.touch()
    env = {"QUIRE_TEST_HOLD_FILE": hold, "QUIRE_JOB_STUCK_AFTER_S": 4, "QUIRE_SWEEP_INTERVAL_S": 1}
    first = fault_worker(own_redis.url, env=env)
    job_id = held_job(hold, client_for(make_user("kurt")), page_jpeg)

    first.stop(timeout=2)  # warm shutdown waits for the task; the grace period runs out: SIGKILL
    assert not first.alive()
    own_redis.stop()
    own_redis.start()  # no persistence: the message is gone
    assert own_redis.client().dbsize() == 0
    assert TranscriptionJob.objects.get(pk=job_id).state == "running"

    second = fault_worker(own_redis.url, env=env,
                          extra_args=("--beat", "--schedule", str(tmp_path / "beat-schedule")))
    job = wait_for(lambda: final(job_id), "the swept job finishing")
    assert job.attempts == 2
    assert len(assert_one_set_of_lines(job)) > 0
    assert "sweep of stuck jobs" in second.log_text() and second.alive()
