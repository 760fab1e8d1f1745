// Cost of a full plan search for a 32-layer model (Phi-4-mini on a 6 GB GPU; Llama-3.1-8B on an
// RTX 4090), and of a sweep over every GPU profile x 5 sequence lengths (512..8192) for
// Llama-3.1-8B on 1 and 2 threads (loraplan sweep uses every core). Targets: a search under 50 ms,
// the sweep under 2 s.
//
// Run:
//   cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
//   cmake --build build --target plan_bench
//   build/bench/plan_bench
// The "estimates" counter is the number of simulations one search ran.

#include <benchmark/benchmark.h>

#include "loraplan/planner/hardware.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/planner/plan_search.h"
#include "loraplan/planner/simulator.h"
#include "loraplan/planner/train_config.h"
#include "loraplan/planner/weights.h"

namespace loraplan::planner {
namespace {

// `loraplan plan`'s defaults: T 1024, nf4 + dq, fp16, LoRA r16 on all linears, adamw.
TrainConfig plan_defaults(const ModelDesc& m, int64_t seq_len) {
  TrainConfig c;
  c.seq_len = seq_len;
  c.lora_targets = parse_lora_targets("all-linear", m, "--lora-targets");
  c.checkpointed.assign(m.layers, false);
  c.offloaded.assign(m.layers, false);
  validate(c, m);
  return c;
}

void search(benchmark::State& state, const char* model, const char* gpu) {
  const ModelDesc m = load_model(model);
  const TrainConfig c = plan_defaults(m, 1024);
  const GpuProfile g = resolve_gpu(gpu);
  const DeviceModel d = cuda_device(g, 0);
  const Rates r = gpu_rates(g, c.compute);
  SearchSpace space;
  space.margin_bytes = d.budget_bytes / 20;
  int estimates = 0;
  for (auto _ : state) {
    const PlanSearch s = search_plan(m, c, d, r, space);
    estimates = s.estimates;
    benchmark::DoNotOptimize(s.found);
  }
  state.counters["estimates"] = estimates;
}

void BM_SearchPhi4Mini6GB(benchmark::State& state) { search(state, "phi-4-mini-instruct", "6GB"); }
BENCHMARK(BM_SearchPhi4Mini6GB)->Unit(benchmark::kMillisecond);

void BM_SearchLlama8BRtx4090(benchmark::State& state) { search(state, "llama-3.1-8b", "rtx-4090"); }
BENCHMARK(BM_SearchLlama8BRtx4090)->Unit(benchmark::kMillisecond);

void BM_SweepLlama8B(benchmark::State& state) {
  const ModelDesc m = load_model("llama-3.1-8b");
  std::vector<GpuProfile> gpus;
  for (const std::string& name : profile_names("gpus")) gpus.push_back(resolve_gpu(name));
  const TrainConfig c = plan_defaults(m, 1024);
  SearchSpace space;
  space.margin_share = 0.05;
  const int threads = static_cast<int>(state.range(0));
  int estimates = 0;
  for (auto _ : state) {
    estimates = 0;
    for (const SweepCell& cell : sweep(m, c, gpus, {512, 1024, 2048, 4096, 8192}, space, threads)) {
      estimates += cell.search.estimates;
    }
  }
  state.counters["searches"] = static_cast<double>(gpus.size() * 5);
  state.counters["estimates"] = estimates;
}
BENCHMARK(BM_SweepLlama8B)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace loraplan::planner

BENCHMARK_MAIN();
