#!/usr/bin/env python3
"""`make run`: bring up a whole Quire stack, transcribe the bundled real page, keep serving.

Steps: services (Redis, SeaweedFS S3, PostgreSQL or SQLite; scripts/services.py) → migrate →
collectstatic → demo user with an API token → gunicorn on 127.0.0.1:PORT (8000 when free) → one
Celery worker on the `transcribe` and `train` queues (with the periodic sweep, `-B`) → upload
tests/fixtures/pages/…jpg through `POST /api/v1/pages/` → poll the job to a final state → print
the transcription, the job's timings and the web URL → serve until Ctrl-C, then stop everything
this script started (by PID / process group) and the services it brought up.

Options: ``--port N``, ``--no-serve`` (stop after printing the result; used by checks),
``--page PATH`` (another image to submit). Logs: var/run/*.log.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import mimetypes
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PY = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
RUN_DIR = ROOT / "var" / "run"
DEFAULT_PAGE = ROOT / "tests" / "fixtures" / "pages" / "copiste_dun_jour_fr" / "alto_wikitexte_0024_2.jpg"
FINAL_STATES = {"succeeded", "failed", "canceled"}
JOB_TIMEOUT_S = 900


def _services():
    spec = importlib.util.spec_from_file_location("quire_services", ROOT / "scripts" / "services.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


services = _services()


def say(msg: str) -> None:
    print(f"[run] {msg}", flush=True)


class Stack:
    """The processes this script started; ``stop()`` ends them by PID / process group."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.services_up = False

    def spawn(self, name: str, argv: list[str], env: dict) -> subprocess.Popen:
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        log = open(RUN_DIR / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append((name, proc))
        say(f"{name}: PID {proc.pid}, log {RUN_DIR / (name + '.log')}")
        return proc

    def stop(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                say(f"stopping {name} (PID {proc.pid})")
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
                except ProcessLookupError:
                    pass
        self.procs.clear()
        if self.services_up:
            services.down()
            self.services_up = False


def manage(env: dict, *args: str, capture: bool = False) -> str:
    """Run `manage.py ARGS` with ``env``; raise SystemExit with its output on failure."""
    res = subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}")
    return res.stdout


DEMO_USER_CODE = """
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
User = get_user_model()
user, created = User.objects.get_or_create(username="demo", defaults={"email": "demo@example.org"})
user.set_password(PASSWORD)
user.save()
token, _ = Token.objects.get_or_create(user=user)
print("TOKEN=" + token.key)
"""


def create_demo_user(env: dict) -> tuple[str, str, str]:
    """Create/refresh user `demo` with a fresh random password; return (user, password, token)."""
    password = secrets.token_urlsafe(12)
    out = manage(env, "shell", "-c", f"PASSWORD = {password!r}\n" + DEMO_USER_CODE)
    token = next(line.split("=", 1)[1] for line in out.splitlines() if line.startswith("TOKEN="))
    return "demo", password, token


def http(method: str, url: str, token: str, body: bytes | None = None,
         content_type: str | None = None, timeout: float = 120) -> tuple[int, dict | str, dict]:
    """One HTTP request with token auth; returns (status, JSON or text, headers)."""
    req = urllib.request.Request(url, data=body, method=method)
    req.add_header("Authorization", f"Token {token}")
    req.add_header("Accept", "application/json")
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw, headers = r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        status, raw, headers = e.code, e.read(), dict(e.headers)
    text = raw.decode("utf-8", errors="replace")
    try:
        return status, json.loads(text), headers
    except ValueError:
        return status, text, headers


def multipart(field: str, path: Path) -> tuple[bytes, str]:
    """A multipart/form-data body with one file under ``field``; returns (body, content type)."""
    boundary = uuid.uuid4().hex
    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
            f"filename=\"{path.name}\"\r\nContent-Type: {ctype}\r\n\r\n").encode()
    body += path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def find_jobs(answer) -> list[dict]:
    """The job entries of an upload answer (a list, or a dict holding one)."""
    if isinstance(answer, list):
        return [j for j in answer if isinstance(j, dict)]
    if isinstance(answer, dict):
        for key in ("jobs", "results", "accepted"):
            if isinstance(answer.get(key), list):
                return answer[key]
        if "id" in answer:
            return [answer]
    return []


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"web server exited ({proc.returncode}); see {RUN_DIR / 'web.log'}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers (401/404 are answers)
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    raise SystemExit(f"web server not answering at {url} after {timeout:.0f} s")


def wait_worker(broker: str, name: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    from celery import Celery

    probe = Celery("quire-run-probe", broker=broker, set_as_current=False)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"worker exited ({proc.returncode}); see {RUN_DIR / 'worker.log'}")
            try:
                if probe.control.ping(destination=[name], timeout=1.0):
                    return
            except Exception:  # noqa: BLE001 - not ready yet
                time.sleep(0.5)
        raise SystemExit(f"worker not ready after {timeout:.0f} s; see {RUN_DIR / 'worker.log'}")
    finally:
        probe.close()


