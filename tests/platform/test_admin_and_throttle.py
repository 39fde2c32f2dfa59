"""The admin pages render; uploads are throttled per user with a JSON 429."""
import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.throttling import ScopedRateThrottle

from quire.registry.models import ModelVersion
from tests.platform.factories import add_lines, client_for, make_page, make_user, page_png


@pytest.mark.parametrize("model", ["documents/document", "documents/page", "documents/line", "jobs/transcriptionjob",
                                   "jobs/trainingjob", "registry/modelversion"])
def test_admin_changelists_render(client, db, model):
    admin = make_user("root", is_staff=True, is_superuser=True)
    page, _ = make_page(admin)
    [line] = add_lines(page, ["x"])
    ModelVersion.objects.create(kind="recognizer", version="1", artifact="models/r1.pt")
    client.force_login(admin)
    assert client.get(f"/admin/{model}/").status_code == 200
    assert client.get(f"/admin/documents/line/{line.pk}/change/").status_code == 200


def test_uploads_are_throttled_per_user(alice, bob, monkeypatch):
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {**ScopedRateThrottle.THROTTLE_RATES, "uploads": "2/min"})
    cache.clear()
    client = client_for(alice)
    statuses = [client.post("/api/v1/pages/", {"files": [SimpleUploadedFile("a.png", page_png(seed=s))]},
                            format="multipart").status_code for s in range(3)]
    assert statuses == [202, 202, 429]
    throttled = client.post("/api/v1/transcribe/", {"file": SimpleUploadedFile("b.png", page_png(seed=9))},
                            format="multipart")
    assert throttled.status_code == 429 and "throttled" in throttled.json()["detail"].lower()
    assert client.get("/api/v1/jobs/").status_code == 200  # reading is not an upload
    other = client_for(bob).post("/api/v1/pages/", {"files": [SimpleUploadedFile("c.png", page_png(seed=5))]},
                                 format="multipart")
    assert other.status_code == 202
    cache.clear()
