"""Production settings: `check --deploy` clean with the full production environment (S3,
PostgreSQL, behind a TLS proxy), secrets read from the environment and nowhere written in the
code, no debug pages. (tests/platform/test_settings.py covers the bare deploy check, the required
secret key and DEBUG off by default.)"""
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DJANGO_DEBUG": "0", "DJANGO_ALLOWED_HOSTS": "quire.example.org", "DJANGO_BEHIND_TLS_PROXY": "1",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://quire.example.org",
    "DATABASE_URL": "postgres://quire:db-pw-from-env@db.internal:5432/quire",
    "QUIRE_STORAGE": "s3", "AWS_S3_ENDPOINT_URL": "https://s3.internal", "AWS_STORAGE_BUCKET_NAME": "quire",
    "AWS_ACCESS_KEY_ID": "key-id-from-env", "AWS_SECRET_ACCESS_KEY": "s3-secret-from-env",
    "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
}
SHOW = """
import json
from django.conf import settings as s
o = s.STORAGES["default"].get("OPTIONS", {})
print(json.dumps({"debug": s.DEBUG, "secret": s.SECRET_KEY, "db_password": s.DATABASES["default"]["PASSWORD"],
  "s3_secret": o.get("secret_key"), "s3_key": o.get("access_key"), "ssl_redirect": s.SECURE_SSL_REDIRECT,
  "secure_cookies": [s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE], "hsts": s.SECURE_HSTS_SECONDS,
  "proxy_header": s.SECURE_PROXY_SSL_HEADER, "frames": s.X_FRAME_OPTIONS,
  "proxies": [s.QUIRE_TRUSTED_PROXY_COUNT, s.REST_FRAMEWORK["NUM_PROXIES"]]}))
"""


def _manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("DJANGO_", "PYTEST", "QUIRE_", "AWS_", "DATABASE_URL", "CELERY_"))}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def secret_key() -> str:
    return secrets.token_urlsafe(60)


def test_deploy_check_is_clean_with_the_full_production_environment(secret_key):
    run = _manage("check", "--deploy", "--fail-level", "WARNING", env={**PRODUCTION, "DJANGO_SECRET_KEY": secret_key})
    assert run.returncode == 0 and "no issues" in run.stdout, run.stdout + run.stderr


def test_secrets_come_from_the_environment(secret_key):
    run = _manage("shell", "-c", SHOW, env={**PRODUCTION, "DJANGO_SECRET_KEY": secret_key})
    assert run.returncode == 0, run.stderr
    shown = json.loads(run.stdout.strip().splitlines()[-1])
    assert shown["secret"] == secret_key and shown["debug"] is False
    assert (shown["db_password"], shown["s3_key"], shown["s3_secret"]) == (
        "db-pw-from-env", "key-id-from-env", "s3-secret-from-env")
    assert shown["ssl_redirect"] and shown["secure_cookies"] == [True, True] and shown["hsts"] >= 31_536_000
    assert shown["proxy_header"] == ["HTTP_X_FORWARDED_PROTO", "https"] and shown["frames"] == "DENY"
    assert shown["proxies"] == [1, 1]  # behind the TLS proxy: one trusted proxy by default


def test_trusted_proxy_count_comes_from_the_environment(secret_key):
    env = {**PRODUCTION, "DJANGO_SECRET_KEY": secret_key}
    run = _manage("shell", "-c", SHOW, env={**env, "QUIRE_TRUSTED_PROXY_COUNT": "2"})
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1])["proxies"] == [2, 2]
    direct = _manage("shell", "-c", SHOW, env={**env, "DJANGO_BEHIND_TLS_PROXY": "0"})
    assert direct.returncode == 0, direct.stderr
    assert json.loads(direct.stdout.strip().splitlines()[-1])["proxies"] == [0, 0]  # no proxy: REMOTE_ADDR
    bad = _manage("check", env={**env, "QUIRE_TRUSTED_PROXY_COUNT": "-1"})
    assert bad.returncode != 0 and "QUIRE_TRUSTED_PROXY_COUNT must be 0 or more" in bad.stderr


@pytest.mark.parametrize("name,bad,good,message", [
    ("QUIRE_DECODING", "beam", "greedy", "QUIRE_DECODING must be 'lm' or 'greedy'"),
    ("QUIRE_PRINTED_LINES", "skip", "drop", "QUIRE_PRINTED_LINES must be 'keep' or 'drop'"),
    ("QUIRE_LINE_CUTS", "band", "polygon", "QUIRE_LINE_CUTS must be 'both' or 'polygon'"),
])
def test_choice_settings_are_checked(secret_key, name, bad, good, message):
    env = {**PRODUCTION, "DJANGO_SECRET_KEY": secret_key}
    refused = _manage("check", env={**env, name: bad})
    assert refused.returncode != 0 and message in refused.stderr
    accepted = _manage("shell", "-c", f"from django.conf import settings; print(settings.{name})",
                       env={**env, name: good})
    assert accepted.returncode == 0 and accepted.stdout.strip().splitlines()[-1] == good, accepted.stderr


def test_no_secret_is_written_in_the_code():
    """No literal password, secret or access key in platform/ or workers/ (the one dev key in
    settings.py is used only with DJANGO_DEBUG=1 or under pytest: test_settings.py checks that)."""
    assignment = re.compile(r"""(SECRET|PASSWORD|PASSWD|ACCESS_KEY|API_KEY|TOKEN)\w*["']?\s*[:=]\s*["'][^"']{6,}["']""",
                            re.I)
    found = []
    for path in [*ROOT.glob("platform/quire/**/*.py"), *ROOT.glob("workers/**/*.py")]:
        if "migrations" in path.parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if assignment.search(line) and "dev-only-insecure-key" not in line:
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []


def test_error_pages_show_no_debug_information(db, settings):
    settings.DEBUG = False
    response = Client().get("/no/such/page/")
    assert response.status_code == 404
    assert b"URLconf" not in response.content and b"Traceback" not in response.content
    api = Client().get("/api/v1/no-such-endpoint/")
    assert api.status_code == 404 and b"quire.urls" not in api.content
