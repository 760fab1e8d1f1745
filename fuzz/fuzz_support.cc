#include "fuzz_support.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "loraplan/planner/inventory.h"
#include "loraplan/planner/json_fields.h"
#include "loraplan/planner/readers.h"

namespace loraplan::fuzz {
namespace {

namespace fs = std::filesystem;

void remove_scratch() {
  std::error_code ec;
  fs::remove_all(scratch_dir(), ec);
}

}  // namespace

const std::string& scratch_dir() {
  // Never destroyed: the atexit handler that removes the directory runs after static destructors
  // registered later than it.
  static const std::string* const dir = [] {
    char name[] = "/tmp/loraplan-fuzz-XXXXXX";
    if (!::mkdtemp(name)) throw std::runtime_error("mkdtemp failed");
    auto* path = new std::string(name);
    std::atexit(remove_scratch);
    return path;
  }();
  return *dir;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string write_scratch(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = scratch_dir() + "/" + name;
  write_file(path, std::string(reinterpret_cast<const char*>(data), size));
  return path;
}

void use_source_profiles() { ::setenv("LORAPLAN_PROFILES", LORAPLAN_SOURCE_DIR "/profiles", 1); }

std::vector<planner::TensorRecord> tiny_tensors(const std::string& profile, planner::DType dtype) {
  const std::string path = LORAPLAN_SOURCE_DIR "/profiles/models/" + profile + ".json";
  nlohmann::json config = nlohmann::json::parse(planner::read_text_file(path));
  // Dimensions small enough that the weights are a few KiB; unknown keys are left as they are.
  const std::pair<const char*, int> kTiny[] = {
      {"vocab_size", 32},       {"hidden_size", 16},        {"intermediate_size", 24},
      {"num_hidden_layers", 2}, {"num_attention_heads", 2}, {"num_key_value_heads", 1},
      {"head_dim", 8}};
  nlohmann::json shrunk = config;
  for (const auto& [key, value] : kTiny) {
    if (shrunk.contains(key)) shrunk[key] = value;
  }
  planner::ModelDesc m;
  try {
    m = planner::parse_config_json(shrunk.dump(), profile);
  } catch (const InputError&) {
    m = planner::parse_config_json(config.dump(), profile);  // a family that will not shrink
  }
  std::vector<planner::TensorRecord> out;
  for (const planner::TensorSpec& s : planner::inventory(m))
    out.push_back({s.name, s.shape, dtype, ""});
  return out;
}

std::string safetensors_bytes(const std::vector<planner::TensorRecord>& tensors) {
  nlohmann::ordered_json header;
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (const planner::TensorRecord& t : tensors) {
    uint64_t bytes = static_cast<uint64_t>(planner::dtype_bytes(t.dtype));
    for (int64_t d : t.shape) bytes *= static_cast<uint64_t>(d);
    header[t.name] = {{"dtype", planner::safetensors_dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  const std::string text = header.dump();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
  return out + text + std::string(offset, '\0');
}

std::string write_shards(const std::string& dir,
                         const std::vector<planner::TensorRecord>& tensors) {
  nlohmann::ordered_json index;
  uint64_t total = 0;
  for (const planner::TensorRecord& t : tensors) {
    uint64_t bytes = static_cast<uint64_t>(planner::dtype_bytes(t.dtype));
    for (int64_t d : t.shape) bytes *= static_cast<uint64_t>(d);
    total += bytes;
  }
  index["metadata"] = {{"total_size", total}};
  const size_t half = tensors.size() / 2;
  const std::vector<planner::TensorRecord> parts[] = {{tensors.begin(), tensors.begin() + half},
                                                      {tensors.begin() + half, tensors.end()}};
  for (int s = 0; s < 2; ++s) {
    const std::string name = "model-0000" + std::to_string(s + 1) + "-of-00002.safetensors";
    for (const planner::TensorRecord& t : parts[s]) index["weight_map"][t.name] = name;
    write_file(dir + "/" + name, safetensors_bytes(parts[s]));
  }
  return index.dump(2) + "\n";
}

}  // namespace loraplan::fuzz
