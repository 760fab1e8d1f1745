#include <gtest/gtest.h>

#include <fstream>

#include "fixtures/model_files.h"
#include "loraplan/planner/errors.h"
#include "loraplan/planner/inventory.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/planner/readers.h"

namespace loraplan::planner {
namespace {

using loraplan::testing::TempDir;

std::string error_of(const std::string& path) {
  try {
    read_safetensors_tensors(path);
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Safetensors, ReadsNamesShapesAndDtypes) {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  loraplan::testing::write_safetensors(
      path, {{"a", {2, 3}, DType::kBF16, ""}, {"b", {4}, DType::kF32, ""}});
  const std::vector<TensorRecord> t = read_safetensors_tensors(path);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].name, "a");
  EXPECT_EQ(t[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t[0].dtype, DType::kBF16);
  EXPECT_EQ(t[0].file, path);
  EXPECT_EQ(t[1].dtype, DType::kF32);
  // Byte offsets in the file: after the 8-byte length and the JSON header; "a" holds 12 bytes.
  std::ifstream in(path, std::ios::binary);
  uint64_t header = 0;
  in.read(reinterpret_cast<char*>(&header), 8);  // little-endian, as this machine
  EXPECT_EQ(t[0].offset, 8 + header);
  EXPECT_EQ(t[1].offset, 8 + header + 12);
}

TEST(Safetensors, BadFiles) {
  TempDir dir;
  const std::string p = dir.file("bad.safetensors");
  using loraplan::testing::write_safetensors_raw;

  loraplan::testing::write_text(p, "abc");
  EXPECT_EQ(error_of(p), p + ": file of 3 bytes is too small for a safetensors header");

  loraplan::testing::write_text(p, std::string("\xff\xff\x00\x00\x00\x00\x00\x00{}", 10));
  EXPECT_EQ(error_of(p),
            p + ": header length 65535 at byte offset 0 runs past the end of the file (10 bytes)");

  write_safetensors_raw(p, R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}})",
                        8);
  EXPECT_EQ(
      error_of(p),
      p + ": tensor \"w\": data_offsets [0,16] run past the end of the data section (8 bytes)");

  write_safetensors_raw(p, R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}})",
                        16);
  EXPECT_EQ(error_of(p),
            p + ": tensor \"w\": shape [2,2] x F32 needs 16 bytes, data_offsets [0,12] hold 12");

  write_safetensors_raw(p, R"({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                               "y": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                        12);
  EXPECT_EQ(error_of(p), p + ": tensors \"x\" and \"y\" overlap at data offset 4");

  write_safetensors_raw(p, R"({"w": {"dtype": "Q8", "shape": [2], "data_offsets": [0, 2]}})", 2);
  EXPECT_EQ(error_of(p), p + ": tensor \"w\": unknown dtype \"Q8\"");

  write_safetensors_raw(p, R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", 8);
  EXPECT_EQ(error_of(p), p + ": tensor \"w\": data_offsets [8,0] end before they begin");

  write_safetensors_raw(p, R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", 8);
  EXPECT_EQ(error_of(p), p + ": tensor \"w\": \"shape\" [-2] must hold non-negative integers");

  write_safetensors_raw(p, R"({"w": )", 0);
  EXPECT_EQ(error_of(p),
            p + ": malformed JSON header: parse error at line 1, column 7: syntax error "
                "while parsing value - unexpected end of input; expected '[', '{', or a literal");

  EXPECT_EQ(error_of(dir.file("missing.safetensors")),
            dir.file("missing.safetensors") + ": cannot open: No such file or directory");
}

TEST(Safetensors, ShardedIndex) {
  TempDir dir;
  const ModelDesc m = load_model("tiny-llama");
  loraplan::testing::write_sharded_safetensors(dir.path(), loraplan::testing::records_of(m), 3);
  const std::vector<TensorRecord> t =
      read_safetensors_tensors(dir.file("model.safetensors.index.json"));
  EXPECT_EQ(t.size(), inventory(m).size());
  const ModelDesc from_dir = load_model(dir.path());
  EXPECT_EQ(total_params(inventory(from_dir)), 125248);
  EXPECT_EQ(from_dir.dtype, DType::kF32);

  // An index naming a tensor its shard does not hold.
  loraplan::testing::write_text(
      dir.file("model.safetensors.index.json"),
      R"({"weight_map": {"ghost.weight": "model-00001-of-00003.safetensors"}})");
  EXPECT_EQ(
      error_of(dir.file("model.safetensors.index.json")),
      dir.file("model.safetensors.index.json") +
          ": tensor \"ghost.weight\" is not in its shard \"model-00001-of-00003.safetensors\"");
  loraplan::testing::write_text(dir.file("model.safetensors.index.json"),
                                R"({"weight_map": {"a": "model-00009-of-00009.safetensors"}})");
  EXPECT_EQ(error_of(dir.file("model.safetensors.index.json")),
            dir.file("model.safetensors.index.json") +
                ": shard \"model-00009-of-00009.safetensors\" not found");
}

TEST(Safetensors, ConfigBesideWeightsMustDescribeThem) {
  TempDir dir;
  ModelDesc m = load_model("tiny-llama");
  loraplan::testing::write_safetensors(dir.file("model.safetensors"),
                                       loraplan::testing::records_of(m));
  m.intermediate = 180;  // config.json disagrees with the weights
  loraplan::testing::write_text(dir.file("config.json"), loraplan::testing::config_json_text(m));
  try {
    load_model(dir.path());
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()),
              dir.path() +
                  ": tensor \"model.layers.0.mlp.gate_proj.weight\" has shape [176, 64], "
                  "the model description expects [180, 64]");
  }
}

