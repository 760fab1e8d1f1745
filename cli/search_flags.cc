#include "search_flags.h"

#include <CLI/CLI.hpp>
#include <cctype>
#include <cmath>

#include "app.h"
#include "loraplan/planner/errors.h"
#include "loraplan/planner/hardware.h"

namespace loraplan::cli {

void add_search_flags(CLI::App& sub, SearchFlags& f) {
  sub.add_option("--target-batch", f.target_batch,
                 "Sequences per optimizer step: micro-batch x accumulation")
      ->check(positive_integer())
      ->default_str("8");
  sub.add_option("--margin", f.margin,
                 "Room left under the budget: a share (5%), a size (512MiB) or 0 for none")
      ->default_str(f.margin);
  sub.add_option("--allow-weights", f.allow_weights,
                 "Weight formats the search may choose, e.g. nf4,int8 (default: --weights)");
  sub.add_option("--allow-optimizer", f.allow_optimizers,
                 "Optimizers the search may choose, e.g. adamw,adamw-8bit (default: --optimizer)");
  sub.add_flag("--no-offload", f.no_offload, "Never keep layers' weights in host memory");
}

namespace {

// "0", "0.0", "0MiB": a size of nothing, which parse_size refuses (a GPU or budget of 0 is a
// mistake, a margin of 0 is not).
bool is_zero_size(const std::string& text) {
  auto zeros = [&](size_t i) {
    return std::min(text.find_first_not_of('0', i), text.size());
  };  // end of a run of 0s
  size_t end = zeros(0);
  if (end == 0) return false;
  if (end < text.size() && text[end] == '.') {
    const size_t frac = zeros(end + 1);
    if (frac == end + 1) return false;
    end = frac;
  }
  const std::string unit = text.substr(end);
  if (unit.empty()) return true;
  if (!std::isalpha(static_cast<unsigned char>(unit[0]))) return false;
  try {
    planner::parse_size("1" + unit, "--margin");  // only to check the unit
    return true;
  } catch (const InputError&) {
    return false;
  }
}

// "5%" -> a share of the budget; "512MiB" -> bytes. `budget` (0 = unknown) bounds a size.
void parse_margin(const std::string& text, int64_t budget, planner::SearchSpace& s) {
  if (!text.empty() && text.back() == '%') {
    char* end = nullptr;
    const std::string number = text.substr(0, text.size() - 1);
    const double v = std::strtod(number.c_str(), &end);
    if (number.empty() || *end != '\0' || !(v >= 0) || v >= 100) {
      throw InputError("--margin: \"" + text +
                       "\" is not a share of the budget below 100% (examples: 5%, 512MiB)");
    }
    s.margin_share = v / 100;
    return;
  }
  if (is_zero_size(text)) return;  // "0", "0MiB": no margin
  s.margin_bytes = planner::parse_size(text, "--margin");
  if (budget > 0 && s.margin_bytes >= budget) {
    throw InputError("--margin: " + text + " leaves nothing of the " +
                     planner::format_bytes(budget) + " budget");
  }
}

}  // namespace

planner::SearchSpace resolve_search(const SearchFlags& f, const ConfigFlags& config,
                                    int64_t budget_bytes) {
  planner::SearchSpace s;
  s.target_batch = f.target_batch;
  parse_margin(f.margin, budget_bytes, s);
  s.allow_offload = !f.no_offload;
  for (const std::string& name : split_list(f.allow_weights)) {
    const auto format = planner::parse_weight_format(name);
    if (!format)
      throw InputError("--allow-weights: \"" + name + "\" is not a weight format (" +
                       planner::weight_format_choices(", ") + ")");
    planner::QuantOptions q;
    q.format = *format;
    q.double_quant = config.double_quant == "on";
    s.weights.push_back(q);
  }
  for (const std::string& name : split_list(f.allow_optimizers)) {
    const auto o = planner::parse_optimizer(name);
    if (!o) {
      throw InputError("--allow-optimizer: \"" + name + "\" is not an optimizer (" +
                       planner::optimizer_choices(", ") + ")");
    }
    s.optimizers.push_back(*o);
  }
  return s;
}

planner::Rates device_rates(const ConfigFlags& f, const planner::TrainConfig& c) {
  if (f.device == "cpu") return planner::cpu_rates(1);
  return planner::gpu_rates(planner::resolve_gpu(f.gpu.empty() ? "6GB" : f.gpu), c.compute);
}

}  // namespace loraplan::cli
