// The tokenizer's parts on hand-made tokenizer.json files, each checked against what Hugging
// Face's tokenizers gives for the same file (the expected ids were computed with it).
#include "loraplan/data/tokenizer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "fixtures/model_files.h"
#include "loraplan/data/utf8.h"
#include "loraplan/planner/errors.h"

namespace loraplan::data {
namespace {

using nlohmann::json;
using Ids = std::vector<int32_t>;

// A byte-level-free BPE over a few letters: a b c d, ab, bc, abc, cd, and space as "_".
json letters_model() {
  return {{"type", "BPE"},
          {"vocab",
           {{"a", 0},
            {"b", 1},
            {"c", 2},
            {"d", 3},
            {"ab", 4},
            {"bc", 5},
            {"abc", 6},
            {"cd", 7},
            {"_", 8},
            {"<unk>", 9}}},
          {"merges", {"b c", "a b", "a bc", "c d"}},
          {"unk_token", "<unk>"}};
}

json tokenizer_with(json model, json normalizer = nullptr, json pre = nullptr, json post = nullptr,
                    json decoder = nullptr, json added = json::array()) {
  return {{"version", "1.0"},     {"added_tokens", added},  {"normalizer", normalizer},
          {"pre_tokenizer", pre}, {"post_processor", post}, {"decoder", decoder},
          {"model", model}};
}

class TokenizerTest : public ::testing::Test {
 protected:
  Tokenizer load(const json& j, const std::string& config = "") {
    testing::write_text(dir_.file("tokenizer.json"), j.dump());
    if (!config.empty()) testing::write_text(dir_.file("tokenizer_config.json"), config);
    return Tokenizer::load(dir_.path());
  }
  std::string error_of(const json& j) {
    try {
      load(j);
    } catch (const InputError& e) {
      return e.what();
    }
    return "no error";
  }
  testing::TempDir dir_;
};

TEST(Utf8, InvalidBytesBecomeOneReplacementPerMaximalSubpart) {
  EXPECT_EQ(to_valid_utf8("ok"), "ok");
  // A truncated 4-byte sequence is one maximal subpart: one U+FFFD.
  EXPECT_EQ(to_valid_utf8("a\xF0\x9F\x98"
                          "b"),
            "a\xEF\xBF\xBD"
            "b");
  // An overlong NUL and a surrogate: every byte is its own subpart.
  EXPECT_EQ(to_valid_utf8("\xC0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(to_valid_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_TRUE(is_valid_utf8("\xF4\x8F\xBF\xBF"));
}

TEST_F(TokenizerTest, MergesApplyByRankLowestFirst) {
  // "abc": b+c (rank 0) before a+b (rank 1), then a+bc (rank 2) -> abc.
  const Tokenizer t = load(tokenizer_with(letters_model()));
  EXPECT_EQ(t.encode("abc"), Ids({6}));
  EXPECT_EQ(t.encode("abcd"), Ids({6, 3}));  // c is taken by abc before c+d (rank 3) is reached
  EXPECT_EQ(t.encode("abd"), Ids({4, 3}));
  EXPECT_EQ(t.encode("cdab"), Ids({7, 4}));
  EXPECT_EQ(t.encode("axb"), Ids({0, 9, 1}));  // x is unknown
  EXPECT_EQ(t.decode(Ids({6, 3})), "abc d");   // no decoder: tokens joined by spaces
}

TEST_F(TokenizerTest, MergesAsPairsEqualMergesAsStrings) {
  json m = letters_model();
  m["merges"] = json::array({json::array({"b", "c"}), json::array({"a", "b"}),
                             json::array({"a", "bc"}), json::array({"c", "d"})});
  const Tokenizer t = load(tokenizer_with(m));
  EXPECT_EQ(t.encode("abcd"), Ids({6, 3}));
}

TEST_F(TokenizerTest, IgnoreMergesTakesAWholeWordFromTheVocabulary) {
  json m = letters_model();
  m["vocab"]["bcd"] = 10;  // reachable only as a whole word: no merge makes it
  EXPECT_EQ(load(tokenizer_with(m)).encode("bcd"), Ids({5, 3}));
  m["ignore_merges"] = true;
  EXPECT_EQ(load(tokenizer_with(m)).encode("bcd"), Ids({10}));
}

TEST_F(TokenizerTest, UnknownCharactersFuseWhenAskedAndBytesFallBack) {
  json m = letters_model();
  EXPECT_EQ(load(tokenizer_with(m)).encode("axyb"), Ids({0, 9, 9, 1}));
  m["fuse_unk"] = true;
  EXPECT_EQ(load(tokenizer_with(m)).encode("axyb"), Ids({0, 9, 1}));
  // With byte_fallback, an unknown character becomes its UTF-8 bytes' <0xNN> tokens.
  m["byte_fallback"] = true;
  m["vocab"]["<0xE2>"] = 20;
  m["vocab"]["<0x82>"] = 21;
  m["vocab"]["<0xAC>"] = 22;
  const Tokenizer t = load(tokenizer_with(
      m, nullptr, nullptr, nullptr,
      {{"type", "Sequence"}, {"decoders", {{{"type", "ByteFallback"}}, {{"type", "Fuse"}}}}}));
  EXPECT_EQ(t.encode("a\xE2\x82\xAC"
                     "b"),
            Ids({0, 20, 21, 22, 1}));  // a € b
  EXPECT_EQ(t.decode(Ids({0, 20, 21, 22, 1})),
            "a\xE2\x82\xAC"
            "b");
  // Bytes that are not UTF-8 decode to one U+FFFD each.
  EXPECT_EQ(t.decode(Ids({20, 21, 0})),
            "\xEF\xBF\xBD\xEF\xBF\xBD"
            "a");
  EXPECT_EQ(t.encode("x"), Ids({9}));  // no byte tokens for 'x': unknown
}

TEST_F(TokenizerTest, SplitBehaviorsCutAsHuggingFaceDocumentsThem) {
  // HF's own example: "the-final--countdown" split on "-".
  json vocab = json::object();
  int id = 0;
  for (const char* w :
       {"the", "-", "final", "countdown", "the-", "final-", "-final", "-countdown", "--", "t", "h",
        "e",   "f", "i",     "n",         "a",    "l",      "c",      "o",          "u",  "w"}) {
    vocab[w] = id++;
  }
  json m = {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}, {"ignore_merges", true}};
  const auto words = [&](const char* behavior) {
    const Tokenizer t = load(tokenizer_with(m, nullptr,
                                            {{"type", "Split"},
                                             {"pattern", {{"String", "-"}}},
                                             {"behavior", behavior},
                                             {"invert", false}}));
    std::vector<std::string> out;
    for (const int32_t i : t.encode("the-final--countdown")) out.push_back(*t.id_to_token(i));
    return out;
  };
  using W = std::vector<std::string>;
  EXPECT_EQ(words("Removed"), W({"the", "final", "countdown"}));
  EXPECT_EQ(words("Isolated"), W({"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(words("MergedWithPrevious"), W({"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(words("MergedWithNext"), W({"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(words("Contiguous"), W({"the", "-", "final", "--", "countdown"}));
}

TEST_F(TokenizerTest, AddedTokensMatchFirstWithTheirStripAndWordRules) {
  json added =
      json::array({{{"id", 30}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
                   {{"id", 31},
                    {"content", "[M]"},
                    {"special", true},
                    {"normalized", false},
                    {"lstrip", true},
                    {"rstrip", true}},
                   {{"id", 32},
                    {"content", "ab"},
                    {"special", false},
                    {"normalized", false},
                    {"single_word", true}}});
  const Tokenizer t = load(tokenizer_with(
      letters_model(), {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "_"}},
      nullptr, nullptr, nullptr, added));
  EXPECT_EQ(t.encode("a<s>b"), Ids({0, 30, 1}));
  // [M] swallows the spaces around it; <s> does not.
  EXPECT_EQ(t.encode("a  [M]  b <s> c"), Ids({0, 31, 1, 8, 30, 8, 2}));
  // "ab" only as a word of its own: in "abc" it is left to the model.
  EXPECT_EQ(t.encode("ab c"), Ids({32, 8, 2}));
  EXPECT_EQ(t.encode("abc"), Ids({6}));
  EXPECT_EQ(t.decode(Ids({30, 0}), /*skip_special_tokens=*/true), "a");
  EXPECT_EQ(t.decode(Ids({32, 0}), true), "ab a");  // not special: kept
}

TEST_F(TokenizerTest, MetaspacePrependsAtTheStartOnlyWithSchemeFirst) {
  json m = letters_model();
  m["vocab"].erase("_");
  m["vocab"]["\xE2\x96\x81"] = 8;  // ▁
  m["vocab"]
   ["\xE2\x96\x81"
    "a"] = 10;
  m["merges"].push_back("\xE2\x96\x81 a");
  json added =
      json::array({{{"id", 30}, {"content", "<s>"}, {"special", true}, {"normalized", false}}});
  const auto with_scheme = [&](const char* scheme) {
    return load(tokenizer_with(m, nullptr,
                               {{"type", "Metaspace"},
                                {"replacement", "\xE2\x96\x81"},
                                {"prepend_scheme", scheme},
                                {"split", true}},
                               nullptr,
                               {{"type", "Metaspace"},
                                {"replacement", "\xE2\x96\x81"},
                                {"prepend_scheme", scheme},
                                {"split", true}},
                               added));
  };
  const Tokenizer always = with_scheme("always");
  const Tokenizer first = with_scheme("first");
  EXPECT_EQ(always.encode("a b"), Ids({10, 8, 1}));
  EXPECT_EQ(first.encode("a b"), Ids({10, 8, 1}));
  // After an added token the piece does not start the text: only "always" prepends.
  EXPECT_EQ(always.encode("<s>a"), Ids({30, 10}));
  EXPECT_EQ(first.encode("<s>a"), Ids({30, 0}));
  EXPECT_EQ(always.decode(Ids({10, 8, 1})), "a b");  // the first token's ▁ is dropped
}

TEST_F(TokenizerTest, ByteLevelMapsBytesToPrintableCharactersAndBack) {
  // GPT-2's map: space is U+0120 "Ġ", newline U+010A "Ċ"; printable ASCII stands for itself.
  json m = {{"type", "BPE"},
            {"vocab",
             {{"a", 0},
              {"\xC4\xA0", 1},
              {"\xC4\x8A", 2},
              {"\xC4\xA0"
               "a",
               3},
              {"b", 4}}},
            {"merges", {"\xC4\xA0 a"}}};
  const Tokenizer t = load(tokenizer_with(
      m, nullptr, {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}},
      nullptr, {{"type", "ByteLevel"}}));
  EXPECT_EQ(t.encode("a a\nb"), Ids({0, 3, 2, 4}));
  EXPECT_EQ(t.decode(Ids({0, 3, 2, 4})), "a a\nb");
}

TEST_F(TokenizerTest, TemplateAddsBosAndEosUnlessSpecialTokensAreLeftOut) {
  json added =
      json::array({{{"id", 30}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
                   {{"id", 31}, {"content", "</s>"}, {"special", true}, {"normalized", false}}});
  const json post = {{"type", "TemplateProcessing"},
                     {"single",
                      {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                       {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                       {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}}},
                     {"pair", json::array()},
                     {"special_tokens",
                      {{"<s>", {{"id", "<s>"}, {"ids", {30}}, {"tokens", {"<s>"}}}},
                       {"</s>", {{"id", "</s>"}, {"ids", {31}}, {"tokens", {"</s>"}}}}}}};
  const Tokenizer t = load(tokenizer_with(letters_model(), nullptr, nullptr, post, nullptr, added));
  EXPECT_EQ(t.encode("ab"), Ids({30, 4, 31}));
  EXPECT_EQ(t.encode("ab", /*add_special_tokens=*/false), Ids({4}));
}

TEST_F(TokenizerTest, LlamaConfigFlagsDecideBosAndEosAsTransformersDoes) {
  json added =
      json::array({{{"id", 30}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
                   {{"id", 31}, {"content", "</s>"}, {"special", true}, {"normalized", false}}});
  const json j = tokenizer_with(letters_model(), nullptr, nullptr, nullptr, nullptr, added);
  const Tokenizer t = load(j, R"({"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>",
      "eos_token": {"content": "</s>"}, "add_bos_token": true, "add_eos_token": true})");
  EXPECT_EQ(t.encode("ab"), Ids({30, 4, 31}));
  EXPECT_EQ(t.bos().id, 30);
  EXPECT_EQ(t.eos().text, "</s>");
  EXPECT_FALSE(t.pad());
  // Another class keeps the file's post-processor (none here).
  const Tokenizer qwen = load(j, R"({"tokenizer_class": "Qwen2Tokenizer", "eos_token": "</s>",
      "add_bos_token": true, "add_eos_token": true})");
  EXPECT_EQ(qwen.encode("ab"), Ids({4}));
}

TEST_F(TokenizerTest, UnicodeNormalizersComposeAndDecompose) {
  json m = letters_model();
  m["vocab"]["\xC3\xA9"] = 11;  // é precomposed
  m["vocab"]["e"] = 12;
  m["vocab"]["\xCC\x81"] = 13;  // combining acute
  const std::string decomposed = "e\xCC\x81";
  EXPECT_EQ(load(tokenizer_with(m, {{"type", "NFC"}})).encode(decomposed), Ids({11}));
  EXPECT_EQ(load(tokenizer_with(m, {{"type", "NFD"}})).encode("\xC3\xA9"), Ids({12, 13}));
  // NFKC folds the ligature ﬁ into f i... which this vocabulary lacks: two unknowns.
  EXPECT_EQ(load(tokenizer_with(m, {{"type", "NFKC"}})).encode("\xEF\xAC\x81"), Ids({9, 9}));
  EXPECT_EQ(load(tokenizer_with(m, {{"type", "Lowercase"}})).encode("AB"), Ids({4}));
}

TEST_F(TokenizerTest, WhatIsNotImplementedIsRefusedByName) {
  json wordpiece = {{"type", "WordPiece"}, {"vocab", {{"a", 0}}}};
  EXPECT_EQ(error_of(tokenizer_with(wordpiece)),
            dir_.file("tokenizer.json") +
                ": model: unsupported model \"WordPiece\" (loraplan reads BPE tokenizers: Llama, "
                "Qwen, Mistral, Gemma, Phi, SmolLM, GPT-2)");
  EXPECT_EQ(error_of(tokenizer_with(
                letters_model(), nullptr,
                {{"type", "Sequence"},
                 {"pretokenizers", {{{"type", "Digits"}}, {{"type", "Punctuation"}}}}})),
            dir_.file("tokenizer.json") +
                ": pre_tokenizer.pretokenizers[1]: unsupported pre-tokenizer \"Punctuation\" "
                "(loraplan reads Split, ByteLevel, Metaspace, Digits, Whitespace, WhitespaceSplit "
                "and Sequence)");
  EXPECT_EQ(error_of(tokenizer_with(letters_model(), {{"type", "BertNormalizer"}})),
            dir_.file("tokenizer.json") +
                ": normalizer: unsupported normalizer \"BertNormalizer\" (loraplan reads NFC, NFD, "
                "NFKC, NFKD, Lowercase, Prepend, Replace, Strip and Sequence)");
  json dropout = letters_model();
  dropout["dropout"] = 0.1;
  EXPECT_EQ(error_of(tokenizer_with(dropout)),
            dir_.file("tokenizer.json") +
                ": model: BPE dropout 0.1 is random at every encode; loraplan reads deterministic "
                "tokenizers only");
  json bad_merge = letters_model();
  bad_merge["merges"].push_back("a z");
  EXPECT_EQ(error_of(tokenizer_with(bad_merge)),
            dir_.file("tokenizer.json") +
                ": model: merges[4] \"a z\" names a token that is not in the vocabulary");
  EXPECT_EQ(error_of(tokenizer_with(
                letters_model(), nullptr,
                {{"type", "Split"}, {"pattern", {{"Regex", "(a"}}}, {"behavior", "Isolated"}})),
            dir_.file("tokenizer.json") +
                ": pre_tokenizer.pattern: pattern does not compile: missing closing parenthesis "
                "at offset 2");
}

TEST_F(TokenizerTest, AFolderWithoutTokenizerJsonIsNamed) {
  try {
    Tokenizer::load(dir_.path());
    FAIL() << "loaded an empty folder";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), dir_.path() + ": no tokenizer.json in this folder");
  }
}

}  // namespace
}  // namespace loraplan::data
