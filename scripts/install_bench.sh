#!/usr/bin/env bash
# Install the peer engines of bench/ (Tesseract 5 from Debian, RapidOCR 3.10 + onnxruntime, pytesseract)
# into the project venv. Benchmarks only: the product and the test suite do not need any of this.
#   scripts/install_bench.sh          (run from anywhere; needs root or sudo for apt-get when Tesseract is missing)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"

need=()
command -v tesseract >/dev/null || need+=(tesseract-ocr)
for lang in eng fra; do
  if ! command -v tesseract >/dev/null || ! tesseract --list-langs 2>/dev/null | grep -qx "$lang"; then
    need+=("tesseract-ocr-$lang")
  fi
done
if ((${#need[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "apt-get install ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
tesseract --version 2>&1 | head -1

"$PY" -m pip install -q -r "$ROOT/requirements/bench.txt" 2>&1 | { grep -v "is ignored" || true; }
"$PY" - <<'PY'
import importlib.metadata as md
for p in ("rapidocr", "onnxruntime", "pytesseract"):
    print(p, md.version(p))
PY
