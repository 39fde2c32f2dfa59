"""Fixtures for tests that talk to real services: Redis, SeaweedFS S3, a Celery worker process.

`make test` starts the services (scripts/services.py, PostgreSQL included) and exports their
environment before pytest starts, so Django's settings already point at them. Bare `pytest` works
too: the first test that asks for `redis_url` or `s3_env` starts Redis and SeaweedFS for the
session (through scripts/services.py, in a temporary folder) and points this process's settings
and Celery apps at them; the database then is whatever DATABASE_URL says (SQLite by default, in
a file, so that a worker process can see it).

Fixtures:
- `fixtures_dir`, `handwritten_page`, `fixture_lines`: the bundled real handwriting (see
  tests/fixtures/ATTRIBUTION.md).
- `services_state`: the running services (dict as written by scripts/services.py).
- `redis_url`: broker/result-backend URL of a live Redis.
- `s3_env`: env vars for the live S3 server with a fresh bucket; also switches Django's default
  storage to it for the rest of the session.
- `celery_worker`: one real worker process (`celery -A workers.app worker -Q transcribe,train
  --pool=solo -c 1`) for the session, on the test database; tests that use it need
  `@pytest.mark.django_db(transaction=True)` (the worker sees only committed rows).
- `start_celery_worker`: a factory for extra workers a test may kill or restart; they are
  stopped after the test.
On a failed test that used a worker, the tail of the worker's log is added to the report.
"""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
WORKER_READY_TIMEOUT_S = 180.0  # the worker imports torch and loads models: generous on 2 slow cores


