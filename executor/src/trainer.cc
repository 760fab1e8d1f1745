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

#include "batches.h"
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

// One training run: the request's model, data and optimizer on the device, the memory meter, and
// where the run stands (data cursor, split size). run() trains step by step; each step is its
// micro-batches, the optimizer update and the evaluation.
class Run {
 public:
  explicit Run(const TrainRequest& r)
      : r_(r),
        m_(r.model),
        c_(r.config),
        device_((refuse_unsupported(c_), torch_device(c_.device))),
        // The CPU's tracking allocator or the CUDA caching allocator's counters; refuses a device
        // this build cannot run on.
        meter_(make_memory_meter(device_)),
        mem_(*meter_),
        eval_data_(data_examples(r.eval_sequences, r.eval_batches, c_.eval_micro_batch,
                                 c_.eval_seq_len, m_.vocab, "an eval micro-batch")),
        data_(r.batches.empty() ? synthetic(m_.vocab, c_.seq_len, r.seed)
                                : data_examples(r.sequences, r.batches, 0, c_.seq_len, m_.vocab,
                                                "a data micro-batch")),
        weights_(r.weights.empty() ? std::unique_ptr<WeightSource>(new RandomWeights())
                                   : std::unique_ptr<WeightSource>(
                                         new SafetensorsWeights(r.weights_source, r.weights))),
        model_(build_model()),
        opt_(c_.optimizer, model_.trainable()),
        // Out of memory inside a micro-batch: split it and go on (only where memory can run out:
        // CUDA, or a CPU budget).
        recover_(r.split_on_oom && (device_.is_cuda() || r.budget_bytes > 0)) {
    report_.weights = r.weights.empty() ? "random (seed " + std::to_string(r.seed) + ")"
                                        : weights_->description();
    report_.host_bytes = model_.host_bytes() + opt_.host_bytes();
    order_.resize(data_.size());
    std::iota(order_.begin(), order_.end(), 0);
    std::mt19937_64 rng(r.seed);
    std::shuffle(order_.begin(), order_.end(), rng);
    if (!r.resume_from.empty()) resume();
  }

  RunReport run() {
    mem_.clear_phases();
    mem_.reset_peak();
    mem_.set_budget(r_.budget_bytes);
    try {
      for (int64_t step = first_step_; step < r_.steps; ++step) train_step(step);
    } catch (const Interrupted&) {
      report_.interrupted = r_.stop->load();
      save(report_.steps.empty() ? 0 : report_.steps.back().step);
    } catch (const Diverged& d) {
      report_.diverged_step = d.step;
      note_peaks();
      char lr[32];
      std::snprintf(lr, sizeof lr, "%g", r_.lr);
      report_.error = "step " + std::to_string(d.step) + ": " + d.what +
                      "; the learning rate may be too high (--lr " + lr +
                      "), or the base weights hold non-finite values";
    } catch (const c10::OutOfMemoryError& e) {
      report_.out_of_memory = true;
      const std::string what = e.what_without_backtrace();
      report_.error = what.substr(0, what.find('\n'));
      note_peaks();
    }
    mem_.set_budget(0);
    // A traced step that stopped (out of memory, diverged, interrupted): its timeline so far.
    if (MeasuredTimeline t = mem_.stop_timeline(); !t.points.empty()) {
      report_.timeline = std::move(t);
      report_.timeline.step = r_.trace_step;
    }
    merge_phases(run_phases_, mem_.phases());  // the last step's, or the one that stopped
    report_.phases = run_phases_;
    report_.resident_bytes = mem_.live_bytes();
    if (!r_.out_dir.empty() && !report_.out_of_memory && report_.diverged_step == 0 &&
        report_.interrupted == 0)
      report_.files = save_adapter(model_, r_, r_.out_dir);
    return std::move(report_);
  }

