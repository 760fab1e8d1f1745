// Frozen weights from safetensors: the executor's forward on loaded weights equals a plain
// reference forward written with at:: ops on the same weights, and bad files name the tensor and
// the file.
#include "weight_source.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "fixtures/model_files.h"
#include "loraplan/planner/model_loader.h"
#include "model.h"
#include "tiny_config.h"
#include "tracking_allocator.h"
#include "trainer.h"

namespace loraplan::executor {
namespace {

using torch::Tensor;

// fp32 frozen weights, LoRA r4, accumulation 8: the logits are the base model's own.
planner::TrainConfig fp32_config(const planner::ModelDesc& m) {
  planner::TrainConfig c = tiny_config(m);
  c.grad_accum = 8;
  c.weights = {.format = planner::WeightFormat::kFp32};
  c.lora_rank = 4;
  return c;
}

// Random fp32 values for every tensor of the model: norms near 1, everything else N(0, 0.05).
struct ModelWeights {
  std::vector<planner::TensorRecord> records;
  std::vector<std::string> bytes;  // [records] raw little-endian fp32
  std::map<std::string, Tensor> by_name;
};

ModelWeights random_weights(const planner::ModelDesc& m) {
  torch::manual_seed(11);
  ModelWeights w;
  w.records = loraplan::testing::records_of(m);
  for (planner::TensorRecord& r : w.records) {
    r.dtype = planner::DType::kF32;
    const bool norm = r.name.find("norm") != std::string::npos;
    const Tensor t = norm ? 1 + 0.1 * torch::randn(r.shape) : 0.05 * torch::randn(r.shape);
    w.bytes.emplace_back(static_cast<const char*>(t.data_ptr()), t.numel() * sizeof(float));
    w.by_name[r.name] = t;
  }
  return w;
}

// A model directory: config.json (the description's keys, then `extra` over them) and the
// weights, in one file or in shards with an index. Returns the config as written.
nlohmann::json write_model(const std::string& dir, planner::ModelDesc m, const ModelWeights& w,
                           int shards, const std::string& extra = "{}") {
  m.dtype = planner::DType::kF32;
  nlohmann::json config = nlohmann::json::parse(loraplan::testing::config_json_text(m));
  config.update(nlohmann::json::parse(extra));
  loraplan::testing::write_text(dir + "/config.json", config.dump(2));
  if (shards == 1) {
    loraplan::testing::write_safetensors(dir + "/model.safetensors", w.records, w.bytes);
  } else {
    loraplan::testing::write_sharded_safetensors(dir, w.records, shards, w.bytes);
  }
  return config;
}

// ---- The reference: Hugging Face's forward for each family, written out plainly from the
// config.json as written (not from the description loraplan read). ----
double num(const nlohmann::json& config, const char* key, double fallback) {
  return config.contains(key) && !config[key].is_null() ? config[key].get<double>() : fallback;
}

// (1 + w) for Gemma, w otherwise.
Tensor rms_norm(const Tensor& x, const Tensor& w, double eps, bool gemma) {
  return x * torch::rsqrt(x.pow(2).mean(-1, true) + eps) * (gemma ? 1 + w : w);
}

Tensor rotate_half(const Tensor& x) {
  const int64_t h = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, h, h), x.narrow(-1, 0, h)}, -1);
}

struct Rotary {
  Tensor inv_freq;  // [rot / 2]
  double attention_factor = 1;
};

