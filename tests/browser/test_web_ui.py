"""The web page in a real browser (Debian's Chromium) against a live server, a real Celery worker
process, Redis and the SeaweedFS S3 server: sign in, upload, watch jobs, read and correct a page,
export, refusals, failures, and isolation between users. Screenshots go to
test-artifacts/screenshots/."""
import io
import json
import re
import zipfile
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from lxml import etree
from PIL import Image

from quire.documents.models import Document, Line
from quire.jobs.dispatch import enqueue_transcription
from quire.jobs.models import TranscriptionJob
from quire.registry.models import ModelVersion
from tests.platform.factories import add_lines, make_page, make_user, page_png

ROOT = Path(__file__).resolve().parents[2]
RECOGNIZER = ROOT / "ml" / "artifacts" / "recognizer.pt"
JOB_WAIT_MS = 600_000  # a bound on waiting for the worker (2 busy cores), not a speed assertion
FINAL = re.compile(r"^(succeeded|failed|canceled)$")
CORRECTION = "Corrigé à la main: <b>&amp;</b> « ok »"

pytestmark = pytest.mark.django_db(transaction=True)


def _expect():
    from playwright.sync_api import expect

    return expect


def _password(user) -> str:
    return f"pw-{user.get_username()}-123"  # tests.platform.factories.make_user


def _download(page, selector: str) -> tuple[bytes, str]:
    """Click a download link; returns (file bytes, suggested file name)."""
    with page.expect_download() as info:
        page.click(selector)
    download = info.value
    return Path(download.path()).read_bytes(), download.suggested_filename


@pytest.mark.skipif(not RECOGNIZER.exists(),
                    reason="ml/artifacts/recognizer.pt is not shipped yet: a real page cannot be transcribed")
