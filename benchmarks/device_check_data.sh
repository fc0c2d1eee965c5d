#!/usr/bin/env bash
# The second prepared GPU check (issues 13-15), for a session with device time left after
# benchmarks/device_check.sh: about 4 minutes in one call.
#   1. training steps/s and peak memory at 1024 px: full (with and without gradient
#      checkpointing) and LoRA rank 16, random full-size weights (benchmarks/train_benchmark.py);
#   2. quality metrics' images/s at 1024 px on the GPU, random weights where none are cached
#      (benchmarks/metrics_benchmark.py);
#   3. `data degrade --device cuda` pairs/s against the CPU (benchmarks/data_benchmark.py).
# Run: run(command="bash benchmarks/device_check_data.sh", carry=[".whl"], timeout_s=300)
set -uo pipefail
OUT=${OUT:-/tmp/lucidflux-device-check}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
timeout 150 python3 benchmarks/train_benchmark.py --size 1024 --steps 5 > "$OUT/train.jsonl" 2>>"$OUT/log.txt"
echo "train: exit $?"; cat "$OUT/train.jsonl"
timeout 60 python3 benchmarks/metrics_benchmark.py --device cuda --size 1024 --count 8 --batch-size 4 \
  > "$OUT/metrics.md" 2>>"$OUT/log.txt"
echo "metrics: exit $?"; cat "$OUT/metrics.md"
timeout 60 python3 benchmarks/data_benchmark.py --photos 16 --workers 4 --device cuda > "$OUT/data.md" 2>>"$OUT/log.txt"
echo "data: exit $?"; cat "$OUT/data.md"
tail -n 20 "$OUT/log.txt"
