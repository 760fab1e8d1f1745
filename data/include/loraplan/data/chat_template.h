#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace loraplan::data {

// What a chat template is rendered with besides the messages, as transformers'
// apply_chat_template passes it: the special tokens tokenizer_config.json names ("" for one it
// does not name: the variable is then undefined), add_generation_prompt, and tools and documents
// as none.
struct ChatVariables {
  std::string bos_token, eos_token, pad_token, unk_token;
  bool add_generation_prompt = false;  // false for training: the conversation is complete
};

// Bounds on one render, so that no template or conversation can hang or exhaust memory.
struct ChatTemplateLimits {
  int64_t max_steps = 20'000'000;       // nodes evaluated + loop iterations + bytes built / 64
  int64_t max_output_bytes = 64 << 20;  // the rendered text, and any one string built for it
};

// A Hugging Face chat template (tokenizer_config.json's "chat_template"): the Jinja subset the
// models' templates are written in, rendered as Hugging Face renders it (@huggingface/jinja, and
// jinja2 in transformers, with trim_blocks and lstrip_blocks). Statements if / elif / else, for
// (loop.*, `else`, `if` filters), set (names, unpacking, namespace attributes, blocks), break,
// continue; expressions with literals, lists, dicts, subscripts, slices, attribute access,
// arithmetic, comparisons, in, and / or / not, ternaries; the filters, tests, string and dict
// methods listed in docs/data.md; namespace(), range(), raise_exception(). A construct outside
// the subset, or one the two renderers would give differently for this input, is an InputError
// naming it and the template's line: never a silently different text.
class ChatTemplate {
 public:
  // Errors read "<where>:<line>: ..." (where: e.g. "tokenizer_config.json: chat_template").
  static ChatTemplate parse(const std::string& source, const std::string& where);

  // The conversation rendered; `messages` is the list of {"role", "content", ...} objects.
  // Errors read "<where>:<line>: ...", raise_exception's as "...: the template raised an error:
  // MESSAGE".
  std::string render(const nlohmann::ordered_json& messages, const ChatVariables& vars = {},
                     const ChatTemplateLimits& limits = {}) const;
  // The same for messages read with sorted keys (nlohmann::json): templates that depend on the
  // order of an object's keys (tojson of a dict, items()) are refused for it.
  std::string render(const nlohmann::json& messages, const ChatVariables& vars = {},
                     const ChatTemplateLimits& limits = {}) const;

  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;
  ~ChatTemplate();

 private:
  struct Impl;
  explicit ChatTemplate(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace loraplan::data
