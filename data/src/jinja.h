#pragma once
// The Jinja subset chat templates are written in: the lexer (jinja_lexer.cc), the parser
// (jinja_parser.cc), the values and the text functions the templates apply to them
// (jinja_values.cc), the renderer (jinja_render.cc) and its filters, methods and tests
// (jinja_filters.cc). data::ChatTemplate (chat_template.h) is the public face. The reference is
// what Hugging Face renders: @huggingface/jinja (transformers.js) and jinja2 (transformers, which
// TRL's SFTTrainer calls); where the two are known to disagree the construct is refused, never
// rendered one way silently.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace loraplan::data::jinja {

// Throws InputError "<where> line N: <message>" (N: the template's 1-based line).
[[noreturn]] void fail(const std::string& where, int line, const std::string& message);

// ---- Tokens ------------------------------------------------------------------------------------

enum class Tok {
  kText,             // template text between tags
  kComment,          // {# ... #} (kept: it changes what {%- strips, as in @huggingface/jinja)
  kOpenStatement,    // {%
  kCloseStatement,   // %}
  kOpenExpression,   // {{
  kCloseExpression,  // }}
  kNumber,           // 12, 1.5, -3 (a sign the lexer read as unary)
  kString,           // a string literal, escapes resolved
  kName,             // identifiers and keywords
  kOperator,         // + - ~ * / // % ** == != < > <= >=
  kUnary,            // + or - not followed by digits, where an operand is expected
  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kLBrace,
  kRBrace,
  kComma,
  kDot,
  kColon,
  kPipe,
  kEquals,
};

struct Token {
  Tok type;
  std::string value;
  int line = 0;  // 1-based, in the template as written
};

// The template's tokens after Hugging Face's preprocessing (one trailing newline dropped,
// lstrip_blocks, trim_blocks, {% generation %} tags removed) and whitespace control.
std::vector<Token> tokenize(const std::string& source, const std::string& where);

// ---- Values ------------------------------------------------------------------------------------

enum class Kind {
  kUndefined,
  kNone,
  kBool,
  kInt,
  kFloat,
  kString,
  kList,
  kDict,
  kNamespace,
  kLoop,
  kFunction
};

struct Value;
struct Dict;
struct Namespace;
struct Loop;
struct Function;
using List = std::vector<Value>;

struct Value {
  Kind kind = Kind::kUndefined;
  bool boolean = false;
  // A JSON number written with a zero fraction ("2.0"): JavaScript reads an integer, Python a
  // float, so printing it (or what is computed from it) is refused.
  bool ambiguous = false;
  int64_t integer = 0;
  double real = 0;
  std::shared_ptr<const std::string> text;
  std::shared_ptr<const List> list;
  std::shared_ptr<const Dict> dict;
  std::shared_ptr<Namespace> ns;  // mutable: {% set ns.attr = ... %}
  std::shared_ptr<const Loop> loop;
  std::shared_ptr<const Function> fn;

  static Value none();
  static Value of(bool b);
  static Value of(int64_t i);
  static Value of(double d);
  static Value of(std::string s);
  static Value of(List l);
  bool is(Kind k) const { return kind == k; }
  const std::string& str() const { return *text; }
};

struct Dict {
  std::vector<std::pair<std::string, Value>> entries;  // in the file's order
  std::unordered_map<std::string, size_t> index;       // key -> entries[i]
  // The order of the keys is not known: read from a nlohmann::json (std::map: sorted), or with a
  // key like "2" (which JavaScript moves first). tojson and items() of it are refused.
  bool order_lost = false;
  const Value* find(const std::string& key) const;
  void add(std::string key, Value v);
};

struct Namespace {
  std::unordered_map<std::string, Value> attributes;
};

// The `loop` of a for loop's iteration.
struct Loop {
  int64_t index0 = 0;
  std::shared_ptr<const List> items;  // what the loop runs over (previtem, nextitem, length)
};

// A global (namespace, raise_exception, range, strftime_now) or a method bound to `self`.
struct Function {
  std::string name;
  Value self;  // undefined for a global
};

