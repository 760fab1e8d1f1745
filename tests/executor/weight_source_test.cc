// Frozen weights from safetensors: the executor's forward on loaded weights equals a plain
// reference forward written with at:: ops on the same weights, and bad files name the tensor and
// the file.
#include "weight_source.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <map>

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

// A model directory: config.json and the weights, in one file or in shards with an index.
void write_model(const std::string& dir, planner::ModelDesc m, const ModelWeights& w, int shards) {
  m.dtype = planner::DType::kF32;
  loraplan::testing::write_text(dir + "/config.json", loraplan::testing::config_json_text(m));
  if (shards == 1) {
    loraplan::testing::write_safetensors(dir + "/model.safetensors", w.records, w.bytes);
  } else {
    loraplan::testing::write_sharded_safetensors(dir, w.records, shards, w.bytes);
  }
}

// ---- The reference: Hugging Face's Llama/Phi-3 forward, written out plainly. ----
Tensor rms_norm(const Tensor& x, const Tensor& w, double eps) {
  return x * torch::rsqrt(x.pow(2).mean(-1, true) + eps) * w;
}

Tensor rotate_half(const Tensor& x) {
  const int64_t h = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, h, h), x.narrow(-1, 0, h)}, -1);
}

// x [B, H, T, D]: the first `rot` dims of each head rotated by position (base theta).
Tensor rope(const Tensor& x, int64_t rot, double theta) {
  const int64_t T = x.size(2);
  const Tensor inv =
      1.0 / torch::pow(theta, torch::arange(0, rot, 2, torch::kFloat) / static_cast<double>(rot));
  const Tensor freqs = torch::outer(torch::arange(T, torch::kFloat), inv);
  const Tensor emb = torch::cat({freqs, freqs}, -1);  // [T, rot]
  const Tensor r = x.narrow(-1, 0, rot), pass = x.narrow(-1, rot, x.size(-1) - rot);
  return torch::cat({r * emb.cos() + rotate_half(r) * emb.sin(), pass}, -1);
}

// A frozen projection with its adapter: x W^T (+ b) + scale (x A^T) B^T.
Tensor project(const ModelWeights& w, const FrozenLinear& f, const Tensor& x) {
  Tensor y = torch::matmul(x, w.by_name.at(f.name + ".weight").t());
  if (w.by_name.count(f.name + ".bias")) y = y + w.by_name.at(f.name + ".bias");
  if (f.lora) y = y + f.lora->scale * torch::matmul(torch::matmul(x, f.lora->A.t()), f.lora->B.t());
  return y;
}

