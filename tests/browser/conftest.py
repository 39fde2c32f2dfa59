"""Browser fixtures: Debian's Chromium driven by Playwright's sync API (never a downloaded browser).

`make test` (scripts/run_tests.py) installs chromium with apt-get and sets QUIRE_CHROMIUM, or sets
QUIRE_BROWSER_UNAVAILABLE with the reason; these tests then skip with that reason. The web server
is pytest-django's `live_server` (a thread of this process), so the tests need
`django_db(transaction=True)`; the sync Playwright API runs an event loop in this thread, hence
DJANGO_ALLOW_ASYNC_UNSAFE.

Fixtures:
- `chromium`: one headless browser for the session.
- `browser_page`: a fresh context (own cookies) and page for a test, with downloads accepted.
- `sign_in(page, live_server, user)`: signs `user` in through the sign-in form.
- `screenshot(page, name)`: full-page PNG in test-artifacts/screenshots/ (git-ignored).
"""
import os
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
EXPECT_TIMEOUT_MS = 30_000  # a bound on waiting for the page, not a speed assertion


@pytest.fixture(scope="session")
def chromium():
    """A headless Chromium (QUIRE_CHROMIUM or /usr/bin/chromium) for the session."""
    if reason := os.environ.get("QUIRE_BROWSER_UNAVAILABLE"):
        pytest.skip(f"no browser: {reason}")
    executable = os.environ.get("QUIRE_CHROMIUM", "/usr/bin/chromium")
    if not Path(executable).exists():
        pytest.skip(f"no browser: {executable} is not installed (apt-get install chromium chromium-driver)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium):
    """A page in a fresh browser context (its own cookies), 1280x900, downloads accepted."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(EXPECT_TIMEOUT_MS)
    yield page
    context.close()


@pytest.fixture
def sign_in():
    """`sign_in(page, live_server, user, password)`: fill and send the sign-in form, land on Documents."""
    from playwright.sync_api import expect

    def do(page, live_server, user, password: str):
        page.goto(f"{live_server.url}/login/")
        page.get_by_label("Username").fill(user.get_username())
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Documents")).to_be_visible()

    return do


@pytest.fixture
def screenshot():
    """`screenshot(page, name)`: save a full-page PNG as test-artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
