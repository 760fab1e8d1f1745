// safetensors headers: 8-byte little-endian length N, N bytes of JSON, then the data section.
// Only the header is read; the byte ranges it declares are checked against the file size.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "loraplan/planner/errors.h"
#include "loraplan/planner/json_fields.h"
#include "loraplan/planner/paths.h"
#include "loraplan/planner/readers.h"

namespace loraplan::planner {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // safetensors' MAX_HEADER_SIZE

struct Range {
  uint64_t begin, end;  // bytes, relative to the data section
  const std::string* name;
};

// One entry of the header: {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}.
TensorRecord read_entry(const std::string& name, const json& e, uint64_t data_start,
                        uint64_t data_bytes, const std::string& path, std::vector<Range>& ranges) {
  auto fail = [&](const std::string& msg) {
    throw InputError(located(path, 0, "tensor \"" + name + "\": " + msg));
  };
  if (!e.is_object()) fail("entry must be an object");
  TensorRecord t;
  t.name = name;
  t.file = path;
  if (!e.contains("dtype") || !e["dtype"].is_string()) fail("\"dtype\" missing or not a string");
  const std::optional<DType> dtype = parse_safetensors_dtype(e["dtype"].get<std::string>());
  if (!dtype) fail("unknown dtype " + json_excerpt(e["dtype"]));
  t.dtype = *dtype;
  if (!e.contains("shape") || !e["shape"].is_array()) fail("\"shape\" missing or not a list");
  int64_t need = dtype_bytes(t.dtype);
  for (const json& d : e["shape"]) {
    if (!d.is_number_unsigned())
      fail("\"shape\" " + json_excerpt(e["shape"]) + " must hold non-negative integers");
    const uint64_t dim = d.get<uint64_t>();
    if (dim > static_cast<uint64_t>(INT64_MAX) ||
        __builtin_mul_overflow(need, static_cast<int64_t>(dim), &need)) {
      fail("shape " + json_excerpt(e["shape"]) + " x " + e["dtype"].get<std::string>() +
           " does not fit in 2^63 bytes");
    }
    t.shape.push_back(static_cast<int64_t>(dim));
  }
  const json& off = e.contains("data_offsets") ? e["data_offsets"] : json();
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
      !off[1].is_number_unsigned()) {
    fail("\"data_offsets\" must be [begin, end]");
  }
  const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
  if (begin > end) fail("data_offsets " + json_excerpt(off) + " end before they begin");
  if (end > data_bytes) {
    fail("data_offsets " + json_excerpt(off) + " run past the end of the data section (" +
         std::to_string(data_bytes) + " bytes)");
  }
  if (end - begin != static_cast<uint64_t>(need)) {
    fail("shape " + json_excerpt(e["shape"]) + " x " + e["dtype"].get<std::string>() + " needs " +
         std::to_string(need) + " bytes, data_offsets " + json_excerpt(off) + " hold " +
         std::to_string(end - begin));
  }
  t.offset = data_start + begin;
  ranges.push_back({begin, end, nullptr});
  return t;
}

std::vector<TensorRecord> read_one_file(const std::string& path) {
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  if (ec) throw InputError(located(path, 0, "cannot open: " + ec.message()));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(located(path, 0, "cannot open"));
  if (size < 8) {
    throw InputError(located(
        path, 0,
        "file of " + std::to_string(size) + " bytes is too small for a safetensors header"));
  }
  unsigned char len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > kMaxHeaderBytes || header_len > size - 8) {
    throw InputError(located(path, 0,
                             "header length " + std::to_string(header_len) +
                                 " at byte offset 0 runs past the end of the file (" +
                                 std::to_string(size) + " bytes)"));
  }
  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  if (!in) throw InputError(located(path, 0, "cannot read the header"));
  const json j = parse_json(header, path, "JSON header");
  if (!j.is_object()) throw InputError(located(path, 0, "header must be a JSON object"));

  const uint64_t data_bytes = size - 8 - header_len;
  std::vector<TensorRecord> tensors;
  std::vector<Range> ranges;
  for (const auto& [name, entry] : j.items()) {
    if (name == "__metadata__") continue;
    tensors.push_back(read_entry(name, entry, 8 + header_len, data_bytes, path, ranges));
  }
  for (size_t i = 0; i < ranges.size(); ++i) ranges[i].name = &tensors[i].name;
  // Stable order so the reported pair does not depend on the header's key order.
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : *a.name < *b.name;
  });
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].begin < ranges[i - 1].end) {
      throw InputError(located(path, 0,
                               "tensors \"" + *ranges[i - 1].name + "\" and \"" + *ranges[i].name +
                                   "\" overlap at data offset " + std::to_string(ranges[i].begin)));
    }
  }
  return tensors;
}

std::vector<TensorRecord> read_index(const std::string& path) {
  const std::string text = read_text_file(path);
  const json j = parse_json(text, path, "JSON index");
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
    throw InputError(located(path, 0, "\"weight_map\" missing or not an object"));
  }
  const json& weight_map = j["weight_map"];
  if (weight_map.empty())
    throw InputError(
        located(path, json_key_line(text, "weight_map"), "\"weight_map\" names no tensors"));
  const fs::path dir = fs::path(path).parent_path();
  std::map<std::string, std::string> shards;  // as the index names it -> path inside dir
  for (const auto& [name, shard] : weight_map.items()) {
    auto fail = [&](const std::string& msg) {
      throw InputError(located(path, json_key_line(text, name),
                               "weight_map " + json_excerpt(json(name)) + ": " + msg));
    };
    if (!shard.is_string()) fail("must name a shard file, got " + json_excerpt(shard));
    const std::string& file = shard.get_ref<const std::string&>();
    const std::optional<fs::path> inside = path_inside(dir, file);
    if (!inside) fail("shard " + json_excerpt(shard) + " is not a file inside the model's folder");
    shards.emplace(file, inside->string());
  }
  std::vector<TensorRecord> all;
  for (const auto& [shard, shard_path] : shards) {
    std::error_code ec;
    if (!fs::exists(shard_path, ec))
      throw InputError(located(path, 0, "shard \"" + shard + "\" not found"));
    std::vector<TensorRecord> part = read_one_file(shard_path);
    all.insert(all.end(), std::make_move_iterator(part.begin()),
               std::make_move_iterator(part.end()));
  }
  std::set<std::pair<std::string, std::string>> stored;  // (tensor, shard path)
  for (const TensorRecord& t : all) stored.emplace(t.name, t.file);
  for (const auto& [name, shard] : weight_map.items()) {
    if (!stored.count({name, shards.at(shard.get<std::string>())})) {
      throw InputError(located(
          path, 0,
          "tensor \"" + name + "\" is not in its shard \"" + shard.get<std::string>() + "\""));
    }
  }
  return all;
}

}  // namespace

std::vector<TensorRecord> read_safetensors_tensors(const std::string& path) {
  if (path.ends_with(".index.json")) return read_index(path);
  return read_one_file(path);
}

}  // namespace loraplan::planner
