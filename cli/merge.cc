#include "merge.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "loraplan/planner/errors.h"
#include "loraplan/planner/readers.h"

namespace loraplan::cli {
namespace {

namespace fs = std::filesystem;
using planner::DType;
using planner::TensorRecord;

// Files beside the weights that a served model needs, copied as they are.
constexpr const char* kSideFiles[] = {"config.json",
                                      "generation_config.json",
                                      "tokenizer.json",
                                      "tokenizer_config.json",
                                      "special_tokens_map.json",
                                      "tokenizer.model",
                                      "vocab.json",
                                      "merges.txt",
                                      "added_tokens.json",
                                      "chat_template.jinja",
                                      "chat_template.json"};

uint32_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}
float float_of(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// bf16 and fp16 to and from fp32, rounding to nearest even as PyTorch's casts do.
float from_bf16(uint16_t h) { return float_of(static_cast<uint32_t>(h) << 16); }
uint16_t to_bf16(float f) {
  const uint32_t b = bits_of(f);
  if (std::isnan(f)) return static_cast<uint16_t>((b >> 16) | 0x40);  // a quiet NaN
  return static_cast<uint16_t>((b + 0x7fff + ((b >> 16) & 1)) >> 16);
}
float from_fp16(uint16_t h) {
  _Float16 x;
  std::memcpy(&x, &h, 2);
  return static_cast<float>(x);
}
uint16_t to_fp16(float f) {
  const _Float16 x = static_cast<_Float16>(f);
  uint16_t h;
  std::memcpy(&h, &x, 2);
  return h;
}

// `n` elements of `dtype` at `bytes` as fp32, and back.
void to_float(DType dtype, const char* bytes, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    switch (dtype) {
      case DType::kBF16:
        std::memcpy(&h, bytes + 2 * i, 2);
        out[i] = from_bf16(h);
        break;
      case DType::kF16:
        std::memcpy(&h, bytes + 2 * i, 2);
        out[i] = from_fp16(h);
        break;
      default:
        std::memcpy(out + i, bytes + 4 * i, 4);
    }
  }
}
void from_float(DType dtype, const float* in, int64_t n, char* bytes) {
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    switch (dtype) {
      case DType::kBF16:
        h = to_bf16(in[i]);
        std::memcpy(bytes + 2 * i, &h, 2);
        break;
      case DType::kF16:
        h = to_fp16(in[i]);
        std::memcpy(bytes + 2 * i, &h, 2);
        break;
      default:
        std::memcpy(bytes + 4 * i, in + i, 4);
    }
  }
}

bool floating(DType d) { return d == DType::kBF16 || d == DType::kF16 || d == DType::kF32; }

void read_at(std::ifstream& in, uint64_t offset, char* dst, uint64_t n, const std::string& file) {
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(dst, static_cast<std::streamsize>(n));
  if (!in) throw InputError(file + ": ends before byte " + std::to_string(offset + n));
}

// A LoRA pair of the adapter, read whole as fp32 (A [r, in], B [out, r]: small beside W).
struct Pair {
  const TensorRecord* a = nullptr;
  const TensorRecord* b = nullptr;
};

std::vector<float> read_floats(const TensorRecord& t) {
  int64_t n = 1;
  for (int64_t d : t.shape) n *= d;
  std::vector<char> bytes(static_cast<size_t>(n * planner::dtype_bytes(t.dtype)));
  std::ifstream in(t.file, std::ios::binary);
  read_at(in, t.offset, bytes.data(), bytes.size(), t.file);
  std::vector<float> out(static_cast<size_t>(n));
  to_float(t.dtype, bytes.data(), n, out.data());
  return out;
}

