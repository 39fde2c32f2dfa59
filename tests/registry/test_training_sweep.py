"""The sweep for training jobs whose worker was lost: a job still `running` past its deadline is
failed `stuck`, which frees the kind for a new training (one active job per kind)."""
from datetime import timedelta

import pytest
from django.utils import timezone

from quire.jobs.models import TrainingJob
from quire.registry import services
from tests.platform.factories import add_lines, make_page
from workers import tasks, training


def _running(started_ago_s: float, kind: str = "recognizer") -> TrainingJob:
    job = TrainingJob.objects.create(kind=kind)
    job.transition("running")
    TrainingJob.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(seconds=started_ago_s))
    return job


def test_running_job_past_its_deadline_fails_stuck_and_frees_the_kind(staff, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}
    page, _ = make_page(staff)
    for line in add_lines(page, ["one", "two"]):
        line.is_ground_truth = True
        line.save()
    lost = _running(3601)
    with pytest.raises(services.TrainingBusy):
        services.start_training("recognizer", staff, enqueue=False)

    assert training.fail_stuck_training_jobs(after_s=3600) == [lost.pk]
    lost.refresh_from_db()
    assert lost.state == "failed" and lost.error_code == "stuck" and "worker" in lost.error_message
    assert lost.finished_at is not None
    assert training.fail_stuck_training_jobs(after_s=3600) == []  # final jobs are left alone
    fresh = services.start_training("recognizer", staff, enqueue=False)  # the kind is free again
    assert fresh.state == "queued"


def test_recent_running_queued_and_final_jobs_are_left_alone(db):
    recent = _running(3599)
    finished = _running(90_000, kind="detector")
    finished.transition("succeeded")
    queued = TrainingJob.objects.create(kind="detector")
    TrainingJob.objects.filter(pk=queued.pk).update(queued_at=timezone.now() - timedelta(days=2))
    assert training.fail_stuck_training_jobs(after_s=3600) == []
    assert dict(TrainingJob.objects.values_list("pk", "state")) == {
        recent.pk: "running", finished.pk: "succeeded", queued.pk: "queued"}


def test_default_deadline_is_past_the_tasks_hard_time_limit(monkeypatch, db):
    monkeypatch.delenv("QUIRE_TRAIN_STUCK_AFTER_S", raising=False)
    monkeypatch.setenv("QUIRE_TRAIN_SOFT_TIME_LIMIT", "1000")
    assert training.stuck_after_s() > 1000 + 600  # the hard limit (workers.tasks.train_model)
    assert training.stuck_after_s() > tasks.train_model.time_limit - tasks.TRAIN_SOFT_TIME_LIMIT_S + 1000
    job = _running(1000 + 600 + 60)  # past the hard limit, within the margin: not yet
    assert training.fail_stuck_training_jobs() == []
    monkeypatch.setenv("QUIRE_TRAIN_STUCK_AFTER_S", "1200")
    assert training.fail_stuck_training_jobs() == [job.pk]


def test_periodic_sweep_task_reports_training_jobs_it_failed(db, settings):
    settings.QUIRE_JOB_STUCK_AFTER_S = 10**9  # no transcription job is stuck here
    lost = _running(10**6)
    outcome = tasks.requeue_stuck_jobs.run()
    assert outcome == {"requeued": [], "failed": [], "training_failed": [lost.pk]}
    assert TrainingJob.objects.get(pk=lost.pk).state == "failed"
