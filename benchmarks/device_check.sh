#!/usr/bin/env bash
# The prepared GPU check for a session that is lent a device machine (one call, ~8 minutes):
# the CUDA self-test, then the issue-7 benchmark figures. Results land in $OUT.
#
# The device image has torch, transformers, accelerate, pillow, click, tqdm, huggingface_hub but
# not diffusers, spandrel, piexif, pillow-heif, platformdirs, torchao: carry them as Python 3.12
# wheels in .whl/ (see /work/.library/device/README.md, "a Python package missing there").
set -uo pipefail
OUT=${OUT:-/tmp/lucidflux-device-check}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONUNBUFFERED=1
bench() { timeout "$1" python3 benchmarks/gpu_benchmark.py --steps 20 --images 2 "${@:2}" 2>&1 | tee -a "$OUT/log.txt"; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
timeout 120 python3 -m lucidflux_cli doctor --json > "$OUT/doctor.json" 2>>"$OUT/log.txt"
bench 150 --sizes 1024 --compile off --json "$OUT/bf16-eager.json"
bench 200 --sizes 1024,2048 --compile on --json "$OUT/bf16-compiled.json"
bench 120 --sizes 1024 --compile on --precision fp8 --json "$OUT/fp8.json"
bench 120 --sizes 1024 --compile off --offload model --json "$OUT/offload-model.json"