// modeling_rope_utils.py's inverse frequencies for the rope_scaling types the cases use.
Rotary rotary(const nlohmann::json& config, int64_t rot, int64_t T) {
  const double theta = num(config, "rope_theta", 10000);
  const Tensor exponent = torch::arange(0, rot, 2, torch::kDouble) / static_cast<double>(rot);
  Tensor inv = 1.0 / torch::pow(theta, exponent);
  if (!config.contains("rope_scaling")) return {inv.to(torch::kFloat), 1};
  const nlohmann::json& rs = config["rope_scaling"];
  const std::string type = rs.value("rope_type", rs.value("type", std::string()));
  double attention = 1;
  if (type == "linear") {
    inv = inv / rs["factor"].get<double>();
  } else if (type == "llama3") {
    const double factor = rs["factor"], lo = rs["low_freq_factor"], hi = rs["high_freq_factor"];
    const double old_len = rs["original_max_position_embeddings"];
    const Tensor wavelen = 2 * M_PI / inv;
    const Tensor scaled = torch::where(wavelen > old_len / lo, inv / factor, inv);
    const Tensor smooth = (old_len / wavelen - lo) / (hi - lo);
    const Tensor smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
    const Tensor medium = (wavelen >= old_len / hi).logical_and(wavelen <= old_len / lo);
    inv = torch::where(medium, smoothed, scaled);
  } else if (type == "longrope") {
    const double orig = num(config, "original_max_position_embeddings", 0);
    const double factor = num(config, "max_position_embeddings", 0) / orig;
    attention = std::sqrt(1 + std::log(factor) / std::log(orig));
    const auto ext = rs[T > orig ? "long_factor" : "short_factor"].get<std::vector<double>>();
    inv = inv / torch::tensor(ext, torch::kDouble);
  } else if (type == "yarn") {
    const double factor = rs["factor"], orig = rs["original_max_position_embeddings"];
    attention = 0.1 * std::log(factor) + 1;
    auto dim_of = [&](double turns) {
      return rot * std::log(orig / (turns * 2 * M_PI)) / (2 * std::log(theta));
    };
    const double low = std::max(std::floor(dim_of(32)), 0.0);
    const double high = std::min(std::ceil(dim_of(1)), static_cast<double>(rot - 1));
    const Tensor ramp = ((torch::arange(rot / 2, torch::kDouble) - low) / (high - low)).clamp(0, 1);
    const Tensor extrapolate = 1 - ramp;
    inv = inv / factor * (1 - extrapolate) + inv * extrapolate;
  } else {
    ADD_FAILURE() << "the reference has no rope_type " << type;
  }
  return {inv.to(torch::kFloat), attention};
}

// x [B, H, T, D]: the first `rot` dims of each head rotated by position.
Tensor rope(const Tensor& x, int64_t rot, const Rotary& r) {
  const int64_t T = x.size(2);
  const Tensor freqs = torch::outer(torch::arange(T, torch::kFloat), r.inv_freq);
  const Tensor emb = torch::cat({freqs, freqs}, -1);  // [T, rot]
  const Tensor cos = emb.cos() * r.attention_factor, sin = emb.sin() * r.attention_factor;
  const Tensor x_rot = x.narrow(-1, 0, rot), pass = x.narrow(-1, rot, x.size(-1) - rot);
  return torch::cat({x_rot * cos + rotate_half(x_rot) * sin, pass}, -1);
}

// A frozen projection with its adapter: x W^T (+ b) + scale (x A^T) B^T.
Tensor project(const ModelWeights& w, const FrozenLinear& f, const Tensor& x) {
  Tensor y = torch::matmul(x, w.by_name.at(f.name + ".weight").t());
  if (w.by_name.count(f.name + ".bias")) y = y + w.by_name.at(f.name + ".bias");
  if (f.lora) y = y + f.lora->scale * torch::matmul(torch::matmul(x, f.lora->A.t()), f.lora->B.t());
  return y;
}

Tensor softcap(const Tensor& x, double cap) { return cap > 0 ? torch::tanh(x / cap) * cap : x; }