 private:
  // Threads, the CPU's kernels and the report's environment, then the model (its weights read or
  // drawn, adapters seeded) with nothing measured yet.
  Model build_model() {
    at::set_num_threads(r_.threads);
    set_blas_threads(r_.threads);
    // LibTorch sends bf16 matrix products to oneDNN on AVX-512 processors, whose kernels (and the
    // scratch they allocate through the CPU allocator) differ by ISA: AVX512-BF16 and AMX add
    // buffers of 4-22 KB inside each linear. The native path allocates nothing of its own on any
    // processor, so the CPU's measured bytes are the same everywhere (fp32 goes to BLAS either
    // way).
    at::globalContext().setUserEnabledMkldnn(false);
    mem_.set_budget(0);
    report_.device = device_.is_cuda() ? "cuda" : "cpu";
    report_.threads = r_.threads;
    report_.libtorch_version = TORCH_VERSION;
    return Model(m_, c_, r_.seed, *weights_);
  }

  void resume() {
    const TrainerState resumed = read_checkpoint(model_, opt_, r_, device_);
    first_step_ = checkpointed_ = resumed.step;
    cursor_ = resumed.cursor;
    split_to_ = resumed.split_to;
    report_.steps = resumed.steps;
    report_.resumed_step = resumed.step;
    for (const StepMeasure& s : report_.steps) {
      report_.peak_bytes = std::max(report_.peak_bytes, s.peak_bytes);
      report_.reserved_peak_bytes = std::max(report_.reserved_peak_bytes, s.reserved_peak_bytes);
    }
  }

  void save(int64_t steps_done) {
    if (r_.checkpoint_dir.empty() || steps_done == 0 || steps_done == checkpointed_) return;
    report_.checkpoint = write_checkpoint(
        model_, opt_, {steps_done, cursor_, report_.steps, split_to_}, r_, device_);
    checkpointed_ = steps_done;
  }

  bool stopping() const { return r_.stop != nullptr && r_.stop->load() != 0; }

  void note_peaks() {
    report_.peak_bytes = std::max(report_.peak_bytes, mem_.peak_bytes());
    report_.reserved_peak_bytes = std::max(report_.reserved_peak_bytes, mem_.reserved_peak_bytes());
  }

  // One optimizer step: grad_accum micro-batches, clipping, the update, the evaluation when due.
  void train_step(int64_t step) {
    // Where the step starts, to come back to when a signal abandons it.
    const size_t step_cursor = cursor_;
    const std::vector<uint8_t> step_rng =
        r_.stop ? generator_state(device_) : std::vector<uint8_t>();
    if (stopping()) throw Interrupted{};
    merge_phases(run_phases_, mem_.phases());  // the step before (empty at the first)
    mem_.clear_phases();                       // each step's phases on their own
    mem_.reset_peak();
    const bool traced = step + 1 == r_.trace_step && mem_.start_timeline();
    const auto start = std::chrono::steady_clock::now();
    const double lr = learning_rate(r_, step);
    double loss_sum = 0;
    int64_t tokens = 0;
    for (int64_t mb = 0; mb < c_.grad_accum; ++mb) {
      const DataBatch batch = next_batch();
      for (const int64_t row : batch.rows) {
        tokens += std::min<int64_t>(batch.seq_len, static_cast<int64_t>(data_[row].ids.size()));
      }
      loss_sum += micro_batch(batch, step, mb);
      if (stopping()) {
        // Back to the step's start: no gradient, the data and the generators where they were.
        opt_.zero_grad();
        cursor_ = step_cursor;
        set_generator_state(step_rng, device_);
        throw Interrupted{};
      }
    }
    mem_.set_phase("optim");
    if (const double norm = opt_.clip(r_.max_grad_norm); !std::isfinite(norm)) {
      throw Diverged{step + 1, "the gradient norm is " + non_finite_text(norm)};
    }
    opt_.step(lr, r_.weight_decay);
    opt_.zero_grad();
    const bool eval_due =
        !r_.eval_batches.empty() &&
        ((r_.eval_every > 0 && (step + 1) % r_.eval_every == 0) || step + 1 == r_.steps);
    const double eval_loss = eval_due ? evaluate(step) : -1;
    if (traced) {
      report_.timeline = mem_.stop_timeline();
      report_.timeline.step = step + 1;
    }
    if (device_.is_cuda())
      torch::cuda::synchronize(device_.index());  // the step's kernels are done
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    StepMeasure s;
    s.step = step + 1;
    s.loss = loss_sum / static_cast<double>(c_.grad_accum);
    s.tokens = tokens;
    s.eval_loss = eval_loss;
    s.tokens_per_s = static_cast<double>(tokens) / seconds;
    s.peak_bytes = mem_.peak_bytes();
    s.reserved_peak_bytes = mem_.reserved_peak_bytes();
    s.lr = lr;
    s.live_bytes = mem_.live_bytes();
    s.host_rss_bytes = host_rss_bytes();
    s.phases = mem_.phases();
    report_.steps.push_back(s);
    note_peaks();
    if (r_.on_step) r_.on_step(s);
    if (r_.save_every > 0 && (step + 1) % r_.save_every == 0 && step + 1 < r_.steps) save(step + 1);
  }