// "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" -> the base weight's name
// and which half; false for anything else.
bool lora_name(const std::string& name, std::string& base, char& half) {
  constexpr std::string_view kPrefix = "base_model.model.";
  std::string n = name.starts_with(kPrefix) ? name.substr(kPrefix.size()) : name;
  for (const char h : {'A', 'B'}) {
    const std::string suffix = std::string(".lora_") + h + ".weight";
    if (n.ends_with(suffix)) {
      base = n.substr(0, n.size() - suffix.size()) + ".weight";
      half = h;
      return true;
    }
  }
  return false;
}

struct AdapterConfig {
  int64_t rank = 0;
  double scale = 0;  // alpha / r, or alpha / sqrt(r) with rsLoRA
  std::string base_model;
};

AdapterConfig read_adapter_config(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw InputError("--adapter: " + path.string() + ": no such file");
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  const std::string where = path.string();
  if (j.is_discarded() || !j.is_object()) throw InputError(where + ": not a JSON object");
  auto fail = [&](const std::string& key, const std::string& msg) {
    throw InputError(where + ": " + key + ": " + msg);
  };
  if (j.value("peft_type", std::string("LORA")) != "LORA")
    fail("peft_type", "\"" + j["peft_type"].get<std::string>() + "\" is not LORA");
  if (!j.contains("r") || !j["r"].is_number_integer() || j["r"].get<int64_t>() <= 0)
    fail("r", "missing or not a positive integer");
  if (!j.contains("lora_alpha") || !j["lora_alpha"].is_number())
    fail("lora_alpha", "missing or not a number");
  if (j.value("use_dora", false)) fail("use_dora", "DoRA adapters are not merged by loraplan");
  if (j.value("fan_in_fan_out", false))
    fail("fan_in_fan_out", "Conv1D-style (GPT-2) weights are not merged by loraplan");
  for (const char* k : {"rank_pattern", "alpha_pattern"}) {
    if (j.contains(k) && j[k].is_object() && !j[k].empty())
      fail(k, "per-module ranks and alphas are not merged by loraplan");
  }
  if (j.contains("modules_to_save") && j["modules_to_save"].is_array() &&
      !j["modules_to_save"].empty())
    fail("modules_to_save", "fully trained modules beside LoRA are not merged by loraplan");
  AdapterConfig c;
  c.rank = j["r"].get<int64_t>();
  const double alpha = j["lora_alpha"].get<double>();
  c.scale = j.value("use_rslora", false) ? alpha / std::sqrt(static_cast<double>(c.rank))
                                         : alpha / static_cast<double>(c.rank);
  if (j.contains("base_model_name_or_path") && j["base_model_name_or_path"].is_string())
    c.base_model = j["base_model_name_or_path"].get<std::string>();
  return c;
}

// The folder holding adapter_config.json: the one given, or its adapter/ folder.
fs::path adapter_folder(const std::string& dir) {
  const fs::path d(dir);
  std::error_code ec;
  if (fs::is_regular_file(d / "adapter_config.json", ec)) return d;
  if (fs::is_regular_file(d / "adapter" / "adapter_config.json", ec)) return d / "adapter";
  throw InputError("--adapter: " + dir +
                   ": holds no adapter_config.json (a train --out folder "
                   "or a PEFT adapter folder)");
}