def test_upload_watch_correct_and_export_a_real_page(live_server, celery_worker, handwritten_page, browser_page,
                                                     sign_in, screenshot):
    expect, page = _expect(), browser_page
    user = make_user("ada")
    sign_in(page, live_server, user, _password(user))

    page.get_by_placeholder("New document name").fill("Copiste d'un jour")
    page.get_by_role("button", name="Create document").click()
    expect(page.get_by_role("heading", name="Copiste d'un jour")).to_be_visible()
    page.wait_for_load_state()  # upload.js is listening
    page.set_input_files("#file-input", str(handwritten_page["image"]))
    expect(page.locator(".upload.accepted .upload-status")).to_have_text("1 page queued")
    row = page.locator("#pages .job-row")
    expect(row).to_have_count(1)
    expect(row.locator(".page-link")).to_have_text("p.\u00a01")
    expect(row.locator(".job-state")).to_have_text(FINAL, timeout=JOB_WAIT_MS)
    assert row.locator(".job-state").inner_text() == "succeeded", row.locator(".job-error").inner_text()
    expect(row.locator(".job-time")).to_contain_text(" s")
    expect(row.locator(".job-retry")).to_be_hidden()
    expect(row.locator(".job-cancel")).to_be_hidden()
    n_lines = Line.objects.filter(page__document__owner=user).count()
    assert n_lines >= 5
    expect(row.locator(".line-count")).to_have_text(str(n_lines))
    screenshot(page, "document")

    page.goto(f"{live_server.url}/")
    doc_row = page.locator("#documents tbody tr", has_text="Copiste d'un jour")
    expect(doc_row.locator("td.num")).to_have_text("1")
    expect(doc_row.locator(".state-succeeded")).to_have_text("1 succeeded")
    screenshot(page, "documents")

    doc_row.get_by_role("link").click()
    page.locator("#pages .page-link").click()
    lines, polygons = page.locator("#lines > li"), page.locator("#overlay polygon")
    expect(lines).to_have_count(n_lines)
    expect(polygons).to_have_count(n_lines)
    page.wait_for_function("document.getElementById('page-image').complete")
    # Polygons are scaled to the displayed image: line 1's polygon, in screen pixels, lies where
    # its page-pixel extent falls on the shown image.
    image_box = page.locator("#page-image").bounding_box()
    shown = page.evaluate("""() => {
        const p = document.querySelector('#overlay polygon'), b = p.getBBox(), m = p.getScreenCTM();
        return [m.a * b.x + m.e, m.d * b.y + m.f, m.a * (b.x + b.width) + m.e, m.d * (b.y + b.height) + m.f]; }""")
    points = Line.objects.get(page__document__owner=user, index=0).polygon
    scale = image_box["width"] / 2550
    assert scale < 1  # shown smaller than the page's pixel size
    expected = [image_box["x"] + min(x for x, _ in points) * scale, image_box["y"] + min(y for _, y in points) * scale,
                image_box["x"] + max(x for x, _ in points) * scale, image_box["y"] + max(y for _, y in points) * scale]
    assert all(abs(a - b) <= 1.5 for a, b in zip(shown, expected)), (shown, expected)
    polygons.nth(1).hover()
    expect(lines.nth(1)).to_have_class(re.compile(r"\bhl\b"))
    lines.nth(2).hover()
    expect(polygons.nth(2)).to_have_class(re.compile(r"\bhl\b"))
    screenshot(page, "page")

    # Keyboard: j/k move, Enter edits, Esc cancels, Enter saves.
    page.locator("h1").click()
    page.keyboard.press("j")
    page.keyboard.press("j")
    expect(lines.nth(1)).to_have_class(re.compile(r"\bcurrent\b"))
    page.keyboard.press("ArrowDown")
    page.keyboard.press("k")
    expect(lines.nth(1)).to_have_class(re.compile(r"\bcurrent\b"))
    original_1 = Line.objects.get(page__document__owner=user, index=1).text
    page.keyboard.press("Enter")
    page.locator(".line-input").fill("thrown away")
    page.keyboard.press("Escape")
    expect(page.locator(".line-input")).to_have_count(0)
    expect(lines.nth(1).locator(".line-text")).to_have_text(original_1)
    page.keyboard.press("k")
    expect(lines.nth(0)).to_have_class(re.compile(r"\bcurrent\b"))
    page.keyboard.press("Enter")
    page.locator(".line-input").fill(CORRECTION)
    screenshot(page, "page-editing")
    page.keyboard.press("Enter")
    expect(page.locator("#line-status")).to_have_text("Line 1 saved as a correction.")
    expect(lines.nth(0).locator(".line-meta")).to_have_text("corrected")

    page.reload()
    expect(lines.nth(0).locator(".line-text")).to_have_text(CORRECTION)
    expect(lines.nth(0)).to_have_class(re.compile(r"\bgt\b"))
    expect(lines.nth(1).locator(".line-text")).to_have_text(original_1)
    line = Line.objects.get(page__document__owner=user, index=0)
    assert line.is_ground_truth and line.text == CORRECTION
    assert [v.source for v in line.versions.all()] == ["model", "user"]
    # Clicking a line edits it too.
    lines.nth(2).click()
    expect(lines.nth(2).locator(".line-input")).to_be_focused()
    page.keyboard.press("Escape")

    # Exports of the page, through the buttons.
    data, name = _download(page, "#page-exports [data-export=txt]")
    assert name.endswith(".txt") and data.decode().splitlines()[0] == CORRECTION
    data, name = _download(page, "#page-exports [data-export=json]")
    assert json.loads(data)["lines"][0]["text"] == CORRECTION
    data, name = _download(page, "#page-exports [data-export=page]")
    tree = etree.fromstring(data)
    assert etree.QName(tree).localname == "PcGts" and name.endswith(".xml")
    line_texts = tree.xpath("//*[local-name()='TextLine']/*[local-name()='TextEquiv']/*[local-name()='Unicode']/text()")
    assert line_texts[0] == CORRECTION
    data, name = _download(page, "#page-exports [data-export=alto]")
    tree = etree.fromstring(data)
    assert etree.QName(tree).localname == "alto" and name.endswith(".xml")
    words = tree.xpath("(//*[local-name()='TextLine'])[1]/*[local-name()='String']/@CONTENT")
    assert words == CORRECTION.split()
    hrefs = {fmt: page.locator(f"#page-exports [data-export={fmt}]").get_attribute("href")
             for fmt in ("txt", "json", "page", "alto")}
    content_types = {fmt: page.request.get(live_server.url + href).headers["content-type"]
                     for fmt, href in hrefs.items()}
    assert content_types["txt"].startswith("text/plain") and content_types["json"].startswith("application/json")
    assert "xml" in content_types["page"] and "xml" in content_types["alto"]

    # The whole document as one zip.
    page.get_by_role("link", name="Copiste d'un jour").click()
    data, name = _download(page, "#document-exports [data-export=txt]")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        texts = [archive.read(n).decode() for n in archive.namelist()]
    assert name.endswith(".zip") and len(texts) == 1 and texts[0].splitlines()[0] == CORRECTION

    # A tablet in portrait: the image above the transcription, both full width.
    page.set_viewport_size({"width": 820, "height": 1180})
    page.locator("#pages .page-link").click()
    expect(page.locator("#lines > li")).to_have_count(n_lines)
    image_box, text_box = page.locator("#page-image").bounding_box(), page.locator(".transcription").bounding_box()
    assert text_box["y"] >= image_box["y"] + image_box["height"] and text_box["width"] > 700
    screenshot(page, "page-tablet")


