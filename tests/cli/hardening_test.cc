// Inputs that once crashed, hung, exited 3, gave a wrong answer or clobbered a file: each class
// now gets one line on stderr naming what is wrong and where, exit 2, and nothing written.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "fixtures/model_files.h"
#include "fixtures/onnx_writer.h"
#include "loraplan/data/dataset.h"
#include "loraplan/planner/errors.h"
#include "loraplan/planner/model_loader.h"
#include "run_cli.h"

namespace loraplan::cli {
namespace {

namespace fs = std::filesystem;
using loraplan::testing::read_text;
using loraplan::testing::TempDir;
using loraplan::testing::write_text;
using testing::Result;
using testing::run_cli;

// The tiny-llama profile's config.json with `key` replaced by the raw JSON `value`.
std::string tiny_config_with(const std::string& key, const std::string& value) {
  nlohmann::ordered_json j =
      nlohmann::ordered_json::parse(read_text(planner::profile_dir() + "/models/tiny-llama.json"));
  j[key] = nullptr;
  std::string text = j.dump(2);
  const std::string null_field = "\"" + key + "\": null";
  return text.replace(text.find(null_field), null_field.size(), "\"" + key + "\": " + value);
}

// The line of `text` that holds "key".
int line_of(const std::string& text, const std::string& key) {
  const size_t at = text.find("\"" + key + "\"");
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(at), '\n'));
}

void expect_input_error(const std::vector<std::string>& args, const std::string& message) {
  const Result r = run_cli(args);
  EXPECT_EQ(r.code, 2) << args[0] << " " << message;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "loraplan: error: " + message + "\n");
}

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const fs::directory_entry& e : fs::directory_iterator(dir))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(Hardening, DeepNestingIsRefusedBeforeAnythingRecurses) {
  TempDir dir;
  const std::string deep = std::string(150000, '[') + std::string(150000, ']');
  const std::string config = dir.file("config.json");
  const std::string text = tiny_config_with("vocab_size", deep);
  write_text(config, text);
  const std::string line = std::to_string(line_of(text, "vocab_size"));
  expect_input_error({"inspect", "--model", config},
                     config + ":" + line + ": JSON nests deeper than 64 levels");

  const std::string st = dir.file("model.safetensors");
  loraplan::testing::write_safetensors_raw(st, "{\"w\": {\"dtype\": " + deep + "}}", 0);
  expect_input_error({"inspect", "--model", st},
                     st + ":1: JSON header nests deeper than 64 levels");

  const std::string plan = dir.file("plan.json");
  write_text(plan, "{\"schema\": \"loraplan-plan\",\n \"model\": " + deep + "}");
  expect_input_error({"verify", "--plan", plan, "--run", dir.file("report.json")},
                     plan + ":2: plan nests deeper than 64 levels");
  // 64 levels are fine: the field is then merely of the wrong type.
  write_text(config, tiny_config_with("vocab_size", std::string(63, '[') + std::string(63, ']')));
  expect_input_error(
      {"inspect", "--model", config},
      config + ":" + line +
          ": \"vocab_size\" must be a positive integer up to 8388608, got an array of 1 item");
}

TEST(Hardening, ErrorsQuoteShortFlatExcerpts) {
  TempDir dir;
  const std::string config = dir.file("config.json");
  const std::string text = tiny_config_with("hidden_size", "{\"a\": [1, 2, 3], \"b\": {\"c\": 4}}");
  write_text(config, text);
  expect_input_error(
      {"inspect", "--model", config},
      config + ":" + std::to_string(line_of(text, "hidden_size")) +
          ": \"hidden_size\" must be a positive integer up to 131072, got an object of 2 fields");
  const std::string long_name =
      tiny_config_with("model_type", "\"" + std::string(1000, 'x') + "\"");
  write_text(config, long_name);
  expect_input_error(
      {"inspect", "--model", config},
      config + ":" + std::to_string(line_of(long_name, "model_type")) +
          ": \"model_type\" must be one of llama, mistral, qwen2, qwen3, phi3, gemma2, got \"" +
          std::string(40, 'x') + "\"... (1000 bytes)");
}

