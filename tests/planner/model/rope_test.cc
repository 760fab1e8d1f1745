// Rotary frequencies for each rope_scaling type of config.json, against values worked out by
// hand from transformers' formulas (modeling_rope_utils.py), and the reader's errors.
#include "loraplan/planner/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "loraplan/planner/attention.h"
#include "loraplan/planner/errors.h"
#include "loraplan/planner/readers.h"

namespace loraplan::planner {
namespace {

// A Llama-3.2-1B-shaped config (head_dim 64, theta 500000) with `extra` fields added.
ModelDesc llama_with(const std::string& extra) {
  return parse_config_json(R"({"model_type": "llama", "vocab_size": 128256, "hidden_size": 2048,
      "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
      "num_key_value_heads": 8, "rope_theta": 500000.0, "max_position_embeddings": 131072)" +
                               extra + "}",
                           "config.json");
}

std::string error_of(const std::string& extra) {
  try {
    llama_with(extra);
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no error)";
}

double plain(double theta, int i, int dim) { return std::pow(theta, -2.0 * i / dim); }

TEST(Rope, DefaultIsThePowerSeries) {
  const ModelDesc m = llama_with("");
  EXPECT_EQ(m.rope_scaling.type, RopeType::kDefault);
  const RopeFrequencies r = rope_frequencies(m, 4096);
  ASSERT_EQ(r.inv_freq.size(), 32u);
  EXPECT_EQ(r.inv_freq[0], 1.0);
  EXPECT_DOUBLE_EQ(r.inv_freq[16], 1 / std::sqrt(500000.0));
  EXPECT_EQ(r.attention_factor, 1.0);
}

TEST(Rope, Llama3KeepsHighFrequenciesStretchesLowAndBlendsTheBand) {
  // Llama-3.2-1B's rope_scaling. Wavelengths 2 pi / f: dim 14 is 1956 tokens (< 8192 / 4 = 2048,
  // kept), dims 15-17 lie between 2048 and 8192 (blended), dim 18 is 10089 (> 8192, divided).
  const ModelDesc m = llama_with(R"(, "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0,
      "low_freq_factor": 1.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"})");
  EXPECT_EQ(m.rope_scaling.type, RopeType::kLlama3);
  const RopeFrequencies r = rope_frequencies(m, 2048);
  EXPECT_DOUBLE_EQ(r.inv_freq[14], plain(500000, 14, 64));
  EXPECT_DOUBLE_EQ(r.inv_freq[18], plain(500000, 18, 64) / 32);
  EXPECT_DOUBLE_EQ(r.inv_freq[31], plain(500000, 31, 64) / 32);
  // dim 16: wavelength 4442.88, smooth (8192 / 4442.88 - 1) / 3 = 0.281283.
  EXPECT_NEAR(r.inv_freq[16], 4.2955679655936815e-4, 1e-16);
  EXPECT_EQ(r.attention_factor, 1.0);
  // Static: the same frequencies at any length.
  EXPECT_EQ(rope_frequencies(m, 100000).inv_freq, r.inv_freq);
}

TEST(Rope, LinearDividesEveryFrequency) {
  const ModelDesc m = llama_with(R"(, "rope_scaling": {"type": "linear", "factor": 4.0})");
  const RopeFrequencies r = rope_frequencies(m, 64);
  for (int i = 0; i < 32; ++i) EXPECT_DOUBLE_EQ(r.inv_freq[i], plain(500000, i, 64) / 4) << i;
}

TEST(Rope, DynamicRaisesTheBaseOnlyPastTheContext) {
  const ModelDesc m = parse_config_json(R"({"model_type": "llama", "vocab_size": 100,
      "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
      "num_attention_heads": 4, "max_position_embeddings": 2048,
      "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}})",
                                        "config.json");
  EXPECT_EQ(rope_frequencies(m, 2048).inv_freq[1], plain(10000, 1, 64));
  // 4096 tokens: base 10000 (2 * 4096 / 2048 - 1)^(64 / 62) = 31082.24.
  EXPECT_NEAR(rope_frequencies(m, 4096).inv_freq[1], plain(31082.236667168814, 1, 64), 1e-12);
}

TEST(Rope, YarnRampsBetweenTheCorrectionDims) {
  // Qwen3-8B with the YaRN setting its model card gives for 128K tokens.
  const ModelDesc m = parse_config_json(R"({"model_type": "qwen3", "vocab_size": 151936,
      "hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36,
      "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
      "rope_theta": 1000000, "max_position_embeddings": 40960, "rope_scaling": {
      "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}})",
                                        "config.json");
  const RopeFrequencies r = rope_frequencies(m, 1024);
  // Correction dims: 32 turns at dim 23.6 (floor 23), 1 turn at 39.65 (ceil 40).
  EXPECT_DOUBLE_EQ(r.inv_freq[23], plain(1e6, 23, 128));
  EXPECT_DOUBLE_EQ(r.inv_freq[40], plain(1e6, 40, 128) / 4);
  EXPECT_NEAR(r.inv_freq[30], 0.001064360981247002, 1e-15);  // ramp 7 / 17
  EXPECT_NEAR(r.attention_factor, 0.1 * std::log(4.0) + 1, 1e-15);
}

TEST(Rope, LongRopeShortFactorsUpToTheOriginalContextLongBeyond) {
  // Phi-4-mini's layout: 96 rotated dims, original context 4096 at the top level, 131072 now.
  std::string shorts, longs;
  for (int i = 0; i < 48; ++i) {
    shorts += std::string(i ? ", " : "") + "1.0";
    longs += std::string(i ? ", " : "") + std::to_string(1 + i);
  }
  const ModelDesc m = parse_config_json(R"({"model_type": "phi3", "vocab_size": 200064,
      "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32,
      "num_attention_heads": 24, "num_key_value_heads": 8, "partial_rotary_factor": 0.75,
      "max_position_embeddings": 131072, "original_max_position_embeddings": 4096,
      "rope_scaling": {"type": "longrope", "short_factor": [)" +
                                            shorts + R"(],
      "long_factor": [)" + longs + "]}}",
                                        "config.json");
  // factor 131072 / 4096 = 32: attention factor sqrt(1 + ln 32 / ln 4096) = sqrt(17 / 12).
  const RopeFrequencies short_run = rope_frequencies(m, 4096);
  EXPECT_NEAR(short_run.attention_factor, std::sqrt(17.0 / 12.0), 1e-15);
  EXPECT_DOUBLE_EQ(short_run.inv_freq[5], plain(10000, 5, 96));
  const RopeFrequencies long_run = rope_frequencies(m, 4097);
  EXPECT_DOUBLE_EQ(long_run.inv_freq[5], plain(10000, 5, 96) / 6);
  EXPECT_EQ(long_run.attention_factor, short_run.attention_factor);
}

