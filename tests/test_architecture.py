"""The dependency direction of docs/ARCHITECTURE.md, enforced with import-linter.

`quire` (platform/) imports neither torch, `ml` nor `workers`; `ml` imports neither Django, DRF,
Celery, `quire` nor `workers`. The contracts live in `pyproject.toml` (`[tool.importlinter]`);
the first test runs them on the real code, the second proves that the same contracts do break on
a package that violates them (so the first test can fail).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def run_lint_imports(cwd: Path, pythonpath: list[Path]) -> subprocess.CompletedProcess:
    """Run `lint-imports --no-cache` in ``cwd`` with ``pythonpath``; return the finished process."""
    if not LINT_IMPORTS.exists():
        pytest.fail(f"lint-imports not found beside {sys.executable}: install requirements/dev.txt")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(p) for p in pythonpath))
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300,
    )


def test_contracts_hold_on_the_code():
    res = run_lint_imports(ROOT, [ROOT / "platform", ROOT])
    out = res.stdout + res.stderr
    assert res.returncode == 0, f"import contracts broken:\n{out}"
    assert "2 kept, 0 broken" in out, out


def _write(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_contracts_catch_a_violation(tmp_path: Path):
    """Copy our contracts next to three tiny packages; clean passes, each violation breaks."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    lines = ["[tool.importlinter]",
             f"root_packages = {config['root_packages']!r}".replace("'", '"'),
             f"include_external_packages = {str(config['include_external_packages']).lower()}"]
    for c in config["contracts"]:
        lines.append("\n[[tool.importlinter.contracts]]")
        for key, value in c.items():
            lines.append(f"{key} = " + (repr(value).replace("'", '"')))
    (tmp_path / "pyproject.toml").write_text("\n".join(lines) + "\n")

    _write(tmp_path / "src" / "quire" / "__init__.py", "import json\n")
    _write(tmp_path / "src" / "quire" / "views.py", "import django\n")
    _write(tmp_path / "src" / "ml" / "__init__.py", "import numpy\n")
    _write(tmp_path / "src" / "ml" / "pipeline.py", "import torch\n")
    _write(tmp_path / "src" / "workers" / "__init__.py", "import celery\nimport ml\nimport quire\n")
    clean = run_lint_imports(tmp_path, [tmp_path / "src"])
    assert clean.returncode == 0, clean.stdout + clean.stderr

    # quire -> ml (indirectly, through a module of its own) breaks the first contract.
    _write(tmp_path / "src" / "quire" / "tasks.py", "from quire import helpers\n")
    _write(tmp_path / "src" / "quire" / "helpers.py", "import ml.pipeline\n")
    # ml -> celery breaks the second.
    _write(tmp_path / "src" / "ml" / "queue.py", "from celery import shared_task\n")
    broken = run_lint_imports(tmp_path, [tmp_path / "src"])
    out = broken.stdout + broken.stderr
    assert broken.returncode != 0, out
    assert "0 kept, 2 broken" in out, out
    assert "quire.helpers -> ml.pipeline" in out, out
    assert "ml.queue -> celery" in out, out
