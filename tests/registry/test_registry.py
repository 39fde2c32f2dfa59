"""The registry without a broker: DB constraints, promotion rules, permissions, artifact
registration and resolution, ground-truth import and export (filesystem storage)."""
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, transaction

from quire.documents.models import Line
from quire.jobs.models import TrainingJob
from quire.registry import services
from quire.registry.models import ModelVersion
from tests.platform.factories import add_lines, client_for, make_page
from workers import models as model_store

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}
    monkeypatch.setenv("QUIRE_MODEL_CACHE", str(tmp_path / "cache"))
    for name in ("QUIRE_DETECTOR_PATH", "QUIRE_RECOGNIZER_PATH"):
        monkeypatch.delenv(name, raising=False)


def version(kind="recognizer", name="v1", state="candidate", **metrics):
    from django.utils import timezone

    return ModelVersion.objects.create(kind=kind, version=name, state=state, artifact=f"models/{name}.pt",
                                       metrics=metrics, promoted_at=timezone.now() if state == "production" else None)


def test_database_allows_one_production_version_per_kind():
    version(name="a", state="production")
    version(kind="detector", name="a", state="production")  # another kind: fine
    with pytest.raises(IntegrityError), transaction.atomic():
        version(name="b", state="production")
    b = version(name="b")
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=b.pk).update(state="production")


def test_database_allows_one_active_training_job_per_kind():
    TrainingJob.objects.create(kind="recognizer")
    with pytest.raises(IntegrityError), transaction.atomic():
        TrainingJob.objects.create(kind="recognizer")
    TrainingJob.objects.create(kind="recognizer", state="failed")  # finished ones do not count


def test_promotion_refuses_a_worse_candidate_without_override_and_rollback_walks_back():
    prod = version(name="p", state="production")
    worse = version(name="w", heldout={"cer": 0.30}, baseline={"version": "p", "heldout": {"cer": 0.20}})
    with pytest.raises(services.PromotionRefused, match="override"):
        services.promote(worse)
    assert ModelVersion.objects.get(pk=prod.pk).state == "production"
    services.promote(worse, override=True)
    assert ModelVersion.objects.get(pk=prod.pk).state == "archived"
    assert ModelVersion.objects.get(pk=worse.pk).state == "production"
    better = version(name="b", heldout={"cer": 0.1}, baseline={"version": "w", "heldout": {"cer": 0.3}})
    services.promote(better)
    assert services.production("recognizer").pk == better.pk
    assert services.rollback("recognizer").pk == worse.pk
    assert services.rollback("recognizer").pk == prod.pk
    with pytest.raises(services.RollbackImpossible):
        services.rollback("recognizer")


def test_training_parameters_are_checked():
    assert services.training_params({"steps": "5", "mix_base": "true"})["steps"] == 5
    for bad in ({"steps": 0}, {"steps": "x"}, {"lr": 5}, {"bogus": 1}, {"mix_base": "maybe"}):
        with pytest.raises(services.TrainingRefused):
            services.training_params(bad)


def test_non_staff_can_neither_train_nor_promote_nor_roll_back(alice, bob, staff):
    candidate = version(name="c")
    page, _ = make_page(alice)
    lines = add_lines(page, ["one", "two", "three"])
    client = client_for(alice)
    assert client.get("/api/v1/models/").status_code == 200  # visible to all signed-in users
    for url, body in (("/api/v1/models/train/", {"steps": 3}),
                      (f"/api/v1/models/{candidate.pk}/promote/", {"override": True}),
                      ("/api/v1/models/rollback/", {"kind": "recognizer"})):
        response = client.post(url, body, format="json")
        assert response.status_code == 403, (url, response.content)
        assert "staff" in response.json()["detail"]
    assert client.get("/api/v1/training-jobs/").status_code == 403
    assert not TrainingJob.objects.exists()
    assert ModelVersion.objects.get(pk=candidate.pk).state == "candidate"
    # another user's line stays invisible: 404, not 403
    assert client_for(bob).patch(f"/api/v1/lines/{lines[0].pk}/", {"text": "x"}, format="json").status_code == 404
    # staff: too little ground truth is a 400 naming the problem; unknown kind too
    staff_client = client_for(staff)
    response = staff_client.post("/api/v1/models/train/", {"steps": 3}, format="json")
    assert response.status_code == 400 and "ground truth" in response.json()["detail"]
    response = staff_client.post("/api/v1/models/train/", {"kind": "detector"}, format="json")
    assert response.status_code == 400 and "recognizer" in response.json()["detail"]


def test_staff_starts_one_training_at_a_time_and_cancels_it(alice, staff, django_capture_on_commit_callbacks):
    page, _ = make_page(alice)
    for line in add_lines(page, ["one", "two", "three"]):
        assert client_for(alice).patch(f"/api/v1/lines/{line.pk}/", {"text": line.text + "!"},
                                       format="json").status_code == 200
    client = client_for(staff)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post("/api/v1/models/train/", {"steps": 3, "lr": 0.001}, format="json")
    assert response.status_code == 202, response.content
    assert len(callbacks) == 1  # the message to the train queue, sent after commit
    job = response.json()
    assert job["state"] == "queued" and job["params"]["steps"] == 3 and job["params"]["ground_truth_lines"] == 3
    again = client.post("/api/v1/models/train/", {"steps": 3}, format="json")
    assert again.status_code == 409 and f"#{job['id']}" in again.json()["detail"]
    assert client.post(f"/api/v1/training-jobs/{job['id']}/cancel/").json()["state"] == "canceled"
    assert client.post(f"/api/v1/training-jobs/{job['id']}/cancel/").status_code == 409


