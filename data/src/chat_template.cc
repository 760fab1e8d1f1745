#include "loraplan/data/chat_template.h"

#include <cmath>

#include "jinja.h"
#include "loraplan/planner/errors.h"

namespace loraplan::data {

namespace jinja {

[[noreturn]] void fail(const std::string& where, int line, const std::string& message) {
  throw InputError(where + ":" + std::to_string(line) + ": " + message);
}

}  // namespace jinja

namespace {

constexpr size_t kMaxTemplateBytes = 1 << 20;
constexpr int kMaxDataDepth = 128;

// "0", "12": a key JavaScript orders before the others.
bool array_index(const std::string& key) {
  if (key.empty() || key.size() > 10 || (key[0] == '0' && key.size() > 1)) return false;
  for (const char c : key) {
    if (c < '0' || c > '9') return false;
  }
  return std::stoull(key) < 4294967295ull;
}

// A message's JSON as a template value. Numbers where JavaScript and Python read the JSON
// differently (2.0, integers past 2^53) are marked ambiguous: using them as text is refused.
template <class Json>
jinja::Value value_of(const Json& j, bool order_lost, int depth) {
  using jinja::Value;
  if (depth > kMaxDataDepth) throw InputError("the messages nest more than 128 levels deep");
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return Value::none();
    case nlohmann::json::value_t::boolean:
      return Value::of(j.template get<bool>());
    case nlohmann::json::value_t::string:
      return Value::of(j.template get<std::string>());
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned: {
      if (j.is_number_unsigned() && j.template get<uint64_t>() > uint64_t{INT64_MAX}) {
        Value v = Value::of(j.template get<double>());
        v.ambiguous = true;
        return v;
      }
      Value v = Value::of(j.template get<int64_t>());
      v.ambiguous = v.integer > (int64_t{1} << 53) || v.integer < -(int64_t{1} << 53);
      return v;
    }
    case nlohmann::json::value_t::number_float: {
      Value v = Value::of(j.template get<double>());
      v.ambiguous = v.real == std::floor(v.real);  // JavaScript reads 2.0 as 2
      return v;
    }
    case nlohmann::json::value_t::array: {
      jinja::List items;
      items.reserve(j.size());
      for (const Json& item : j) items.push_back(value_of(item, order_lost, depth + 1));
      return Value::of(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      auto d = std::make_shared<jinja::Dict>();
      d->order_lost = order_lost;
      for (auto it = j.begin(); it != j.end(); ++it) {
        // JavaScript's objects put keys like "2" first, whatever the file's order.
        if (array_index(it.key())) d->order_lost = true;
        d->add(it.key(), value_of(it.value(), order_lost, depth + 1));
      }
      Value v;
      v.kind = jinja::Kind::kDict;
      v.dict = std::move(d);
      return v;
    }
    default:
      throw InputError("the messages hold a value JSON does not have");
  }
}

}  // namespace

struct ChatTemplate::Impl {
  jinja::Body program;
  std::string where;

  std::string render(jinja::Value messages, const ChatVariables& vars,
                     const ChatTemplateLimits& limits) const {
    std::vector<std::pair<std::string, jinja::Value>> globals = {
        {"messages", std::move(messages)},
        {"add_generation_prompt", jinja::Value::of(vars.add_generation_prompt)},
        {"tools", jinja::Value::none()},
        {"documents", jinja::Value::none()},
    };
    const std::pair<const char*, const std::string*> tokens[] = {{"bos_token", &vars.bos_token},
                                                                 {"eos_token", &vars.eos_token},
                                                                 {"pad_token", &vars.pad_token},
                                                                 {"unk_token", &vars.unk_token}};
    for (const auto& [name, text] : tokens) {
      if (!text->empty()) globals.emplace_back(name, jinja::Value::of(*text));
    }
    return jinja::render(program, globals, {limits.max_steps, limits.max_output_bytes}, where);
  }
};

ChatTemplate ChatTemplate::parse(const std::string& source, const std::string& where) {
  if (source.size() > kMaxTemplateBytes) {
    throw InputError(where + ": the template has " + std::to_string(source.size()) +
                     " bytes, past the limit of 1 MiB");
  }
  auto impl = std::make_unique<Impl>();
  impl->where = where;
  impl->program = jinja::parse(jinja::tokenize(source, where), where);
  return ChatTemplate(std::move(impl));
}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, const ChatVariables& vars,
                                 const ChatTemplateLimits& limits) const {
  return impl_->render(value_of(messages, false, 0), vars, limits);
}

std::string ChatTemplate::render(const nlohmann::json& messages, const ChatVariables& vars,
                                 const ChatTemplateLimits& limits) const {
  return impl_->render(value_of(messages, true, 0), vars, limits);
}

ChatTemplate::ChatTemplate(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;
ChatTemplate::~ChatTemplate() = default;

}  // namespace loraplan::data
