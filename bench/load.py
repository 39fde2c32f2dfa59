"""Load: many concurrent page uploads against gunicorn with two workers; nothing lost, nothing doubled.

    python -m bench.load                          # own stack: one Celery worker, then two
    python -m bench.load --uploads 300 --phases 1,2
    python -m bench.load --url http://127.0.0.1:8000 --token TOKEN    # a running stack (`make run`), one phase

Issue 7 ("Load"): ``--uploads`` (default 300) uploads are sent at once (one thread each, released
together) to ``POST /api/v1/pages/``; the script then polls the job lists until every accepted job is
final and checks:

- zero lost: every accepted job (202 with a job) reached a final state (succeeded / failed /
  canceled) within ``--timeout``; uploads not answered 202 are counted apart as refused (the run
  passes only when there are none);
- zero duplicated: job ids and page ids of the answers are all distinct, the user's job list holds
  exactly one job per uploaded page, and no page's stored lines repeat a reading-order index.

Before each phase a few uploads warm the stack up (gunicorn's workers import Django on their first
request, Celery workers load the models on their first job); they are not measured.

Reported: uploads per second (accepted uploads / time from the first request sent to the last
answer), upload latency p50 / p95 / p99 (request sent → answer; gunicorn's queue included), pages
per minute through the Celery workers (jobs a worker ran to an end / (last ``finished_at`` −
first ``started_at``); ``succeeded`` says how many of them succeeded) and end to end (final jobs /
time from the first upload to the last job seen final, 1 s polling), the jobs' attempts, and the
change from one Celery worker to two.

The page is small on purpose, so that the load is about the platform (HTTP, ingest, storage, the
database, the queue, the workers' bookkeeping) rather than the models: a real handwritten line
from the dev set (Copiste d'un jour, CC-BY 4.0, BAnQ) on a 640 × 160 white page, PNG, a few kB;
each upload gets a distinct pixel pattern in one corner so that no two have the same SHA-256 (the
platform recognises identical re-uploads by hash and would otherwise answer with the first job).

Own stack (default): the backing services come from ``scripts/services.py`` with their own state
folder ``var/bench-load/`` (Redis, SeaweedFS S3, a throwaway PostgreSQL where ``initdb`` exists,
else SQLite), migrate, a fresh user with a token, gunicorn with ``--workers 2`` (DEBUG off, HTTPS
redirects off because it serves plain HTTP on 127.0.0.1, the API throttles raised so that they are
not what is measured); then for each entry of ``--phases`` that many Celery worker processes (``-c
1`` each, queue ``transcribe``) are started, the uploads run, the workers are stopped. Everything
this script started is stopped at the end, by PID / process group. Logs: ``var/run/load-*.log``.
Against a running stack (``--url``/``--token``) only one phase runs with whatever workers it has.

Writes ``bench/out/load.json``.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from bench.e2e import multipart, request, rs

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "bench" / "out"
STATE_DIR = ROOT / "var" / "bench-load"
FINAL = {"succeeded", "failed", "canceled"}
LINE_IMAGE = ROOT.parent / "shared" / "data" / "dev" / "lines" / "copiste_dun_jour_fr"


def small_pages(n: int, nonce: int) -> list[bytes]:
    """``n`` distinct small PNG pages (640 × 160, 8-bit gray): one real handwritten dev line pasted on
    white, plus a 32-pixel pattern in the lower right corner encoding (nonce, index)."""
    import numpy as np
    from PIL import Image

    files = sorted(LINE_IMAGE.glob("*.jpg"))
    page = np.full((160, 640), 255, np.uint8)
    if files:
        with Image.open(files[len(files) // 2]) as im:
            line = im.convert("L")
            line.thumbnail((600, 100))
            arr = np.asarray(line)
        page[30:30 + arr.shape[0], 20:20 + arr.shape[1]] = arr
    out = []
    for i in range(n):
        p = page.copy()
        bits = [(nonce >> k) & 1 for k in range(16)] + [(i >> k) & 1 for k in range(16)]
        p[156, 600:632] = [250 if b else 245 for b in bits]
        buf = io.BytesIO()
        Image.fromarray(p).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0–100) by linear interpolation between closest ranks (numpy's default)."""
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")


