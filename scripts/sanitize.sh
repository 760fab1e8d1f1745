#!/usr/bin/env bash
# Builds the whole project and its test suite with AddressSanitizer and UndefinedBehaviorSanitizer
# in build-asan/ and runs ctest. Usage: scripts/sanitize.sh [-jN] [ctest args...]
#
# LibTorch (Debian's libtorch 1.13) is not instrumented; docs/fuzzing.md says which ASan/UBSan
# options that needs and why. CXX=clang++ builds with clang instead of g++.
set -euo pipefail
cd "$(dirname "$0")/.."

jobs="-j2"
if [[ "${1:-}" == -j* ]]; then jobs="$1"; shift; fi

sanitize="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)

cmake -S . -B build-asan "${generator[@]}" "${launcher[@]}" \
  -DCMAKE_CXX_COMPILER="${CXX:-g++}" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="$sanitize" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_MODULE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DLORAPLAN_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan "$jobs"

# LibTorch is not instrumented; ASan's defaults (leak detection and alloc/dealloc mismatch
# included) hold for it, with one exception: LibTorch 1.13's GeneratorImpl::clone() leaks the
# clone (it increfs a fresh object without its weak count, so it is never deleted), and the
# executor clones the CPU generator once per checkpointed layer per forward. That leak only is
# suppressed (docs/fuzzing.md). onnx_large_model_rss is left out: it bounds the process's peak
# RSS, which ASan's shadow memory and quarantine inflate.
printf '%s\n' "leak:at::CPUGeneratorImpl::clone_impl" >build-asan/lsan.supp
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/build-asan/lsan.supp:print_suppressions=0}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
ctest --test-dir build-asan --output-on-failure "$jobs" -E '^onnx_large_model_rss$' "$@"
