// loraplan merge: W + (alpha / r) B A for each adapted weight, everything else copied byte for
// byte, sharded like the input; bad adapters and outputs get one line, exit 2, nothing written.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fixtures/model_files.h"
#include "loraplan/planner/readers.h"
#include "run_cli.h"

namespace loraplan::cli {
namespace {

namespace fs = std::filesystem;
using loraplan::testing::read_text;
using loraplan::testing::TempDir;
using loraplan::testing::write_text;
using planner::DType;
using planner::TensorRecord;
using testing::Result;
using testing::run_cli;

std::string f32_bytes(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}
// bf16 of values exactly representable in it (the top half of their fp32 bits).
std::string bf16_bytes(const std::vector<float>& v) {
  std::string s(v.size() * 2, '\0');
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t b;
    std::memcpy(&b, &v[i], 4);
    const uint16_t h = static_cast<uint16_t>(b >> 16);
    std::memcpy(s.data() + 2 * i, &h, 2);
  }
  return s;
}
std::vector<float> bf16_values(const std::string& bytes) {
  std::vector<float> v(bytes.size() / 2);
  for (size_t i = 0; i < v.size(); ++i) {
    uint16_t h;
    std::memcpy(&h, bytes.data() + 2 * i, 2);
    const uint32_t b = static_cast<uint32_t>(h) << 16;
    std::memcpy(&v[i], &b, 4);
  }
  return v;
}

// The bytes of tensor `name` in a model folder's safetensors.
std::string tensor_bytes(const std::string& dir, const std::string& name) {
  const std::string index = dir + "/model.safetensors.index.json";
  for (const TensorRecord& t :
       planner::read_safetensors_tensors(fs::exists(index) ? index : dir + "/model.safetensors")) {
    if (t.name != name) continue;
    int64_t n = planner::dtype_bytes(t.dtype);
    for (int64_t d : t.shape) n *= d;
    const std::string all = read_text(t.file);
    return all.substr(t.offset, static_cast<size_t>(n));
  }
  return "";
}

constexpr int64_t kOut = 4, kIn = 6, kRank = 2;
const std::string kQ = "model.layers.0.self_attn.q_proj.weight";

// A model of three tensors in two shards: q_proj (bf16, adapted), o_proj (fp32, adapted) and the
// embedding (bf16, copied). Values are small multiples of 1/2 so every sum is exact in bf16.
class Merge : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int64_t i = 0; i < kOut * kIn; ++i) q.push_back(0.5f * static_cast<float>(i % 7) - 1);
    for (int64_t i = 0; i < kIn * kOut; ++i) o.push_back(static_cast<float>(i % 5));
    for (int64_t i = 0; i < 10 * kIn; ++i) embed.push_back(0.25f * static_cast<float>(i % 9));
    const std::vector<TensorRecord> records = {
        {"model.embed_tokens.weight", {10, kIn}, DType::kBF16, "", 0},
        {kQ, {kOut, kIn}, DType::kBF16, "", 0},
        {"model.layers.0.self_attn.o_proj.weight", {kIn, kOut}, DType::kF32, "", 0},
    };
    loraplan::testing::write_sharded_safetensors(model.path(), records, 2,
                                                 {bf16_bytes(embed), bf16_bytes(q), f32_bytes(o)});
    write_text(model.file("config.json"), "{\"model_type\": \"llama\"}\n");
    write_text(model.file("tokenizer.json"), "{}\n");
    // A [r, in], B [out, r]: small integers.
    for (int64_t i = 0; i < kRank * kIn; ++i) qa.push_back(static_cast<float>(i % 3) - 1);
    for (int64_t i = 0; i < kOut * kRank; ++i) qb.push_back(static_cast<float>(i % 2));
    for (int64_t i = 0; i < kRank * kOut; ++i) oa.push_back(1);
    for (int64_t i = 0; i < kIn * kRank; ++i) ob.push_back(static_cast<float>(i % 4) * 0.5f);
    const std::string p = "base_model.model.model.layers.0.self_attn.";
    loraplan::testing::write_safetensors(
        adapter.file("adapter_model.safetensors"),
        {{p + "q_proj.lora_A.weight", {kRank, kIn}, DType::kF32, "", 0},
         {p + "q_proj.lora_B.weight", {kOut, kRank}, DType::kF32, "", 0},
         {p + "o_proj.lora_A.weight", {kRank, kOut}, DType::kF32, "", 0},
         {p + "o_proj.lora_B.weight", {kIn, kRank}, DType::kF32, "", 0}},
        {f32_bytes(qa), f32_bytes(qb), f32_bytes(oa), f32_bytes(ob)});
    config(R"({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "use_rslora": false,
               "base_model_name_or_path": "tiny", "target_modules": ["q_proj", "o_proj"]})");
  }
  void config(const std::string& text) { write_text(adapter.file("adapter_config.json"), text); }
  Result merge(const std::string& out) {
    return run_cli({"merge", "--model", model.path(), "--adapter", adapter.path(), "-o", out});
  }
  // W + scale * B A, row-major [rows, cols].
  static std::vector<float> merged(const std::vector<float>& w, const std::vector<float>& a,
                                   const std::vector<float>& b, int64_t rows, int64_t cols,
                                   float scale) {
    std::vector<float> out = w;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        for (int64_t k = 0; k < kRank; ++k)
          out[r * cols + c] += scale * b[r * kRank + k] * a[k * cols + c];
    return out;
  }
  TempDir model, adapter, out_root;
  std::vector<float> q, o, embed, qa, qb, oa, ob;
};

