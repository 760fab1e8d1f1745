// loraplan verify refuses what is not a complete run of the flags' configuration (exit 2) and
// fails what does not match (exit 1); parse_run_report checks every field it reads.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fixtures/model_files.h"
#include "loraplan/planner/errors.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/reports/run_report.h"
#include "loraplan/reports/verify_report.h"
#include "run_cli.h"

namespace loraplan::cli {
namespace {

using nlohmann::json;
using testing::Result;
using testing::run_cli;

// 1-based line of the first occurrence of `needle` in `text`.
int line_of(const std::string& text, const std::string& needle) {
  const size_t at = text.find(needle);
  EXPECT_NE(at, std::string::npos) << needle;
  return 1 + static_cast<int>(
                 std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n'));
}

// A report as `loraplan train` writes it for tiny-llama, T 16 x B 1 x accum 1 on the CPU, fp32,
// whose measurement is exactly the prediction: verify passes it with 0% error.
json matching_report() {
  const Result r =
      run_cli({"estimate", "--model", "tiny-llama", "--device", "cpu", "--compute-dtype", "fp32",
               "--seq-len", "16", "--micro-batch", "1", "--grad-accum", "1", "--format", "json"});
  EXPECT_EQ(r.code, 0) << r.err;
  const json prediction = json::parse(r.out);
  json report;
  report["model"] =
      reports::run_model_json(reports::run_model("tiny-llama", planner::load_model("tiny-llama")));
  report["config"] = prediction["config"];
  report["training"] = {{"steps", 1}, {"gpu", nullptr}};
  report["measured"]["peak_bytes"] = prediction["peak_bytes"];
  report["measured"]["phases"] = json::array();
  for (const json& p : prediction["phases"]) {
    report["measured"]["phases"].push_back({{"name", p["name"]}, {"peak_bytes", p["peak_bytes"]}});
  }
  report["out_of_memory"] = false;
  report["error"] = nullptr;
  return report;
}

// Index of the measured phase called `name`.
size_t phase_index(const json& report, const std::string& name) {
  const json& phases = report["measured"]["phases"];
  for (size_t i = 0; i < phases.size(); ++i) {
    if (phases[i]["name"] == name) return i;
  }
  ADD_FAILURE() << "no phase " << name;
  return 0;
}

class VerifyStrict : public ::testing::Test {
 protected:
  // Writes `report` (two-space indented, as train writes it) and runs verify on it.
  Result verify(const json& report, std::vector<std::string> flags = {}) {
    return verify_text(report.dump(2), flags);
  }
  Result verify_text(const std::string& text, std::vector<std::string> flags = {}) {
    loraplan::testing::write_text(path(), text);
    std::vector<std::string> args = {"verify", "--run", path()};
    args.insert(args.end(), flags.begin(), flags.end());
    return run_cli(args);
  }
  std::string path() const { return dir_.file("report.json"); }
  std::string error(const std::string& message) const {
    return "loraplan: error: " + message + "\n";
  }

  loraplan::testing::TempDir dir_;
};

TEST_F(VerifyStrict, TheRunAloneSaysWhatToPredict) {
  const json report = matching_report();
  Result r = verify(report, {"--format", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["max_rel_error"].get<double>(), 0.0);
  EXPECT_EQ(json::parse(r.out)["rows"].size(),
            9u);  // peak, batch, embed, fwd L0, fwd L1, loss, bwd L1, bwd L0, optim

  // Flags that agree with the run are fine; one that does not is refused, naming the knob.
  r = verify(report, {"--model", "tiny-llama", "--seq-len", "16", "--grad-accum", "1"});
  EXPECT_EQ(r.code, 0) << r.err;
  r = verify(report, {"--seq-len", "32"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, error(path() + ": the run's \"seq_len\" is 16, the flags say 32"));
  r = verify(report, {"--lora-rank", "8"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, error(path() + ": the run's \"lora\" is an object of 4 fields, the flags say "
                                  "{\"alpha\":32.0,\"dropout\":0.05,\"rank\":8,\"targets\":"
                                  "\"q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj\"}"));
}

TEST_F(VerifyStrict, AnotherModelIsNotTheSameRun) {
  const Result r = verify(matching_report(), {"--model", "tiny-qwen2"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            error(path() +
                  ": not the same run: the run trained tiny-llama (llama: V 256, C 64, I 176, L 2, "
                  "H 4, Hkv 2, D 16), the flags say tiny-qwen2 (qwen2: V 256, C 64, I 128, L 2, "
                  "H 4, Hkv 2, D 16)"));
}

TEST_F(VerifyStrict, AReportWithoutItsModelIsRefused) {
  json report = matching_report();
  report["model"] = "tiny-llama";  // as loraplan train wrote it before it recorded the dimensions
  std::string text = report.dump(2);
  Result r = verify_text(text);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(
      r.err,
      error(path() + ":" + std::to_string(line_of(text, "\"model\"")) +
            ": \"model\" must be an object with the model's reference and dimensions (an older "
            "loraplan train wrote this report; train again), got \"tiny-llama\""));
  report.erase("model");
  r = verify(report);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, error(path() + ": \"model\" is missing (must be an object)"));
}

TEST_F(VerifyStrict, APhaseMeasuredAtZeroIsNoMeasurement) {
  json report = matching_report();
  const size_t loss = phase_index(report, "loss");
  report["measured"]["phases"][loss]["peak_bytes"] = 0;
  const std::string text = report.dump(2);
  const Result r = verify_text(text);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, error(path() + ":" + std::to_string(line_of(text, "\"peak_bytes\": 0")) +
                         ": \"measured.phases[" + std::to_string(loss) +
                         "].peak_bytes\" must be a positive integer (bytes; 0 is no "
                         "measurement), got 0"));
}

TEST_F(VerifyStrict, EveryPredictedPhaseMustBeMeasuredAndNoOther) {
  const std::string expected =
      "; a run measures exactly the prediction's 8 phases (batch ... optim)";
  json missing = matching_report();
  missing["measured"]["phases"].erase(phase_index(missing, "bwd L0"));
  Result r = verify(missing);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, error(path() + ": \"measured.phases\" has no phase \"bwd L0\"" + expected));

  json renamed = matching_report();
  const size_t loss = phase_index(renamed, "loss");
  renamed["measured"]["phases"][loss]["name"] = "lm_head";
  r = verify(renamed);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, error(path() + ": \"measured.phases[" + std::to_string(loss) +
                         "].name\" is \"lm_head\", not a phase of the prediction" + expected));

  json empty = matching_report();
  empty["measured"]["phases"] = json::array();
  r = verify(empty);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, error(path() + ": \"measured.phases\" has no phase \"batch\"" + expected));

  json twice = matching_report();
  twice["measured"]["phases"].push_back({{"name", "optim"}, {"peak_bytes", 1000}});
  const std::string text = twice.dump(2);
  r = verify_text(text);
  EXPECT_EQ(r.code, 2);
  const size_t last = twice["measured"]["phases"].size() - 1;
  EXPECT_EQ(r.err, error(path() + ":" + std::to_string(line_of(text, "\"peak_bytes\": 1000") - 1) +
                         ": \"measured.phases[" + std::to_string(last) +
                         "].name\" must name a phase measured once, got \"optim\""));
}

TEST_F(VerifyStrict, ARunThatStoppedIsNotAMeasurement) {
  json oom = matching_report();
  oom["out_of_memory"] = true;
  oom["error"] = "CUDA out of memory. Tried to allocate 2.00 MiB";
  Result r = verify(oom);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(
      r.err,
      error(path() + ": the run stopped out of memory (CUDA out of memory. Tried to allocate 2.00 "
                     "MiB); an incomplete run is not a measurement to verify"));
  json failed = matching_report();
  failed["error"] = "reading data.jsonl: line 3 is not JSON";
  r = verify(failed);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(
      r.err,
      error(path() + ": the run stopped with an error (reading data.jsonl: line 3 is not JSON); an "
                     "incomplete run is not a measurement to verify"));
  json diverged = matching_report();
  diverged["diverged_step"] = 3;
  diverged["error"] = "step 3: the loss is nan";
  r = verify(diverged);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(
      r.err,
      error(path() + ": the run stopped when it diverged at step 3 (step 3: the loss is nan); an "
                     "incomplete run is not a measurement to verify"));
  json odd = matching_report();
  odd["out_of_memory"] = "no";
  const std::string text = odd.dump(2);
  r = verify_text(text);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, error(path() + ":" + std::to_string(line_of(text, "\"out_of_memory\"")) +
                         ": \"out_of_memory\" must be true or false, got \"no\""));
}

TEST_F(VerifyStrict, FieldsOfTheWrongTypeNameTheirPath) {
  struct Case {
    const char* what;
    std::function<void(json&)> change;
    std::string needle;   // where the error points (its line), "" for none
    std::string message;  // after "path:line: "
  };
  const std::vector<Case> cases = {
      {"a phase that is a number", [](json& j) { j["measured"]["phases"][3] = 5; }, "\n      5",
       "\"measured.phases[3]\" must be an object, got 5"},
      {"a phase that is a list",
       [](json& j) {
         j["measured"]["phases"][0] = json::array({"a", "b"});
       },
       "\n      [", "\"measured.phases[0]\" must be an object, got [\"a\",\"b\"]"},
      {"peak_bytes as a string", [](json& j) { j["measured"]["peak_bytes"] = "1934492"; },
       "\"peak_bytes\": \"",
       "\"measured.peak_bytes\" must be a positive integer (bytes; 0 is no measurement), got "
       "\"1934492\""},
      {"config as a list", [](json& j) { j["config"] = json::array(); }, "\"config\"",
       "\"config\" must be an object, got []"},
      {"phases as an object", [](json& j) { j["measured"]["phases"] = json::object(); },
       "\"phases\"", "\"measured.phases\" must be an array, got an object of 0 fields"},
      {"a phase without a name", [](json& j) { j["measured"]["phases"][2].erase("name"); }, "",
       "\"measured.phases[2].name\" is missing (must be a non-empty string)"},
      {"the rank as a float", [](json& j) { j["config"]["lora"]["rank"] = 16.5; }, "\"rank\"",
       "\"config.lora.rank\" must be a positive integer, got 16.5"},
      {"a device of neither kind", [](json& j) { j["config"]["device"] = "tpu"; }, "\"device\"",
       "\"config.device\" must be \"cpu\" or \"cuda\", got \"tpu\""},
      {"a layer count of 0", [](json& j) { j["model"]["layers"] = 0; }, "\"layers\"",
       "\"model.layers\" must be a positive integer, got 0"},
  };
  for (const Case& c : cases) {
    json report = matching_report();
    c.change(report);
    const std::string text = report.dump(2);
    const Result r = verify_text(text);
    EXPECT_EQ(r.code, 2) << c.what;
    const std::string line =
        c.needle.empty() ? ""
                         : ":" + std::to_string(line_of(text, c.needle) + (c.needle[0] == '\n'));
    EXPECT_EQ(r.err, error(path() + line + ": " + c.message)) << c.what;
  }
  Result r = verify_text("[1, 2]");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(
      r.err,
      error(path() +
            ": not a loraplan run report: no \"measured\" (loraplan train writes report.json)"));
  r = verify_text("{\"measured\": ");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err.rfind(error(path() + ": malformed run report: parse error").substr(0, 40), 0), 0u)
      << r.err;
}

