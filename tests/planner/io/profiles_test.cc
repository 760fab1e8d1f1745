// Every reference model profile reproduces the published exact parameter count
// (shared reference models.json, param_count.computed_exact_total).
#include <gtest/gtest.h>

#include "loraplan/planner/inventory.h"
#include "loraplan/planner/model_loader.h"

namespace loraplan::planner {
namespace {

struct Reference {
  const char* profile;
  const char* hf_id;
  int64_t params;
};

constexpr Reference kReferences[] = {
    {"phi-4-mini-instruct", "microsoft/Phi-4-mini-instruct", 3836021760},
    {"phi-3-mini-4k-instruct", "microsoft/Phi-3-mini-4k-instruct", 3821079552},
    {"llama-3.2-1b", "meta-llama/Llama-3.2-1B", 1235814400},
    {"llama-3.2-3b", "meta-llama/Llama-3.2-3B", 3212749824},
    {"llama-3.1-8b", "meta-llama/Llama-3.1-8B", 8030261248},
    {"llama-2-7b-hf", "meta-llama/Llama-2-7b-hf", 6738415616},
    {"mistral-7b-v0.3", "mistralai/Mistral-7B-v0.3", 7248023552},
    {"qwen2.5-0.5b", "Qwen/Qwen2.5-0.5B", 494032768},
    {"qwen2.5-1.5b", "Qwen/Qwen2.5-1.5B", 1543714304},
    {"qwen2.5-7b", "Qwen/Qwen2.5-7B", 7615616512},
    {"qwen3-8b", "Qwen/Qwen3-8B", 8190735360},
    {"gemma-2-2b", "google/gemma-2-2b", 2614341888},
    {"gemma-2-9b", "google/gemma-2-9b", 9241705984},
    {"tinyllama-1.1b-chat-v1.0", "TinyLlama/TinyLlama-1.1B-Chat-v1.0", 1100048384},
    {"smollm2-135m", "HuggingFaceTB/SmolLM2-135M", 134515008},
    {"smollm2-360m", "HuggingFaceTB/SmolLM2-360M", 361821120},
    {"smollm2-1.7b", "HuggingFaceTB/SmolLM2-1.7B", 1711376384},
};

class ReferenceCount : public ::testing::TestWithParam<Reference> {};

TEST_P(ReferenceCount, ExactTotal) {
  const Reference& r = GetParam();
  const ModelDesc m = load_model(r.profile);
  EXPECT_EQ(m.hf_id, r.hf_id);
  EXPECT_EQ(total_params(inventory(m)), r.params);
}

INSTANTIATE_TEST_SUITE_P(Profiles, ReferenceCount, ::testing::ValuesIn(kReferences),
                         [](const auto& info) {
                           std::string name = info.param.profile;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

TEST(Profiles, EveryModelProfileLoads) {
  const std::vector<std::string> names = profile_names("models");
  EXPECT_GE(names.size(), 17u + 5u);
  for (const std::string& name : names) {
    const ModelDesc m = load_model(name);
    EXPECT_GT(total_params(inventory(m)), 0) << name;
  }
}

TEST(Profiles, GemmaTwoNonEmbeddingMatchesThePaper) {
  // Gemma 2 paper: 2,024,517,888 and 8,324,201,984 non-embedding parameters.
  for (auto [name, expected] : {std::pair{"gemma-2-2b", int64_t{2024517888}},
                                std::pair{"gemma-2-9b", int64_t{8324201984}}}) {
    const ModelDesc m = load_model(name);
    EXPECT_EQ(total_params(inventory(m)) - m.vocab * m.hidden, expected) << name;
  }
}

}  // namespace
}  // namespace loraplan::planner