TEST(Rope, BadScalingIsNamed) {
  EXPECT_EQ(error_of(R"(, "rope_scaling": {"rope_type": "mrope"})"),
            "config.json:3: \"rope_scaling.rope_type\" must be one of default, linear, dynamic, "
            "yarn, longrope, llama3, got \"mrope\"");
  EXPECT_EQ(error_of(R"(, "rope_scaling": {"rope_type": "llama3", "factor": 8.0})"),
            "config.json: \"rope_scaling.low_freq_factor\" is missing (must be a positive number)");
  EXPECT_EQ(error_of(R"(, "rope_scaling": {"type": "linear", "factor": -2})"),
            "config.json:3: \"rope_scaling.factor\" must be a positive number, got -2");
  EXPECT_EQ(error_of(R"(, "rope_scaling": {"type": "longrope", "factor": 2.0,
      "short_factor": [1, 1], "long_factor": [2, "x"]})"),
            "config.json:4: \"rope_scaling.long_factor\" must be a list of numbers, got [2,\"x\"]");
  EXPECT_EQ(
      error_of(R"(, "rope_scaling": {"type": "longrope", "factor": 2.0,
      "short_factor": [1, 1], "long_factor": [2, 2]})"),
      "config.json: \"rope_scaling.short_factor\" must hold rotary dim / 2 = 32 numbers, got 2");
  EXPECT_EQ(error_of(R"(, "rope_scaling": 4)"),
            "config.json:3: \"rope_scaling\" must be an object, got 4");
}

