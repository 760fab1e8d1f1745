#include "loraplan/planner/train_config.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "loraplan/planner/errors.h"
#include "loraplan/planner/text.h"

namespace loraplan::planner {
namespace {

[[noreturn]] void bad(std::string_view flag, const std::string& msg) {
  throw InputError(std::string(flag) + ": " + msg);
}

int64_t parse_int(std::string_view text, std::string_view flag, std::string_view whole) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
    bad(flag, "\"" + std::string(whole) + "\": \"" + std::string(text) + "\" is not an integer");
  }
  return v;
}

// "0,3,5" -> layers 0, 3 and 5 set; "0-3,7" -> layers 0, 1, 2, 3 and 7.
std::vector<bool> parse_layer_list(std::string_view list, int64_t layers, std::string_view flag,
                                   std::string_view whole) {
  std::vector<bool> set(layers, false);
  auto layer = [&](std::string_view text) {
    const int64_t l = parse_int(text, flag, whole);
    if (l < 0 || l >= layers) {
      bad(flag, "layer " + std::to_string(l) + " does not exist (the model has layers 0.." +
                    std::to_string(layers - 1) + ")");
    }
    return l;
  };
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    const std::string_view item = list.substr(start, comma - start);
    const size_t dash = item.find('-', 1);
    const int64_t first = layer(item.substr(0, dash));
    const int64_t last = dash == std::string_view::npos ? first : layer(item.substr(dash + 1));
    if (last < first)
      bad(flag,
          "\"" + std::string(whole) + "\": the range " + std::string(item) + " runs backwards");
    for (int64_t l = first; l <= last; ++l) set[l] = true;
    start = comma + 1;
  }
  return set;
}

}  // namespace

const std::vector<OptimizerInfo>& optimizers() {
  static const std::vector<OptimizerInfo> rows = {
      {.optimizer = Optimizer::kAdamW,
       .name = "adamw",
       .states = 2,
       .adam = true,
       .summary = "AdamW with fp32 state (torch.optim.AdamW)"},
      {.optimizer = Optimizer::kAdamW8bit,
       .name = "adamw-8bit",
       .states = 2,
       .eight_bit = true,
       .adam = true,
       .on_cuda = false,
       .summary = "AdamW with bitsandbytes' blockwise 8-bit state (bnb.optim.AdamW8bit)"},
      {.optimizer = Optimizer::kPagedAdamW8bit,
       .name = "paged-adamw-8bit",
       .states = 2,
       .eight_bit = true,
       .paged = true,
       .adam = true,
       .on_cuda = false,
       .summary = "8-bit AdamW whose state lives outside the device's memory "
                  "(bnb.optim.PagedAdamW8bit)"},
      {.optimizer = Optimizer::kSgd, .name = "sgd", .summary = "plain SGD, no state"},
      {.optimizer = Optimizer::kSgdMomentum,
       .name = "sgd-momentum",
       .states = 1,
       .summary = "SGD with momentum 0.9 (one fp32 state)"},
  };
  return rows;
}

const OptimizerInfo& optimizer_info(Optimizer o) {
  for (const OptimizerInfo& r : optimizers()) {
    if (r.optimizer == o) return r;
  }
  throw std::logic_error("an optimizer without a row");
}

std::string_view optimizer_name(Optimizer o) { return optimizer_info(o).name; }

std::optional<Optimizer> parse_optimizer(std::string_view name) {
  for (const OptimizerInfo& r : optimizers()) {
    if (r.name == name) return r.optimizer;
  }
  return std::nullopt;
}

std::string optimizer_choices(std::string_view separator) {
  return join_names(optimizers(), separator);
}

int64_t OptimizerInfo::state_bytes(int64_t n) const {
  // 8-bit: uint8 codes and an fp32 absmax per block for each state; fp32 otherwise.
  if (state_8bit(n)) return states * (n + 4 * ((n + k8bitStateBlock - 1) / k8bitStateBlock));
  return states * 4 * n;
}

std::string_view attention_name(Attention a) {
  return a == Attention::kEager ? "eager" : "efficient";
}
std::string_view device_name(Device d) { return d == Device::kCuda ? "cuda" : "cpu"; }

