"""GET /api/v1/lines/{id}/versions/: the kept versions of a line (who, when, text), oldest first,
for the line's owner only."""
from rest_framework.test import APIClient

from tests.platform.factories import add_lines, client_for, make_page


def test_versions_list_model_output_then_each_correction(alice, db):
    page, _ = make_page(alice)
    [line] = add_lines(page, ["Kew Nov 28"])
    client = client_for(alice)
    assert client.get(f"/api/v1/lines/{line.pk}/versions/").json() == []  # never corrected
    for text in ("Kew Nov. 28", "Kew Novr. 28"):
        assert client.patch(f"/api/v1/lines/{line.pk}/", {"text": text}, format="json").status_code == 200

    response = client.get(f"/api/v1/lines/{line.pk}/versions/")
    assert response.status_code == 200
    versions = response.json()
    assert [(v["source"], v["user"], v["text"]) for v in versions] == [
        ("model", None, "Kew Nov 28"), ("user", "alice", "Kew Nov. 28"), ("user", "alice", "Kew Novr. 28")]
    assert versions[0]["created_at"] <= versions[1]["created_at"] <= versions[2]["created_at"]
    assert versions[1]["polygon"] == line.polygon and set(versions[0]) == {
        "id", "source", "text", "polygon", "baseline", "user", "created_at"}


def test_versions_of_another_users_line_are_404_and_anonymous_is_refused(alice, bob, db):
    page, _ = make_page(bob)
    [line] = add_lines(page, ["bob's line"])
    assert client_for(bob).patch(f"/api/v1/lines/{line.pk}/", {"text": "bob's own"}, format="json").status_code == 200
    foreign = client_for(alice).get(f"/api/v1/lines/{line.pk}/versions/")
    missing = client_for(alice).get("/api/v1/lines/987654/versions/")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json() and b"bob" not in foreign.content
    assert APIClient().get(f"/api/v1/lines/{line.pk}/versions/").status_code == 401
    assert client_for(bob).post(f"/api/v1/lines/{line.pk}/versions/", {}, format="json").status_code == 405
