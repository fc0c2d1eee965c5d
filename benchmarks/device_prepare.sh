#!/usr/bin/env bash
# Prepares, on this (CPU) machine, what benchmarks/device_check.sh (and device_check_data.sh)
# need on a lent GPU machine:
#   .whl/  Python 3.12 wheels the device image lacks (it has torch, transformers, accelerate,
#          pillow, click, tqdm, huggingface_hub, opencv, timm, einops; see the device tool's KINDS.md)
#   .ref/LucidFlux/  the public reference code, for the benchmark's reference case
# Both folders are git-ignored; name them in the device call's `carry`: [".whl", ".ref"].
#
#   bash benchmarks/device_prepare.sh [REFERENCE]
# REFERENCE: a checkout of W2GenAI-Lab/LucidFlux, or the bare git directory that the search
# tool's `fetch github:W2GenAI-Lab/LucidFlux` returns. Without it only the wheels are fetched.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any -d .whl \
  diffusers==0.42.1 spandrel==0.4.2 piexif==1.1.3 pillow-heif==1.8.1 platformdirs==4.14.8 torchao==0.18.0 \
  pypng==0.20220715.0 imagecodecs pyiqa==0.1.16 imagehash==4.3.2 pywavelets  # the second check (data/eval/train)
if [ $# -ge 1 ]; then
  rm -rf .ref/LucidFlux && mkdir -p .ref/LucidFlux
  if [ -d "$1/.git" ] || [ -f "$1/inference.py" ]; then
    cp -r "$1"/. .ref/LucidFlux/ && rm -rf .ref/LucidFlux/.git
  else  # a bare git directory (its large files may be absent): the code is all the benchmark needs
    git --git-dir="$1" archive HEAD -- inference.py src | tar -x -C .ref/LucidFlux
  fi
  find .ref/LucidFlux -type f \( -name '*.png' -o -name '*.jpg' -o -name '*.pth' -o -name '*.safetensors' \) -delete
fi
du -sh .whl .ref 2>/dev/null || true