// A few thousand broken reports: every prefix of a real one and every byte of it replaced. Each
// one parses or throws InputError, nothing else.
TEST(ParseRunReport, ThrowsOnlyInputErrors) {
  const std::string text = matching_report().dump(2);
  auto parse = [](const std::string& t) {
    try {
      reports::parse_run_report(t, "report.json");
    } catch (const InputError&) {
    }
  };
  for (size_t n = 0; n < text.size(); n += 3) EXPECT_NO_THROW(parse(text.substr(0, n))) << n;
  for (size_t i = 0; i < text.size(); i += 2) {
    for (const char c : {'0', '"', '{', ']', '-', 'x', ','}) {
      std::string t = text;
      t[i] = c;
      EXPECT_NO_THROW(parse(t)) << i << " " << c;
    }
  }
  const reports::RunReport r = reports::parse_run_report(text, "report.json");
  EXPECT_EQ(r.model.reference, "tiny-llama");
  EXPECT_EQ(r.model.shape.layers, 2);
  EXPECT_EQ(r.config.seq_len, 16);
  EXPECT_EQ(r.config.device, "cpu");
  ASSERT_EQ(r.phases.size(), 9u);  // setup, batch, embed, fwd L0, ..., optim
  EXPECT_EQ(r.phases[0].name, "setup");
}

// reports::verify on its own (the demo's path): a phase measured at 0 or not at all is OUT.
TEST(Verification, NothingMeasuredIsNeverOk) {
  planner::Estimate e;
  e.peak_bytes = 1000;
  e.phases = {{"fwd L0", 900}, {"loss", 1000}};
  const reports::Verification v = reports::verify(e, 1000, {{"fwd L0", 0}}, 0.02);
  EXPECT_FALSE(v.pass);
  ASSERT_EQ(v.rows.size(), 3u);
  EXPECT_TRUE(v.rows[0].pass);
  EXPECT_FALSE(v.rows[1].pass);
  EXPECT_FALSE(v.rows[2].pass);
  EXPECT_NE(reports::verification_text(v).find("n/a"), std::string::npos);
  EXPECT_TRUE(reports::verification_json(v)["rows"][1]["rel_error"].is_null());
}

}  // namespace
}  // namespace loraplan::cli
