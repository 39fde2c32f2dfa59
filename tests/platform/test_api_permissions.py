"""A user reads, changes, exports and cancels only their own objects: others' are 404."""
import pytest
from rest_framework.test import APIClient

from quire.documents.models import Line
from quire.jobs.models import JobState, TranscriptionJob
from tests.platform.factories import add_lines, client_for, make_page


@pytest.fixture
def bobs(bob):
    page, job = make_page(bob)
    [line] = add_lines(page, ["private"])
    return {"document": page.document, "page": page, "job": job, "line": line}


@pytest.mark.parametrize("method,url", [
    ("get", "/api/v1/documents/{document}/"),
    ("get", "/api/v1/documents/{document}/export/?format=txt"),
    ("get", "/api/v1/pages/{page}/"),
    ("get", "/api/v1/pages/{page}/image/"),
    ("get", "/api/v1/pages/{page}/export/?format=alto"),
    ("get", "/api/v1/jobs/{job}/"),
    ("post", "/api/v1/jobs/{job}/cancel/"),
    ("post", "/api/v1/jobs/{job}/retry/"),
    ("get", "/api/v1/lines/{line}/"),
    ("patch", "/api/v1/lines/{line}/"),
])
def test_other_users_objects_are_404(alice, bobs, method, url):
    client, path = client_for(alice), url.format(**{name: obj.pk for name, obj in bobs.items()})
    response = client.get(path) if method == "get" else getattr(client, method)(path, {"text": "x"}, format="json")
    assert response.status_code == 404 and "detail" in response.json()
    assert TranscriptionJob.objects.get(pk=bobs["job"].pk).state == JobState.QUEUED
    assert Line.objects.get(pk=bobs["line"].pk).text == "private"


def test_lists_show_only_own_objects(alice, bobs):
    page, job = make_page(alice)
    client = client_for(alice)
    expected = {"documents": page.document.pk, "pages": page.pk, "jobs": job.pk}
    for kind, own_id in expected.items():
        assert [r["id"] for r in client.get(f"/api/v1/{kind}/").json()["results"]] == [own_id]


def test_owner_sees_own_objects(bob, bobs):
    client = client_for(bob)
    assert client.get(f"/api/v1/pages/{bobs['page'].pk}/").status_code == 200
    assert client.get(f"/api/v1/lines/{bobs['line'].pk}/").json()["text"] == "private"


@pytest.mark.parametrize("url", ["/api/v1/documents/", "/api/v1/pages/", "/api/v1/jobs/", "/api/v1/transcribe/"])
def test_anonymous_is_401(db, url):
    response = APIClient().get(url) if "transcribe" not in url else APIClient().post(url, {}, format="json")
    assert response.status_code == 401 and "detail" in response.json()


def test_token_auth(alice):
    client = APIClient()
    token = client.post("/api/v1/auth/token/", {"username": "alice", "password": "pw-alice-123"},
                        format="json").json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/jobs/").status_code == 200
    bad = APIClient().post("/api/v1/auth/token/", {"username": "alice", "password": "wrong"}, format="json")
    assert bad.status_code == 400 and "Unable to log in" in bad.json()["detail"]


def test_session_writes_need_csrf(alice):
    client = APIClient(enforce_csrf_checks=True)
    client.login(username="alice", password="pw-alice-123")
    assert client.get("/api/v1/jobs/").status_code == 200
    response = client.post("/api/v1/documents/", {"name": "x"}, format="json")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
