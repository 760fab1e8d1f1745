// loraplan export: a plan as transformers, TRL, axolotl, torchtune and Unsloth configurations.
// Every file is parsed (yaml-cpp, nlohmann) and its fields held to the plan; what the trainer
// cannot express is said with the predicted peak of what was exported, and that peak is
// estimate's for the exported configuration.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fixtures/model_files.h"
#include "run_cli.h"

namespace loraplan::cli {
namespace {

using loraplan::testing::read_text;
using loraplan::testing::TempDir;
using nlohmann::json;
using testing::Result;
using testing::run_cli;

// The README's plan: Phi-4-mini on 6GB checkpoints 18 of 32 layers and chunks the loss by 128
// tokens, micro-batch 1 x 8, NF4 with double quantization, fp16, AdamW, LoRA r16 on every linear.
class Export : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(run_cli({"plan", "--gpu", "6GB", "-o", dir.file("plan.json")}).code, 0);
  }
  Result to(const std::string& target, const std::string& out) {
    return run_cli({"export", "--plan", dir.file("plan.json"), "--to", target, "-o", out});
  }
  TempDir dir;
};

const std::vector<std::string> kTargets = {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"};

// Estimate's peak (bytes) of the plan's configuration as the trainers express it: every layer
// checkpointed, the full logits.
int64_t exported_peak() {
  const Result r = run_cli({"estimate", "--gpu", "6GB", "--checkpoint", "all", "--format", "json"});
  EXPECT_EQ(r.code, 0) << r.err;
  return json::parse(r.out)["peak_bytes"].get<int64_t>();
}

TEST_F(Export, AxolotlYamlHoldsThePlanAndSaysWhatItChanged) {
  const Result r = to("axolotl", dir.file("axolotl.yml"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "wrote " + dir.file("axolotl.yml") + " (axolotl)\n");
  const YAML::Node y = YAML::LoadFile(dir.file("axolotl.yml"));
  EXPECT_EQ(y["base_model"].as<std::string>(), "microsoft/Phi-4-mini-instruct");
  EXPECT_TRUE(y["load_in_4bit"].as<bool>());
  EXPECT_FALSE(y["load_in_8bit"].as<bool>());
  EXPECT_EQ(y["adapter"].as<std::string>(), "qlora");
  EXPECT_EQ(y["lora_r"].as<int>(), 16);
  EXPECT_EQ(y["lora_alpha"].as<double>(), 32);
  EXPECT_EQ(y["lora_dropout"].as<double>(), 0.05);
  EXPECT_EQ(y["lora_target_modules"].as<std::vector<std::string>>(), kTargets);
  EXPECT_EQ(y["sequence_len"].as<int>(), 1024);
  EXPECT_EQ(y["micro_batch_size"].as<int>(), 1);
  EXPECT_EQ(y["gradient_accumulation_steps"].as<int>(), 8);
  EXPECT_TRUE(y["gradient_checkpointing"].as<bool>());
  EXPECT_EQ(y["optimizer"].as<std::string>(), "adamw_torch");
  EXPECT_TRUE(y["fp16"].as<bool>());
  EXPECT_FALSE(y["bf16"].as<bool>());
  EXPECT_TRUE(y["sdp_attention"].as<bool>());
  EXPECT_FALSE(y["sample_packing"].as<bool>());
  // Two knobs axolotl cannot express, each on stderr and in the file's comments.
  const std::string text = read_text(dir.file("axolotl.yml"));
  for (const std::string& line :
       {std::string("checkpointing 18 of 32 layers is not expressible in axolotl: exported as all "
                    "layers (predicted peak "),
        std::string("the loss in chunks of 128 tokens is not expressible in axolotl: exported as "
                    "the full logits (predicted peak ")}) {
    EXPECT_NE(r.err.find("loraplan: " + line), std::string::npos) << r.err;
    EXPECT_NE(text.find("# changed: " + line), std::string::npos) << text;
  }
}

TEST_F(Export, HfJsonPredictsWhatEstimateSaysOfTheExportedConfiguration) {
  ASSERT_EQ(to("hf", dir.file("hf.json")).code, 0);
  const json j = json::parse(read_text(dir.file("hf.json")));
  EXPECT_EQ(j["model_name_or_path"], "microsoft/Phi-4-mini-instruct");
  EXPECT_EQ(j["model_kwargs"]["attn_implementation"], "sdpa");
  EXPECT_EQ(j["bnb_config"], json::parse(R"({"load_in_4bit": true, "bnb_4bit_quant_type": "nf4",
      "bnb_4bit_use_double_quant": true, "bnb_4bit_compute_dtype": "float16"})"));
  EXPECT_EQ(j["lora_config"]["r"], 16);
  EXPECT_EQ(j["lora_config"]["target_modules"], kTargets);
  EXPECT_EQ(j["lora_config"]["task_type"], "CAUSAL_LM");
  const json& t = j["training_arguments"];
  EXPECT_EQ(t["per_device_train_batch_size"], 1);
  EXPECT_EQ(t["gradient_accumulation_steps"], 8);
  EXPECT_EQ(t["gradient_checkpointing"], true);
  EXPECT_EQ(t["optim"], "adamw_torch");
  EXPECT_EQ(t["fp16"], true);
  const json& notes = j["loraplan"];
  ASSERT_EQ(notes["changes"].size(), 2u);
  EXPECT_EQ(notes["predicted_peak_bytes"].get<int64_t>(), exported_peak());
  EXPECT_EQ(notes["changes"][1]["exported_peak_bytes"], notes["predicted_peak_bytes"]);
  EXPECT_EQ(notes["changes"][0]["plan_peak_bytes"], notes["plan_peak_bytes"]);
  EXPECT_TRUE(notes["changes"][1]["fits"].get<bool>());
}

TEST_F(Export, TrlAndUnslothNameTheirOwnFields) {
  ASSERT_EQ(to("trl", dir.file("sft.yaml")).code, 0);
  const YAML::Node y = YAML::LoadFile(dir.file("sft.yaml"));
  EXPECT_EQ(y["model_name_or_path"].as<std::string>(), "microsoft/Phi-4-mini-instruct");
  EXPECT_TRUE(y["use_peft"].as<bool>());
  EXPECT_EQ(y["lora_r"].as<int>(), 16);
  EXPECT_EQ(y["lora_target_modules"].as<std::vector<std::string>>(), kTargets);
  EXPECT_TRUE(y["load_in_4bit"].as<bool>());
  EXPECT_EQ(y["bnb_4bit_quant_type"].as<std::string>(), "nf4");
  EXPECT_TRUE(y["use_bnb_nested_quant"].as<bool>());
  EXPECT_EQ(y["max_length"].as<int>(), 1024);
  EXPECT_EQ(y["per_device_train_batch_size"].as<int>(), 1);
  EXPECT_EQ(y["attn_implementation"].as<std::string>(), "sdpa");

  ASSERT_EQ(to("unsloth", dir.file("unsloth.json")).code, 0);
  const json u = json::parse(read_text(dir.file("unsloth.json")));
  EXPECT_EQ(u["from_pretrained"]["model_name"], "microsoft/Phi-4-mini-instruct");
  EXPECT_EQ(u["from_pretrained"]["max_seq_length"], 1024);
  EXPECT_EQ(u["from_pretrained"]["load_in_4bit"], true);
  EXPECT_EQ(u["get_peft_model"]["r"], 16);
  EXPECT_EQ(u["get_peft_model"]["target_modules"], kTargets);
  EXPECT_EQ(u["get_peft_model"]["use_gradient_checkpointing"], true);
  EXPECT_EQ(u["sft_config"]["gradient_accumulation_steps"], 8);
}

TEST_F(Export, TorchtuneWithoutABuilderIsRefused) {
  const Result r = to("torchtune", dir.file("tt.yaml"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("loraplan: error: --to torchtune: torchtune has no LoRA builder loraplan "
                       "knows for microsoft/Phi-4-mini-instruct; export to hf, trl, axolotl or "
                       "unsloth\n"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("tt.yaml")));
}

// Qwen2.5-0.5B: a torchtune builder, its projections in torchtune's names, the MLP adapted whole,
// a chunked loss (when the plan chooses one) as output chunks of the micro-batch's tokens.
TEST(ExportTorchtune, QwenPlanAsARecipeOverride) {
  TempDir dir;
  ASSERT_EQ(run_cli({"plan", "--model", "qwen2.5-0.5b", "--gpu", "rtx-4060", "--compute-dtype",
                     "bf16", "--lora-targets", "q,v,gate", "-o", dir.file("plan.json")})
                .code,
            0);
  const Result r =
      run_cli({"export", "--plan", dir.file("plan.json"), "--to", "torchtune"});  // stdout
  ASSERT_EQ(r.code, 0) << r.err;
  const YAML::Node y = YAML::Load(r.out);
  EXPECT_EQ(y["model"]["_component_"].as<std::string>(),
            "torchtune.models.qwen2_5.lora_qwen2_5_0_5b_base");
  EXPECT_EQ(y["model"]["lora_attn_modules"].as<std::vector<std::string>>(),
            (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_TRUE(y["model"]["apply_lora_to_mlp"].as<bool>());
  EXPECT_TRUE(y["model"]["quantize_base"].as<bool>());
  EXPECT_EQ(y["dtype"].as<std::string>(), "bf16");
  EXPECT_EQ(y["optimizer"]["_component_"].as<std::string>(), "torch.optim.AdamW");
  EXPECT_NE(r.err.find("loraplan: LoRA on part of the MLP is not expressible in torchtune: "
                       "exported as LoRA on the whole MLP (predicted peak "),
            std::string::npos)
      << r.err;
  const json plan = json::parse(read_text(dir.file("plan.json")));
  const int64_t tokens =
      plan["config"]["micro_batch"].get<int64_t>() * plan["config"]["seq_len"].get<int64_t>();
  const std::string loss = plan["config"]["loss"]["kind"];
  if (loss == "chunked") {
    EXPECT_EQ(y["loss"]["_component_"].as<std::string>(),
              "torchtune.modules.loss.CEWithChunkedOutputLoss");
    const int64_t k = plan["config"]["loss"]["chunk_tokens"];
    EXPECT_EQ(y["loss"]["num_output_chunks"].as<int64_t>(), (tokens + k - 1) / k);
  } else {
    EXPECT_EQ(y["loss"]["_component_"].as<std::string>(), "torch.nn.CrossEntropyLoss");
  }
}

TEST(ExportErrors, BadTargetsAndPlansGetOneLine) {
  TempDir dir;
  Result r = run_cli({"export", "--plan", dir.file("none.json"), "--to", "hf"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(dir.file("none.json")), std::string::npos) << r.err;
  r = run_cli({"export", "--plan", dir.file("none.json"), "--to", "deepspeed"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--to"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace loraplan::cli
