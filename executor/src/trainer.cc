#include "trainer.h"

#include <dlfcn.h>
#include <torch/cuda.h>
#include <torch/torch.h>
#include <torch/version.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <stdexcept>

#include "checkpoint.h"
#include "memory_meter.h"
#include "model.h"
#include "optimizer.h"

namespace loraplan::executor {
namespace {

using torch::Tensor;

// What the planner models and the executor cannot run is refused, never run as something else.
void refuse_unsupported(const planner::TrainConfig& c) {
  const planner::OptimizerInfo& opt = planner::optimizer_info(c.optimizer);
  if (opt.runs_on(c.device)) return;
  std::vector<std::string> others;
  for (const planner::OptimizerInfo& o : planner::optimizers()) {
    if (o.runs_on(c.device)) others.emplace_back(o.name);
  }
  std::string list;
  for (size_t i = 0; i < others.size(); ++i)
    list += (i == 0 ? "" : i + 1 == others.size() ? " or " : ", ") + others[i];
  const std::string device(planner::device_name(c.device));
  const planner::Device other =
      c.device == planner::Device::kCuda ? planner::Device::kCpu : planner::Device::kCuda;
  const std::string elsewhere =
      opt.runs_on(other) ? " (--device " + std::string(planner::device_name(other)) + " does)" : "";
  throw std::invalid_argument("--optimizer " + std::string(opt.name) +
                              ": the executor does not run it on " + device + elsewhere + "; on " +
                              device + " train with " + list);
}

// One sequence: T input ids and T labels (the next token; -100 where there is none).
struct Example {
  std::vector<int64_t> ids, labels;
};

Example make_example(const std::vector<int64_t>& tokens, int64_t T) {
  Example e{std::vector<int64_t>(T, 0), std::vector<int64_t>(T, -100)};
  const int64_t n = std::min<int64_t>(T, static_cast<int64_t>(tokens.size()));
  for (int64_t t = 0; t < n; ++t) e.ids[t] = tokens[t];
  for (int64_t t = 0; t + 1 < n; ++t) e.labels[t] = tokens[t + 1];
  return e;
}

// A dataset's sequence at its own length: labels shifted to the next token's.
Example data_example(const DataSequence& s) {
  const size_t n = s.ids.size();
  Example e{std::vector<int64_t>(s.ids.begin(), s.ids.end()), std::vector<int64_t>(n, -100)};
  for (size_t t = 0; t + 1 < n; ++t) e.labels[t] = s.labels[t + 1];
  return e;
}

// The examples of a dataset's sequences, once its micro-batches are checked: each at most
// `max_rows` rows (0: any) of at most `max_len` tokens, naming rows that exist, of ids below the
// vocabulary. `what` names them in errors ("an eval micro-batch").
std::vector<Example> data_examples(const std::vector<DataSequence>& sequences,
                                   const std::vector<DataBatch>& batches, int64_t max_rows,
                                   int64_t max_len, int64_t vocab, const std::string& what) {
  std::vector<Example> out;
  for (const DataSequence& s : sequences) out.push_back(data_example(s));
  for (const DataBatch& b : batches) {
    const int64_t rows = b.sequences();
    if (rows == 0 || (max_rows > 0 && rows > max_rows) || b.seq_len <= 0 || b.seq_len > max_len) {
      throw std::invalid_argument(what + " of " + std::to_string(rows) + " x " +
                                  std::to_string(b.seq_len) + " is beyond " +
                                  (max_rows > 0 ? std::to_string(max_rows) : std::string("B")) +
                                  " x " + std::to_string(max_len));
    }
    for (const int64_t row : b.rows) {
      if (row < 0 || static_cast<size_t>(row) >= out.size())
        throw std::invalid_argument(what + " names row " + std::to_string(row));
      for (const int64_t id : out[row].ids) {
        if (id < 0 || id >= vocab)
          throw std::invalid_argument("row " + std::to_string(row) + " holds token id " +
                                      std::to_string(id) + ", beyond the model's vocabulary");
      }
    }
    size_t at = 0;  // a packed sequence's documents fill at most its T
    for (const int64_t n : b.documents) {
      int64_t used = 0;
      for (int64_t k = 0; k < n && at < b.rows.size(); ++k) {
        used += static_cast<int64_t>(out[b.rows[at++]].ids.size());
      }
      if (n <= 0 || used > b.seq_len) {
        throw std::invalid_argument(what + " packs " + std::to_string(used) + " tokens of " +
                                    std::to_string(n) + " documents into " +
                                    std::to_string(b.seq_len));
      }
    }
    if (!b.documents.empty() && at != b.rows.size())
      throw std::invalid_argument(what + " packs a number of documents other than its rows");
  }
  return out;
}

// A micro-batch's sequences as lists of its rows: one row each, or a packed sequence's documents.
std::vector<std::vector<int64_t>> sequences_of(const DataBatch& batch) {
  std::vector<std::vector<int64_t>> out;
  if (batch.documents.empty()) {
    for (const int64_t row : batch.rows) out.push_back({row});
    return out;
  }
  auto at = batch.rows.begin();
  for (const int64_t n : batch.documents) {
    out.emplace_back(at, at + n);
    at += n;
  }
  return out;
}

// Where each document of a packed micro-batch starts in its sequence; empty when not packed.
Documents documents_of(const std::vector<Example>& data, const DataBatch& batch) {
  Documents d;
  if (batch.documents.empty()) return d;
  for (const std::vector<int64_t>& docs : sequences_of(batch)) {
    std::vector<int64_t>& starts = d.starts.emplace_back();
    int64_t t = 0;
    for (const int64_t row : docs) {
      starts.push_back(t);
      t += static_cast<int64_t>(data[row].ids.size());
    }
  }
  return d;
}

// The tokens of a micro-batch that take loss (a label other than -100 within its T).
int64_t label_count(const std::vector<Example>& data, const DataBatch& batch) {
  int64_t n = 0;
  for (const int64_t row : batch.rows) {
    const std::vector<int64_t>& l = data[row].labels;
    n += std::count_if(l.begin(), l.begin() + std::min<int64_t>(batch.seq_len, l.size()),
                       [](int64_t v) { return v != -100; });
  }
  return n;
}

// A micro-batch cut into pieces of at most `most` sequences, in order, each at the batch's T (a
// packed sequence keeps its documents).
std::vector<DataBatch> split(const DataBatch& batch, int64_t most) {
  const std::vector<std::vector<int64_t>> sequences = sequences_of(batch);
  std::vector<DataBatch> out;
  for (size_t i = 0; i < sequences.size(); i += static_cast<size_t>(most)) {
    DataBatch piece;
    piece.seq_len = batch.seq_len;
    for (size_t k = i; k < std::min(sequences.size(), i + static_cast<size_t>(most)); ++k) {
      piece.rows.insert(piece.rows.end(), sequences[k].begin(), sequences[k].end());
      if (!batch.documents.empty())
        piece.documents.push_back(static_cast<int64_t>(sequences[k].size()));
    }
    out.push_back(std::move(piece));
  }
  return out;
}

// The adapters' gradients copied into host memory outside the tracked pool, to put back when a
// micro-batch runs out of memory part-way through its backward.
class GradSnapshot {
 public:
  void save(const std::vector<Tensor>& params) {
    saved_.resize(params.size());
    defined_.assign(params.size(), false);
    for (size_t i = 0; i < params.size(); ++i) {
      const Tensor& g = params[i].grad();
      if (!g.defined()) continue;
      saved_[i].resize(static_cast<size_t>(g.numel()));
      torch::from_blob(saved_[i].data(), g.sizes(), torch::kFloat).copy_(g);
      defined_[i] = true;
    }
  }
  void restore(const std::vector<Tensor>& params) const {
    for (size_t i = 0; i < params.size(); ++i) {
      Tensor p = params[i];
      if (!defined_[i]) {
        p.mutable_grad().reset();
      } else {
        p.mutable_grad().copy_(
            torch::from_blob(const_cast<float*>(saved_[i].data()), p.sizes(), torch::kFloat));
      }
    }
  }

