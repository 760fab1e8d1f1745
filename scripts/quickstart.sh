#!/usr/bin/env bash
# Installs dependencies, builds loraplan in build/ and answers the first question:
# will a QLoRA fine-tune of Phi-4-mini fit on a 6 GB GPU?
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target loraplan
./build/cli/loraplan estimate --gpu 6GB "$@"
