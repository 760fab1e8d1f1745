#include "loraplan/data/dataset.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>

#include "loraplan/data/chat_template.h"
#include "loraplan/data/text_rows.h"
#include "loraplan/data/tokenizer.h"
#include "loraplan/planner/errors.h"
#include "loraplan/planner/json_fields.h"

namespace loraplan::data {

namespace {

constexpr int32_t kIgnore = -100;  // the label PyTorch's cross entropy skips

struct RowReader {
  const Tokenizer* tokenizer;
  const DatasetOptions& options;
  mutable std::optional<ChatTemplate> chat = {};  // parsed at the first messages row

  // The row as a sample; throws InputError "where: ..." naming what is wrong.
  Sample read(const nlohmann::json& row, const RowPlace& place) const {
    const std::string& where = place.where;
    if (!row.is_object()) {
      throw InputError(where + ": a row must be a JSON object, got " + planner::json_excerpt(row));
    }
    Sample s;
    if (!options.field_given && row.contains("input_ids")) {
      s.kind = RowKind::kTokens;
      read_tokens(row, where, s);
    } else if (!options.field_given && row.contains("prompt") && row.contains("completion")) {
      s.kind = RowKind::kPromptCompletion;
      read_prompt_completion(row, where, s);
    } else if (!options.field_given && row.contains("messages") && !row.contains(options.field)) {
      s.kind = RowKind::kMessages;
      read_messages(row, place, s);
    } else {
      s.kind = RowKind::kText;
      const std::string& text = text_field(row, options.field, where);
      need_tokenizer(where, "a text row");
      s.ids = encode(text);
      s.labels = s.ids;
    }
    if (s.ids.empty()) throw InputError(where + ": the row has no tokens");
    // Position t learns labels[t + 1]: a row whose labels after the first are all masked would
    // add nothing but a loss of 0 / 0.
    if (std::all_of(s.labels.begin() + 1, s.labels.end(), [](int32_t l) { return l == kIgnore; })) {
      throw InputError(where +
                       ": the row has no token to learn: after the first, every label is -100");
    }
    return s;
  }

  const Tokenizer& need_tokenizer(const std::string& where, const std::string& row) const {
    if (tokenizer == nullptr) {
      throw InputError(where + ": " + row +
                       " needs a tokenizer (--tokenizer, or a --model folder with "
                       "tokenizer.json)");
    }
    return *tokenizer;
  }

  const ChatTemplate& chat_template(const std::string& where) const {
    if (chat) return *chat;
    const Tokenizer& t = need_tokenizer(where, "a {\"messages\": [...]} row");
    if (t.chat_template().empty()) {
      throw InputError(
          where + ": a {\"messages\": [...]} row needs the tokenizer's chat template, and " +
          (t.config_file().empty() ? "there is no tokenizer_config.json beside " + t.source()
                                   : t.config_file() + " has no \"chat_template\"") +
          " (nor is there a chat_template.jinja); render the conversations to {\"text\": ...} "
          "rows, or use the tokenizer of a chat model");
    }
    try {
      chat = ChatTemplate::parse(t.chat_template(), t.chat_template_where());
    } catch (const InputError& e) {
      throw InputError(where + ": " + e.what());
    }
    return *chat;
  }

  // TRL's SFTTrainer on conversational rows: apply_chat_template (add_generation_prompt false),
  // tokenized as transformers does it (add_special_tokens=False: the template writes its own
  // BOS), no EOS appended (the template ends the turns), loss on every token.
  void read_messages(const nlohmann::json& row, const RowPlace& place, Sample& s) const {
    const std::string& where = place.where;
    check_messages(row["messages"], where);
    const ChatTemplate& t = chat_template(where);
    const ChatVariables vars{tokenizer->bos().text, tokenizer->eos().text, tokenizer->pad().text,
                             tokenizer->unk().text, false};
    std::string text;
    try {
      // A JSONL row is parsed again keeping its keys' order (tojson of a dict writes them).
      text = place.text.empty()
                 ? t.render(row["messages"], vars)
                 : t.render(nlohmann::ordered_json::parse(place.text)["messages"], vars);
    } catch (const InputError& e) {
      throw InputError(where + ": " + e.what());
    }
    s.ids = tokenizer->encode(text, /*add_special_tokens=*/false);
    s.labels = s.ids;
  }

