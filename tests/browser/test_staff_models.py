"""The staff side of the web page in a real browser (Debian's Chromium) against a live server, a real
Celery worker process, Redis and the SeaweedFS S3 server: a retraining started from /models/ and
watched to its end, the candidate's figures beside production's, a refused promotion with the
API's message and the override, promotion and roll-back; /models/ is a 404 for other users; the
versions of a corrected line in the page view. The production recognizer is a tiny real one
(tests/registry/tiny.py) so that a few training steps take seconds. Screenshots go to
test-artifacts/screenshots/."""
import re
import uuid

import pytest

from quire.jobs.models import TrainingJob
from quire.registry import services
from quire.registry.models import ModelVersion
from tests.platform.factories import add_lines, client_for, make_page, make_user
from tests.registry.tiny import make_tiny_recognizer
from workers import models as model_store

TRAIN_WAIT_MS = 600_000  # a bound on waiting for the worker (2 busy cores), not a speed assertion
CORRECTIONS = ["Kew Nov 28", "my dear Gray", "I send you", "the seeds", "with thanks"]

pytestmark = pytest.mark.django_db(transaction=True)


def _expect():
    from playwright.sync_api import expect

    return expect


def _password(user) -> str:
    return f"pw-{user.get_username()}-123"  # tests.platform.factories.make_user


def _four(value: float) -> str:
    return f"{value:.4f}"


def _corrected_page(user):
    """A page of `user` whose lines were corrected through the API (ground truth, with versions)."""
    page, _ = make_page(user)
    client = client_for(user)
    for line, text in zip(add_lines(page, ["?"] * len(CORRECTIONS)), CORRECTIONS):
        response = client.patch(f"/api/v1/lines/{line.pk}/", {"text": text}, format="json")
        assert response.status_code == 200 and response.json()["is_ground_truth"]
    return page


