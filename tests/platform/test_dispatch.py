"""Queueing a job when the broker is down: the upload still succeeds, the job stays queued."""
from django.core.files.uploadedfile import SimpleUploadedFile

from quire.jobs.dispatch import enqueue_transcription
from quire.jobs.models import TranscriptionJob
from tests.platform.factories import client_for, page_png


def test_unreachable_broker_leaves_the_job_queued_for_the_sweep(alice, settings, monkeypatch,
                                                                django_capture_on_commit_callbacks):
    nowhere = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings.CELERY_BROKER_URL = nowhere
    monkeypatch.setenv("CELERY_BROKER_URL", nowhere)  # Celery lets this variable override its config
    assert enqueue_transcription(12345) is False
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(alice).post("/api/v1/pages/", {"files": [SimpleUploadedFile("a.png", page_png(seed=1))]},
                                          format="multipart")
    assert response.status_code == 202
    assert TranscriptionJob.objects.get().state == "queued"