  static void check_messages(const nlohmann::json& messages, const std::string& where) {
    if (!messages.is_array() || messages.empty()) {
      throw InputError(where +
                       ": \"messages\" must be a non-empty array of {\"role\": ..., "
                       "\"content\": ...} objects, got " +
                       planner::json_excerpt(messages));
    }
    for (size_t i = 0; i < messages.size(); ++i) {
      const nlohmann::json& m = messages[i];
      const std::string at = where + ": \"messages\"[" + std::to_string(i) + "]";
      if (!m.is_object()) {
        throw InputError(at + " must be an object, got " + planner::json_excerpt(m));
      }
      if (!m.contains("role") || !m["role"].is_string()) {
        throw InputError(at + " needs a \"role\" string" +
                         (m.contains("role") ? ", got " + planner::json_excerpt(m["role"]) : ""));
      }
    }
  }

  // The text's ids with the post-processor's special tokens, then EOS.
  std::vector<int32_t> encode(const std::string& text) const {
    std::vector<int32_t> ids = tokenizer->encode(text);
    const SpecialToken& eos = tokenizer->eos();
    if (eos && (ids.empty() || ids.back() != eos.id)) ids.push_back(eos.id);
    return ids;
  }

  void read_prompt_completion(const nlohmann::json& row, const std::string& where,
                              Sample& s) const {
    const std::string prompt = text_field(row, "prompt", where);
    const std::string completion = text_field(row, "completion", where);
    need_tokenizer(where, "a prompt/completion row");
    // TRL: the loss starts after the prompt's own tokens within prompt + completion.
    const size_t prompt_tokens = tokenizer->encode(prompt).size();
    s.ids = encode(prompt + completion);
    s.labels = s.ids;
    for (size_t i = 0; i < std::min(prompt_tokens, s.labels.size()); ++i) s.labels[i] = kIgnore;
  }

  void read_tokens(const nlohmann::json& row, const std::string& where, Sample& s) const {
    const int64_t vocab = options.vocab > 0 ? options.vocab
                          : tokenizer       ? tokenizer->vocab_size()
                                            : 0;
    const auto ids_of = [&](const char* key, bool labels) {
      const nlohmann::json& list = row[key];
      if (!list.is_array()) {
        throw InputError(where + ": \"" + key + "\" must be an array of token ids, got " +
                         planner::json_excerpt(list));
      }
      std::vector<int32_t> out;
      out.reserve(list.size());
      for (size_t i = 0; i < list.size(); ++i) {
        const nlohmann::json& v = list[i];
        const bool integer = v.is_number_integer();
        const int64_t id = integer ? v.get<int64_t>() : 0;
        const bool ok = integer && ((labels && id == kIgnore) ||
                                    (id >= 0 && (vocab == 0 ? id <= INT32_MAX : id < vocab)));
        if (!ok) {
          throw InputError(where + ": \"" + key + "\"[" + std::to_string(i) + "] must be " +
                           (labels ? "-100 or " : "") + "a token id" +
                           (vocab > 0 ? " below the vocabulary's " + std::to_string(vocab) : "") +
                           ", got " + planner::json_excerpt(v));
        }
        out.push_back(static_cast<int32_t>(id));
      }
      return out;
    };
    s.ids = ids_of("input_ids", false);
    if (row.contains("labels") && !row["labels"].is_null()) {
      s.labels = ids_of("labels", true);
      if (s.labels.size() != s.ids.size()) {
        throw InputError(where + ": \"labels\" has " + std::to_string(s.labels.size()) +
                         " entries for " + std::to_string(s.ids.size()) + " input_ids");
      }
    } else {
      s.labels = s.ids;
    }
  }
};

}  // namespace

DatasetSummary for_each_sample(const std::string& path, const Tokenizer* tokenizer,
                               const DatasetOptions& options,
                               const std::function<void(Sample&&)>& sample) {
  const RowReader reader{tokenizer, options};
  DatasetSummary summary;
  for_each_row(path, [&](const nlohmann::json& row, const RowPlace& place) {
    Sample s;
    try {
      s = reader.read(row, place);
    } catch (const InputError& e) {
      if (!options.skip_bad_rows) throw;
      if (summary.skipped++ == 0) summary.first_skipped = e.what();
      return;
    }
    s.row = place.index;
    s.line = place.line;
    s.full_length = static_cast<int64_t>(s.ids.size());
    if (options.seq_len > 0 && s.full_length > options.seq_len) {
      ++summary.truncated;
      summary.truncated_tokens += s.full_length - options.seq_len;
      s.ids.resize(static_cast<size_t>(options.seq_len));
      s.labels.resize(static_cast<size_t>(options.seq_len));
    }
    ++summary.rows;
    sample(std::move(s));
  });
  return summary;
}

}  // namespace loraplan::data
