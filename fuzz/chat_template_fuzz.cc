// A chat template with a conversation: the input is the template's source, then a NUL byte and
// the messages as JSON (without the NUL, or when that JSON does not parse, a fixed conversation).
// Whatever the template does, it must render or be refused with an InputError, within the limits:
// no crash, no hang, no unbounded memory.
#include <nlohmann/json.hpp>
#include <string>

#include "fuzz_support.h"
#include "loraplan/data/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string source = input.substr(0, nul);
  nlohmann::ordered_json messages = nlohmann::ordered_json::parse(
      nul == std::string::npos ? "" : input.substr(nul + 1), nullptr, /*allow_exceptions=*/false);
  if (messages.is_discarded()) {
    messages = nlohmann::ordered_json::parse(
        R"([{"role": "system", "content": " S "}, {"role": "user", "content": "Hi <think>"},
            {"role": "assistant", "content": "<think>\nr\n</think>\n\nA", "n": 2.0}])");
  }
  loraplan::data::ChatVariables vars;
  vars.bos_token = "<s>";
  vars.eos_token = "</s>";
  loraplan::data::ChatTemplateLimits limits;
  limits.max_steps = 200000;
  limits.max_output_bytes = 1 << 20;
  loraplan::fuzz::expect_input_errors_only([&] {
    const auto t = loraplan::data::ChatTemplate::parse(source, "chat_template");
    loraplan::fuzz::expect_input_errors_only([&] { (void)t.render(messages, vars, limits); });
    // The same messages with their keys sorted (a JSON-array dataset).
    const nlohmann::json sorted = nlohmann::json::parse(messages.dump());
    (void)t.render(sorted, vars, limits);
  });
  return 0;
}
