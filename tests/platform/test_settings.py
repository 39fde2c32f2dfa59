"""Settings come from the environment; production settings pass `check --deploy`."""
import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("DJANGO_", "PYTEST", "QUIRE_STORAGE", "AWS_"))}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


def test_deploy_check_is_clean_with_production_env(tmp_path):
    run = _manage("check", "--deploy", "--fail-level", "WARNING", DJANGO_DEBUG="0",
                  DJANGO_SECRET_KEY=secrets.token_urlsafe(60), DJANGO_ALLOWED_HOSTS="quire.example.org",
                  DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "no issues" in run.stdout


def test_secret_key_is_required_outside_debug(tmp_path):
    run = _manage("check", DJANGO_DEBUG="0", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert run.returncode != 0 and "DJANGO_SECRET_KEY must be set" in run.stderr


def test_debug_is_off_by_default(tmp_path):
    run = _manage("shell", "-c", "from django.conf import settings; print(settings.DEBUG, settings.SECURE_SSL_REDIRECT)",
                  DJANGO_SECRET_KEY=secrets.token_urlsafe(60), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1].split() == ["False", "True"]


def test_a_request_error_is_logged_once(tmp_path):
    """Django's default "django" console handler (DEBUG) plus the root handler printed every 4xx twice."""
    run = _manage("shell", "-c", "import logging; logging.getLogger('django.request').warning('Bad Request: /probe')",
                  DJANGO_DEBUG="1", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("Bad Request: /probe") == 1, run.stderr
