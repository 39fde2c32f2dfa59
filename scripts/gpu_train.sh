#!/usr/bin/env bash
# The one command a lent GPU machine runs (see README, "Training on a GPU"): trains the recognizer and
# the detector side by side for BUDGET seconds, then measures GPU inference throughput, and leaves
# weights, model cards and logs in $OUT. Needs .gpu_data/ and .whl/ (scripts/make_gpu_data.sh) carried along:
#   device run: command "OUT=$OUT bash scripts/gpu_train.sh", carry [".gpu_data/rec_train", ".gpu_data/rec_dev", ".gpu_data/rec_train_pagecrops", ".gpu_data/rec_dev_pagecrops", ".gpu_data/fonts", ".gpu_data/text", ".gpu_data/detector", ".whl"], timeout_s 590
set -u
OUT=${OUT:-runs/gpu_out}
BUDGET=${BUDGET:-480}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
REC_WORKERS=${REC_WORKERS:-11}
DET_WORKERS=${DET_WORKERS:-4}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" runs
# The GPU image lacks some of our pure-Python-adjacent packages (rapidfuzz): scripts/make_gpu_data.sh
# downloads their cp312 wheels into .whl/, which must be carried along with .gpu_data.
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
$PY -c "import rapidfuzz, cv2, PIL" || { echo "missing packages on the GPU machine: carry .whl (see scripts/make_gpu_data.sh)"; exit 2; }
LOG="$OUT/gpu_run.log"
{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc
  $PY -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
} >> "$LOG" 2>&1
$PY -m ml.detect.train --data .gpu_data/detector --out runs/det_gpu --device "$DEVICE" \
    --time-budget $((BUDGET - 10)) --workers "$DET_WORKERS" > runs/det_gpu.log 2>&1 &
DET=$!
$PY -m ml.recognizer.train --config ml/configs/recognizer_gpu.json --out runs/rec_gpu --device "$DEVICE" --workers "$REC_WORKERS" \
    --time-budget "$BUDGET" --version "$(date -u +%Y%m%d)-gpu" > runs/rec_gpu.log 2>&1
echo "recognizer exit $?" >> "$LOG"
wait $DET; echo "detector exit $?" >> "$LOG"
$PY -m bench.gpu_throughput --recognizer runs/rec_gpu/recognizer.pt --detector runs/det_gpu/detector.pt \
    --dev-pack .gpu_data/rec_dev --device "$DEVICE" >> "$LOG" 2>&1
for f in runs/rec_gpu/recognizer.pt runs/rec_gpu/recognizer.md runs/det_gpu/detector.pt runs/det_gpu/detector.md; do
  [ -f "$f" ] && cp "$f" "$OUT/"
done
cp runs/rec_gpu/train_log.jsonl "$OUT/rec_train_log.jsonl" 2>/dev/null
cp runs/det_gpu/detector_log.jsonl "$OUT/det_train_log.jsonl" 2>/dev/null
{ echo "== recognizer"; tail -n 40 runs/rec_gpu.log; echo "== detector"; tail -n 40 runs/det_gpu.log; } >> "$LOG"
cat "$LOG"
