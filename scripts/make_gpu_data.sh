#!/usr/bin/env bash
# Packs the training data a lent GPU machine needs into .gpu_data/ (git-ignored; what the GPU run reads
# is about 63 MiB, under the device tool's 64 MiB limit, scripts/gpu_train.sh names the folders): recognizer line packs (train, dev, and the page pipeline's crops of
# the train and dev pages) at 48 px, a font subset, a text subset and the detector's page pack. Reads
# ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data}
mkdir -p .gpu_data
[ -f .gpu_data/rec_train/index.jsonl ] || $PY -m ml.recognizer.pack --jsonl "$DATA/train/lines.jsonl" --out .gpu_data/rec_train
[ -f .gpu_data/rec_dev/index.jsonl ] || $PY -m ml.recognizer.pack --jsonl "$DATA/dev/lines.jsonl" --out .gpu_data/rec_dev
# the same lines cut along the band around their baselines (CPU runs; the GPU carry leaves them out,
# docs/TRAINING.md "Lines cut along their baseline band")
[ -f .gpu_data/rec_train_band/index.jsonl ] || $PY -m ml.recognizer.pack --jsonl "$DATA/train/lines.jsonl" \
    --out .gpu_data/rec_train_band --crop band
[ -f .gpu_data/rec_dev_band/index.jsonl ] || $PY -m ml.recognizer.pack --jsonl "$DATA/dev/lines.jsonl" \
    --out .gpu_data/rec_dev_band --crop band
# the page pipeline's own crops of the train and dev pages (the shipped detector's lines matched to the
# ground truth, docs/TRAINING.md "Trained on the pipeline's crops")
[ -f .gpu_data/rec_train_pagecrops/index.jsonl ] || $PY -m ml.recognizer.pagecrops \
    --pages "$DATA/train/pages/pages.jsonl" --out .gpu_data/rec_train_pagecrops
[ -f .gpu_data/rec_dev_pagecrops/index.jsonl ] || $PY -m ml.recognizer.pagecrops \
    --pages "$DATA/dev/pages/pages.json" --out .gpu_data/rec_dev_pagecrops --source-suffix @pages
# the same detected lines cut along the band around their baselines (the pipeline's second cut; CPU runs)
[ -f .gpu_data/rec_train_pagecrops_band/index.jsonl ] || $PY -m ml.recognizer.pagecrops \
    --pages "$DATA/train/pages/pages.jsonl" --out .gpu_data/rec_train_pagecrops_band --cut band
[ -f .gpu_data/rec_dev_pagecrops_band/index.jsonl ] || $PY -m ml.recognizer.pagecrops \
    --pages "$DATA/dev/pages/pages.json" --out .gpu_data/rec_dev_pagecrops_band --cut band --source-suffix @pages
# fonts: the first file of every family under 200 KB (the regular weight), with licences and the manifest
$PY - "$DATA/fonts" .gpu_data/fonts <<'PY'
import json, shutil, sys
from pathlib import Path
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
manifest = json.loads((src / "manifest.json").read_text())
# the largest files (several hundred KB of CJK or extended glyphs) are left out to fit the size limit
manifest = [f for f in manifest if (src / f["family"] / f["files"][0]).stat().st_size < 200_000]
for fam in manifest:
    fam["files"] = fam["files"][:1]
    (dst / fam["family"]).mkdir(parents=True, exist_ok=True)
    for f in fam["files"] + ["LICENSE.txt"]:
        if (src / fam["family"] / f).exists():
            shutil.copy2(src / fam["family"] / f, dst / fam["family"] / f)
(dst / "manifest.json").write_text(json.dumps(manifest, indent=1))
PY
mkdir -p .gpu_data/text
$PY -c "
import random, sys
rows = open('$DATA/text/austen_lines.txt', encoding='utf-8').read().splitlines()
random.Random(0).shuffle(rows)
open('.gpu_data/text/austen_lines.txt', 'w', encoding='utf-8').write('\n'.join(rows[:25000]) + '\n')
"
[ -f .gpu_data/detector/meta.json ] || $PY -m ml.detect.pack --out .gpu_data/detector
# wheels the GPU image lacks (Python 3.12 there), installed by scripts/gpu_train.sh
mkdir -p .whl
ls .whl/rapidfuzz-*.whl >/dev/null 2>&1 || $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl rapidfuzz
du -sh .gpu_data/* .whl