def submit_and_follow(base: str, token: str, page: Path) -> dict:
    """Upload ``page``, poll its job to a final state, print text and timings; return the job."""
    for field in ("files", "file"):
        body, ctype = multipart(field, page)
        t0 = time.monotonic()
        status, answer, headers = http("POST", f"{base}/api/v1/pages/", token, body, ctype)
        if status != 400:
            break
    if status != 202:
        raise SystemExit(f"upload answered HTTP {status}: {answer}")
    jobs = find_jobs(answer)
    job_url = headers.get("Location") or (jobs[0].get("url") if jobs else None)
    if not job_url:
        raise SystemExit(f"upload answer names no job: {answer}")
    if job_url.startswith("/"):
        job_url = base + job_url
    say(f"uploaded {page.name} → {job_url}")
    last = None
    while time.monotonic() - t0 < JOB_TIMEOUT_S:
        status, job, _ = http("GET", job_url, token)
        if status != 200:
            raise SystemExit(f"GET {job_url} answered HTTP {status}: {job}")
        if (job.get("state"), job.get("progress")) != last:
            last = (job.get("state"), job.get("progress"))
            say(f"job {job.get('id')}: {job.get('state')} progress {job.get('progress')}")
        if job.get("state") in FINAL_STATES:
            break
        time.sleep(0.5)
    else:
        raise SystemExit(f"job not final after {JOB_TIMEOUT_S} s: {job_url}")
    wall = time.monotonic() - t0
    print("\n=== job ===")
    print(json.dumps({k: job.get(k) for k in ("id", "state", "created_at", "started_at",
                                               "finished_at", "timings", "error", "models_used")
                      if k in job}, indent=2, ensure_ascii=False))
    print(f"upload → {job.get('state')}: {wall:.1f} s wall clock")
    if job.get("state") == "succeeded":
        page_id = job.get("page")
        status, text, _ = http("GET", f"{base}/api/v1/pages/{page_id}/export/?format=txt", token)
        print("\n=== transcription ===")
        print(text if status == 200 else f"(export answered HTTP {status}: {text})")
    return job


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run a local Quire stack and transcribe a real page.")
    ap.add_argument("--port", type=int, default=0, help="web port (default 8000, or a free one)")
    ap.add_argument("--page", type=Path, default=DEFAULT_PAGE)
    ap.add_argument("--no-serve", action="store_true", help="stop after the first transcription")
    args = ap.parse_args(argv)

    stack = Stack()

    def on_signal(signum, _frame):
        raise KeyboardInterrupt

    # Both explicitly: a shell starts a background job (`make run &`) with SIGINT ignored, and
    # Python then keeps it ignored, so Ctrl-C (or `kill -INT`) did nothing.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        already_up = services.alive(services.load_state())
        state = services.up()
        stack.services_up = not already_up  # leave a stack someone else started running
        env = dict(os.environ, **services.env_vars(state))
        if not state.get("postgres"):
            env.pop("DATABASE_URL", None)
            say("no PostgreSQL here: using SQLite (var/db.sqlite3)")
        port = args.port or (8000 if services.port_is_free(8000) else services.free_port())
        env.update(
            DJANGO_SETTINGS_MODULE="quire.settings", DJANGO_DEBUG=env.get("DJANGO_DEBUG", "1"),
            DJANGO_ALLOWED_HOSTS=env.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1"),
            PYTHONPATH=os.pathsep.join([str(ROOT / "platform"), str(ROOT)]), PYTHONUNBUFFERED="1",
        )
        say("migrating")
        manage(env, "migrate", "--noinput")
        manage(env, "register_shipped_models")  # idempotent: the shipped artifacts become production once
        manage(env, "collectstatic", "--noinput")
        user, password, token = create_demo_user(env)
        web = stack.spawn("web", [str(VENV_BIN / "gunicorn"), "quire.wsgi:application",
                                  "--bind", f"127.0.0.1:{port}", "--workers", "2",
                                  # threads: a /transcribe/?wait= call holds its thread while it waits
                                  "--worker-class", "gthread", "--threads", "4",
                                  "--timeout", "120", "--access-logfile", "-"], env)
        worker_name = f"quire-run-{uuid.uuid4().hex[:6]}@localhost"
        worker = stack.spawn("worker", [PY, "-m", "celery", "-A", "workers.app", "worker",
                                        "-Q", "transcribe,train", "-c", "1", "-n", worker_name,
                                        "-B", "-s", str(RUN_DIR / "celerybeat-schedule"),
                                        "--loglevel", "INFO"], env)
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/api/schema/", web)
        say("waiting for the worker to load its models")
        wait_worker(env["CELERY_BROKER_URL"], worker_name, worker)
        job = submit_and_follow(base, token, args.page)
        print("\n=== Quire is running ===")
        print(f"web:      {base}/   (log in as {user} / {password})")
        print(f"API docs: {base}/api/docs/")
        print(f"API:      curl -H 'Authorization: Token {token}' {base}/api/v1/jobs/")
        if args.no_serve:
            return 0 if job.get("state") == "succeeded" else 1
        print("Serving until Ctrl-C.", flush=True)
        while all(p.poll() is None for _, p in stack.procs):
            time.sleep(1)
        dead = [n for n, p in stack.procs if p.poll() is not None]
        say(f"{', '.join(dead)} exited; see {RUN_DIR}; stopping")
        return 1
    except KeyboardInterrupt:
        say("stopping")
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
