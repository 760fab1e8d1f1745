#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "loraplan/planner/model.h"
#include "loraplan/planner/tensor_layout.h"
#include "loraplan/planner/train_config.h"

namespace loraplan::executor {

// What the executor was built against, for --version and run reports.
struct BackendInfo {
  bool available = false;        // false when the LibTorch module is not built or not found
  std::string libtorch_version;  // "1.13.0"; empty when unavailable
  bool cuda_compiled = false;    // LibTorch built with CUDA
  std::string module_path;       // the module that was loaded
};

struct StepMeasure;

// One training run as `loraplan train` asks for it. Plain types only: the CLI never sees LibTorch.
struct DataSequence {
  std::vector<int32_t> ids;
  std::vector<int32_t> labels;  // same length
};

struct DataBatch {
  std::vector<int64_t> rows;  // indices into TrainRequest::sequences: B = rows.size()
  int64_t seq_len = 0;        // T of this micro-batch
  // Packed: how many of `rows` each sequence holds, laid end to end (B = documents.size()); the
  // positions restart and attention stops at each document. Empty: one row per sequence.
  std::vector<int64_t> documents = {};
  int64_t sequences() const {
    return documents.empty() ? static_cast<int64_t>(rows.size())
                             : static_cast<int64_t>(documents.size());
  }
};

struct TrainRequest {
  planner::ModelDesc model;
  planner::TrainConfig config;
  // Frozen weights: safetensors tensors with their files and offsets (planner::safetensors_weights)
  // and the path they came from; empty: seeded random weights.
  std::string weights_source;
  std::vector<planner::TensorRecord> weights;
  // A dataset as the CLI read and batched it (data::make_batches): every sequence's ids and labels
  // (the row's own, unshifted; -100 takes no loss), and the epoch's micro-batches in order, each
  // its rows right-padded to its own T (<= config.seq_len). Steps take micro-batches in turn,
  // starting over after the last. Empty: synthetic data.
  std::string data_path;  // for the report
  std::vector<DataSequence> sequences;
  std::vector<DataBatch> batches;
  // Evaluation (--eval-data): its sequences and micro-batches (each <= config.eval_micro_batch x
  // config.eval_seq_len), run after every eval_every-th optimizer step and after the last one.
  std::vector<DataSequence> eval_sequences;
  std::vector<DataBatch> eval_batches;
  int64_t eval_every = 0;      // 0: after the last step only
  int64_t steps = 50;          // optimizer steps
  double lr = 2e-4;            // peak learning rate
  int64_t warmup_steps = 0;    // linear warmup, then cosine decay to 10% of lr
  double max_grad_norm = 1.0;  // 0 = no clipping
  double weight_decay = 0.0;
  uint64_t seed = 0;         // weights, adapters, dropout and data order
  int64_t budget_bytes = 0;  // device memory limit (CPU: allocated, CUDA: reserved); 0 = none
  int threads = 1;           // intra-op threads
  std::string out_dir;       // where the adapter is written; empty: not written
  // Checkpoints (docs/training.md): after every save_every-th optimizer step but the last, a
  // folder checkpoint_dir/step-NNNNNN written whole and renamed into place; the newest `keep`
  // stay. `identity` (a JSON object the CLI makes of the model, configuration and data) is stored
  // in each, for resume to compare.
  int64_t save_every = 0;  // 0: none
  int64_t keep = 2;
  std::string checkpoint_dir;
  std::string identity;
  // A checkpoint folder to continue from (the CLI has checked its files and identity): its
  // steps are not run again and the report holds their measures.
  std::string resume_from;
  // Set (to the signal's number) by a SIGINT or SIGTERM handler: the run abandons the step in
  // progress, writes a checkpoint of the last finished one (when checkpoint_dir is set) and
  // stops. May be null.
  const std::atomic<int>* stop = nullptr;
  // Out of memory inside a micro-batch (CUDA, or over budget_bytes on the CPU): split it into
  // halves run in turn, weighted so the step's gradient is the same, and keep that size for the
  // rest of the run; down to one sequence. false: stop at the first out-of-memory.
  bool split_on_oom = true;
  // The optimizer step whose memory timeline is recorded (1-based; 0: none). The first step
  // already has the optimizer state, allocated before it.
  int64_t trace_step = 1;
  std::function<void(const StepMeasure&)>
      on_step;  // called after each optimizer step; may be empty
};

// An out-of-memory the run recovered from: micro-batch `micro_batch` (1-based, within the step)
// of step `step` ran out with `from` sequences and was split into pieces of `to`.
// An out-of-memory that train survived: the micro-batch (1-based within its step; with `eval`,
// within the step's evaluation) of `from` sequences ran as pieces of `to` from then on.
struct OomSplit {
  int64_t step = 0, micro_batch = 0, from = 0, to = 0;
  bool eval = false;
};

struct PhaseMeasure {
  std::string name;        // "fwd L3", "loss", "bwd L3", "optim", ...
  int64_t peak_bytes = 0;  // most live tensor bytes within the phase (max over micro-batches)
  // Most reserved bytes within the phase: CUDA, the caching allocator's segments, free or not;
  // CPU, equal to peak_bytes (the tracking allocator caches nothing).
  int64_t reserved_peak_bytes = 0;
};

// One step's memory over time, measured (TrainRequest::trace_step): the live tensor bytes after
// each allocation and free, with the phase it happened in. Held to `max_points`: the events are cut
// into buckets of equal length and each keeps its lowest and highest point, so no maximum is lost.
// The CPU's tracking allocator records it; CUDA does not yet (empty).
struct MeasuredPoint {
  int64_t event = 0;   // the allocation or free's index within the step
  int64_t live = 0;    // live tensor bytes after it
  int32_t phase = -1;  // index into MeasuredTimeline::phases; -1 before the step's first phase
};
struct MeasuredTimeline {
  int64_t step = 0;                 // 1-based; 0: none recorded
  int64_t events = 0;               // allocations and frees in the step
  int64_t bucket_events = 1;        // events per bucket (1: every event is a point)
  std::vector<std::string> phases;  // the step's phases in order of first occurrence
  std::vector<MeasuredPoint> points;
};

struct StepMeasure {
  int64_t step = 0;                 // 1-based optimizer step
  double loss = 0;                  // mean over the step's micro-batches
  int64_t tokens = 0;               // real (unpadded) tokens of the step's micro-batches
  double eval_loss = -1;            // mean over the eval tokens when this step evaluated; -1: none
  double tokens_per_s = 0;          // real tokens per second
  int64_t peak_bytes = 0;           // most live bytes during the step
  int64_t reserved_peak_bytes = 0;  // most reserved bytes during the step (CPU: = peak_bytes)
  double lr = 0;
  int64_t live_bytes = 0;            // allocated at the step's end (weights, adapters, state)
  int64_t host_rss_bytes = 0;        // the process's resident memory at the step's end
  std::vector<PhaseMeasure> phases;  // each phase's peak within this step
};

// What a run measured. Bytes are the tracking allocator's (CPU) or the caching allocator's (CUDA):
// live/peak bytes are allocated bytes; reserved adds the caching allocator's free cached blocks.
struct RunReport {
  std::string device;                // "cpu" or "cuda"
  std::string weights;               // "random (seed N)" or the path the frozen weights came from
  int64_t host_bytes = 0;            // offloaded weights kept in host memory, outside the peaks
  int64_t peak_bytes = 0;            // most live bytes over the measured steps
  int64_t reserved_peak_bytes = 0;   // most reserved bytes over the measured steps (CPU: = peak)
  int64_t resident_bytes = 0;        // live bytes between steps
  std::vector<PhaseMeasure> phases;  // in order of first occurrence, as the planner names them
  std::vector<StepMeasure> steps;
  std::string libtorch_version;
  int threads = 1;
  bool out_of_memory = false;  // the budget was exceeded (the run stopped there)
  int64_t diverged_step = 0;   // the 1-based step whose loss or gradient norm was not finite
                               // (the run stopped there, no adapter written); 0 = none
  std::vector<OomSplit> oom_splits;
  int interrupted = 0;             // the signal that stopped the run (request.stop); 0 = none
  std::string checkpoint;          // the newest checkpoint written; empty: none
  int64_t resumed_step = 0;        // the checkpoint's step the run continued from; 0 = none
  std::string error;               // what ran out of memory or diverged, when it did
  std::vector<std::string> files;  // files written (adapter, config)
  MeasuredTimeline timeline;       // of request.trace_step, when it ran and the device records
};

// The executor behind an interface: the LibTorch implementation lives in a module
// (libloraplan_torch.so) loaded on first use, so planner commands never pay LibTorch's start-up
// (~0.7 s and ~160 MB here); tests can provide a fake.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual BackendInfo info() const = 0;
  // Trains as the request says. Throws std::runtime_error on failures other than out of memory.
  virtual RunReport train(const TrainRequest& request) = 0;
};

// The LibTorch backend, loaded on first call; nullptr when the module is absent. The module is
// looked for in $LORAPLAN_EXECUTOR_MODULE, beside the loraplan binary, then in
// <prefix>/lib/loraplan/.
Backend* torch_backend();

BackendInfo backend_info();

// Throws std::runtime_error("<what>: built without LibTorch ...") when the backend is absent.
Backend& require_backend(const std::string& what);

}  // namespace loraplan::executor

// The module's one exported symbol.
extern "C" loraplan::executor::Backend* loraplan_create_torch_backend();
