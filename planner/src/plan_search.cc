#include "loraplan/planner/plan_search.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <thread>
#include <tuple>

#include "loraplan/planner/weights.h"

namespace loraplan::planner {
namespace {

int64_t count(const std::vector<bool>& layers) { return std::count(layers.begin(), layers.end(), true); }

std::string weights_text(const QuantOptions& q) {
  std::string w(weight_format_name(q.format));
  const bool four_bit = q.format == WeightFormat::kNf4 || q.format == WeightFormat::kFp4;
  return four_bit && q.double_quant ? w + "+dq" : w;
}

std::string tokens_text(double tokens_per_s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f", tokens_per_s);
  std::string s = buf, out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out + " tokens/s";
}

// The choices other than micro-batch; a combination is infeasible for every micro-batch at least
// as large as one that is.
using Shape = std::tuple<int, int64_t, int, int>;  // attention, loss chunk (0 or 1 = chunked), weights, optimizer

struct Combo {
  TrainConfig config;  // nothing checkpointed or offloaded
  Shape shape;
  double best_case = 0;  // tokens/s with nothing checkpointed or offloaded: no plan of it is faster
};

class Searcher {
 public:
  Searcher(const ModelDesc& m, const DeviceModel& d, const Rates& r, const SearchSpace& space, PlanSearch& out)
      : m_(m), r_(r), space_(space), out_(out) {
    limited_ = d;
    limited_.budget_bytes = out.limit_bytes;
  }

  Estimate simulate(const TrainConfig& c) {
    ++out_.estimates;
    return estimate(m_, c, limited_);
  }

  FitCheck check(const TrainConfig& c) {
    ++out_.estimates;
    FitCheck f = check_fit(m_, c, limited_);
    return f;
  }

  static TrainConfig with(const TrainConfig& c, int64_t checkpointed, int64_t offloaded) {
    TrainConfig t = c;
    for (size_t l = 0; l < t.checkpointed.size(); ++l) {
      t.checkpointed[l] = static_cast<int64_t>(l) < checkpointed;
      t.offloaded[l] = static_cast<int64_t>(l) < offloaded;
    }
    return t;
  }

  // The cheapest way to make `combo` fit: the fewest checkpointed layers, then (with every layer
  // checkpointed) the fewest offloaded. The peak does not rise as either grows and falls about
  // linearly, so the search starts where the line through both ends crosses the limit. Gives up
  // (simulated = false) as soon as what is left of the combination cannot beat `must_beat`
  // tokens/s: recomputing or offloading one more layer never makes a step faster.
  PlanCandidate fit(const Combo& combo, double must_beat) {
    const int64_t L = m_.layers;
    PlanCandidate p;
    auto beaten = [&](int64_t k, int64_t n) {
      p.config = with(combo.config, k, n);
      p.cost = step_cost(m_, p.config, r_);
      if (p.cost.tokens_per_s > must_beat) return false;
      p.simulated = false;
      p.reason = "slower: at most " + tokens_text(p.cost.tokens_per_s) + " (" + std::to_string(k) +
                 " or more layers checkpointed" + (n > 0 ? ", " + std::to_string(n) + " or more offloaded)" : ")");
      return true;
    };
    const FitCheck none = check(with(combo.config, 0, 0));
    int64_t k = 0, n = 0;
    p.peak_bytes = none.peak_bytes;
    if (!none.fits) {
      if (beaten(1, 0)) return p;
      const FitCheck all = check(with(combo.config, L, 0));
      if (all.fits) {
        k = least(none, all, L, [&](int64_t x) { return check(with(combo.config, x, 0)); },
                  [&](int64_t x) { return beaten(x, 0); }, p.peak_bytes);
        if (k < 0) return p;
      } else {
        if (!space_.allow_offload || beaten(L, 1)) {
          if (!space_.allow_offload) return infeasible(combo, p, all);
          return p;
        }
        const FitCheck offloaded = check(with(combo.config, L, L));
        if (!offloaded.fits) return infeasible(combo, p, offloaded);
        k = L;
        n = least(all, offloaded, L, [&](int64_t x) { return check(with(combo.config, L, x)); },
                  [&](int64_t x) { return beaten(L, x); }, p.peak_bytes);
        if (n < 0) return p;
      }
    }
    p.config = with(combo.config, k, n);
    p.fits = true;
    p.simulated = true;
    p.reason.clear();
    p.cost = step_cost(m_, p.config, r_);
    return p;
  }

