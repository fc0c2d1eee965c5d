#!/usr/bin/env bash
# The prepared GPU check for a session that is lent a device machine: one call of at most
# about 7 minutes, which leaves the device budget (15 min) room for a shorter rerun.
#   1. the CUDA self-test of `lucidflux doctor`;
#   2. the issue-7 suite in one process (benchmarks/gpu_benchmark.py): the reference's loop
#      against ours on the same random weights (time, velocity and final-latent agreement;
#      ours eager), compiled bf16 at 1024 (cold compile cache), fp8 (with its velocity drift from
#      bf16) and fp8 + `--offload model` under a 16 GiB cap;
#   3. a second process on the same compile cache (what a cron job's next run pays: the
#      first-image latency of compiled:1024), then `--offload model` in bf16 (uncapped: its
#      denoise stage alone holds 25.1 GiB of weights, docs/performance.md), 2048 in one tile
#      (--tile-size 2048), 2048 and 4096 in the tiles --tile-size auto picks, as far as its time
#      budget goes.
# Each case is on disk in $OUT/*.jsonl the moment it is measured, so a timeout loses only the
# case in flight. First, here: `bash benchmarks/device_prepare.sh <LucidFlux checkout>`, then
#   run(command="bash benchmarks/device_check.sh", carry=[".whl", ".ref"], timeout_s=450)
set -uo pipefail
OUT=${OUT:-/tmp/lucidflux-device-check}
mkdir -p "$OUT"
if [ -z "${REHEARSAL:-}" ] && compgen -G ".whl/*.whl" >/dev/null; then  # (a rehearsal uses this venv)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONUNBUFFERED=1
CACHE=/tmp/lucidflux-cache
REFERENCE=()
[ -f .ref/LucidFlux/inference.py ] && REFERENCE=(--reference .ref/LucidFlux)
# A rehearsal on a CPU machine: REHEARSAL="--tiny --compile-backend eager --steps 2" bash benchmarks/device_check.sh
read -r -a EXTRA <<< "${REHEARSAL:-}"
BENCH=(python3 benchmarks/gpu_benchmark.py --steps 20 --images 1 --cache-dir "$CACHE" "${EXTRA[@]}")

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
timeout 60 python3 -m lucidflux_cli doctor --json > "$OUT/doctor.json" 2>>"$OUT/log.txt"
echo "doctor: exit $?"
timeout 240 "${BENCH[@]}" "${REFERENCE[@]}" --budget-s 150 --jsonl "$OUT/suite.jsonl" --markdown "$OUT/suite.md" \
  --cases reference:1024,compiled:1024,fp8:1024,fp8-offload:1024@16 2>>"$OUT/log.txt"
echo "suite: exit $?"
timeout 150 "${BENCH[@]}" --budget-s 100 --jsonl "$OUT/warm.jsonl" --markdown "$OUT/warm.md" \
  --cases compiled:1024,offload:1024,compiled:2048,tiled:2048,tiled:4096 2>>"$OUT/log.txt"
echo "warm cache, offload, 2048 and tiled: exit $?"
tail -n 30 "$OUT/log.txt"
