// The chat template's syntax tree, parsed as @huggingface/jinja parses it (src/parser.ts): the
// same precedence (filters bind tighter than tests, tests tighter than * and +), the same
// statements. Constructs outside the subset are refused here, with their line: unknown
// statements, filters and tests, macros, and the spellings whose meaning differs between
// @huggingface/jinja and jinja2 (chained comparisons, ~ mixed with + or -).
#include <algorithm>
#include <array>
#include <charconv>

#include "jinja.h"

namespace loraplan::data::jinja {

namespace {

constexpr int kMaxDepth = 128;  // nesting of statements, parentheses and expression trees

struct FilterSpec {
  std::string_view name;
  bool bare;    // `| name`
  bool called;  // `| name(...)`
};
constexpr std::array<FilterSpec, 16> kFilters = {{
    {"trim", true, false},
    {"length", true, false},
    {"upper", true, false},
    {"lower", true, false},
    {"title", true, false},
    {"capitalize", true, false},
    {"first", true, false},
    {"last", true, false},
    {"reverse", true, false},
    {"list", true, false},
    {"items", true, false},
    {"string", true, false},
    {"tojson", true, true},
    {"join", true, true},
    {"default", false, true},
    {"replace", false, true},
}};

constexpr std::array<std::string_view, 14> kTests = {
    "defined",  "undefined", "none",     "string", "number", "integer", "boolean",
    "iterable", "mapping",   "sequence", "true",   "false",  "odd",     "even"};

std::string describe(const Token* t) {
  if (t == nullptr) return "the end of the template";
  switch (t->type) {
    case Tok::kText:
      return "text";
    case Tok::kComment:
      return "a comment";
    case Tok::kString:
      return "the string '" + t->value + "'";
    default:
      return "'" + t->value + "'";
  }
}

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, const std::string& where) : t_(tokens), where_(where) {}

  Body program() {
    Body body;
    while (pos_ < t_.size()) {
      if (NodePtr n = any()) body.push_back(std::move(n));
    }
    return body;
  }

 private:
  // Recursion guard: a hostile template cannot overflow the stack.
  struct Deeper {
    Parser& p;
    explicit Deeper(Parser& parser) : p(parser) {
      if (++p.depth_ > kMaxDepth) p.error("the template nests more than 128 levels deep");
    }
    ~Deeper() { --p.depth_; }
  };

  const Token* peek(size_t k = 0) const { return pos_ + k < t_.size() ? &t_[pos_ + k] : nullptr; }
  bool is(Tok type, size_t k = 0) const { return peek(k) && peek(k)->type == type; }
  bool is_name(std::string_view name, size_t k = 0) const {
    return is(Tok::kName, k) && peek(k)->value == name;
  }
  bool is_operator(std::string_view op) const { return is(Tok::kOperator) && peek()->value == op; }
  int line() const {
    if (const Token* t = peek()) return t->line;
    return t_.empty() ? 1 : t_.back().line;
  }
  [[noreturn]] void error(const std::string& message) const { fail(where_, line(), message); }

  const Token& expect(Tok type, const std::string& what) {
    if (!is(type)) error("expected " + what + ", got " + describe(peek()));
    return t_[pos_++];
  }
  void expect_name(std::string_view name, const std::string& context) {
    if (!is_name(name)) {
      error("expected '" + std::string(name) + "' " + context + ", got " + describe(peek()));
    }
    ++pos_;
  }
  // At {% name %} for one of `names`?
  bool at_statement(std::initializer_list<std::string_view> names) const {
    if (!is(Tok::kOpenStatement) || !is(Tok::kName, 1)) return false;
    for (std::string_view n : names) {
      if (peek(1)->value == n) return true;
    }
    return false;
  }
  // Statements up to one of `ends` (not consumed); `opened` names the block in the error.
  Body block(std::initializer_list<std::string_view> ends, const std::string& opened, int at) {
    Body body;
    while (!at_statement(ends)) {
      if (pos_ >= t_.size()) fail(where_, at, opened + " is never closed");
      if (NodePtr n = any()) body.push_back(std::move(n));
    }
    return body;
  }
  void end_statement(std::string_view name, int at) {
    if (!at_statement({name})) {
      fail(where_, at, "expected {% " + std::string(name) + " %}, got " + describe(peek()));
    }
    pos_ += 2;
    expect(Tok::kCloseStatement, "%} after " + std::string(name));
  }