 private:
  std::vector<std::vector<float>> saved_;
  std::vector<bool> defined_;
};

// A micro-batch of dataset rows: [B, T] ids (0 past each row's end) or labels (-100 there). A
// packed sequence lays its documents end to end, each with its own shifted labels, so the last
// token of one document does not learn the first of the next.
Tensor data_batch_tensor(const std::vector<Example>& data, const DataBatch& batch, bool labels,
                         c10::Device device) {
  const int64_t B = batch.sequences(), T = batch.seq_len;
  Tensor t = torch::full({B, T}, labels ? -100 : 0, torch::kLong);
  int64_t* p = t.data_ptr<int64_t>();
  const std::vector<std::vector<int64_t>> sequences = sequences_of(batch);
  for (int64_t b = 0; b < B; ++b) {
    int64_t at = 0;
    for (const int64_t row : sequences[b]) {
      const std::vector<int64_t>& v = labels ? data[row].labels : data[row].ids;
      const int64_t n = std::min<int64_t>(T - at, static_cast<int64_t>(v.size()));
      std::copy_n(v.begin(), n, p + b * T + at);
      at += n;
    }
  }
  return t.to(device);  // the same tensor on the CPU
}

// Thrown inside the step loop when training stops making numbers.
struct Diverged {
  int64_t step;      // 1-based
  std::string what;  // "the loss is nan"
};

// The process's resident memory (Linux: /proc/self/statm), 0 where it cannot be read.
int64_t host_rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  long long pages = 0, resident = 0;
  const int n = std::fscanf(f, "%lld %lld", &pages, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<int64_t>(sysconf(_SC_PAGESIZE)) : 0;
}

// Each phase at its highest over `more` and `into`, in order of first occurrence.
void merge_phases(std::vector<PhaseMeasure>& into, const std::vector<PhaseMeasure>& more) {
  for (const PhaseMeasure& p : more) {
    auto it = std::find_if(into.begin(), into.end(),
                           [&](const PhaseMeasure& q) { return q.name == p.name; });
    if (it == into.end()) {
      into.push_back(p);
    } else {
      it->peak_bytes = std::max(it->peak_bytes, p.peak_bytes);
      it->reserved_peak_bytes = std::max(it->reserved_peak_bytes, p.reserved_peak_bytes);
    }
  }
}

// Thrown when a signal (request.stop) asks the run to stop, at the start of a step or after a
// micro-batch; the step in progress is abandoned.
struct Interrupted {};

std::string non_finite_text(double v) { return std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf"; }

// A small fixed set of random sequences, repeated: a model can learn it, so the loss falls.
std::vector<Example> synthetic(int64_t vocab, int64_t T, uint64_t seed) {
  std::mt19937_64 rng(seed + 1);
  std::uniform_int_distribution<int64_t> token(0, vocab - 1);
  std::vector<Example> out;
  for (int i = 0; i < 16; ++i) {
    std::vector<int64_t> tokens(T + 1);
    for (int64_t& t : tokens) t = token(rng);
    out.push_back(make_example(tokens, T));
  }
  return out;
}

// at::set_num_threads does not reach an OpenBLAS built with its own pthread pool (Debian's
// LibTorch): its workers stay one per core and spin in sched_yield between matrix products,
// costing a single-threaded run over half its speed here. Debian loads two copies (libblas.so.3
// and libopenblas.so.0, each with its own pool); both are found among the libraries already
// loaded. LibTorch builds on MKL or OpenMP BLAS have neither and need nothing.
void set_blas_threads(int threads) {
  for (const char* lib : {"libopenblas.so.0", "libblas.so.3"}) {
    void* handle = dlopen(lib, RTLD_NOW | RTLD_NOLOAD);
    if (!handle) continue;
    if (auto* set = reinterpret_cast<void (*)(int)>(dlsym(handle, "openblas_set_num_threads")))
      set(threads);
    dlclose(handle);
  }
}

double learning_rate(const TrainRequest& r, int64_t step) {  // step is 0-based
  if (step < r.warmup_steps)
    return r.lr * static_cast<double>(step + 1) / static_cast<double>(r.warmup_steps);
  const double span = std::max<int64_t>(1, r.steps - r.warmup_steps);
  const double progress = static_cast<double>(step - r.warmup_steps) / span;
  return r.lr * (0.1 + 0.9 * 0.5 * (1.0 + std::cos(M_PI * progress)));  // cosine to 10%
}

}  // namespace

RunReport run_training(const TrainRequest& r) {
  const planner::ModelDesc& m = r.model;
  const planner::TrainConfig& c = r.config;
  refuse_unsupported(c);
  const c10::Device device = torch_device(c.device);
  // The CPU's tracking allocator or the CUDA caching allocator's counters; refuses a device this
  // build cannot run on.
  const std::unique_ptr<MemoryMeter> meter = make_memory_meter(device);
  MemoryMeter& mem = *meter;
  at::set_num_threads(r.threads);
  set_blas_threads(r.threads);
  // LibTorch sends bf16 matrix products to oneDNN on AVX-512 processors, whose kernels (and the
  // scratch they allocate through the CPU allocator) differ by ISA: AVX512-BF16 and AMX add
  // buffers of 4-22 KB inside each linear. The native path allocates nothing of its own on any
  // processor, so the CPU's measured bytes are the same everywhere (fp32 goes to BLAS either way).
  at::globalContext().setUserEnabledMkldnn(false);
  mem.set_budget(0);
  RunReport report;
  report.device = device.is_cuda() ? "cuda" : "cpu";
  report.threads = r.threads;
  report.libtorch_version = TORCH_VERSION;

  const std::vector<Example> eval_data =
      data_examples(r.eval_sequences, r.eval_batches, c.eval_micro_batch, c.eval_seq_len, m.vocab,
                    "an eval micro-batch");
  const std::vector<Example> data =
      r.batches.empty()
          ? synthetic(m.vocab, c.seq_len, r.seed)
          : data_examples(r.sequences, r.batches, 0, c.seq_len, m.vocab, "a data micro-batch");
  const std::unique_ptr<WeightSource> weights =
      r.weights.empty()
          ? std::unique_ptr<WeightSource>(new RandomWeights())
          : std::unique_ptr<WeightSource>(new SafetensorsWeights(r.weights_source, r.weights));
  Model model(m, c, r.seed, *weights);
  report.weights =
      r.weights.empty() ? "random (seed " + std::to_string(r.seed) + ")" : weights->description();
  report.host_bytes = model.host_bytes();
  Optimizer opt(c.optimizer, model.trainable());
  report.host_bytes += opt.host_bytes();
  std::vector<size_t> order(data.size());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(r.seed);
  std::shuffle(order.begin(), order.end(), rng);
  size_t cursor = 0;
  // 0: micro-batches run whole; else, since an out-of-memory, as pieces of at most this many
  // sequences (later steps too: no oscillation).
  int64_t split_to = 0;
  int64_t first_step = 0;
  if (!r.resume_from.empty()) {
    const TrainerState resumed = read_checkpoint(model, opt, r, device);
    first_step = resumed.step;
    cursor = resumed.cursor;
    split_to = resumed.split_to;
    report.steps = resumed.steps;
    report.resumed_step = resumed.step;
    for (const StepMeasure& s : report.steps) {
      report.peak_bytes = std::max(report.peak_bytes, s.peak_bytes);
      report.reserved_peak_bytes = std::max(report.reserved_peak_bytes, s.reserved_peak_bytes);
    }
  }
  int64_t checkpointed = first_step;  // the step of the newest checkpoint (a resumed one's)
  const auto save = [&](int64_t steps_done) {
    if (r.checkpoint_dir.empty() || steps_done == 0 || steps_done == checkpointed) return;
    report.checkpoint =
        write_checkpoint(model, opt, {steps_done, cursor, report.steps, split_to}, r, device);
    checkpointed = steps_done;
  };
  const auto stopping = [&] { return r.stop != nullptr && r.stop->load() != 0; };

  mem.clear_phases();
  mem.reset_peak();
  mem.set_budget(r.budget_bytes);
  std::vector<PhaseMeasure> run_phases;  // every step's, at their highest
  const int64_t B = c.micro_batch, T = c.seq_len;
  // Out of memory inside a micro-batch: split it and go on (only where memory can run out: CUDA,
  // or a CPU budget).
  const bool recover = r.split_on_oom && (device.is_cuda() || r.budget_bytes > 0);
  GradSnapshot grads;
  // One micro-batch's forward and backward, its gradients accumulating into the adapters'. weight
  // 0: loss / grad_accum; else loss * weight / grad_accum (a piece of a split micro-batch).
  // Returns the loss (not finite: nothing was run backward).
  const auto run_micro_batch = [&](const DataBatch& batch, double weight) {
    mem.set_phase("batch");
    Tensor ids = data_batch_tensor(data, batch, false, device);
    Tensor labels = data_batch_tensor(data, batch, true, device);
    model.set_documents(documents_of(data, batch));
    mem.set_phase("embed");
    Tensor x = model.embed(ids);
    for (int l = 0; l < m.layers; ++l) {
      mem.set_phase("fwd L" + std::to_string(l));
      x = model.layer(l, x);
      if (x.requires_grad()) {
        x.register_hook([&mem, l](const Tensor&) { mem.set_phase("bwd L" + std::to_string(l)); });
      }
    }
    mem.set_phase("loss");
    Tensor loss = model.loss(x, labels);
    x = Tensor();
    const double value = loss.item<double>();
    if (!std::isfinite(value)) return value;
    const auto G = static_cast<double>(c.grad_accum);
    if (weight == 0) {
      (loss / G).backward();
    } else {
      (loss * (weight / G)).backward();
    }
    model.release_staged();  // an offloaded first layer keeps its weights staged until here
    return value;
  };
  try {
    for (int64_t step = first_step; step < r.steps; ++step) {
      // Where the step starts, to come back to when a signal abandons it.
      const size_t step_cursor = cursor;
      const std::vector<uint8_t> step_rng =
          r.stop ? generator_state(device) : std::vector<uint8_t>();
      if (stopping()) throw Interrupted{};
      merge_phases(run_phases, mem.phases());  // the step before (empty at the first)
      mem.clear_phases();                      // each step's phases on their own
      mem.reset_peak();
      const auto start = std::chrono::steady_clock::now();
      const double lr = learning_rate(r, step);
      double loss_sum = 0;
      int64_t tokens = 0;
      for (int64_t mb = 0; mb < c.grad_accum; ++mb) {
        DataBatch batch;
        if (r.batches.empty()) {  // synthetic: the next B sequences of the fixed set
          for (int64_t b = 0; b < B; ++b) {
            batch.rows.push_back(static_cast<int64_t>(order[(cursor + b) % order.size()]));
          }
          batch.seq_len = T;
          cursor += static_cast<size_t>(B);
        } else {
          batch = r.batches[cursor++ % r.batches.size()];
        }
        for (const int64_t row : batch.rows) {
          tokens += std::min<int64_t>(batch.seq_len, static_cast<int64_t>(data[row].ids.size()));
        }
        // The micro-batch as pieces of at most `split_to` sequences, each weighted by its share
        // of the micro-batch's labelled tokens: the step's gradient stays the same weighted mean.
        const double labelled = static_cast<double>(std::max<int64_t>(1, label_count(data, batch)));
        std::vector<DataBatch> pieces = split_to > 0 ? split(batch, split_to) : std::vector{batch};
        double mb_loss = 0;
        for (size_t k = 0; k < pieces.size(); ++k) {
          const DataBatch& piece = pieces[k];
          const bool whole = pieces.size() == 1 && split_to == 0;
          const double share =
              whole ? 1.0 : static_cast<double>(label_count(data, piece)) / labelled;
          if (recover) grads.save(opt.params());
          try {
            const double value = run_micro_batch(piece, whole ? 0.0 : share);
            if (!std::isfinite(value))
              throw Diverged{step + 1, "the loss is " + non_finite_text(value)};
            mb_loss += value * share;
          } catch (const c10::OutOfMemoryError&) {
            const int64_t n = piece.sequences();
            if (!recover || n <= 1) throw;
            // Back to before this piece: its activations are gone with the exception; the
            // gradients of the step's earlier pieces are restored as they were.
            model.release_staged();
            grads.restore(opt.params());
            split_to = (n + 1) / 2;
            report.oom_splits.push_back({step + 1, mb + 1, n, split_to});
            const std::vector<DataBatch> smaller = split(piece, split_to);
            pieces.erase(pieces.begin() + static_cast<std::ptrdiff_t>(k));
            pieces.insert(pieces.begin() + static_cast<std::ptrdiff_t>(k), smaller.begin(),
                          smaller.end());
            --k;
          }
        }
        loss_sum += mb_loss;
        if (stopping()) {
          // Back to the step's start: no gradient, the data and the generators where they were.
          opt.zero_grad();
          cursor = step_cursor;
          set_generator_state(step_rng, device);
          throw Interrupted{};
        }
      }
      mem.set_phase("optim");
      if (const double norm = opt.clip(r.max_grad_norm); !std::isfinite(norm)) {
        throw Diverged{step + 1, "the gradient norm is " + non_finite_text(norm)};
      }
      opt.step(lr, r.weight_decay);
      opt.zero_grad();
      double eval_loss = -1;
      if (!r.eval_batches.empty() &&
          ((r.eval_every > 0 && (step + 1) % r.eval_every == 0) || step + 1 == r.steps)) {
        mem.set_phase("eval");
        double sum = 0;
        int64_t counted = 0;
        for (const DataBatch& batch : r.eval_batches) {
          model.set_documents(documents_of(eval_data, batch));
          const Tensor ids = data_batch_tensor(eval_data, batch, false, device);
          const Tensor labels = data_batch_tensor(eval_data, batch, true, device);
          int64_t n = 0;  // the tokens with a label, counted on the host (no device tensor)
          for (const int64_t row : batch.rows) {
            const std::vector<int64_t>& l = eval_data[row].labels;
            n += std::count_if(l.begin(), l.begin() + std::min<int64_t>(batch.seq_len, l.size()),
                               [](int64_t v) { return v != -100; });
          }
          sum += model.eval_loss(ids, labels).item<double>() * static_cast<double>(n);
          counted += n;
        }
        eval_loss = counted > 0 ? sum / static_cast<double>(counted) : 0;
      }
      if (device.is_cuda())
        torch::cuda::synchronize(device.index());  // the step's kernels are done
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      StepMeasure s;
      s.step = step + 1;
      s.loss = loss_sum / static_cast<double>(c.grad_accum);
      s.tokens = tokens;
      s.eval_loss = eval_loss;
      s.tokens_per_s = static_cast<double>(tokens) / seconds;
      s.peak_bytes = mem.peak_bytes();
      s.reserved_peak_bytes = mem.reserved_peak_bytes();
      s.lr = lr;
      s.live_bytes = mem.live_bytes();
      s.host_rss_bytes = host_rss_bytes();
      s.phases = mem.phases();
      report.steps.push_back(s);
      report.peak_bytes = std::max(report.peak_bytes, s.peak_bytes);
      report.reserved_peak_bytes = std::max(report.reserved_peak_bytes, s.reserved_peak_bytes);
      if (r.on_step) r.on_step(s);
      if (r.save_every > 0 && (step + 1) % r.save_every == 0 && step + 1 < r.steps) save(step + 1);
    }
  } catch (const Interrupted&) {
    report.interrupted = r.stop->load();
    save(report.steps.empty() ? 0 : report.steps.back().step);
  } catch (const Diverged& d) {
    report.diverged_step = d.step;
    report.peak_bytes = std::max(report.peak_bytes, mem.peak_bytes());
    report.reserved_peak_bytes = std::max(report.reserved_peak_bytes, mem.reserved_peak_bytes());
    char lr[32];
    std::snprintf(lr, sizeof lr, "%g", r.lr);
    report.error = "step " + std::to_string(d.step) + ": " + d.what +
                   "; the learning rate may be too high (--lr " + lr +
                   "), or the base weights hold non-finite values";
  } catch (const c10::OutOfMemoryError& e) {
    report.out_of_memory = true;
    const std::string what = e.what_without_backtrace();
    report.error = what.substr(0, what.find('\n'));
    report.peak_bytes = std::max(report.peak_bytes, mem.peak_bytes());
    report.reserved_peak_bytes = std::max(report.reserved_peak_bytes, mem.reserved_peak_bytes());
  }
  mem.set_budget(0);
  merge_phases(run_phases, mem.phases());  // the last step's, or the one that stopped
  report.phases = run_phases;
  report.resident_bytes = mem.live_bytes();
  if (!r.out_dir.empty() && !report.out_of_memory && report.diverged_step == 0 &&
      report.interrupted == 0)
    report.files = save_adapter(model, r, r.out_dir);
  return report;
}

}  // namespace loraplan::executor
