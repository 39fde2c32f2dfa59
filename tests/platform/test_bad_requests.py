"""Bad requests found by a newcomer's probe: each answers a 4xx naming the problem, never a 500
(regression tests; each failed before its fix)."""
import json

import pytest
from django.core.cache import cache

from quire.jobs.models import TrainingJob
from tests.platform.factories import client_for, make_user


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    cache.clear()
    yield
    cache.clear()


def _post_json(client, path, raw: str):
    return client.generic("POST", path, raw, content_type="application/json")


# ------------------------------------------------------------- 1. JSON bodies that are not objects
@pytest.mark.parametrize("raw", ["[1, 2]", '"image"', "null", "12", "true"])
@pytest.mark.parametrize("path", ["/api/v1/transcribe/", "/api/v1/documents/", "/api/v1/auth/token/"])
def test_json_body_that_is_not_an_object_is_400(alice, raw, path):
    response = _post_json(client_for(alice), path, raw)
    assert response.status_code == 400, response.content
    assert "expected a JSON object" in response.json()["detail"]


def test_json_line_patch_that_is_not_an_object_is_400(alice):
    from tests.platform.factories import add_lines, make_page

    page, _ = make_page(alice)
    [line] = add_lines(page, ["kept"])
    response = client_for(alice).generic("PATCH", f"/api/v1/lines/{line.pk}/", '["x"]', content_type="application/json")
    assert response.status_code == 400 and "expected a JSON object" in response.json()["detail"]
    line.refresh_from_db()
    assert line.text == "kept"


@pytest.mark.parametrize("path", ["/api/v1/models/train/", "/api/v1/models/rollback/"])
def test_registry_json_body_that_is_not_an_object_is_400_and_starts_nothing(db, path):
    staff = make_user("root", is_staff=True)
    response = _post_json(client_for(staff), path, "[1]")
    assert response.status_code == 400 and "expected a JSON object" in response.json()["detail"]
    assert not TrainingJob.objects.exists()


def test_json_object_body_still_works(alice):
    response = _post_json(client_for(alice), "/api/v1/documents/", json.dumps({"name": "letters"}))
    assert response.status_code == 201 and response.json()["name"] == "letters"