Tensor reference_logits(const planner::ModelDesc& m, const Model& model, const ModelWeights& w,
                        const Tensor& ids, const nlohmann::json& config) {
  const int64_t B = ids.size(0), T = ids.size(1), H = m.heads, Hkv = m.kv_heads, D = m.head_dim;
  const int64_t HD = H * D, KD = Hkv * D, I = m.intermediate;
  const std::string type = config["model_type"];
  const bool gemma = type == "gemma2";
  const double eps = num(config, "rms_norm_eps", 1e-6);
  const int64_t rot = static_cast<int64_t>(D * num(config, "partial_rotary_factor", 1.0));
  const Rotary rotation = rotary(config, rot, T);
  const double scale =
      1 / std::sqrt(gemma ? num(config, "query_pre_attn_scalar", 256) : static_cast<double>(D));
  const double window =
      gemma || type == "mistral" || type == "phi3" ? num(config, "sliding_window", 0) : 0;
  auto norm = [&](const Tensor& x, const std::string& name) {
    return rms_norm(x, w.by_name.at(name), eps, gemma);
  };
  const std::string act = gemma
                              ? config.value("hidden_activation", std::string("gelu_pytorch_tanh"))
                              : config.value("hidden_act", std::string("silu"));
  auto activation = [&](const Tensor& g) {
    if (act == "gelu_pytorch_tanh") return torch::gelu(g, "tanh");
    if (act == "gelu") return torch::gelu(g);
    EXPECT_EQ(act, "silu");
    return torch::silu(g);
  };

  Tensor x = w.by_name.at("model.embed_tokens.weight")
                 .index_select(0, ids.reshape(-1))
                 .view({B, T, m.hidden});
  if (gemma) x = x * std::sqrt(static_cast<double>(m.hidden));
  const Tensor i = torch::arange(T).unsqueeze(1), j = torch::arange(T).unsqueeze(0);
  for (int l = 0; l < m.layers; ++l) {
    const DecoderLayer& d = model.layers()[l];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const Tensor h = norm(x, p + "input_layernorm.weight");
    Tensor q, k, v;
    if (m.fused_qkv) {
      const Tensor qkv = project(w, d.attn[0], h);
      q = qkv.narrow(-1, 0, HD), k = qkv.narrow(-1, HD, KD), v = qkv.narrow(-1, HD + KD, KD);
    } else {
      q = project(w, d.attn[0], h), k = project(w, d.attn[1], h), v = project(w, d.attn[2], h);
    }
    q = q.reshape({B, T, H, D}), k = k.reshape({B, T, Hkv, D});
    if (type == "qwen3") {
      q = rms_norm(q, w.by_name.at(p + "self_attn.q_norm.weight"), eps, false);
      k = rms_norm(k, w.by_name.at(p + "self_attn.k_norm.weight"), eps, false);
    }
    q = rope(q.transpose(1, 2), rot, rotation);
    k = rope(k.transpose(1, 2), rot, rotation).repeat_interleave(H / Hkv, 1);
    v = v.reshape({B, T, Hkv, D}).transpose(1, 2).repeat_interleave(H / Hkv, 1);
    Tensor masked = j > i;  // later tokens
    if (window > 0 && (!gemma || l % 2 == 0)) masked = masked.logical_or(i - j >= window);
    const Tensor scores = softcap(torch::matmul(q, k.transpose(2, 3)) * scale,
                                  num(config, "attn_logit_softcapping", 0));
    const Tensor o = torch::matmul(torch::softmax(scores.masked_fill(masked, -INFINITY), -1), v);
    Tensor attn = project(w, d.attn.back(), o.transpose(1, 2).reshape({B, T, HD}));
    if (gemma) attn = norm(attn, p + "post_attention_layernorm.weight");
    x = x + attn;
    const Tensor h2 = norm(
        x, p + (gemma ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight"));
    Tensor gate, up;
    if (m.fused_gate_up) {
      const Tensor gu = project(w, d.mlp[0], h2);
      gate = gu.narrow(-1, 0, I), up = gu.narrow(-1, I, I);
    } else {
      gate = project(w, d.mlp[0], h2), up = project(w, d.mlp[1], h2);
    }
    Tensor down = project(w, d.mlp.back(), activation(gate) * up);
    if (gemma) down = norm(down, p + "post_feedforward_layernorm.weight");
    x = x + down;
  }
  const Tensor head =
      w.by_name.at(m.tied_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
  return softcap(torch::matmul(norm(x, "model.norm.weight"), head.t()),
                 num(config, "final_logit_softcapping", 0));
}

struct LoadCase {
  const char* name;
  const char* model;
  int shards;
  std::string extra;  // config.json fields over the profile's
  planner::Attention attention = planner::Attention::kEager;
  int64_t seq_len = 32;
};

void PrintTo(const LoadCase& c, std::ostream* os) { *os << c.name; }

class LoadedWeights : public ::testing::TestWithParam<LoadCase> {};

TEST_P(LoadedWeights, LogitsEqualThePlainReference) {
  const LoadCase& lc = GetParam();
  const planner::ModelDesc profile = planner::load_model(lc.model);
  const ModelWeights w = random_weights(profile);
  loraplan::testing::TempDir dir;
  const nlohmann::json config = write_model(dir.path(), profile, w, lc.shards, lc.extra);

  const planner::ModelDesc m = planner::load_model(dir.path());
  const planner::WeightFiles files = planner::safetensors_weights(dir.path());
  ASSERT_EQ(files.source, dir.path());
  ASSERT_EQ(files.tensors.size(), w.records.size());
  const SafetensorsWeights source(files.source, files.tensors);
  planner::TrainConfig c = fp32_config(m);
  c.attention = lc.attention;
  c.seq_len = lc.seq_len;
  const Model model(m, c, 7, source);
  for (const Tensor& p : model.trainable()) {  // non-zero B: the adapters take part
    torch::NoGradGuard g;
    if (p.abs().sum().item<double>() == 0) p.normal_(0, 0.05);
  }
  torch::manual_seed(3);
  const Tensor ids = torch::randint(m.vocab, {2, lc.seq_len});
  torch::NoGradGuard no_grad;
  Tensor x = model.embed(ids);
  for (int l = 0; l < m.layers; ++l) x = model.layer(l, x);
  const Tensor got = model.logits(x);
  const Tensor want = reference_logits(m, model, w, ids, config);
  ASSERT_EQ(got.sizes(), want.sizes());
  const double diff = (got - want).abs().max().item<double>();
  EXPECT_LT(diff, 1e-5) << "max |logit| " << want.abs().max().item<double>();
  EXPECT_GT(want.abs().max().item<double>(), 0.1);  // the comparison is not between near-zeros
}

std::string numbers(std::initializer_list<double> v) {
  std::string s = "[";
  for (double x : v) s += (s.size() > 1 ? ", " : "") + std::to_string(x);
  return s + "]";
}

const std::string kLongRope =
    R"({"max_position_embeddings": 64, "original_max_position_embeddings": 16,
    "rope_scaling": {"type": "longrope", "short_factor": )" +
    numbers({1, 1.1, 1.3, 1.6, 2, 2.5}) + R"(, "long_factor": )" + numbers({1, 2, 4, 8, 16, 32}) +
    "}}";

INSTANTIATE_TEST_SUITE_P(
    Files, LoadedWeights,
    ::testing::Values(
        LoadCase{"llama", "tiny-llama", 1, "{}"},
        LoadCase{"llama_3_shards_eps_theta", "tiny-llama", 3,
                 R"({"rms_norm_eps": 0.01, "rope_theta": 500000.0})"},
        LoadCase{"phi3", "tiny-phi3", 1, "{}"}, LoadCase{"qwen2_qkv_bias", "tiny-qwen2", 1, "{}"},
        LoadCase{"qwen3_qk_norm", "tiny-qwen3", 1, "{}"},
        LoadCase{"gemma2", "tiny-gemma2", 1, R"({"sliding_window": 8, "query_pre_attn_scalar": 24,
            "attn_logit_softcapping": 5.0, "final_logit_softcapping": 3.0})"},
        LoadCase{"gemma2_efficient", "tiny-gemma2", 1,
                 R"({"sliding_window": 8, "query_pre_attn_scalar": 24,
            "attn_logit_softcapping": 5.0, "final_logit_softcapping": 3.0})",
                 planner::Attention::kEfficient, 160},
        LoadCase{"llama_efficient_3_chunks", "tiny-llama", 1, "{}", planner::Attention::kEfficient,
                 300},
        LoadCase{"llama_gelu", "tiny-llama", 1, R"({"hidden_act": "gelu"})"},
        LoadCase{"mistral_window", "tiny-llama", 1,
                 R"({"model_type": "mistral", "sliding_window": 8})"},
        LoadCase{"mistral_window_efficient", "tiny-llama", 1,
                 R"({"model_type": "mistral", "sliding_window": 100})",
                 planner::Attention::kEfficient, 160},
        LoadCase{"llama3_rope", "tiny-llama", 1,
                 R"({"rope_scaling": {"rope_type": "llama3", "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 1024}})"},
        LoadCase{"linear_rope", "tiny-qwen2", 1,
                 R"({"rope_scaling": {"type": "linear", "factor": 3.0}})"},
        LoadCase{"longrope_long", "tiny-phi3", 1, kLongRope},
        LoadCase{"longrope_short", "tiny-phi3", 1, kLongRope, planner::Attention::kEager, 16},
        LoadCase{"yarn_rope", "tiny-qwen3", 1,
                 R"({"rope_scaling": {"rope_type": "yarn", "factor": 4.0,
            "original_max_position_embeddings": 64}})"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(LoadedWeights, LoadingHoldsAboutOneTensorAtATime) {
  // tiny-llama-256 as nf4: 13.7 MB of fp32 in the file, the largest projection 704 KiB
  // (688 x 256). Beyond what the model keeps, loading holds only the tensor being read and its
  // quantization's temporaries (about 7x the tensor: padded copy, normalised copy, int64 codes),
  // not the file or the layers read so far.
  const planner::ModelDesc m = planner::load_model("tiny-llama-256");
  const ModelWeights w = random_weights(m);
  loraplan::testing::TempDir dir;
  write_model(dir.path(), m, w, 1);
  const planner::WeightFiles files = planner::safetensors_weights(dir.path());
  int64_t file_bytes = 0;
  for (const auto& [name, t] : w.by_name) file_bytes += t.numel() * 4;
  planner::TrainConfig c = fp32_config(m);
  c.weights = {.format = planner::WeightFormat::kNf4};
  TrackingAllocator& mem = TrackingAllocator::install();
  const int64_t before = mem.live_bytes();
  mem.reset_peak();
  const Model model(m, c, 7, SafetensorsWeights(files.source, files.tensors));
  const int64_t kept = mem.live_bytes() - before, transient = mem.peak_bytes() - mem.live_bytes();
  const int64_t projection = 688 * 256 * 4;
  EXPECT_EQ(file_bytes, 13'706'240);
  EXPECT_LT(transient, 8 * projection) << "kept " << kept << ", transient " << transient;
  EXPECT_LT(transient, file_bytes / 2);
}

