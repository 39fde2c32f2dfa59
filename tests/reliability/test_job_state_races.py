"""The job state machine holds under concurrent writers: each thread has its own database
connection and its own stale in-memory copy of the job, and the database's conditional UPDATE
(`WHERE state IN allowed sources`) lets exactly one of them win (tests/platform/test_job_state_machine.py
covers the table, one writer at a time)."""
import threading

import pytest
from django.db import connection

from quire.jobs.models import InvalidTransition, JobState, TranscriptionJob
from tests.platform.factories import make_page, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def race(job_id: int, targets: list[str], copies=None) -> dict[str, list[str]]:
    """Every target tried at once from its own thread and connection, each on its own in-memory
    copy of the job (read now unless given); returns the targets that won and lost."""
    copies = copies or [TranscriptionJob.objects.get(pk=job_id) for _ in targets]
    barrier = threading.Barrier(len(targets))
    outcome: dict[str, list[str]] = {"won": [], "lost": [], "error": []}

    def attempt(copy, target):
        try:
            barrier.wait()
            copy.transition(target)
            outcome["won"].append(target)
        except InvalidTransition:
            outcome["lost"].append(target)
        except Exception as exc:  # noqa: BLE001 - reported, fails the test below
            outcome["error"].append(f"{target}: {exc!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(c, t)) for c, t in zip(copies, targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcome


@pytest.fixture
def running_job(media):
    _, job = make_page(make_user("rene"))
    job.transition(JobState.RUNNING)
    return job


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}


def test_one_final_state_wins_a_race(running_job):
    targets = [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED] * 2
    outcome = race(running_job.pk, targets)
    assert outcome["error"] == [] and len(outcome["won"]) == 1 and len(outcome["lost"]) == 5
    assert TranscriptionJob.objects.get(pk=running_job.pk).state == outcome["won"][0]


def test_a_finished_job_cannot_be_started_by_racing_redeliveries(running_job):
    stale = [TranscriptionJob.objects.get(pk=running_job.pk) for _ in range(4)]  # read while running
    running_job.transition(JobState.SUCCEEDED)
    outcome = race(running_job.pk, [JobState.RUNNING] * 4, stale)
    # running -> running is allowed in memory; the database's WHERE refuses it for a succeeded row.
    assert outcome == {"won": [], "lost": [JobState.RUNNING] * 4, "error": []}
    job = TranscriptionJob.objects.get(pk=running_job.pk)
    assert (job.state, job.attempts) == (JobState.SUCCEEDED, 1)


def test_a_stale_copy_that_believes_running_cannot_overwrite_a_final_state(running_job):
    stale = [TranscriptionJob.objects.get(pk=running_job.pk) for _ in range(3)]
    running_job.transition(JobState.CANCELED)
    for copy, target in zip(stale, [JobState.SUCCEEDED, JobState.RUNNING, JobState.FAILED]):
        assert copy.state == JobState.RUNNING
        with pytest.raises(InvalidTransition):  # allowed in memory, refused by the database's WHERE
            copy.transition(target)
    assert TranscriptionJob.objects.get(pk=running_job.pk).state == JobState.CANCELED