TEST(Hardening, DimensionsBeyondTheLimitsAreRefusedWhereTheyAreRead) {
  TempDir dir;
  const std::string config = dir.file("config.json");
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"num_hidden_layers", "100000000",
       "\"num_hidden_layers\" must be a positive integer up to 1024, got 100000000"},
      {"num_hidden_layers", "4294967296",
       "\"num_hidden_layers\" must be a positive integer up to 1024, got 4294967296"},
      {"intermediate_size", "72057594037927936",
       "\"intermediate_size\" must be a positive integer up to 1048576, got 72057594037927936"},
      {"vocab_size", "1e8",
       "\"vocab_size\" must be a positive integer up to 8388608, got 100000000.0"},
      {"rms_norm_eps", "-1", "\"rms_norm_eps\" must be a positive number, got -1"},
      {"rope_theta", "-1", "\"rope_theta\" must be a positive number, got -1"},
      {"rope_theta", "0", "\"rope_theta\" must be a positive number, got 0"},
  };
  for (const auto& [key, value, message] : cases) {
    const std::string text = tiny_config_with(key, value);
    write_text(config, text);
    expect_input_error({"estimate", "--model", config},
                       config + ":" + std::to_string(line_of(text, key)) + ": " + message);
  }
  write_text(config, tiny_config_with("rms_norm_eps", "1e405"));
  expect_input_error({"estimate", "--model", config},
                     config + ": malformed JSON: number overflow parsing '1e405'");
}

TEST(Hardening, TheLargestModelIsANumberNotAnOverflow) {
  // Every dimension at its limit: the step is astronomically large, and says so, instead of
  // overflowing into "mlp 0" parameters that fit.
  TempDir dir;
  const std::string config = dir.file("config.json");
  write_text(config, R"({"model_type": "llama", "vocab_size": 8388608, "hidden_size": 131072,
    "intermediate_size": 1048576, "num_hidden_layers": 1024, "num_attention_heads": 1024,
    "head_dim": 4096})");
  const Result inspect = run_cli({"inspect", "--model", config, "--format", "json"});
  ASSERT_EQ(inspect.code, 0) << inspect.err;
  const nlohmann::json j = nlohmann::json::parse(inspect.out);
  // 1024 x (q, k, v, o: 4 x 131072 x 4194304 + gate, up, down: 3 x 131072 x 1048576 + 2 norms)
  // + embed and lm_head 2 x 8388608 x 131072 + the final norm.
  const int64_t per_layer =
      4 * int64_t{131072} * 4194304 + 3 * int64_t{131072} * 1048576 + 2 * 131072;
  EXPECT_EQ(j["total_params"].get<int64_t>(),
            1024 * per_layer + 2 * int64_t{8388608} * 131072 + 131072);
  const Result small = run_cli({"estimate", "--model", config, "--seq-len", "8"});
  EXPECT_EQ(small.code, 1);
  EXPECT_NE(small.out.find(
                "\n  DOES NOT FIT: needs 1295703.02 GiB, 1295697.02 GiB more than the budget\n"),
            std::string::npos)
      << small.out;
  expect_input_error({"estimate", "--model", config, "--seq-len", "4194304"},
                     "--seq-len: T 4194304 x B 1 on this model could need up to 1223 PiB in one "
                     "step; loraplan plans steps up to 64 PiB");
}

TEST(Hardening, SequenceAndBatchLimits) {
  expect_input_error({"estimate", "--seq-len", "99999999999"},
                     "--seq-len: 99999999999 is beyond loraplan's limit of 4194304");
  expect_input_error({"estimate", "--seq-len", "4194304", "--micro-batch", "8"},
                     "--micro-batch: 8 x --seq-len 4194304 is beyond loraplan's limit of 16777216 "
                     "tokens per micro-batch");
  expect_input_error({"sweep", "--seq-lens", "1024,99999999999"},
                     "--seq-lens: 99999999999 is beyond loraplan's limit of 4194304 tokens");
  expect_input_error({"plan", "--target-batch", "1000000000000"},
                     "--target-batch: 1000000000000 is not in 1..65536 sequences");
  // Eager attention's B H T T scores at four million tokens, on every layer.
  expect_input_error(
      {"estimate", "--model", "llama-3.1-8b", "--seq-len", "4194304", "--attention", "eager"},
      "--seq-len: T 4194304 x B 1 on this model could need up to 128 PiB in one step; "
      "loraplan plans steps up to 64 PiB");
  // At a million tokens the same is a (very large) answer: it does not fit.
  const Result eager = run_cli(
      {"estimate", "--model", "llama-3.1-8b", "--seq-len", "1048576", "--attention", "eager"});
  EXPECT_EQ(eager.code, 1);
  EXPECT_NE(eager.out.find("DOES NOT FIT: needs 328758.56 GiB"), std::string::npos) << eager.out;
}