  NodePtr make(NodeKind kind, int at, std::vector<NodePtr> kids = {}) {
    auto n = std::make_unique<Node>();
    n->kind = kind;
    n->line = at;
    for (NodePtr& k : kids) adopt(*n, std::move(k));
    return n;
  }
  void adopt(Node& n, NodePtr kid) {
    if (kid) {
      n.height = std::max(n.height, kid->height + 1);
      if (n.height > kMaxDepth) error("an expression nests more than 128 levels deep");
    }
    n.kids.push_back(std::move(kid));
  }

  NodePtr any() {
    Deeper guard(*this);
    const Token& t = t_[pos_];
    switch (t.type) {
      case Tok::kComment:
        ++pos_;
        return nullptr;
      case Tok::kText: {
        NodePtr n = make(NodeKind::kText, t.line);
        n->text = t.value;
        ++pos_;
        return n;
      }
      case Tok::kOpenStatement:
        return statement();
      case Tok::kOpenExpression: {
        ++pos_;
        NodePtr n = make(NodeKind::kOutput, t.line);
        adopt(*n, expression());
        expect(Tok::kCloseExpression, "}} to close {{");
        return n;
      }
      default:
        error("unexpected " + describe(&t));
    }
  }

  NodePtr statement() {
    const int at = t_[pos_].line;
    ++pos_;
    if (!is(Tok::kName)) error("expected a statement name after {%, got " + describe(peek()));
    const std::string name = t_[pos_++].value;
    if (name == "set") return set_statement(at);
    if (name == "if") {
      NodePtr n = if_statement(at);
      end_statement("endif", at);
      return n;
    }
    if (name == "for") {
      NodePtr n = for_statement(at);
      end_statement("endfor", at);
      return n;
    }
    if (name == "break" || name == "continue") {
      expect(Tok::kCloseStatement, "%} after " + name);
      return make(name == "break" ? NodeKind::kBreak : NodeKind::kContinue, at);
    }
    if (name == "elif" || name == "else" || name.rfind("end", 0) == 0) {
      fail(where_, at, "{% " + name + " %} without the block it belongs to");
    }
    fail(where_, at,
         "unsupported statement {% " + name +
             " %} (loraplan renders if, for, set, break and continue; not macro, call, filter, "
             "raw, include or import)");
  }

  NodePtr set_statement(int at) {
    NodePtr target = expression_sequence(false);
    NodePtr n = make(NodeKind::kSet, at);
    if (target->kind == NodeKind::kName) {
      n->targets.push_back(target->text);
    } else if (target->kind == NodeKind::kTuple) {
      for (const NodePtr& k : target->kids) {
        if (k->kind != NodeKind::kName) fail(where_, at, "{% set %} unpacks into names only");
        n->targets.push_back(k->text);
      }
    } else if (target->kind != NodeKind::kAttribute) {
      fail(where_, at, "{% set %} assigns a name, names or namespace.attribute");
    }
    if (is(Tok::kEquals)) {
      ++pos_;
      adopt(*n, expression_sequence(false));
      expect(Tok::kCloseStatement, "%} after {% set ... = ...");
    } else {
      expect(Tok::kCloseStatement, "= or %} after {% set name");
      adopt(*n, nullptr);  // no value: the block's text
      n->body = block({"endset"}, "{% set %}", at);
      end_statement("endset", at);
    }
    if (target->kind == NodeKind::kAttribute) adopt(*n, std::move(target));
    return n;
  }

  NodePtr if_statement(int at) {
    NodePtr n = make(NodeKind::kIf, at);
    adopt(*n, expression());
    expect(Tok::kCloseStatement, "%} after {% if ...");
    n->body = block({"elif", "else", "endif"}, "{% if %}", at);
    if (at_statement({"elif"})) {
      const int elif_at = t_[pos_].line;
      pos_ += 2;
      n->orelse.push_back(if_statement(elif_at));
    } else if (at_statement({"else"})) {
      pos_ += 2;
      expect(Tok::kCloseStatement, "%} after {% else");
      n->orelse = block({"endif"}, "{% if %}", at);
    }
    return n;
  }