TEST(Safetensors, WeightsAloneDescribeTheModel) {
  for (const char* name : {"tiny-llama", "tiny-qwen2", "tiny-qwen3", "tiny-phi3", "tiny-gemma2"}) {
    TempDir dir;
    const ModelDesc m = load_model(name);
    loraplan::testing::write_safetensors(dir.file("model.safetensors"),
                                         loraplan::testing::records_of(m));
    const ModelDesc read = load_model(dir.file("model.safetensors"));
    EXPECT_EQ(read.family, m.family) << name;
    EXPECT_EQ(read.layers, m.layers) << name;
    EXPECT_EQ(read.intermediate, m.intermediate) << name;
    EXPECT_EQ(read.tied_embeddings, m.tied_embeddings) << name;
    EXPECT_EQ(read.q_out(), m.q_out()) << name;
    EXPECT_EQ(read.kv_out(), m.kv_out()) << name;
    EXPECT_EQ(total_params(inventory(read)), total_params(inventory(m))) << name;
  }
}

TEST(Safetensors, WeightsBehindAModelSpec) {
  TempDir dir;
  const ModelDesc m = load_model("tiny-llama");
  loraplan::testing::write_sharded_safetensors(dir.path(), loraplan::testing::records_of(m), 2);
  const WeightFiles sharded = safetensors_weights(dir.path());
  EXPECT_EQ(sharded.source, dir.path());
  ASSERT_EQ(sharded.tensors.size(), inventory(m).size());
  EXPECT_EQ(sharded.tensors.back().file, dir.file("model-00002-of-00002.safetensors"));
  const WeightFiles index = safetensors_weights(dir.file("model.safetensors.index.json"));
  EXPECT_EQ(index.source, dir.file("model.safetensors.index.json"));
  EXPECT_EQ(index.tensors.size(), sharded.tensors.size());
  // Profiles and config.json carry no weights: the executor uses seeded random ones.
  EXPECT_TRUE(safetensors_weights("tiny-llama").source.empty());
  EXPECT_TRUE(safetensors_weights("tiny-llama").tensors.empty());
}

}  // namespace
}  // namespace loraplan::planner
