#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace loraplan::planner {

// A GPU as the planner sees it. Rates are dense peaks; the cost model applies efficiencies.
struct GpuProfile {
  std::string name;                  // profile name: "rtx-4090", or "6GB" for a bare size
  std::string display_name;          // "GeForce RTX 4090 24GB"
  std::string compute_capability;    // "8.9"; empty for a bare size
  int64_t memory_bytes = 0;          // total as nvidia-smi reports it (MiB * 2^20)
  double memory_bandwidth_gbps = 0;  // GB/s, 1e9 bytes
  double tensor_tflops = 0;          // dense fp16/bf16 tensor-core rate, fp32 accumulate; 0 if none
  double fp32_tflops = 0;            // dense fp32 (non-tensor) rate
  double pcie_host_gbps = 0;         // host link, GB/s per direction (theoretical)
  bool bf16_native = false;          // compute capability >= 8.0
  int64_t cuda_context_bytes = 0;    // driver/runtime context, outside the caching allocator
  int64_t cublas_workspace_bytes = 0;  // cuBLAS workspace, from the caching allocator
  bool from_size_only = false;         // built from "--gpu 6GB": no rates known
};

// Parses a memory size: "6GB", "6GiB", "6144MiB", "12G", "1.5GB", "512M", "1073741824".
// Units are binary as GPUs are sold: 6GB = 6 GiB = 6144 MiB. Throws InputError naming
// `what` (e.g. "--gpu") on anything else, including zero and negative sizes.
int64_t parse_size(std::string_view text, std::string_view what);

// Human-readable size: "5.73 GiB", "812.0 MiB", "96 B".
std::string format_bytes(int64_t bytes);

// Reads a GPU profile file.
GpuProfile read_gpu_profile(const std::string& path);

// Resolves --gpu: a profile name from profiles/gpus, or a size with a unit (a generic GPU with
// the default context overheads). Names are case-insensitive, spaces and underscores read as
// dashes ("RTX 4090"), and a name that is the start of one profile or holds its words
// ("rtx-4060-ti", "4060 ti") means that profile. Throws InputError naming "--gpu" for unknown
// names (listing the close ones), names that match several profiles (listing them) and bare
// numbers ("4090", "24": a card or a size?).
GpuProfile resolve_gpu(const std::string& spec);

}  // namespace loraplan::planner
