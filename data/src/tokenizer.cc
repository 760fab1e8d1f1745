#include "loraplan/data/tokenizer.h"

#include <cstdio>
#include <filesystem>
#include <unordered_map>

#include "added_vocabulary.h"
#include "bpe.h"
#include "loraplan/data/utf8.h"
#include "loraplan/planner/content_hash.h"
#include "loraplan/planner/errors.h"
#include "loraplan/planner/json_fields.h"
#include "parts.h"

namespace loraplan::data {

namespace fs = std::filesystem;

struct Tokenizer::Impl {
  std::string source;
  std::vector<AddedToken> added;
  std::unordered_map<int32_t, const AddedToken*> added_by_id;
  TokenIds added_by_text;
  AddedTokenMatcher raw_matcher, normalized_matcher;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<Bpe> model;
  std::unique_ptr<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;
  SpecialToken bos, eos, pad, unk;
  std::string fingerprint;
  std::string config_file, chat_template, chat_template_where;

  int32_t find(std::string_view token) const {
    if (const auto it = added_by_text.find(token); it != added_by_text.end()) return it->second;
    return model->find(token);
  }
  void read(const nlohmann::json& j, const Where& where);
  void read_added_tokens(const nlohmann::json& list, const Where& where);
  void read_config(const std::string& path);
  void read_chat_template(const nlohmann::json& field, const std::string& path,
                          const std::string& text);
};

namespace {

const nlohmann::json& part(const nlohmann::json& j, const char* key) {
  static const nlohmann::json null;
  const auto it = j.find(key);
  return it == j.end() ? null : *it;
}

// tokenizer_config.json writes a special token as "<s>" or as {"content": "<s>", ...}.
std::string token_text(const nlohmann::json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string()) {
    return j["content"].get<std::string>();
  }
  return "";
}

}  // namespace

void Tokenizer::Impl::read_added_tokens(const nlohmann::json& list, const Where& where) {
  if (list.is_null()) return;
  if (!list.is_array()) where.fail("\"added_tokens\" must be an array");
  added.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const nlohmann::json& t = list[i];
    const Where at = where.at("added_tokens[" + std::to_string(i) + "]");
    if (!t.is_object()) at.fail("must be an object");
    AddedToken token;
    token.content = string_field(t, "content", at);
    const auto id = t.find("id");
    if (id == t.end() || !id->is_number_integer() || id->get<int64_t>() < 0 ||
        id->get<int64_t>() > INT32_MAX) {
      at.fail("\"id\" must be a non-negative integer");
    }
    token.id = static_cast<int32_t>(id->get<int64_t>());
    token.single_word = bool_field(t, "single_word", false, at);
    token.lstrip = bool_field(t, "lstrip", false, at);
    token.rstrip = bool_field(t, "rstrip", false, at);
    token.special = bool_field(t, "special", false, at);
    token.normalized = bool_field(t, "normalized", !token.special, at);
    if (token.content.empty()) at.fail("\"content\" is empty");
    if (!is_valid_utf8(token.content)) at.fail("\"content\" is not UTF-8");
    added.push_back(std::move(token));
  }
}

void Tokenizer::Impl::read(const nlohmann::json& j, const Where& where) {
  if (!j.is_object()) where.fail("a tokenizer.json is an object");
  const nlohmann::json& m = part(j, "model");
  if (!m.is_object()) where.fail("\"model\" must be an object");
  const std::string type =
      part(m, "type").is_null() ? "BPE" : string_field(m, "type", where.at("model"));
  if (type != "BPE") {
    where.at("model").fail("unsupported model \"" + type +
                           "\" (loraplan reads BPE tokenizers: Llama, Qwen, Mistral, Gemma, "
                           "Phi, SmolLM, GPT-2)");
  }
  model = std::make_unique<Bpe>(m, where.at("model"));
  normalizer = make_normalizer(part(j, "normalizer"), where.at("normalizer"));
  pre_tokenizer = make_pre_tokenizer(part(j, "pre_tokenizer"), where.at("pre_tokenizer"));
  post_processor = make_post_processor(part(j, "post_processor"), where.at("post_processor"));
  decoder = make_decoder(part(j, "decoder"), where.at("decoder"));
  read_added_tokens(part(j, "added_tokens"), where);

  std::vector<const AddedToken*> raw, normalized;
  std::vector<std::string> raw_patterns, normalized_patterns;
  for (const AddedToken& t : added) {
    added_by_id[t.id] = &t;
    added_by_text.emplace(t.content, t.id);
    if (t.normalized) {
      std::string pattern = t.content;  // matched as the normalizer writes it
      if (normalizer) normalizer->normalize(pattern);
      normalized.push_back(&t);
      normalized_patterns.push_back(std::move(pattern));
    } else {
      raw.push_back(&t);
      raw_patterns.push_back(t.content);
    }
  }
  raw_matcher = AddedTokenMatcher(raw, raw_patterns);
  normalized_matcher = AddedTokenMatcher(normalized, normalized_patterns);
}