  // `frugal`: the check of the combination at its most frugal, which failed.
  PlanCandidate& infeasible(const Combo& combo, PlanCandidate& p, const FitCheck& frugal) {
    p.config = with(combo.config, m_.layers, space_.allow_offload ? m_.layers : 0);
    p.simulated = true;
    p.fits = false;
    // Over the limit on tensors alone, the check's peak says by how much; else the allocator's
    // rounding broke it, and only a full estimate tells the peak.
    p.peak_bytes = frugal.peak_bytes > out_.limit_bytes ? frugal.peak_bytes : simulate(p.config).peak_bytes;
    p.cost = step_cost(m_, p.config, r_);
    p.reason = "needs " + format_bytes(p.peak_bytes) + " > " + format_bytes(out_.limit_bytes) +
               (space_.allow_offload ? " with every layer checkpointed and offloaded" : " with every layer checkpointed");
    return p;
  }

  // The least x in [1, L] that fits, knowing x = 0 does not (check c0) and x = L does (cL); its
  // peak goes to `peak`. The tensors' peak falls about linearly in x and the allocator only adds
  // to it, so each probe is where the line through the bracket's tensor peaks crosses the limit
  // (then its neighbour, to close the bracket). -1 when `beaten(lo + 1)` says the rest cannot win.
  int64_t least(const FitCheck& c0, const FitCheck& cL, int64_t L, const std::function<FitCheck(int64_t)>& check_at,
                const std::function<bool(int64_t)>& beaten, int64_t& peak) const {
    int64_t lo = 0, hi = L;  // lo does not fit, hi does
    int64_t t_lo = c0.tensor_bytes, t_hi = cL.tensor_bytes;
    peak = cL.peak_bytes;
    for (int probes = 0; hi - lo > 1; ++probes) {
      int64_t probe = lo + (hi - lo) / 2;  // bisection once the line has had its two tries
      const double slope = static_cast<double>(t_lo - t_hi) / static_cast<double>(hi - lo);
      if (probes == 0 && slope > 0) {
        probe = lo + static_cast<int64_t>(std::ceil(static_cast<double>(t_lo - out_.limit_bytes) / slope));
      } else if (probes == 1) {
        probe = hi == L ? lo + 1 : hi - 1;  // the neighbour of the first probe, on the open side
      }
      probe = std::clamp(probe, lo + 1, hi - 1);
      const FitCheck f = check_at(probe);
      if (f.fits) {
        hi = probe;
        t_hi = f.tensor_bytes;
        peak = f.peak_bytes;
      } else {
        lo = probe;
        t_lo = f.tensor_bytes;
        if (beaten(lo + 1)) return -1;
      }
    }
    return hi;
  }

