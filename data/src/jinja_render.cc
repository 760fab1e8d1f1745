// Renders a chat template's syntax tree as @huggingface/jinja's interpreter (src/runtime.ts) does:
// the same scopes (a for loop has one scope for all its iterations; if has none), the same
// truthiness, loop variables and operators; the filters, methods and tests it applies are in
// jinja_filters.cc. Where jinja2 (transformers) would give something else for the same input, the
// construct is refused with the template's line and the reason. Every node, loop iteration and
// byte built is counted against Limits (the Context it shares with the filters).
#include <algorithm>
#include <cmath>

#include "jinja.h"
#include "jinja_filters.h"
#include "loraplan/planner/errors.h"

namespace loraplan::data::jinja {

namespace {

enum class Flow { kNormal, kBreak, kContinue };

struct Scope {
  Scope* parent = nullptr;
  std::unordered_map<std::string, Value> vars;

  const Value* find(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent) {
      if (const auto it = s->vars.find(name); it != s->vars.end()) return &it->second;
    }
    return nullptr;
  }
};

bool compound(const Value& v) {
  return v.is(Kind::kList) || v.is(Kind::kDict) || v.is(Kind::kNamespace) || v.is(Kind::kLoop) ||
         v.is(Kind::kFunction);
}
bool numeric(const Value& v) { return v.is(Kind::kInt) || v.is(Kind::kFloat) || v.is(Kind::kBool); }
double number_of(const Value& v) {
  if (v.is(Kind::kBool)) return v.boolean ? 1 : 0;
  return v.is(Kind::kInt) ? static_cast<double>(v.integer) : v.real;
}

// Whether JavaScript's Number(s) could be a number (then "1" == 1 holds there, not in Python).
bool could_be_number(const std::string& s) {
  const size_t i = s.find_first_not_of(" \t\n\r\v\f");
  if (i == std::string::npos) return true;
  const char c = s[i];
  return (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.' || c == 'I';
}

Value function(std::string name, Value self = {}) {
  Value v;
  v.kind = Kind::kFunction;
  v.fn = std::make_shared<const Function>(Function{std::move(name), std::move(self)});
  return v;
}

class Renderer : public Context {
 public:
  using Context::Context;

  std::string run(const Body& program, const std::vector<std::pair<std::string, Value>>& globals) {
    Scope root;
    for (const auto& [name, value] : globals) root.vars[name] = value;
    root.vars["namespace"] = function("namespace");
    root.vars["raise_exception"] = function("raise_exception");
    root.vars["range"] = function("range");
    root.vars["strftime_now"] = function("strftime_now");
    std::string out;
    exec(program, root, out);
    return out;
  }

 private:
  void write(const Node& n, std::string& out, const std::string& s) {
    if (static_cast<int64_t>(out.size() + s.size()) > limits().max_output_bytes) {
      error(n, "the rendered text is past the limit of " +
                   std::to_string(limits().max_output_bytes) + " bytes");
    }
    charge_bytes(n, s.size());
    out += s;
  }

  // ---- Statements ----

  Flow exec(const Body& body, Scope& scope, std::string& out) {
    for (const NodePtr& p : body) {
      const Node& n = *p;
      charge(n, 1);
      switch (n.kind) {
        case NodeKind::kText:
          write(n, out, n.text);
          break;
        case NodeKind::kOutput: {
          const Value v = eval(*n.kids[0], scope);
          write(n, out, guarded(n, [&] { return to_text(v); }));
          break;
        }
        case NodeKind::kIf: {
          const Flow f = exec(truthy(eval(*n.kids[0], scope)) ? n.body : n.orelse, scope, out);
          if (f != Flow::kNormal) return f;
          break;
        }
        case NodeKind::kFor:
          render_for(n, scope, out);
          break;
        case NodeKind::kSet:
          set(n, scope);
          break;
        case NodeKind::kBreak:
        case NodeKind::kContinue:
          if (loops_ == 0) error(n, "{% break %} or {% continue %} outside a loop");
          return n.kind == NodeKind::kBreak ? Flow::kBreak : Flow::kContinue;
        default: {
          const Value v = eval(n, scope);
          write(n, out, guarded(n, [&] { return to_text(v); }));
        }
      }
    }
    return Flow::kNormal;
  }

  void bind(const Node& n, const std::vector<std::string>& targets, const Value& v, Scope& scope) {
    if (targets.size() == 1) {
      scope.vars[targets[0]] = v;
      return;
    }
    if (!v.is(Kind::kList) || v.list->size() != targets.size()) {
      error(n, "cannot unpack " + std::string(kind_name(v.kind)) + " into " +
                   std::to_string(targets.size()) + " names");
    }
    for (size_t i = 0; i < targets.size(); ++i) scope.vars[targets[i]] = (*v.list)[i];
  }

  void set(const Node& n, Scope& scope) {
    Value v;
    if (n.kids[0]) {
      v = eval(*n.kids[0], scope);
    } else {
      std::string body;
      exec(n.body, scope, body);
      v = text(n, std::move(body));
    }
    if (n.kids.size() < 2) return bind(n, n.targets, v, scope);
    const Node& target = *n.kids[1];  // ns.attr
    const Value object = eval(*target.kids[0], scope);
    if (!object.is(Kind::kNamespace)) {
      error(n, "{% set x.attr = ... %} needs a namespace(), got " +
                   std::string(kind_name(object.kind)));
    }
    object.ns->attributes[target.text] = std::move(v);
  }

  std::shared_ptr<const List> loop_items(const Node& n, const Value& iterable) {
    if (iterable.is(Kind::kList)) return iterable.list;
    if (iterable.is(Kind::kDict)) {
      need_order(n, *iterable.dict, "a for loop over a dict");
      List keys;
      for (const auto& e : iterable.dict->entries) keys.push_back(Value::of(e.first));
      return std::make_shared<const List>(std::move(keys));
    }
    error(n, std::string("a for loop over ") +
                 (iterable.is(Kind::kUndefined)
                      ? "an undefined value (jinja2 runs it zero times, @huggingface/jinja fails)"
                      : std::string("a ") + kind_name(iterable.kind)));
  }

  void render_for(const Node& n, Scope& scope, std::string& out) {
    Scope loop_scope{&scope, {}};
    std::shared_ptr<const List> items = loop_items(n, eval(*n.kids[0], loop_scope));
    if (n.kids.size() > 1) {  // for x in items if cond
      List kept;
      for (const Value& item : *items) {
        charge(n, 1);
        Scope test_scope{&loop_scope, {}};
        bind(n, n.targets, item, test_scope);
        if (truthy(eval(*n.kids[1], test_scope))) kept.push_back(item);
      }
      items = std::make_shared<const List>(std::move(kept));
    }
    bool completed_one = false;
    ++loops_;
    for (size_t i = 0; i < items->size(); ++i) {
      charge(n, 1);
      Value loop;
      loop.kind = Kind::kLoop;
      loop.loop = std::make_shared<const Loop>(Loop{static_cast<int64_t>(i), items});
      loop_scope.vars["loop"] = std::move(loop);
      bind(n, n.targets, (*items)[i], loop_scope);
      const Flow f = exec(n.body, loop_scope, out);
      if (f == Flow::kBreak) break;
      if (f == Flow::kNormal) completed_one = true;
    }
    --loops_;
    if (n.orelse.empty()) return;
    if (!items->empty() && !completed_one) {
      error(n,
            "{% for %} ... {% else %} whose every iteration ended in break or continue "
            "(@huggingface/jinja then renders the else, jinja2 does not)");
    }
    if (items->empty()) exec(n.orelse, loop_scope, out);
  }

  // ---- Expressions ----

  Value eval(const Node& n, Scope& scope) {
    charge(n, 1);
    switch (n.kind) {
      case NodeKind::kLiteral:
        return n.literal;
      case NodeKind::kName: {
        const Value* v = scope.find(n.text);
        return v ? *v : Value{};
      }
      case NodeKind::kList:
      case NodeKind::kTuple: {
        List items;
        for (const NodePtr& k : n.kids) items.push_back(eval(*k, scope));
        return Value::of(std::move(items));
      }
      case NodeKind::kDict: {
        auto d = std::make_shared<Dict>();
        for (size_t i = 0; i + 1 < n.kids.size(); i += 2) {
          const Value key = eval(*n.kids[i], scope);
          d->add(need_string(n, key, "a dict literal's key"), eval(*n.kids[i + 1], scope));
        }
        Value v;
        v.kind = Kind::kDict;
        v.dict = std::move(d);
        return v;
      }
      case NodeKind::kAttribute:
        return attribute(n, eval(*n.kids[0], scope), n.text);
      case NodeKind::kIndex:
        return index(n, eval(*n.kids[0], scope), eval(*n.kids[1], scope));
      case NodeKind::kSlice:
        return slice(n, scope);
      case NodeKind::kCall:
        return call(n, scope);
      case NodeKind::kFilter: {
        const Value v = eval(*n.kids[0], scope);
        return filter(*this, n, v, arguments(n, 1, scope));
      }
      case NodeKind::kTest:
        return Value::of(test(*this, n, eval(*n.kids[0], scope)) != n.negate);
      case NodeKind::kUnary:
        return unary(n, eval(*n.kids[0], scope));
      case NodeKind::kBinary:
        return binary(n, scope);
      case NodeKind::kTernary:
        if (truthy(eval(*n.kids[0], scope))) return eval(*n.kids[1], scope);
        return n.kids[2] ? eval(*n.kids[2], scope) : Value{};
      default:
        error(n, "a statement where an expression belongs");
    }
  }

  Value attribute(const Node& n, const Value& object, const std::string& name) {
    switch (object.kind) {
      case Kind::kDict: {
        if (is_dict_method(name)) {
          if (object.dict->find(name)) {
            error(n, "'." + name + "' of a dict that has the key '" + name +
                         "' (jinja2 gives the dict method, @huggingface/jinja the value); write "
                         "['" +
                         name + "']");
          }
          if (supported_dict_method(name)) {
            return function(name, object);
          }
          error(n, "the dict method '" + name + "' is not supported");
        }
        const Value* v = object.dict->find(name);
        return v ? *v : Value{};
      }
      case Kind::kNamespace: {
        const auto it = object.ns->attributes.find(name);
        return it == object.ns->attributes.end() ? Value{} : it->second;
      }
      case Kind::kLoop:
        return loop_attribute(n, *object.loop, name);
      case Kind::kString:
        if (is_string_method(name)) return function(name, object);
        error(n, "the string method or attribute '" + name + "' is not supported");
      case Kind::kNone:
        return Value{};
      case Kind::kUndefined:
        error(n, "'." + name +
                     "' of an undefined value (jinja2 fails, @huggingface/jinja gives "
                     "undefined)");
      default:
        error(n, "'." + name + "' of a " + kind_name(object.kind) + " is not supported");
    }
  }

  Value loop_attribute(const Node& n, const Loop& loop, const std::string& name) {
    const int64_t i = loop.index0, length = static_cast<int64_t>(loop.items->size());
    if (name == "index0") return Value::of(i);
    if (name == "index") return Value::of(i + 1);
    if (name == "revindex") return Value::of(length - i);
    if (name == "revindex0") return Value::of(length - i - 1);
    if (name == "first") return Value::of(i == 0);
    if (name == "last") return Value::of(i == length - 1);
    if (name == "length") return Value::of(length);
    if (name == "previtem") return i > 0 ? (*loop.items)[size_t(i - 1)] : Value{};
    if (name == "nextitem") return i + 1 < length ? (*loop.items)[size_t(i + 1)] : Value{};
    error(n, "loop." + name + " is not supported");
  }

  Value index(const Node& n, const Value& object, const Value& key) {
    if (object.is(Kind::kDict) && key.is(Kind::kString)) {
      if (const Value* v = object.dict->find(key.str())) return *v;
      if (is_dict_method(key.str())) return attribute(n, object, key.str());
      return Value{};
    }
    if (object.is(Kind::kList) && key.is(Kind::kInt)) {
      const int64_t size = static_cast<int64_t>(object.list->size());
      const int64_t i = key.integer < 0 ? key.integer + size : key.integer;
      return i >= 0 && i < size ? (*object.list)[size_t(i)] : Value{};
    }
    if (object.is(Kind::kString) && key.is(Kind::kInt)) {
      std::string c;
      return guarded(n, [&] { return char_at(object.str(), key.integer, c); }) ? text(n, c)
                                                                               : Value{};
    }
    if (object.is(Kind::kUndefined)) {
      error(n, "[...] of an undefined value (jinja2 fails, @huggingface/jinja gives undefined)");
    }
    error(n, std::string("[") + kind_name(key.kind) + "] of a " + kind_name(object.kind) +
                 " is not supported");
  }

  Value slice(const Node& n, Scope& scope) {
    const Value object = eval(*n.kids[0], scope);
    int64_t bound[3] = {0, 0, 1};
    bool given[3] = {false, false, false};
    for (int k = 0; k < 3; ++k) {
      if (!n.kids[size_t(k) + 1]) continue;
      const Value v = eval(*n.kids[size_t(k) + 1], scope);
      if (v.is(Kind::kUndefined)) continue;
      bound[k] = need_int(n, v, "a slice bound");
      given[k] = true;
    }
    const int64_t step = bound[2];
    if (step == 0) error(n, "a slice step of 0");
    if (step < 0 && given[1] && bound[1] == -1) {
      error(n,
            "a slice [...:-1:-step] (@huggingface/jinja stops before index 0, jinja2 before "
            "the last item)");
    }
    std::vector<std::string> chars;
    if (object.is(Kind::kString))
      chars = code_points(object.str());
    else if (!object.is(Kind::kList))
      error(n, std::string("a slice of a ") + kind_name(object.kind));
    const int64_t len =
        static_cast<int64_t>(object.is(Kind::kList) ? object.list->size() : chars.size());
    // Python's slice.indices.
    const auto clamp = [&](int64_t v, bool is_given, int64_t fallback) {
      if (!is_given) return fallback;
      if (v < 0) v += len;
      if (step > 0) return std::clamp<int64_t>(v, 0, len);
      return std::clamp<int64_t>(v, -1, len - 1);
    };
    const int64_t start = clamp(bound[0], given[0], step > 0 ? 0 : len - 1);
    const int64_t stop = clamp(bound[1], given[1], step > 0 ? len : -1);
    List items;
    std::string s;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      charge(n, 1);
      if (object.is(Kind::kList))
        items.push_back((*object.list)[size_t(i)]);
      else
        s += chars[size_t(i)];
    }
    return object.is(Kind::kList) ? Value::of(std::move(items)) : text(n, std::move(s));
  }

  Args arguments(const Node& n, size_t first, Scope& scope) {
    Args a;
    for (size_t i = first; i < n.kids.size(); ++i) a.positional.push_back(eval(*n.kids[i], scope));
    for (const auto& [k, v] : n.kwargs) a.keywords.emplace_back(k, eval(*v, scope));
    return a;
  }

  Value call(const Node& n, Scope& scope) {
    const Args a = arguments(n, 1, scope);
    const Value callee = eval(*n.kids[0], scope);
    if (!callee.is(Kind::kFunction)) {
      error(n, "calling " +
                   std::string(n.kids[0]->kind == NodeKind::kName ? "'" + n.kids[0]->text + "', "
                                                                  : "") +
                   "a " + kind_name(callee.kind) + ", not a function");
    }
    const Function& f = *callee.fn;
    if (f.self.is(Kind::kString)) return string_method(*this, n, f.name, f.self.str(), a);
    if (f.self.is(Kind::kDict)) return dict_method(*this, n, f.name, *f.self.dict, a);
    return global(n, f.name, a);
  }

  Value global(const Node& n, const std::string& name, const Args& a) {
    if (name == "raise_exception") {
      arity(n, a, "raise_exception()", 1, 1);
      error(n, "the template raised an error: " +
                   guarded(n, [&] { return to_text(a.positional[0]); }));
    }
    if (name == "namespace") {
      arity(n, a, "namespace()", 0, 1, true);
      auto ns = std::make_shared<Namespace>();
      if (!a.positional.empty()) {
        if (!a.positional[0].is(Kind::kDict)) error(n, "namespace() takes a dict and name=value");
        for (const auto& [k, v] : a.positional[0].dict->entries) ns->attributes[k] = v;
      }
      for (const auto& [k, v] : a.keywords) ns->attributes[k] = v;
      Value v;
      v.kind = Kind::kNamespace;
      v.ns = std::move(ns);
      return v;
    }
    if (name == "range") {
      arity(n, a, "range()", 1, 3);
      int64_t r[3] = {0, 0, 1};
      for (size_t i = 0; i < a.positional.size(); ++i)
        r[i] = need_int(n, a.positional[i], "range()");
      if (a.positional.size() == 1) std::swap(r[0], r[1]);
      if (r[2] == 0) error(n, "range() with a step of 0");
      List items;
      for (int64_t i = r[0]; r[2] > 0 ? i < r[1] : i > r[1]; i += r[2]) {
        charge(n, 1);
        items.push_back(Value::of(i));
      }
      return Value::of(std::move(items));
    }
    error(n, name +
                 "() renders today's date, so the tokens would change from day to day; it is "
                 "not supported");
  }

  Value unary(const Node& n, const Value& v) {
    if (n.text == "not") return Value::of(!truthy(v));
    if (v.is(Kind::kFloat)) {
      Value r = Value::of(n.text == "-" ? -v.real : v.real);
      r.ambiguous = v.ambiguous;
      return r;
    }
    if (v.is(Kind::kInt) || v.is(Kind::kBool)) {
      const int64_t i = v.is(Kind::kBool) ? v.boolean : v.integer;
      return Value::of(n.text == "-" ? -i : i);
    }
    error(n, "unary " + n.text + " of a " + kind_name(v.kind));
  }

  Value binary(const Node& n, Scope& scope) {
    const std::string& op = n.text;
    const Value l = eval(*n.kids[0], scope);
    if (op == "and") return truthy(l) ? eval(*n.kids[1], scope) : l;
    if (op == "or") return truthy(l) ? l : eval(*n.kids[1], scope);
    const Value r = eval(*n.kids[1], scope);
    if (op == "==" || op == "!=") return Value::of(equal(n, l, r) == (op == "=="));
    if (op == "in" || op == "not in") return Value::of(member(n, l, r) == (op == "in"));
    if (op == "~") {
      return text(n, guarded(n, [&] { return to_text(l) + to_text(r); }));
    }
    if (op == "+" && l.is(Kind::kString) && r.is(Kind::kString)) return text(n, l.str() + r.str());
    if (op == "+" && l.is(Kind::kList) && r.is(Kind::kList)) {
      List items = *l.list;
      items.insert(items.end(), r.list->begin(), r.list->end());
      charge(n, static_cast<int64_t>(items.size()));
      return Value::of(std::move(items));
    }
    if ((l.is(Kind::kInt) || l.is(Kind::kFloat)) && (r.is(Kind::kInt) || r.is(Kind::kFloat))) {
      return arithmetic(n, l, r);
    }
    error(n, "'" + op + "' between a " + kind_name(l.kind) + " and a " + kind_name(r.kind) +
                 " is not supported");
  }

  Value arithmetic(const Node& n, const Value& l, const Value& r) {
    const std::string& op = n.text;
    const double a = number_of(l), b = number_of(r);
    if (op == "<") return Value::of(a < b);
    if (op == ">") return Value::of(a > b);
    if (op == "<=") return Value::of(a <= b);
    if (op == ">=") return Value::of(a >= b);
    if ((op == "/" || op == "//" || op == "%") && b == 0) error(n, "division by zero");
    const bool ints = l.is(Kind::kInt) && r.is(Kind::kInt);
    Value out;
    if (op == "/") {
      out = Value::of(a / b);
    } else if (ints) {
      const int64_t x = l.integer, y = r.integer;
      int64_t z = 0;
      if (op == "+") z = x + y;
      if (op == "-") z = x - y;
      if (op == "*" && __builtin_mul_overflow(x, y, &z)) z = INT64_MAX;
      if (op == "//")
        z = static_cast<int64_t>(std::floor(static_cast<double>(x) / static_cast<double>(y)));
      if (op == "%") z = x % y;
      if (z > (int64_t{1} << 53) || z < -(int64_t{1} << 53)) error(n, "an integer past 2^53");
      out = Value::of(z);
    } else {
      const double z = op == "+"    ? a + b
                       : op == "-"  ? a - b
                       : op == "*"  ? a * b
                       : op == "//" ? std::floor(a / b)
                                    : std::fmod(a, b);
      out = Value::of(z);
    }
    if (op == "%" && (ints ? out.integer != 0 && (out.integer < 0) != (r.integer < 0)
                           : out.real != 0 && (out.real < 0) != (b < 0))) {
      error(n,
            "% with operands of different signs (JavaScript keeps the dividend's sign, Python "
            "the divisor's)");
    }
    out.ambiguous = l.ambiguous || r.ambiguous;
    return out;
  }

  bool equal(const Node& n, const Value& l, const Value& r) {
    const bool lnull = l.is(Kind::kNone) || l.is(Kind::kUndefined);
    const bool rnull = r.is(Kind::kNone) || r.is(Kind::kUndefined);
    if (lnull || rnull) {
      if (lnull && rnull && l.kind != r.kind) {
        error(n, "comparing none with an undefined value (JavaScript's == says equal, jinja2 not)");
      }
      return l.kind == r.kind;
    }
    if (compound(l) || compound(r)) {
      error(n, std::string("comparing a ") + kind_name(l.kind) + " with a " + kind_name(r.kind) +
                   " (JavaScript compares identity, Python contents)");
    }
    if (l.is(Kind::kString) && r.is(Kind::kString)) return l.str() == r.str();
    if (numeric(l) && numeric(r)) return number_of(l) == number_of(r);
    const std::string& s = l.is(Kind::kString) ? l.str() : r.str();
    if (could_be_number(s)) {
      error(n,
            "comparing a string with a number (JavaScript converts the string, Python never "
            "finds them equal)");
    }
    return false;
  }

  bool member(const Node& n, const Value& item, const Value& container) {
    if (container.is(Kind::kUndefined)) return false;
    if (item.is(Kind::kUndefined) || item.is(Kind::kNone) || container.is(Kind::kNone)) {
      error(n, std::string("'in' with a ") + kind_name(item.kind) + " in a " +
                   kind_name(container.kind));
    }
    if (container.is(Kind::kString) && item.is(Kind::kString)) {
      charge_bytes(n, container.str().size());
      return contains(container.str(), item.str());
    }
    if (container.is(Kind::kDict) && item.is(Kind::kString)) {
      return container.dict->find(item.str()) != nullptr;
    }
    if (container.is(Kind::kList) && !compound(item)) {
      // JavaScript's === against Python's ==: they differ only for a boolean among numbers.
      for (const Value& x : *container.list) {
        charge(n, 1);
        if (x.is(Kind::kString) && item.is(Kind::kString) && x.str() == item.str()) return true;
        if (numeric(x) && numeric(item) && number_of(x) == number_of(item)) {
          if (x.is(Kind::kBool) != item.is(Kind::kBool)) {
            error(n,
                  "'in' of a boolean among numbers or a number among booleans (JavaScript's "
                  "=== says no, Python's == yes)");
          }
          return true;
        }
      }
      return false;
    }
    error(n, std::string("'in' with a ") + kind_name(item.kind) + " in a " +
                 kind_name(container.kind) + " is not supported");
  }

  int loops_ = 0;
};

}  // namespace

std::string render(const Body& program, const std::vector<std::pair<std::string, Value>>& globals,
                   const Limits& limits, const std::string& where) {
  return Renderer(limits, where).run(program, globals);
}

}  // namespace loraplan::data::jinja