  NodePtr for_statement(int at) {
    NodePtr n = make(NodeKind::kFor, at);
    NodePtr target = expression_sequence(true);
    if (target->kind == NodeKind::kName) {
      n->targets.push_back(target->text);
    } else if (target->kind == NodeKind::kTuple) {
      for (const NodePtr& k : target->kids) {
        if (k->kind != NodeKind::kName) fail(where_, at, "{% for %} unpacks into names only");
        n->targets.push_back(k->text);
      }
    } else {
      fail(where_, at, "{% for %} needs a name or names before 'in'");
    }
    expect_name("in", "in {% for %}");
    NodePtr iterable = expression();
    if (iterable->kind == NodeKind::kTernary && !iterable->kids[2]) {
      // for x in items if cond: the condition selects items (loop.* counts the selected).
      adopt(*n, std::move(iterable->kids[1]));
      adopt(*n, std::move(iterable->kids[0]));
    } else {
      adopt(*n, std::move(iterable));
    }
    expect(Tok::kCloseStatement, "%} after {% for ... in ...");
    n->body = block({"endfor", "else"}, "{% for %}", at);
    if (at_statement({"else"})) {
      pos_ += 2;
      expect(Tok::kCloseStatement, "%} after {% else");
      n->orelse = block({"endfor"}, "{% for %}", at);
    }
    return n;
  }

  NodePtr expression_sequence(bool primary_only) {
    const int at = line();
    NodePtr first = primary_only ? primary() : expression();
    if (!is(Tok::kComma)) return first;
    NodePtr tuple = make(NodeKind::kTuple, at);
    adopt(*tuple, std::move(first));
    while (is(Tok::kComma)) {
      ++pos_;
      adopt(*tuple, primary_only ? primary() : expression());
    }
    return tuple;
  }

  NodePtr expression() {
    Deeper guard(*this);
    const int at = line();
    NodePtr a = logical("or");
    if (!is_name("if")) return a;
    ++pos_;
    NodePtr test = logical("or");
    NodePtr otherwise;
    if (is_name("else")) {
      ++pos_;
      otherwise = expression();
    }
    NodePtr n = make(NodeKind::kTernary, at);
    adopt(*n, std::move(test));
    adopt(*n, std::move(a));
    adopt(*n, std::move(otherwise));  // null: `a if test` (undefined when the test fails)
    return n;
  }

  static std::vector<NodePtr> vec(NodePtr a) {
    std::vector<NodePtr> v;
    v.push_back(std::move(a));
    return v;
  }
  static std::vector<NodePtr> vec(NodePtr a, NodePtr b) {
    std::vector<NodePtr> v = vec(std::move(a));
    v.push_back(std::move(b));
    return v;
  }
  NodePtr binary(const std::string& op, NodePtr l, NodePtr r, int at) {
    NodePtr n = make(NodeKind::kBinary, at, vec(std::move(l), std::move(r)));
    n->text = op;
    return n;
  }

  // "or" over "and" over "not" over comparisons.
  NodePtr logical(const std::string& op) {
    NodePtr left = op == "or" ? logical("and") : negation();
    while (is_name(op)) {
      const int at = line();
      ++pos_;
      left = binary(op, std::move(left), op == "or" ? logical("and") : negation(), at);
    }
    return left;
  }

  NodePtr negation() {
    if (!is_name("not")) return comparison();
    Deeper guard(*this);
    const int at = line();
    ++pos_;
    NodePtr n = make(NodeKind::kUnary, at, vec(negation()));
    n->text = "not";
    return n;
  }

  NodePtr comparison() {
    NodePtr left = additive();
    int chained = 0;
    for (;;) {
      const int at = line();
      std::string op;
      if (is_name("not") && is_name("in", 1)) {
        op = "not in";
        pos_ += 2;
      } else if (is_name("in")) {
        op = "in";
        ++pos_;
      } else if (is(Tok::kOperator) && (peek()->value == "==" || peek()->value == "!=" ||
                                        peek()->value[0] == '<' || peek()->value[0] == '>')) {
        op = t_[pos_++].value;
      } else {
        return left;
      }
      if (++chained > 1) {
        error("a chained comparison ('" + op +
              "' after another): jinja2 reads a < b < c as a < b and b < c, @huggingface/jinja as "
              "(a < b) < c; add parentheses");
      }
      left = binary(op, std::move(left), additive(), at);
    }
  }

