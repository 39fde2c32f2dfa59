"""The search box in a real browser (Debian's Chromium) against a live server: a misread word is
found, and its hit opens the page with that line selected."""
import re

import pytest

from quire.documents.models import Document
from tests.platform.factories import add_lines, make_page, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def test_search_box_finds_a_misread_word_and_opens_its_line(live_server, s3_env, browser_page, sign_in, screenshot):
    from playwright.sync_api import expect

    page = browser_page
    user = make_user("ida")
    letters = Document.objects.create(owner=user, name="Kew letters")
    first, _ = make_page(user, letters)
    add_lines(first, ["My dear Gray,", "nothing here"])
    second, _ = make_page(user, letters, width=600, height=400)
    target = add_lines(second, ["Kew, 3 May", "the Labradar coast is cold", "yours ever"])[1]

    sign_in(page, live_server, user, f"pw-{user.get_username()}-123")
    page.goto(f"{live_server.url}/")
    box = page.get_by_role("searchbox", name="Search transcriptions")
    box.fill("Labrador")
    box.press("Enter")
    results = page.locator("#search-results tbody tr")
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("the Labradar coast is cold")
    expect(page.locator("#search-count")).to_have_text("1 line found.")
    screenshot(page, "search-results")

    results.first.get_by_role("link").click()
    page.wait_for_url(re.compile(rf"/pages/{second.pk}/#line-{target.pk}$"))
    current = page.locator("#lines li.current")
    expect(current).to_have_count(1)
    expect(current).to_contain_text("the Labradar coast is cold")
    screenshot(page, "search-opens-line")
