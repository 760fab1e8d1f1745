#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "loraplan/planner/model.h"
#include "loraplan/planner/train_config.h"

namespace loraplan::planner {

// What a buffer holds; the breakdown at the peak is reported by these.
enum class Category {
  kWeights,         // frozen base weights (quantized linears, embeddings, norms)
  kAdapters,        // LoRA A and B, fp32
  kOptimizer,       // optimizer state
  kGradients,       // adapter gradients (accumulated over micro-batches)
  kActivations,     // tensors saved for backward, and activation gradients
  kBatch,           // input ids and labels
  kLogits,          // logits, their fp32 copy, log-probabilities and their gradients
  kWorkspace,       // transients: dequantized weights, attention chunks, cuBLAS workspace
  kOffloadStaging,  // offloaded layers' weights staged onto the device for their turn
};
constexpr int kCategoryCount = 9;
std::string_view category_name(Category c);  // "weights", "adapters", ..., "offload_staging"

using CategoryBytes = std::array<int64_t, kCategoryCount>;

// One buffer of the step. Names are built on demand (name()), so building a schedule stays cheap.
struct Buffer {
  const char* tag = "";      // "mlp.gate", "attn.probs", "grad:mlp.up", ...
  int32_t layer = -1;        // decoder layer, -1 outside the layers
  int32_t micro_batch = -1;  // 0-based micro-batch, -1 for buffers that outlive one
  int64_t bytes = 0;
  Category category = Category::kActivations;

  std::string name() const;  // "mb0 L3 mlp.gate"
};

struct Event {
  bool alloc = true;   // false: free
  int32_t buffer = 0;  // index into Schedule::buffers
  int32_t phase = 0;   // index into Schedule::phases
};

// One optimizer step as alloc/free events, in execution order. The step starts in steady state
// (weights, adapters and optimizer state resident) and ends there again.
struct Schedule {
  std::vector<Buffer> buffers;
  std::vector<Event> events;
  std::vector<std::string> phases;      // "setup", "fwd L0", ..., "loss", "bwd L0", "optim"
  int64_t host_bytes = 0;               // offloaded weights kept in host memory
  int64_t host_optimizer_bytes = 0;     // paged optimizer state (unified memory, pages to host)
  int32_t simulated_micro_batches = 0;  // micro-batches 2..n repeat micro-batch 2 exactly
};

// gemm_workspace_bytes: a persistent cuBLAS workspace allocated through the device allocator
// (PyTorch >= 2.0 on CUDA); 0 on CPU.
// cuBLASLt's workspace (TORCH_CUBLASLT_WORKSPACE_SIZE, 1024 KiB by default), per thread.
inline constexpr int64_t kCublasLtWorkspaceBytes = 1 << 20;

Schedule build_schedule(const ModelDesc& m, const TrainConfig& c, int64_t gemm_workspace_bytes = 0);

}  // namespace loraplan::planner