def test_staff_retrains_from_the_page_compares_promotes_and_rolls_back(live_server, celery_worker, s3_env,
                                                                       browser_page, sign_in, screenshot, tmp_path):
    expect, page = _expect(), browser_page
    ModelVersion.objects.all().delete()  # only the versions made here (a data migration may register others)
    parent, _ = model_store.register_artifact(
        make_tiny_recognizer(tmp_path / "tiny.pt", f"tiny-{uuid.uuid4().hex[:8]}"), "recognizer")
    assert parent.state == "production"
    # A candidate measured worse than production on its held-out lines: its promotion is refused (409).
    worse = ModelVersion.objects.create(
        kind="recognizer", version="worse-1", state="candidate", parent=parent, artifact="models/worse-1.pt",
        metrics={"heldout": {"cer": 0.9, "wer": 1.0}, "baseline": {"version": parent.version,
                                                                  "heldout": {"cer": 0.5, "wer": 0.8}}})
    staff = make_user("ada", is_staff=True)
    _corrected_page(staff)

    sign_in(page, live_server, staff, _password(staff))
    page.get_by_role("link", name="Models").click()
    expect(page.get_by_role("heading", name="Models", exact=True)).to_be_visible()
    expect(page.locator("#gt-count")).to_have_text(str(len(CORRECTIONS)))
    expect(page.locator("#training-live")).to_be_hidden()  # no training job yet

    # The comparison of the worse candidate, and its refused promotion with the API's message.
    table = page.locator(f"#compare-{worse.pk} table")
    expect(table.locator("tr", has_text="Held-out CER").locator("td")).to_have_text(
        ["0.9000", "0.5000", "+0.4000 worse"])
    expect(page.locator(f"#compare-{worse.pk}")).to_contain_text("promotion needs the override")
    cell = page.locator(f'.model-actions[data-model-id="{worse.pk}"]')
    expect(cell.locator(".override")).to_be_hidden()
    cell.get_by_role("button", name="Promote").click()
    expect(cell.locator(".model-message")).to_contain_text(f"quire-recognizer@worse-1 is worse than production "
                                                           f"quire-recognizer@{parent.version}")
    expect(cell.locator(".model-message")).to_contain_text("send override=true")
    expect(cell.get_by_label("override: promote although worse")).to_be_visible()
    assert ModelVersion.objects.get(pk=parent.pk).state == "production"
    assert ModelVersion.objects.get(pk=worse.pk).state == "candidate"

    # A short retraining started from the form (bad values are refused with the API's message first).
    page.get_by_label("Steps", exact=True).fill("0")
    page.get_by_role("button", name="Retrain recognizer").click()
    expect(page.locator("#train-message")).to_have_text("Not started: steps must be between 1 and 1000000, got 0")
    assert not TrainingJob.objects.exists()
    page.get_by_label("Steps", exact=True).fill("6")
    expect(page.get_by_label("Mix in the base training lines")).not_to_be_checked()
    page.get_by_text("More settings").click()
    for label, value in (("Batch size", "2"), ("Learning rate", "0.003"), ("Validate every (steps)", "3"),
                         ("Held-out share of ground truth", "0.4"), ("Dev lines scored", "6")):
        page.get_by_label(label).fill(value)
    page.get_by_role("button", name="Retrain recognizer").click()
    live = page.locator("#training-live")
    expect(live).to_be_visible()
    expect(page.locator("#train-message")).to_have_text(re.compile(r"^Training job #\d+ queued\.$"))
    job = TrainingJob.objects.get()
    assert job.params["steps"] == 6 and job.params["batch_size"] == 2 and job.params["eval_every"] == 3
    assert job.params["lr"] == 0.003 and job.params["dev_max_lines"] == 6 and job.params["mix_base"] is False
    expect(live.locator(".training-id")).to_have_text(f"#{job.pk}")
    expect(page.get_by_role("button", name="Retrain recognizer")).to_be_disabled()  # one at a time
    screenshot(page, "models-training")

    # The page watches the job to its end, then reloads with the candidate beside production.
    expect(page.locator("#models-status")).to_have_text(re.compile(rf"^Training job #{job.pk} "), timeout=TRAIN_WAIT_MS)
    job.refresh_from_db()
    assert job.state == "succeeded", (job.error_code, job.error_message)
    candidate = ModelVersion.objects.get(training_job=job)
    expect(page.locator("#models-status")).to_have_text(
        f"Training job #{job.pk} succeeded: candidate {candidate.version} registered.")
    expect(live.locator(".training-state")).to_have_text("succeeded")
    expect(live.locator(".training-step")).to_have_text("6 / 6")
    expect(live.locator(".training-percent")).to_have_text("100%")
    expect(live.locator(".training-loss")).to_have_text(re.compile(r"^\d+\.\d{4}$"))
    expect(live.locator(".training-cer")).to_have_text(_four(candidate.metrics["heldout"]["cer"]))
    expect(live.locator(".training-result")).to_have_text(f"Candidate {candidate.version} registered (candidate).")
    expect(live.locator(".training-cancel")).to_be_hidden()
    expect(page.get_by_role("button", name="Retrain recognizer")).to_be_enabled()

    compare = page.locator(f"#compare-{candidate.pk}")
    expect(compare.get_by_role("heading")).to_have_text(
        f"Candidate {candidate.version} beside production {parent.version}")
    metrics, baseline = candidate.metrics, candidate.metrics["baseline"]
    expect(compare.locator("tr", has_text="Held-out CER").locator("td.cand")).to_have_text(
        _four(metrics["heldout"]["cer"]))
    expect(compare.locator("tr", has_text="Held-out CER").locator("td.base")).to_have_text(
        _four(baseline["heldout"]["cer"]))
    expect(compare.locator('tr[data-metric="Dev CER"] td.base')).to_have_text(_four(baseline["dev"]["cer"]))
    sources = sorted(metrics["dev"]["sources"])
    assert sources
    for source in sources:  # dev CER per source, side by side
        row = compare.locator(f'tr[data-metric="Dev CER · {source}"]')
        expect(row.locator("td.cand")).to_have_text(_four(metrics["dev"]["sources"][source]["cer"]))
        expect(row.locator("td.base")).to_have_text(_four(baseline["dev"]["sources"][source]["cer"]))
    screenshot(page, "models-candidate")

    # Promote the trained candidate (with the override when its few steps did not beat production).
    cell = page.locator(f'.model-actions[data-model-id="{candidate.pk}"]')
    if services.comparison(candidate, parent)["worse"]:
        cell.get_by_role("button", name="Promote").click()
        expect(cell.locator(".model-message")).to_contain_text("send override=true")
        cell.get_by_label("override: promote although worse").check()
        flash = f"{candidate.name} is now production (override)."
    else:
        flash = f"{candidate.name} is now production."
    cell.get_by_role("button", name="Promote").click()
    expect(page.locator("#models-status")).to_have_text(flash)
    versions = page.locator("#models-recognizer table.metrics")
    header = versions.locator("thead th")
    expect(header).to_have_text(["Version", candidate.version, "worse-1", parent.version])
    expect(versions.locator("tbody tr").first.locator("td")).to_have_text(
        ["production", "candidate", "archived"])
    assert ModelVersion.objects.get(pk=candidate.pk).state == "production"
    assert services.production("recognizer").pk == candidate.pk
    screenshot(page, "models-promoted")

    # Roll back: the parent is production again.
    page.locator(f'.model-actions[data-model-id="{candidate.pk}"]').get_by_role("button", name="Roll back").click()
    expect(page.locator("#models-status")).to_have_text(f"Rolled back: {parent.name} is production again.")
    expect(versions.locator("tbody tr").first.locator("td")).to_have_text(
        ["archived", "candidate", "production"])
    assert services.production("recognizer").pk == parent.pk


