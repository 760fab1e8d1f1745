#!/usr/bin/env bash
# Peak RSS of `loraplan inspect` on a 520 MiB ONNX model with embedded weights must stay under
# 64 MiB: the reader skips the weight bytes (planner commands never load LibTorch, which lives
# in the executor module).
# Usage: onnx_rss_check.sh MAKE_BIG_ONNX LORAPLAN
set -euo pipefail

make_big_onnx=$1
loraplan=$2
limit_kb=65536

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# Peak RSS in kB of the command given as arguments; its stdout goes to $dir/out.txt.
peak_rss_kb() {
  if ! /usr/bin/time -v -o "$dir/time.txt" "$@" > "$dir/out.txt"; then
    echo "FAIL: '$*' exited non-zero" >&2
    exit 1
  fi
  local kb
  kb=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$dir/time.txt")
  if [[ -z "$kb" ]]; then
    echo "FAIL: no 'Maximum resident set size' in the output of /usr/bin/time -v" >&2
    exit 1
  fi
  echo "$kb"
}

"$make_big_onnx" "$dir/big.onnx" 520
size_mb=$(( $(stat -c %s "$dir/big.onnx") / 1000000 ))

peak_kb=$(peak_rss_kb "$loraplan" inspect --model "$dir/big.onnx" --format json)
grep -q '"num_hidden_layers"' "$dir/out.txt" || { echo "FAIL: inspect printed no model" >&2; exit 1; }

echo "peak RSS ${peak_kb} kB reading a ${size_mb} MB ONNX model"
if (( peak_kb >= limit_kb )); then
  echo "FAIL: peak RSS ${peak_kb} kB is not below ${limit_kb} kB" >&2
  exit 1
fi