TEST(Rope, Transformers5RopeParametersCarryTheBaseAndTheScaling) {
  const ModelDesc m = parse_config_json(R"({"model_type": "llama", "vocab_size": 128256,
      "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
      "num_attention_heads": 32, "rope_parameters": {"rope_theta": 500000.0, "rope_type": "llama3",
      "factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
      "original_max_position_embeddings": 8192}})",
                                        "config.json");
  EXPECT_EQ(m.rope_theta, 500000.0);
  EXPECT_EQ(m.rope_scaling.type, RopeType::kLlama3);
  EXPECT_EQ(m.rope_scaling.factor, 32.0);
  EXPECT_EQ(
      error_of(R"(, "rope_parameters": {"full_attention": {"rope_type": "default"},
      "sliding_attention": {"rope_type": "default"}})"),
      "config.json:3: \"rope_parameters\" must be one table (per-layer-type rope parameters are "
      "not supported), got an object of 2 fields");
}

TEST(Rope, Phi3ReadsItsOlderNamesAndDefaultContext) {
  // Phi3Config maps "su" and "yarn" to longrope, and its original context defaults to 4096.
  std::string factors = "[";
  for (int i = 0; i < 48; ++i) factors += std::string(i ? ", " : "") + "1.0";
  factors += "]";
  for (const char* type : {"su", "yarn", "longrope"}) {
    const ModelDesc m = parse_config_json(R"({"model_type": "phi3", "vocab_size": 32064,
        "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32,
        "num_attention_heads": 32, "max_position_embeddings": 131072, "rope_scaling": {"type": ")" +
                                              std::string(type) + R"(", "short_factor": )" +
                                              factors + R"(, "long_factor": )" + factors + "}}",
                                          "config.json");
    EXPECT_EQ(m.rope_scaling.type, RopeType::kLongRope) << type;
    EXPECT_EQ(m.rope_scaling.original_max_position_embeddings, 4096) << type;
    EXPECT_NEAR(m.rope_scaling.attention_factor, std::sqrt(17.0 / 12.0), 1e-15) << type;
  }
}

TEST(Rope, NestedErrorsPointAtTheNestedKey) {
  // "original_max_position_embeddings" appears first at the top level (line 2); the bad one is
  // inside rope_scaling on line 4.
  try {
    parse_config_json(R"({"model_type": "llama", "vocab_size": 100, "hidden_size": 256,
      "original_max_position_embeddings": 4096, "intermediate_size": 512, "num_hidden_layers": 2,
      "num_attention_heads": 4, "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
      "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": "x"}})",
                      "config.json");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(),
                 "config.json:4: \"rope_scaling.original_max_position_embeddings\" must be a "
                 "positive integer, got \"x\"");
  }
}

TEST(SlidingWindow, NullMeansNoneAndAbsentMeansTheDefault) {
  auto mistral = [](const std::string& extra) {
    return parse_config_json(R"({"model_type": "mistral", "vocab_size": 32768, "hidden_size": 4096,
        "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32)" +
                                 extra + "}",
                             "config.json");
  };
  EXPECT_EQ(mistral("").sliding_window, 4096);                          // MistralConfig's default
  EXPECT_EQ(mistral(R"(, "sliding_window": null)").sliding_window, 0);  // Mistral v0.2 and later
  EXPECT_EQ(mistral(R"(, "sliding_window": 2048)").sliding_window, 2048);
  const ModelDesc gemma = parse_config_json(R"({"model_type": "gemma2", "vocab_size": 256000,
      "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
      "num_attention_heads": 8, "attn_logit_softcapping": null})",
                                            "config.json");
  EXPECT_EQ(gemma.attn_logit_softcapping, 0);
  EXPECT_EQ(gemma.final_logit_softcapping, 30);
}

