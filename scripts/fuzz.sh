#!/usr/bin/env bash
# Builds the libFuzzer harnesses of the file readers in build-fuzz/ (clang, ASan + UBSan), writes
# their seed corpora and runs each for SECONDS (default 30). Exit 1 when any harness finds a
# crash, a leak, a sanitizer report or a timeout; the reproducer is named in the output.
# Usage: scripts/fuzz.sh [SECONDS] [HARNESS...]   (JOBS=N for the build, default 2)
# RUNS=N runs each harness for N inputs from seed 1 instead of for SECONDS: the same inputs on
# every machine, so a CI run repeats what was run before it (.ci/run uses it).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-30}"
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS] [HARNESS...]" >&2; exit 2; }
shift $(($# > 0 ? 1 : 0))
build=build-fuzz

# clang 16 or newer: the planner captures structured bindings in lambdas (C++20), which clang 14
# rejects. Debian 12: apt-get install clang-16 libclang-rt-16-dev.
if [ -z "${CXX:-}" ]; then
  for c in clang++-19 clang++-18 clang++-17 clang++-16 clang++; do
    command -v "$c" >/dev/null && { CXX="$c"; break; }
  done
fi
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S . -B "$build" "${generator[@]}" "${launcher[@]}" \
  -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DLORAPLAN_FUZZ=ON -DLORAPLAN_WITH_ONNX=ON -DLORAPLAN_WITH_TORCH=OFF \
  -DLORAPLAN_BUILD_TESTS=OFF -DLORAPLAN_BUILD_BENCH=OFF >/dev/null
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
export ASAN_SYMBOLIZER_PATH="${ASAN_SYMBOLIZER_PATH:-$(command -v llvm-symbolizer || true)}"
cmake --build "$build" --target loraplan_fuzzers -j"${JOBS:-2}"

rm -rf "$build/seeds"
"$build/fuzz/make_seeds" "$build/seeds"
# The committed text seeds (fuzz/seeds/<harness>/) join the generated ones.
shopt -s nullglob
for dir in fuzz/seeds/*/; do
  [ -d "$dir" ] && cp "$dir"* "$build/seeds/$(basename "$dir")/" 2>/dev/null || true
done

# harness  max_len (bytes; above the largest seed)  dictionary
harnesses=(
  "config_json        16384  fuzz/json.dict"
  "safetensors        32768  fuzz/json.dict"
  "safetensors_index  16384  fuzz/json.dict"
  "onnx               65536  -"
  "plan               16384  fuzz/json.dict"
  "run_report         16384  fuzz/json.dict"
  "dataset            16384  fuzz/json.dict"
  "tokenizer          16384  fuzz/json.dict"
  "chat_template      16384  -"
)

passed=0
failed=0
failures=()
mkdir -p "$build/findings"
for entry in "${harnesses[@]}"; do
  read -r name max_len dict <<<"$entry"
  if (($# > 0)) && [[ " $* " != *" $name "* ]]; then continue; fi
  corpus="$build/corpus/$name"
  log="$build/findings/$name.log"
  mkdir -p "$corpus"
  if [ -n "${RUNS:-}" ]; then
    rm -rf "$corpus" && mkdir -p "$corpus"  # deterministic: only the generated seeds
    args=(-runs="$RUNS" -seed=1)
  else
    args=(-max_total_time="$seconds")
  fi
  args+=(-rss_limit_mb=2048 -timeout=10 -max_len="$max_len" -artifact_prefix="$build/findings/$name-" -print_final_stats=1)
  [ "$dict" != - ] && args+=(-dict="$dict")
  budget="${seconds}s"
  [ -n "${RUNS:-}" ] && budget="$RUNS runs from seed 1"
  echo "== $name: $budget, max_len $max_len"
  if "$build/fuzz/fuzz_$name" "${args[@]}" "$corpus" "$build/seeds/$name" >"$log" 2>&1; then
    runs=$(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 | grep -Eo '[0-9]+ runs in [0-9]+' || true)
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 || true)
    echo "   passed: ${runs:-? runs} s, ${cov:-cov: ?}, corpus $(ls "$corpus" | wc -l) files"
    passed=$((passed + 1))
  else
    reproducer=$(grep -Eo '(Test unit written to|artifact_prefix=.*; Test unit written to) [^ ]+' "$log" | awk '{print $NF}' | tail -1)
    # What went wrong (the sanitizer's summary or the escaping exception), then the first frames
    # in loraplan's code.
    echo "   FAILED: $(grep -Em1 'SUMMARY: |what\(\): |ERROR: libFuzzer: (timeout|out-of-memory)' "$log" | sed 's/^ *//' || tail -1 "$log")"
    grep -E "^ +#[0-9]+ .* in (loraplan::|LLVMFuzzerTestOneInput)" "$log" | head -4 | sed "s/(anonymous namespace)/{anon}/g" |
      sed -E 's/^ +(#[0-9]+) 0x[0-9a-f]+ in ([^(]*).* ([^ ]+)$/     \1 \2 \3/'
    echo "   reproducer: ${reproducer:-none written}  (log: $log)"
    [ -n "$reproducer" ] && echo "   rerun: $build/fuzz/fuzz_$name $reproducer"
    failures+=("$name")
    failed=$((failed + 1))
  fi
done

((failed == 0)) || echo "failed harnesses: ${failures[*]}"
echo "fuzz: $passed passed, $failed failed"
((failed == 0))
