"""Object-level permissions for EVERY endpoint that takes an id, every method: user A asking for
user B's document, page, job or line gets exactly what A gets for an id that does not exist (404,
or 405 for a method the endpoint never allows), so ids do not leak; B's objects are unchanged.
Staff-only actions refuse other users. The routes come from Django's resolver
(tests/security/routes.py): an id-taking endpoint added later is covered or makes
`test_every_id_route_is_covered` fail. (tests/platform/test_api_permissions.py checks the common
cases one by one; this file is the exhaustive sweep.)
"""
import re

import pytest
from django.test import Client
from rest_framework.test import APIClient

from quire.documents.models import Document, Line, Page
from quire.jobs.models import TrainingJob, TranscriptionJob
from quire.registry.models import ModelVersion
from tests.platform.factories import add_lines, client_for, make_page, make_user
from tests.security.routes import all_routes, example_path

MISSING = 987654
OWNED = {"documents": "document", "pages": "page", "jobs": "job", "lines": "line"}  # route prefix -> object
STAFF_ONLY = ("api/v1/models/", "api/v1/training-jobs/", "models/", "admin/")
METHODS = ("get", "post", "put", "patch", "delete")
FORMATS = ("txt", "json", "page", "alto")


def _owned_kind(route: str) -> str | None:
    rest = route.removeprefix("api/v1/")
    return OWNED.get(rest.split("/")[0].split("<")[0])


ID_ROUTES = [(route, pattern) for route, _, pattern in all_routes() if "<int:pk>" in route]


@pytest.fixture
def world(db, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}
    alice, bob = make_user("alice"), make_user("bob")
    make_page(alice)  # alice owns things too: the 404 is not "alice has nothing"
    page, job = make_page(bob)
    [line] = add_lines(page, ["bob's private line"])
    return {"alice": alice, "bob": bob, "document": page.document, "page": page, "job": job, "line": line}


def _snapshot(world) -> tuple:
    job = TranscriptionJob.objects.get(pk=world["job"].pk)
    return (Document.objects.get(pk=world["document"].pk).name, Page.objects.filter(document=world["document"]).count(),
            job.state, job.attempts, Line.objects.get(pk=world["line"].pk).text,
            Line.objects.get(pk=world["line"].pk).polygon)


def _unmasked(content: bytes) -> bytes:
    """The body without its CSRF token (masked anew on every response of a web page)."""
    return re.sub(rb'(name="csrf-token" content|name="csrfmiddlewaretoken" value)="[^"]*"', rb"\1", content)


def _request(client, method: str, path: str):
    if method in ("get", "delete"):
        return getattr(client, method)(path)
    return getattr(client, method)(path, {"text": "overwritten", "name": "stolen", "polygon": [[0, 0], [1, 0], [1, 1]]},
                                   format="json")


def test_every_id_route_is_covered():
    kinds = {route: _owned_kind(route) for route, _ in ID_ROUTES}
    uncovered = [r for r, kind in kinds.items() if kind is None and not r.startswith(STAFF_ONLY)]
    assert uncovered == [], "id-taking routes with no ownership rule in this test"
    assert {kind for kind in kinds.values() if kind} == set(OWNED.values())


@pytest.mark.parametrize("route", [r for r, _ in ID_ROUTES if _owned_kind(r)])
def test_another_users_object_is_indistinguishable_from_a_missing_one(world, route):
    client = client_for(world["alice"]) if route.startswith("api/") else Client()
    if not route.startswith("api/"):
        client.force_login(world["alice"])
    target = world[_owned_kind(route)].pk
    queries = [f"?format={fmt}" for fmt in FORMATS] if "export" in route else [""]
    before = _snapshot(world)
    for method in METHODS:
        for query in queries:
            foreign = _request(client, method, example_path(route, target) + query)
            missing = _request(client, method, example_path(route, MISSING) + query)
            assert foreign.status_code in (404, 405), (method, route, foreign.status_code)
            assert (foreign.status_code, _unmasked(foreign.content)) == (missing.status_code, _unmasked(missing.content)), \
                (method, route)
            assert b"bob" not in foreign.content
    assert _snapshot(world) == before


def test_owner_reaches_every_id_route(world):
    """The same paths work for their owner (so the 404s above are about ownership, not wrong paths)."""
    client = client_for(world["bob"])
    web = Client()
    web.force_login(world["bob"])
    for route in [r for r, _ in ID_ROUTES if _owned_kind(r)]:
        path = example_path(route, world[_owned_kind(route)].pk) + ("?format=txt" if "export" in route else "")
        response = (client if route.startswith("api/") else web).get(path)
        assert response.status_code in (200, 405), (route, response.status_code)


def test_filters_do_not_reach_other_users_objects(world):
    client = client_for(world["alice"])
    assert client.get(f"/api/v1/pages/?document={world['document'].pk}").json()["results"] == []
    assert client.get(f"/api/v1/jobs/?page_id={world['page'].pk}").json()["results"] == []
    response = client.post("/api/v1/pages/", {"document": world["document"].pk}, format="multipart")
    assert response.status_code == 400


# ------------------------------------------------------------------------------------- staff only
@pytest.fixture
def registry(world):
    production = ModelVersion.objects.create(kind="recognizer", version="1", state="production",
                                             artifact="models/r1.pt")
    candidate = ModelVersion.objects.create(kind="recognizer", version="2", state="candidate",
                                            artifact="models/r2.pt", parent=production)
    training = TrainingJob.objects.create(kind="recognizer")
    return {"production": production, "candidate": candidate, "training": training}


def _registry_state():
    return (sorted(ModelVersion.objects.values_list("version", "state")),
            sorted(TrainingJob.objects.values_list("pk", "state")))


def test_staff_only_actions_refuse_other_users(world, registry):
    client = client_for(world["alice"])
    before = _registry_state()
    writes = [("post", f"/api/v1/models/{registry['candidate'].pk}/promote/", {"reason": "mine now"}),
              ("post", "/api/v1/models/rollback/", {"kind": "recognizer"}),
              ("post", "/api/v1/models/train/", {"kind": "recognizer"}),
              ("post", f"/api/v1/training-jobs/{registry['training'].pk}/cancel/", {}),
              ("get", "/api/v1/training-jobs/", None),
              ("get", f"/api/v1/training-jobs/{registry['training'].pk}/", None)]
    for method, path, body in writes:
        response = getattr(client, method)(path, body, format="json") if body is not None else client.get(path)
        assert response.status_code in (403, 404), (path, response.status_code)
        assert "detail" in response.json()
    assert _registry_state() == before
    web = Client()
    web.force_login(world["alice"])
    assert web.get("/models/").status_code == 404
    admin = web.get("/admin/documents/document/")
    assert admin.status_code == 302 and admin["Location"].startswith("/admin/login/")


def test_staff_reach_the_staff_actions(world, registry):
    staff = make_user("root", is_staff=True)
    client = client_for(staff)
    assert client.get("/api/v1/training-jobs/").status_code == 200
    web = Client()
    web.force_login(staff)
    assert web.get("/models/").status_code == 200


def test_token_of_one_user_does_not_act_as_another(world):
    from rest_framework.authtoken.models import Token

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=world['alice']).key}")
    assert client.get(f"/api/v1/jobs/{world['job'].pk}/").status_code == 404
    assert client.post(f"/api/v1/jobs/{world['job'].pk}/cancel/").status_code == 404
    assert TranscriptionJob.objects.get(pk=world["job"].pk).state == "queued"
