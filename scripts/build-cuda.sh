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
# On a GPU machine without Debian's packages (the lent device image has PyTorch, CMake, ninja and
# nvcc but no network), run scripts/device-deps.sh here first and carry .deps there.
#
# What the CUDA build measures (`loraplan train --device cuda`): the model's tensors (frozen
# weights quantized on the CPU then moved, adapters, batches) live on GPU 0; offloaded layers'
# weights stay in pinned host memory and are staged with non-blocking copies. Memory comes from
# the CUDA caching allocator's own counters: allocated and reserved bytes, current and peak, with
# the peaks reset at each phase boundary the trainer marks ("embed", "fwd L3", "loss", "bwd L3",
# "optim"), so report.json's phase peak_bytes is the allocated peak within the phase and
# reserved_peak_bytes the reserved one. The CUDA context and cuBLAS/cuDNN memory outside the
# caching allocator are not counted. --budget becomes the caching allocator's memory fraction
# (budget / total GPU memory): reserved bytes past it raise the same out-of-memory report as the
# CPU's tracking allocator. scripts/gpu-verify.sh builds with this script and runs
# scripts/accuracy.py --device cuda.
#
# Not run here: this development machine has no GPU and no CUDA PyTorch (only Debian's CPU
# LibTorch 1.13), so neither this script nor the CUDA path has been run on a GPU or built against
# a CUDA wheel and LibTorch 2.x. The CUDA sources were only checked for syntax, against Debian's
# LibTorch 1.13 headers and the CUDA toolkit's.
set -euo pipefail

python=${1:-python3}
build=${2:-build-cuda}
cd "$(dirname "$0")/.."

prefix=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)')
abi=$("$python" -c 'import torch; print(int(torch.compiled_with_cxx11_abi()))')
cuda=$("$python" -c 'import torch; print(torch.version.cuda or "none")')
torch_dir=$("$python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
echo "PyTorch at $prefix (CUDA $cuda)"
if [ ! -f "$prefix/Torch/TorchConfig.cmake" ]; then
  echo "build-cuda.sh: $prefix/Torch/TorchConfig.cmake not found; this PyTorch ships no CMake files (Debian's python3-torch does not; a pip or conda wheel does)" >&2
  exit 1
fi
if [ "$abi" != 1 ]; then
  echo "build-cuda.sh: this PyTorch uses the pre-C++11 ABI; Debian's libraries need a C++11-ABI build" >&2
  exit 1
fi

# On a machine without Debian's development packages: the header-only libraries that
# scripts/device-deps.sh unpacked into .deps, and neither ONNX nor the test suite.
search="$prefix"
options=()
if [ -d .deps/root/usr ]; then
  search="$prefix;$PWD/.deps/root/usr"
  options+=(-DLORAPLAN_WITH_ONNX=OFF -DLORAPLAN_BUILD_TESTS=OFF -DLORAPLAN_BUILD_BENCH=OFF)
  echo "using .deps (no ONNX reader, no tests)"
fi
# A CUDA wheel's CMake files look for the CUDA toolkit through nvcc.
if [ "$cuda" != none ] && ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
if [ "$cuda" != none ] && command -v nvcc >/dev/null 2>&1; then
  nvcc_path=$(command -v nvcc)
  export CUDACXX="$nvcc_path"
  cuda_root=$(dirname "$(dirname "$nvcc_path")")
  options+=(-DCUDAToolkit_ROOT="$cuda_root" -DLORAPLAN_CUDA_ROOT="$cuda_root")
fi

if command -v ninja >/dev/null 2>&1; then options+=(-G Ninja); fi

# First through PyTorch's own CMake package. Its Caffe2Config.cmake looks for the CUDA toolkit in
# its own ways; where that fails or finds no CUDA, take LibTorch from the package's files instead
# (cmake/TorchFromWheel.cmake): loraplan compiles no CUDA code and needs only the headers, the
# libraries and the CUDA runtime's.
configure_log="$build.configure.log"
if cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
     -DCMAKE_PREFIX_PATH="$search" -DTorch_DIR:PATH="$prefix/Torch" "${options[@]}" 2>&1 | tee "$configure_log" &&
   { [ "$cuda" = none ] || grep -q "loraplan: LibTorch has CUDA" "$configure_log"; }; then
  :
else
  echo "build-cuda.sh: PyTorch's CMake package gave no CUDA LibTorch; taking LibTorch from $torch_dir instead" >&2
  rm -rf "$build"
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_PREFIX_PATH="$search" \
    -DLORAPLAN_TORCH_WHEEL="$torch_dir" "${options[@]}"
fi
rm -f "$configure_log"
# -k 0 / -k: every compile error at once rather than the first.
if [ -f "$build/build.ninja" ]; then keep=(-k 0); else keep=(-k); fi
cmake --build "$build" -j"${JOBS:-$(nproc)}" -- "${keep[@]}"
"$build/cli/loraplan" --version