TEST(Hardening, PlanFieldsBeyondTheLimits) {
  TempDir dir;
  const std::string plan = dir.file("plan.json");
  const Result made = run_cli({"plan", "--model", "tiny-llama", "--device", "cpu", "--budget",
                               "3MiB", "--compute-dtype", "fp32", "--seq-len", "64", "-o", plan});
  ASSERT_EQ(made.code, 0) << made.err;
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(read_text(plan));
  j["config"]["seq_len"] = int64_t{1} << 31;
  std::string text = j.dump(2);
  write_text(plan, text);
  expect_input_error(
      {"verify", "--plan", plan, "--run", dir.file("report.json")},
      plan + ":" + std::to_string(line_of(text, "seq_len")) +
          ": \"config.seq_len\" must be a positive integer up to 4194304, got 2147483648");
  j["config"]["seq_len"] = 64;
  j["config"]["compute_dtype"] = "fp16";
  write_text(plan, j.dump(2));
  expect_input_error({"verify", "--plan", plan, "--run", dir.file("report.json")},
                     plan +
                         ": --compute-dtype: fp16 has no matrix products on CPU in LibTorch 1.13; "
                         "use bf16 or fp32 with --device cpu");
}

TEST(Hardening, OutputsAreWholeOrAbsentAndNeverReplaceAFolderOrDevice) {
  TempDir dir;
  const std::vector<std::string> plan = {"plan", "--model",   "tiny-llama", "--device",
                                         "cpu",  "--budget",  "3MiB",       "--compute-dtype",
                                         "fp32", "--seq-len", "64"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = plan;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  fs::create_directory(dir.file("existing"));
  expect_input_error(with({"-o", dir.file("existing")}),
                     "--out: " + dir.file("existing") + " is a folder; give a file name");
  ASSERT_EQ(mkfifo(dir.file("fifo").c_str(), 0644), 0);
  expect_input_error(
      with({"-o", dir.file("fifo")}),
      "--out: " + dir.file("fifo") +
          " is not a regular file (a device, FIFO or socket); refusing to replace it");
  expect_input_error(
      with({"-o", "/dev/null"}),
      "--out: /dev/null is not a regular file (a device, FIFO or socket); refusing to replace it");
  EXPECT_TRUE(fs::is_character_file("/dev/null"));
  expect_input_error(with({"-o", ""}), "--out: empty; give a file name");
  expect_input_error(with({"-o", dir.file("no/such/plan.json")}),
                     "--out: " + dir.file("no/such/plan.json") + ": the folder " +
                         dir.file("no/such") + " does not exist");
  EXPECT_EQ(files_in(dir.path()),
            (std::vector<std::string>{"existing", "fifo"}));  // no temporary left

  // "-" is standard output: the plan itself, and no file named "-".
  const Result out = run_cli(with({"-o", "-"}));
  ASSERT_EQ(out.code, 0) << out.err;
  EXPECT_EQ(nlohmann::json::parse(out.out)["schema"], "loraplan-plan");
  EXPECT_FALSE(fs::exists("-"));

  // A link to a plan file: the file it points at is replaced, the link stays.
  write_text(dir.file("target.json"), "old");
  fs::create_symlink(dir.file("target.json"), dir.file("link.json"));
  ASSERT_EQ(run_cli(with({"-o", dir.file("link.json")})).code, 0);
  EXPECT_TRUE(fs::is_symlink(dir.file("link.json")));
  EXPECT_EQ(read_text(dir.file("target.json")), out.out);
}

TEST(Hardening, IndexAndExternalDataStayInsideTheModelFolder) {
  TempDir dir;
  const planner::ModelDesc m = planner::load_model("tiny-llama");
  loraplan::testing::write_sharded_safetensors(dir.path(), loraplan::testing::records_of(m), 2);
  const std::string index = dir.file("model.safetensors.index.json");
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(read_text(index));
  const std::string first = j["weight_map"].begin().key();
  for (const std::string shard : {"../../../etc/passwd", "/etc/passwd", "", "./../x.safetensors"}) {
    j["weight_map"][first] = shard;
    const std::string text = j.dump(2);
    write_text(index, text);
    expect_input_error({"inspect", "--model", dir.path()},
                       index + ":" + std::to_string(line_of(text, first)) + ": weight_map \"" +
                           first + "\": shard \"" + shard +
                           "\" is not a file inside the model's folder");
  }
  j["weight_map"] = nlohmann::ordered_json::object();
  const std::string empty = j.dump(2);
  write_text(index, empty);
  expect_input_error({"inspect", "--model", dir.path()},
                     index + ":" + std::to_string(line_of(empty, "weight_map")) +
                         ": \"weight_map\" names no tensors");

  TempDir onnx_dir;
  const std::string onnx = onnx_dir.file("m.onnx");
  for (const std::string location : {"/etc/passwd", "../m.onnx.data"}) {
    loraplan::testing::write_onnx_model(onnx, loraplan::testing::records_of(m),
                                        {.external_data = true, .location = location});
    expect_input_error({"inspect", "--model", onnx},
                       onnx + ": initializer \"model.embed_tokens.weight\": external data \"" +
                           location + "\" is not a file inside the model's folder");
  }
}

TEST(Hardening, HuggingFaceCacheLinksStillWork) {
  // models--org--name/snapshots/<rev>/{config.json, shards, index} -> ../../blobs/<hash>
  TempDir cache;
  const planner::ModelDesc m = planner::load_model("tiny-llama");
  const fs::path blobs = fs::path(cache.path()) / "blobs",
                 snapshot = fs::path(cache.path()) / "snapshots" / "abc123";
  fs::create_directories(blobs);
  fs::create_directories(snapshot);
  loraplan::testing::write_sharded_safetensors(blobs.string(), loraplan::testing::records_of(m), 2);
  write_text((blobs / "config.json").string(), loraplan::testing::config_json_text(m));
  int n = 0;
  for (const fs::directory_entry& e : fs::directory_iterator(blobs)) {
    const std::string hash = "blob" + std::to_string(n++);
    fs::rename(e.path(), blobs / hash);
    fs::create_symlink("../../blobs/" + hash, snapshot / e.path().filename());
  }
  const Result r = run_cli({"inspect", "--model", snapshot.string(), "--format", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(
      nlohmann::json::parse(r.out)["total_params"],
      nlohmann::json::parse(
          run_cli({"inspect", "--model", "tiny-llama", "--format", "json"}).out)["total_params"]);
}

TEST(Hardening, UnreadableWeightFilesAreErrorsNotConfigOnly) {
  TempDir dir;
  const planner::ModelDesc m = planner::load_model("tiny-llama");
  write_text(dir.file("config.json"), loraplan::testing::config_json_text(m));
  fs::create_symlink(dir.file("blobs/missing"),
                     dir.file("model.safetensors"));  // an interrupted download
  expect_input_error(
      {"inspect", "--model", dir.path()},
      dir.file("model.safetensors") + ": is a link to a missing file (an incomplete download?)");
  fs::remove(dir.file("model.safetensors"));
  fs::create_symlink(dir.file("model.safetensors"), dir.file("model.safetensors"));
  expect_input_error({"inspect", "--model", dir.path()},
                     dir.file("model.safetensors") + ": is a loop of symbolic links");
  expect_input_error({"inspect", "--model", dir.file("model.safetensors")},
                     dir.file("model.safetensors") + ": is a loop of symbolic links");
  fs::remove(dir.file("model.safetensors"));
  fs::create_directory(dir.file("model.safetensors"));
  expect_input_error({"inspect", "--model", dir.path()},
                     dir.file("model.safetensors") + ": is a folder, not a file");
}

TEST(Hardening, NumberFlagsParseStrictly) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--lora-alpha", "inf"}, "--lora-alpha: must be a finite number > 0, got \"inf\""},
      {{"--lora-alpha", "0x10"}, "--lora-alpha: must be a finite number > 0, got \"0x10\""},
      {{"--lora-alpha", " 4"}, "--lora-alpha: must be a finite number > 0, got \" 4\""},
      {{"--lora-alpha", "nan"}, "--lora-alpha: must be a finite number > 0, got \"nan\""},
      {{"--lora-dropout", "1.5"}, "--lora-dropout: must be a number in [0, 1), got \"1.5\""},
      {{"--lora-dropout", ""}, "--lora-dropout: must be a number in [0, 1), got \"\""},
  };
  for (const auto& [flags, message] : cases) {
    std::vector<std::string> args = {"estimate"};
    args.insert(args.end(), flags.begin(), flags.end());
    expect_input_error(args, message + " (see loraplan --help)");
  }
  // train's own numbers are checked before the executor is looked for.
  for (const auto& [flag, value, message] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"--lr", "nan", "--lr: must be a finite number > 0, got \"nan\""},
           {"--lr", "inf", "--lr: must be a finite number > 0, got \"inf\""},
           {"--lr", "-1e-4", "--lr: must be a finite number > 0, got \"-1e-4\""},
           {"--max-grad-norm", "inf", "--max-grad-norm: must be a finite number >= 0, got \"inf\""},
           {"--threads", "0", "--threads: must be a number of threads in 1..1024, got \"0\""},
           {"--threads", "5000", "--threads: must be a number of threads in 1..1024, got \"5000\""},
           {"--warmup-steps", "-1", "--warmup-steps: must be a non-negative integer, got \"-1\""},
       }) {
    expect_input_error({"train", "--out", "unused", flag, value},
                       message + " (see loraplan --help)");
  }
  EXPECT_FALSE(fs::exists("unused"));
}