// The kind's name in errors ("string", "list", ...).
const char* kind_name(Kind k);
// Whether v counts as true: in {% if %}, `not`, `and`, `or` and | default(x, true).
bool truthy(const Value& v);

// ---- Text functions, as both renderers compute them (jinja_values.cc) ---------------------------

// JavaScript's \s (and what trim() strips): the whitespace of @huggingface/jinja.
bool js_space(char32_t c);
// Each throws std::invalid_argument with the reason when @huggingface/jinja and jinja2 disagree
// on the input (the renderer turns it into an InputError at the template's line).

// str.strip / lstrip / rstrip with `chars` (nullptr: whitespace); `left`/`right` say the sides.
std::string strip(const std::string& s, const std::string* chars, bool left, bool right);
std::vector<std::string> split(const std::string& s, const std::string* sep, int64_t maxsplit);
std::string replace(const std::string& s, const std::string& old_text, const std::string& new_text,
                    int64_t count);
std::string upper(const std::string& s);
std::string lower(const std::string& s);
std::string title(const std::string& s);
std::string capitalize(const std::string& s);
// Code points of s (the `length` filter), refused where JavaScript counts UTF-16 units otherwise.
int64_t length(const std::string& s);
// The i-th code point (negative: from the end); false when out of range.
bool char_at(const std::string& s, int64_t i, std::string& out);
std::vector<std::string> code_points(const std::string& s);
// Whether `needle` occurs in `haystack` (linear time whatever the input).
bool contains(std::string_view haystack, std::string_view needle);

// How {{ x }}, ~ and |string write a value; tojson as transformers' json.dumps writes it.
std::string to_text(const Value& v);
std::string to_json(const Value& v, int indent, int depth = 0);

// ---- Syntax tree -------------------------------------------------------------------------------

enum class NodeKind {
  // Statements
  kText,    // text: written as is
  kOutput,  // {{ kids[0] }}
  kIf,      // kids[0]: the test; body, orelse
  kFor,     // targets in kids[0] [if kids[1]]; body, orelse
  kSet,     // targets (or kids[1], an attribute) = kids[0]; a block set renders `body`
  kBreak,
  kContinue,
  // Expressions
  kLiteral,    // literal
  kName,       // text: the variable
  kList,       // kids
  kTuple,      // kids
  kDict,       // kids: key, value, key, value, ...
  kAttribute,  // kids[0].text
  kIndex,      // kids[0][kids[1]]
  kSlice,      // kids[0][kids[1]:kids[2]:kids[3]] (null: absent)
  kCall,       // kids[0](kids[1..], kwargs)
  kFilter,     // kids[0] | text(kids[1..], kwargs); `called`: written with parentheses
  kTest,       // kids[0] is [not] text
  kUnary,      // text: "not", "-" or "+"; kids[0]
  kBinary,     // kids[0] text kids[1]; text: an operator, "in", "not in", "and", "or"
  kTernary,    // kids[1] if kids[0] else kids[2] (kids[2] null: no else)
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using Body = std::vector<NodePtr>;

struct Node {
  NodeKind kind;
  int line = 0;
  std::string text;
  Value literal;
  std::vector<NodePtr> kids;
  std::vector<std::pair<std::string, NodePtr>> kwargs;
  std::vector<std::string> targets;  // for / set names
  Body body, orelse;
  bool negate = false;  // kTest: `is not`
  bool called = false;  // kFilter: `| f(...)` rather than `| f`
  int height = 1;       // of the expression tree below: bounds the renderer's recursion
};

// The program; throws InputError naming the construct and its line for anything outside the
// subset (unknown statements, filters, tests; macros; chained comparisons).
Body parse(const std::vector<Token>& tokens, const std::string& where);

// ---- Rendering ---------------------------------------------------------------------------------

struct Limits {
  int64_t max_steps;         // nodes evaluated + loop iterations + bytes built / 64
  int64_t max_output_bytes;  // the rendered text, and any one string the template builds
};

std::string render(const Body& program, const std::vector<std::pair<std::string, Value>>& globals,
                   const Limits& limits, const std::string& where);

}  // namespace loraplan::data::jinja
