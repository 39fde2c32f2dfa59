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


# ----------------------------------------------- 2. user strings stored in the database (NUL, ...)
def _upload(client, **fields):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.platform.factories import page_png

    files = [SimpleUploadedFile("scan.png", page_png(seed=fields.pop("seed", 1)), content_type="image/png")]
    return client.post("/api/v1/pages/", {"files": files, **fields}, format="multipart")


@pytest.mark.parametrize("name, problem", [("a\x00b", "U+0000"), ("two\nlines", "U+000A"), ("tab\there", "U+0009"),
                                           ("x" * 256, "at most 255 characters")])
def test_bad_document_name_on_upload_is_400_naming_the_field(alice, name, problem):
    from quire.documents.models import Document, Page

    response = _upload(client_for(alice), document_name=name)
    assert response.status_code == 400, response.content
    detail = response.json()["detail"]
    assert detail.startswith("document_name:") and problem in detail
    assert not Page.objects.exists() and not Document.objects.exists()


def test_good_document_name_on_upload_is_kept(alice):
    from quire.documents.models import Document

    response = _upload(client_for(alice), document_name="Lettres · 1848 ✉")
    assert response.status_code == 202
    assert Document.objects.get().name == "Lettres · 1848 ✉"


@pytest.mark.parametrize("name", ["a\x00b", "bell\x07", "x" * 256])
def test_bad_document_name_on_create_is_400_naming_the_field(alice, name):
    response = client_for(alice).post("/api/v1/documents/", {"name": name}, format="json")
    assert response.status_code == 400 and response.json()["detail"].startswith("name:")


def test_bad_document_name_on_ground_truth_import_is_400(alice):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.platform.factories import page_png

    response = client_for(alice).post("/api/v1/ground-truth/import/", {
        "image": SimpleUploadedFile("p.png", page_png(seed=2)), "xml": SimpleUploadedFile("p.xml", b"<x/>"),
        "document_name": "nul\x00"}, format="multipart")
    assert response.status_code == 400 and "document_name" in response.json()["detail"]


def test_web_form_refuses_a_document_name_with_nul(alice):
    from django.test import Client

    from quire.documents.models import Document

    client = Client()
    client.force_login(alice)
    response = client.post("/", {"name": "a\x00b"}, follow=True)
    assert response.status_code == 200 and "U+0000" in response.content.decode()
    assert not Document.objects.exists()


def test_file_display_name_with_control_characters_is_cleaned(alice):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from quire.documents.models import Page
    from tests.platform.factories import page_png

    files = [SimpleUploadedFile("sc\x00an\n.png", page_png(seed=3))]
    response = client_for(alice).post("/api/v1/pages/", {"files": files}, format="multipart")
    assert response.status_code == 202
    assert Page.objects.get().filename == "scan.png"


# ------------------------------------------------------------------ 6. PATCH /api/v1/lines/{id}/
@pytest.fixture
def line(alice):
    from tests.platform.factories import add_lines, make_page

    page, _ = make_page(alice, width=400, height=300)
    return add_lines(page, ["kept"])[0]


def _patch(user, line, body):
    return client_for(user).patch(f"/api/v1/lines/{line.pk}/", body, format="json")


@pytest.mark.parametrize("body, expected", [
    ({}, "nothing to change"),
    ({"text": 123}, "text: Not a valid string"),
    ({"text": ["a"]}, "text: Not a valid string"),
    ({"text": None}, "text:"),
    ({"text": "two\nlines"}, "U+000A"),
    ({"text": "a\ttab"}, "U+0009"),
    ({"text": "nul\x00"}, "text:"),
    ({"text": "bell\x07"}, "U+0007"),
    ({"text": "x" * 2001}, "at most 2000 characters"),
    ({"txt": "typo"}, "unknown field(s) txt"),
    ({"text": "ok", "is_ground_truth": False}, "unknown field(s) is_ground_truth"),
    ({"polygon": [[1, 1], [50, 50], [100, 100]]}, "zero area"),
    ({"polygon": [[i % 300, i % 2] for i in range(5001)]}, "at most 5000"),
    ({"baseline": [[i % 300, 5] for i in range(5001)]}, "at most 5000"),
])
def test_bad_line_patch_is_400_naming_the_problem(alice, line, body, expected):
    from quire.documents.models import LineVersion

    response = _patch(alice, line, body)
    assert response.status_code == 400, response.content
    assert expected in response.json()["detail"]
    line.refresh_from_db()
    assert line.text == "kept" and not line.is_ground_truth and not LineVersion.objects.exists()


