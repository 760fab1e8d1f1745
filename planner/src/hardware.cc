#include "loraplan/planner/hardware.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

#include "loraplan/planner/errors.h"
#include "loraplan/planner/json_fields.h"
#include "loraplan/planner/model_loader.h"

namespace loraplan::planner {
namespace {

using nlohmann::json;

constexpr int64_t kKiB = int64_t{1} << 10;
constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;
constexpr int64_t kTiB = int64_t{1} << 40;

// Every unit is binary: GPUs are sold in binary sizes, so "6GB" means 6144 MiB, not 6e9 bytes.
struct SizeUnit {
  std::string_view suffix;  // lowercase spelling
  int64_t bytes;            // bytes per unit
};

constexpr std::array<SizeUnit, 14> kSizeUnits = {{
    {"", 1},
    {"b", 1},
    {"k", kKiB},
    {"kb", kKiB},
    {"kib", kKiB},
    {"m", kMiB},
    {"mb", kMiB},
    {"mib", kMiB},
    {"g", kGiB},
    {"gb", kGiB},
    {"gib", kGiB},
    {"t", kTiB},
    {"tb", kTiB},
    {"tib", kTiB},
}};

[[noreturn]] void throw_not_a_size(std::string_view text, std::string_view what) {
  throw InputError(std::string(what) + ": \"" + std::string(text) +
                   "\" is not a size (examples: 6GB, 6GiB, 6144MiB, 12G)");
}

std::string_view trim(std::string_view s) {
  auto space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

size_t count_digits(std::string_view s, size_t pos) {
  size_t n = 0;
  while (pos + n < s.size() && std::isdigit(static_cast<unsigned char>(s[pos + n]))) ++n;
  return n;
}

// floor(0.<digits> * unit) exactly, without floating point: the fraction is doubled once per
// bit of the (power-of-two) unit. 18 digits keep 2 * numerator inside int64; further digits are
// below a millionth of a byte for every unit here.
int64_t fraction_bytes(std::string_view digits, int64_t unit) {
  digits = digits.substr(0, 18);
  int64_t numerator = 0;
  int64_t denominator = 1;
  for (char c : digits) {
    numerator = numerator * 10 + (c - '0');
    denominator *= 10;
  }
  int64_t whole = 0;
  for (int64_t u = unit; u > 1; u /= 2) {
    whole *= 2;
    numerator *= 2;
    if (numerator >= denominator) {
      numerator -= denominator;
      whole += 1;
    }
  }
  return whole;
}

// A JSON file whose top level must be an object.
json parse_object(const std::string& path, const std::string& text) {
  json doc = parse_json(text, path);
  if (!doc.is_object()) throw InputError(located(path, 0, "must hold a JSON object"));
  return doc;
}

struct Overheads {
  int64_t cuda_context_bytes = 0;      // driver/runtime context
  int64_t cublas_workspace_bytes = 0;  // cuBLAS workspace per handle and stream
};

Overheads read_overheads(const JsonFields& fields) {
  constexpr const char* kRequirement = "must be a non-negative integer";
  return {fields.integer("cuda_context_bytes", 0, kRequirement),
          fields.integer("cublas_workspace_bytes", 0, kRequirement)};
}

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

[[noreturn]] void throw_unknown_gpu(const std::string& spec) {
  const std::vector<std::string> names = profile_names("gpus");
  const std::vector<std::string> near = closest_names(lowercase(spec), names);
  std::string known;
  for (size_t i = 0; i < near.size(); ++i) known += (i > 0 ? ", " : "") + near[i];
  if (names.size() > near.size()) known += ", ...";
  if (names.empty()) known = "none";
  throw InputError("--gpu: unknown GPU \"" + spec + "\"; known: " + known +
                   " (see loraplan profiles)");
}

}  // namespace

int64_t parse_size(std::string_view text, std::string_view what) {
  const std::string_view s = trim(text);
  // [-+]digits[.digits]unit
  size_t pos = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  const bool negative = pos == 1 && s[0] == '-';
  const size_t int_digits = count_digits(s, pos);
  if (int_digits == 0) throw_not_a_size(text, what);
  const std::string_view int_part = s.substr(pos, int_digits);
  pos += int_digits;
  std::string_view frac_part;
  if (pos < s.size() && s[pos] == '.') {
    const size_t frac_digits = count_digits(s, pos + 1);
    if (frac_digits == 0) throw_not_a_size(text, what);
    frac_part = s.substr(pos + 1, frac_digits);
    pos += 1 + frac_digits;
  }
  const std::string suffix = lowercase(std::string(s.substr(pos)));
  const auto unit = std::find_if(kSizeUnits.begin(), kSizeUnits.end(),
                                 [&](const SizeUnit& u) { return u.suffix == suffix; });
  if (unit == kSizeUnits.end()) throw_not_a_size(text, what);

  // One unit of headroom below int64 max leaves room for the fractional part.
  const int64_t max_units = std::numeric_limits<int64_t>::max() / unit->bytes - 1;
  int64_t units = 0;
  for (char c : int_part) {
    const int digit = c - '0';
    if (units > (max_units - digit) / 10) {
      throw InputError(std::string(what) + ": size \"" + std::string(text) + "\" is too large");
    }
    units = units * 10 + digit;
  }
  const int64_t bytes = units * unit->bytes + fraction_bytes(frac_part, unit->bytes);
  if (negative || bytes <= 0) {
    throw InputError(std::string(what) + ": size must be positive, got \"" + std::string(text) +
                     "\"");
  }
  return bytes;
}

std::string format_bytes(int64_t bytes) {
  if (bytes < 0) {  // a difference between two sizes
    return "-" + format_bytes(bytes == std::numeric_limits<int64_t>::min()
                                  ? std::numeric_limits<int64_t>::max()
                                  : -bytes);
  }
  if (bytes < kKiB) return std::to_string(bytes) + " B";
  struct Scale {
    int64_t bytes;       // bytes per unit
    const char* format;  // printf format, with the unit name
  };
  // Largest unit first; GiB gets two decimals because a few tens of MiB matter on small cards.
  constexpr std::array<Scale, 3> kScales = {{
      {kGiB, "%.2f GiB"},
      {kMiB, "%.1f MiB"},
      {kKiB, "%.1f KiB"},
  }};
  const Scale& scale = *std::find_if(kScales.begin(), kScales.end(),
                                     [&](const Scale& s) { return bytes >= s.bytes; });
  char out[64];
  std::snprintf(out, sizeof out, scale.format,
                static_cast<double>(bytes) / static_cast<double>(scale.bytes));
  return out;
}

GpuProfile read_gpu_profile(const std::string& path) {
  const std::string text = read_text_file(path);
  const json doc = parse_object(path, text);
  const JsonFields fields(doc, text, path);

  GpuProfile gpu;
  gpu.name = fields.string("name");
  gpu.display_name = fields.string("display_name");
  gpu.compute_capability = fields.string("compute_capability");
  gpu.memory_bytes = fields.integer("memory_bytes", 1, "must be a positive integer");
  gpu.memory_bandwidth_gbps = fields.number("memory_bandwidth_gbps", 0);
  gpu.tensor_tflops = fields.number("tensor_tflops", 0);
  gpu.fp32_tflops = fields.number("fp32_tflops", 0);
  gpu.pcie_host_gbps = fields.number("pcie_host_gbps", 0);
  gpu.bf16_native = fields.boolean("bf16_native");
  const Overheads overheads = read_overheads(fields.object("overheads"));
  gpu.cuda_context_bytes = overheads.cuda_context_bytes;
  gpu.cublas_workspace_bytes = overheads.cublas_workspace_bytes;
  return gpu;
}

GpuProfile resolve_gpu(const std::string& spec) {
  const std::string dir = profile_dir();
  // Profile names are lowercase; "RTX-4090" finds rtx-4090 on case-sensitive file systems too.
  const bool plain_name = !spec.empty() && spec.find('/') == std::string::npos;
  const std::string path = dir + "/gpus/" + lowercase(spec) + ".json";
  if (plain_name && std::filesystem::is_regular_file(path)) return read_gpu_profile(path);

  if (spec.empty() || !std::isdigit(static_cast<unsigned char>(spec[0]))) {
    throw_unknown_gpu(spec);
  }
  // A bare size: nothing is known about the card but its memory, so take the context and
  // workspace of a typical pre-Hopper card under PyTorch.
  GpuProfile gpu;
  gpu.name = spec;
  gpu.display_name = spec + " GPU";
  gpu.memory_bytes = parse_size(spec, "--gpu");
  gpu.from_size_only = true;
  const std::string defaults_path = dir + "/cuda-overheads.json";
  const std::string text = read_text_file(defaults_path);
  const json doc = parse_object(defaults_path, text);
  const Overheads overheads = read_overheads(JsonFields(doc, text, defaults_path));
  gpu.cuda_context_bytes = overheads.cuda_context_bytes;
  gpu.cublas_workspace_bytes = overheads.cublas_workspace_bytes;
  return gpu;
}

}  // namespace loraplan::planner