// eps and theta as the test's config.json gives them, not as the description read them.
Tensor reference_logits(const planner::ModelDesc& m, const Model& model, const ModelWeights& w,
                        const Tensor& ids, double eps, double theta) {
  const int64_t B = ids.size(0), T = ids.size(1), H = m.heads, Hkv = m.kv_heads, D = m.head_dim;
  const int64_t HD = H * D, KD = Hkv * D, I = m.intermediate;
  Tensor x = w.by_name.at("model.embed_tokens.weight")
                 .index_select(0, ids.reshape(-1))
                 .view({B, T, m.hidden});
  const Tensor causal = torch::ones({T, T}, torch::kBool).triu(1);
  for (int l = 0; l < m.layers; ++l) {
    const DecoderLayer& d = model.layers()[l];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const Tensor h = rms_norm(x, w.by_name.at(p + "input_layernorm.weight"), eps);
    Tensor q, k, v;
    if (m.fused_qkv) {
      const Tensor qkv = project(w, d.attn[0], h);
      q = qkv.narrow(-1, 0, HD), k = qkv.narrow(-1, HD, KD), v = qkv.narrow(-1, HD + KD, KD);
    } else {
      q = project(w, d.attn[0], h), k = project(w, d.attn[1], h), v = project(w, d.attn[2], h);
    }
    q = rope(q.reshape({B, T, H, D}).transpose(1, 2), m.rotary_dim(), theta);
    k = rope(k.reshape({B, T, Hkv, D}).transpose(1, 2), m.rotary_dim(), theta)
            .repeat_interleave(H / Hkv, 1);
    v = v.reshape({B, T, Hkv, D}).transpose(1, 2).repeat_interleave(H / Hkv, 1);
    const Tensor scores = torch::matmul(q, k.transpose(2, 3)) / std::sqrt(static_cast<double>(D));
    const Tensor o = torch::matmul(torch::softmax(scores.masked_fill(causal, -INFINITY), -1), v);
    x = x + project(w, d.attn.back(), o.transpose(1, 2).reshape({B, T, HD}));
    const Tensor h2 = rms_norm(x, w.by_name.at(p + "post_attention_layernorm.weight"), eps);
    Tensor gate, up;
    if (m.fused_gate_up) {
      const Tensor gu = project(w, d.mlp[0], h2);
      gate = gu.narrow(-1, 0, I), up = gu.narrow(-1, I, I);
    } else {
      gate = project(w, d.mlp[0], h2), up = project(w, d.mlp[1], h2);
    }
    x = x + project(w, d.mlp.back(), torch::silu(gate) * up);
  }
  const Tensor head =
      w.by_name.at(m.tied_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
  return torch::matmul(rms_norm(x, w.by_name.at("model.norm.weight"), eps), head.t());
}

struct LoadCase {
  const char* model;
  int shards;
  double rms_norm_eps;  // written to config.json
  double rope_theta;
};

void PrintTo(const LoadCase& c, std::ostream* os) { *os << c.model << " in " << c.shards << " file(s)"; }

class LoadedWeights : public ::testing::TestWithParam<LoadCase> {};

TEST_P(LoadedWeights, LogitsEqualThePlainReference) {
  planner::ModelDesc profile = planner::load_model(GetParam().model);
  profile.rms_norm_eps = GetParam().rms_norm_eps;
  profile.rope_theta = GetParam().rope_theta;
  const ModelWeights w = random_weights(profile);
  loraplan::testing::TempDir dir;
  write_model(dir.path(), profile, w, GetParam().shards);

  const planner::ModelDesc m = planner::load_model(dir.path());
  const planner::WeightFiles files = planner::safetensors_weights(dir.path());
  ASSERT_EQ(files.source, dir.path());
  ASSERT_EQ(files.tensors.size(), w.records.size());
  const SafetensorsWeights source(files.source, files.tensors);
  const Model model(m, fp32_config(m), 7, source);
  for (const Tensor& p : model.trainable()) {  // non-zero B: the adapters take part
    torch::NoGradGuard g;
    if (p.abs().sum().item<double>() == 0) p.normal_(0, 0.05);
  }
  torch::manual_seed(3);
  const Tensor ids = torch::randint(m.vocab, {2, 32});
  torch::NoGradGuard no_grad;
  Tensor x = model.embed(ids);
  for (int l = 0; l < m.layers; ++l) x = model.layer(l, x);
  const Tensor got = model.logits(x);
  const Tensor want = reference_logits(m, model, w, ids, GetParam().rms_norm_eps, GetParam().rope_theta);
  ASSERT_EQ(got.sizes(), want.sizes());
  const double diff = (got - want).abs().max().item<double>();
  EXPECT_LT(diff, 1e-5) << "max |logit| " << want.abs().max().item<double>();
  EXPECT_GT(want.abs().max().item<double>(), 0.1);  // the comparison is not between near-zeros
}

INSTANTIATE_TEST_SUITE_P(Files, LoadedWeights,
                         ::testing::Values(LoadCase{"tiny-llama", 1, 1e-6, 10000},
                                           LoadCase{"tiny-llama", 3, 1e-2, 500000},
                                           LoadCase{"tiny-phi3", 1, 1e-5, 10000}),
                         [](const auto& info) {
                           std::string n = std::string(info.param.model) + "_" +
                                           std::to_string(info.param.shards) + "_files";
                           for (char& ch : n)
                             ch = std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
                           return n;
                         });

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
  EXPECT_EQ(run_training(request_for({})).weights, "random (seeded)");
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
