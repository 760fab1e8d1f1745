#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "loraplan/planner/dtype.h"
#include "loraplan/planner/model.h"
#include "loraplan/planner/weights.h"

namespace loraplan::planner {

enum class Optimizer { kAdamW, kAdamW8bit, kPagedAdamW8bit, kSgd, kSgdMomentum };
enum class Attention { kEager, kEfficient };  // eager keeps B H T T probabilities for backward
enum class Device { kCuda, kCpu };

// bitsandbytes' 8-bit optimizers (>= 0.44, ../shared/reference/formats.md section 3): a tensor of
// at least kMin8bitStateElements keeps each state as uint8 codes plus an fp32 absmax per block
// of k8bitStateBlock elements; a smaller one keeps fp32 state.
constexpr int64_t kMin8bitStateElements = 4096;
constexpr int64_t k8bitStateBlock = 256;

// One row per optimizer: what the planner counts and where the executor runs it. The flags'
// choices and help, plan.json's validation, the schedule, the cost model and train's refusals
// all read this table; adding an optimizer is a row here, its update in executor/src/optimizer.h
// and a test.
struct OptimizerInfo {
  Optimizer optimizer;
  std::string_view name;   // as flags and plan.json spell it
  int states = 0;          // state tensors per parameter: AdamW's exp_avg and exp_avg_sq, momentum
  bool eight_bit = false;  // bitsandbytes' blockwise 8-bit state (tensors >= kMin8bitStateElements)
  bool paged = false;      // state outside the device's allocator (host bytes on the CPU)
  // Adam's update, which builds sqrt(v) and its quotient: two fp32 temporaries the size of a
  // tensor with fp32 state (8-bit state updates block by block in place).
  bool adam = false;
  bool on_cpu = true, on_cuda = true;  // devices the executor runs it on
  std::string_view summary;            // one line for --help and docs

  bool runs_on(Device d) const { return d == Device::kCpu ? on_cpu : on_cuda; }
  bool state_8bit(int64_t n) const { return eight_bit && n >= kMin8bitStateElements; }
  int64_t state_bytes(int64_t n) const;  // bytes of state for a tensor of n elements
};

const std::vector<OptimizerInfo>& optimizers();  // every row, in the order help lists them
const OptimizerInfo& optimizer_info(Optimizer o);
std::string_view optimizer_name(Optimizer o);  // "adamw", "adamw-8bit", ...
std::optional<Optimizer> parse_optimizer(std::string_view name);
std::string optimizer_choices(std::string_view separator);  // "adamw|adamw-8bit|..."

std::string_view attention_name(Attention a);
std::string_view device_name(Device d);

// One training configuration: every knob that changes what a step allocates. The same struct
// drives estimate, plan and train. Dimension letters as in ModelDesc; N = B T tokens.
struct TrainConfig {
  int64_t seq_len = 1024;       // T, tokens per sequence
  int64_t micro_batch = 1;      // B, sequences per forward/backward
  int64_t grad_accum = 8;       // micro-batches per optimizer step
  QuantOptions weights;         // frozen linear weights (default NF4 + double quant)
  DType compute = DType::kF16;  // activations and matmuls
  int64_t lora_rank = 16;       // r
  double lora_alpha = 32;
  double lora_dropout = 0.05;  // 0 = no dropout masks
  LoraTargets lora_targets;    // resolved for the model
  Optimizer optimizer = Optimizer::kAdamW;
  std::vector<bool> checkpointed;  // [L] layers whose activations are recomputed in backward
  std::vector<bool> offloaded;     // [L] layers whose frozen weights live in host memory
  Attention attention = Attention::kEfficient;
  int64_t loss_chunk = 0;  // tokens per cross-entropy chunk; 0 = full B T V logits
  Device device = Device::kCuda;
  // Positions the rotary tables and eager attention's masks cover, built once before the first
  // step; 0: seq_len. A dataset's shorter micro-batches (planner::with_shape) keep the tables of
  // the run's T, as train builds them.
  int64_t table_len = 0;
  // An evaluation after the optimizer step (--eval-data): a forward pass without gradients of
  // eval_micro_batch sequences of eval_seq_len tokens (<= T), its loss and no backward; 0: none.
  int64_t eval_micro_batch = 0;
  int64_t eval_seq_len = 0;

  int64_t tokens() const { return micro_batch * seq_len; }  // N
  int64_t tables() const { return table_len > 0 ? table_len : seq_len; }
  bool has_eval() const { return eval_micro_batch > 0 && eval_seq_len > 0; }
};

// The largest configuration loraplan plans. With ModelLimits they keep every byte and element
// count of a step inside 64 bits; a step that would need more than kStepBytes is refused (no
// device comes within a million times of it, and its arithmetic would not be exact).
struct ConfigLimits {
  static constexpr int64_t kSeqLen = int64_t{1} << 22;               // T: 4,194,304 tokens
  static constexpr int64_t kMicroBatch = int64_t{1} << 16;           // B: 65,536 sequences
  static constexpr int64_t kTokensPerMicroBatch = int64_t{1} << 24;  // B T: 16,777,216 tokens
  static constexpr int64_t kGradAccum = int64_t{1} << 20;
  static constexpr int64_t kLoraRank = int64_t{1} << 16;
  static constexpr double kStepBytes = 72057594037927936.0;  // 2^56 bytes: 64 PiB
};

// A generous upper bound of the bytes one step of `c` can allocate on `m` (every weight and
// activation at 4 bytes, eager attention's B H T T scores twice), in floating point so that it
// cannot overflow: what validate() holds against ConfigLimits::kStepBytes.
double step_bytes_bound(const TrainConfig& c, const ModelDesc& m);

// Whether `c` is within ConfigLimits on `m` (the checks of validate() that the plan search applies
// to each candidate, which it skips when not).
bool within_limits(const TrainConfig& c, const ModelDesc& m);

// Parsers for the flags; each throws InputError "<flag>: ..." naming the bad value.
// "none" | "all" | "every:K" (layers 0, K, 2K, ...) | "layers:0,3,5"
std::vector<bool> parse_checkpoint(std::string_view text, int64_t layers, std::string_view flag);
// "N" (the first N layers) | "layers:0,3,5" | "none"
std::vector<bool> parse_offload(std::string_view text, int64_t layers, std::string_view flag);
// "full" | "chunked:TOKENS"
int64_t parse_loss(std::string_view text, std::string_view flag);

// Compact text of a layer set, as the flags take it: "none", "all", "every:2", "layers:0,3".
std::string layer_set_text(const std::vector<bool>& layers);

// Checks values the flags cannot check one by one (rank > 0, dropout in [0, 1), sizes within
// ConfigLimits, fp16 compute on the CPU, ...).
void validate(const TrainConfig& c, const ModelDesc& m);

// What a user should know about running this configuration on this model that changes no
// number: the description's inferred facts, and a sequence longer than the model's context.
std::vector<std::string> config_notes(const ModelDesc& m, const TrainConfig& c);

}  // namespace loraplan::planner