def test_refused_upload_tiff_failed_job_retry_and_cancel(live_server, celery_worker, s3_env, browser_page, sign_in,
                                                         screenshot, tmp_path):
    expect, page = _expect(), browser_page
    user = make_user("bea")
    broken_page, broken = make_page(user)
    document = broken_page.document
    default_storage.delete(broken_page.image.name)
    default_storage.save(broken_page.image.name, ContentFile(b"\x89PNG\r\n\x1a\n cut short"))
    _, waiting = make_page(user, document)  # stays queued: never sent to the worker
    assert enqueue_transcription(broken.pk)
    sign_in(page, live_server, user, _password(user))
    page.goto(f"{live_server.url}/documents/{document.pk}/")

    # A non-image dropped on the page is refused with the API's message.
    drop = page.evaluate_handle("""() => {
        const dt = new DataTransfer();
        dt.items.add(new File(["minutes of the meeting\\n"], "notes.txt", {type: "text/plain"}));
        return dt; }""")
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": drop})
    refused = page.locator(".upload.refused")
    expect(refused.locator(".upload-name")).to_have_text("notes.txt")
    expect(refused.locator(".upload-status")).to_contain_text(
        "Refused: notes.txt: unsupported file type: the content is")
    expect(refused.locator(".upload-status")).to_contain_text("accepted types are PNG, JPEG, TIFF")
    assert Document.objects.get(pk=document.pk).pages.count() == 2

    # A two-frame TIFF becomes two pages, each with its live job row.
    frames = [Image.open(io.BytesIO(page_png(500, 360, seed=seed))) for seed in (1, 2)]
    tiff = tmp_path / "two frames.tif"
    frames[0].save(tiff, format="TIFF", save_all=True, append_images=frames[1:])
    page.set_input_files("#file-input", str(tiff))
    expect(page.locator(".upload.accepted .upload-status")).to_have_text("2 pages queued")
    expect(page.locator("#pages .job-row")).to_have_count(4)
    expect(page.locator("#pages .job-row .filename")).to_contain_text(["two frames.tif", "two frames.tif [2]"])
    tiff_jobs = list(TranscriptionJob.objects.filter(page__filename="two frames.tif").values_list("pk", flat=True))
    assert len(tiff_jobs) == 2

    failed_row = page.locator(f'.job-row[data-job-id="{broken.pk}"]')
    expect(failed_row.locator(".job-state")).to_have_text(FINAL, timeout=JOB_WAIT_MS)
    expect(failed_row.locator(".job-state")).to_have_text("failed")
    expect(failed_row.locator(".job-error")).to_contain_text("unreadable")
    expect(failed_row.locator(".job-error code")).to_have_text("bad_image")
    expect(failed_row.locator(".job-cancel")).to_be_hidden()
    screenshot(page, "document-refused-and-failed")

    expect(failed_row.locator(".job-attempts")).to_have_text("")
    failed_row.locator(".job-retry").click()
    expect(failed_row.locator(".job-attempts")).to_have_text("attempt 2", timeout=JOB_WAIT_MS)
    expect(failed_row.locator(".job-state")).to_have_text(FINAL, timeout=JOB_WAIT_MS)
    expect(failed_row.locator(".job-state")).to_have_text("failed")
    expect(failed_row.locator(".job-error")).to_contain_text("unreadable")
    assert TranscriptionJob.objects.get(pk=broken.pk).attempts == 2

    queued_row = page.locator(f'.job-row[data-job-id="{waiting.pk}"]')
    expect(queued_row.locator(".job-state")).to_have_text("queued")
    expect(queued_row.locator(".job-retry")).to_be_hidden()
    queued_row.locator(".job-cancel").click()
    expect(queued_row.locator(".job-state")).to_have_text("canceled")
    expect(queued_row.locator(".job-retry")).to_be_visible()
    assert TranscriptionJob.objects.get(pk=waiting.pk).state == "canceled"

    # The page view of the failed page shows the failure and no lines.
    failed_row.locator(".page-link").click()
    expect(page.locator("#page-job .job-error")).to_contain_text("unreadable")
    expect(page.locator("#no-lines")).to_be_visible()
    screenshot(page, "page-failed")

    page.goto(f"{live_server.url}/jobs/")
    expect(page.locator("#jobs .job-row")).to_have_count(4)
    for job_id in tiff_jobs:  # let the worker finish them (whatever the outcome) before the database is flushed
        expect(page.locator(f'.job-row[data-job-id="{job_id}"] .job-state')).to_have_text(FINAL, timeout=JOB_WAIT_MS)
    screenshot(page, "jobs")


