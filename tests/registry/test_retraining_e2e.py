"""The retraining loop through a real Celery worker process, Redis, the S3 server and the test
database: corrections through the API → a training job on the `train` queue (watched, one
canceled) → a candidate with held-out and dev figures → promotion → the next transcription job
uses the new version, without restarting the worker."""
import time
import uuid

import pytest

from quire.jobs.dispatch import enqueue_transcription
from quire.jobs.models import TrainingJob, TranscriptionJob
from quire.registry.models import ModelVersion
from tests.platform.factories import add_lines, client_for, make_page, make_user
from tests.registry.tiny import make_tiny_recognizer
from workers import models as model_store

pytestmark = pytest.mark.django_db(transaction=True)
POLL_LIMIT_S = 600  # a bound on waiting, not a speed assertion


def wait(predicate, what: str):
    deadline = time.monotonic() + POLL_LIMIT_S
    while time.monotonic() < deadline:
        if (value := predicate()) is not None:
            return value
        time.sleep(0.3)
    raise AssertionError(f"gave up waiting for {what}")


def transcribe_with_worker(user) -> TranscriptionJob:
    page, job = make_page(user)
    assert enqueue_transcription(job.pk)
    return wait(lambda: (j if (j := TranscriptionJob.objects.get(pk=job.pk)).is_final else None), "transcription")


def test_corrections_retrain_promote_and_next_job_uses_the_new_version(celery_worker, tmp_path):
    parent, _ = model_store.register_artifact(
        make_tiny_recognizer(tmp_path / "tiny.pt", f"tiny-{uuid.uuid4().hex[:8]}"), "recognizer")
    assert parent.state == "production"
    user, staff = make_user("carol"), make_user("root", is_staff=True)
    first = transcribe_with_worker(user)
    assert first.state == "succeeded", first.error_message
    assert first.models_used["recognizer"] == parent.name

    # a person corrects lines through the API: they become ground truth
    page, _ = make_page(user)
    client = client_for(user)
    texts = ["Kew Nov 28", "my dear Gray", "I send you", "the seeds", "with thanks"]
    for line, text in zip(add_lines(page, ["?"] * len(texts)), texts):
        response = client.patch(f"/api/v1/lines/{line.pk}/", {"text": text}, format="json")
        assert response.status_code == 200 and response.json()["is_ground_truth"]

    admin = client_for(staff)
    # a long run, watched while it runs, then canceled
    response = admin.post("/api/v1/models/train/", {"steps": 100000, "time_budget_s": 600, "batch_size": 2,
                                                    "eval_every": 2, "dev_max_lines": 0}, format="json")
    assert response.status_code == 202, response.content
    url = response["Location"]
    live = wait(lambda: (b if (b := admin.get(url).json())["state"] == "running"
                         and (b["metrics"].get("step") or 0) >= 2 else None), "training progress")
    assert live["progress"] > 0 and live["metrics"]["loss"] is not None and live["metrics"]["steps"] == 100000
    assert admin.post(f"{url}cancel/").json()["state"] == "canceled"
    assert celery_worker.alive()

    # a short run to its end
    response = admin.post("/api/v1/models/train/", {"steps": 6, "batch_size": 2, "eval_every": 3, "lr": 0.003,
                                                    "heldout_fraction": 0.4, "dev_max_lines": 6}, format="json")
    assert response.status_code == 202, response.content
    url = response["Location"]
    done = wait(lambda: (b if (b := admin.get(url).json())["state"] in ("succeeded", "failed", "canceled")
                         else None), "training end")
    assert done["state"] == "succeeded", (done["error_code"], done["error_message"])
    assert [h["step"] for h in done["metrics"]["history"]] == [3, 6]
    assert done["metrics"]["train_lines"] == 3 and done["metrics"]["heldout_lines"] == 2
    candidate = admin.get(done["candidate"]["url"]).json()
    assert candidate["state"] == "candidate" and candidate["parent_version"] == parent.version
    metrics = candidate["metrics"]
    assert metrics["heldout"]["lines"] == 2 and metrics["baseline"]["version"] == parent.version
    assert 0 <= metrics["heldout"]["cer"] and 0 <= metrics["baseline"]["heldout"]["cer"]
    assert metrics["dev"]["lines"] > 0 and "cer" in metrics["baseline"]["dev"]
    assert candidate["comparison"]["production"] == parent.version

    response = admin.post(f"{candidate['url']}promote/", {}, format="json")
    if candidate["comparison"]["worse"]:  # a few steps may not beat the parent: then the override path
        assert response.status_code == 409 and "override" in response.json()["detail"]
        response = admin.post(f"{candidate['url']}promote/", {"override": True}, format="json")
    assert response.status_code == 200 and response.json()["state"] == "production"
    assert ModelVersion.objects.get(pk=parent.pk).state == "archived"

    after = transcribe_with_worker(user)  # same worker process: picks the promotion up
    assert after.state == "succeeded", after.error_message
    assert after.models_used["recognizer"] == f"quire-recognizer@{candidate['version']}"
    assert TrainingJob.objects.filter(state="succeeded").count() == 1
