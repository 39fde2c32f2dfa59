"""Jobs (list, filters, pagination, cancel, retry), pages with lines, images, exports, corrections."""
import io
import json
import zipfile

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from PIL import Image

from quire.documents.exports import ALTO_NS, PAGE_NS
from quire.documents.models import Line, LineVersion, Page
from quire.jobs.models import JobState, TranscriptionJob
from tests.platform.factories import add_lines, client_for, finish_job, make_page
from tests.platform.xml_schemas import assert_valid


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_job_detail_after_success_has_timings_models_and_result_link(alice):
    _, job = make_page(alice)
    finish_job(job, ["first line", "second line"])
    body = client_for(alice).get(f"/api/v1/jobs/{job.pk}/").json()
    assert body["state"] == "succeeded" and body["progress"] == 1.0 and body["attempts"] == 1
    assert body["error"] is None and body["models_used"]["recognizer"] == "quire-recognizer@test"
    assert body["timings"]["pipeline"]["total"] == 0.3 and body["timings"]["run"] >= 0
    assert body["result_url"].endswith(f"/api/v1/pages/{job.page_id}/export/?format=json")
    result = client_for(alice).get(body["result_url"]).json()
    assert [line["text"] for line in result["lines"]] == ["first line", "second line"]


def test_job_list_paginates_and_filters_by_state(alice):
    jobs = [make_page(alice)[1] for _ in range(5)]
    finish_job(jobs[0], ["done"])
    jobs[1].transition(JobState.CANCELED)
    client = client_for(alice)
    first = client.get("/api/v1/jobs/?page_size=2").json()
    assert first["count"] == 5 and len(first["results"]) == 2 and first["next"]
    assert len(client.get("/api/v1/jobs/?page_size=2&page=3").json()["results"]) == 1
    assert [j["id"] for j in client.get("/api/v1/jobs/?state=succeeded").json()["results"]] == [jobs[0].pk]
    assert {j["id"] for j in client.get("/api/v1/jobs/?state=queued").json()["results"]} == {j.pk for j in jobs[2:]}
    bad = client.get("/api/v1/jobs/?state=exploded")
    assert bad.status_code == 400 and "unknown state" in bad.json()["detail"]
    assert client.get("/api/v1/jobs/?page=99").status_code == 404


def test_cancel_and_retry(alice, django_capture_on_commit_callbacks):
    _, job = make_page(alice)
    client = client_for(alice)
    assert client.post(f"/api/v1/jobs/{job.pk}/cancel/").json()["state"] == "canceled"
    again = client.post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert again.status_code == 409 and again.json()["detail"] == "cannot cancel a canceled job"
    with django_capture_on_commit_callbacks() as callbacks:
        retried = client.post(f"/api/v1/jobs/{job.pk}/retry/")
    assert retried.status_code == 202 and retried.json()["state"] == "queued" and len(callbacks) == 1
    assert client.post(f"/api/v1/jobs/{job.pk}/retry/").status_code == 409  # queued: nothing to retry
    finish_job(job, ["x"])
    assert client.post(f"/api/v1/jobs/{job.pk}/cancel/").status_code == 409
    assert TranscriptionJob.objects.get(pk=job.pk).state == "succeeded"


def test_no_n_plus_one_on_job_list_and_page_detail(alice):
    client = client_for(alice)
    page, job = make_page(alice)
    add_lines(page, ["a", "b"])
    few_jobs, few_lines = _queries(client, "/api/v1/jobs/"), _queries(client, f"/api/v1/pages/{page.pk}/")
    for _ in range(6):
        make_page(alice)
    for index in range(2, 12):
        Line.objects.create(page=page, index=index, text=f"line {index}", bbox=[0, 0, 5, 5])
    assert _queries(client, "/api/v1/jobs/") == few_jobs
    assert _queries(client, f"/api/v1/pages/{page.pk}/") == few_lines
    assert _queries(client, "/api/v1/pages/") <= few_jobs + 1


def test_page_detail_lines_in_reading_order_and_image(alice):
    page, _ = make_page(alice)
    add_lines(page, ["one", "two"])
    client = client_for(alice)
    body = client.get(f"/api/v1/pages/{page.pk}/").json()
    assert [line["text"] for line in body["lines"]] == ["one", "two"] and body["text"] == "one\ntwo"
    image = client.get(body["image_url"])
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    with Image.open(io.BytesIO(image.content)) as decoded:
        assert decoded.size == (400, 300) and decoded.mode == "L"
    filtered = client.get(f"/api/v1/pages/?document={page.document_id}").json()
    assert [p["id"] for p in filtered["results"]] == [page.pk] and filtered["results"][0]["state"] == "queued"


def test_pages_filter_by_latest_job_state(alice):
    done, job = make_page(alice)
    finish_job(job, ["x"])
    waiting, _ = make_page(alice)
    client = client_for(alice)
    assert [p["id"] for p in client.get("/api/v1/pages/?state=succeeded").json()["results"]] == [done.pk]
    assert [p["id"] for p in client.get("/api/v1/pages/?state=queued").json()["results"]] == [waiting.pk]
    assert client.get(f"/api/v1/pages/{done.pk}/").json()["state"] == "succeeded"


