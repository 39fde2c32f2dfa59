"""Through a real Celery worker process, real Redis, the SeaweedFS S3 server and the test database."""
import time
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from quire.jobs.dispatch import enqueue_transcription
from quire.jobs.models import TranscriptionJob
from tests.platform.factories import client_for, make_page, make_user
from tests.platform.xml_schemas import assert_valid

ROOT = Path(__file__).resolve().parents[2]
HAS_MODELS = all((ROOT / "ml" / "artifacts" / name).exists() for name in ("recognizer.pt", "detector.pt"))
POLL_LIMIT_S = 600  # a bound on waiting, not a speed assertion

pytestmark = pytest.mark.django_db(transaction=True)


def wait_final(job_id: int) -> TranscriptionJob:
    deadline = time.monotonic() + POLL_LIMIT_S
    while time.monotonic() < deadline:
        job = TranscriptionJob.objects.get(pk=job_id)
        if job.is_final:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {job.state} after {POLL_LIMIT_S} s")


def test_worker_fails_an_unreadable_page_and_skips_a_canceled_job(celery_worker):
    user = make_user("wendy")
    broken_page, broken = make_page(user)
    default_storage.delete(broken_page.image.name)
    default_storage.save(broken_page.image.name, ContentFile(b"\x89PNG\r\n\x1a\n cut short"))
    canceled_page, canceled = make_page(user)
    canceled.transition("canceled")
    # One solo worker takes messages in order: once the broken job is final, the canceled one was seen.
    assert enqueue_transcription(canceled.pk) and enqueue_transcription(broken.pk)
    broken = wait_final(broken.pk)
    assert (broken.state, broken.error_code, broken.attempts) == ("failed", "bad_image", 1)
    assert "unreadable" in broken.error_message
    canceled.refresh_from_db()
    assert canceled.state == "canceled" and canceled.attempts == 0 and not canceled_page.lines.exists()
    assert celery_worker.alive()


@pytest.mark.skipif(not HAS_MODELS, reason="shipped model artifacts (ml/artifacts/*.pt) not built yet")
def test_upload_real_page_over_http_until_succeeded(celery_worker, handwritten_page):
    client = client_for(make_user("hooker"))
    upload = SimpleUploadedFile(handwritten_page["image"].name, handwritten_page["image"].read_bytes())
    response = client.post("/api/v1/pages/", {"files": [upload]}, format="multipart")
    assert response.status_code == 202, response.content
    job = wait_final(response.json()["jobs"][0]["id"])
    assert job.state == "succeeded", (job.error_code, job.error_message)
    detail = client.get(response["Location"]).json()
    assert detail["models_used"]["recognizer"].startswith("quire-recognizer@")
    page = client.get(detail["page_url"]).json()
    assert len(page["lines"]) >= 5 and page["text"].strip()
    for fmt in ("page", "alto"):
        assert_valid(client.get(f"{detail['page_url']}export/?format={fmt}").content, fmt)
    assert client.get(detail["result_url"]).json()["lines"]


def test_upside_down_page_is_read_turned_and_the_user_is_told(celery_worker, handwritten_page):
    import io

    from django.test import Client
    from PIL import Image

    from ml.detect.pages import read_page_xml
    from ml.metrics import ErrorRate

    user = make_user("turner")
    client = client_for(user)
    buf = io.BytesIO()
    Image.open(handwritten_page["image"]).rotate(180).save(buf, "JPEG", quality=90)
    upload = SimpleUploadedFile("upside-down.jpg", buf.getvalue(), content_type="image/jpeg")
    response = client.post("/api/v1/pages/", {"files": [upload]}, format="multipart")
    assert response.status_code == 202, response.content
    job = wait_final(response.json()["jobs"][0]["id"])
    assert job.state == "succeeded", (job.error_code, job.error_message)
    detail = client.get(response["Location"]).json()
    assert any("turned by 180°" in w for w in detail["warnings"]), detail["warnings"]
    assert detail["models_used"]["language_model"].startswith("quire-charlm@")  # QUIRE_DECODING=lm by default
    page = client.get(detail["page_url"]).json()
    truth = read_page_xml(handwritten_page["xml"])
    ref = " ".join(t["text"] for t in sorted(truth, key=lambda t: min(y for _, y in t["polygon"])))
    acc = ErrorRate()
    acc.update(ref, " ".join(line["text"] for line in page["lines"]))
    assert acc.cer <= 0.30, (acc.cer, page["text"])  # the bound of tests/ml/test_pipeline.py
    web = Client()
    web.force_login(user)
    html = web.get(f"/pages/{page['id']}/").content.decode()
    assert "turned by 180°" in html
