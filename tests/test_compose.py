"""docker-compose.yml describes the whole production layout the settings need, with no secrets.

Parsed with PyYAML (no Docker needed): every backing service the settings read from the
environment (database, broker, S3) exists with a health check; both Celery queues are served and
the transcription worker reserves a GPU; beat runs the periodic sweep; the app services get every
variable `platform/quire/settings.py` reads for S3; no secret is written in the file.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("web", "worker-transcribe", "worker-train", "beat")
BACKING = {"DATABASE_URL": "postgres", "CELERY_BROKER_URL": "redis",
           "CELERY_RESULT_BACKEND": "redis", "AWS_S3_ENDPOINT_URL": "s3"}
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|ACCESS_KEY", re.I)
REQUIRED_VAR = re.compile(r"^\$\{[A-Z0-9_]+:\?[^}]*\}$")  # ${VAR:?message}: must be set
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(:\?)?[^}]*\}")


def _url(value: str):
    """urlparse after replacing each ${VAR...} by a token (REQVAR_NAME when it is ${VAR:?...})."""
    return urlparse(INTERPOLATION.sub(lambda m: ("REQVAR_" if m.group(2) else "VAR_") + m.group(1), value))


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _command(svc: dict) -> list[str]:
    cmd = svc.get("command", [])
    return cmd.split() if isinstance(cmd, str) else list(cmd)


def _queues(svc: dict) -> set[str]:
    cmd = _command(svc)
    if "worker" not in cmd:
        return set()
    flag = next((cmd[i + 1] for i, a in enumerate(cmd) if a in ("-Q", "--queues")), None)
    return set(flag.split(",")) if flag else {"celery"}


def _env(svc: dict) -> dict[str, str]:
    env = svc.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_every_service_exists_with_a_healthcheck(compose):
    services = compose["services"]
    for name in (*APP_SERVICES, "redis", "postgres", "s3"):
        assert name in services, f"service {name!r} missing"
        hc = services[name].get("healthcheck")
        assert hc and not hc.get("disable") and hc.get("test"), f"{name} has no health check"


def test_app_services_point_at_the_backing_services_and_wait_for_them(compose):
    services = compose["services"]
    for name in APP_SERVICES:
        env = _env(services[name])
        for var, target in BACKING.items():
            assert var in env, f"{name}: {var} not set"
            assert _url(env[var]).hostname == target, f"{name}: {var}={env[var]} is not {target}"
            deps = services[name].get("depends_on", {})
            assert deps.get(target, {}).get("condition") == "service_healthy", \
                f"{name} does not wait for a healthy {target}"
        assert env["QUIRE_STORAGE"] == "s3"
        assert env["DJANGO_DEBUG"] == "0"


def test_app_services_get_every_variable_the_settings_read_for_s3_and_secrets(compose):
    settings_src = (ROOT / "platform" / "quire" / "settings.py").read_text()
    needed = set(re.findall(r"""env_\w+\(\s*["']((?:AWS_|DATABASE_URL|CELERY_BROKER)\w*)["']""",
                            settings_src))
    assert {"AWS_STORAGE_BUCKET_NAME", "AWS_S3_ENDPOINT_URL", "DATABASE_URL"} <= needed, needed
    needed.add("DJANGO_SECRET_KEY")
    for name in APP_SERVICES:
        missing = needed - set(_env(compose["services"][name]))
        assert not missing, f"{name} lacks {sorted(missing)}"


def test_both_queues_are_served_and_transcription_has_a_gpu(compose):
    services = compose["services"]
    assert _queues(services["worker-transcribe"]) == {"transcribe"}
    assert _queues(services["worker-train"]) == {"train"}
    served = set().union(*(_queues(s) for s in services.values()))
    assert {"transcribe", "train"} <= served
    devices = services["worker-transcribe"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    assert _env(services["worker-transcribe"]).get("QUIRE_DEVICE") == "cuda"
    for name in APP_SERVICES:
        cmd = _command(services[name])
        if "celery" in cmd:
            assert cmd[cmd.index("-A") + 1] == "workers.app", f"{name} runs another Celery app"


def test_beat_runs_the_periodic_sweep(compose):
    cmd = _command(compose["services"]["beat"])
    assert cmd[:4] == ["celery", "-A", "workers.app", "beat"]


def test_web_is_gunicorn_on_the_wsgi_app(compose):
    cmd = _command(compose["services"]["web"])
    assert cmd[0] == "gunicorn" and "quire.wsgi:application" in cmd


def _walk(node, path=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")
    else:
        yield path, node


def test_no_literal_secrets(compose):
    for path, value in _walk(compose):
        key = path.rsplit(".", 1)[-1]
        if SECRET_NAME.search(key) and value is not None:
            assert REQUIRED_VAR.match(str(value)), f"{path} holds a literal, not ${{VAR:?...}}: {value!r}"
        if isinstance(value, str) and "://" in value:
            pw = _url(value).password
            if pw:
                assert pw.startswith("REQVAR_"), f"{path}: password in URL is a literal: {value!r}"


def test_the_secret_check_catches_a_literal(compose):
    """The check above can fail: a literal password planted in a copy is caught."""
    import copy

    bad = copy.deepcopy(compose)
    bad["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] = "hunter2"
    with pytest.raises(AssertionError, match="POSTGRES_PASSWORD"):
        test_no_literal_secrets(bad)
    bad = copy.deepcopy(compose)
    bad["services"]["web"]["environment"]["DATABASE_URL"] = "postgres://quire:hunter2@postgres/quire"
    with pytest.raises(AssertionError, match="password in URL"):
        test_no_literal_secrets(bad)
