"""The sweep for training jobs whose worker was lost: a job still `running` past its deadline is
failed `stuck`, which frees the kind for a new training (one active job per kind). And for those
whose message was lost: a job `queued` too long is sent again, through the transcription sweep's
step; a second delivery never runs a second training (the claim is one conditional UPDATE)."""
import re
import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from quire.jobs.models import InvalidTransition, TrainingJob
from quire.registry import services
from quire.registry.dispatch import enqueue_training
from quire.registry.models import ModelVersion
from tests.platform.factories import add_lines, make_page, make_user
from tests.registry.tiny import make_tiny_recognizer
from workers import models as model_store
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
    assert outcome == {"requeued": [], "failed": [], "training_requeued": [], "training_failed": [lost.pk]}
    assert TrainingJob.objects.get(pk=lost.pk).state == "failed"


def _queued_since(seconds_ago: float, job: TrainingJob | None = None, kind: str = "recognizer") -> TrainingJob:
    job = job or TrainingJob.objects.create(kind=kind)
    TrainingJob.objects.filter(pk=job.pk).update(queued_at=timezone.now() - timedelta(seconds=seconds_ago))
    job.refresh_from_db()
    return job


def test_queued_job_whose_message_was_lost_is_sent_again_until_the_attempt_limit(db, settings):
    settings.QUIRE_JOB_MAX_ATTEMPTS = 3
    lost, recent = _queued_since(3601), _queued_since(3599, kind="detector")
    sent: list[int] = []
    before = timezone.now()
    assert training.requeue_lost_training_jobs(after_s=3600, enqueue=sent.append) == {"requeued": [lost.pk],
                                                                                    "failed": []}
    lost.refresh_from_db()
    assert sent == [lost.pk] and (lost.state, lost.attempts) == ("queued", 1) and lost.queued_at >= before
    assert TrainingJob.objects.get(pk=recent.pk).attempts == 0
    assert training.requeue_lost_training_jobs(after_s=3600, enqueue=sent.append) == {"requeued": [], "failed": []}

    for attempts in (2, 3):  # each time it waits past the age again, it is re-sent once more
        _queued_since(3601, lost)
        assert training.requeue_lost_training_jobs(after_s=3600, enqueue=sent.append)["requeued"] == [lost.pk]
        assert TrainingJob.objects.get(pk=lost.pk).attempts == attempts
    _queued_since(3601, lost)
    assert training.requeue_lost_training_jobs(after_s=3600, enqueue=sent.append) == {"requeued": [],
                                                                                    "failed": [lost.pk]}
    lost.refresh_from_db()
    assert (lost.state, lost.error_code, sent) == ("failed", "stuck", [lost.pk] * 3)
    assert TrainingJob.objects.create(kind="recognizer").state == "queued"  # the kind is free again


def test_default_age_is_the_transcription_sweeps_and_can_be_set(db, settings, monkeypatch):
    monkeypatch.delenv("QUIRE_TRAIN_QUEUED_STUCK_AFTER_S", raising=False)
    settings.QUIRE_JOB_STUCK_AFTER_S = 1800
    assert training.queued_stuck_after_s() == 1800
    job = _queued_since(1700)
    assert training.requeue_lost_training_jobs(enqueue=lambda pk: None)["requeued"] == []
    monkeypatch.setenv("QUIRE_TRAIN_QUEUED_STUCK_AFTER_S", "600")
    assert training.requeue_lost_training_jobs(enqueue=lambda pk: None)["requeued"] == [job.pk]


def test_two_deliveries_claiming_one_job_at_once_start_it_once(db):
    job = TrainingJob.objects.create(kind="recognizer")
    first, second = TrainingJob.objects.get(pk=job.pk), TrainingJob.objects.get(pk=job.pk)  # both read `queued`
    first.transition("running", only_from=("queued",))
    with pytest.raises(InvalidTransition):
        second.transition("running", only_from=("queued",))  # running → running is allowed, not here
    assert TrainingJob.objects.get(pk=job.pk).attempts == 1
    assert training.start_training_job(job.pk) is None  # a later delivery finds it running: skipped


def _train_runs(worker) -> list[str]:
    """What each finished train_model task returned, from the worker's log: "skipped" (the job
    was not claimed) or the repr of the job's outcome."""
    found = re.findall(r"workers\.tasks\.train_model\[[^\]]+\] succeeded in \S+: (.+)$", worker.log_text(), re.M)
    return ["skipped" if value.strip() == "'skipped'" else value.strip() for value in found]


@pytest.mark.django_db(transaction=True)
def test_lost_training_message_is_sent_again_by_the_sweep_and_trains_once(celery_worker, redis_url, tmp_path,
                                                                          monkeypatch):
    """Real worker, Redis, S3 and database: a training job whose message never reached the
    broker is re-sent by the periodic sweep; the original message then turning up as well
    (a second delivery) is skipped: one run, one candidate."""
    model_store.register_artifact(make_tiny_recognizer(tmp_path / "tiny.pt", f"tiny-{uuid.uuid4().hex[:8]}"),
                                  "recognizer")
    staff = make_user("root", is_staff=True)
    page, _ = make_page(staff)
    for line in add_lines(page, ["Kew Nov 28", "my dear Gray", "I send you"]):
        line.is_ground_truth = True
        line.save()
    job = services.start_training("recognizer", staff, {"steps": 2, "batch_size": 2, "eval_every": 2,
                                                        "heldout_fraction": 0.4, "dev_max_lines": 0},
                                  enqueue=False)  # the message is lost: never sent
    runs_before = _train_runs(celery_worker)
    monkeypatch.setenv("QUIRE_TRAIN_QUEUED_STUCK_AFTER_S", "3600")
    assert tasks.requeue_stuck_jobs.run()["training_requeued"] == []  # queued a moment ago: waiting, not lost
    _queued_since(3601, job)

    outcome = tasks.requeue_stuck_jobs.run()
    assert outcome["training_requeued"] == [job.pk] and outcome["training_failed"] == []
    assert enqueue_training(job.pk)  # the lost message turns up after all: a second delivery

    deadline = time.monotonic() + 600  # a bound on waiting for the worker, not a speed assertion
    while time.monotonic() < deadline and len(_train_runs(celery_worker)) < len(runs_before) + 2:
        time.sleep(0.5)
    runs = _train_runs(celery_worker)[len(runs_before):]
    assert len(runs) == 2 and runs.count("skipped") == 1 and "succeeded" in "".join(runs), celery_worker.log_text(40)
    job.refresh_from_db()
    assert job.state == "succeeded", (job.error_code, job.error_message)
    assert job.attempts == 2  # one re-send, one start: never started twice
    assert ModelVersion.objects.filter(training_job=job).count() == 1


@pytest.mark.parametrize("raw", ["30m", "-5", "nan", "0"])
def test_a_bad_age_setting_falls_back_to_the_default_and_the_sweep_goes_on(db, settings, monkeypatch, caplog, raw):
    settings.QUIRE_JOB_STUCK_AFTER_S = 1800
    monkeypatch.setenv("QUIRE_TRAIN_QUEUED_STUCK_AFTER_S", raw)
    monkeypatch.setenv("QUIRE_TRAIN_STUCK_AFTER_S", raw)
    assert training.queued_stuck_after_s() == 1800
    assert training.stuck_after_s() == 6 * 3600 + 600 + 900
    assert "QUIRE_TRAIN_QUEUED_STUCK_AFTER_S" in caplog.text and "not a positive number" in caplog.text
    job = _queued_since(1801)
    assert training.requeue_lost_training_jobs(enqueue=lambda pk: None)["requeued"] == [job.pk]
