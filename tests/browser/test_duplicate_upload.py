"""The web upload list on a file uploaded before into another document: no page is added, the
item says where the page already is (link to it) and "Upload anyway" sends the file again with
force=1 — in a real browser (Debian's Chromium) against a live server, S3 and the test database.
No worker: the forced page's job stays queued."""
import hashlib
import re

import pytest

from quire.documents.models import Document, Page
from tests.platform.factories import make_page, make_user, page_png

pytestmark = pytest.mark.django_db(transaction=True)


def test_file_already_in_another_document_links_to_it_and_uploads_anyway(live_server, s3_env, browser_page,
                                                                         sign_in, screenshot, tmp_path):
    from playwright.sync_api import expect

    page = browser_page
    user = make_user("fay")
    data = page_png(420, 320, seed=21)
    scan = tmp_path / "folio 12.png"
    scan.write_bytes(data)
    letters = Document.objects.create(owner=user, name="Letters 1850")
    make_page(user, letters)
    earlier, _ = make_page(user, letters)  # p. 2 of "Letters 1850", stored from the same bytes
    Page.objects.filter(pk=earlier.pk).update(sha256=hashlib.sha256(data).hexdigest(), filename="folio 12.png")
    diary = Document.objects.create(owner=user, name="Diary")

    sign_in(page, live_server, user, f"pw-{user.get_username()}-123")
    page.goto(f"{live_server.url}/documents/{diary.pk}/")
    page.wait_for_load_state()  # upload.js is listening
    page.set_input_files("#file-input", str(scan))

    item = page.locator(".upload")
    expect(item).to_have_class(re.compile(r"\bduplicate\b"))
    expect(item.locator(".upload-status")).to_have_text("Not added: already uploaded to another document")
    expect(item.locator(".duplicate-where")).to_have_text("Already uploaded: p.\u00a02 of \u201cLetters 1850\u201d.")
    link = item.locator(".duplicate-link")
    assert link.get_attribute("href") == f"{live_server.url}/pages/{earlier.pk}/"
    expect(page.locator("#pages .job-row")).to_have_count(0)
    assert not diary.pages.exists()
    screenshot(page, "upload-duplicate-elsewhere")

    item.get_by_role("button", name="Upload anyway").click()
    expect(item.locator(".upload-status")).to_have_text("1 page queued")
    expect(item).to_have_class(re.compile(r"\baccepted\b"))
    expect(item.locator(".upload-duplicate")).to_have_count(0)
    expect(page.locator(".upload")).to_have_count(1)  # the same item, not a second one
    row = page.locator("#pages .job-row")
    expect(row).to_have_count(1)
    expect(row.locator(".page-link")).to_have_text("p.\u00a01")
    [copy] = diary.pages.all()
    assert copy.sha256 == hashlib.sha256(data).hexdigest() and copy.pk != earlier.pk

    page.goto(link_href := f"{live_server.url}/pages/{earlier.pk}/")
    expect(page.get_by_role("heading", name=re.compile(r"^Page 2"))).to_be_visible()
    assert page.url == link_href
