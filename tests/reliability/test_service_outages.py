"""Redis and S3 going away while work arrives (issue 7, faults).

Real processes: a Redis of the test's own (stopped and started again, losing its messages), the
session's SeaweedFS S3 server behind a proxy the test cuts, real worker processes of
tests/reliability/fault_worker_app.py, the test database.
"""
import pytest
from django.core.files.storage import default_storage

from quire.documents.models import Line, Page
from quire.jobs.models import TranscriptionJob
from tests.platform.factories import client_for, make_user
from tests.reliability.conftest import assert_one_set_of_lines, queue_is_drained, upload, wait_for
from tests.reliability.test_worker_faults import final, held_job

pytestmark = pytest.mark.django_db(transaction=True)


def test_uploads_while_redis_is_down_are_kept_and_processed_after_restart(own_redis, fault_worker, page_jpeg,
                                                                          tmp_path):
    """Uploads before, during and after a Redis outage. During it the API still accepts the page
    (it is stored, its job row says `queued`) or answers a clear 503; the message it could not
    send, and those Redis lost when it restarted empty, are re-sent by the periodic sweep."""
    env = {"QUIRE_JOB_STUCK_AFTER_S": 5, "QUIRE_SWEEP_INTERVAL_S": 1}
    worker = fault_worker(own_redis.url, env=env, extra_args=("--beat", "--schedule", str(tmp_path / "beat")))
    client = client_for(make_user("rita"))
    responses = [upload(client, page_jpeg, f"before-{i}.jpg") for i in range(2)]
    own_redis.stop()
    responses += [upload(client, page_jpeg, f"during-{i}.jpg") for i in range(3)]
    own_redis.start()
    responses += [upload(client, page_jpeg, f"after-{i}.jpg") for i in range(2)]

    accepted = []
    for response in responses:
        assert response["status"] in (202, 503), response
        if response["status"] == 503:
            assert "unavailable" in response["body"]["detail"]
        else:
            accepted += [job["id"] for job in response["body"]["jobs"]]
    assert len(accepted) >= 4  # at least the uploads made while Redis was up
    during = [r["status"] for r in responses[2:5]]
    jobs = [wait_for(lambda job_id=job_id: final(job_id), f"job {job_id} final") for job_id in accepted]
    for job in jobs:
        assert len(assert_one_set_of_lines(job)) > 0
    # Nothing lost, nothing doubled: one page and one job per accepted upload.
    assert Page.objects.count() == TranscriptionJob.objects.count() == len(accepted)
    assert all(job.attempts <= 2 for job in jobs)
    wait_for(lambda: queue_is_drained(own_redis.client()), "no message left")
    assert worker.alive()
    if 202 in during:  # accepted with no broker to send to: only the sweep can have sent them
        assert "sweep of stuck jobs" in worker.log_text()


@pytest.fixture
def s3_outage(s3_env, s3_proxy, own_redis, fault_worker, page_jpeg, tmp_path):
    """A job holding after line detection on a worker that reaches S3 only through the proxy."""
    def start(max_retries: int):
        hold = tmp_path / "hold"
        hold.touch()
        env = {"QUIRE_TEST_HOLD_FILE": hold, "QUIRE_TASK_MAX_RETRIES": max_retries, "QUIRE_RETRY_BACKOFF_S": 0.5}
        worker = fault_worker(own_redis.url, s3={**s3_env, "AWS_S3_ENDPOINT_URL": s3_proxy.url}, env=env)
        job_id = held_job(hold, client_for(make_user("sam")), page_jpeg)
        return worker, job_id, hold
    return start


def test_storage_unreachable_during_a_task_retries_then_fails_clearly(s3_outage, s3_proxy):
    worker, job_id, hold = s3_outage(max_retries=2)
    s3_proxy.cut()
    hold.unlink()  # the task goes on: storing the result fails, then reading the page fails
    job = wait_for(lambda: final(job_id), "the job failing after its retries")
    assert (job.state, job.error_code, job.attempts) == ("failed", "storage_unavailable", 3)
    assert "gave up after 2 retries" in job.error_message and "storage unavailable" in job.error_message
    assert job.finished_at is not None and not job.result
    # The page is as it was: its image still stored, no lines, no result half-written.
    page = Page.objects.get(pk=job.page_id)
    assert default_storage.exists(page.image.name) and not Line.objects.filter(page=page).exists()
    assert worker.alive()
    assert worker.log_text().count("storage_unavailable") >= 2  # each retry was logged


def test_storage_back_before_the_retries_run_out_lets_the_job_succeed(s3_outage, s3_proxy):
    worker, job_id, hold = s3_outage(max_retries=8)
    s3_proxy.cut()
    hold.unlink()
    wait_for(lambda: TranscriptionJob.objects.get(pk=job_id).attempts >= 2, "a retry after the outage")
    s3_proxy.restore()
    job = wait_for(lambda: final(job_id), "the job finishing once S3 is back")
    assert len(assert_one_set_of_lines(job)) > 0
    assert job.attempts >= 2 and worker.alive()