def list_jobs(base: str, token: str, wanted: set[int] | None = None) -> list[dict]:
    """The user's jobs (``GET /api/v1/jobs/``, newest first, 200 per page). With ``wanted``, paging
    stops once every wanted id was seen (ours are the newest). The list is not filtered by state:
    jobs moving between states while it is paged would shift the pages under a state filter."""
    url = f"{base}/api/v1/jobs/?page_size=200"
    out: list[dict] = []
    seen: set[int] = set()
    while url:
        status, data, _ = request("GET", url, token)
        if status != 200:
            raise RuntimeError(f"GET {url} answered HTTP {status}: {data}")
        out.extend(data["results"])
        seen.update(j["id"] for j in data["results"])
        if wanted is not None and wanted <= seen:
            break
        url = data.get("next")
    return out


def open_jobs(base: str, token: str, ids: set[int]) -> set[int]:
    """Those of ``ids`` that are not final yet (or not listed at all)."""
    states = {j["id"]: j["state"] for j in list_jobs(base, token, ids)}
    return {i for i in ids if states.get(i) not in FINAL}


def _parse_time(s: str | None) -> float | None:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() if s else None


def warm_up(base: str, token: str, timeout: float, n: int = 4) -> None:
    """A few concurrent uploads, followed to their end, before measuring: gunicorn's workers import
    Django on their first request and the Celery workers load the models on their first job."""
    pages = small_pages(n, nonce=secrets.randbelow(1 << 16))

    def send(i: int) -> int:
        body, ctype = multipart([(f"warm-{i}.png", pages[i])])
        status, data, _ = request("POST", f"{base}/api/v1/pages/", token, body, ctype)
        if status != 202:
            raise RuntimeError(f"warm-up upload answered HTTP {status}: {data}")
        return rs.find_jobs(data)[0]["id"]

    with ThreadPoolExecutor(max_workers=n) as ex:
        ids = set(ex.map(send, range(n)))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not open_jobs(base, token, ids):
            return
        time.sleep(0.5)
    raise RuntimeError(f"warm-up jobs not final after {timeout:.0f} s")


def burst(base: str, token: str, pages: list[bytes], timeout: float, check_lines: bool = True) -> dict:
    """Upload ``pages`` all at once, wait until every accepted job is final, check and measure."""
    n = len(pages)
    gate = threading.Barrier(n)
    answers: list[dict] = [{} for _ in range(n)]

    def send(i: int) -> None:
        body, ctype = multipart([(f"load-{i:04d}.png", pages[i])])
        gate.wait()
        t0 = time.monotonic()
        try:
            status, data, _ = rs.http("POST", f"{base}/api/v1/pages/", token, body, ctype, timeout=600)
        except Exception as exc:  # noqa: BLE001 - a reset or timed-out connection is a refused upload
            status, data = None, repr(exc)
        t1 = time.monotonic()
        jobs = rs.find_jobs(data) if status == 202 else []
        answers[i] = {"status": status, "t0": t0, "t1": t1, "jobs": jobs,
                      "error": None if status == 202 else str(data)[:300]}

    with ThreadPoolExecutor(max_workers=n) as ex:
        list(ex.map(send, range(n)))
    first = min(a["t0"] for a in answers)
    last = max(a["t1"] for a in answers)
    accepted = [a for a in answers if a["status"] == 202 and a["jobs"]]
    latencies = [a["t1"] - a["t0"] for a in accepted]
    job_ids = [j["id"] for a in accepted for j in a["jobs"]]
    page_ids = [j["page"] for a in accepted for j in a["jobs"]]
    ours = set(job_ids)
    print(f"  {len(accepted)}/{n} uploads accepted in {last - first:.1f} s; waiting for the jobs", file=sys.stderr)

    deadline = time.monotonic() + timeout
    t_final = None
    while time.monotonic() < deadline:
        open_ids = open_jobs(base, token, ours)
        if not open_ids:
            t_final = time.monotonic()
            break
        print(f"  {len(ours) - len(open_ids)}/{len(ours)} final", file=sys.stderr)
        time.sleep(1.0)

    jobs = list_jobs(base, token, ours)  # an extra job for one of our pages would be newer, so listed too
    mine = [j for j in jobs if j["id"] in ours]
    per_page: dict[int, int] = {}
    for j in jobs:
        if j["page"] in set(page_ids):
            per_page[j["page"]] = per_page.get(j["page"], 0) + 1
    states: dict[str, int] = {}
    for j in mine:
        states[j["state"]] = states.get(j["state"], 0) + 1
    final = [j for j in mine if j["state"] in FINAL]
    lost = len(ours) - len(final)  # accepted, yet never final
    dup_lines = 0
    if check_lines:
        def dup(page_id: int) -> int:
            status, data, _ = request("GET", f"{base}/api/v1/pages/{page_id}/", token)
            idx = [ln["index"] for ln in data.get("lines", [])] if status == 200 else []
            return len(idx) - len(set(idx))
        with ThreadPoolExecutor(max_workers=4) as ex:
            dup_lines = sum(ex.map(dup, sorted(set(page_ids))))
    succeeded = [j for j in mine if j["state"] == "succeeded"]
    ran = [j for j in final if j.get("started_at") and j.get("finished_at")]  # succeeded or failed by a worker
    starts = [_parse_time(j["started_at"]) for j in ran]
    ends = [_parse_time(j["finished_at"]) for j in ran]
    busy = (max(ends) - min(starts)) if ran else None
    attempts: dict[int, int] = {}
    for j in mine:
        attempts[j.get("attempts", 0)] = attempts.get(j.get("attempts", 0), 0) + 1
    errors = {}
    for j in mine:
        if j.get("error"):
            errors[j["error"]["code"]] = errors.get(j["error"]["code"], 0) + 1
    return {
        "uploads": n, "accepted": len(accepted),
        "refused": {str(a["status"]): sum(1 for b in answers if b["status"] == a["status"])
                    for a in answers if a["status"] != 202},
        "refused_examples": [a["error"] for a in answers if a["error"]][:3],
        "upload_seconds": round(last - first, 2),
        "uploads_per_s": round(len(accepted) / (last - first), 1) if last > first else None,
        "latency_s": {"p50": round(percentile(latencies, 50), 3), "p95": round(percentile(latencies, 95), 3),
                      "p99": round(percentile(latencies, 99), 3),
                      "max": round(max(latencies), 3) if latencies else None},
        "states": states, "job_errors": errors, "attempts": {str(k): v for k, v in sorted(attempts.items())},
        "lost": lost, "all_final": t_final is not None and lost == 0,
        "duplicated": {"job_ids": len(job_ids) - len(ours), "page_ids": len(page_ids) - len(set(page_ids)),
                       "jobs_per_page_over_1": sum(1 for v in per_page.values() if v > 1),
                       "line_indexes": dup_lines},
        "succeeded": len(succeeded),
        "pages_per_min_workers": round(60 * len(ran) / busy, 1) if busy else None,
        "pages_per_min_end_to_end": round(60 * len(final) / (t_final - first), 1) if t_final else None,
        "seconds_to_all_final": round(t_final - first, 1) if t_final else None,
    }


