"""POST /api/v1/transcribe/: one image, queued like an upload; 200 with text when done in time, else 202."""
import base64

from django.core.files.uploadedfile import SimpleUploadedFile

from quire.jobs.models import TranscriptionJob
from tests.platform.factories import client_for, finish_job, page_png

URL = "/api/v1/transcribe/"


def test_multipart_without_wait_is_202_with_job_link(alice):
    response = client_for(alice).post(URL, {"file": SimpleUploadedFile("a.png", page_png(seed=20)), "wait": "0"},
                                      format="multipart")
    assert response.status_code == 202
    body = response.json()
    assert body["state"] == "queued" and response["Location"] == body["job"]["url"]


def test_base64_json_waits_then_answers_202(alice):
    image = base64.b64encode(page_png(seed=21)).decode()
    response = client_for(alice).post(URL, {"image": image, "filename": "b.png", "wait": 0.3}, format="json")
    assert response.status_code == 202 and response.json()["job"]["state"] == "queued"
    assert TranscriptionJob.objects.get().page.filename == "b.png"


def test_finished_job_answers_200_with_text_and_lines(alice):
    """A re-sent image whose job has finished is answered at once, with the text and lines."""
    client, data = client_for(alice), page_png(seed=22)
    first = client.post(URL, {"file": SimpleUploadedFile("c.png", data)}, format="multipart").json()
    finish_job(TranscriptionJob.objects.get(pk=first["job"]["id"]), ["Kew, 3 May", "My dear Gray"])
    response = client.post(URL, {"image": base64.b64encode(data).decode(), "wait": 5}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "succeeded" and body["text"] == "Kew, 3 May\nMy dear Gray"
    assert [line["text"] for line in body["lines"]] == ["Kew, 3 May", "My dear Gray"]
    assert body["lines"][0]["bbox"] == [10, 10, 300, 40] and body["job"]["id"] == first["job"]["id"]
    assert first["duplicate"] is False and first["duplicate_of"] is None
    assert body["duplicate"] is True and body["duplicate_of"]["page"] == body["id"]
    assert "force=1" in body["duplicate_of"]["detail"]


def test_force_transcribes_a_known_image_again(alice):
    client, data = client_for(alice), page_png(seed=26)
    first = client.post(URL, {"file": SimpleUploadedFile("e.png", data)}, format="multipart").json()
    again = client.post(URL, {"image": base64.b64encode(data).decode(), "force": True}, format="json")
    assert again.status_code == 202, again.content
    assert again.json()["duplicate"] is False and again.json()["job"]["id"] != first["job"]["id"]


def test_failed_job_answers_200_with_its_error(alice):
    client, data = client_for(alice), page_png(seed=23)
    first = client.post(URL, {"file": SimpleUploadedFile("d.png", data)}, format="multipart").json()
    job = TranscriptionJob.objects.get(pk=first["job"]["id"])
    job.transition("failed", error_code="bad_image", error_message="blank page")
    body = client.post(URL, {"file": SimpleUploadedFile("d.png", data), "wait": 1}, format="multipart").json()
    assert body["state"] == "failed" and body["job"]["error"] == {"code": "bad_image", "message": "blank page"}


def test_bad_requests(alice):
    client = client_for(alice)
    cases = [
        ({"image": "%%% not base64 %%%"}, "not valid base64"),
        ({}, "no image"),
        ({"image": base64.b64encode(page_png(seed=24)).decode(), "wait": 61}, "between 0 and 60"),
        ({"image": base64.b64encode(page_png(seed=25)).decode(), "wait": "soon"}, "number of seconds"),
        ({"image": base64.b64encode(b"GIF89a broken").decode(), "filename": "x.gif"}, "x.gif"),
        ({"image": base64.b64encode(page_png(seed=27)).decode(), "force": "banana"}, "force must be 1 or 0"),
    ]
    for body, words in cases:
        response = client.post(URL, body, format="json")
        assert 400 <= response.status_code < 500 and words in response.json()["detail"], (body, response.json())
    assert not TranscriptionJob.objects.exists()
