#include "loraplan/planner/plan_search.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <compare>
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "loraplan/planner/errors.h"
#include "loraplan/planner/weights.h"

namespace loraplan::planner {
namespace {

int64_t count(const std::vector<bool>& layers) {
  return std::count(layers.begin(), layers.end(), true);
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

// "6.31 GiB > 5.70 GiB"; in bytes when the rounded sizes would read the same.
std::string over_limit(int64_t need, int64_t limit) {
  std::string a = format_bytes(need), b = format_bytes(limit);
  if (a == b) {
    a = std::to_string(need) + " bytes";
    b = std::to_string(limit) + " bytes";
  }
  return a + " > " + b;
}

// The choices other than micro-batch, as indices into the lists the search tries; a combination is
// infeasible for every micro-batch at least as large as one that is. Ordered member by member.
struct Shape {
  int attention = 0;    // into the attentions searched
  int64_t chunked = 0;  // 1: the loss in chunks, 0: whole
  int weights = 0;      // into the weight formats
  int optimizer = 0;    // into the optimizers
  auto operator<=>(const Shape&) const = default;
};

// The data's shapes at micro-batch B, asked of the space once per B.
const DataShapes& shapes_for(const SearchSpace& space, std::map<int64_t, DataShapes>& cache,
                             int64_t micro_batch) {
  auto it = cache.find(micro_batch);
  if (it == cache.end()) {
    DataShapes s = space.data_shapes(micro_batch);
    if (s.frontier.empty() || s.epoch.empty()) {
      throw std::logic_error("data_shapes gave no shapes for micro-batch " +
                             std::to_string(micro_batch));
    }
    it = cache.emplace(micro_batch, std::move(s)).first;
  }
  return it->second;
}

// The predicted cost of a plan: its step's, or with data the epoch's average step (step_s is the
// epoch's time over its optimizer steps; tokens_per_s counts real tokens only).
StepCost plan_cost(const ModelDesc& m, const TrainConfig& c, const Rates& r,
                   const SearchSpace& space, std::map<int64_t, DataShapes>& cache) {
  StepCost cost = step_cost(m, c, r);
  if (!space.data_shapes) return cost;
  const EpochCost e = epoch_cost(m, c, r, shapes_for(space, cache, c.micro_batch).epoch);
  const int64_t steps = (e.micro_batches + c.grad_accum - 1) / c.grad_accum;
  cost.step_s = steps > 0 ? e.epoch_s / static_cast<double>(steps) : 0;
  cost.tokens_per_s = e.tokens_per_s;
  return cost;
}

struct Combo {
  TrainConfig config;  // nothing checkpointed or offloaded
  Shape shape;
  double best_case = 0;  // tokens/s with nothing checkpointed or offloaded: no plan of it is faster
};

class Searcher {
 public:
  Searcher(const ModelDesc& m, const DeviceModel& d, const Rates& r, const SearchSpace& space,
           PlanSearch& out)
      : m_(m), r_(r), space_(space), out_(out) {
    limited_ = d;
    limited_.budget_bytes = out.limit_bytes;
  }

  // The step's estimate; with data, at the frontier shape that peaks highest (*worst says which).
  Estimate simulate(const TrainConfig& c, ShapeCount* worst = nullptr) {
    if (!space_.data_shapes) {
      ++out_.estimates;
      return estimate(m_, c, limited_);
    }
    const std::vector<ShapeCount>& frontier = shapes(c.micro_batch).frontier;
    out_.estimates += static_cast<int>(frontier.size());
    ShapeEstimates e = estimate_shapes(m_, c, limited_, frontier);
    if (worst) *worst = frontier[e.worst];
    return std::move(e.estimates[e.worst]);
  }

  // Whether the step fits; with data, at every frontier shape (the first that does not decides).
  FitCheck check(const TrainConfig& c) {
    if (!space_.data_shapes) {
      ++out_.estimates;
      return check_fit(m_, c, limited_);
    }
    FitCheck all{true, 0, 0};
    for (const ShapeCount& s : shapes(c.micro_batch).frontier) {
      ++out_.estimates;
      const FitCheck f = check_fit(m_, with_shape(c, s), limited_);
      if (!f.fits) return f;
      all.peak_bytes = std::max(all.peak_bytes, f.peak_bytes);
      all.tensor_bytes = std::max(all.tensor_bytes, f.tensor_bytes);
    }
    return all;
  }

  StepCost cost(const TrainConfig& c) { return plan_cost(m_, c, r_, space_, shapes_); }

  const DataShapes& shapes(int64_t micro_batch) { return shapes_for(space_, shapes_, micro_batch); }

  static TrainConfig with(const TrainConfig& c, int64_t checkpointed, int64_t offloaded) {
    TrainConfig t = c;
    for (size_t l = 0; l < t.checkpointed.size(); ++l) {
      t.checkpointed[l] = static_cast<int64_t>(l) < checkpointed;
      t.offloaded[l] = static_cast<int64_t>(l) < offloaded;
    }
    return t;
  }

  // Positions order a combination's plans from the fastest and largest to the slowest and
  // smallest: p <= L checkpoints the first p layers; p > L checkpoints every layer and offloads
  // the first p - L.
  TrainConfig at(const Combo& combo, int64_t p) const {
    const int64_t L = m_.layers;
    return p <= L ? with(combo.config, p, 0) : with(combo.config, L, p - L);
  }

  // The cheapest way to make `combo` fit: the least position that fits. The peak does not rise
  // with the position, so a bracket (lo does not fit, hi does) narrows to it. Other micro-batches
  // of the combination may have bounded it already: a position that did not fit a smaller one
  // does not fit this one (`known_unfit`; -1 when nothing is known). Gives up (simulated = false)
  // as soon as what is left cannot beat `must_beat` tokens/s: recomputing or offloading more never
  // makes a step faster.
  PlanCandidate fit(const Combo& combo, double must_beat, int64_t known_unfit) {
    const int64_t L = m_.layers, top = space_.allow_offload ? 2 * L : L;
    PlanCandidate p;
    auto beaten = [&](int64_t pos) {
      p.config = at(combo, pos);
      p.cost = cost(p.config);
      if (p.cost.tokens_per_s > must_beat) return false;
      const int64_t k = std::min(pos, L), n = std::max<int64_t>(pos - L, 0);
      p.simulated = false;
      p.reason = "slower: at most " + tokens_text(p.cost.tokens_per_s) + " (" + std::to_string(k) +
                 " or more layers checkpointed" +
                 (n > 0 ? ", " + std::to_string(n) + " or more offloaded)" : ")");
      return true;
    };
    int64_t lo = known_unfit, hi = -1;
    FitCheck c_lo, c_hi;  // checks at lo and hi when this combination ran them
    c_lo.tensor_bytes = c_hi.tensor_bytes = -1;
    if (lo < 0) {
      c_lo = check(at(combo, 0));
      if (c_lo.fits) return fitted(combo, p, 0, c_lo.peak_bytes);
      lo = 0;
    }
    if (beaten(lo + 1)) return p;
    if (hi < 0) {
      for (int64_t end : {L, top}) {  // every layer checkpointed, then every layer offloaded
        if (end <= lo) continue;
        const FitCheck e = check(at(combo, end));
        if (e.fits) {
          hi = end;
          c_hi = e;
          break;
        }
        lo = end;
        c_lo = e;
        if (end == top) return infeasible(combo, p, e);
        if (beaten(lo + 1)) return p;
      }
    }
    const int64_t pos = least(
        lo, hi, c_lo, c_hi, [&](int64_t x) { return check(at(combo, x)); }, beaten);
    if (pos < 0) return p;
    return fitted(combo, p, pos, last_fit_.peak_bytes);
  }

  PlanCandidate& fitted(const Combo& combo, PlanCandidate& p, int64_t pos, int64_t peak) {
    p.config = at(combo, pos);
    p.fits = true;
    p.simulated = true;
    p.reason.clear();
    p.peak_bytes = peak;
    p.cost = cost(p.config);
    return p;
  }

  // `frugal`: the check of the combination at its most frugal, which failed.
  PlanCandidate& infeasible(const Combo& combo, PlanCandidate& p, const FitCheck& frugal) {
    p.config = with(combo.config, m_.layers, space_.allow_offload ? m_.layers : 0);
    p.simulated = true;
    p.fits = false;
    // Over the limit on tensors alone, the check's peak says by how much; else the allocator's
    // rounding broke it, and only a full estimate tells the peak.
    p.peak_bytes =
        frugal.peak_bytes > out_.limit_bytes ? frugal.peak_bytes : simulate(p.config).peak_bytes;
    p.cost = cost(p.config);
    p.reason = "needs " + over_limit(p.peak_bytes, out_.limit_bytes) +
               (space_.allow_offload ? " with every layer checkpointed and offloaded"
                                     : " with every layer checkpointed");
    return p;
  }

  // The least position in (lo, hi] that fits, knowing lo does not and hi does (c_hi); last_fit_
  // holds the check of the answer. The
  // tensors' peak falls about linearly within a segment (checkpointing, then offloading) and the
  // allocator only adds to it, so each probe is where the line through the bracket's tensor peaks
  // crosses the limit (regula falsi); after three probes that moved the same end, one bisection
  // keeps the worst case logarithmic. -1 when `beaten(lo + 1)` says the rest cannot win.
  int64_t least(int64_t lo, int64_t hi, const FitCheck& c_lo, const FitCheck& c_hi,
                const std::function<FitCheck(int64_t)>& check_at,
                const std::function<bool(int64_t)>& beaten) {
    const int64_t L = m_.layers;
    last_fit_ = c_hi;
    int64_t t_lo = c_lo.tensor_bytes, t_hi = c_hi.tensor_bytes;  // -1: unknown
    int same_side = 0, last_side = 0;                            // +1: hi moved, -1: lo moved
    while (hi - lo > 1) {
      int64_t probe = lo + (hi - lo) / 2;
      const bool line =
          t_lo >= 0 && t_hi >= 0 && t_lo > t_hi && (hi <= L || lo >= L) && same_side < 3;
      if (line) {
        const double slope = static_cast<double>(t_lo - t_hi) / static_cast<double>(hi - lo);
        probe = lo + static_cast<int64_t>(
                         std::ceil(static_cast<double>(t_lo - out_.limit_bytes) / slope));
      }
      probe = std::clamp(probe, lo + 1, hi - 1);
      const FitCheck f = check_at(probe);
      const int side = f.fits ? 1 : -1;
      same_side = line && side == last_side ? same_side + 1 : line ? 1 : 0;
      last_side = side;
      if (f.fits) {
        hi = probe;
        t_hi = f.tensor_bytes;
        last_fit_ = f;
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
  FitCheck last_fit_;
  std::map<int64_t, DataShapes> shapes_;  // by micro-batch
};

std::vector<int64_t> divisors(int64_t n) {
  std::vector<int64_t> small, large;
  for (int64_t b = 1; b <= n / b; ++b) {
    if (n % b != 0) continue;
    small.push_back(b);
    if (b != n / b) large.push_back(n / b);
  }
  small.insert(small.end(), large.rbegin(), large.rend());
  return small;
}

bool faster(const PlanCandidate& a, const PlanCandidate& b) {
  return a.cost.tokens_per_s > b.cost.tokens_per_s;
}

}  // namespace

std::string plan_label(const TrainConfig& c) {
  return "B " + std::to_string(c.micro_batch) + " x " + std::to_string(c.grad_accum) +
         " | checkpoint " + std::to_string(count(c.checkpointed)) + "/" +
         std::to_string(c.checkpointed.size()) + " | offload " +
         std::to_string(count(c.offloaded)) + " | " + std::string(attention_name(c.attention)) +
         " | loss " +
         (c.loss_chunk > 0 ? "chunked:" + std::to_string(c.loss_chunk) : std::string("full")) +
         " | " + weights_text(c.weights) + " | " + std::string(optimizer_name(c.optimizer));
}

namespace {

// Every combination of micro-batch, attention, loss chunking, weight format and optimizer the
// space allows, each at its best case (no checkpointing, no offload), fastest first.
std::vector<Combo> candidate_combos(const ModelDesc& m, const TrainConfig& base,
                                    const DeviceModel& d, const SearchSpace& space,
                                    Searcher& searcher) {
  const std::vector<QuantOptions> weights =
      space.weights.empty() ? std::vector<QuantOptions>{base.weights} : space.weights;
  const std::vector<Optimizer> optimizers =
      space.optimizers.empty() ? std::vector<Optimizer>{base.optimizer} : space.optimizers;
  std::vector<Attention> attentions = {Attention::kEfficient};
  // On CUDA, eager attention is never smaller (it keeps the probabilities) and streams the scores
  // through memory; it is searched on the CPU only, where its products can win at short lengths.
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
            if (chunked && k.config.loss_chunk >= k.config.tokens())
              continue;  // one chunk: the full loss
            if (!within_limits(k.config, m))
              continue;  // beyond any device, and beyond exact arithmetic
            k.config = Searcher::with(k.config, 0, 0);
            k.shape = {static_cast<int>(a), chunked, static_cast<int>(w), static_cast<int>(o)};
            k.best_case = searcher.cost(k.config).tokens_per_s;
            combos.push_back(std::move(k));
          }
        }
      }
    }
  }
  std::stable_sort(combos.begin(), combos.end(),
                   [](const Combo& a, const Combo& b) { return a.best_case > b.best_case; });
  return combos;
}

// Where each combination stops fitting even at its most frugal (every layer checkpointed and, if
// allowed, offloaded): found by bisection over its micro-batches (a larger one never needs less).
struct FrugalBounds {
  std::map<Shape, int64_t> infeasible_from;      // shape -> smallest micro-batch known not to fit
  std::set<std::pair<Shape, int64_t>> rejected;  // (shape, micro-batch) rejected with its peak
};

FrugalBounds frugal_bounds(const std::vector<Combo>& combos, const ModelDesc& m,
                           const SearchSpace& space, Searcher& searcher, PlanSearch& out) {
  FrugalBounds bounds;
  std::map<Shape, std::vector<const Combo*>> by_shape;  // ascending micro-batch
  for (const Combo& k : combos) by_shape[k.shape].push_back(&k);
  for (auto& [shape, list] : by_shape) {
    std::sort(list.begin(), list.end(), [](const Combo* a, const Combo* b) {
      return a->config.micro_batch < b->config.micro_batch;
    });
    auto frugal_fits = [&](size_t i) {
      const FitCheck f = searcher.check(
          Searcher::with(list[i]->config, m.layers, space.allow_offload ? m.layers : 0));
      if (!f.fits) {
        PlanCandidate p;
        out.rejected.push_back(searcher.infeasible(*list[i], p, f));
        bounds.rejected.insert({shape, list[i]->config.micro_batch});
      }
      return f.fits;
    };
    size_t lo = 0, hi = list.size();  // list[lo] fits (once checked), list[hi] does not
    if (!frugal_fits(0)) {
      hi = 0;
    } else if (list.size() > 1 && !frugal_fits(list.size() - 1)) {
      hi = list.size() - 1;
      while (hi - lo > 1) {
        const size_t mid = lo + (hi - lo) / 2;
        if (frugal_fits(mid))
          lo = mid;
        else
          hi = mid;
      }
    }
    if (hi < list.size()) bounds.infeasible_from[shape] = list[hi]->config.micro_batch;
  }
  return bounds;
}

// Each combination, fastest first, fitted at its least checkpointing and offload; those that
// cannot beat the fastest plan found so far, or are known not to fit, are rejected unsimulated.
// Returns the plans that fit, fastest first.
std::vector<PlanCandidate> fit_combos(const std::vector<Combo>& combos, FrugalBounds& bounds,
                                      const ModelDesc& m, Searcher& searcher, PlanSearch& out) {
  std::map<Shape, std::map<int64_t, int64_t>>
      least_position;  // shape -> micro-batch -> least position that fits
  std::vector<PlanCandidate> feasible;
  for (const Combo& k : combos) {
    if (auto it = bounds.infeasible_from.find(k.shape);
        it != bounds.infeasible_from.end() && k.config.micro_batch >= it->second) {
      if (bounds.rejected.count({k.shape, k.config.micro_batch}))
        continue;  // rejected already, with its peak
      PlanCandidate p;
      p.config = k.config;
      p.simulated = false;
      p.cost = searcher.cost(k.config);
      p.reason = "does not fit: micro-batch " + std::to_string(it->second) + " already does not";
      out.rejected.push_back(std::move(p));
      continue;
    }
    if (!feasible.empty() && k.best_case <= feasible.front().cost.tokens_per_s) {
      PlanCandidate p;
      p.config = k.config;
      p.simulated = false;
      p.cost = searcher.cost(k.config);
      p.reason = "slower: at most " + tokens_text(k.best_case);
      out.rejected.push_back(std::move(p));
      continue;
    }
    const double must_beat = feasible.empty() ? 0 : feasible.front().cost.tokens_per_s;
    // What other micro-batches of the same combination found bracket this one.
    int64_t known_unfit = -1;
    for (const auto& [b, pos] : least_position[k.shape]) {
      if (b < k.config.micro_batch) known_unfit = std::max(known_unfit, pos - 1);
    }
    PlanCandidate p = searcher.fit(k, must_beat, known_unfit);
    if (p.fits) {
      const int64_t ck = count(p.config.checkpointed), off = count(p.config.offloaded);
      least_position[k.shape][k.config.micro_batch] = off > 0 ? m.layers + off : ck;
    }
    if (!p.simulated) {
      out.rejected.push_back(std::move(p));
      continue;
    }
    if (!p.fits) {
      bounds.infeasible_from[k.shape] = std::min(
          bounds.infeasible_from.count(k.shape) ? bounds.infeasible_from[k.shape] : INT64_MAX,
          k.config.micro_batch);
      out.rejected.push_back(std::move(p));
      continue;
    }
    feasible.insert(std::upper_bound(feasible.begin(), feasible.end(), p, faster), p);
  }
  return feasible;
}

// The chosen plan's estimate (the allocator model capped where the search capped it; with data,
// at the worst shape) and what stopped the next bigger choice: the next micro-batch, one
// checkpointed or offloaded layer fewer.
void explain(const ModelDesc& m, const DeviceModel& d, const SearchSpace& space, Searcher& searcher,
             PlanSearch& out) {
  if (space.data_shapes) {
    out.estimate = searcher.simulate(out.chosen.config, &out.worst_shape);
  } else {
    DeviceModel limited = d;
    limited.budget_bytes = out.limit_bytes;
    out.estimate = estimate(m, out.chosen.config, limited);
  }
  out.estimate.budget_bytes = d.budget_bytes;

  const TrainConfig& c = out.chosen.config;
  const std::vector<int64_t> sizes = divisors(space.target_batch);
  const auto next = std::upper_bound(sizes.begin(), sizes.end(), c.micro_batch);
  if (next != sizes.end()) {
    for (const PlanCandidate& p : out.rejected) {
      if (p.config.micro_batch != *next || p.config.attention != c.attention ||
          p.config.weights.format != c.weights.format || p.config.optimizer != c.optimizer ||
          (p.config.loss_chunk > 0) != (c.loss_chunk > 0) || !p.simulated) {
        continue;
      }
      out.boundaries.push_back(
          "micro-batch " + std::to_string(*next) + ": " +
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
    out.boundaries.push_back(
        (n > 0 ? "offloading " + std::to_string(n - 1) + " layers instead of " + std::to_string(n)
               : "checkpointing " + std::to_string(k - 1) + " layers instead of " +
                     std::to_string(k)) +
        ": needs " + over_limit(e.peak_bytes, out.limit_bytes));
  }
}

}  // namespace

PlanSearch search_plan(const ModelDesc& m, const TrainConfig& base, const DeviceModel& d,
                       const Rates& r, const SearchSpace& space) {
  if (space.target_batch < 1 || space.target_batch > ConfigLimits::kMicroBatch) {
    throw InputError("--target-batch: " + std::to_string(space.target_batch) + " is not in 1.." +
                     std::to_string(ConfigLimits::kMicroBatch) + " sequences");
  }
  PlanSearch out;
  out.limit_bytes = d.budget_bytes - margin_for(space, d.budget_bytes);
  Searcher searcher(m, d, r, space, out);
  const std::vector<Combo> combos = candidate_combos(m, base, d, space, searcher);
  FrugalBounds bounds = frugal_bounds(combos, m, space, searcher, out);
  const std::vector<PlanCandidate> feasible = fit_combos(combos, bounds, m, searcher, out);
  if (feasible.empty()) return out;

  out.found = true;
  out.chosen = feasible.front();
  const size_t kept =
      static_cast<size_t>(space.runner_ups) + 1;  // the chosen plan and its runner-ups
  for (size_t i = 1; i < feasible.size(); ++i) {
    PlanCandidate p = feasible[i];
    p.reason = "slower: " + tokens_text(p.cost.tokens_per_s);
    if (i < kept) out.runner_ups.push_back(p);
    out.rejected.push_back(std::move(p));
  }
  std::stable_sort(out.rejected.begin(), out.rejected.end(),
                   [](const PlanCandidate& a, const PlanCandidate& b) {
                     if (a.fits != b.fits) return a.fits;
                     return a.cost.tokens_per_s > b.cost.tokens_per_s;
                   });
  if (space.explain) explain(m, d, space, searcher, out);
  return out;
}

int64_t margin_for(const SearchSpace& space, int64_t budget_bytes) {
  return space.margin_bytes +
         static_cast<int64_t>(std::llround(space.margin_share * static_cast<double>(budget_bytes)));
}

std::vector<SweepCell> sweep(const ModelDesc& m, const TrainConfig& base,
                             const std::vector<GpuProfile>& gpus,
                             const std::vector<int64_t>& seq_lens, SearchSpace space, int threads) {
  space.runner_ups = 0;
  space.explain = false;
  std::vector<SweepCell> cells;
  for (const GpuProfile& g : gpus) {
    for (int64_t T : seq_lens) cells.push_back({g, T, {}});
  }
  // What the workers would throw, thrown here: the smallest candidate of each length is valid.
  for (int64_t T : seq_lens) {
    TrainConfig c = base;
    c.seq_len = T;
    c.micro_batch = 1;
    c.grad_accum = space.target_batch;
    if (c.loss_chunk >= c.tokens()) c.loss_chunk = 0;
    validate(c, m);
  }
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < cells.size(); i = next++) {
      TrainConfig c = base;
      c.seq_len = cells[i].seq_len;
      cells[i].search = search_plan(m, c, cuda_device(cells[i].gpu, 0),
                                    gpu_rates(cells[i].gpu, c.compute), space);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::min<int>(threads, static_cast<int>(cells.size())); ++t)
    pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  return cells;
}

}  // namespace loraplan::planner
