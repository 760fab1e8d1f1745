#!/usr/bin/env bash
# Checks the CUDA executor on a machine with an NVIDIA GPU and a CUDA PyTorch wheel: builds with
# scripts/build-cuda.sh, trains one configuration with --device cuda, then runs
# scripts/accuracy.py --device cuda, which holds `loraplan estimate --device cuda --gpu <this
# card's memory>` against the caching allocator's allocated peak (total and per phase) and
# reports the reserved peaks beside them. Writes docs/accuracy-cuda.md.
#
#   scripts/gpu-verify.sh [PYTHON] [BUILD_DIR] [COUNT] [RAW]   defaults: python3, build-cuda, 64
#
# RAW: also write every prediction and report.json there (accuracy.py --raw), one JSON line each.
#
# Exits 1 without a GPU (or without a CUDA build), before building anything it does not need.
#
# On a GPU machine without Debian's development packages and without network (the lent device
# image: PyTorch, CMake, ninja and nvcc, nothing to fetch), first run scripts/device-deps.sh on
# the development machine and carry .deps along; build-cuda.sh then builds the CLI and the CUDA
# executor without ONNX and without the tests. A first call of about 10 minutes fits the build,
# the smoke run and a grid of 16: `bash scripts/gpu-verify.sh python3 build-cuda 16`.
set -euo pipefail

python=${1:-python3}
build=${2:-build-cuda}
count=${3:-64}
cd "$(dirname "$0")/.."

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-verify.sh: no NVIDIA GPU here (nvidia-smi is missing or lists no device); the CUDA executor needs one" >&2
  exit 1
fi
if ! "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu-verify.sh: $python has no CUDA PyTorch (torch.cuda.is_available() is false or torch is missing)" >&2
  exit 1
fi

scripts/build-cuda.sh "$python" "$build"
loraplan="$build/cli/loraplan"
if ! "$loraplan" --version | grep -q CUDA; then
  echo "gpu-verify.sh: $loraplan was built without CUDA (see scripts/build-cuda.sh)" >&2
  exit 1
fi

# The card the predictions are for: its profile when loraplan has one (the cuBLAS workspace
# differs between Hopper and older cards), else its memory as nvidia-smi reports it (MiB).
# LORAPLAN_GPU overrides.
mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -n 1 | tr -d ' ')
name=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
case "$(echo "$name" | tr '[:upper:]' '[:lower:]')" in
  *h200*) gpu=h200 ;;
  *h100*pcie*) gpu=h100-pcie ;;
  *h100*) gpu=h100-sxm ;;
  *a100*80gb*) gpu=a100-80gb ;;
  *a100*) gpu=a100-40gb ;;
  *) gpu="${mib}MiB" ;;
esac
gpu=${LORAPLAN_GPU:-$gpu}
echo "GPU: $name, ${mib} MiB; predictions for --gpu $gpu"

# One run first, so that a failure shows its own message rather than inside the grid.
smoke=$(mktemp -d)
trap 'rm -rf "$smoke"' EXIT
"$loraplan" train --model tiny-llama --device cuda --steps 3 --out "$smoke"
"$python" - "$smoke/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
m = r["measured"]
assert r["environment"]["device"] == "cuda", r["environment"]
assert m["peak_bytes"] > 0 and m["reserved_peak_bytes"] >= m["peak_bytes"], m
print(f"smoke run: allocated peak {m['peak_bytes']:,} B, reserved peak {m['reserved_peak_bytes']:,} B, "
      f"{len(m['phases'])} phases")
PY

raw=()
if [ -n "${4:-}" ]; then raw=(--raw "$4"); fi
"$python" scripts/accuracy.py --loraplan "$loraplan" --device cuda --gpu "$gpu" \
  --count "$count" --out docs/accuracy-cuda.md "${raw[@]}"
