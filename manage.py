#!/usr/bin/env python
"""Django's command-line entry point for Quire.

`platform/` is a source root (never a package: it would shadow the standard-library module
`platform`), so it is put on `sys.path` here before Django loads `quire.settings`.
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def main() -> None:
    """Run a Django management command with `platform/` and the repo root on the path."""
    for path in (ROOT / "platform", ROOT):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quire.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