def test_other_users_objects_are_404_and_models_page_is_staff_only(live_server, s3_env, browser_page, sign_in,
                                                                   screenshot):
    expect, page = _expect(), browser_page
    owner, other = make_user("cleo"), make_user("dora", is_staff=True)
    own_page, job = make_page(owner)
    add_lines(own_page, ["a private line"])
    job.transition("running")
    job.transition("succeeded")
    ModelVersion.objects.all().delete()  # only the versions made here (a data migration may register others)
    base = ModelVersion.objects.create(kind="recognizer", version="test-1.0", state="archived",
                                       metrics={"cer": {"dev": 0.1234, "iam": 0.2}, "parameters": 3_200_000},
                                       artifact="models/test-1.0.pt")
    ModelVersion.objects.create(kind="recognizer", version="test-1.1", state="candidate", parent=base,
                                metrics={"cer": {"dev": 0.0987}, "wer": {"dev": 0.31}},
                                artifact="models/test-1.1.pt")

    sign_in(page, live_server, owner, _password(owner))
    page.goto(f"{live_server.url}/pages/{own_page.pk}/")
    expect(page.locator("#lines .line-text")).to_have_text(["a private line"])
    assert page.goto(f"{live_server.url}/models/").status == 404  # not staff
    page.context.clear_cookies()

    sign_in(page, live_server, other, _password(other))
    for url in (f"/pages/{own_page.pk}/", f"/documents/{own_page.document_id}/",
                f"/api/v1/pages/{own_page.pk}/image/"):
        response = page.goto(live_server.url + url)
        assert response.status == 404, url
    page.goto(f"{live_server.url}/pages/{own_page.pk}/")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    assert "a private line" not in page.content()
    screenshot(page, "not-found")

    assert page.goto(f"{live_server.url}/models/").status == 200
    table = page.locator("#models-recognizer table")
    expect(table.locator("thead th")).to_have_text(["Version", "test-1.1", "test-1.0"])
    expect(table.locator("tr", has_text="cer · dev").locator("td")).to_have_text(["0.0987", "0.1234"])
    expect(table.locator("tr", has_text="cer · iam").locator("td")).to_have_text(["—", "0.2000"])
    expect(table.locator(".model-actions")).to_have_count(2)
    screenshot(page, "models")

    # Signed out, a page URL leads to the sign-in form.
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{live_server.url}/pages/{own_page.pk}/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
