"""The job state machine: allowed moves, refused impossible ones, atomic conditional updates."""
import pytest
from django.db import IntegrityError, transaction

from quire.jobs.models import TRANSITIONS, InvalidTransition, JobState, TranscriptionJob
from quire.registry.models import ModelVersion
from tests.platform.factories import make_page

S = JobState
ALL = [S.QUEUED, S.RUNNING, S.SUCCEEDED, S.FAILED, S.CANCELED]
ALLOWED = {
    (S.QUEUED, S.RUNNING), (S.QUEUED, S.CANCELED), (S.QUEUED, S.FAILED),
    (S.RUNNING, S.RUNNING), (S.RUNNING, S.QUEUED), (S.RUNNING, S.SUCCEEDED), (S.RUNNING, S.FAILED),
    (S.RUNNING, S.CANCELED), (S.FAILED, S.QUEUED), (S.CANCELED, S.QUEUED),
}


def _job_in(state, alice):
    _, job = make_page(alice)
    TranscriptionJob.objects.filter(pk=job.pk).update(state=state)
    job.refresh_from_db()
    return job


def test_table_is_the_documented_one():
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == ALLOWED


@pytest.mark.parametrize("source", ALL)
@pytest.mark.parametrize("target", ALL)
def test_every_pair_is_allowed_or_refused(source, target, alice):
    job = _job_in(source, alice)
    if (source, target) in ALLOWED:
        job.transition(target)
        assert TranscriptionJob.objects.get(pk=job.pk).state == target
    else:
        with pytest.raises(InvalidTransition, match=f"cannot move a {source} job to {target}"):
            job.transition(target)
        assert TranscriptionJob.objects.get(pk=job.pk).state == source


def test_succeeded_never_runs_again(alice):
    job = _job_in(S.SUCCEEDED, alice)
    with pytest.raises(InvalidTransition):
        job.transition(S.RUNNING)


def test_start_counts_attempts_and_stamps_times(alice):
    _, job = make_page(alice)
    job.transition(S.RUNNING)
    assert (job.attempts, job.progress) == (1, 0.0) and job.started_at is not None and job.finished_at is None
    assert job.set_progress(0.5) and TranscriptionJob.objects.get(pk=job.pk).progress == 0.5
    job.transition(S.FAILED, error_code="boom", error_message="it broke")
    assert job.finished_at is not None and job.error_code == "boom"
    assert not job.set_progress(0.7)  # not running any more
    job.transition(S.QUEUED)
    assert (job.error_code, job.started_at, job.progress) == ("", None, 0.0)
    job.transition(S.RUNNING)
    job.transition(S.SUCCEEDED)
    assert (job.attempts, job.progress) == (2, 1.0)


def test_stale_copy_loses_the_race(alice):
    """A worker's in-memory job says running, but a cancel already landed: success is refused."""
    _, job = make_page(alice)
    job.transition(S.RUNNING)
    other = TranscriptionJob.objects.get(pk=job.pk)
    other.transition(S.CANCELED)
    with pytest.raises(InvalidTransition):
        job.transition(S.SUCCEEDED)
    assert job.state == S.CANCELED  # reloaded from the database


def test_database_refuses_progress_outside_0_1(alice):
    _, job = make_page(alice)
    with pytest.raises(IntegrityError), transaction.atomic():
        TranscriptionJob.objects.filter(pk=job.pk).update(progress=1.5)


def test_database_refuses_unknown_state(alice):
    _, job = make_page(alice)
    with pytest.raises(IntegrityError), transaction.atomic():
        TranscriptionJob.objects.filter(pk=job.pk).update(state="exploded")


def test_one_production_model_per_kind(db):
    ModelVersion.objects.create(kind="recognizer", version="1", state="production", artifact="models/r1.pt")
    ModelVersion.objects.create(kind="detector", version="1", state="production", artifact="models/d1.pt")
    ModelVersion.objects.create(kind="recognizer", version="2", state="candidate", artifact="models/r2.pt")
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.create(kind="recognizer", version="3", state="production", artifact="models/r3.pt")