std::vector<bool> parse_checkpoint(std::string_view text, int64_t layers, std::string_view flag) {
  if (text == "none") return std::vector<bool>(layers, false);
  if (text == "all") return std::vector<bool>(layers, true);
  if (text.starts_with("every:")) {
    const int64_t k = parse_int(text.substr(6), flag, text);
    if (k <= 0) bad(flag, "\"" + std::string(text) + "\": K in every:K must be positive");
    std::vector<bool> set(layers, false);
    for (int64_t l = 0; l < layers; l += k) set[l] = true;
    return set;
  }
  if (text.starts_with("layers:")) return parse_layer_list(text.substr(7), layers, flag, text);
  bad(flag, "\"" + std::string(text) +
                "\" is not none, all, every:K or layers:0,3,5 (ranges: layers:0-7)");
}

std::vector<bool> parse_offload(std::string_view text, int64_t layers, std::string_view flag) {
  if (text == "none") return std::vector<bool>(layers, false);
  if (text.starts_with("layers:")) return parse_layer_list(text.substr(7), layers, flag, text);
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))) {
    bad(flag, "\"" + std::string(text) + "\" is not a layer count N, layers:0,3,5 or none");
  }
  const int64_t n = parse_int(text, flag, text);
  if (n > layers) {
    bad(flag,
        "cannot offload " + std::to_string(n) + " layers, the model has " + std::to_string(layers));
  }
  std::vector<bool> set(layers, false);
  for (int64_t l = 0; l < n; ++l) set[l] = true;
  return set;
}

int64_t parse_loss(std::string_view text, std::string_view flag) {
  if (text == "full") return 0;
  if (text.starts_with("chunked:")) {
    const int64_t n = parse_int(text.substr(8), flag, text);
    if (n <= 0) bad(flag, "\"" + std::string(text) + "\": the chunk must be at least one token");
    return n;
  }
  bad(flag, "\"" + std::string(text) + "\" is not full or chunked:TOKENS");
}

std::string layer_set_text(const std::vector<bool>& layers) {
  int64_t count = 0;
  for (bool b : layers) count += b;
  if (count == 0) return "none";
  if (count == static_cast<int64_t>(layers.size())) return "all";
  std::string s = "layers:";
  for (size_t l = 0; l < layers.size(); ++l) {
    if (!layers[l]) continue;
    size_t last = l;
    while (last + 1 < layers.size() && layers[last + 1]) ++last;
    s += (s.size() > 7 ? "," : "") + std::to_string(l);
    if (last >= l + 2)
      s += "-" + std::to_string(last);
    else if (last == l + 1)
      s += "," + std::to_string(last);
    l = last;
  }
  return s;
}

std::vector<std::string> config_notes(const ModelDesc& m, const TrainConfig& c) {
  std::vector<std::string> notes = m.notes;
  if (m.max_position_embeddings > 0 && c.seq_len > m.max_position_embeddings) {
    notes.push_back("seq-len " + std::to_string(c.seq_len) +
                    " is longer than the model's context (max_position_embeddings " +
                    std::to_string(m.max_position_embeddings) +
                    "): it has not learned positions that far");
  }
  return notes;
}

double step_bytes_bound(const TrainConfig& c, const ModelDesc& m) {
  const double B = static_cast<double>(c.micro_batch), T = static_cast<double>(c.seq_len),
               N = B * T;
  const double C = static_cast<double>(m.hidden), I = static_cast<double>(m.intermediate);
  const double V = static_cast<double>(m.vocab), L = static_cast<double>(m.layers);
  const double H = static_cast<double>(m.heads), Hkv = static_cast<double>(m.kv_heads);
  const double D = static_cast<double>(m.head_dim), r = static_cast<double>(c.lora_rank);
  const double qkvo = (2 * H + 2 * Hkv) * D;  // q, k, v and o widths
  const double weights = L * (C * qkvo + 3 * C * I + r * 8 * (C + I + qkvo)) + 2 * V * C;
  double layer = N * (16 * C + 8 * I + 4 * qkvo);  // saved activations, generously
  if (c.attention == Attention::kEager) layer += 2 * B * H * T * T;  // scores and probabilities
  return 4 * (weights * 4 + L * layer + 4 * N * V);                  // x4 optimizer state, fp32
}

