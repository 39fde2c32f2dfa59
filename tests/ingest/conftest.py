"""Make `platform/` (a source root, never a package) importable for the pure ingest tests,
which run without Django (`pytest tests/ingest -p no:django`), and this folder's generator
module `bad_files` importable under any pytest import mode."""

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE.parents[1] / "platform"), str(_HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)