  NodePtr additive() {
    NodePtr left = multiplicative();
    bool tilde = false, plus = false;
    while (is_operator("+") || is_operator("-") || is_operator("~")) {
      const int at = line();
      const std::string op = t_[pos_++].value;
      (op == "~" ? tilde : plus) = true;
      if (tilde && plus) {
        error(
            "~ and + or - in one expression: jinja2 binds + tighter than ~, @huggingface/jinja "
            "reads them left to right; add parentheses");
      }
      left = binary(op, std::move(left), multiplicative(), at);
    }
    return left;
  }

  NodePtr multiplicative() {
    NodePtr left = test();
    while (is_operator("*") || is_operator("/") || is_operator("//") || is_operator("%") ||
           is_operator("**")) {
      const int at = line();
      const std::string op = t_[pos_++].value;
      if (op == "**") error("unsupported operator **");
      left = binary(op, std::move(left), test(), at);
    }
    return left;
  }

  NodePtr test() {
    NodePtr operand = filter();
    while (is_name("is")) {
      const int at = line();
      ++pos_;
      const bool negate = is_name("not");
      if (negate) ++pos_;
      const std::string name = expect(Tok::kName, "a test name after 'is'").value;
      if (std::find(kTests.begin(), kTests.end(), name) == kTests.end()) {
        fail(where_, at, "unsupported test 'is " + name + "'");
      }
      if (is(Tok::kLParen) || is(Tok::kNumber) || is(Tok::kString)) {
        fail(where_, at, "a test with an argument ('is " + name + " ...') is not supported");
      }
      NodePtr n = make(NodeKind::kTest, at, vec(std::move(operand)));
      n->text = name;
      n->negate = negate;
      operand = std::move(n);
    }
    return operand;
  }

  NodePtr filter() {
    NodePtr operand = unary_sign();
    while (is(Tok::kPipe)) {
      const int at = line();
      ++pos_;
      const std::string name = expect(Tok::kName, "a filter name after |").value;
      const auto spec = std::find_if(kFilters.begin(), kFilters.end(),
                                     [&](const FilterSpec& f) { return f.name == name; });
      if (spec == kFilters.end()) fail(where_, at, "unsupported filter '" + name + "'");
      NodePtr n = make(NodeKind::kFilter, at, vec(std::move(operand)));
      n->text = name;
      n->called = is(Tok::kLParen);
      if (n->called ? !spec->called : !spec->bare) {
        fail(where_, at,
             "the filter '" + name + "' is written " +
                 (spec->called ? "with arguments: | " + name + "(...)" : "without arguments"));
      }
      if (n->called) arguments(*n);
      operand = std::move(n);
    }
    return operand;
  }

  NodePtr unary_sign() {
    if ((is(Tok::kUnary) || is(Tok::kOperator)) && (peek()->value == "-" || peek()->value == "+")) {
      Deeper guard(*this);
      const int at = line();
      const std::string op = t_[pos_++].value;
      NodePtr n = make(NodeKind::kUnary, at, vec(unary_sign()));
      n->text = op;
      return n;
    }
    NodePtr member = postfix(primary());
    while (is(Tok::kLParen)) {
      const int at = member->line;
      NodePtr call = make(NodeKind::kCall, at, vec(std::move(member)));
      arguments(*call);
      member = postfix(std::move(call));
    }
    return member;
  }

  // (positional..., name=value...) into n.kids (after what is there) and n.kwargs.
  void arguments(Node& n) {
    expect(Tok::kLParen, "(");
    while (!is(Tok::kRParen)) {
      if (pos_ >= t_.size()) error("an argument list is never closed with )");
      if (is_operator("*") || is_operator("**"))
        error("argument unpacking (* or **) is not supported");
      if (is(Tok::kName) && is(Tok::kEquals, 1)) {
        const std::string key = t_[pos_].value;
        pos_ += 2;
        NodePtr value = expression();
        n.height = std::max(n.height, value->height + 1);
        n.kwargs.emplace_back(key, std::move(value));
      } else {
        if (!n.kwargs.empty()) error("a positional argument after a keyword argument");
        adopt(n, expression());
      }
      if (is(Tok::kComma)) ++pos_;
    }
    ++pos_;
  }

