"""POST /api/v1/pages/: 202 with a Location per job, stored by id/hash, duplicates, bad input."""
import hashlib

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from quire.documents.models import Document, Page
from quire.jobs.models import TranscriptionJob
from tests.platform.factories import client_for, page_png

URL = "/api/v1/pages/"


def _file(data: bytes, name: str = "letter.png", content_type: str = "image/png"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def test_upload_answers_202_with_job_location_and_queues_after_commit(alice, django_capture_on_commit_callbacks):
    data = page_png(seed=1)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client_for(alice).post(URL, {"files": [_file(data, "../../etc/passwd.png")]}, format="multipart")
    assert response.status_code == 202, response.json()
    body = response.json()
    [entry] = body["jobs"]
    assert response["Location"] == entry["url"] and entry["url"].endswith(f"/api/v1/jobs/{entry['id']}/")
    assert entry["state"] == "queued" and entry["duplicate"] is False and body["errors"] == []
    assert len(callbacks) == 1  # the job is sent to the queue only once the rows are committed
    page = Page.objects.get(pk=entry["page"])
    digest = hashlib.sha256(data).hexdigest()
    assert page.sha256 == digest and page.filename == "passwd.png" and (page.width, page.height) == (400, 300)
    assert page.original.name == f"originals/{alice.pk}/{digest}.png"
    assert page.image.name == f"pages/{page.pk}/normalised.png"
    assert default_storage.open(page.original.name).read() == data
    assert page.document.owner == alice and page.document.name == "passwd"


def test_several_files_one_document_in_order(alice):
    client = client_for(alice)
    document = client.post("/api/v1/documents/", {"name": "Letters 1850"}, format="json").json()
    files = [_file(page_png(seed=s), f"p{s}.png") for s in (1, 2, 3)]
    response = client.post(URL, {"files": files, "document": document["id"]}, format="multipart")
    assert response.status_code == 202
    pages = Page.objects.filter(document_id=document["id"]).order_by("order")
    assert [p.filename for p in pages] == ["p1.png", "p2.png", "p3.png"] and [p.order for p in pages] == [0, 1, 2]
    assert [j["page"] for j in response.json()["jobs"]] == [p.pk for p in pages]


def test_document_name_creates_the_document(alice):
    response = client_for(alice).post(URL, {"files": [_file(page_png(seed=4))], "document_name": "Diary"},
                                      format="multipart")
    assert response.status_code == 202
    assert Document.objects.get(owner=alice).name == "Diary"


def test_force_must_be_a_yes_or_no(alice):
    client = client_for(alice)
    response = client.post(URL, {"files": [_file(page_png(seed=77))], "force": "banana"}, format="multipart")
    assert response.status_code == 400 and "force must be 1 or 0" in response.json()["detail"]
    assert not Page.objects.exists()  # nothing stored for a refused request
    for value in ("0", "false", "no", ""):
        ok = client.post(URL, {"files": [_file(page_png(seed=78))], "force": value}, format="multipart")
        assert ok.status_code == 202, (value, ok.content)


def test_identical_reupload_is_recognised_unless_forced(alice):
    client, data = client_for(alice), page_png(seed=5)
    first = client.post(URL, {"files": [_file(data)]}, format="multipart").json()["jobs"][0]
    again = client.post(URL, {"files": [_file(data, "renamed.png")]}, format="multipart")
    assert again.status_code == 202
    duplicate = again.json()["jobs"][0]
    assert duplicate | {"filename": None, "duplicate_of": None} == first | {"duplicate": True, "filename": None}
    assert first["duplicate_of"] is None and duplicate["duplicate_of"]["other_document"] is True  # a new one was asked for
    assert TranscriptionJob.objects.count() == 1
    forced = client.post(URL, {"files": [_file(data)], "force": "1"}, format="multipart").json()["jobs"][0]
    assert forced["duplicate"] is False and forced["id"] != first["id"]
    assert TranscriptionJob.objects.count() == 2


def test_reupload_into_another_document_says_where_the_page_is_and_how_to_upload_anyway(alice, django_capture_on_commit_callbacks):
    client, data = client_for(alice), page_png(seed=15)
    letters = client.post("/api/v1/documents/", {"name": "Letters 1850"}, format="json").json()["id"]
    diary = client.post("/api/v1/documents/", {"name": "Diary"}, format="json").json()["id"]
    client.post(URL, {"files": [_file(page_png(seed=16), "cover.png")], "document": letters}, format="multipart")
    original = client.post(URL, {"files": [_file(data)], "document": letters}, format="multipart").json()["jobs"][0]

    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(URL, {"files": [_file(data, "again.png")], "document": diary}, format="multipart")
    assert response.status_code == 202 and not callbacks  # nothing stored, nothing queued
    [entry] = response.json()["jobs"]
    assert (entry["duplicate"], entry["id"], entry["page"], entry["document"]) == (
        True, original["id"], original["page"], letters)
    where = entry["duplicate_of"]
    assert where | {"detail": None} == {
        "document": letters, "document_name": "Letters 1850", "page": original["page"], "page_number": 2,
        "web_url": f"http://testserver/pages/{original['page']}/", "other_document": True,
        "upload_anyway": {"force": "1"}, "detail": None}
    for words in ("letter.png", "page 2 of document", "Letters 1850", where["web_url"], "force=1"):
        assert words in where["detail"], words
    assert not Page.objects.filter(document_id=diary).exists()
    web = Client()
    web.force_login(alice)
    assert web.get(where["web_url"]).status_code == 200  # the link leads to the page in the web UI

    forced = client.post(URL, {"files": [_file(data)], "document": diary, "force": "1"}, format="multipart")
    [copy] = forced.json()["jobs"]
    assert forced.status_code == 202 and copy["document"] == diary and copy["page"] != original["page"]
    assert copy["duplicate"] is False and copy["duplicate_of"] is None

    # Stored twice now: the copy in the document it is sent to is the one answered...
    here = client.post(URL, {"files": [_file(data)], "document": diary}, format="multipart").json()["jobs"]
    assert [(j["page"], j["duplicate_of"]["other_document"]) for j in here] == [(copy["page"], False)]
    assert "page 1 of this document" in here[0]["duplicate_of"]["detail"]
    # ...and in a third document the most recent copy, once (not one entry per copy).
    back = client.post(URL, {"files": [_file(data)], "document": letters}, format="multipart").json()["jobs"]
    assert [(j["page"], j["duplicate_of"]["other_document"]) for j in back] == [(original["page"], False)]
    third = client.post("/api/v1/documents/", {"name": "Third"}, format="json").json()["id"]
    other = client.post(URL, {"files": [_file(data)], "document": third}, format="multipart").json()["jobs"]
    assert [(j["page"], j["duplicate_of"]["document_name"]) for j in other] == [(copy["page"], "Diary")]
    assert Page.objects.filter(sha256=hashlib.sha256(data).hexdigest()).count() == 2


def test_same_bytes_by_another_user_is_not_a_duplicate(alice, bob):
    data = page_png(seed=6)
    client_for(alice).post(URL, {"files": [_file(data)]}, format="multipart")
    entry = client_for(bob).post(URL, {"files": [_file(data)]}, format="multipart").json()["jobs"][0]
    assert entry["duplicate"] is False


@pytest.mark.parametrize("data,name,status,words", [
    (b"", "empty.png", 400, "empty file"),
    (b"<html><body>hello</body></html>", "page.png", 415, "unsupported file type"),
    (page_png(seed=7)[:200], "cut.png", 400, "cut.png"),
    (page_png(8, 8, seed=8), "tiny.png", 400, "too small"),
])
def test_bad_files_get_4xx_with_a_message(alice, data, name, status, words):
    response = client_for(alice).post(URL, {"files": [_file(data, name)]}, format="multipart")
    assert response.status_code == status
    detail = response.json()["detail"]
    assert words in detail and name in detail
    assert not Page.objects.exists() and not Document.objects.exists()


def test_over_the_byte_limit_is_413_naming_limit_and_file(alice, settings):
    settings.QUIRE_MAX_UPLOAD_BYTES = 1000
    response = client_for(alice).post(URL, {"files": [_file(page_png(seed=9), "big.png")]}, format="multipart")
    assert response.status_code == 413
    assert "big.png" in response.json()["detail"] and "1000 bytes" in response.json()["detail"]


def test_over_the_pixel_limit_is_413(alice, settings):
    settings.QUIRE_MAX_PIXELS = 10_000
    response = client_for(alice).post(URL, {"files": [_file(page_png(seed=10), "wide.png")]}, format="multipart")
    assert response.status_code == 413
    assert "wide.png" in response.json()["detail"] and "10" in response.json()["detail"]


def test_good_and_bad_files_together(alice):
    files = [_file(page_png(seed=11), "good.png"), _file(b"not an image at all", "bad.png")]
    response = client_for(alice).post(URL, {"files": files}, format="multipart")
    assert response.status_code == 202
    body = response.json()
    assert len(body["jobs"]) == 1 and body["errors"][0]["filename"] == "bad.png"
    assert body["errors"][0]["status"] == 415


def test_no_file_and_foreign_document(alice, bob):
    client = client_for(alice)
    assert client.post(URL, {}, format="multipart").json()["detail"].startswith("no file")
    foreign = Document.objects.create(owner=bob, name="bob's")
    response = client.post(URL, {"files": [_file(page_png(seed=12))], "document": foreign.pk}, format="multipart")
    assert response.status_code == 400 and f"no document with id '{foreign.pk}'" in response.json()["detail"]


def test_storage_unreachable_is_503_and_keeps_no_rows(alice, settings, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the media folder should be")
    settings.MEDIA_ROOT = str(blocker)
    response = client_for(alice).post(URL, {"files": [_file(page_png(seed=13))]}, format="multipart")
    assert response.status_code == 503
    assert "storage unavailable" in response.json()["detail"]
    assert not (Document.objects.exists() or Page.objects.exists() or TranscriptionJob.objects.exists())


def test_authentication_required(db):
    from rest_framework.test import APIClient

    response = APIClient().post(URL, {"files": [_file(page_png(seed=14))]}, format="multipart")
    assert response.status_code == 401 and "detail" in response.json()
