"""Operator endpoints (quire.ops) against the real PostgreSQL/SQLite, Redis, SeaweedFS S3 and a
real Celery worker: /healthz and the staff status page."""
import socket

import pytest
from django.conf import settings
from django.test import Client

from quire.jobs.dispatch import enqueue_transcription
from tests.platform.factories import client_for, make_page, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def live(redis_url, s3_env, monkeypatch):
    from quire import ops

    monkeypatch.setattr(ops, "_LAST", None)  # no health result reused from another test
    return redis_url


def test_healthz_is_ok_when_everything_answers(live):
    response = Client().get("/healthz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "broker": "ok", "storage": "ok"}


def _point_broker(settings, monkeypatch, url: str) -> None:
    """Celery reads CELERY_BROKER_URL from the environment before its own setting: change both."""
    settings.CELERY_BROKER_URL = url
    monkeypatch.setenv("CELERY_BROKER_URL", url)


def test_healthz_names_the_broker_when_redis_is_gone(live, settings, monkeypatch):
    _point_broker(settings, monkeypatch, f"redis://127.0.0.1:{_closed_port()}/0")
    response = Client().get("/healthz")
    assert response.status_code == 503, response.json()
    checks = response.json()["checks"]
    assert checks["broker"] in ("error", "timeout") and checks["database"] == "ok"
    assert "127.0.0.1" not in response.content.decode()  # no addresses, credentials or error details
    assert "Error" not in response.content.decode()


def test_healthz_names_the_storage_when_s3_is_gone(live, settings):
    default = dict(settings.STORAGES["default"])
    default["OPTIONS"] = {**default["OPTIONS"], "endpoint_url": f"http://127.0.0.1:{_closed_port()}"}
    settings.STORAGES = {**settings.STORAGES, "default": default}
    response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["storage"] in ("error", "timeout")


def test_healthz_reuses_a_fresh_result_and_answers_head(live, settings, monkeypatch):
    assert Client().get("/healthz").status_code == 200
    monkeypatch.setenv("CELERY_BROKER_URL", f"redis://127.0.0.1:{_closed_port()}/0")
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    assert Client().head("/healthz").status_code == 200  # within HEALTH_CACHE_S: the same answer
    from quire import ops

    monkeypatch.setattr(ops, "_LAST", None)
    assert Client().get("/healthz").status_code == 503


def test_a_hung_probe_is_not_started_twice(live, monkeypatch):
    import threading

    from quire import ops

    release = threading.Event()
    monkeypatch.setitem(ops.CHECKS, "storage", lambda: release.wait(30))
    try:
        first = ops.run_checks()
        second = ops.run_checks()
        assert first["storage"]["status"] == "timeout" and first["database"]["status"] == "ok"
        assert second["storage"] == {"status": "timeout", "error": "the previous probe has not answered yet"}
    finally:
        release.set()


def test_status_is_for_staff_only(live):
    assert Client().get("/api/v1/status/").status_code in (401, 403)
    assert client_for(make_user("clerk")).get("/api/v1/status/").status_code == 403


def test_status_counts_waiting_messages_and_jobs(live, settings, monkeypatch):
    # a broker database no worker listens on: the messages stay in the queue
    _point_broker(settings, monkeypatch, live.rsplit("/", 1)[0] + "/9")
    import redis

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    owner = make_user("writer")
    jobs = [make_page(owner)[1] for _ in range(2)]
    for job in jobs:
        assert enqueue_transcription(job.pk)
    body = client_for(make_user("ops", is_staff=True)).get("/api/v1/status/").json()
    assert body["queues"] == {"transcribe": 2, "train": 0}
    assert body["transcription_jobs"]["by_state"]["queued"] >= 2
    assert body["transcription_jobs"]["oldest_queued_s"] >= 0
    assert body["workers"] == {}  # nobody consumes this broker database
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()


def test_status_lists_the_live_workers_and_their_queues(live, celery_worker):
    body = client_for(make_user("ops2", is_staff=True)).get("/api/v1/status/").json()
    assert any("transcribe" in queues for queues in body["workers"].values()), body["workers"]
    assert body["checks"]["broker"]["status"] == "ok"


def test_healthz_answers_over_plain_http_behind_the_https_redirect(live, settings):
    """docker-compose probes http://127.0.0.1:8000/healthz with an allowed Host: no redirect there,
    while every other page is still sent to HTTPS."""
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["quire.example.org"]
    client = Client(HTTP_HOST="quire.example.org")
    assert client.get("/healthz").status_code == 200
    assert client.get("/login/").status_code == 301