  // .name and [index] / [start:stop:step] after an operand.
  NodePtr postfix(NodePtr object) {
    while (is(Tok::kDot) || is(Tok::kLBracket)) {
      const int at = line();
      if (t_[pos_++].type == Tok::kDot) {
        const std::string name = expect(Tok::kName, "a name after '.'").value;
        NodePtr n = make(NodeKind::kAttribute, at, vec(std::move(object)));
        n->text = name;
        object = std::move(n);
        continue;
      }
      std::vector<NodePtr> parts;  // null: a bound left out
      bool slice = false;
      while (!is(Tok::kRBracket)) {
        if (pos_ >= t_.size()) error("a [ is never closed with ]");
        if (is(Tok::kColon)) {
          parts.push_back(nullptr);
          ++pos_;
          slice = true;
        } else {
          parts.push_back(expression());
          if (is(Tok::kColon)) {
            ++pos_;
            slice = true;
          }
        }
      }
      ++pos_;
      if (parts.empty()) fail(where_, at, "[] needs an index or a slice");
      if (parts.size() > 3 || (!slice && parts.size() > 1))
        fail(where_, at, "a slice has at most start:stop:step");
      NodePtr n = make(slice ? NodeKind::kSlice : NodeKind::kIndex, at, vec(std::move(object)));
      for (NodePtr& p : parts) adopt(*n, std::move(p));
      while (slice && n->kids.size() < 4) n->kids.push_back(nullptr);
      object = std::move(n);
    }
    return object;
  }

  NodePtr literal(Value v, int at) {
    NodePtr n = make(NodeKind::kLiteral, at);
    n->literal = std::move(v);
    return n;
  }

  NodePtr number(const Token& t) {
    if (t.value.find('.') != std::string::npos) {
      double d = 0;
      std::from_chars(t.value.data() + (t.value[0] == '+'), t.value.data() + t.value.size(), d);
      return literal(Value::of(d), t.line);
    }
    int64_t i = 0;
    const char* begin = t.value.data() + (t.value[0] == '+');
    const auto [end, ec] = std::from_chars(begin, t.value.data() + t.value.size(), i);
    if (ec != std::errc() || i > (int64_t{1} << 53) || i < -(int64_t{1} << 53)) {
      fail(where_, t.line, "the integer " + t.value + " is past 2^53 (JavaScript's exact range)");
    }
    return literal(Value::of(i), t.line);
  }

  NodePtr primary() {
    Deeper guard(*this);
    if (pos_ >= t_.size()) error("the template ends inside an expression");
    const Token& t = t_[pos_++];
    switch (t.type) {
      case Tok::kNumber:
        return number(t);
      case Tok::kString: {
        std::string s = t.value;
        while (is(Tok::kString)) s += t_[pos_++].value;  // 'a' 'b' is 'ab'
        return literal(Value::of(std::move(s)), t.line);
      }
      case Tok::kName: {
        if (t.value == "true" || t.value == "True") return literal(Value::of(true), t.line);
        if (t.value == "false" || t.value == "False") return literal(Value::of(false), t.line);
        if (t.value == "none" || t.value == "None") return literal(Value::none(), t.line);
        NodePtr n = make(NodeKind::kName, t.line);
        n->text = t.value;
        return n;
      }
      case Tok::kLParen: {
        NodePtr e = expression_sequence(false);
        expect(Tok::kRParen, ") to close (");
        return e;
      }
      case Tok::kLBracket: {
        NodePtr n = make(NodeKind::kList, t.line);
        while (!is(Tok::kRBracket)) {
          if (pos_ >= t_.size()) error("a [ is never closed with ]");
          adopt(*n, expression());
          if (is(Tok::kComma)) ++pos_;
        }
        ++pos_;
        return n;
      }
      case Tok::kLBrace: {
        NodePtr n = make(NodeKind::kDict, t.line);
        while (!is(Tok::kRBrace)) {
          if (pos_ >= t_.size()) error("a { is never closed with }");
          adopt(*n, expression());
          expect(Tok::kColon, ": between a key and its value");
          adopt(*n, expression());
          if (is(Tok::kComma)) ++pos_;
        }
        ++pos_;
        return n;
      }
      default:
        --pos_;
        error("unexpected " + describe(&t) + " in an expression");
    }
  }

  const std::vector<Token>& t_;
  const std::string& where_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

Body parse(const std::vector<Token>& tokens, const std::string& where) {
  return Parser(tokens, where).program();
}

}  // namespace loraplan::data::jinja
