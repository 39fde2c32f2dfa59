"""Make `platform/` (a source root, never a package) importable for the pure ingest tests,
which run without Django: `pytest tests/ingest -p no:django`."""

import sys
from pathlib import Path

_PLATFORM = str(Path(__file__).resolve().parents[2] / "platform")
if _PLATFORM not in sys.path:
    sys.path.insert(0, _PLATFORM)