bool within_limits(const TrainConfig& c, const ModelDesc& m) {
  return c.seq_len <= ConfigLimits::kSeqLen && c.micro_batch <= ConfigLimits::kMicroBatch &&
         c.grad_accum <= ConfigLimits::kGradAccum && c.lora_rank <= ConfigLimits::kLoraRank &&
         c.tokens() <= ConfigLimits::kTokensPerMicroBatch &&
         c.loss_chunk <= ConfigLimits::kTokensPerMicroBatch &&
         step_bytes_bound(c, m) <= ConfigLimits::kStepBytes;
}

void validate(const TrainConfig& c, const ModelDesc& m) {
  auto count = [](const char* flag, int64_t v, int64_t limit) {
    if (v <= 0) bad(flag, "must be a positive integer, got " + std::to_string(v));
    if (v > limit)
      bad(flag, std::to_string(v) + " is beyond loraplan's limit of " + std::to_string(limit));
  };
  count("--seq-len", c.seq_len, ConfigLimits::kSeqLen);
  count("--micro-batch", c.micro_batch, ConfigLimits::kMicroBatch);
  count("--grad-accum", c.grad_accum, ConfigLimits::kGradAccum);
  count("--lora-rank", c.lora_rank, ConfigLimits::kLoraRank);
  if (c.has_eval()) {
    count("--eval-batch", c.eval_micro_batch, ConfigLimits::kMicroBatch);
    if (c.eval_seq_len > c.tables()) {
      bad("--eval-data", "eval sequences of " + std::to_string(c.eval_seq_len) +
                             " tokens are longer than --seq-len " + std::to_string(c.tables()));
    }
    if (c.eval_micro_batch * c.eval_seq_len > ConfigLimits::kTokensPerMicroBatch) {
      bad("--eval-batch", "beyond loraplan's limit of " +
                              std::to_string(ConfigLimits::kTokensPerMicroBatch) + " tokens");
    }
  }
  if (c.tokens() > ConfigLimits::kTokensPerMicroBatch) {
    bad("--micro-batch", std::to_string(c.micro_batch) + " x --seq-len " +
                             std::to_string(c.seq_len) + " is beyond loraplan's limit of " +
                             std::to_string(ConfigLimits::kTokensPerMicroBatch) +
                             " tokens per micro-batch");
  }
  if (!(c.lora_dropout >= 0 && c.lora_dropout < 1))
    bad("--lora-dropout", "must be in [0, 1), got " + std::to_string(c.lora_dropout));
  if (!(std::isfinite(c.lora_alpha) && c.lora_alpha > 0))
    bad("--lora-alpha", "must be a finite positive number, got " + std::to_string(c.lora_alpha));
  if (c.loss_chunk < 0 || c.loss_chunk > ConfigLimits::kTokensPerMicroBatch) {
    bad("--loss", "chunked:" + std::to_string(c.loss_chunk) + " is beyond loraplan's limit of " +
                      std::to_string(ConfigLimits::kTokensPerMicroBatch) + " tokens");
  }
  if (const double bytes = step_bytes_bound(c, m); bytes > ConfigLimits::kStepBytes) {
    char text[64];
    const double pib = bytes / 1125899906842624.0;
    std::snprintf(text, sizeof text, pib < 1000 ? "%.3g" : "%.0f", pib);
    bad("--seq-len", "T " + std::to_string(c.seq_len) + " x B " + std::to_string(c.micro_batch) +
                         " on this model could need up to " + text +
                         " PiB in one step; loraplan plans steps up to 64 PiB");
  }
  if (c.device == Device::kCpu && c.compute == DType::kF16) {
    bad("--compute-dtype",
        "fp16 has no matrix products on CPU in LibTorch 1.13; use bf16 or fp32 with --device cpu");
  }
  if (c.lora_targets.modules.empty()) bad("--lora-targets", "no target modules");
  if (static_cast<int64_t>(c.checkpointed.size()) != m.layers ||
      static_cast<int64_t>(c.offloaded.size()) != m.layers) {
    throw std::logic_error("layer sets not resolved for the model");
  }
  if (c.compute != DType::kBF16 && c.compute != DType::kF16 && c.compute != DType::kF32) {
    bad("--compute-dtype", "must be bf16, fp16 or fp32, got " + std::string(dtype_name(c.compute)));
  }
}

}  // namespace loraplan::planner