TEST(LoadedWeights, Bf16FileIsReadAsStored) {
  // One bf16 tensor: the values come back exactly, in bf16.
  loraplan::testing::TempDir dir;
  const Tensor t = torch::tensor({1.5f, -2.0f, 0.25f, 3.0f}).to(torch::kBFloat16);
  const planner::TensorRecord r{"w", {2, 2}, planner::DType::kBF16, ""};
  loraplan::testing::write_safetensors(dir.file("w.safetensors"), {r},
                                       {std::string(static_cast<const char*>(t.data_ptr()), 8)});
  const planner::WeightFiles files = planner::safetensors_weights(dir.file("w.safetensors"));
  const Tensor got =
      SafetensorsWeights(files.source, files.tensors).get("w", {2, 2}, Init::kNormal);
  EXPECT_EQ(got.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(got, t.view({2, 2})));
}

// A run of tiny-llama's shape on the weights of `records`, as `loraplan train` would set it up.
TrainRequest request_for(const planner::WeightFiles& files) {
  TrainRequest r;
  r.model = planner::load_model("tiny-llama");
  r.config = fp32_config(r.model);
  r.steps = 1;
  r.weights_source = files.source;
  r.weights = files.tensors;
  return r;
}

std::string training_error(const TrainRequest& r) {
  try {
    run_training(r);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no error";
}

TEST(LoadedWeights, RunReportNamesTheFile) {
  const planner::ModelDesc m = planner::load_model("tiny-llama");
  loraplan::testing::TempDir dir;
  write_model(dir.path(), m, random_weights(m), 1);
  const RunReport rep = run_training(request_for(planner::safetensors_weights(dir.path())));
  EXPECT_EQ(rep.weights, dir.path());
  EXPECT_EQ(run_training(request_for({})).weights, "random (seed 0)");
}

TEST(LoadedWeights, WrongShapeNamesTensorAndFile) {
  const planner::ModelDesc m = planner::load_model("tiny-llama");
  ModelWeights w = random_weights(m);
  for (size_t i = 0; i < w.records.size(); ++i) {
    if (w.records[i].name != "model.layers.1.mlp.down_proj.weight") continue;
    w.records[i].shape = {64, 100};
    w.bytes[i].resize(64 * 100 * 4);
  }
  loraplan::testing::TempDir dir;
  loraplan::testing::write_safetensors(dir.file("model.safetensors"), w.records, w.bytes);
  EXPECT_EQ(training_error(request_for(planner::safetensors_weights(dir.path()))),
            "loading weights: " + dir.file("model.safetensors") +
                ": tensor \"model.layers.1.mlp.down_proj.weight\": shape [64, 100] where the model "
                "needs [64, 176]");
}

TEST(LoadedWeights, UnknownActivationIsRefused) {
  TrainRequest r = request_for({});
  r.model.hidden_act = "mish";
  EXPECT_EQ(training_error(r),
            "tiny-llama: hidden_act \"mish\" is not one the executor runs (silu, swish, gelu, "
            "gelu_pytorch_tanh, gelu_new, gelu_fast, relu)");
}

TEST(LoadedWeights, MissingTensorIsNamed) {
  const planner::ModelDesc m = planner::load_model("tiny-llama");
  ModelWeights w = random_weights(m);
  w.records.pop_back();  // lm_head.weight
  w.bytes.pop_back();
  loraplan::testing::TempDir dir;
  loraplan::testing::write_safetensors(dir.file("model.safetensors"), w.records, w.bytes);
  EXPECT_EQ(training_error(request_for(planner::safetensors_weights(dir.path()))),
            "loading weights: " + dir.path() + ": tensor \"lm_head.weight\" [256, 64] is missing");
}

TEST(LoadedWeights, FileCutShortAfterItsHeaderWasRead) {
  const planner::ModelDesc m = planner::load_model("tiny-llama");
  const ModelWeights w = random_weights(m);
  loraplan::testing::TempDir dir;
  loraplan::testing::write_safetensors(dir.file("model.safetensors"), w.records, w.bytes);
  const planner::WeightFiles files = planner::safetensors_weights(dir.path());
  // lm_head.weight is stored last; the file now ends 100 bytes into it.
  const planner::TensorRecord& last =
      *std::find_if(files.tensors.begin(), files.tensors.end(),
                    [](const auto& t) { return t.name == "lm_head.weight"; });
  std::filesystem::resize_file(dir.file("model.safetensors"), last.offset + 100);
  EXPECT_EQ(training_error(request_for(files)),
            "loading weights: " + dir.file("model.safetensors") + ": tensor \"" + last.name +
                "\": cannot read " + std::to_string(256 * 64 * 4) + " bytes at offset " +
                std::to_string(last.offset) + ": file too short");
}

}  // namespace
}  // namespace loraplan::executor