void Tokenizer::Impl::read_config(const std::string& path) {
  const std::string text = planner::read_text_file(path);
  const nlohmann::json c = planner::parse_json(text, path, "tokenizer_config.json");
  if (!c.is_object()) throw InputError(path + ": a tokenizer_config.json is an object");
  const auto special = [&](const char* key) {
    SpecialToken s;
    s.text = token_text(part(c, key));
    if (!s.text.empty()) s.id = find(s.text);
    if (!s.text.empty() && s.id < 0) {
      throw InputError(located(
          path, json_key_line(text, key),
          "\"" + std::string(key) + "\" \"" + s.text + "\" is not a token of tokenizer.json"));
    }
    return s;
  };
  bos = special("bos_token");
  eos = special("eos_token");
  pad = special("pad_token");
  unk.text = token_text(part(c, "unk_token"));
  if (!unk.text.empty()) unk.id = find(unk.text);
  config_file = path;
  read_chat_template(part(c, "chat_template"), path, text);
  // transformers' Llama and Gemma fast tokenizers rebuild the post-processor from these flags.
  const nlohmann::json& class_field = part(c, "tokenizer_class");
  const std::string cls = class_field.is_string() ? class_field.get<std::string>() : "";
  const bool rebuilds = cls.rfind("LlamaTokenizer", 0) == 0 ||
                        cls.rfind("CodeLlamaTokenizer", 0) == 0 ||
                        cls.rfind("GemmaTokenizer", 0) == 0;
  if (rebuilds && (c.contains("add_bos_token") || c.contains("add_eos_token"))) {
    const auto flag = [&](const char* key, bool fallback) {
      const nlohmann::json& v = part(c, key);
      if (v.is_null()) return fallback;
      if (!v.is_boolean()) {
        throw InputError(located(path, json_key_line(text, key),
                                 "\"" + std::string(key) + "\" must be true or false"));
      }
      return v.get<bool>();
    };
    const bool add_bos = flag("add_bos_token", true), add_eos = flag("add_eos_token", false);
    if ((add_bos && !bos) || (add_eos && !eos)) {
      throw InputError(path + ": add_" + std::string(add_bos && !bos ? "bos" : "eos") +
                       "_token is true but no such token is named");
    }
    post_processor = make_bos_eos_processor(add_bos ? bos.id : -1, add_eos ? eos.id : -1);
  }
}

// "chat_template": a string, or a list of {"name", "template"} of which "default" is the one
// apply_chat_template takes when it is given no name.
void Tokenizer::Impl::read_chat_template(const nlohmann::json& field, const std::string& path,
                                         const std::string& text) {
  if (field.is_null()) return;
  const auto fail = [&](const std::string& message) {
    throw InputError(located(path, json_key_line(text, "chat_template"), message));
  };
  chat_template_where = path + ": chat_template";
  if (field.is_string()) {
    chat_template = field.get<std::string>();
    return;
  }
  if (!field.is_array())
    fail("\"chat_template\" must be a string or a list of {\"name\", \"template\"}");
  std::string names;
  for (const nlohmann::json& t : field) {
    if (!t.is_object() || !t.contains("name") || !t["name"].is_string() ||
        !t.contains("template") || !t["template"].is_string()) {
      fail("\"chat_template\" list entries must be {\"name\": ..., \"template\": ...} strings");
    }
    const std::string name = t["name"].get<std::string>();
    if (name == "default") {
      chat_template = t["template"].get<std::string>();
      chat_template_where = path + ": chat_template \"default\"";
      return;
    }
    names += (names.empty() ? "\"" : ", \"") + name + "\"";
  }
  fail("\"chat_template\" names " + (names.empty() ? std::string("no template") : names) +
       " but none \"default\" (the one transformers applies)");
}

std::string tokenizer_file(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return path;
  const std::string file = (fs::path(path) / "tokenizer.json").string();
  if (!fs::exists(file, ec)) throw InputError(path + ": no tokenizer.json in this folder");
  return file;
}

namespace {

// tokenizer_config.json beside a tokenizer.json, or "" when there is none.
std::string config_beside(const std::string& file) {
  std::error_code ec;
  const fs::path config = fs::path(file).parent_path() / "tokenizer_config.json";
  return fs::is_regular_file(config, ec) ? config.string() : "";
}

// chat_template.jinja beside a tokenizer.json, or "" when there is none.
std::string jinja_beside(const std::string& file) {
  std::error_code ec;
  const fs::path jinja = fs::path(file).parent_path() / "chat_template.jinja";
  return fs::is_regular_file(jinja, ec) ? jinja.string() : "";
}

std::string fingerprint_of(const std::string& text, const std::string& config_text,
                           const std::string& jinja_file = "") {
  planner::ContentHash hash;
  hash.add(text).add(std::string_view("", 1)).add(config_text);  // a NUL between the files
  if (!jinja_file.empty()) {
    hash.add(std::string_view("", 1)).add(planner::read_text_file(jinja_file));
  }
  return hash.hex();
}

}  // namespace

