#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace loraplan::data {

// A special token a model's files name (tokenizer_config.json), with its id when it has one.
struct SpecialToken {
  std::string text;  // "" when the files name none
  int32_t id = -1;
  explicit operator bool() const { return id >= 0; }
};

// A Hugging Face tokenizer read from tokenizer.json: the same ids as the `tokenizers` library for
// byte-level BPE (Llama 3, Qwen2/3, Phi-4, SmolLM2, GPT-2) and SentencePiece-style BPE (Llama 2,
// Mistral, TinyLlama, Gemma). Added and special tokens are matched first, then the normalizer,
// pre-tokenizer, BPE model and post-processor run as the file describes them; a component
// loraplan does not implement is refused when loading, naming it.
class Tokenizer {
 public:
  // `path` is a tokenizer.json or a folder holding one (a model folder). tokenizer_config.json
  // beside it, when present, names BOS, EOS and pad; for Llama and Gemma tokenizers its
  // add_bos_token / add_eos_token decide what encode adds, as transformers' fast tokenizers do.
  // Throws InputError "path: ..." naming what is wrong.
  static Tokenizer load(const std::string& path);
  // A tokenizer.json's text; errors start with `where`. No tokenizer_config.json is read.
  static Tokenizer parse(const std::string& json_text, const std::string& where);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Ids of `text` (bytes that are not UTF-8 read as U+FFFD, as HF's callers decode them).
  // With add_special_tokens, the post-processor's BOS/EOS are added. Not for concurrent use of one
  // Tokenizer from several threads (the BPE cache).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // The text of `ids`; unknown ids are skipped, as HF does.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(int32_t id) const;
  // Highest id + 1, added tokens included: the embedding rows the ids need.
  int64_t vocab_size() const;

  const SpecialToken& bos() const;
  const SpecialToken& eos() const;
  const SpecialToken& pad() const;
  // tokenizer_config.json's "unk_token" (its id -1 when tokenizer.json lacks it: only the chat
  // template uses it, as text).
  const SpecialToken& unk() const;
  const std::string& source() const;       // the tokenizer.json read
  const std::string& config_file() const;  // the tokenizer_config.json read; "" when none
  // The chat template: chat_template.jinja beside tokenizer.json when there is one (transformers
  // prefers it), else tokenizer_config.json's "chat_template" (the one named "default" when it is a
  // list of {"name", "template"}); "" when the files have none. chat_template_where() names it for
  // errors ("path/tokenizer_config.json: chat_template" or "path/chat_template.jinja").
  const std::string& chat_template() const;
  const std::string& chat_template_where() const;
  // A content hash of tokenizer.json, tokenizer_config.json and chat_template.jinja (the token
  // cache's key).
  const std::string& fingerprint() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The tokenizer.json that Tokenizer::load(path) reads (path itself, or path/tokenizer.json).
std::string tokenizer_file(const std::string& path);
// Tokenizer::load(path).fingerprint() without parsing anything: a hash of the files' bytes.
std::string tokenizer_fingerprint(const std::string& path);

}  // namespace loraplan::data
