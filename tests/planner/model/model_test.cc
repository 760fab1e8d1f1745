#include <gtest/gtest.h>

#include "loraplan/planner/errors.h"
#include "loraplan/planner/inventory.h"
#include "loraplan/planner/layer_table.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/planner/summary.h"
#include "loraplan/planner/weights.h"

namespace loraplan::planner {
namespace {

// V 256, C 64, I 176, L 2, H 4, Hkv 2, D 16, untied, fp32 (profiles/models/tiny-llama.json).
ModelDesc tiny_llama() { return load_model("tiny-llama"); }

const TensorSpec& find(const std::vector<TensorSpec>& t, const std::string& name) {
  for (const TensorSpec& s : t) {
    if (s.name == name) return s;
  }
  throw std::runtime_error("no tensor " + name);
}

// The layer table is what the inventory lists per layer: every profile's layer-0 projections, in
// order, with the table's shapes, and each path ending in the module's Hugging Face name.
TEST(LayerTable, IsWhatTheInventoryListsForEveryProfile) {
  for (const char* name : {"tiny-llama", "tiny-qwen2", "tiny-qwen3", "tiny-phi3", "tiny-gemma2",
                           "phi-4-mini-instruct", "gemma-2-9b", "qwen3-8b", "llama-3.1-8b"}) {
    SCOPED_TRACE(name);
    const ModelDesc m = load_model(name);
    const LayerTable table = layer_table(m);
    std::vector<std::string> from_table, from_inventory;
    for (const LayerLinear& p : table.linears()) {
      EXPECT_TRUE(p.path.ends_with(module_name(p.module))) << p.path;
      from_table.push_back(p.name(0) + ".weight " + shape_text({p.out, p.in}));
    }
    for (const TensorSpec& t : inventory(m)) {
      if (t.layer == 0 && t.is_linear_weight())
        from_inventory.push_back(t.name + " " + shape_text(t.shape));
    }
    EXPECT_EQ(from_table, from_inventory);
    size_t norms = 0;
    for (const TensorSpec& t : inventory(m)) norms += t.layer == 0 && t.module == Module::kNorm;
    EXPECT_EQ(norms, table.norms.size() + table.head_norms.size());
  }
}

TEST(LayerTable, FusedProjectionsListTheirParts) {
  const ModelDesc m = load_model("tiny-phi3");
  const LayerTable t = layer_table(m);
  const LayerLinear& qkv = t.linear(Module::kQkv);
  ASSERT_EQ(qkv.parts.size(), 3u);
  EXPECT_EQ(qkv.parts[0].module, Module::kQ);
  EXPECT_EQ(qkv.parts[0].out, m.q_out());
  EXPECT_EQ(qkv.parts[1].out, m.kv_out());
  EXPECT_EQ(qkv.parts[0].out + qkv.parts[1].out + qkv.parts[2].out, qkv.out);
  const LayerLinear& gate_up = t.linear(Module::kGateUp);
  EXPECT_EQ(gate_up.parts.size(), 2u);
  EXPECT_EQ(gate_up.parts[0].out + gate_up.parts[1].out, gate_up.out);
  EXPECT_THROW(t.linear(Module::kQ), std::logic_error);  // fused: no separate q_proj
  EXPECT_TRUE(layer_table(load_model("tiny-llama")).linear(Module::kQ).parts.empty());
}

TEST(LayerTable, NormsFollowTheFamily) {
  EXPECT_TRUE(layer_table(load_model("tiny-qwen3")).has(LayerNormKind::kQ));
  EXPECT_FALSE(layer_table(load_model("tiny-llama")).has(LayerNormKind::kQ));
  const LayerTable gemma = layer_table(load_model("tiny-gemma2"));
  EXPECT_TRUE(gemma.has(LayerNormKind::kPreFeedforward));
  EXPECT_EQ(gemma.norms.back().name(1), "model.layers.1.post_feedforward_layernorm");
}

TEST(Inventory, AnLmHeadBiasIsListed) {
  ModelDesc m = tiny_llama();
  m.lm_head_bias = true;
  const std::vector<TensorSpec> t = inventory(m);
  EXPECT_EQ(t.back().name, "lm_head.bias");
  EXPECT_EQ(t.back().shape, (std::vector<int64_t>{m.vocab}));
  EXPECT_TRUE(t.back().is_bias);
}

TEST(Inventory, LlamaRowsInStateDictOrder) {
  const std::vector<TensorSpec> t = inventory(tiny_llama());
  ASSERT_EQ(t.size(), 1u + 2 * 9 + 2);  // embed, 9 per layer, final norm, lm_head
  EXPECT_EQ(t[0].name, "model.embed_tokens.weight");
  EXPECT_EQ(t[0].shape, (std::vector<int64_t>{256, 64}));
  EXPECT_EQ(t[1].name, "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(t[2].shape, (std::vector<int64_t>{32, 64}));  // k_proj [Hkv D, C]
  EXPECT_EQ(t[4].name, "model.layers.0.self_attn.o_proj.weight");
  EXPECT_EQ(t[7].name, "model.layers.0.mlp.down_proj.weight");
  EXPECT_EQ(t[7].shape, (std::vector<int64_t>{64, 176}));
  EXPECT_EQ(t[7].role, Role::kMlp);
  EXPECT_EQ(t[7].layer, 0);
  EXPECT_EQ(t[9].name, "model.layers.0.post_attention_layernorm.weight");
  EXPECT_EQ(t[9].role, Role::kNorm);
  EXPECT_EQ(t.back().name, "lm_head.weight");
  EXPECT_EQ(t.back().role, Role::kLmHead);
  EXPECT_EQ(t.back().layer, -1);
  // embed 16384 + 2 x (4096 + 2048 + 2048 + 4096 + 3 x 11264 + 128) + 64 + lm_head 16384
  EXPECT_EQ(total_params(t), 125248);
}

TEST(Inventory, Phi3FusedProjections) {
  const ModelDesc m = load_model("tiny-phi3");  // C 96, I 192, H 6, Hkv 2, D 16, tied
  const std::vector<TensorSpec> t = inventory(m);
  EXPECT_EQ(find(t, "model.layers.2.self_attn.qkv_proj.weight").shape,
            (std::vector<int64_t>{(6 + 2 * 2) * 16, 96}));
  EXPECT_EQ(find(t, "model.layers.2.mlp.gate_up_proj.weight").shape,
            (std::vector<int64_t>{384, 96}));
  EXPECT_EQ(m.rotary_dim(), 12);  // 0.75 x 16
  for (const TensorSpec& s : t) EXPECT_NE(s.name, "lm_head.weight");
}

TEST(Inventory, FamilyDetails) {
  const std::vector<TensorSpec> qwen2 = inventory(load_model("tiny-qwen2"));
  EXPECT_EQ(find(qwen2, "model.layers.1.self_attn.k_proj.bias").shape, (std::vector<int64_t>{32}));
  EXPECT_THROW(find(qwen2, "model.layers.1.self_attn.o_proj.bias"), std::runtime_error);

  const std::vector<TensorSpec> qwen3 = inventory(load_model("tiny-qwen3"));  // D 32 != C / H
  EXPECT_EQ(find(qwen3, "model.layers.0.self_attn.q_norm.weight").shape,
            (std::vector<int64_t>{32}));
  EXPECT_EQ(find(qwen3, "model.layers.0.self_attn.q_proj.weight").shape,
            (std::vector<int64_t>{128, 64}));

  const std::vector<TensorSpec> gemma = inventory(load_model("tiny-gemma2"));
  EXPECT_EQ(find(gemma, "model.layers.3.post_feedforward_layernorm.weight").role, Role::kNorm);
}

TEST(Weights, Nf4BytesFollowTheBitsandbytesLayout) {
  const int64_t n = 4096 * 4096;  // 16,777,216 elements, 262,144 blocks of 64
  // codes 8,388,608 + absmax fp32 1,048,576 + code map 64
  EXPECT_EQ(linear_weight_bytes(4096, 4096, {.format = WeightFormat::kNf4, .double_quant = false}),
            9437248);
  // codes 8,388,608 + absmax u8 262,144 + absmax2 fp32 4 x 1,024 + code map 64 + map2 1,024 +
  // offset 4
  EXPECT_EQ(linear_weight_bytes(4096, 4096, {.format = WeightFormat::kNf4, .double_quant = true}),
            8655940);
  // ~4.127 bits per parameter with double quant
  EXPECT_NEAR(8.0 * 8655940 / n, 4.127, 0.001);
  EXPECT_EQ(linear_weight_bytes(4096, 4096, {.format = WeightFormat::kInt8}), n + 4 * 4096);
  EXPECT_EQ(linear_weight_bytes(4096, 4096, {.format = WeightFormat::kBf16}), 2 * n);
  // odd element count: the last byte holds one code
  EXPECT_EQ(linear_weight_bytes(1, 3, {.format = WeightFormat::kNf4, .double_quant = false}),
            2 + 4 + 64);
}

TEST(Lora, TrainableParameters) {
  const ModelDesc m = tiny_llama();
  const std::vector<TensorSpec> t = inventory(m);
  // per layer r x (in + out): q 128, k 96, v 96, o 128, gate 240, up 240, down 240 = 1168
  EXPECT_EQ(lora_params(t, parse_lora_targets("all-linear", m, "--lora-targets"), 8), 2 * 8 * 1168);
  EXPECT_EQ(lora_params(t, parse_lora_targets("q,v", m, "--lora-targets"), 8), 2 * 8 * (128 + 96));
  EXPECT_EQ(lora_params(t, parse_lora_targets("q_proj,v_proj", m, "--lora-targets"), 8),
            2 * 8 * (128 + 96));
}

TEST(Lora, FusedTargetsOnPhi4Mini) {
  const ModelDesc m = load_model("phi-4-mini-instruct");
  const std::vector<TensorSpec> t = inventory(m);
  // per layer: qkv 16 x (3072 + 5120) + o 16 x 6144 + gate_up 16 x (3072 + 16384) + down 16 x 11264
  EXPECT_EQ(lora_params(t, parse_lora_targets("all-linear", m, "--lora-targets"), 16), 32 * 720896);
  // q alone selects the fused qkv_proj
  EXPECT_EQ(lora_targets_text(parse_lora_targets("q,k", m, "--lora-targets")), "qkv_proj");
}

TEST(Lora, BadTargets) {
  const ModelDesc m = tiny_llama();
  try {
    parse_lora_targets("q,x", m, "--lora-targets");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(),
                 "--lora-targets: unknown target \"x\" (use q,k,v,o,gate,up,down or all-linear)");
  }
  EXPECT_THROW(parse_lora_targets("gate_up", m, "--lora-targets"), InputError);
  EXPECT_THROW(parse_lora_targets("", m, "--lora-targets"), InputError);
}

TEST(Summary, Nf4KeepsEmbeddingAndHeadInBf16) {
  const ModelDesc m = tiny_llama();
  const std::vector<TensorSpec> t = inventory(m);
  const ModelSummary s = summarize(m, t, {.lora_rank = 8});
  EXPECT_EQ(s.total_params, 125248);
  EXPECT_EQ(s.stored_bytes, 4 * 125248);  // fp32 profile
  EXPECT_EQ(s.bf16_bytes, 2 * 125248);
  EXPECT_EQ(s.params_by_role.at(Role::kEmbedding), 16384);
  EXPECT_EQ(s.params_by_role.at(Role::kLmHead), 16384);
  // non-linear tensors at bf16: embed + lm_head 2 x 16384, norms 2 x 128 + 64
  int64_t linear = 0;
  for (const TensorSpec& x : t) {
    if (x.is_linear_weight() && x.module != Module::kLmHead) {
      linear += linear_weight_bytes(x.shape[0], x.shape[1], {.format = WeightFormat::kNf4});
    }
  }
  EXPECT_EQ(s.nf4_bytes, linear + 2 * (2 * 16384 + 2 * 128 + 64));
  EXPECT_EQ(s.lora_params, 2 * 8 * 1168);
}

}  // namespace
}  // namespace loraplan::planner