def test_line_text_limit_follows_the_setting(alice, line, settings):
    settings.QUIRE_MAX_LINE_CHARS = 5
    assert _patch(alice, line, {"text": "sixsix"}).status_code == 400
    assert _patch(alice, line, {"text": "five5"}).status_code == 200


def test_good_line_patch_still_works(alice, line):
    polygon = [[10, 10], [300, 10], [300, 40], [10, 40]]
    response = _patch(alice, line, {"text": "Überall ✓", "polygon": polygon, "baseline": [[10, 35], [300, 35]]})
    assert response.status_code == 200, response.content
    line.refresh_from_db()
    assert line.text == "Überall ✓" and line.polygon == polygon and line.is_ground_truth


# --------------------------------------------- 5. exports and images ignore a sensible Accept header
@pytest.fixture
def done_page(alice):
    from tests.platform.factories import add_lines, make_page

    page, _ = make_page(alice)
    add_lines(page, ["first line", "second line"])
    return page


@pytest.mark.parametrize("fmt, accept, content_type", [
    ("page", "application/xml", "application/xml"), ("alto", "application/xml", "application/xml"),
    ("alto", "text/xml", "application/xml"), ("txt", "text/plain", "text/plain"),
    ("json", "application/json", "application/json"), ("page", "*/*", "application/xml")])
def test_page_export_answers_whatever_the_accept_header(alice, done_page, fmt, accept, content_type):
    response = client_for(alice).get(f"/api/v1/pages/{done_page.pk}/export/?format={fmt}", HTTP_ACCEPT=accept)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith(content_type)
    assert b"second" in response.content


@pytest.mark.parametrize("accept", ["application/zip", "application/octet-stream"])
def test_document_export_answers_application_zip(alice, done_page, accept):
    response = client_for(alice).get(f"/api/v1/documents/{done_page.document_id}/export/?format=page",
                                     HTTP_ACCEPT=accept)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response.content[:2] == b"PK"


@pytest.mark.parametrize("accept", ["image/png", "image/*", "image/webp,image/png,*/*;q=0.8"])
def test_page_image_answers_image_png(alice, done_page, accept):
    response = client_for(alice).get(f"/api/v1/pages/{done_page.pk}/image/", HTTP_ACCEPT=accept)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_export_errors_stay_json_whatever_the_accept_header(alice, done_page):
    response = client_for(alice).get(f"/api/v1/pages/{done_page.pk}/export/?format=docx",
                                     HTTP_ACCEPT="application/xml")
    assert response.status_code == 400 and "unknown export format" in response.json()["detail"]
    missing = client_for(alice).get("/api/v1/pages/999999/image/", HTTP_ACCEPT="image/png")
    assert missing.status_code == 404 and "detail" in missing.json()


@pytest.mark.parametrize("url, name", [("/api/v1/jobs/999999/", "transcription job"),
                                       ("/api/v1/pages/999999/export/?format=txt", "page"),
                                       ("/api/v1/lines/999999/", "line")])
def test_a_missing_object_is_named_in_the_404(alice, url, name):
    response = client_for(alice).get(url)
    assert response.status_code == 404
    assert response.json()["detail"] == f"not found: this {name} does not exist or is not yours"


# ------------------------------------------------ 8. unmatched API paths and oversize bodies: JSON
@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("path", ["/api/v1/pages/abc/", "/api/v1/lines/1.5/", "/api/v1/jobs/-1/cancel/",
                                  "/api/v1/nothing/", "/api/v2/"])
def test_unmatched_api_paths_answer_json_404(alice, settings, debug, path):
    settings.DEBUG = debug
    response = client_for(alice).get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json" and "not found" in response.json()["detail"]


