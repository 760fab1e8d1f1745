#pragma once
// What the renderer (jinja_render.cc) applies to values it has evaluated: filters, string and
// dict methods and tests (jinja_filters.cc), and the Context they share with it: the template's
// name and line for errors, and the budget of steps and bytes every rendering is held to.

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "jinja.h"

namespace loraplan::data::jinja {

// A call's or a filter's arguments, evaluated.
struct Args {
  List positional;
  std::vector<std::pair<std::string, Value>> keywords;
  const Value* keyword(const std::string& k) const;
};

// One rendering's errors and limits. Every failure is an InputError at the node's line.
class Context {
 public:
  Context(const Limits& limits, const std::string& where) : limits_(limits), where_(where) {}

  [[noreturn]] void error(const Node& n, const std::string& message) const;
  // f(), with its std::invalid_argument (a text function's refusal) made an error at n.
  template <class F>
  auto guarded(const Node& n, F f) const {
    try {
      return f();
    } catch (const std::invalid_argument& e) {
      error(n, e.what());
    }
  }
  // Counts steps against Limits::max_steps; bytes built count one step per 64.
  void charge(const Node& n, int64_t steps);
  void charge_bytes(const Node& n, size_t bytes) { charge(n, static_cast<int64_t>(bytes / 64)); }
  // A string the template built, refused past Limits::max_output_bytes.
  Value text(const Node& n, std::string s);

  const std::string& need_string(const Node& n, const Value& v, const std::string& what) const;
  int64_t need_int(const Node& n, const Value& v, const std::string& what) const;
  // Refuses a dict whose key order is not known where `what` would depend on it.
  void need_order(const Node& n, const Dict& d, const std::string& what) const;
  // Refuses fewer than lo or more than hi positional arguments, and keyword arguments unless
  // `keywords`.
  void arity(const Node& n, const Args& a, const std::string& what, size_t lo, size_t hi,
             bool keywords = false) const;

  const Limits& limits() const { return limits_; }

 private:
  const Limits& limits_;
  const std::string& where_;
  int64_t steps_ = 0;
};

// The methods `s.name` and `d.name` resolve to; a dict method is one even where the dict has the
// key (as in jinja2), and only some of them are supported.
bool is_string_method(const std::string& name);
bool is_dict_method(const std::string& name);
bool supported_dict_method(const std::string& name);

Value string_method(Context& c, const Node& n, const std::string& name, const std::string& s,
                    const Args& a);
Value dict_method(Context& c, const Node& n, const std::string& name, const Dict& d, const Args& a);
// v | n.text(a...) for the filter node n.
Value filter(Context& c, const Node& n, const Value& v, const Args& a);
// v is n.text for the test node n (`is not` is left to the caller).
bool test(Context& c, const Node& n, const Value& v);

}  // namespace loraplan::data::jinja