TEST(Hardening, ModelsByHuggingFaceIdInAnyCase) {
  const Result id = run_cli({"inspect", "--model", "meta-llama/llama-3.1-8B", "--format", "json"});
  ASSERT_EQ(id.code, 0) << id.err;
  const Result name = run_cli({"inspect", "--model", "Llama-3.1-8B", "--format", "json"});
  ASSERT_EQ(name.code, 0) << name.err;
  EXPECT_EQ(id.out, run_cli({"inspect", "--model", "llama-3.1-8b", "--format", "json"}).out);
  EXPECT_EQ(id.out, name.out);
  expect_input_error({"inspect", "--model", ""},
                     "--model: empty; give a profile name, a model folder or a model file");
}

TEST(Hardening, DataRowsNameTheLineAndStayShallow) {
  TempDir dir;
  const std::string path = dir.file("data.jsonl");
  auto error_of = [&](const std::string& text) {
    write_text(path, text);
    data::DatasetOptions o;
    o.vocab = 100;
    try {
      data::for_each_sample(path, nullptr, o, [](data::Sample&&) {});
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(
      error_of("{\"input_ids\": [1, 2]}\n{\"input_ids\": [1, " + std::string(150000, '[') + "]}\n"),
      path + ":2: JSON row nests deeper than 64 levels");
  EXPECT_EQ(error_of("{\"input_ids\": [1, {\"deep\": [[[1]]]}]}"),
            path +
                ":1: \"input_ids\"[1] must be a token id below the vocabulary's 100, got an object "
                "of 1 field");
  EXPECT_EQ(error_of("{\"input_ids\": [1, 100]}"),
            path + ":1: \"input_ids\"[1] must be a token id below the vocabulary's 100, got 100");
  EXPECT_EQ(error_of("{\"input_ids\": [1]}"),
            path + ":1: the row has no token to learn: after the first, every label is -100");
  EXPECT_EQ(error_of("{\"input_ids\": [1, 2], \"labels\": [1, -100]}"),
            path + ":1: the row has no token to learn: after the first, every label is -100");
  EXPECT_EQ(error_of("{\"input_ids\": [1, 2, 3]}\n\n{\"input_ids\": [4, 5]}\n"), "no error");
}

TEST(Hardening, HelpNamesEveryExitCode) {
  const Result r = run_cli({"--help"});
  EXPECT_NE(r.out.find("Exit codes: 0 ok, 1 the answer is no"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2 bad input"), std::string::npos);
  EXPECT_NE(r.out.find("3 an internal error"), std::string::npos);
}

}  // namespace
}  // namespace loraplan::cli