def _texts(content: bytes, fmt: str) -> list[str]:
    if fmt == "txt":
        return content.decode("utf-8").splitlines()
    if fmt == "json":
        return [line["text"] for line in json.loads(content)["lines"]]
    root = assert_valid(content, fmt)
    if fmt == "page":
        return [u.text for u in root.iterfind(f".//{{{PAGE_NS}}}TextLine/{{{PAGE_NS}}}TextEquiv/{{{PAGE_NS}}}Unicode")]
    return [" ".join(s.get("CONTENT") for s in line.iterfind(f"{{{ALTO_NS}}}String"))
            for line in root.iterfind(f".//{{{ALTO_NS}}}TextLine")]


@pytest.mark.parametrize("fmt", ["txt", "json", "page", "alto"])
def test_page_exports(alice, fmt):
    page, _ = make_page(alice)
    texts = ["Tom & Jerry <3", "naïve café — 東京"]
    add_lines(page, texts)
    response = client_for(alice).get(f"/api/v1/pages/{page.pk}/export/?format={fmt}")
    assert response.status_code == 200
    assert f'filename="page-{page.pk}.' in response["Content-Disposition"]
    assert _texts(response.content, fmt) == texts
    if fmt in ("page", "alto"):
        assert b"&amp;" in response.content and b"&lt;3" in response.content


@pytest.mark.parametrize(("source_format", "frame_index", "expected"), [
    ("jpeg", 0, "Brief an Anna, 1850.jpg"),  # the coordinates are the upload's own pixels
    ("tiff", 2, None),  # a later frame exists only as the normalised image
    ("pdf", 0, None),  # so does a rendered PDF page
])
def test_exports_name_the_image_their_coordinates_refer_to(alice, source_format, frame_index, expected):
    page, _ = make_page(alice)
    Page.objects.filter(pk=page.pk).update(filename="Brief an Anna, 1850.jpg", source_format=source_format,
                                           frame_index=frame_index)
    add_lines(page, ["Liebe Anna"])
    client = client_for(alice)
    expected = expected or f"page-{page.pk}.png"
    page_xml = assert_valid(client.get(f"/api/v1/pages/{page.pk}/export/?format=page").content, "page")
    assert page_xml.find(f"{{{PAGE_NS}}}Page").get("imageFilename") == expected
    alto = assert_valid(client.get(f"/api/v1/pages/{page.pk}/export/?format=alto").content, "alto")
    assert alto.findtext(f".//{{{ALTO_NS}}}fileName") == expected


def test_export_format_is_checked(alice):
    page, _ = make_page(alice)
    response = client_for(alice).get(f"/api/v1/pages/{page.pk}/export/?format=docx")
    assert response.status_code == 400 and "unknown export format 'docx'" in response.json()["detail"]


def test_document_export_zips_every_page(alice):
    page1, _ = make_page(alice)
    page2, _ = make_page(alice, document=page1.document)
    add_lines(page1, ["first page"])
    add_lines(page2, ["second page"])
    response = client_for(alice).get(f"/api/v1/documents/{page1.document_id}/export/?format=page")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.namelist() == ["page-0001.page.xml", "page-0002.page.xml"]
        for name in archive.namelist():
            assert_valid(archive.read(name), "page")
        assert b"second page" in archive.read("page-0002.page.xml")


def test_patch_line_keeps_versions_and_marks_ground_truth(alice):
    page, _ = make_page(alice)
    [line] = add_lines(page, ["Dear Sir"])
    client = client_for(alice)
    response = client.patch(f"/api/v1/lines/{line.pk}/", {"text": "Dear Sirs"}, format="json")
    assert response.status_code == 200 and response.json()["text"] == "Dear Sirs"
    assert response.json()["is_ground_truth"] is True
    polygon = [[12, 10], [310, 10], [310, 42], [12, 42]]
    client.patch(f"/api/v1/lines/{line.pk}/", {"text": "Dear Sirs,", "polygon": polygon}, format="json")
    versions = list(LineVersion.objects.filter(line=line))
    assert [(v.source, v.text, v.user) for v in versions] == [
        ("model", "Dear Sir", None), ("user", "Dear Sirs", alice), ("user", "Dear Sirs,", alice)]
    assert versions[-1].polygon == polygon
    alto = assert_valid(client.get(f"/api/v1/pages/{page.pk}/export/?format=alto").content, "alto")
    assert alto.find(f".//{{{ALTO_NS}}}TextLine").get("CS") == "true"  # corrected by a person


@pytest.mark.parametrize("body,words", [
    ({"polygon": [[1, 2]]}, "at least 2"),
    ({"polygon": [[1, 2], [3, 4]]}, "at least 3 points"),
    ({"baseline": [[1, 2], [5000, 4]]}, "outside the page"),
    ({"baseline": [[1, -2], [5, 4]]}, "non-negative integers"),
    ({"text": ["not", "text"]}, "text"),
])
def test_patch_line_validates(alice, body, words):
    page, _ = make_page(alice)
    [line] = add_lines(page, ["keep"])
    response = client_for(alice).patch(f"/api/v1/lines/{line.pk}/", body, format="json")
    assert response.status_code == 400 and words in response.json()["detail"]
    assert not LineVersion.objects.exists()


def test_put_is_not_allowed_on_lines(alice):
    page, _ = make_page(alice)
    [line] = add_lines(page, ["keep"])
    assert client_for(alice).put(f"/api/v1/lines/{line.pk}/", {"text": "x"}, format="json").status_code == 405


def test_schema_and_docs_pages(alice):
    client = client_for(alice)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200 and "/api/v1/pages/{id}/export/" in schema.json()["paths"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger-ui" in docs.content


def test_openapi_schema_has_no_warnings(tmp_path):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
    assert "/api/v1/transcribe/" in (tmp_path / "schema.yml").read_text()