// W's rows with s * B A added, read and written `rows` at a time.
void write_merged(std::ifstream& in, std::ofstream& out, const TensorRecord& w,
                  const std::vector<float>& a, const std::vector<float>& b, int64_t r,
                  double scale) {
  const int64_t rows = w.shape[0], cols = w.shape[1];
  const int64_t esize = planner::dtype_bytes(w.dtype);
  std::vector<char> bytes(static_cast<size_t>(cols * esize));
  std::vector<float> row(static_cast<size_t>(cols));
  const float s = static_cast<float>(scale);
  for (int64_t o = 0; o < rows; ++o) {
    read_at(in, w.offset + static_cast<uint64_t>(o * cols * esize), bytes.data(), bytes.size(),
            w.file);
    to_float(w.dtype, bytes.data(), cols, row.data());
    for (int64_t k = 0; k < r; ++k) {
      const float bk = s * b[static_cast<size_t>(o * r + k)];
      const float* ak = a.data() + k * cols;
      for (int64_t i = 0; i < cols; ++i) row[static_cast<size_t>(i)] += bk * ak[i];
    }
    from_float(w.dtype, row.data(), cols, bytes.data());
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
}

void copy_bytes(std::ifstream& in, std::ofstream& out, uint64_t offset, uint64_t n,
                const std::string& file) {
  constexpr uint64_t kChunk = 16u << 20;
  std::vector<char> buf(static_cast<size_t>(std::min(n, kChunk)));
  for (uint64_t done = 0; done < n;) {
    const uint64_t k = std::min(kChunk, n - done);
    read_at(in, offset + done, buf.data(), k, file);
    out.write(buf.data(), static_cast<std::streamsize>(k));
    done += k;
  }
}

}  // namespace

