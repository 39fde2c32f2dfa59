"""The transcribe task's error mapping, run eagerly (Task.apply, no broker)."""
import pytest

from quire.jobs.models import TranscriptionJob
from tests.platform.factories import make_page, make_user
from tests.workers.test_transcription import ScriptedPipeline
from workers import tasks, transcription


@pytest.fixture
def user(db):
    return make_user("tess")


@pytest.fixture
def pipeline(monkeypatch):
    """The process-wide pipeline cache holds a scripted pipeline for the test."""
    scripted = ScriptedPipeline(["Dear Sir,", "I have the honour"])
    monkeypatch.setattr(transcription, "_PIPELINE", scripted)
    return scripted


def _run(job_id):
    return tasks.transcribe_page.apply(args=[job_id]).get()


def test_task_succeeds_and_a_second_delivery_is_skipped(media, user, pipeline):
    page, job = make_page(user)
    assert _run(job.pk) == "succeeded"
    assert _run(job.pk) == "skipped"
    assert list(page.lines.values_list("text", flat=True)) == ["Dear Sir,", "I have the honour"]
    assert TranscriptionJob.objects.get(pk=job.pk).attempts == 1


def test_storage_outage_retries_with_backoff_then_fails(media, user, pipeline, settings, tmp_path, monkeypatch):
    monkeypatch.setattr(tasks.transcribe_page, "max_retries", 2)
    _, job = make_page(user)
    blocker = tmp_path / "blocked"
    blocker.write_text("not a folder")
    settings.MEDIA_ROOT = str(blocker)
    assert _run(job.pk) == "failed"
    job.refresh_from_db()
    assert (job.state, job.error_code, job.attempts) == ("failed", "storage_unavailable", 3)
    assert "gave up after 2 retries" in job.error_message


def test_unreadable_page_fails_as_bad_image(media, user, pipeline):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    page, job = make_page(user)
    default_storage.delete(page.image.name)
    default_storage.save(page.image.name, ContentFile(b"\x89PNG\r\n\x1a\n truncated"))
    assert _run(job.pk) == "failed"
    job.refresh_from_db()
    assert job.error_code == "bad_image" and "unreadable" in job.error_message


def test_unexpected_error_fails_the_job_not_the_worker(media, user, monkeypatch):
    class Broken:
        def run(self, gray, progress=None, should_cancel=None):
            raise RuntimeError("recognizer exploded")

    monkeypatch.setattr(transcription, "_PIPELINE", Broken())
    _, job = make_page(user)
    assert _run(job.pk) == "failed"
    job.refresh_from_db()
    assert job.error_code == "internal_error" and job.error_message == "RuntimeError: recognizer exploded"


def test_canceled_job_is_left_canceled(media, user, monkeypatch):
    monkeypatch.setattr(transcription, "_PIPELINE", ScriptedPipeline(["a", "b", "c"], cancel_after=1))
    _, job = make_page(user)
    assert _run(job.pk) == "canceled"
    assert TranscriptionJob.objects.get(pk=job.pk).state == "canceled"


def test_canceled_before_start_is_skipped(media, user, pipeline):
    page, job = make_page(user)
    job.transition("canceled")
    assert _run(job.pk) == "skipped" and not page.lines.exists()


def test_transient_codes_and_backoff():
    from django.db import OperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError

    from quire.documents.storage import StorageUnavailable

    assert tasks.transient_code(StorageUnavailable("x")) == "storage_unavailable"
    assert tasks.transient_code(RedisConnectionError()) == "broker_unavailable"
    assert tasks.transient_code(OperationalError()) == "database_unavailable"
    assert tasks.transient_code(ValueError()) is None
    assert [tasks.retry_delay(n) for n in range(3)] == [tasks.RETRY_BACKOFF_S * f for f in (1, 2, 4)]
    assert tasks.retry_delay(50) == tasks.RETRY_BACKOFF_MAX_S


def test_app_configuration():
    from workers.app import app

    conf = app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1
    assert {q.name for q in conf.task_queues} == {"transcribe", "train"}
    assert conf.task_routes["workers.tasks.transcribe_page"] == {"queue": "transcribe"}
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert "requeue-stuck-jobs" in conf.beat_schedule