class OwnStack:
    """Services + migrate + user + gunicorn (2 workers) started here; Celery workers per phase."""

    def __init__(self, web_workers: int = 2):
        self.stack = rs.Stack()
        self.services = rs.services
        self.web_workers = web_workers
        self.workers: list[subprocess.Popen] = []
        self.services_owned = False

    def start(self) -> tuple[str, str]:
        """Bring everything but the Celery workers up; returns (base URL, token)."""
        already = self.services.alive(self.services.load_state(STATE_DIR))
        state = self.services.up(STATE_DIR)
        self.services_owned = not already
        env = dict(os.environ, **self.services.env_vars(state))
        if not state.get("postgres"):
            env.pop("DATABASE_URL", None)
            env["DATABASE_URL"] = f"sqlite:///{STATE_DIR / 'db.sqlite3'}"
        env.update(DJANGO_SETTINGS_MODULE="quire.settings", DJANGO_DEBUG="0",
                   DJANGO_SECRET_KEY=secrets.token_urlsafe(50), DJANGO_ALLOWED_HOSTS="localhost,127.0.0.1",
                   DJANGO_SECURE_SSL_REDIRECT="0", DJANGO_SECURE_COOKIES="0", DJANGO_SECURE_HSTS_SECONDS="0",
                   QUIRE_THROTTLE_USER="100000/min", QUIRE_THROTTLE_UPLOADS="100000/min",
                   PYTHONPATH=os.pathsep.join([str(ROOT / "platform"), str(ROOT)]), PYTHONUNBUFFERED="1")
        self.env = env
        rs.manage(env, "migrate", "--noinput")
        _, _, token = rs.create_demo_user(env)
        port = rs.services.free_port()
        web = self.stack.spawn("load-web", [str(rs.VENV_BIN / "gunicorn"), "quire.wsgi:application",
                                            "--bind", f"127.0.0.1:{port}", "--workers", str(self.web_workers),
                                            "--timeout", "120", "--backlog", "2048"], env)
        base = f"http://127.0.0.1:{port}"
        rs.wait_http(f"{base}/api/schema/", web)
        return base, token

    def start_workers(self, n: int) -> None:
        for i in range(n):
            name = f"quire-load-{i + 1}-{uuid.uuid4().hex[:6]}@localhost"
            proc = self.stack.spawn(f"load-worker{i + 1}", [rs.PY, "-m", "celery", "-A", "workers.app", "worker",
                                                            "-Q", "transcribe", "-c", "1", "-n", name,
                                                            "--loglevel", "INFO"], self.env)
            self.workers.append(proc)
            rs.wait_worker(self.env["CELERY_BROKER_URL"], name, proc)

    def stop_workers(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
        self.stack.procs = [(n, p) for n, p in self.stack.procs if p not in self.workers]
        self.workers.clear()

    def stop(self) -> None:
        self.stop_workers()
        self.stack.stop()
        if self.services_owned:
            self.services.down(STATE_DIR)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--uploads", type=int, default=300, help="concurrent uploads per phase (default 300)")
    ap.add_argument("--phases", default="1,2", help="Celery worker processes per phase (own stack; default 1,2)")
    ap.add_argument("--url", default=None, help="a running stack instead of our own")
    ap.add_argument("--token", default=os.environ.get("QUIRE_TOKEN"))
    ap.add_argument("--timeout", type=float, default=1800, help="seconds for all jobs of a phase to end")
    ap.add_argument("--no-check-lines", action="store_true", help="skip reading every page's lines back")
    ap.add_argument("--out", default=str(OUT_DIR / "load.json"))
    args = ap.parse_args(argv)
    phases = [int(x) for x in args.phases.split(",") if x.strip()]
    results: dict = {"meta": {"uploads": args.uploads, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              "cpu_count": os.cpu_count(), "page": "640x160 PNG, one real handwritten line",
                              "gunicorn_workers": 2}, "phases": {}}
    own = None
    try:
        if args.url:
            if not args.token:
                raise SystemExit("--token (or QUIRE_TOKEN) is required with --url")
            base, token = args.url.rstrip("/"), args.token
            phases = [0]
            results["meta"]["stack"] = base
        else:
            own = OwnStack()
            base, token = own.start()
            results["meta"]["stack"] = f"own ({base}, state {STATE_DIR})"
        for k, n_workers in enumerate(phases):
            if own:
                own.start_workers(n_workers)
            label = f"{n_workers}_worker{'s' if n_workers != 1 else ''}" if n_workers else "as_running"
            print(f"phase {label}: {args.uploads} concurrent uploads", file=sys.stderr)
            warm_up(base, token, args.timeout)
            load0 = os.getloadavg()[0]
            pages = small_pages(args.uploads, nonce=(int(time.time()) + k) & 0xFFFF)
            r = burst(base, token, pages, args.timeout, check_lines=not args.no_check_lines)
            r["load_average_start"] = round(load0, 2)
            results["phases"][label] = r
            print(json.dumps(r, indent=1), file=sys.stderr)
            if own:
                own.stop_workers()
    finally:
        if own:
            own.stop()
    ph = results["phases"]
    if "1_worker" in ph and "2_workers" in ph and ph["1_worker"]["pages_per_min_workers"]:
        results["two_vs_one_worker"] = round(
            (ph["2_workers"]["pages_per_min_workers"] or 0) / ph["1_worker"]["pages_per_min_workers"], 2)
    print("| phase | accepted | lost | duplicated | uploads/s | latency p50 / p95 / p99 (s) | "
          "pages/min (workers) | pages/min (end to end) |")
    print("|---|---|---|---|---|---|---|---|")
    for label, r in ph.items():
        d = sum(r["duplicated"].values())
        lat = r["latency_s"]
        print(f"| {label} | {r['accepted']}/{r['uploads']} | {r['lost']} | {d} | {r['uploads_per_s']} | "
              f"{lat['p50']} / {lat['p95']} / {lat['p99']} | {r['pages_per_min_workers']} | "
              f"{r['pages_per_min_end_to_end']} |")
    if "two_vs_one_worker" in results:
        print(f"\ntwo workers vs one: × {results['two_vs_one_worker']} pages/min")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"\nwrote {out}", file=sys.stderr)
    ok = all(r["lost"] == 0 and r["accepted"] == r["uploads"] and not sum(r["duplicated"].values())
             for r in ph.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
