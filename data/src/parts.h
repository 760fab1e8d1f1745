#pragma once

// The parts of a Hugging Face tokenizer.json pipeline, as small classes: text is split around
// added tokens, normalized, pre-tokenized into words, each word is cut into ids by the model, and
// the post-processor adds the special tokens. Decoding runs the decoders over the ids' tokens.
// Each make_* reads one part's JSON and refuses, naming it, what loraplan does not implement.

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace loraplan::data {

// A piece of the text on its way through the pipeline.
struct Piece {
  std::string text;        // UTF-8
  bool at_origin = false;  // begins at byte 0 of the original text (Metaspace's "first")
  int32_t id = -1;         // >= 0: an added token, final
};

// Where a part sits in its file, for error messages: "tokenizer.json: pre_tokenizer[1]".
struct Where {
  std::string file;
  std::string path;
  [[noreturn]] void fail(const std::string& message) const;
  Where at(const std::string& child) const { return {file, path + child}; }
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by their words; pieces with an id pass through untouched.
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual std::vector<int32_t> process(std::vector<int32_t> ids) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual std::vector<std::string> decode_chain(std::vector<std::string> tokens) const = 0;
};

// Null JSON gives nullptr (the part is absent).
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const Where& where);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, const Where& where);
std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& j, const Where& where);
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j, const Where& where);

// A template's single-sequence form rebuilt from BOS/EOS flags, as transformers' Llama and Gemma
// fast tokenizers do when tokenizer_config.json sets add_bos_token / add_eos_token.
std::unique_ptr<PostProcessor> make_bos_eos_processor(int32_t bos, int32_t eos);

// Typed fields of a part's JSON object; errors name the field.
const std::string& string_field(const nlohmann::json& j, const char* key, const Where& where);
bool bool_field(const nlohmann::json& j, const char* key, bool fallback, const Where& where);
const nlohmann::json& array_field(const nlohmann::json& j, const char* key, const Where& where);
// The one-character string of a field ("replacement": "▁"), as UTF-8.
std::string char_field(const nlohmann::json& j, const char* key, const Where& where);

// The parts listed under `key` of a Sequence, each read by `make` (null entries left out).
template <class Part>
std::vector<std::unique_ptr<Part>> sequence_parts(
    const nlohmann::json& j, const char* key, const Where& where,
    std::unique_ptr<Part> (*make)(const nlohmann::json&, const Where&)) {
  std::vector<std::unique_ptr<Part>> parts;
  const nlohmann::json& list = array_field(j, key, where);
  for (size_t i = 0; i < list.size(); ++i) {
    if (auto p = make(list[i], where.at("." + std::string(key) + "[" + std::to_string(i) + "]"))) {
      parts.push_back(std::move(p));
    }
  }
  return parts;
}

// A {"String"} or {"Regex"} pattern; `where` names the field in errors.
struct Pattern;
std::unique_ptr<Pattern> read_pattern(const nlohmann::json& j, const Where& where);
// `text` with every match of `pattern` replaced by `with`.
std::string replace_all(std::string_view text, const Pattern& pattern, const std::string& with);

// GPT-2's byte <-> printable character map (ByteLevel): byte b is written as byte_chars()[b].
const std::vector<std::string>& byte_chars();
// The byte a ByteLevel character stands for, or -1 for a character outside the map.
int byte_of_char(char32_t cp);

}  // namespace loraplan::data
