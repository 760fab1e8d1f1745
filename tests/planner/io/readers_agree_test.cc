// The same tiny model written as config.json, as safetensors and as ONNX reads back as the same
// inventory: every tensor name, shape, dtype, role and layer.
#include <gtest/gtest.h>

#include "fixtures/model_files.h"
#include "fixtures/onnx_writer.h"
#include "loraplan/planner/inventory.h"
#include "loraplan/planner/model_loader.h"

namespace loraplan::planner {
namespace {

using loraplan::testing::TempDir;

void expect_same_inventory(const ModelDesc& a, const ModelDesc& b, const std::string& what) {
  const std::vector<TensorSpec> x = inventory(a), y = inventory(b);
  ASSERT_EQ(x.size(), y.size()) << what;
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(x[i].name, y[i].name) << what;
    EXPECT_EQ(x[i].shape, y[i].shape) << what << " " << x[i].name;
    EXPECT_EQ(x[i].dtype, y[i].dtype) << what << " " << x[i].name;
    EXPECT_EQ(x[i].role, y[i].role) << what << " " << x[i].name;
    EXPECT_EQ(x[i].layer, y[i].layer) << what << " " << x[i].name;
  }
}

class ReadersAgree : public ::testing::TestWithParam<const char*> {};

TEST_P(ReadersAgree, ConfigSafetensorsAndOnnx) {
  const ModelDesc profile = load_model(GetParam());
  const std::vector<TensorRecord> records = loraplan::testing::records_of(profile);

  TempDir config_dir, st_dir, onnx_dir, all_dir;
  loraplan::testing::write_text(config_dir.file("config.json"),
                                loraplan::testing::config_json_text(profile));
  loraplan::testing::write_safetensors(st_dir.file("model.safetensors"), records);
  loraplan::testing::write_onnx_model(onnx_dir.file("model.onnx"), records);
  // All three side by side: config.json describes, both weight files are checked against it.
  loraplan::testing::write_text(all_dir.file("config.json"),
                                loraplan::testing::config_json_text(profile));
  loraplan::testing::write_safetensors(all_dir.file("model.safetensors"), records);
  loraplan::testing::write_onnx_model(all_dir.file("model.onnx"), records,
                                      {.external_data = true, .location = {}});

  const ModelDesc from_config = load_model(config_dir.file("config.json"));
  const ModelDesc from_safetensors = load_model(st_dir.path());
  const ModelDesc from_onnx = load_model(onnx_dir.file("model.onnx"));
  const ModelDesc with_config = load_model(all_dir.file("model.onnx"));

  expect_same_inventory(profile, from_config, "config.json");
  expect_same_inventory(profile, from_safetensors, "safetensors");
  expect_same_inventory(profile, from_onnx, "onnx");
  expect_same_inventory(profile, with_config, "onnx + config.json");
  EXPECT_EQ(total_params(inventory(from_onnx)), total_params(inventory(profile)));

  // A config.json pins the head split; weights alone agree with each other.
  EXPECT_EQ(from_config.heads, profile.heads);
  EXPECT_EQ(with_config.heads, profile.heads);
  EXPECT_EQ(with_config.head_dim, profile.head_dim);
  EXPECT_EQ(from_safetensors.heads, from_onnx.heads);
  EXPECT_EQ(from_safetensors.family, from_onnx.family);
  EXPECT_EQ(from_onnx.family, profile.family);
}

INSTANTIATE_TEST_SUITE_P(TinyModels, ReadersAgree,
                         ::testing::Values("tiny-llama", "tiny-qwen2", "tiny-qwen3", "tiny-phi3",
                                           "tiny-gemma2", "tiny-llama-256"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return n;
                         });

}  // namespace
}  // namespace loraplan::planner
