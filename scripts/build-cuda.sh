#!/usr/bin/env bash
# Builds loraplan with the executor linked against the LibTorch inside a PyTorch installation
# (a pip/conda `torch` wheel, CUDA or CPU), instead of Debian's libtorch-dev.
#
#   scripts/build-cuda.sh [PYTHON] [BUILD_DIR]      defaults: python3, build-cuda
#
# How: PyTorch ships its CMake package files; `torch.utils.cmake_prefix_path` points at them,
# and passing it as CMAKE_PREFIX_PATH makes find_package(Torch) in CMakeLists.txt use that
# LibTorch. A CUDA wheel's Caffe2Config.cmake then looks for the CUDA toolkit (nvcc and the
# CUDA libraries must be installed, e.g. CUDACXX=/usr/local/cuda/bin/nvcc) and sets
# CAFFE2_USE_CUDA, which executor/CMakeLists.txt turns into LORAPLAN_TORCH_CUDA: `loraplan
# --version` then says "CUDA" and run reports carry cuda_compiled. The wheel must use the C++11
# ABI (torch.compiled_with_cxx11_abi(); PyTorch 2.7 and later wheels do), as Debian's ONNX,
# protobuf and GoogleTest that the rest of loraplan links do; the script stops otherwise.
#
# Not run here: this development machine has no GPU and no CUDA PyTorch (only Debian's CPU
# LibTorch 1.13), so this script is untested against a CUDA wheel and LibTorch 2.x. The executor
# itself still trains on the CPU only (`train --device cuda` says so).
set -euo pipefail

python=${1:-python3}
build=${2:-build-cuda}
cd "$(dirname "$0")/.."

prefix=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)')
abi=$("$python" -c 'import torch; print(int(torch.compiled_with_cxx11_abi()))')
cuda=$("$python" -c 'import torch; print(torch.version.cuda or "none")')
echo "PyTorch at $prefix (CUDA $cuda)"
if [ ! -f "$prefix/Torch/TorchConfig.cmake" ]; then
  echo "build-cuda.sh: $prefix/Torch/TorchConfig.cmake not found; this PyTorch ships no CMake files (Debian's python3-torch does not; a pip or conda wheel does)" >&2
  exit 1
fi
if [ "$abi" != 1 ]; then
  echo "build-cuda.sh: this PyTorch uses the pre-C++11 ABI; Debian's libraries need a C++11-ABI build" >&2
  exit 1
fi

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_PREFIX_PATH="$prefix" -DTorch_DIR:PATH="$prefix/Torch"
cmake --build "$build" -j"${JOBS:-$(nproc)}"
"$build/cli/loraplan" --version