TEST(SlidingWindow, LayerTypesNameTheSlidingLayers) {
  const std::string base = R"({"model_type": "gemma2", "vocab_size": 256, "hidden_size": 64,
      "intermediate_size": 128, "num_hidden_layers": 3, "num_attention_heads": 4,
      "sliding_window": 16, "layer_types": )";
  const ModelDesc m = parse_config_json(
      base + R"(["full_attention", "sliding_attention", "sliding_attention"]})", "config.json");
  EXPECT_FALSE(m.layer_slides(0));  // the even-layer rule would slide here
  EXPECT_TRUE(m.layer_slides(1));
  EXPECT_TRUE(m.layer_slides(2));
  try {
    parse_config_json(base + R"(["full_attention", "sliding_attention"]})", "config.json");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(),
                 "config.json:3: \"layer_types\" must name one kind per layer (3), got "
                 "[\"full_attention\",\"sliding_attention\"]");
  }
}

TEST(SlidingWindow, QueryChunksSeeTheCausalPrefixWithinTheWindow) {
  const std::vector<QueryChunk> chunks = query_chunks(300, 32);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].k0, 0);
  EXPECT_EQ(chunks[0].keys, 128);
  EXPECT_EQ(chunks[1].k0, 128 - 31);  // row 128 sees keys 97..128
  EXPECT_EQ(chunks[1].keys, 256 - 97);
  EXPECT_EQ(chunks[2].t0, 256);
  EXPECT_EQ(chunks[2].rows, 44);
  EXPECT_EQ(chunks[2].keys, 300 - 225);
  EXPECT_EQ(query_chunks(300, 0)[2].keys, 300);
  // Causal, 256 tokens: 128 x 128 + 128 x 256 of the 256 x 256 scores.
  EXPECT_DOUBLE_EQ(chunked_score_share(256, 0), 0.75);
}

TEST(SlidingWindow, LayersThatSlidePerFamily) {
  const ModelDesc gemma = parse_config_json(R"({"model_type": "gemma2", "vocab_size": 256000,
      "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
      "num_attention_heads": 8, "num_key_value_heads": 4})",
                                            "config.json");
  EXPECT_EQ(gemma.sliding_window, 4096);  // Gemma2Config's default
  EXPECT_TRUE(gemma.layer_slides(0));
  EXPECT_FALSE(gemma.layer_slides(1));
  EXPECT_FALSE(windowed_attention(gemma, 0, 4096));  // a window as long as the sequence: causal
  EXPECT_TRUE(windowed_attention(gemma, 0, 4097));
  EXPECT_DOUBLE_EQ(gemma.attention_scale(), 1 / 16.0);  // query_pre_attn_scalar 256

  const ModelDesc qwen = parse_config_json(R"({"model_type": "qwen2", "vocab_size": 1000,
      "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4,
      "num_attention_heads": 4, "use_sliding_window": true, "sliding_window": 128,
      "max_window_layers": 2})",
                                           "config.json");
  EXPECT_FALSE(qwen.layer_slides(1));
  EXPECT_TRUE(qwen.layer_slides(2));
  const ModelDesc qwen_off = parse_config_json(R"({"model_type": "qwen2", "vocab_size": 1000,
      "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4,
      "num_attention_heads": 4, "sliding_window": 128})",
                                               "config.json");
  EXPECT_FALSE(qwen_off.layer_slides(3));  // use_sliding_window defaults to false

  const ModelDesc phi3 = parse_config_json(R"({"model_type": "phi3", "vocab_size": 32064,
      "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32,
      "num_attention_heads": 32, "sliding_window": 2047})",
                                           "config.json");
  EXPECT_TRUE(phi3.layer_slides(31));
  EXPECT_DOUBLE_EQ(phi3.attention_scale(), 1 / std::sqrt(96.0));
}

}  // namespace
}  // namespace loraplan::planner
