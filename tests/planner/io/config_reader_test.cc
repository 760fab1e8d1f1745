#include <gtest/gtest.h>

#include "fixtures/model_files.h"
#include "loraplan/planner/errors.h"
#include "loraplan/planner/readers.h"

namespace loraplan::planner {
namespace {

std::string error_of(const std::string& text) {
  try {
    parse_config_json(text, "config.json");
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ConfigJson, NormEpsilonAndRotaryBase) {
  const ModelDesc m = parse_config_json(R"({"model_type": "llama", "vocab_size": 128256,
      "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
      "num_attention_heads": 32, "rms_norm_eps": 1e-05, "rope_theta": 500000.0})",
                                        "config.json");
  EXPECT_EQ(m.rms_norm_eps, 1e-5);
  EXPECT_EQ(m.rope_theta, 500000.0);
  const ModelDesc phi3 = parse_config_json(R"({"model_type": "phi3", "vocab_size": 32064,
      "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32,
      "num_attention_heads": 32})",
                                           "config.json");
  EXPECT_EQ(phi3.rms_norm_eps, 1e-5);  // Phi3Config's default
}

TEST(ConfigJson, FamilyDefaults) {
  const ModelDesc llama = parse_config_json(R"({"model_type": "llama", "vocab_size": 32000,
      "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
      "num_attention_heads": 32, "torch_dtype": "float16"})",
                                            "config.json");
  EXPECT_EQ(llama.family, Family::kLlama);
  EXPECT_EQ(llama.kv_heads, 32);   // defaults to H
  EXPECT_EQ(llama.head_dim, 128);  // C / H
  EXPECT_FALSE(llama.tied_embeddings);
  EXPECT_FALSE(llama.qkv_bias);
  EXPECT_EQ(llama.dtype, DType::kF16);
  EXPECT_EQ(llama.rms_norm_eps, 1e-6);
  EXPECT_EQ(llama.rope_theta, 10000.0);

  const ModelDesc gemma = parse_config_json(R"({"model_type": "gemma2", "vocab_size": 256000,
      "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
      "num_attention_heads": 8, "num_key_value_heads": 4})",
                                            "config.json");
  EXPECT_EQ(gemma.head_dim, 256);
  EXPECT_TRUE(gemma.tied_embeddings);
  EXPECT_EQ(gemma.norms_per_layer, 4);
  EXPECT_EQ(gemma.final_logit_softcapping, 30.0);
  EXPECT_EQ(gemma.hidden_act, "gelu_pytorch_tanh");  // Gemma2Config's hidden_activation default
  EXPECT_EQ(gemma.dtype, DType::kF32);               // no torch_dtype: transformers loads fp32

  const ModelDesc qwen2 = parse_config_json(R"({"model_type": "qwen2", "vocab_size": 151936,
      "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
      "num_attention_heads": 14, "num_key_value_heads": 2, "dtype": "bfloat16"})",
                                            "config.json");
  EXPECT_TRUE(qwen2.qkv_bias);
  EXPECT_FALSE(qwen2.o_bias);
  EXPECT_EQ(qwen2.dtype, DType::kBF16);  // transformers >= 4.56 spelling

  const ModelDesc by_architecture = parse_config_json(R"({"architectures": ["Phi3ForCausalLM"],
      "vocab_size": 320, "hidden_size": 96, "intermediate_size": 192, "num_hidden_layers": 3,
      "num_attention_heads": 6, "head_dim": null})",
                                                      "config.json");
  EXPECT_EQ(by_architecture.family, Family::kPhi3);
  EXPECT_TRUE(by_architecture.fused_qkv);
  EXPECT_EQ(by_architecture.head_dim, 16);  // null reads as absent
}

TEST(ConfigJson, ErrorsNameFileLineAndField) {
  EXPECT_EQ(
      error_of("{\n  \"model_type\": \"llama\",\n  \"vocab_size\": 10,\n  \"hidden_size\": 64,\n"
               "  \"intermediate_size\": 128,\n  \"num_hidden_layers\": \"32\",\n"
               "  \"num_attention_heads\": 4\n}"),
      "config.json:6: \"num_hidden_layers\" must be a positive integer up to 1024, got \"32\"");
  EXPECT_EQ(
      error_of("{\"model_type\": \"llama\", \"vocab_size\": 10, \"hidden_size\": 64,\n"
               "\"num_hidden_layers\": 2, \"num_attention_heads\": 4}"),
      "config.json: \"intermediate_size\" is missing (must be a positive integer up to 1048576)");
  EXPECT_EQ(error_of("{\"model_type\": \"gpt2\"}"),
            "config.json:1: \"model_type\" must be one of llama, mistral, qwen2, qwen3, phi3, "
            "gemma2, got \"gpt2\"");
  EXPECT_EQ(error_of("{\"model_type\": \"llama\",\n \"vocab_size\": 10,"),
            "config.json: malformed JSON: parse error at line 2, column 19: syntax error while "
            "parsing object key - unexpected end of input; expected string literal");
  EXPECT_EQ(error_of("[1, 2]"), "config.json: expected a JSON object");
  EXPECT_EQ(error_of(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 64,
      "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
      "num_key_value_heads": 3})"),
            "config.json: num_attention_heads (4) must be a multiple of num_key_value_heads (3)");
  EXPECT_EQ(error_of(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 64,
      "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
      "tie_word_embeddings": "yes"})"),
            "config.json:3: \"tie_word_embeddings\" must be true or false, got \"yes\"");
  EXPECT_EQ(error_of(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 64,
      "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
      "torch_dtype": "bfloat17"})"),
            "config.json:3: \"torch_dtype\" must be a known dtype (float32, float16, bfloat16), "
            "got \"bfloat17\"");
}

TEST(ConfigJson, MissingFile) {
  try {
    read_config_json("/nonexistent/config.json");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/config.json: cannot open: No such file or directory");
  }
}

}  // namespace
}  // namespace loraplan::planner