  // The next micro-batch: the dataset's in turn, or the next B sequences of the synthetic set.
  DataBatch next_batch() {
    if (!r_.batches.empty()) return r_.batches[cursor_++ % r_.batches.size()];
    DataBatch batch;
    for (int64_t b = 0; b < c_.micro_batch; ++b) {
      batch.rows.push_back(static_cast<int64_t>(order_[(cursor_ + b) % order_.size()]));
    }
    batch.seq_len = c_.seq_len;
    cursor_ += static_cast<size_t>(c_.micro_batch);
    return batch;
  }

  // A micro-batch as pieces of at most `split_to_` sequences, each weighted by its share of the
  // micro-batch's labelled tokens, so the step's gradient stays the same weighted mean. Out of
  // memory in a piece (when recovering): its gradients are put back and it runs again as halves.
  // Returns the micro-batch's loss.
  double micro_batch(const DataBatch& batch, int64_t step, int64_t mb) {
    const double labelled = static_cast<double>(std::max<int64_t>(1, label_count(data_, batch)));
    std::vector<DataBatch> pieces = split_to_ > 0 ? split(batch, split_to_) : std::vector{batch};
    double loss = 0;
    for (size_t k = 0; k < pieces.size(); ++k) {
      const DataBatch& piece = pieces[k];
      const bool whole = pieces.size() == 1 && split_to_ == 0;
      const double share = whole ? 1.0 : static_cast<double>(label_count(data_, piece)) / labelled;
      if (recover_) grads_.save(opt_.params());
      try {
        const double value = forward_backward(piece, whole ? 0.0 : share);
        if (!std::isfinite(value))
          throw Diverged{step + 1, "the loss is " + non_finite_text(value)};
        loss += value * share;
      } catch (const c10::OutOfMemoryError&) {
        const int64_t n = piece.sequences();
        if (!recover_ || n <= 1) throw;
        // Back to before this piece: its activations are gone with the exception; the gradients
        // of the step's earlier pieces are restored as they were.
        model_.release_staged();
        grads_.restore(opt_.params());
        split_to_ = (n + 1) / 2;
        report_.oom_splits.push_back({step + 1, mb + 1, n, split_to_});
        const std::vector<DataBatch> smaller = split(piece, split_to_);
        pieces.erase(pieces.begin() + static_cast<std::ptrdiff_t>(k));
        pieces.insert(pieces.begin() + static_cast<std::ptrdiff_t>(k), smaller.begin(),
                      smaller.end());
        --k;
      }
    }
    return loss;
  }