def test_promote_api_answers_409_for_a_worse_candidate(staff):
    version(name="p", state="production")
    worse = version(name="w", heldout={"cer": 0.5}, baseline={"version": "p", "heldout": {"cer": 0.2}})
    client = client_for(staff)
    detail = client.get(f"/api/v1/models/{worse.pk}/").json()
    assert detail["comparison"] == {"candidate_cer": 0.5, "production_cer": 0.2, "worse": True, "production": "p"}
    response = client.post(f"/api/v1/models/{worse.pk}/promote/", {}, format="json")
    assert response.status_code == 409 and "override" in response.json()["detail"]
    response = client.post(f"/api/v1/models/{worse.pk}/promote/", {"override": True}, format="json")
    assert response.status_code == 200 and response.json()["state"] == "production"
    assert client.post("/api/v1/models/999999/promote/", {}, format="json").status_code == 404


def test_shipped_registration_is_idempotent_and_workers_resolve_production(tiny_recognizer, tmp_path):
    shipped = tmp_path / "shipped"  # the detector only: a missing recognizer.pt is skipped
    shipped.mkdir()
    (shipped / "detector.pt").write_bytes(model_store.SHIPPED["detector"].read_bytes())
    first = model_store.register_shipped_models(shipped)
    assert [(v.kind, created, v.state) for v, created in first] == [("detector", True, "production")]
    assert [created for _, created in model_store.register_shipped_models(shipped)] == [False]
    detector = first[0][0]
    assert detector.metrics["dev_macro_f1"] > 0 and detector.sha256 and detector.artifact.name.startswith("models/")
    chosen = model_store.resolve()
    assert chosen["detector"].origin == "registry" and chosen["recognizer"].origin == "shipped"
    assert chosen["recognizer"].path == str(model_store.SHIPPED["recognizer"])
    rec, created = model_store.register_artifact(tiny_recognizer)
    assert created and rec.state == "production"  # first of its kind
    path = model_store.local_artifact(model_store.resolve()["recognizer"])
    assert path.read_bytes() == tiny_recognizer.read_bytes()
    assert path.parent == tmp_path / "cache"
    path.write_bytes(b"tampered")  # a damaged cache file is fetched again
    assert model_store.local_artifact(model_store.resolve()["recognizer"]).read_bytes() == tiny_recognizer.read_bytes()
    with pytest.raises(ValueError, match="not a Quire model artifact"):
        model_store.register_artifact(_junk(tmp_path))


def _junk(tmp_path):
    import torch

    path = tmp_path / "junk.pt"
    torch.save({"format": "something-else"}, path)
    return path


def test_env_override_wins(monkeypatch, tiny_recognizer):
    monkeypatch.setenv("QUIRE_RECOGNIZER_PATH", str(tiny_recognizer))
    chosen = model_store.resolve()["recognizer"]
    assert chosen.origin == "env" and model_store.local_artifact(chosen) == tiny_recognizer


def test_ground_truth_import_and_export(alice, bob, handwritten_page, tmp_path):
    client = client_for(alice)
    response = client.post("/api/v1/ground-truth/import/", {
        "image": SimpleUploadedFile("page.jpg", handwritten_page["image"].read_bytes()),
        "xml": SimpleUploadedFile("page.xml", handwritten_page["xml"].read_bytes()),
        "document_name": "imported"}, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["lines"] == handwritten_page["n_lines"]
    lines = Line.objects.filter(page_id=body["page"]).order_by("index")
    assert all(line.is_ground_truth and line.text for line in lines)
    assert not lines[0].page.jobs.exists()  # no transcription job to overwrite the ground truth
    assert client_for(bob).get(body["url"]).status_code == 404
    bad = client.post("/api/v1/ground-truth/import/", {
        "image": SimpleUploadedFile("page.jpg", handwritten_page["image"].read_bytes()),
        "xml": SimpleUploadedFile("page.xml", b"<html><body/></html>")}, format="multipart")
    assert bad.status_code == 400 and "PAGE XML or ALTO" in bad.json()["detail"]
    assert client.post("/api/v1/ground-truth/import/", {}, format="multipart").status_code == 400

    from workers.training import export_ground_truth, split_heldout

    records = export_ground_truth(lines[:3], tmp_path / "gt")
    assert len(records) == 3
    written = [json.loads(r) for r in (tmp_path / "gt" / "lines.jsonl").read_text().splitlines()]
    assert [r["text"] for r in written] == [line.text for line in lines[:3]]
    from PIL import Image

    with Image.open(tmp_path / "gt" / written[0]["image"]) as crop:
        assert crop.mode == "L" and crop.width > 3 * crop.height  # a text line, not the page
    train, held = split_heldout(records, 0.34, seed=1)
    assert len(held) == 1 and len(train) == 2 and split_heldout(records, 0.34, seed=1) == (train, held)


def test_retrain_command_in_process_registers_and_promotes_a_candidate(alice, tiny_recognizer):
    import io

    from django.core.management import call_command

    parent, _ = model_store.register_artifact(tiny_recognizer)
    page, _ = make_page(alice)
    for line in add_lines(page, ["one line", "two lines", "three"]):
        client_for(alice).patch(f"/api/v1/lines/{line.pk}/", {"text": line.text.upper()}, format="json")
    out = io.StringIO()
    call_command("retrain", steps=2, eval_every=1, batch_size=2, dev_max_lines=0, promote=True, override=True,
                 stdout=out)
    job = TrainingJob.objects.get()
    assert job.state == "succeeded" and [h["step"] for h in job.metrics["history"]] == [1, 2]
    candidate = ModelVersion.objects.get(training_job=job)
    assert candidate.state == "production" and candidate.parent == parent
    assert ModelVersion.objects.get(pk=parent.pk).state == "archived"
    assert "promoted to production" in out.getvalue() and "held-out CER" in out.getvalue()