std::string tokenizer_fingerprint(const std::string& path) {
  const std::string file = tokenizer_file(path), config = config_beside(file);
  return fingerprint_of(planner::read_text_file(file),
                        config.empty() ? "" : planner::read_text_file(config), jinja_beside(file));
}

Tokenizer Tokenizer::load(const std::string& path) {
  const std::string file = tokenizer_file(path);
  auto impl = std::make_unique<Impl>();
  impl->source = file;
  const std::string text = planner::read_text_file(file);
  impl->read(planner::parse_json(text, file, "tokenizer.json"), Where{file, ""});
  const std::string config = config_beside(file);
  if (!config.empty()) impl->read_config(config);
  const std::string jinja = jinja_beside(file);
  if (!jinja.empty()) {
    impl->chat_template = planner::read_text_file(jinja);
    impl->chat_template_where = jinja;
  }
  impl->fingerprint =
      fingerprint_of(text, config.empty() ? "" : planner::read_text_file(config), jinja);
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::parse(const std::string& json_text, const std::string& where) {
  auto impl = std::make_unique<Impl>();
  impl->source = where;
  impl->read(planner::parse_json(json_text, where, "tokenizer.json"), Where{where, ""});
  impl->fingerprint = fingerprint_of(json_text, "");
  return Tokenizer(std::move(impl));
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const Impl& t = *impl_;
  std::vector<Piece> pieces;
  pieces.push_back({to_valid_utf8(text), true, -1});
  t.raw_matcher.split(pieces);
  if (t.normalizer) {
    for (Piece& p : pieces) {
      if (p.id < 0) t.normalizer->normalize(p.text);
    }
  }
  t.normalized_matcher.split(pieces);
  std::erase_if(pieces, [](const Piece& p) { return p.id < 0 && p.text.empty(); });
  if (t.pre_tokenizer) t.pre_tokenizer->pre_tokenize(pieces);
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  for (const Piece& p : pieces) {
    if (p.id >= 0) {
      ids.push_back(p.id);
    } else {
      t.model->tokenize(p.text, ids);
    }
  }
  if (add_special_tokens && t.post_processor) ids = t.post_processor->process(std::move(ids));
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const Impl& t = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int32_t id : ids) {
    if (const auto a = t.added_by_id.find(id); a != t.added_by_id.end()) {
      if (!(skip_special_tokens && a->second->special)) tokens.push_back(a->second->content);
    } else if (const std::string* s = t.model->token(id)) {
      // A model token that is also a special added token's text is skipped too.
      const auto by_text = t.added_by_text.find(*s);
      const bool special =
          by_text != t.added_by_text.end() && t.added_by_id.at(by_text->second)->special;
      if (!(skip_special_tokens && special)) tokens.push_back(*s);
    }
  }
  if (!t.decoder) {
    std::string joined;
    for (size_t i = 0; i < tokens.size(); ++i) joined += (i ? " " : "") + tokens[i];
    return joined;
  }
  std::string out;
  for (const std::string& piece : t.decoder->decode_chain(std::move(tokens))) out += piece;
  return out;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  const int32_t id = impl_->find(token);
  return id < 0 ? std::nullopt : std::optional<int32_t>(id);
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (const auto a = impl_->added_by_id.find(id); a != impl_->added_by_id.end()) {
    return a->second->content;
  }
  if (const std::string* s = impl_->model->token(id)) return *s;
  return std::nullopt;
}

int64_t Tokenizer::vocab_size() const {
  int64_t n = impl_->model->max_id() + 1;
  for (const AddedToken& a : impl_->added) n = std::max<int64_t>(n, int64_t{a.id} + 1);
  return n;
}

const SpecialToken& Tokenizer::bos() const { return impl_->bos; }
const SpecialToken& Tokenizer::eos() const { return impl_->eos; }
const SpecialToken& Tokenizer::pad() const { return impl_->pad; }
const SpecialToken& Tokenizer::unk() const { return impl_->unk; }
const std::string& Tokenizer::source() const { return impl_->source; }
const std::string& Tokenizer::config_file() const { return impl_->config_file; }
const std::string& Tokenizer::chat_template() const { return impl_->chat_template; }
const std::string& Tokenizer::chat_template_where() const { return impl_->chat_template_where; }
const std::string& Tokenizer::fingerprint() const { return impl_->fingerprint; }

}  // namespace loraplan::data
