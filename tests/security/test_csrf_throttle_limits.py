"""CSRF on every session-authenticated write, per-user and anonymous throttling (429 with a
message), request size limits, and a regression for a 500 on format-suffix URLs."""
import base64

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle, UserRateThrottle

from quire.documents.models import Document, Line
from quire.jobs.models import TranscriptionJob
from tests.platform.factories import add_lines, client_for, make_page, make_user, page_png


@pytest.fixture
def alice(db, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}
    cache.clear()
    yield make_user("alice")
    cache.clear()


@pytest.fixture
def own(alice):
    page, job = make_page(alice)
    [line] = add_lines(page, ["original"])
    failed_page, failed = make_page(alice, page.document)
    failed.transition("canceled")
    return {"page": page, "job": job, "line": line, "failed": failed}


def session_client(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.login(username=user.username, password=f"pw-{user.username}-123")
    return client


def writes(own):
    """(name, method, path, data, content type) of every write a signed-in browser can make."""
    return [
        ("create document", "post", "/api/v1/documents/", {"name": "x"}, "json"),
        ("upload page", "post", "/api/v1/pages/", {"files": [SimpleUploadedFile("a.png", page_png(seed=1))]}, None),
        ("transcribe", "post", "/api/v1/transcribe/", {"image": base64.b64encode(page_png(seed=2)).decode()}, "json"),
        ("cancel job", "post", f"/api/v1/jobs/{own['job'].pk}/cancel/", {}, "json"),
        ("retry job", "post", f"/api/v1/jobs/{own['failed'].pk}/retry/", {}, "json"),
        ("correct line", "patch", f"/api/v1/lines/{own['line'].pk}/", {"text": "forged"}, "json"),
        ("web: create document", "post", "/", {"name": "forged"}, None),
        ("web: sign out", "post", "/logout/", {}, None),
    ]


def _send(client, method, path, data, kind, **headers):
    if kind == "json":
        import json

        return getattr(client, method)(path, json.dumps(data), content_type="application/json", **headers)
    return getattr(client, method)(path, data, **headers)


def _state(own):
    return (Document.objects.count(), TranscriptionJob.objects.count(),
            TranscriptionJob.objects.get(pk=own["job"].pk).state, TranscriptionJob.objects.get(pk=own["failed"].pk).state,
            Line.objects.get(pk=own["line"].pk).text)


def test_session_writes_without_csrf_token_are_refused(alice, own, django_capture_on_commit_callbacks):
    client = session_client(alice)
    before = _state(own)
    for name, method, path, data, kind in writes(own):
        response = _send(client, method, path, data, kind)
        assert response.status_code == 403, (name, response.status_code)
        assert b"CSRF" in response.content, name
    assert _state(own) == before
    assert client.get("/api/v1/jobs/").status_code == 200  # still signed in: the sign-out was refused too


def test_session_writes_with_the_csrf_token_go_through(alice, own, settings, django_capture_on_commit_callbacks):
    settings.QUIRE_TRANSCRIBE_MAX_WAIT_S = 0
    client = session_client(alice)
    client.get("/")  # the documents page sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    for name, method, path, data, kind in writes(own):
        response = _send(client, method, path, data, kind, HTTP_X_CSRFTOKEN=token)
        assert response.status_code in (200, 201, 202, 302), (name, response.status_code)


def test_sign_in_form_needs_its_csrf_token(alice):
    response = Client(enforce_csrf_checks=True).post("/login/", {"username": "alice", "password": "pw-alice-123"})
    assert response.status_code == 403


def test_token_authenticated_writes_need_no_csrf_token(alice, own):
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=alice).key}")
    assert client.post(f"/api/v1/jobs/{own['job'].pk}/cancel/").status_code == 200


# ---------------------------------------------------------------------------------- throttling
def test_token_requests_are_throttled(alice, monkeypatch):
    """Password guessing on the token endpoint meets the `auth` rate (per client address); DRF's
    own token view has no throttle (this test failed before quire.api.views.ObtainTokenView)."""
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {**ScopedRateThrottle.THROTTLE_RATES, "auth": "3/min"})
    statuses = [APIClient().post("/api/v1/auth/token/", {"username": "alice", "password": f"guess-{i}"},
                                 format="json") for i in range(4)]
    assert [r.status_code for r in statuses] == [400, 400, 400, 429]
    assert "throttled" in statuses[-1].json()["detail"].lower() and statuses[-1].has_header("Retry-After")
    right = APIClient().post("/api/v1/auth/token/", {"username": "alice", "password": "pw-alice-123"}, format="json")
    assert right.status_code == 429  # the right password does not get around the limit either


def test_each_user_has_their_own_request_budget(alice, monkeypatch):
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {**UserRateThrottle.THROTTLE_RATES, "user": "3/min"})
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", ScopedRateThrottle.THROTTLE_RATES)
    client = client_for(alice)
    statuses = [client.get("/api/v1/jobs/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    detail = client.get("/api/v1/documents/").json()["detail"]
    assert "throttled" in detail.lower() and "available in" in detail
    assert client_for(make_user("bob")).get("/api/v1/jobs/").status_code == 200


# ---------------------------------------------------------------------------------------- limits
def test_base64_upload_over_the_byte_limit_is_413(alice, settings):
    settings.QUIRE_MAX_UPLOAD_BYTES = 2_000
    data = page_png(seed=3)
    assert len(data) > 2_000
    response = client_for(alice).post("/api/v1/transcribe/", {"image": base64.b64encode(data).decode()}, format="json")
    assert response.status_code == 413 and "exceeds the limit of 2000 bytes" in response.json()["detail"]


def test_base64_upload_over_the_pixel_limit_is_413(alice, settings):
    settings.QUIRE_MAX_PIXELS = 10_000
    response = client_for(alice).post("/api/v1/transcribe/", {"image": base64.b64encode(page_png(seed=4)).decode(),
                                                              "filename": "wide.png"}, format="json")
    assert response.status_code == 413 and "wide.png" in response.json()["detail"]


def test_request_body_over_the_memory_limit_is_refused_without_a_500(alice, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    body = {"image": base64.b64encode(page_png(seed=5)).decode()}
    response = client_for(alice).post("/api/v1/transcribe/", body, format="json")
    assert 400 <= response.status_code < 500


def test_too_many_files_in_one_request_is_413(alice):
    files = [SimpleUploadedFile(f"p{i}.png", b"x") for i in range(51)]
    response = client_for(alice).post("/api/v1/pages/", {"files": files}, format="multipart")
    assert response.status_code == 413 and "at most 50" in response.json()["detail"]


@pytest.mark.parametrize("path", ["/api/v1/documents/{doc}/export.json", "/api/v1/pages/{page}/image.json",
                                  "/api/v1/jobs/{job}/cancel.json", "/api/v1/jobs/{job}.json"])
def test_format_suffix_urls_are_404_not_500(alice, own, path):
    url = path.format(doc=own["page"].document_id, page=own["page"].pk, job=own["job"].pk)
    assert client_for(alice).get(url).status_code == 404