  // One micro-batch's forward and backward, its gradients accumulating into the adapters'.
  // weight 0: loss / grad_accum; else loss * weight / grad_accum (a piece of a split
  // micro-batch). Returns the loss (not finite: nothing was run backward).
  double forward_backward(const DataBatch& batch, double weight) {
    mem_.set_phase("batch");
    Tensor ids = data_batch_tensor(data_, batch, false, device_);
    Tensor labels = data_batch_tensor(data_, batch, true, device_);
    model_.set_documents(documents_of(data_, batch));
    mem_.set_phase("embed");
    Tensor x = model_.embed(ids);
    for (int l = 0; l < m_.layers; ++l) {
      mem_.set_phase("fwd L" + std::to_string(l));
      x = model_.layer(l, x);
      if (x.requires_grad()) {
        MemoryMeter& mem = mem_;
        x.register_hook([&mem, l](const Tensor&) { mem.set_phase("bwd L" + std::to_string(l)); });
      }
    }
    mem_.set_phase("loss");
    Tensor loss = model_.loss(x, labels);
    x = Tensor();
    const double value = loss.item<double>();
    if (!std::isfinite(value)) return value;
    const auto G = static_cast<double>(c_.grad_accum);
    if (weight == 0) {
      (loss / G).backward();
    } else {
      (loss * (weight / G)).backward();
    }
    model_.release_staged();  // an offloaded first layer keeps its weights staged until here
    return value;
  }

  // The mean loss over the eval micro-batches' labelled tokens. Out of memory in one (when
  // recovering): it runs again as halves, which sum to the same mean, and so do later ones.
  double evaluate(int64_t step) {
    mem_.set_phase("eval");
    double sum = 0;
    int64_t counted = 0;
    for (size_t i = 0; i < r_.eval_batches.size(); ++i) {
      const DataBatch& batch = r_.eval_batches[i];
      std::vector<DataBatch> pieces =
          eval_split_to_ > 0 ? split(batch, eval_split_to_) : std::vector{batch};
      for (size_t k = 0; k < pieces.size(); ++k) {
        const DataBatch& piece = pieces[k];
        try {
          const double loss = eval_loss(piece);
          const int64_t n = label_count(eval_data_, piece);  // on the host: no device tensor
          sum += loss * static_cast<double>(n);
          counted += n;
        } catch (const c10::OutOfMemoryError&) {
          const int64_t n = piece.sequences();
          if (!recover_ || n <= 1) throw;
          model_.release_staged();
          eval_split_to_ = (n + 1) / 2;
          report_.oom_splits.push_back(
              {step + 1, static_cast<int64_t>(i) + 1, n, eval_split_to_, /*eval=*/true});
          const std::vector<DataBatch> smaller = split(piece, eval_split_to_);
          pieces.erase(pieces.begin() + static_cast<std::ptrdiff_t>(k));
          pieces.insert(pieces.begin() + static_cast<std::ptrdiff_t>(k), smaller.begin(),
                        smaller.end());
          --k;
        }
      }
    }
    return counted > 0 ? sum / static_cast<double>(counted) : 0;
  }

  double eval_loss(const DataBatch& batch) {
    model_.set_documents(documents_of(eval_data_, batch));
    const Tensor ids = data_batch_tensor(eval_data_, batch, false, device_);
    const Tensor labels = data_batch_tensor(eval_data_, batch, true, device_);
    return model_.eval_loss(ids, labels).item<double>();
  }

  const TrainRequest& r_;
  const planner::ModelDesc& m_;
  const planner::TrainConfig& c_;
  RunReport report_;
  const c10::Device device_;
  const std::unique_ptr<MemoryMeter> meter_;
  MemoryMeter& mem_;
  const std::vector<Example> eval_data_, data_;
  const std::unique_ptr<WeightSource> weights_;
  Model model_;
  Optimizer opt_;
  const bool recover_;
  GradSnapshot grads_;
  std::vector<size_t> order_;  // the synthetic set's shuffled order
  size_t cursor_ = 0;          // micro-batches (or synthetic sequences) taken
  // 0: micro-batches run whole; else, since an out-of-memory, as pieces of at most this many
  // sequences (later steps too: no oscillation).
  int64_t split_to_ = 0;
  int64_t eval_split_to_ = 0;  // the same for the eval micro-batches
  int64_t first_step_ = 0;
  int64_t checkpointed_ = 0;              // the step of the newest checkpoint (a resumed one's)
  std::vector<PhaseMeasure> run_phases_;  // every step's, at their highest
};

}  // namespace

RunReport run_training(const TrainRequest& r) { return Run(r).run(); }

}  // namespace loraplan::executor
