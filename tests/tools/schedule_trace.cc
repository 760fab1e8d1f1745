// Prints the simulator's event trace of one step, one line per event, in the format of the
// executor's LORAPLAN_ALLOC_TRACE: "+ bytes live phase buffer" / "- bytes live phase buffer".
// The simulator runs at most two micro-batches (the others repeat the second). Usage:
// schedule_trace <the flags of loraplan train>; diff against a run's trace to find the tensor the
// simulator misses.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "config_flags.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/planner/schedule.h"

int main(int argc, char** argv) {
  using namespace loraplan;
  CLI::App app("schedule_trace");
  cli::ConfigFlags f = cli::executor_flags();
  cli::add_config_flags(app, f);
  CLI11_PARSE(app, argc, argv);
  const planner::ModelDesc m = planner::load_model(f.model);
  const planner::Schedule s = planner::build_schedule(m, cli::resolve_config(f, m));
  int64_t live = 0;
  for (const planner::Event& e : s.events) {
    const planner::Buffer& b = s.buffers[e.buffer];
    live += e.alloc ? b.bytes : -b.bytes;
    std::printf("%c %lld %lld %s %s\n", e.alloc ? '+' : '-', static_cast<long long>(b.bytes),
                static_cast<long long>(live), s.phases[e.phase].c_str(), b.name().c_str());
  }
  return 0;
}