def _load_services():
    spec = importlib.util.spec_from_file_location("quire_services", ROOT / "scripts" / "services.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["quire_services"] = mod
    spec.loader.exec_module(mod)
    return mod


services = _load_services()


# ------------------------------------------------------------------------------------ fixtures data
@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Path of tests/fixtures/ (real CC-BY handwriting; see ATTRIBUTION.md there)."""
    return FIXTURES


@pytest.fixture(scope="session")
def handwritten_page() -> dict:
    """The bundled real handwritten page: {"image": Path (JPEG, 2550x3300), "xml": Path (ALTO 4),
    "source", "format", "n_lines"} — one record of tests/fixtures/pages/pages.json."""
    import json

    rec = json.loads((FIXTURES / "pages" / "pages.json").read_text())[0]
    return {**rec, "image": FIXTURES / rec["image"], "xml": FIXTURES / rec["xml"]}


@pytest.fixture(scope="session")
def fixture_lines() -> list[dict]:
    """12 real handwritten line records (dev `lines.jsonl` format) with `path` (Path of the crop)."""
    import json

    recs = [json.loads(line) for line in (FIXTURES / "lines.jsonl").read_text().splitlines() if line]
    return [{**r, "path": FIXTURES / r["image"]} for r in recs]


# ------------------------------------------------------------------------------------- database
@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """Put an SQLite test database in a file (not in memory) so a worker process can open it."""
    from django.db import connections

    db = connections["default"].settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        test = db.setdefault("TEST", {})
        if not test.get("NAME") or test["NAME"] == ":memory:":
            test["NAME"] = str(tmp_path_factory.mktemp("sqlite") / "test_quire.sqlite3")


def database_url_for_worker() -> str:
    """DATABASE_URL of the database Django is connected to now (the test database after setup)."""
    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    if "postgresql" in s["ENGINE"]:
        user = urllib.parse.quote(s.get("USER") or "", safe="")
        pw = urllib.parse.quote(s.get("PASSWORD") or "", safe="")
        cred = f"{user}:{pw}@" if pw else (f"{user}@" if user else "")
        port = f":{s['PORT']}" if s.get("PORT") else ""
        return f"postgres://{cred}{s.get('HOST') or '127.0.0.1'}{port}/{s['NAME']}"
    raise RuntimeError(f"no DATABASE_URL form for engine {s['ENGINE']}")


# ------------------------------------------------------------------------------------- services
@pytest.fixture(scope="session")
def services_state(tmp_path_factory):
    """Redis and S3 for this session: reuses the ones the environment names when they answer
    (as under `make test`), otherwise starts its own and stops them at the end."""
    state_dir = tmp_path_factory.mktemp("services")
    state = services.up(state_dir, postgres=False)
    yield state
    services.down(state_dir)


def _point_celery_at(url: str) -> None:
    """Make this process publish to ``url``: Django settings, env, and every live Celery app."""
    from django.conf import settings

    os.environ["CELERY_BROKER_URL"] = os.environ["CELERY_RESULT_BACKEND"] = url
    if getattr(settings, "CELERY_BROKER_URL", None) == url:
        return
    settings.CELERY_BROKER_URL = url
    settings.CELERY_RESULT_BACKEND = url
    try:
        from celery import _state
    except ImportError:
        return
    for app in list(_state._get_active_apps()):
        app.conf.broker_url = url
        app.conf.result_backend = url
        app.close()  # drops the connection pool built for the old URL
        app._local.__dict__.pop("backend", None)


@pytest.fixture(scope="session")
def redis_url(services_state) -> str:
    """URL of a live Redis (broker and result backend), e.g. ``redis://127.0.0.1:40123/0``."""
    url = services_state["redis"]["url"]
    _point_celery_at(url)
    return url


@pytest.fixture(scope="session")
def s3_env(services_state):
    """Env vars (dict of str) for the live S3 server with a fresh, empty bucket.

    Also makes Django's default storage that bucket for the rest of the session, and puts the
    vars in os.environ (for code and subprocesses that read them). The bucket is emptied and
    removed at the end.
    """
    from django.conf import settings
    from django.test import override_settings

    s3 = services_state["s3"]
    bucket = f"quire-test-{uuid.uuid4().hex[:12]}"
    client = services.s3_client(s3["endpoint"], s3["access_key"], s3["secret_key"], s3["region"])
    client.create_bucket(Bucket=bucket)
    env = {
        "QUIRE_STORAGE": "s3",
        "AWS_S3_ENDPOINT_URL": s3["endpoint"],
        "AWS_STORAGE_BUCKET_NAME": bucket,
        "AWS_ACCESS_KEY_ID": s3["access_key"],
        "AWS_SECRET_ACCESS_KEY": s3["secret_key"],
        "AWS_S3_REGION_NAME": s3["region"],
    }
    default = dict(settings.STORAGES.get("default", {}))
    options = dict(default.get("OPTIONS", {})) if default.get("BACKEND", "").endswith("S3Storage") else {}
    options.update(
        bucket_name=bucket, endpoint_url=s3["endpoint"], region_name=s3["region"],
        access_key=s3["access_key"], secret_key=s3["secret_key"],
        addressing_style="path", signature_version="s3v4",
    )
    options.setdefault("file_overwrite", True)
    options.setdefault("default_acl", None)
    storages = {**settings.STORAGES,
                "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}}
    override = override_settings(
        STORAGES=storages, QUIRE_STORAGE="s3",
        **{k: v for k, v in env.items() if k.startswith("AWS_")},
    )
    override.enable()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    override.disable()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=obj["Key"])
        client.delete_bucket(Bucket=bucket)
    except Exception:  # noqa: BLE001 - the server may already be gone; it is throwaway
        pass


# --------------------------------------------------------------------------------- celery worker
_WORKERS: list["WorkerProcess"] = []


@dataclass
class WorkerProcess:
    """A real `celery worker` subprocess in its own process group.

    Attributes: ``name`` (Celery node name), ``proc`` (subprocess.Popen), ``log_path`` (its
    combined stdout/stderr), ``env`` (the environment it runs with), ``broker`` (URL).
    """

    name: str
    proc: subprocess.Popen
    log_path: Path
    env: dict
    broker: str
    stopped: bool = field(default=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self, tail_lines: int | None = None) -> str:
        """The worker's log (its last ``tail_lines`` lines when given)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-tail_lines:]) if tail_lines else text

    def wait_ready(self, timeout: float = WORKER_READY_TIMEOUT_S) -> None:
        """Block until the worker answers a control ping; RuntimeError (with its log) otherwise."""
        from celery import Celery

        probe = Celery("quire-test-probe", broker=self.broker, set_as_current=False)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not self.alive():
                    raise RuntimeError(f"worker {self.name} exited with {self.proc.returncode}:\n"
                                       f"{self.log_text(80)}")
                try:
                    if probe.control.ping(destination=[self.name], timeout=1.0):
                        return
                except Exception:  # noqa: BLE001 - broker hiccup: try again
                    time.sleep(0.5)
            raise RuntimeError(f"worker {self.name} not ready after {timeout:.0f} s:\n{self.log_text(80)}")
        finally:
            probe.close()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the worker's whole process group (the solo pool has no children)."""
        if self.alive():
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=60)

    def stop(self, timeout: float = 60.0) -> None:
        """Warm shutdown (SIGTERM, waits for the running task), SIGKILL after ``timeout`` s."""
        if self.stopped:
            return
        self.stopped = True
        if not self.alive():
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        except ProcessLookupError:
            pass


