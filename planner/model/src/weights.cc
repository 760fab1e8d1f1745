#include "loraplan/planner/weights.h"

#include <algorithm>
#include <stdexcept>

#include "loraplan/planner/errors.h"
#include "loraplan/planner/text.h"

namespace loraplan::planner {
namespace {

constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

const std::vector<WeightFormatInfo>& weight_formats() {
  using L = WeightLayout;
  static const std::vector<WeightFormatInfo> rows = {
      {WeightFormat::kNf4, "nf4", L::kBlockwise4bit, DType::kU8, 4,
       "4-bit NormalFloat, bitsandbytes' QLoRA format"},
      {WeightFormat::kFp4, "fp4", L::kBlockwise4bit, DType::kU8, 4, "4-bit float (bitsandbytes)"},
      {WeightFormat::kInt8, "int8", L::kRowwise8bit, DType::kI8, 8,
       "8-bit integers with a scale per row (LLM.int8() weights)"},
      {WeightFormat::kBf16, "bf16", L::kPlain, DType::kBF16, 16, "bfloat16, unquantized"},
      {WeightFormat::kFp16, "fp16", L::kPlain, DType::kF16, 16, "float16, unquantized"},
      {WeightFormat::kFp32, "fp32", L::kPlain, DType::kF32, 32, "float32, unquantized"},
  };
  return rows;
}

const WeightFormatInfo& weight_format_info(WeightFormat f) {
  for (const WeightFormatInfo& r : weight_formats()) {
    if (r.format == f) return r;
  }
  throw std::logic_error("a weight format without a row");
}

std::string_view weight_format_name(WeightFormat f) { return weight_format_info(f).name; }

std::optional<WeightFormat> parse_weight_format(std::string_view name) {
  for (const WeightFormatInfo& r : weight_formats()) {
    if (r.name == name) return r.format;
  }
  return std::nullopt;
}

std::string weight_format_choices(std::string_view separator) {
  return join_names(weight_formats(), separator);
}

int64_t linear_weight_bytes(int64_t out, int64_t in, const QuantOptions& q) {
  const int64_t n = out * in;
  const WeightFormatInfo& f = weight_format_info(q.format);
  switch (f.layout) {
    case WeightLayout::kBlockwise4bit: {
      const int64_t blocks = ceil_div(n, q.block);
      const int64_t codes = (n + 1) / 2;                          // two 4-bit codes per byte
      const int64_t code_map = 16 * 4;                            // fp32 [16]
      if (!q.double_quant) return codes + 4 * blocks + code_map;  // absmax fp32 [blocks]
      const int64_t absmax = blocks;                              // uint8 [blocks]
      const int64_t absmax2 = 4 * ceil_div(blocks, 256);          // fp32 [blocks / 256]
      const int64_t map2 = 256 * 4 + 4;  // fp32 [256] dynamic map + fp32 offset
      return codes + absmax + absmax2 + code_map + map2;
    }
    case WeightLayout::kRowwise8bit:
      return n + 4 * out;  // int8 [out, in] + fp32 [out] scales
    case WeightLayout::kPlain:
      return n * dtype_bytes(f.dtype);
  }
  return 0;
}

std::string weights_text(const QuantOptions& q) {
  std::string w(weight_format_name(q.format));
  return weight_format_info(q.format).four_bit() && q.double_quant ? w + "+dq" : w;
}

bool LoraTargets::contains(Module m) const {
  return std::binary_search(modules.begin(), modules.end(), m);
}

LoraTargets parse_lora_targets(std::string_view text, const ModelDesc& m, std::string_view flag) {
  struct Alias {
    std::string_view name, hf_name;
    Module separate, fused;  // module on split layouts, on fused (Phi-3) layouts
  };
  constexpr Alias kAliases[] = {
      {"q", "q_proj", Module::kQ, Module::kQkv},
      {"k", "k_proj", Module::kK, Module::kQkv},
      {"v", "v_proj", Module::kV, Module::kQkv},
      {"qkv", "qkv_proj", Module::kQkv, Module::kQkv},
      {"o", "o_proj", Module::kO, Module::kO},
      {"gate", "gate_proj", Module::kGate, Module::kGateUp},
      {"up", "up_proj", Module::kUp, Module::kGateUp},
      {"gate_up", "gate_up_proj", Module::kGateUp, Module::kGateUp},
      {"down", "down_proj", Module::kDown, Module::kDown},
  };
  const bool fused = m.fused_qkv;
  LoraTargets t;
  if (text == "all-linear") text = fused ? "qkv,o,gate_up,down" : "q,k,v,o,gate,up,down";
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string_view item = text.substr(start, comma - start);
    const Alias* alias =
        std::find_if(std::begin(kAliases), std::end(kAliases),
                     [&](const Alias& a) { return a.name == item || a.hf_name == item; });
    if (alias == std::end(kAliases)) {
      throw InputError(std::string(flag) + ": unknown target \"" + std::string(item) +
                       "\" (use q,k,v,o,gate,up,down or all-linear)");
    }
    const Module module = fused ? alias->fused : alias->separate;
    const bool names_fused = alias->separate == Module::kQkv || alias->separate == Module::kGateUp;
    if (names_fused && !fused) {
      throw InputError(std::string(flag) + ": target \"" + std::string(item) +
                       "\" needs a fused layout (phi3); this model has separate projections");
    }
    t.modules.push_back(module);
    start = comma + 1;
  }
  std::sort(t.modules.begin(), t.modules.end());
  t.modules.erase(std::unique(t.modules.begin(), t.modules.end()), t.modules.end());
  return t;
}

std::string lora_targets_text(const LoraTargets& t) {
  std::string s;
  for (Module m : t.modules) s += (s.empty() ? "" : ",") + std::string(module_name(m));
  return s;
}

int64_t lora_params(const std::vector<TensorSpec>& tensors, const LoraTargets& t, int64_t rank) {
  int64_t n = 0;
  for (const TensorSpec& s : tensors) {
    if (s.is_linear_weight() && t.contains(s.module))
      n += rank * (s.shape[0] + s.shape[1]);  // A [r, in], B [out, r]
  }
  return n;
}

}  // namespace loraplan::planner