TEST_F(Merge, AddsTheScaledDeltaAndCopiesTheRest) {
  const std::string out = out_root.file("merged");
  const Result r = merge(out);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("merged 2 LoRA weights (bf16, fp32) and copied 1 tensors into " + out +
                            ": 2 shards, ",
                        0),
            0u)
      << r.out;
  // scale = alpha / r = 2.
  const std::vector<float> q_expected = merged(q, qa, qb, kOut, kIn, 2.0f);
  EXPECT_EQ(bf16_values(tensor_bytes(out, kQ)), q_expected);
  const std::string o_bytes = tensor_bytes(out, "model.layers.0.self_attn.o_proj.weight");
  std::vector<float> o_got(o.size());
  std::memcpy(o_got.data(), o_bytes.data(), o_bytes.size());
  EXPECT_EQ(o_got, merged(o, oa, ob, kIn, kOut, 2.0f));
  EXPECT_NE(o_got, o);  // the delta is not zero
  EXPECT_EQ(tensor_bytes(out, "model.embed_tokens.weight"), bf16_bytes(embed));
  // The layout is the input's: same shard names, same index, side files copied.
  for (const char* f : {"model.safetensors.index.json", "config.json", "tokenizer.json"})
    EXPECT_EQ(read_text(out + "/" + f), read_text(model.file(f))) << f;
  EXPECT_TRUE(fs::exists(out + "/model-00001-of-00002.safetensors"));
  EXPECT_TRUE(fs::exists(out + "/model-00002-of-00002.safetensors"));
  EXPECT_EQ(fs::file_size(out + "/model-00001-of-00002.safetensors"),
            fs::file_size(model.file("model-00001-of-00002.safetensors")));
}

TEST_F(Merge, RsLoraScalesByTheRootOfTheRank) {
  config(R"({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "use_rslora": true})");
  const std::string out = out_root.file("merged");
  ASSERT_EQ(merge(out).code, 0);
  const std::string o_bytes = tensor_bytes(out, "model.layers.0.self_attn.o_proj.weight");
  std::vector<float> o_got(o.size());
  std::memcpy(o_got.data(), o_bytes.data(), o_bytes.size());
  const std::vector<float> want =
      merged(o, oa, ob, kIn, kOut, static_cast<float>(4 / std::sqrt(2.0)));
  ASSERT_EQ(o_got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_FLOAT_EQ(o_got[i], want[i]) << i;
}

TEST_F(Merge, BadInputIsOneLineAndWritesNothing) {
  const std::string out = out_root.file("merged");
  const std::string cfg = adapter.file("adapter_config.json");
  struct Case {
    std::string config, error;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "use_dora": true})",
            cfg + ": use_dora: DoRA adapters are not merged by loraplan"},
           {R"({"peft_type": "LORA", "r": 3, "lora_alpha": 4})",
            adapter.file("adapter_model.safetensors") +
                ": model.layers.0.self_attn.o_proj.weight: lora_A [2, 4] and lora_B [6, 2] do "
                "not fit the weight [6, 4] at rank 3"},
           {R"({"peft_type": "LORA", "lora_alpha": 4})",
            cfg + ": r: missing or not a positive integer"},
           {R"({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "rank_pattern": {"q_proj": 4}})",
            cfg + ": rank_pattern: per-module ranks and alphas are not merged by loraplan"},
       }) {
    config(c.config);
    const Result r = merge(out);
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(r.err, "loraplan: error: " + c.error + "\n");
    EXPECT_FALSE(fs::exists(out));
  }
  // An output folder that holds something is not overwritten.
  config(R"({"peft_type": "LORA", "r": 2, "lora_alpha": 4})");
  fs::create_directory(out);
  write_text(out + "/keep", "x");
  const Result busy = merge(out);
  EXPECT_EQ(busy.code, 2);
  EXPECT_EQ(busy.err, "loraplan: error: -o: " + out +
                          " exists and is not an empty folder; give a new folder\n");
  EXPECT_EQ(read_text(out + "/keep"), "x");
  // An adapter for a weight the model does not have.
  fs::remove_all(out);
  loraplan::testing::write_safetensors(
      adapter.file("adapter_model.safetensors"),
      {{"base_model.model.model.layers.9.mlp.up_proj.lora_A.weight",
        {kRank, kIn},
        DType::kF32,
        "",
        0},
       {"base_model.model.model.layers.9.mlp.up_proj.lora_B.weight",
        {kOut, kRank},
        DType::kF32,
        "",
        0}},
      {f32_bytes(qa), f32_bytes(qb)});
  const Result stray = merge(out);
  EXPECT_EQ(stray.code, 2);
  EXPECT_EQ(stray.err, "loraplan: error: " + adapter.file("adapter_model.safetensors") +
                           ": model.layers.9.mlp.up_proj.weight: the model in " + model.path() +
                           " has no such weight\n");
  EXPECT_FALSE(fs::exists(out));
  // An adapter file with no LoRA weights at all.
  loraplan::testing::write_safetensors(adapter.file("adapter_model.safetensors"), {}, {});
  const Result empty = merge(out);
  EXPECT_EQ(empty.code, 2);
  EXPECT_EQ(empty.err, "loraplan: error: --adapter: " + adapter.file("adapter_model.safetensors") +
                           ": holds no LoRA weights\n");
  EXPECT_FALSE(fs::exists(out));
  // No leftovers beside the output.
  EXPECT_TRUE(fs::is_empty(out_root.path()));
}

}  // namespace
}  // namespace loraplan::cli
