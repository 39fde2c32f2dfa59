"""Job domain functions (no broker): start, run with a pipeline, store, cancel, redelivery, sweep."""
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from ml.pipeline import Canceled, LineResult, PageImageError, PageResult
from quire.documents.models import Line
from quire.documents.storage import get_bytes, result_key
from quire.jobs.models import TranscriptionJob
from tests.platform.factories import finish_job, make_page, make_user
from workers import transcription


class ScriptedPipeline:
    """Stands in for ml.pipeline.PagePipeline in these unit tests of run_job: reports progress per
    line, polls should_cancel like the real one, and returns the given texts as lines."""

    def __init__(self, texts, cancel_after=None):
        self.texts, self.cancel_after, self.seen_shape = texts, cancel_after, None

    def run(self, gray, progress=None, should_cancel=None):
        self.seen_shape = gray.shape
        for done in range(1, len(self.texts) + 1):
            if should_cancel is not None and should_cancel():
                raise Canceled()
            if progress is not None:
                progress(done / len(self.texts))
            if self.cancel_after == done:
                TranscriptionJob.objects.filter(state="running").update(state="canceled")
        lines = [LineResult(polygon=[[0, i], [50, i], [50, i + 9]], baseline=[[0, i + 8], [50, i + 8]],
                            bbox=[0, i, 50, i + 9], text=t, confidence=0.5, char_confidences=[0.5] * len(t))
                 for i, t in enumerate(self.texts)]
        return PageResult(width=gray.shape[1], height=gray.shape[0], lines=lines, timings={"total": 0.01},
                          models={"recognizer": "quire-recognizer@scripted"})


@pytest.fixture
def user(db):
    return make_user("walter")


def test_run_job_stores_lines_result_and_success(media, user):
    page, job = make_page(user)
    pipeline = ScriptedPipeline(["one", "two", "three"])
    job = transcription.start_job(job.pk)
    assert transcription.run_job(job, lambda: pipeline) is True
    assert pipeline.seen_shape == (300, 400)
    job.refresh_from_db()
    assert (job.state, job.progress, job.models_used) == ("succeeded", 1.0, {"recognizer": "quire-recognizer@scripted"})
    assert list(page.lines.values_list("index", "text")) == [(0, "one"), (1, "two"), (2, "three")]
    assert job.result.name == result_key(job.pk) and b'"three"' in get_bytes(job.result.name)


def test_cancel_while_running_stops_and_stores_nothing(media, user):
    page, job = make_page(user)
    job = transcription.start_job(job.pk)
    with pytest.raises(Canceled):
        transcription.run_job(job, lambda: ScriptedPipeline(["a", "b", "c"], cancel_after=1))
    assert TranscriptionJob.objects.get(pk=job.pk).state == "canceled" and not page.lines.exists()


def test_duplicate_delivery_of_finished_job_does_nothing(media, user):
    _, job = make_page(user)
    finish_job(job, ["kept"])
    assert transcription.start_job(job.pk) is None
    assert TranscriptionJob.objects.get(pk=job.pk).attempts == 1


def test_redelivery_of_running_job_reruns_and_replaces_lines(media, user):
    """A worker died after starting: the redelivered job runs again and the page keeps one set of lines."""
    page, job = make_page(user)
    first = transcription.start_job(job.pk)
    Line.objects.create(page=page, index=0, text="partial from the dead worker")
    again = transcription.start_job(job.pk)
    assert again.attempts == 2
    assert transcription.run_job(again, lambda: ScriptedPipeline(["x", "y"]))
    assert list(page.lines.values_list("text", flat=True)) == ["x", "y"]
    assert transcription.store_result(first, ScriptedPipeline(["late"]).run(
        transcription.read_page_image(first), lambda f: None, lambda: False)) is False
    assert list(page.lines.values_list("text", flat=True)) == ["x", "y"]


def test_a_page_that_keeps_killing_its_worker_fails(media, user, settings):
    settings.QUIRE_JOB_MAX_ATTEMPTS = 2
    _, job = make_page(user)
    transcription.start_job(job.pk)  # attempt 1: the worker dies
    assert transcription.start_job(job.pk).attempts == 2  # redelivered: attempt 2, dies again
    assert transcription.start_job(job.pk) is None
    job.refresh_from_db()
    assert (job.state, job.error_code) == ("failed", "worker_lost")


def test_corrupt_stored_image_is_a_page_image_error(media, user):
    page, job = make_page(user)
    default_storage.delete(page.image.name)
    default_storage.save(page.image.name, ContentFile(b"not a png"))
    with pytest.raises(PageImageError, match="unreadable"):
        transcription.read_page_image(job)


def test_sweep_requeues_lost_jobs_and_fails_hopeless_ones(media, user, settings):
    settings.QUIRE_JOB_STUCK_AFTER_S = 600
    settings.QUIRE_JOB_MAX_ATTEMPTS = 3
    old = timezone.now() - timedelta(seconds=601)
    _, lost_message = make_page(user)
    _, dead_worker = make_page(user)
    _, hopeless = make_page(user)
    _, fresh = make_page(user)
    TranscriptionJob.objects.filter(pk=lost_message.pk).update(queued_at=old)
    TranscriptionJob.objects.filter(pk=dead_worker.pk).update(state="running", started_at=old, attempts=1)
    TranscriptionJob.objects.filter(pk=hopeless.pk).update(state="running", started_at=old, attempts=3)
    TranscriptionJob.objects.filter(pk=fresh.pk).update(state="running", started_at=timezone.now(), attempts=1)
    sent = []
    outcome = transcription.requeue_stuck_jobs(enqueue=sent.append)
    assert outcome == {"requeued": [lost_message.pk, dead_worker.pk], "failed": [hopeless.pk]}
    assert sent == [lost_message.pk, dead_worker.pk]
    states = dict(TranscriptionJob.objects.values_list("pk", "state"))
    assert states == {lost_message.pk: "queued", dead_worker.pk: "queued", hopeless.pk: "failed",
                      fresh.pk: "running"}
    assert TranscriptionJob.objects.get(pk=lost_message.pk).attempts == 1
    assert TranscriptionJob.objects.get(pk=hopeless.pk).error_code == "stuck"
    assert transcription.requeue_stuck_jobs(enqueue=sent.append) == {"requeued": [], "failed": []}  # just re-queued: not stuck
