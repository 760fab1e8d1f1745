#!/usr/bin/env bash
# Gathers what scripts/build-cuda.sh needs on a GPU machine that has PyTorch, CMake and CUDA but
# not Debian's development packages and no network: the header-only libraries loraplan builds
# against (nlohmann-json, CLI11), downloaded here from Debian's archive and unpacked into
# .deps/root (ignored by git). Carry .deps to that machine; build-cuda.sh adds .deps/root/usr to
# CMake's search path when it exists and builds without ONNX and without the tests there.
#
#   scripts/device-deps.sh          (here, on the Debian development machine; needs apt-get)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(nlohmann-json3-dev libcli11-dev)
rm -rf .deps
mkdir -p .deps/debs .deps/root
(cd .deps/debs && apt-get download "${packages[@]}")
for deb in .deps/debs/*.deb; do dpkg -x "$deb" .deps/root; done
rm -rf .deps/debs
du -sh .deps | sed 's/\t.*//; s/^/.deps: /'
