// Cost of one estimate of the default CLI case (Phi-4-mini, 32 layers, T 1024, B 1, 8 micro-
// batches, NF4 + double quant, fp16 compute, LoRA r16 on all linears, checkpoint all) on a 6 GB
// GPU, and of its two halves: building the schedule and replaying it without an allocator. A plan
// search runs thousands of estimates, so one should stay well under a millisecond.
//
// Run:
//   cmake -S . -B build-prop -DCMAKE_BUILD_TYPE=RelWithDebInfo
//   cmake --build build-prop --target estimate_bench
//   build-prop/bench/estimate_bench
// The "events" and "buffers" counters give the size of the schedule being built or replayed.

#include <benchmark/benchmark.h>

#include <cstdlib>

#include "loraplan/planner/hardware.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/planner/schedule.h"
#include "loraplan/planner/simulator.h"
#include "loraplan/planner/train_config.h"
#include "loraplan/planner/weights.h"

namespace loraplan::planner {
namespace {

// The model, configuration and device of `loraplan estimate --model phi-4-mini-instruct` with
// every other flag at its default.
struct DefaultCase {
  ModelDesc model = load_model("phi-4-mini-instruct");
  TrainConfig config = default_config(model);
  DeviceModel device = cuda_device(resolve_gpu("6GB"), 0);

  static TrainConfig default_config(const ModelDesc& m) {
    TrainConfig c;  // T 1024, B 1, accum 8, nf4 + dq, fp16, r16, dropout 0.05, adamw, efficient
    c.lora_targets = parse_lora_targets("all-linear", m, "--lora-targets");
    c.checkpointed = parse_checkpoint("all", m.layers, "--checkpoint");
    c.offloaded = parse_offload("none", m.layers, "--offload");
    c.loss_chunk = parse_loss("full", "--loss");
    validate(c, m);
    return c;
  }
};

const DefaultCase& default_case() {
  static const DefaultCase kCase;
  return kCase;
}

void count_schedule(benchmark::State& state, const Schedule& s) {
  state.counters["events"] = static_cast<double>(s.events.size());
  state.counters["buffers"] = static_cast<double>(s.buffers.size());
}

void BM_Estimate(benchmark::State& state) {
  const DefaultCase& c = default_case();
  for (auto _ : state) {
    Estimate e = estimate(c.model, c.config, c.device);
    benchmark::DoNotOptimize(e);
  }
  count_schedule(state, estimate(c.model, c.config, c.device).schedule);
}
BENCHMARK(BM_Estimate)->Unit(benchmark::kMicrosecond);

void BM_BuildSchedule(benchmark::State& state) {
  const DefaultCase& c = default_case();
  for (auto _ : state) {
    Schedule s = build_schedule(c.model, c.config, c.device.gemm_workspace_bytes);
    benchmark::DoNotOptimize(s);
  }
  count_schedule(state, build_schedule(c.model, c.config, c.device.gemm_workspace_bytes));
}
BENCHMARK(BM_BuildSchedule)->Unit(benchmark::kMicrosecond);

void BM_Replay(benchmark::State& state) {
  const DefaultCase& c = default_case();
  const Schedule s = build_schedule(c.model, c.config, c.device.gemm_workspace_bytes);
  for (auto _ : state) {
    Replay r = replay(s);
    benchmark::DoNotOptimize(r);
  }
  count_schedule(state, s);
}
BENCHMARK(BM_Replay)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace loraplan::planner

int main(int argc, char** argv) {
  // The profiles of this source tree unless the caller points elsewhere.
  setenv("LORAPLAN_PROFILES", LORAPLAN_SOURCE_DIR "/profiles", /*overwrite=*/0);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
