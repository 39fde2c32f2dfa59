"""Operator endpoints: a health check for load balancers and a staff status page of the queues.

- ``GET /healthz`` (no authentication): the database, the broker (Redis) and the storage (S3) are
  probed in parallel within one deadline of ``HEALTH_TIMEOUT_S`` seconds; 200 when all answer,
  else 503. The body says only ok / error / timeout per check; results are reused for
  ``HEALTH_CACHE_S`` seconds and a hung probe is never started twice.
- ``GET /api/v1/status/`` (staff): transcription and training jobs per state, the age of the
  oldest queued job (seconds), the number of messages waiting in each broker queue, and the Celery
  workers that answered a ping (name → queues), so an operator running many workers sees whether
  the queues drain and who serves them.

Neither imports the workers: the broker is reached through the same publisher-only Celery client
as job dispatch (``quire.jobs.dispatch``).
"""
from __future__ import annotations

import logging
import time
import threading
from contextlib import contextmanager
from concurrent.futures import Future, ThreadPoolExecutor, wait

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection
from django.db.models import Count, Min
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import permissions
from rest_framework.response import Response
from rest_framework.views import APIView

from quire.api.registry_views import IsStaff
from quire.jobs.dispatch import TRANSCRIBE_QUEUE, _client
from quire.jobs.models import JobState, TrainingJob, TranscriptionJob
from quire.registry.dispatch import TRAIN_QUEUE

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_S = 3.0  # one deadline for all checks together
HEALTH_CACHE_S = 2.0
#: kombu's Redis transport keeps messages of priority p > 0 under "<queue>\x06\x16<p>".
_PRIORITY_SUFFIXES = [""] + [f"\x06\x16{p}" for p in range(1, 10)]


def _check_database() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()  # this thread's own connection: not left open between probes

@contextmanager
def _broker_redis():
    """The broker's Redis client (through the publisher-only Celery client of job dispatch),
    connected within HEALTH_TIMEOUT_S; raises when the broker cannot be reached."""
    with _client(settings.CELERY_BROKER_URL).connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=HEALTH_TIMEOUT_S)
        yield conn.default_channel.client


def _check_broker() -> None:
    with _broker_redis() as client:
        client.ping()


def _check_storage() -> None:
    default_storage.exists("healthz/probe")  # a HEAD request on S3; raises when the server is unreachable


CHECKS = {"database": _check_database, "broker": _check_broker, "storage": _check_storage}
_POOL = ThreadPoolExecutor(max_workers=len(CHECKS), thread_name_prefix="quire-health")  # one probe per check at most


_INFLIGHT: dict[str, Future] = {}
_LOCK = threading.Lock()
_LAST: tuple[float, dict] | None = None  # (monotonic time, checks) of the last complete run


def _timed(check) -> float:
    t = time.perf_counter()
    check()
    return round(1000 * (time.perf_counter() - t), 1)


def run_checks(max_age_s: float = 0.0) -> dict[str, dict]:
    """Probe every check in parallel, all within one deadline of ``HEALTH_TIMEOUT_S`` seconds.

    Returns {name: {"status": "ok" | "error" | "timeout", "ms": float (when it answered),
    "error": exception class or reason (when not ok)}}. A check whose previous probe is still
    running (a hung connection) is not started again but reported "timeout", so at most one
    probe per check is ever in flight. A result younger than ``max_age_s`` seconds is reused.
    """
    global _LAST
    with _LOCK:
        if _LAST is not None and time.monotonic() - _LAST[0] < max_age_s:
            return _LAST[1]
        futures, out = {}, {}
        for name, fn in CHECKS.items():
            previous = _INFLIGHT.get(name)
            if previous is not None and not previous.done():
                out[name] = {"status": "timeout", "error": "the previous probe has not answered yet"}
                continue
            futures[name] = _INFLIGHT[name] = _POOL.submit(_timed, fn)
    wait(list(futures.values()), timeout=HEALTH_TIMEOUT_S)
    for name, future in futures.items():
        if not future.done():
            out[name] = {"status": "timeout", "error": f"no answer within {HEALTH_TIMEOUT_S:.0f} s"}
        elif future.exception() is not None:  # any failure of the probed service is the answer, not a 500
            log.warning("health check %s failed: %s", name, future.exception())
            out[name] = {"status": "error", "error": type(future.exception()).__name__}
        else:
            out[name] = {"status": "ok", "ms": future.result()}
    out = {name: out[name] for name in CHECKS}
    with _LOCK:
        _LAST = (time.monotonic(), out)
    return out


@never_cache
@require_safe
def healthz(request):
    """200 ``{"status": "ok", "checks": {name: "ok"}}`` when the database, broker and storage
    answer, else 503 with ``"status": "unavailable"`` and each check's ``ok`` / ``error`` /
    ``timeout`` (no error details: the staff status page has them). Results are reused for
    ``HEALTH_CACHE_S`` seconds, so frequent probes cost the services nothing more."""
    checks = run_checks(max_age_s=HEALTH_CACHE_S)
    ok = all(c["status"] == "ok" for c in checks.values())
    return JsonResponse({"status": "ok" if ok else "unavailable",
                         "checks": {name: c["status"] for name, c in checks.items()}}, status=200 if ok else 503)


def queue_lengths() -> dict[str, int | None]:
    """Messages waiting in the broker per queue (Redis transport; None when it cannot be read)."""
    out: dict[str, int | None] = {}
    try:
        with _broker_redis() as client:
            for queue in (TRANSCRIBE_QUEUE, TRAIN_QUEUE):
                out[queue] = sum(int(client.llen(queue + s)) for s in _PRIORITY_SUFFIXES)
    except Exception as exc:
        log.warning("queue lengths unavailable: %s", exc)
        out = {TRANSCRIBE_QUEUE: None, TRAIN_QUEUE: None}
    return out


def live_workers(timeout: float = 1.0) -> dict[str, list[str]] | None:
    """Workers answering a broadcast ping within ``timeout`` seconds: {name: [queues]}; None when
    the broker cannot be reached."""
    try:
        inspect = _client(settings.CELERY_BROKER_URL).control.inspect(timeout=timeout)
        replies = inspect.active_queues() or {}
    except Exception as exc:
        log.warning("worker inspection unavailable: %s", exc)
        return None
    return {name: sorted(q["name"] for q in queues) for name, queues in sorted(replies.items())}


def _jobs(model) -> dict:
    now = timezone.now()
    states = dict(model.objects.values_list("state").annotate(n=Count("id")).order_by())
    oldest = model.objects.filter(state=JobState.QUEUED).aggregate(t=Min("queued_at"))["t"]
    return {"by_state": states, "oldest_queued_s": round((now - oldest).total_seconds(), 1) if oldest else None}


class StatusView(APIView):
    """`GET /api/v1/status/` (staff): jobs per state, oldest queued job, broker queue lengths and
    live workers."""

    permission_classes = [permissions.IsAuthenticated, IsStaff]

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, description=(
        "`transcription_jobs` / `training_jobs`: `by_state` counts and `oldest_queued_s`; `queues`: messages "
        "waiting per broker queue (null when unreadable); `workers`: {name: [queues]} of the workers that "
        "answered a ping within 1 s (null when the broker is down); `checks`: as /healthz."))
    def get(self, request):
        return Response({
            "transcription_jobs": _jobs(TranscriptionJob),
            "training_jobs": _jobs(TrainingJob),
            "queues": queue_lengths(),
            "workers": live_workers(),
            "checks": run_checks(),  # with timings and error classes
        })
