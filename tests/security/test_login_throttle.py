"""Throttle counts are global: the cache is Redis whenever the stack has one (so every gunicorn
process counts together), and the web sign-in form is throttled per client address and per
username (it had no limit at all: password guessing through /login/ was unlimited)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache
from django.test import Client

from tests.platform.factories import make_user

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def alice(db, settings):
    settings.QUIRE_LOGIN_FAILURES_PER_MIN = 3
    cache.clear()
    yield make_user("alice")
    cache.clear()


def _sign_in(username: str, password: str, address: str = "10.0.0.1"):
    return Client(REMOTE_ADDR=address).post("/login/", {"username": username, "password": password})


def test_sign_in_form_is_throttled_per_client_address(alice):
    statuses = [_sign_in("alice", f"guess-{i}").status_code for i in range(3)]
    assert statuses == [200, 200, 200]  # the form again, with its error
    throttled = _sign_in("alice", "pw-alice-123")  # the right password does not get around it
    assert throttled.status_code == 429 and "Too many failed sign-in attempts" in throttled.content.decode()
    assert _sign_in("someone-else", "x").status_code == 429  # same address, another username
    assert _sign_in("bob", "x", address="10.0.0.2").status_code == 200  # another address, another name


def test_sign_in_form_is_throttled_per_username(alice):
    for i in range(3):
        assert _sign_in("Alice", f"guess-{i}", address=f"10.0.1.{i}").status_code == 200
    assert _sign_in("alice", "pw-alice-123", address="10.0.2.1").status_code == 429


PROXY = "10.0.0.254"  # the TLS proxy: REMOTE_ADDR of every request that passed it


def _via_proxy(username: str, password: str, forwarded_for: str):
    return Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded_for).post(
        "/login/", {"username": username, "password": password})


def test_behind_a_proxy_each_forwarded_client_has_its_own_count(alice, settings):
    settings.QUIRE_TRUSTED_PROXY_COUNT = 1
    for i in range(3):  # another username each time: only the address count reaches the limit
        assert _via_proxy(f"nobody-{i}", "x", "203.0.113.7").status_code == 200
    assert _via_proxy("nobody-9", "x", "203.0.113.7").status_code == 429
    # Another client behind the same proxy is not throttled, and signs in.
    assert _via_proxy("nobody-8", "x", "198.51.100.2").status_code == 200
    assert _via_proxy("alice", "pw-alice-123", "198.51.100.2").status_code == 302
    # The throttled client cannot escape by sending its own X-Forwarded-For: the proxy appends
    # the real address, and only the right-most entry is trusted.
    assert _via_proxy("nobody-7", "x", "198.51.100.99, 203.0.113.7").status_code == 429


def test_without_trusted_proxies_x_forwarded_for_is_ignored(alice, settings):
    settings.QUIRE_TRUSTED_PROXY_COUNT = 0
    for i in range(3):
        assert _via_proxy(f"nobody-{i}", "x", f"203.0.113.{i}").status_code == 200
    assert _via_proxy("nobody-9", "x", "198.51.100.2").status_code == 429  # one address: the proxy's


def test_successful_sign_in_below_the_limit(alice):
    _sign_in("alice", "wrong")
    response = _sign_in("alice", "pw-alice-123")
    assert response.status_code == 302


def _cache_settings(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("DJANGO_", "PYTEST", "QUIRE_", "AWS_", "CELERY_"))}
    run = subprocess.run([sys.executable, "manage.py", "shell", "-c",
                          "from django.conf import settings; c = settings.CACHES['default'];"
                          "print(c['BACKEND'], c.get('LOCATION'))"],
                         cwd=ROOT, env={**clean, "DJANGO_DEBUG": "1", "DATABASE_URL": "sqlite:///:memory:", **env},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip().splitlines()[-1]


def test_cache_is_the_brokers_redis_on_another_db():
    assert _cache_settings(CELERY_BROKER_URL="redis://127.0.0.1:6390/0") == \
        "quire.cache.FailOpenRedisCache redis://127.0.0.1:6390/1"
    assert _cache_settings(CELERY_BROKER_URL="redis://:pw@cache:6379/15") == \
        "quire.cache.FailOpenRedisCache redis://:pw@cache:6379/0"
    assert _cache_settings(CELERY_BROKER_URL="redis://127.0.0.1:6390/0", QUIRE_CACHE_URL="redis://other:1/7") == \
        "quire.cache.FailOpenRedisCache redis://other:1/7"
    assert _cache_settings().startswith("django.core.cache.backends.locmem.LocMemCache")


def test_failed_sign_ins_are_counted_in_redis_for_every_process(alice, settings, redis_url):
    """Counts made by this process are seen by another one (as by another gunicorn worker)."""
    cache_url = redis_url.rsplit("/", 1)[0] + "/1"
    settings.CACHES = {"default": {"BACKEND": "quire.cache.FailOpenRedisCache",
                                   "LOCATION": cache_url, "KEY_PREFIX": "quire"}}
    cache.clear()
    for i in range(3):
        _sign_in("alice", f"guess-{i}", address="10.9.9.9")
    other = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "from django.core.cache import cache; print(cache.get('login-failures:addr:10.9.9.9'))"],
        cwd=ROOT, env={**os.environ, "DJANGO_DEBUG": "1", "QUIRE_CACHE_URL": cache_url},
        capture_output=True, text=True, timeout=120)
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip().splitlines()[-1] == "3"
    assert _sign_in("alice", "pw-alice-123", address="10.9.9.9").status_code == 429
    cache.clear()


def test_an_unreachable_cache_redis_does_not_break_requests(alice, settings):
    """Redis down (here: a port nothing listens on) lifts the throttles instead of a 500."""
    from tests.conftest import services
    from tests.platform.factories import client_for

    settings.CACHES = {"default": {"BACKEND": "quire.cache.FailOpenRedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{services.free_port()}/1"}}
    assert client_for(alice).get("/api/v1/documents/").status_code == 200
    assert _sign_in("alice", "wrong").status_code == 200
    assert _sign_in("alice", "pw-alice-123").status_code == 302
