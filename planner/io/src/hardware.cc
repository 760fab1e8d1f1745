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
#include "loraplan/planner/text.h"

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

[[noreturn]] void throw_unknown_gpu(const std::string& spec,
                                    const std::vector<std::string>& names) {
  const std::vector<std::string> near = closest_names(lowercase(spec), names);
  std::string known;
  for (size_t i = 0; i < near.size(); ++i) known += (i > 0 ? ", " : "") + near[i];
  if (names.size() > near.size()) known += ", ...";
  if (names.empty()) known = "none";
  throw InputError("--gpu: unknown GPU \"" + spec + "\"; known: " + known +
                   " (see loraplan profiles)");
}

// "RTX 4090", "rtx_4090", " Rtx-4090 " -> "rtx-4090": spelled as profile names are.
std::string normalized_gpu_name(std::string_view spec) {
  std::string out;
  for (char c : lowercase(std::string(trim(spec)))) {
    if (c == ' ' || c == '_') c = '-';
    if (c == '-' && (out.empty() || out.back() == '-')) continue;
    out += c;
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

std::vector<std::string> dash_words(const std::string& name) { return split_nonempty(name, '-'); }

bool has_word(const std::string& profile, const std::string& word) {
  const std::vector<std::string> words = dash_words(profile);
  return std::find(words.begin(), words.end(), word) != words.end();
}

// The profiles a name can mean: those it begins at a dash ("a100" -> a100-40gb, a100-80gb) and
// those holding each of its words ("4060-ti", "geforce rtx 3060 laptop"); vendor words aside.
std::vector<std::string> gpu_candidates(const std::string& name,
                                        const std::vector<std::string>& profiles) {
  constexpr std::array<std::string_view, 3> kVendorWords = {"nvidia", "geforce", "tesla"};
  std::vector<std::string> words = dash_words(name);
  std::erase_if(words, [&](const std::string& w) {
    return std::find(kVendorWords.begin(), kVendorWords.end(), w) != kVendorWords.end();
  });
  std::vector<std::string> out;
  for (const std::string& p : profiles) {
    const bool prefix = p.starts_with(name + "-");
    const bool every_word =
        !words.empty() && std::all_of(words.begin(), words.end(),
                                      [&](const std::string& w) { return has_word(p, w); });
    if (prefix || every_word) out.push_back(p);
  }
  return out;
}

// "a, b or c"
std::string either(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size(); ++i) {
    s += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
  }
  return s;
}

bool is_bare_number(std::string_view s) {
  const size_t digits = count_digits(s, 0);
  if (digits == 0) return false;
  if (digits == s.size()) return true;
  return s[digits] == '.' && count_digits(s, digits + 1) == s.size() - digits - 1 &&
         digits + 1 < s.size();
}

// "4090" could be a card or a size in bytes: refuse it, naming the cards it is a word of.
[[noreturn]] void throw_bare_number(std::string_view spec, const std::string& number,
                                    const std::vector<std::string>& profiles) {
  std::vector<std::string> cards;
  for (const std::string& p : profiles) {
    if (has_word(p, number)) cards.push_back(p);
  }
  const std::string quoted = "\"" + std::string(trim(spec)) + "\"";
  if (!cards.empty()) {
    throw InputError("--gpu: " + quoted + " is not a GPU profile or a size; did you mean " +
                     either(cards) + "?");
  }
  throw InputError("--gpu: " + quoted + " is not a size (did you mean " + number + "GB?)");
}

// A bare size: nothing is known about the card but its memory, so take the context and
// workspace of a typical pre-Hopper card under PyTorch.
GpuProfile size_only_gpu(const std::string& spec, const std::string& dir) {
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
  const std::vector<std::string> profiles = profile_names("gpus");
  const std::string name = normalized_gpu_name(spec);
  auto profile = [&](const std::string& n) {
    return read_gpu_profile(dir + "/gpus/" + n + ".json");
  };
  if (std::find(profiles.begin(), profiles.end(), name) != profiles.end()) return profile(name);
  if (is_bare_number(name)) throw_bare_number(spec, name, profiles);

  const std::vector<std::string> candidates = gpu_candidates(name, profiles);
  if (!name.empty() && std::isdigit(static_cast<unsigned char>(name[0]))) {
    // A size first ("16GB" is not rtx-4060-ti-16gb); a name only when it is no size ("4060 ti").
    try {
      return size_only_gpu(spec, dir);
    } catch (const InputError&) {
      if (candidates.empty()) throw;
    }
  }
  if (candidates.size() == 1) return profile(candidates[0]);
  if (candidates.empty()) throw_unknown_gpu(spec, profiles);
  std::string list;
  for (const std::string& c : candidates) list += (list.empty() ? "" : ", ") + c;
  throw InputError("--gpu: \"" + spec + "\" matches " + list);
}

}  // namespace loraplan::planner