def _worker_env(broker: str, s3: dict, database_url: str, extra_path: tuple[str, ...] = ()) -> dict:
    env = dict(os.environ)
    env.update(s3)
    env.update(
        CELERY_BROKER_URL=broker, CELERY_RESULT_BACKEND=broker, DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE=os.environ.get("DJANGO_SETTINGS_MODULE", "quire.settings"),
        PYTHONPATH=os.pathsep.join([*extra_path, str(ROOT / "platform"), str(ROOT)]
                                   + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])),
        DJANGO_CONN_MAX_AGE="0",
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
    )
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    return env


def start_worker(broker: str, s3: dict, database_url: str, log_dir: Path,
                 queues: str = "transcribe,train", extra_args: tuple[str, ...] = (),
                 app: str = "workers.app", extra_path: tuple[str, ...] = ()) -> WorkerProcess:
    """Start `python -m celery -A APP worker -Q QUEUES --pool=solo` and wait for its ping reply.

    ``extra_path``: folders put first on the worker's PYTHONPATH. Raises RuntimeError (with the
    worker's log) when it exits or does not answer within WORKER_READY_TIMEOUT_S.
    """
    name = f"quire-test-{uuid.uuid4().hex[:8]}@localhost"
    log_path = log_dir / f"{name.split('@')[0]}.log"
    env = _worker_env(broker, s3, database_url, extra_path)
    argv = [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queues,
            "--pool=solo", "-c", "1", "-n", name, "--loglevel=INFO",
            "--without-gossip", "--without-mingle", *extra_args]
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    worker = WorkerProcess(name=name, proc=proc, log_path=log_path, env=env, broker=broker)
    _WORKERS.append(worker)
    try:
        worker.wait_ready()
    except BaseException:
        worker.stop(timeout=10)
        raise
    return worker


@pytest.fixture(scope="session")
def celery_worker_launcher():
    """The function behind the worker fixtures, for tests of other Celery apps:
    ``launch(broker, s3_env, database_url, log_dir, queues=..., app=..., extra_path=...)``."""
    return start_worker


@pytest.fixture(scope="session")
def celery_worker(redis_url, s3_env, django_db_setup, django_db_blocker, tmp_path_factory):
    """One real Celery worker process for the session, on the test database, Redis and S3."""
    with django_db_blocker.unblock():
        db_url = database_url_for_worker()
    worker = start_worker(redis_url, s3_env, db_url, tmp_path_factory.mktemp("celery"))
    yield worker
    worker.stop()


@pytest.fixture
def start_celery_worker(redis_url, s3_env, django_db_setup, django_db_blocker, tmp_path_factory):
    """Factory: ``start_celery_worker(queues="transcribe", extra_args=())`` → WorkerProcess.
    Workers it started are stopped (SIGTERM, then SIGKILL) after the test."""
    with django_db_blocker.unblock():
        db_url = database_url_for_worker()
    started: list[WorkerProcess] = []
    log_dir = tmp_path_factory.mktemp("celery")

    def factory(queues: str = "transcribe,train", extra_args: tuple[str, ...] = ()) -> WorkerProcess:
        w = start_worker(redis_url, s3_env, db_url, log_dir, queues, extra_args)
        started.append(w)
        return w

    yield factory
    for w in started:
        w.stop(timeout=30)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the tail of every worker log to the report of a failed test that used a worker."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and {"celery_worker", "start_celery_worker"} & set(getattr(item, "fixturenames", ())):
        for w in _WORKERS:
            rep.sections.append((f"celery worker {w.name} (pid {w.pid}) log, last 200 lines",
                                 w.log_text(200)))
