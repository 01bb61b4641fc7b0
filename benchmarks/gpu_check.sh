#!/usr/bin/env bash
# GPU check: training throughput of our engine (bf16 autocast, channels_last, batches gathered and augmented on
# the GPU) against the plain way (torchvision's model, float32, contiguous, DataLoader with per-image PIL
# transforms), both measured in the same run, alternating, on synthetic images:
#   resnet50  224 px, batch 256   ImageNet shape (ResNet Sec. 3.4)
#   resnet56   32 px, batch 128   CIFAR shape (ResNet Sec. 4.2)
#
# Usage:  benchmarks/gpu_check.sh [OUT_DIR]     (default bench-results/; one JSON line per model lands there)
#   PYTHON=...            the interpreter with verydeep installed (default .venv/bin/python, else python3)
#   BASELINE_WORKERS=N    DataLoader workers for the plain way (default 0, `verydeep bench`'s own default)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
BASELINE_WORKERS=${BASELINE_WORKERS:-0}
out=${1:-bench-results}
mkdir -p "$out"

if ! "$PYTHON" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "gpu_check: no CUDA device here; nothing to measure" >&2
    exit 2
fi
"$PYTHON" -c "import torch; print(f'{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}')"

bench() {  # NAME IMAGE_SIZE BATCH
    echo "measuring $1 at $2 px, batch $3 ..." >&2
    "$PYTHON" -m verydeep bench --model "$1" --data synthetic --image-size "$2" --batch-size "$3" \
        --device cuda --precision bf16 --baseline --baseline-workers "$BASELINE_WORKERS" --json | tail -n 1 \
        > "$out/$1.json"
}
bench resnet50 224 256
bench resnet56 32 128

"$PYTHON" - "$out/resnet50.json" "$out/resnet56.json" <<'PY'
import json
import sys

rows = [json.loads(open(path).read()) for path in sys.argv[1:]]
print(f"{'model':<9} {'px':>4} {'batch':>5} {'ours img/s':>11} {'plain img/s':>12} {'speedup':>8} {'GFLOP/s':>8} {'of peak':>8}")
for r in rows:
    print(
        f"{r['model']:<9} {r['image_size']:>4} {r['batch_size']:>5} {r['images_per_second']:>11.0f} "
        f"{r['baseline_images_per_second']:>12.0f} {r['speedup']:>7.2f}x {r['gflops_per_second']:>8.0f} "
        f"{100 * r['fraction_of_peak']:>7.0f}%"
    )
print(f"ours: {rows[0]['precision']} autocast, channels_last; plain: float32, contiguous, "
      f"DataLoader with {rows[0]['baseline_workers']} workers; medians of {rows[0]['rounds']} alternating rounds")
PY