 private:
  const ModelDesc& m_;
  DeviceModel limited_;
  const Rates& r_;
  const SearchSpace& space_;
  PlanSearch& out_;
};

std::vector<int64_t> divisors(int64_t n) {
  std::vector<int64_t> out;
  for (int64_t b = 1; b <= n; ++b) {
    if (n % b == 0) out.push_back(b);
  }
  return out;
}

bool faster(const PlanCandidate& a, const PlanCandidate& b) { return a.cost.tokens_per_s > b.cost.tokens_per_s; }

}  // namespace

std::string plan_label(const TrainConfig& c) {
  return "B " + std::to_string(c.micro_batch) + " x " + std::to_string(c.grad_accum) + " | checkpoint " +
         std::to_string(count(c.checkpointed)) + "/" + std::to_string(c.checkpointed.size()) + " | offload " +
         std::to_string(count(c.offloaded)) + " | " + std::string(attention_name(c.attention)) + " | loss " +
         (c.loss_chunk > 0 ? "chunked:" + std::to_string(c.loss_chunk) : std::string("full")) + " | " +
         weights_text(c.weights) + " | " + std::string(optimizer_name(c.optimizer));
}

PlanSearch search_plan(const ModelDesc& m, const TrainConfig& base, const DeviceModel& d, const Rates& r,
                       const SearchSpace& space) {
  PlanSearch out;
  out.limit_bytes = d.budget_bytes - margin_for(space, d.budget_bytes);
  Searcher searcher(m, d, r, space, out);

  const std::vector<QuantOptions> weights = space.weights.empty() ? std::vector<QuantOptions>{base.weights} : space.weights;
  const std::vector<Optimizer> optimizers =
      space.optimizers.empty() ? std::vector<Optimizer>{base.optimizer} : space.optimizers;
  std::vector<Attention> attentions = {Attention::kEfficient};
  // On CUDA, eager attention is never smaller (it keeps the probabilities) nor faster (it computes
  // the masked half and streams the scores): only the CPU executor's may win.
  if (space.search_attention && d.device == Device::kCpu) attentions.push_back(Attention::kEager);
  std::vector<Combo> combos;
  for (int64_t b : divisors(space.target_batch)) {
    for (size_t a = 0; a < attentions.size(); ++a) {
      for (int chunked = 0; chunked <= (space.search_loss ? 1 : 0); ++chunked) {
        for (size_t w = 0; w < weights.size(); ++w) {
          for (size_t o = 0; o < optimizers.size(); ++o) {
            Combo k;
            k.config = base;
            k.config.micro_batch = b;
            k.config.grad_accum = space.target_batch / b;
            k.config.attention = attentions[a];
            k.config.weights = weights[w];
            k.config.optimizer = optimizers[o];
            k.config.loss_chunk = chunked ? suggested_loss_chunk(m, k.config) : 0;
            if (chunked && k.config.loss_chunk >= k.config.tokens()) continue;  // one chunk: the full loss
            k.config = Searcher::with(k.config, 0, 0);
            k.shape = {static_cast<int>(a), chunked, static_cast<int>(w), static_cast<int>(o)};
            k.best_case = step_cost(m, k.config, r).tokens_per_s;
            combos.push_back(std::move(k));
          }
        }
      }
    }
  }
  std::stable_sort(combos.begin(), combos.end(), [](const Combo& a, const Combo& b) { return a.best_case > b.best_case; });

  std::map<Shape, int64_t> infeasible_from;  // shape -> smallest micro-batch known not to fit
  // A combination whose most frugal plan does not fit at micro-batch 1 fits at none; one check each.
  for (const Combo& k : combos) {
    if (k.config.micro_batch != 1 || infeasible_from.count(k.shape)) continue;
    const TrainConfig frugal = Searcher::with(k.config, m.layers, space.allow_offload ? m.layers : 0);
    if (const FitCheck f = searcher.check(frugal); !f.fits) {
      infeasible_from[k.shape] = 1;
      PlanCandidate p;
      out.rejected.push_back(searcher.infeasible(k, p, f));
    }
  }
  const size_t kept = static_cast<size_t>(space.runner_ups) + 1;  // the chosen plan and its runner-ups
  std::vector<PlanCandidate> feasible;
  for (const Combo& k : combos) {
    if (auto it = infeasible_from.find(k.shape); it != infeasible_from.end() && k.config.micro_batch >= it->second) {
      if (k.config.micro_batch == it->second) continue;  // rejected already, with its peak
      PlanCandidate p;
      p.config = k.config;
      p.simulated = false;
      p.cost = step_cost(m, k.config, r);
      p.reason = "does not fit: micro-batch " + std::to_string(it->second) + " already does not";
      out.rejected.push_back(std::move(p));
      continue;
    }
    if (!feasible.empty() && k.best_case <= feasible.front().cost.tokens_per_s) {
      PlanCandidate p;
      p.config = k.config;
      p.simulated = false;
      p.cost = step_cost(m, k.config, r);
      p.reason = "slower: at most " + tokens_text(k.best_case);
      out.rejected.push_back(std::move(p));
      continue;
    }
    const double must_beat = feasible.empty() ? 0 : feasible.front().cost.tokens_per_s;
    PlanCandidate p = searcher.fit(k, must_beat);
    if (!p.simulated) {
      out.rejected.push_back(std::move(p));
      continue;
    }
    if (!p.fits) {
      infeasible_from[k.shape] = std::min(infeasible_from.count(k.shape) ? infeasible_from[k.shape] : INT64_MAX,
                                          k.config.micro_batch);
      out.rejected.push_back(std::move(p));
      continue;
    }
    feasible.insert(std::upper_bound(feasible.begin(), feasible.end(), p, faster), p);
  }
  if (feasible.empty()) return out;

  out.found = true;
  out.chosen = feasible.front();
  for (size_t i = 1; i < feasible.size(); ++i) {
    PlanCandidate p = feasible[i];
    p.reason = "slower: " + tokens_text(p.cost.tokens_per_s);
    if (i < kept) out.runner_ups.push_back(p);
    out.rejected.push_back(std::move(p));
  }
  std::stable_sort(out.rejected.begin(), out.rejected.end(), [](const PlanCandidate& a, const PlanCandidate& b) {
    if (a.fits != b.fits) return a.fits;
    return a.cost.tokens_per_s > b.cost.tokens_per_s;
  });
  if (!space.explain) return out;
  DeviceModel limited = d;  // the allocator model capped where the search capped it
  limited.budget_bytes = out.limit_bytes;
  out.estimate = estimate(m, out.chosen.config, limited);
  out.estimate.budget_bytes = d.budget_bytes;

  // The boundaries: the next bigger micro-batch, one checkpointed or offloaded layer fewer.
  const TrainConfig& c = out.chosen.config;
  const std::vector<int64_t> sizes = divisors(space.target_batch);
  const auto next = std::upper_bound(sizes.begin(), sizes.end(), c.micro_batch);
  if (next != sizes.end()) {
    for (const PlanCandidate& p : out.rejected) {
      if (p.config.micro_batch != *next || p.config.attention != c.attention || p.config.weights.format != c.weights.format ||
          p.config.optimizer != c.optimizer || (p.config.loss_chunk > 0) != (c.loss_chunk > 0) || !p.simulated) {
        continue;
      }
      out.boundaries.push_back("micro-batch " + std::to_string(*next) + ": " +
                               (p.fits ? "fits with " + std::to_string(count(p.config.checkpointed)) +
                                             " layers checkpointed and " + std::to_string(count(p.config.offloaded)) +
                                             " offloaded, " + tokens_text(p.cost.tokens_per_s)
                                       : p.reason));
      break;
    }
  }
  const int64_t k = count(c.checkpointed), n = count(c.offloaded);
  if (n > 0 || k > 0) {
    const TrainConfig fewer = n > 0 ? Searcher::with(c, k, n - 1) : Searcher::with(c, k - 1, 0);
    const Estimate e = searcher.simulate(fewer);
    out.boundaries.push_back((n > 0 ? "offloading " + std::to_string(n - 1) + " layers instead of " + std::to_string(n)
                                    : "checkpointing " + std::to_string(k - 1) + " layers instead of " + std::to_string(k)) +
                             ": needs " + format_bytes(e.peak_bytes) + " > " + format_bytes(out.limit_bytes));
  }
  return out;
}

int64_t margin_for(const SearchSpace& space, int64_t budget_bytes) {
  return space.margin_bytes + static_cast<int64_t>(std::llround(space.margin_share * static_cast<double>(budget_bytes)));
}

std::vector<SweepCell> sweep(const ModelDesc& m, const TrainConfig& base, const std::vector<GpuProfile>& gpus,
                             const std::vector<int64_t>& seq_lens, SearchSpace space, int threads) {
  space.runner_ups = 0;
  space.explain = false;
  std::vector<SweepCell> cells;
  for (const GpuProfile& g : gpus) {
    for (int64_t T : seq_lens) cells.push_back({g, T, {}});
  }
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < cells.size(); i = next++) {
      TrainConfig c = base;
      c.seq_len = cells[i].seq_len;
      cells[i].search = search_plan(m, c, cuda_device(cells[i].gpu, 0), gpu_rates(cells[i].gpu, c.compute), space);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::min<int>(threads, static_cast<int>(cells.size())); ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  return cells;
}

}  // namespace loraplan::planner