MergeResult merge_adapter(const std::string& model_dir, const std::string& adapter_dir,
                          const std::string& out_dir) {
  std::error_code ec;
  const fs::path model(model_dir);
  if (!fs::is_directory(model, ec))
    throw InputError("--model: " + model_dir + ": not a folder (merge reads a model folder)");
  const fs::path index = model / "model.safetensors.index.json";
  const fs::path single = model / "model.safetensors";
  const bool sharded = fs::is_regular_file(index, ec);
  if (!sharded && !fs::is_regular_file(single, ec))
    throw InputError("--model: " + model_dir +
                     ": holds neither model.safetensors nor model.safetensors.index.json");
  const std::vector<TensorRecord> base =
      planner::read_safetensors_tensors((sharded ? index : single).string());

  const fs::path adir = adapter_folder(adapter_dir);
  const AdapterConfig cfg = read_adapter_config(adir / "adapter_config.json");
  const fs::path adapter_file = adir / "adapter_model.safetensors";
  if (!fs::is_regular_file(adapter_file, ec))
    throw InputError("--adapter: " + adapter_file.string() + ": no such file");
  const std::vector<TensorRecord> lora = planner::read_safetensors_tensors(adapter_file.string());

  // Every adapter tensor is half of a pair on a base weight of matching shape.
  std::map<std::string, Pair> pairs;
  for (const TensorRecord& t : lora) {
    std::string name;
    char half = 0;
    const std::string where = adapter_file.string() + ": " + t.name;
    if (!lora_name(t.name, name, half))
      throw InputError(where + ": not a LoRA A or B weight (loraplan merges LoRA adapters only)");
    if (t.shape.size() != 2 || !floating(t.dtype))
      throw InputError(where + ": expected a 2-d bf16, fp16 or fp32 tensor");
    (half == 'A' ? pairs[name].a : pairs[name].b) = &t;
  }
  if (pairs.empty())
    throw InputError("--adapter: " + adapter_file.string() + ": holds no LoRA weights");
  std::map<std::string, const TensorRecord*> by_name;
  for (const TensorRecord& t : base) by_name[t.name] = &t;
  for (const auto& [name, p] : pairs) {
    const std::string where = adapter_file.string() + ": " + name;
    if (!p.a || !p.b) throw InputError(where + ": has lora_" + (p.a ? "A" : "B") + " only");
    const auto it = by_name.find(name);
    if (it == by_name.end())
      throw InputError(where + ": the model in " + model_dir + " has no such weight");
    const TensorRecord& w = *it->second;
    const int64_t r = p.a->shape[0];
    if (w.shape.size() != 2 || p.a->shape[1] != w.shape[1] || p.b->shape[0] != w.shape[0] ||
        p.b->shape[1] != r || r != cfg.rank) {
      throw InputError(
          where + ": lora_A [" + std::to_string(p.a->shape[0]) + ", " +
          std::to_string(p.a->shape[1]) + "] and lora_B [" + std::to_string(p.b->shape[0]) + ", " +
          std::to_string(p.b->shape[1]) + "] do not fit the weight [" +
          (w.shape.size() == 2 ? std::to_string(w.shape[0]) + ", " + std::to_string(w.shape[1])
                               : std::string("not 2-d")) +
          "] at rank " + std::to_string(cfg.rank));
    }
    if (!floating(w.dtype)) {
      throw InputError(w.file + ": " + name + " is " + std::string(planner::dtype_name(w.dtype)) +
                       "; merge needs bf16, fp16 or fp32 base weights");
    }
  }

  // The output folder: new or empty, written beside it and renamed into place.
  const fs::path out(out_dir);
  if (out_dir.empty()) throw InputError("-o: empty; give the merged model's folder");
  if (fs::exists(out, ec) && (!fs::is_directory(out, ec) || !fs::is_empty(out, ec)))
    throw InputError("-o: " + out_dir + " exists and is not an empty folder; give a new folder");
  const fs::path parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
  if (!fs::is_directory(parent, ec))
    throw InputError("-o: " + parent.string() + ": no such folder");
  const fs::path tmp =
      parent / ("." + out.filename().string() + ".partial-" + std::to_string(::getpid()));
  fs::remove_all(tmp, ec);
  fs::create_directory(tmp);

  MergeResult result;
  try {
    // Shards in the input's layout: the header as it is (same names, dtypes and shapes), then
    // each tensor's bytes, merged or copied.
    std::map<std::string, std::vector<const TensorRecord*>> shards;
    for (const TensorRecord& t : base) shards[t.file].push_back(&t);
    for (auto& [file, tensors] : shards) {
      std::sort(tensors.begin(), tensors.end(),
                [](const TensorRecord* x, const TensorRecord* y) { return x->offset < y->offset; });
      std::ifstream in(file, std::ios::binary);
      const fs::path dst = tmp / fs::path(file).filename();
      std::ofstream o(dst, std::ios::binary);
      if (!o) throw InputError("-o: cannot write " + dst.string());
      uint64_t pos = 0;
      const uint64_t data_start = tensors.empty() ? fs::file_size(file) : tensors.front()->offset;
      copy_bytes(in, o, 0, data_start, file);  // length and JSON header
      pos = data_start;
      for (const TensorRecord* t : tensors) {
        if (t->offset > pos) copy_bytes(in, o, pos, t->offset - pos, file);
        int64_t n = planner::dtype_bytes(t->dtype);
        for (int64_t d : t->shape) n *= d;
        const auto p = pairs.find(t->name);
        if (p != pairs.end()) {
          write_merged(in, o, *t, read_floats(*p->second.a), read_floats(*p->second.b), cfg.rank,
                       cfg.scale);
          ++result.merged;
          const std::string d(planner::dtype_name(t->dtype));
          if (result.dtype.find(d) == std::string::npos)
            result.dtype += (result.dtype.empty() ? "" : ", ") + d;
        } else {
          copy_bytes(in, o, t->offset, static_cast<uint64_t>(n), file);
          ++result.copied;
        }
        pos = t->offset + static_cast<uint64_t>(n);
      }
      const uint64_t size = fs::file_size(file);
      if (size > pos) copy_bytes(in, o, pos, size - pos, file);
      o.close();
      if (!o) throw InputError("-o: writing " + dst.string() + " failed (disk full?)");
      result.bytes += static_cast<int64_t>(size);
      ++result.shards;
    }
    if (sharded) fs::copy_file(index, tmp / index.filename());
    for (const char* side : kSideFiles) {
      if (fs::is_regular_file(model / side, ec)) fs::copy_file(model / side, tmp / side);
    }
    fs::remove(out, ec);  // an empty folder, replaced by the complete one
    fs::rename(tmp, out);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  result.base_model = cfg.base_model;
  return result;
}

}  // namespace loraplan::cli