def test_cancel_a_running_training_from_the_page(live_server, celery_worker, s3_env, browser_page, sign_in,
                                                 tmp_path):
    expect, page = _expect(), browser_page
    ModelVersion.objects.all().delete()
    model_store.register_artifact(make_tiny_recognizer(tmp_path / "tiny.pt", f"tiny-{uuid.uuid4().hex[:8]}"),
                                  "recognizer")
    staff = make_user("ada", is_staff=True)
    _corrected_page(staff)
    sign_in(page, live_server, staff, _password(staff))
    page.goto(f"{live_server.url}/models/")
    page.get_by_label("Steps", exact=True).fill("100000")
    page.get_by_text("More settings").click()
    page.get_by_label("Batch size").fill("2")
    page.get_by_label("Validate every (steps)").fill("2")
    page.get_by_role("button", name="Retrain recognizer").click()
    live = page.locator("#training-live")
    # live progress: running, with a step count and a loss, polled from the API
    expect(live.locator(".training-step")).to_have_text(re.compile(r"^[1-9]\d* / 100000$"), timeout=TRAIN_WAIT_MS)
    expect(live.locator(".training-state")).to_have_text("running")
    expect(live.locator(".training-phase")).to_have_text("training")
    expect(live.locator(".training-loss")).to_have_text(re.compile(r"^\d+\.\d{4}$"))
    live.get_by_role("button", name="Cancel").click()
    job = TrainingJob.objects.get()
    expect(page.locator("#models-status")).to_have_text(f"Training job #{job.pk} canceled.")
    expect(live.locator(".training-state")).to_have_text("canceled")
    expect(live.locator(".training-cancel")).to_be_hidden()
    assert TrainingJob.objects.get(pk=job.pk).state == "canceled"
    assert not ModelVersion.objects.filter(training_job=job).exists()
    assert celery_worker.alive()


def test_models_page_is_404_for_non_staff_and_line_history_in_the_page_view(live_server, s3_env, browser_page,
                                                                            sign_in, screenshot):
    expect, page = _expect(), browser_page
    user = make_user("bea")
    doc_page = _corrected_page(user)
    sign_in(page, live_server, user, _password(user))
    expect(page.get_by_role("link", name="Models")).to_have_count(0)
    assert page.goto(f"{live_server.url}/models/").status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()

    page.goto(f"{live_server.url}/pages/{doc_page.pk}/")
    lines = page.locator("#lines > li")
    expect(lines).to_have_count(len(CORRECTIONS))
    lines.nth(1).get_by_role("button", name="history").click()
    history = lines.nth(1).locator(".line-history li")
    expect(history).to_have_count(2)
    expect(history.nth(0).locator(".who")).to_contain_text("model output")
    expect(history.nth(0).locator(".version-text")).to_have_text("?")
    expect(history.nth(1).locator(".who")).to_contain_text("bea")
    expect(history.nth(1).locator(".version-text")).to_have_text(CORRECTIONS[1])
    expect(lines.nth(1).locator(".line-input")).to_have_count(0)  # the toggle does not start an edit
    # a new correction shows up as a third version
    lines.nth(1).locator(".line-text").click()
    page.locator(".line-input").fill("my dear Dr Gray")
    page.keyboard.press("Enter")
    expect(page.locator("#line-status")).to_have_text("Line 2 saved as a correction.")
    page.keyboard.press("h")  # keyboard: history of the current line
    expect(lines.nth(1).locator(".line-history .version-text")).to_have_text(["?", CORRECTIONS[1], "my dear Dr Gray"])
    screenshot(page, "page-line-history")
    page.keyboard.press("h")
    expect(lines.nth(1).locator(".line-history")).to_have_count(0)
