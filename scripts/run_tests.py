#!/usr/bin/env python3
"""`make test`: the whole test suite against real services, as CI runs it.

Starts Redis, SeaweedFS and a throwaway PostgreSQL (scripts/services.py, state in
var/test-services so a `make run` stack is not touched), exports their environment, makes sure a
browser for the browser tests is there (Debian's chromium + chromium-driver through apt-get when
running as root; never a downloaded browser), runs pytest with any extra arguments, and stops
what it started. Exit status: pytest's.

    python scripts/run_tests.py [PYTEST ARGS...]
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / "var" / "test-services"


def _services():
    spec = importlib.util.spec_from_file_location("quire_services", ROOT / "scripts" / "services.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def say(msg: str) -> None:
    print(f"[test] {msg}", flush=True)


def ensure_chromium() -> str | None:
    """Path of chromium when it and chromium-driver are installed (installing them via apt-get
    when root); None, with the reason in QUIRE_BROWSER_UNAVAILABLE, when that is impossible."""
    def found() -> str | None:
        path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
        return path if path and shutil.which("chromedriver") else None

    if found():
        return found()
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        os.environ["QUIRE_BROWSER_UNAVAILABLE"] = "chromium is not installed and apt-get needs root"
        return None
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium", "chromium-driver"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    say("installing chromium + chromium-driver with apt-get (browser tests)")
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:  # the package lists may be missing on a fresh machine
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True)
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0 or not found():
        reason = f"apt-get install chromium chromium-driver failed: {res.stderr.strip()[-300:]}"
        os.environ["QUIRE_BROWSER_UNAVAILABLE"] = reason
        say(reason)
        return None
    return found()


def main(args: list[str]) -> int:
    services = _services()
    already_up = services.alive(services.load_state(STATE_DIR))
    state = services.up(STATE_DIR, postgres=True)
    try:
        env = services.env_vars(state)
        if not state.get("postgres"):
            say("no PostgreSQL on this machine: the suite runs on SQLite")
            os.environ.pop("DATABASE_URL", None)
        os.environ.update(env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quire.settings")
        extra = [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []
        os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "platform"), str(ROOT), *extra])
        chromium = ensure_chromium()
        if chromium:
            os.environ["QUIRE_CHROMIUM"] = chromium
        say(f"database: {os.environ.get('DATABASE_URL', 'SQLite')}; broker: {env['CELERY_BROKER_URL']}; "
            f"S3: {env['AWS_S3_ENDPOINT_URL']}; browser: {chromium or os.environ.get('QUIRE_BROWSER_UNAVAILABLE')}")
        python = ROOT / ".venv" / "bin" / "python"
        cmd = [str(python if python.exists() else sys.executable), "-m", "pytest", *args]
        say(" ".join(cmd))
        return subprocess.run(cmd, cwd=ROOT).returncode
    finally:
        if not already_up:
            services.down(STATE_DIR)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
