// The filters, string and dict methods and tests of chat templates, as @huggingface/jinja's
// runtime (src/runtime.ts) applies them; where jinja2 would give something else for the same input
// the construct is refused with the template's line and the reason. Also the Context they share
// with the renderer: its errors and its budget of steps and bytes.
#include "jinja_filters.h"

#include <algorithm>
#include <iterator>
#include <string_view>

namespace loraplan::data::jinja {

// ---- Context -----------------------------------------------------------------------------------

const Value* Args::keyword(const std::string& k) const {
  for (const auto& [key, v] : keywords) {
    if (key == k) return &v;
  }
  return nullptr;
}

void Context::error(const Node& n, const std::string& message) const {
  fail(where_, n.line, message);
}

void Context::charge(const Node& n, int64_t steps) {
  steps_ += steps;
  if (steps_ > limits_.max_steps) {
    error(n, "rendering stopped after " + std::to_string(limits_.max_steps) +
                 " steps (the template or the conversation is too large to render)");
  }
}

Value Context::text(const Node& n, std::string s) {
  if (static_cast<int64_t>(s.size()) > limits_.max_output_bytes) {
    error(n, "a string of " + std::to_string(s.size()) + " bytes is past the limit of " +
                 std::to_string(limits_.max_output_bytes));
  }
  charge_bytes(n, s.size());
  return Value::of(std::move(s));
}

const std::string& Context::need_string(const Node& n, const Value& v,
                                        const std::string& what) const {
  if (!v.is(Kind::kString)) error(n, what + " needs a string, got " + kind_name(v.kind));
  return v.str();
}

int64_t Context::need_int(const Node& n, const Value& v, const std::string& what) const {
  if (!v.is(Kind::kInt)) error(n, what + " needs an integer, got " + kind_name(v.kind));
  return v.integer;
}

void Context::need_order(const Node& n, const Dict& d, const std::string& what) const {
  if (d.order_lost && d.entries.size() > 1) {
    error(n, what +
                 " whose key order is not known (rows of a JSON array file are read with "
                 "sorted keys, and JavaScript moves keys like \"2\" first)");
  }
}

void Context::arity(const Node& n, const Args& a, const std::string& what, size_t lo, size_t hi,
                    bool keywords) const {
  if (a.positional.size() < lo || a.positional.size() > hi) {
    error(n, what + " takes " + std::to_string(lo) + (hi > lo ? " to " + std::to_string(hi) : "") +
                 " arguments, got " + std::to_string(a.positional.size()));
  }
  if (!keywords && !a.keywords.empty()) error(n, what + " takes no keyword arguments");
}

// ---- Methods -----------------------------------------------------------------------------------

namespace {

constexpr std::string_view kStringMethods[] = {"strip",      "lstrip",   "rstrip",    "split",
                                               "startswith", "endswith", "upper",     "lower",
                                               "replace",    "title",    "capitalize"};
// Python's dict methods: `d.items` is the method in jinja2 even when the dict has an "items" key.
constexpr std::string_view kDictMethods[] = {"get",        "items",   "keys",     "values",
                                             "pop",        "popitem", "update",   "copy",
                                             "setdefault", "clear",   "fromkeys", "dictsort"};
template <class Names>
bool among(const Names& names, const std::string& name) {
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

std::string case_change(const Context& c, const Node& n, const std::string& name,
                        const std::string& s) {
  return c.guarded(n, [&] {
    if (name == "upper") return upper(s);
    if (name == "lower") return lower(s);
    if (name == "title") return title(s);
    return capitalize(s);
  });
}

Value dict_items(Context& c, const Node& n, const Dict& d, const std::string& name) {
  c.need_order(n, d, name + "() of a dict");
  List out;
  for (const auto& [k, v] : d.entries) {
    c.charge(n, 1);
    if (name == "keys")
      out.push_back(Value::of(k));
    else if (name == "values")
      out.push_back(v);
    else
      out.push_back(Value::of(List{Value::of(k), v}));
  }
  return Value::of(std::move(out));
}

}  // namespace

bool is_string_method(const std::string& name) { return among(kStringMethods, name); }
bool is_dict_method(const std::string& name) { return among(kDictMethods, name); }
bool supported_dict_method(const std::string& name) {
  return name == "get" || name == "items" || name == "keys" || name == "values";
}

Value string_method(Context& c, const Node& n, const std::string& name, const std::string& s,
                    const Args& a) {
  c.charge_bytes(n, s.size());
  const auto optional_string = [&](size_t i) -> const std::string* {
    if (a.positional.size() <= i || a.positional[i].is(Kind::kNone)) return nullptr;
    return &c.need_string(n, a.positional[i], name + "()");
  };
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    c.arity(n, a, name + "()", 0, 1);
    return c.text(n, c.guarded(n, [&] {
      return strip(s, optional_string(0), name != "rstrip", name != "lstrip");
    }));
  }
  if (name == "split") {
    c.arity(n, a, "split()", 0, 2);
    const int64_t maxsplit =
        a.positional.size() > 1 ? c.need_int(n, a.positional[1], "split()") : -1;
    List parts;
    for (std::string& p : c.guarded(n, [&] { return split(s, optional_string(0), maxsplit); })) {
      parts.push_back(c.text(n, std::move(p)));
    }
    return Value::of(std::move(parts));
  }
  if (name == "startswith" || name == "endswith") {
    c.arity(n, a, name + "()", 1, 1);
    const auto matches = [&](const Value& v) {
      const std::string& p = c.need_string(n, v, name + "()");
      return p.size() <= s.size() &&
             s.compare(name == "startswith" ? 0 : s.size() - p.size(), p.size(), p) == 0;
    };
    if (a.positional[0].is(Kind::kList)) {
      for (const Value& v : *a.positional[0].list) {
        if (matches(v)) return Value::of(true);
      }
      return Value::of(false);
    }
    return Value::of(matches(a.positional[0]));
  }
  if (name == "replace") {
    c.arity(n, a, "replace()", 2, 3);
    const int64_t count =
        a.positional.size() > 2 ? c.need_int(n, a.positional[2], "replace()") : -1;
    return c.text(n, replace(s, c.need_string(n, a.positional[0], "replace()"),
                             c.need_string(n, a.positional[1], "replace()"), count));
  }
  c.arity(n, a, name + "()", 0, 0);
  return c.text(n, case_change(c, n, name, s));
}

Value dict_method(Context& c, const Node& n, const std::string& name, const Dict& d,
                  const Args& a) {
  if (name == "get") {
    c.arity(n, a, "get()", 1, 2);
    if (const Value* v = d.find(c.need_string(n, a.positional[0], "get()"))) return *v;
    return a.positional.size() > 1 ? a.positional[1] : Value::none();
  }
  c.arity(n, a, name + "()", 0, 0);
  return dict_items(c, n, d, name);
}

// ---- Filters and tests -------------------------------------------------------------------------

namespace {

Value bare_filter(Context& c, const Node& n, const std::string& f, const Value& v) {
  const std::string what = "| " + f;
  if (f == "length") {
    if (v.is(Kind::kString)) return Value::of(c.guarded(n, [&] { return length(v.str()); }));
    if (v.is(Kind::kList)) return Value::of(static_cast<int64_t>(v.list->size()));
    if (v.is(Kind::kDict)) return Value::of(static_cast<int64_t>(v.dict->entries.size()));
    c.error(n, "| length of a " + std::string(kind_name(v.kind)));
  }
  if (f == "trim") {
    return c.text(
        n, c.guarded(n, [&] { return strip(c.need_string(n, v, what), nullptr, true, true); }));
  }
  if (f == "upper" || f == "lower" || f == "title" || f == "capitalize") {
    return c.text(n, case_change(c, n, f, c.need_string(n, v, what)));
  }
  if (f == "string") {
    if (v.is(Kind::kString)) return v;
    if (!v.is(Kind::kInt) && !v.is(Kind::kFloat)) {
      c.error(n, "| string of a " + std::string(kind_name(v.kind)) +
                     " (jinja2 writes Python's repr, @huggingface/jinja JSON or true/false)");
    }
    return c.text(n, c.guarded(n, [&] { return to_text(v); }));
  }
  if (f == "items") {
    if (!v.is(Kind::kDict)) c.error(n, "| items of a " + std::string(kind_name(v.kind)));
    return dict_items(c, n, *v.dict, "items");
  }
  if (!v.is(Kind::kList)) c.error(n, what + " of a " + std::string(kind_name(v.kind)));
  if (f == "list") return v;
  if (f == "reverse") return Value::of(List(v.list->rbegin(), v.list->rend()));
  if (v.list->empty()) c.error(n, what + " of an empty list");
  return f == "first" ? v.list->front() : v.list->back();
}

}  // namespace

Value filter(Context& c, const Node& n, const Value& v, const Args& a) {
  const std::string& f = n.text;
  const std::string what = "| " + f;
  if (f == "default") {
    c.arity(n, a, what, 0, 2, true);
    const Value* flag = a.positional.size() > 1 ? &a.positional[1] : a.keyword("boolean");
    const bool boolean = flag && truthy(*flag);
    if (v.is(Kind::kUndefined) || (boolean && !truthy(v))) {
      return a.positional.empty() ? Value::of(std::string()) : a.positional[0];
    }
    return v;
  }
  if (f == "tojson") {
    int indent = 0;
    for (const auto& [k, value] : a.keywords) {
      if (k != "indent") c.error(n, "| tojson(" + k + "=...) is not supported (only indent)");
      if (!value.is(Kind::kNone)) indent = static_cast<int>(c.need_int(n, value, "indent"));
      if (indent < 1 && !value.is(Kind::kNone)) c.error(n, "| tojson(indent=...) below 1");
    }
    c.arity(n, a, what, 0, 0, true);
    return c.text(n, c.guarded(n, [&] { return to_json(v, indent); }));
  }
  if (f == "join") {
    c.arity(n, a, what, 0, 1);
    const std::string sep = a.positional.empty() ? "" : c.need_string(n, a.positional[0], what);
    if (v.is(Kind::kString) && a.positional.empty()) return v;
    std::vector<std::string> parts;
    if (v.is(Kind::kString))
      parts = code_points(v.str());
    else if (v.is(Kind::kList)) {
      for (const Value& item : *v.list) {
        if (!item.is(Kind::kString) && !item.is(Kind::kInt)) {
          c.error(n, "| join of a " + std::string(kind_name(item.kind)) + " item");
        }
        parts.push_back(c.guarded(n, [&] { return to_text(item); }));
      }
    } else
      c.error(n, "| join of a " + std::string(kind_name(v.kind)));
    std::string out;
    for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
    return c.text(n, std::move(out));
  }
  if (f == "replace") {
    c.arity(n, a, what, 2, 3);
    return string_method(c, n, "replace", c.need_string(n, v, what), a);
  }
  c.arity(n, a, what, 0, 0);
  return bare_filter(c, n, f, v);
}

bool test(Context& c, const Node& n, const Value& v) {
  const std::string& t = n.text;
  const auto refuse = [&](const char* why) -> bool {
    c.error(n, "'is " + t + "' of a " + kind_name(v.kind) + " (" + why + ")");
  };
  if (t == "defined") return !v.is(Kind::kUndefined);
  if (t == "undefined") return v.is(Kind::kUndefined);
  if (t == "none") return v.is(Kind::kNone);
  if (t == "string") return v.is(Kind::kString);
  if (t == "boolean") return v.is(Kind::kBool);
  if (t == "true" || t == "false") return v.is(Kind::kBool) && v.boolean == (t == "true");
  if (t == "number") {
    if (v.is(Kind::kBool)) return refuse("jinja2 counts booleans as numbers");
    return v.is(Kind::kInt) || v.is(Kind::kFloat);
  }
  if (t == "integer") {
    if (v.ambiguous) return refuse("JavaScript reads 2.0 as an integer, Python as a float");
    return v.is(Kind::kInt);
  }
  if (t == "odd" || t == "even") {
    const int64_t i = c.need_int(n, v, "'is " + t + "'");
    return (i % 2 != 0) == (t == "odd");
  }
  if (v.is(Kind::kLoop) || (v.is(Kind::kUndefined) && t != "mapping")) {
    return refuse("jinja2 and @huggingface/jinja disagree");
  }
  if (t == "iterable") {
    if (v.is(Kind::kDict)) return refuse("jinja2 iterates a dict's keys, @huggingface/jinja not");
    return v.is(Kind::kList) || v.is(Kind::kString);
  }
  if (t == "mapping") return v.is(Kind::kDict);
  return v.is(Kind::kList) || v.is(Kind::kString) || v.is(Kind::kDict);  // sequence
}

}  // namespace loraplan::data::jinja