def test_unmatched_web_paths_still_answer_html(alice):
    from django.test import Client

    client = Client()
    client.force_login(alice)
    response = client.get("/pages/abc/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("debug", [False, True])
def test_body_over_the_memory_limit_answers_json_413(alice, settings, debug):
    settings.DEBUG = debug
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    body = json.dumps({"image": "A" * 4_000})
    for path in ("/api/v1/transcribe/", "/api/v1/documents/"):
        response = client_for(alice).generic("POST", path, body, content_type="application/json")
        assert response.status_code == 413, (path, response.content[:200])
        assert "request body too large" in response.json()["detail"]


# ------------------------------------------------------------------- 4. frames (pages) per upload
def _tiff(frames: int) -> bytes:
    import io

    from PIL import Image

    from tests.platform.factories import gray_of, page_png

    images = [Image.fromarray(gray_of(page_png(120, 90, seed=i))) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="TIFF", save_all=True, append_images=images[1:])
    return buffer.getvalue()


def test_upload_over_the_page_limit_is_413_naming_the_limit(alice, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from quire.documents.models import Page

    settings.QUIRE_MAX_PAGES_PER_UPLOAD = 2
    client = client_for(alice)
    response = client.post("/api/v1/pages/", {"files": [SimpleUploadedFile("book.tif", _tiff(3))]}, format="multipart")
    assert response.status_code == 413, response.content
    assert "book.tif" in response.json()["detail"] and "more than 2 pages" in response.json()["detail"]
    assert not Page.objects.exists()
    ok = client.post("/api/v1/pages/", {"files": [SimpleUploadedFile("two.tif", _tiff(2))]}, format="multipart")
    assert ok.status_code == 202 and len(ok.json()["jobs"]) == 2



# ------------------------------------------------- 7. exports name the model versions of the lines
@pytest.mark.parametrize("fmt", ["json", "page", "alto"])
def test_exports_carry_the_models_of_the_latest_succeeded_job(alice, fmt):
    import io
    import zipfile

    from quire.jobs.models import TranscriptionJob
    from tests.platform.factories import finish_job, make_page
    from tests.platform.xml_schemas import assert_valid

    page, job = make_page(alice)
    finish_job(job, ["Dear Sir", "yours truly"])
    newer = TranscriptionJob.objects.create(page=page, models_used={"recognizer": "quire-recognizer@never-ran"})
    newer.transition("canceled")  # a later job that did not succeed does not count
    client = client_for(alice)
    single = client.get(f"/api/v1/pages/{page.pk}/export/?format={fmt}")
    archive = client.get(f"/api/v1/documents/{page.document_id}/export/?format={fmt}")
    assert single.status_code == 200 and archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
        zipped_data = zipped.read(zipped.namelist()[0])
    for data in (single.content, zipped_data):
        if fmt == "json":
            assert json.loads(data)["models"] == {"detector": "quire-detector@test",
                                                  "recognizer": "quire-recognizer@test"}
            continue
        root = assert_valid(data, fmt)
        text = data.decode()
        assert "quire-detector@test" in text and "quire-recognizer@test" in text and "never-ran" not in text
        if fmt == "page":
            ns = {"p": root.nsmap[None]}
            items = {i.get("name"): i.get("value") for i in root.findall("p:Metadata/p:MetadataItem", ns)}
            assert items == {"detector": "quire-detector@test", "recognizer": "quire-recognizer@test"}


def test_export_of_a_page_without_a_succeeded_job_has_no_models(alice, done_page):
    response = client_for(alice).get(f"/api/v1/pages/{done_page.pk}/export/?format=json")
    assert response.status_code == 200 and response.json()["models"] == {}


# ------------------------------------------------ 9. parallel uploads of one new file: one page
@pytest.mark.django_db(transaction=True)
def test_parallel_uploads_of_one_new_file_make_one_page(django_db_blocker):
    import threading

    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.db import connection, connections

    from quire.documents.models import Page
    from tests.platform.factories import page_png

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (row locks; SQLite serialises writers but not the duplicate check): "
                    "run under scripts/run_tests.py")
    user = make_user("racer")
    data = page_png(seed=99)
    barrier, results = threading.Barrier(10), []

    def upload():
        try:
            barrier.wait()
            response = client_for(user).post("/api/v1/pages/", {"files": [SimpleUploadedFile("same.png", data)]},
                                             format="multipart")
            results.append((response.status_code, [job["duplicate"] for job in response.json()["jobs"]]))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=upload) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for status, _ in results] == [202] * 10
    assert sorted(dup for _, dups in results for dup in dups) == [False] + [True] * 9
    assert Page.objects.filter(document__owner=user).count() == 1
