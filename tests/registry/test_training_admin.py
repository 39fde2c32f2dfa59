"""The admin's cancel action on training jobs: queued and running ones are canceled (a running
one's worker stops at its next step, as after the API's cancel); finished ones are reported, unchanged."""
from quire.jobs.models import TrainingJob
from tests.platform.factories import make_user


def test_admin_cancel_action_cancels_active_jobs_and_reports_finished_ones(client, db):
    root = make_user("root", is_staff=True, is_superuser=True)
    queued = TrainingJob.objects.create(kind="recognizer")
    running = TrainingJob.objects.create(kind="detector")
    running.transition("running")
    done = TrainingJob.objects.create(kind="recognizer", state="succeeded")
    client.force_login(root)
    response = client.post("/admin/jobs/trainingjob/", {
        "action": "cancel", "_selected_action": [queued.pk, running.pk, done.pk]}, follow=True)
    assert response.status_code == 200
    states = dict(TrainingJob.objects.values_list("pk", "state"))
    assert states == {queued.pk: "canceled", running.pk: "canceled", done.pk: "succeeded"}
    assert TrainingJob.objects.get(pk=running.pk).finished_at is not None
    text = [str(m) for m in response.context["messages"]]
    assert f"canceled training job(s) #{queued.pk}, #{running.pk}" in text
    assert any(f"#{done.pk} is succeeded" in m for m in text)


def test_non_staff_cannot_reach_the_training_job_admin(client, db):
    job = TrainingJob.objects.create(kind="recognizer")
    client.force_login(make_user("alice"))
    response = client.post("/admin/jobs/trainingjob/", {"action": "cancel", "_selected_action": [job.pk]})
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert TrainingJob.objects.get(pk=job.pk).state == "queued"
