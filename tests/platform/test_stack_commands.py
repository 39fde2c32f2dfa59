"""`make run` (scripts/run_stack.py) and docker compose's web command: Ctrl-C reaches the script
even when it was started in the background, and gunicorn serves with threads (a waiting
`POST /api/v1/transcribe/` holds one thread, not a whole process)."""
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

# Started as a background job is: SIGINT ignored. `services.alive` (the script's first step) then
# sends SIGINT to itself; `services.up` must never run (it would start real services).
PROBE = """
import importlib.util, os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
spec = importlib.util.spec_from_file_location("run_stack", "scripts/run_stack.py")
run_stack = importlib.util.module_from_spec(spec); spec.loader.exec_module(run_stack)
def alive(_state):
    os.kill(os.getpid(), signal.SIGINT); time.sleep(2); return True
def up():
    sys.exit(3)
run_stack.services.alive, run_stack.services.up = alive, up
run_stack.services.load_state = lambda: {}
sys.exit(run_stack.main(["--no-serve"]))
"""


def test_run_stack_stops_on_sigint_even_when_started_in_the_background():
    run = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "stopping" in run.stdout + run.stderr


def _threads(cmd: list[str]) -> bool:
    return (cmd[cmd.index("--worker-class") + 1] == "gthread"
            and not cmd[cmd.index("--threads") + 1].startswith(("0", "1")))


def test_gunicorn_serves_with_threads_in_compose_and_make_run():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert _threads(compose["services"]["web"]["command"])
    source = (ROOT / "scripts" / "run_stack.py").read_text()
    assert '"--worker-class", "gthread", "--threads", "4"' in source


def test_run_stack_prints_the_models_used():
    assert '"models_used")' in (ROOT / "scripts" / "run_stack.py").read_text()
