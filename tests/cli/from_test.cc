// estimate|plan --from FILE: another trainer's configuration (axolotl, transformers/TRL, torchtune,
// loraplan export's own files) read as loraplan's flags. What a file sets is held to the same
// estimate given as flags; what it leaves unset takes the trainer's default, listed; each bad or
// unknown field is one line at its line, exit 2.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fixtures/model_files.h"
#include "run_cli.h"

namespace loraplan::cli {
namespace {

using loraplan::testing::TempDir;
using loraplan::testing::write_text;
using nlohmann::json;
using testing::Result;
using testing::run_cli;

json estimate_json(std::vector<std::string> args) {
  args.insert(args.begin(), "estimate");
  args.insert(args.end(), {"--format", "json"});
  const Result r = run_cli(args);
  EXPECT_LE(r.code, 1) << r.err;
  return r.code <= 1 ? json::parse(r.out) : json{};
}

bool contains(const json& list, const std::string& s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

// The estimate of a --from file is the estimate of the same knobs as flags: everything but "from".
void expect_same_estimate(json from, const json& flags) {
  ASSERT_TRUE(from.contains("from"));
  from.erase("from");
  EXPECT_EQ(from["config"], flags["config"]);
  EXPECT_EQ(from["peak_bytes"], flags["peak_bytes"]);
  EXPECT_EQ(from, flags);
}

// axolotl's QLoRA example as its users write it: datasets, wandb, schedules and all.
constexpr const char* kAxolotlQlora = R"(base_model: meta-llama/Llama-3.2-1B
model_type: AutoModelForCausalLM
tokenizer_type: AutoTokenizer

load_in_8bit: false
load_in_4bit: true
strict: false

datasets:
  - path: mhenrichsen/alpaca_2k_test
    type: alpaca
dataset_prepared_path:
val_set_size: 0.05
output_dir: ./outputs/qlora-out

adapter: qlora
lora_model_dir:

sequence_len: 2048
sample_packing: true
pad_to_sequence_len: true

lora_r: 32
lora_alpha: 16
lora_dropout: 0.05
lora_target_linear: true
lora_fan_in_fan_out:

wandb_project:
wandb_entity:

gradient_accumulation_steps: 4
micro_batch_size: 2
num_epochs: 4
optimizer: paged_adamw_8bit
lr_scheduler: cosine
learning_rate: 0.0002

train_on_inputs: false
group_by_length: false
bf16: auto
fp16:
tf32: false

gradient_checkpointing: true
logging_steps: 1
flash_attention: true

warmup_steps: 10
evals_per_epoch: 4
saves_per_epoch: 1
weight_decay: 0.0
special_tokens:
  pad_token: "<|end_of_text|>"
)";

TEST(From, AnAxolotlQloraConfigIsTheSameEstimateAsItsFlags) {
  TempDir dir;
  write_text(dir.file("qlora.yml"), kAxolotlQlora);
  const json from = estimate_json({"--from", dir.file("qlora.yml"), "--gpu", "24GB"});
  const json flags = estimate_json({"--model",         "llama-3.2-1b",
                                    "--seq-len",       "2048",
                                    "--micro-batch",   "2",
                                    "--grad-accum",    "4",
                                    "--weights",       "nf4",
                                    "--double-quant",  "on",
                                    "--compute-dtype", "bf16",
                                    "--lora-rank",     "32",
                                    "--lora-alpha",    "16",
                                    "--lora-dropout",  "0.05",
                                    "--lora-targets",  "all-linear",
                                    "--optimizer",     "paged-adamw-8bit",
                                    "--checkpoint",    "all",
                                    "--attention",     "efficient",
                                    "--loss",          "full",
                                    "--gpu",           "24GB"});
  expect_same_estimate(from, flags);
  const json& f = from["from"];
  EXPECT_EQ(f["trainer"], "axolotl");
  for (const char* used :
       {"base_model", "load_in_4bit", "adapter", "sequence_len", "lora_r", "lora_alpha",
        "lora_dropout", "lora_target_linear", "micro_batch_size", "gradient_accumulation_steps",
        "optimizer", "bf16", "gradient_checkpointing", "flash_attention", "sample_packing"})
    EXPECT_TRUE(contains(f["used"], used)) << used << " in " << f["used"];
  for (const char* ignored :
       {"datasets", "learning_rate", "num_epochs", "wandb_project", "output_dir", "tf32",
        "special_tokens", "lora_model_dir", "fp16", "dataset_prepared_path", "strict"})
    EXPECT_TRUE(contains(f["ignored"], ignored)) << ignored << " in " << f["ignored"];
  EXPECT_FALSE(contains(f["ignored"], "sequence_len"));
  EXPECT_EQ(f["not_modelled"], json::array());
  EXPECT_EQ(f["overridden"], json::array());
  // The double quantization axolotl's QLoRA sets without a field for it.
  ASSERT_EQ(f["defaults"].size(), 1u) << f["defaults"];
  EXPECT_EQ(f["defaults"][0]["flag"], "--double-quant");
  EXPECT_EQ(f["defaults"][0]["value"], "on");
}

TEST(From, TheCommandLineWinsOverTheFile) {
  TempDir dir;
  write_text(dir.file("qlora.yml"), kAxolotlQlora);
  const json from = estimate_json({"--from", dir.file("qlora.yml"), "--gpu", "24GB", "--seq-len",
                                   "512", "--optimizer", "adamw"});
  EXPECT_EQ(from["config"]["seq_len"], 512);
  EXPECT_EQ(from["config"]["optimizer"], "adamw");
  EXPECT_EQ(from["config"]["micro_batch"], 2);  // still the file's
  EXPECT_TRUE(contains(from["from"]["overridden"], "sequence_len"));
  EXPECT_TRUE(contains(from["from"]["overridden"], "optimizer"));
  EXPECT_FALSE(contains(from["from"]["used"], "sequence_len"));
}

TEST(From, TheTextSaysWhatWasReadOnStderr) {
  TempDir dir;
  write_text(dir.file("qlora.yml"), std::string(kAxolotlQlora) + "torch_compile: true\n");
  const Result r = run_cli({"estimate", "--from", dir.file("qlora.yml"), "--gpu", "24GB"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err.rfind("from axolotl config " + dir.file("qlora.yml") + ": used base_model, ", 0),
            0u)
      << r.err;
  EXPECT_NE(r.err.find("  ignored (no effect on memory): model_type, tokenizer_type, "),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("  not modelled: torch_compile: compiled graphs save different "
                       "activations\n"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.out.find("T 2048 x B 2 x accum 4 | nf4+dq | bf16 | LoRA r32 "), std::string::npos)
      << r.out;
}

// A TRL `trl sft --config` YAML: defaults are transformers', TRL's and PEFT's, and say so.
TEST(From, ATrlConfigTakesTheTrainersDefaults) {
  TempDir dir;
  write_text(dir.file("sft.yaml"), R"(model_name_or_path: Qwen/Qwen2.5-0.5B
dataset_name: trl-lib/Capybara
learning_rate: 2.0e-4
num_train_epochs: 1
packing: true
per_device_train_batch_size: 2
gradient_accumulation_steps: 8
gradient_checkpointing: true
bf16: true
use_peft: true
lora_r: 32
lora_alpha: 16
lora_target_modules: all-linear
output_dir: Qwen2-0.5B-SFT
report_to: none
)");
  const json from = estimate_json({"--from", dir.file("sft.yaml"), "--gpu", "24GB"});
  // TRL's max_length 1024, bf16 weights (they load in the compute dtype), PEFT's q/v default not
  // needed (the file names its targets), LoRA dropout 0.05, AdamW, sdpa.
  const json flags = estimate_json({"--model",         "qwen2.5-0.5b",
                                    "--seq-len",       "1024",
                                    "--micro-batch",   "2",
                                    "--grad-accum",    "8",
                                    "--weights",       "bf16",
                                    "--compute-dtype", "bf16",
                                    "--lora-rank",     "32",
                                    "--lora-alpha",    "16",
                                    "--lora-dropout",  "0.05",
                                    "--lora-targets",  "all-linear",
                                    "--optimizer",     "adamw",
                                    "--checkpoint",    "all",
                                    "--attention",     "efficient",
                                    "--loss",          "full",
                                    "--gpu",           "24GB"});
  expect_same_estimate(from, flags);
  const json& f = from["from"];
  EXPECT_EQ(f["trainer"], "transformers/TRL");
  std::vector<std::string> defaulted;
  for (const json& d : f["defaults"]) defaulted.push_back(d["flag"]);
  EXPECT_EQ(defaulted, (std::vector<std::string>{"--seq-len", "--weights", "--attention",
                                                 "--lora-dropout", "--optimizer"}));
  EXPECT_TRUE(contains(f["used"], "packing"));
  EXPECT_TRUE(contains(f["ignored"], "dataset_name"));
}

// A torchtune recipe: the builder names the model; the chunked loss's chunk follows B x T.
TEST(From, ATorchtuneRecipeIsTheSameEstimateAsItsFlags) {
  TempDir dir;
  write_text(dir.file("tt.yaml"), R"(output_dir: /tmp/torchtune/llama3_2_1B/qlora
model:
  _component_: torchtune.models.llama3_2.qlora_llama3_2_1b
  lora_attn_modules: ['q_proj', 'v_proj', 'output_proj']
  apply_lora_to_mlp: True
  lora_rank: 64
  lora_alpha: 128
  lora_dropout: 0.0
tokenizer:
  _component_: torchtune.models.llama3.llama3_tokenizer
  path: /tmp/Llama-3.2-1B-Instruct/original/tokenizer.model
  max_seq_len: 2048
checkpointer:
  _component_: torchtune.training.FullModelHFCheckpointer
  checkpoint_dir: /tmp/Llama-3.2-1B-Instruct/
  checkpoint_files: [model.safetensors]
  model_type: LLAMA3_2
dataset:
  _component_: torchtune.datasets.alpaca_cleaned_dataset
  packed: False
seed: null
shuffle: True
batch_size: 4
optimizer:
  _component_: torch.optim.AdamW
  fused: True
  weight_decay: 0.01
  lr: 3e-4
lr_scheduler:
  _component_: torchtune.training.lr_schedulers.get_cosine_schedule_with_warmup
  num_warmup_steps: 100
loss:
  _component_: torchtune.modules.loss.CEWithChunkedOutputLoss
epochs: 1
max_steps_per_epoch: null
gradient_accumulation_steps: 8
clip_grad_norm: null
compile: False
device: cuda
enable_activation_checkpointing: True
enable_activation_offloading: False
dtype: bf16
)");
  const json from = estimate_json({"--from", dir.file("tt.yaml"), "--gpu", "24GB"});
  const json flags = estimate_json({"--model",         "llama-3.2-1b",
                                    "--seq-len",       "2048",
                                    "--micro-batch",   "4",
                                    "--grad-accum",    "8",
                                    "--weights",       "nf4",
                                    "--double-quant",  "on",
                                    "--compute-dtype", "bf16",
                                    "--lora-rank",     "64",
                                    "--lora-alpha",    "128",
                                    "--lora-dropout",  "0",
                                    "--lora-targets",  "q,v,o,gate,up,down",
                                    "--optimizer",     "adamw",
                                    "--checkpoint",    "all",
                                    "--attention",     "efficient",
                                    "--loss",          "chunked:1024",
                                    "--gpu",           "24GB"});  // 4 x 2048 tokens in 8 chunks
  expect_same_estimate(from, flags);
  EXPECT_EQ(from["from"]["trainer"], "torchtune");
  EXPECT_TRUE(contains(from["from"]["used"], "model._component_"));
  EXPECT_TRUE(contains(from["from"]["ignored"], "optimizer.lr"));
  EXPECT_TRUE(contains(from["from"]["ignored"], "enable_activation_offloading"));
}

// What `loraplan export` writes reads back as the configuration it expresses.
class FromExport : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(run_cli({"plan", "--gpu", "6GB", "-o", dir.file("plan.json")}).code, 0);
  }
  std::string exported(const std::string& target) {
    const std::string out = dir.file(target + ".out");
    const Result r =
        run_cli({"export", "--plan", dir.file("plan.json"), "--to", target, "-o", out});
    EXPECT_EQ(r.code, 0) << r.err;
    return out;
  }
  TempDir dir;
};

TEST_F(FromExport, EveryTargetReadsBackAsWhatItExpresses) {
  // The README plan as the trainers express it: every layer checkpointed, the full logits.
  const json expressed = estimate_json({"--gpu", "6GB", "--checkpoint", "all", "--loss", "full"});
  for (const char* target : {"hf", "trl", "axolotl", "unsloth"}) {
    SCOPED_TRACE(target);
    const json from = estimate_json({"--from", exported(target), "--gpu", "6GB"});
    expect_same_estimate(from, expressed);
    // What each file leaves to its trainer: axolotl's and Unsloth's QLoRA quantize the absmax
    // values again without a field for it; Unsloth's attention is its own.
    std::vector<std::string> defaulted;
    for (const json& d : from["from"]["defaults"]) defaulted.push_back(d["flag"]);
    const std::string t = target;
    std::vector<std::string> expected;
    if (t == "axolotl") expected = {"--double-quant"};
    if (t == "unsloth") expected = {"--double-quant", "--attention"};
    EXPECT_EQ(defaulted, expected);
    EXPECT_EQ(from["from"]["not_modelled"], json::array());
  }
}

TEST_F(FromExport, TheTorchtuneExportReadsBack) {
  ASSERT_EQ(
      run_cli({"plan", "--model", "llama-3.2-1b", "--gpu", "6GB", "-o", dir.file("plan.json")})
          .code,
      0);
  const std::string file = exported("torchtune");
  const YAML::Node y = YAML::LoadFile(file);
  const json from = estimate_json({"--from", file, "--gpu", "6GB"});
  const json& c = from["config"];
  EXPECT_EQ(from["model"], "llama-3.2-1b");
  EXPECT_EQ(c["seq_len"], y["tokenizer"]["max_seq_len"].as<int>());
  EXPECT_EQ(c["micro_batch"], y["batch_size"].as<int>());
  EXPECT_EQ(c["grad_accum"], y["gradient_accumulation_steps"].as<int>());
  EXPECT_EQ(c["lora"]["rank"], y["model"]["lora_rank"].as<int>());
  EXPECT_EQ(c["compute_dtype"], "bf16");
  EXPECT_EQ(c["checkpoint"], y["enable_activation_checkpointing"].as<bool>() ? "all" : "none");
  if (y["loss"]["num_output_chunks"]) {
    const int64_t N = y["batch_size"].as<int64_t>() * y["tokenizer"]["max_seq_len"].as<int64_t>();
    const int64_t k = y["loss"]["num_output_chunks"].as<int64_t>();
    EXPECT_EQ(c["loss"], "chunked:" + std::to_string((N + k - 1) / k));
  } else {
    EXPECT_EQ(c["loss"], "full");
  }
}

// plan --from: the file's model and adapter; plan chooses micro-batch and checkpointing itself.
TEST(From, PlanSearchesWhatItChoosesItself) {
  TempDir dir;
  write_text(dir.file("qlora.yml"), kAxolotlQlora);
  const Result r =
      run_cli({"plan", "--from", dir.file("qlora.yml"), "--gpu", "8GB", "--format", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("  chosen by plan instead: micro_batch_size, gradient_accumulation_steps, "),
            std::string::npos)
      << r.err;
  const json p = json::parse(r.out);
  EXPECT_EQ(p["config"]["seq_len"], 2048);
  EXPECT_EQ(p["config"]["optimizer"], "paged-adamw-8bit");
  EXPECT_EQ(p["config"]["lora"]["rank"], 32);
}

// The example configs in docs/examples (the README's commands) read whole, with nothing unknown,
// and fit 8GB as the README says.
TEST(From, TheDocsExamplesReadAndFit) {
  for (const char* name : {"axolotl-qlora.yml", "trl-sft.yaml", "torchtune-qlora.yaml"}) {
    SCOPED_TRACE(name);
    const std::string path = std::string(LORAPLAN_SOURCE_DIR) + "/docs/examples/" + name;
    const json e = estimate_json({"--from", path, "--gpu", "8GB"});
    EXPECT_TRUE(e["fits"].get<bool>());
    EXPECT_EQ(e["from"]["not_modelled"], json::array());
    EXPECT_GE(e["from"]["used"].size(), 10u);
  }
}

struct BadFile {
  const char* name;
  std::string text;
  std::string error;  // the whole line, after "loraplan: FILE"
};

TEST(From, BadFilesGetOneLineAtTheirLine) {
  TempDir dir;
  const std::string base = "base_model: meta-llama/Llama-3.2-1B\nadapter: lora\n";
  const std::vector<BadFile> cases = {
      {"typo", base + "micro_batch_sise: 2\n",
       ":3: micro_batch_sise: not a field of axolotl that loraplan knows (closest: "
       "micro_batch_size); remove it, or give the knob as a flag"},
      {"value", base + "micro_batch_size: two\n",
       ":3: micro_batch_size: expected a positive integer, got \"two\""},
      {"deepspeed", base + "deepspeed: deepspeed_configs/zero3.json\n",
       ":3: deepspeed: DeepSpeed shards state across GPUs; loraplan plans one GPU"},
      {"full", "base_model: meta-llama/Llama-3.2-1B\nsequence_len: 512\n",
       ": no adapter: axolotl trains every weight; loraplan plans LoRA and QLoRA (adapter: lora "
       "or qlora)"},
      {"model", "base_model: nobody/no-such-model\nadapter: lora\n",
       ":1: base_model: \"nobody/no-such-model\" is neither a local model folder nor a model "
       "profile loraplan knows; pass --model with a profile or folder (loraplan profiles)"},
      {"optim", base + "optimizer: paged_adamw_32bit\n",
       ":3: optimizer: \"paged_adamw_32bit\" is not an optimizer loraplan models (adamw_torch, "
       "adamw_torch_fused, adamw_bnb_8bit, paged_adamw_8bit, sgd)"},
      {"targets", base + "lora_target_modules: [q_proj, w_proj]\n",
       ":3: lora_target_modules: unknown target \"w_proj\" (use q,k,v,o,gate,up,down or "
       "all-linear)"},
      {"qlora", "base_model: meta-llama/Llama-3.2-1B\nadapter: qlora\n",
       ":2: adapter: qlora needs load_in_4bit: true (as axolotl says)"},
      {"unknown", "foo: 1\n",
       ": not a trainer configuration loraplan reads: no base_model (axolotl), "
       "model_name_or_path or per_device_train_batch_size (transformers/TRL), or "
       "model._component_ (torchtune)"},
      {"list", "- a\n- b\n", ": expected a mapping of fields at the top"},
      {"trl_full", "model_name_or_path: Qwen/Qwen2.5-0.5B\nper_device_train_batch_size: 2\n",
       ": no use_peft and no lora_* field: this trains every weight; loraplan plans LoRA and "
       "QLoRA (set use_peft: true)"},
      {"tt_seq",
       "model:\n  _component_: torchtune.models.llama3_2.lora_llama3_2_1b\n  lora_attn_modules: "
       "[q_proj]\nbatch_size: 2\n",
       ": tokenizer.max_seq_len: not set, so torchtune does not cut sequences; set it (or pass "
       "--seq-len) for the longest sequence"},
  };
  for (const BadFile& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = dir.file(std::string(c.name) + ".yml");
    write_text(path, c.text);
    const Result r = run_cli({"estimate", "--from", path});
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(r.err, "loraplan: error: " + path + c.error + "\n");
    EXPECT_EQ(r.out, "");
  }
  const Result missing = run_cli({"estimate", "--from", dir.file("none.yml")});
  EXPECT_EQ(missing.code, 2);
  EXPECT_EQ(missing.err, "loraplan: error: --from: " + dir.file("none.yml") + ": no such file\n");
  write_text(dir.file("broken.yml"), "base_model: [a, b\n");
  const Result broken = run_cli({"estimate", "--from", dir.file("broken.yml")});
  EXPECT_EQ(broken.code, 2);
  EXPECT_EQ(broken.err.rfind("loraplan: error: " + dir.file("broken.yml") + ":", 0), 0u)
      << broken.err;
  EXPECT_NE(broken.err.find("not YAML or JSON"), std::string::npos) << broken.err;
}

}  // namespace
}  // namespace loraplan::cli
