#include "loraplan/planner/model_loader.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include "loraplan/planner/errors.h"
#include "loraplan/planner/readers.h"

#ifndef LORAPLAN_PROFILE_DIR
#define LORAPLAN_PROFILE_DIR "profiles"
#endif

namespace loraplan::planner {
namespace {

namespace fs = std::filesystem;

// A description from config.json, checked against the weights when there are any.
ModelDesc with_weights(ModelDesc m, const std::vector<TensorRecord>& tensors,
                       const std::string& where) {
  if (!tensors.empty()) m.dtype = check_tensors_match(m, tensors, where);
  return m;
}

std::vector<TensorRecord> read_weights(const fs::path& file) {
  return file.extension() == ".onnx" ? read_onnx_tensors(file.string())
                                     : read_safetensors_tensors(file.string());
}

// Why a path that should be a readable file is not: a dangling link (an interrupted Hugging
// Face download leaves those), a link loop, a folder.
std::string unreadable_reason(const fs::path& p, const std::error_code& ec) {
  std::error_code lec;
  if (ec.value() == ELOOP) return "is a loop of symbolic links";
  if (fs::is_symlink(fs::symlink_status(p, lec)) && !fs::exists(p, lec)) {
    return "is a link to a missing file (an incomplete download?)";
  }
  if (ec) return "cannot read: " + ec.message();
  return fs::is_directory(p, lec) ? "is a folder, not a file" : "is not a regular file";
}

// Whether something is at `p`, even a dangling link; a loop or a permission problem is an error.
bool present(const fs::path& p) {
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(p, ec);
  if (ec && ec != std::errc::no_such_file_or_directory)
    throw InputError(located(p.string(), 0, unreadable_reason(p, ec)));
  return fs::exists(st);
}

// A file the model names must be a readable regular file (after links).
void require_regular_file(const fs::path& p) {
  std::error_code ec;
  const fs::file_status st = fs::status(p, ec);
  if (ec || !fs::is_regular_file(st))
    throw InputError(located(p.string(), 0, unreadable_reason(p, ec)));
}

// The weight files of a model directory: the sharded index, else every .safetensors, else one
// .onnx. A weight file that cannot be read is an error, never "a folder without weights".
std::vector<fs::path> weight_files(const fs::path& dir) {
  const fs::path index = dir / "model.safetensors.index.json";
  if (present(index)) {
    require_regular_file(index);
    return {index};
  }
  std::vector<fs::path> safetensors, onnx;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) throw InputError(located(dir.string(), 0, "cannot list the folder: " + ec.message()));
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) throw InputError(located(dir.string(), 0, "cannot list the folder: " + ec.message()));
    const fs::path& p = it->path();
    const bool is_safetensors = p.extension() == ".safetensors", is_onnx = p.extension() == ".onnx";
    if (!is_safetensors && !is_onnx) continue;
    require_regular_file(p);
    (is_safetensors ? safetensors : onnx).push_back(p);
  }
  std::sort(safetensors.begin(), safetensors.end());
  std::sort(onnx.begin(), onnx.end());
  return !safetensors.empty() ? safetensors : onnx.empty() ? onnx : std::vector<fs::path>{onnx[0]};
}

ModelDesc load_directory(const fs::path& dir) {
  const fs::path config = dir / "config.json";
  std::vector<TensorRecord> tensors;
  for (const fs::path& f : weight_files(dir)) {
    std::vector<TensorRecord> part = read_weights(f);
    tensors.insert(tensors.end(), part.begin(), part.end());
  }
  if (present(config))
    return with_weights(read_config_json(config.string()), tensors, dir.string());
  if (tensors.empty()) {
    throw InputError(
        located(dir.string(), 0, "no config.json, *.safetensors or *.onnx in this directory"));
  }
  return describe_from_tensors(tensors, dir.string());
}

// A weight file, described by the config.json beside it when there is one.
ModelDesc load_weight_file(const fs::path& file) {
  const std::vector<TensorRecord> tensors = read_weights(file);
  const fs::path config = file.parent_path() / "config.json";
  if (present(config))
    return with_weights(read_config_json(config.string()), tensors, file.string());
  return describe_from_tensors(tensors, file.string());
}

}  // namespace

std::vector<std::string> closest_names(const std::string& name,
                                       std::vector<std::string> candidates) {
  auto distance = [&](const std::string& other) {
    // Levenshtein distance, one row at a time.
    std::vector<size_t> row(other.size() + 1);
    for (size_t j = 0; j <= other.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= name.size(); ++i) {
      size_t diag = row[0];
      row[0] = i;
      for (size_t j = 1; j <= other.size(); ++j) {
        const size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (name[i - 1] != other[j - 1])});
        diag = up;
      }
    }
    return row[other.size()];
  };
  // Names that contain what was typed ("4090" -> "rtx-4090") come first, then by the distance
  // to the whole name or to its start ("phi-5" is one edit from "phi-4-mini-instruct").
  auto key = [&](const std::string& c) {
    return std::pair{c.find(name) == std::string::npos,
                     std::min(distance(c), distance(c.substr(0, name.size())))};
  };
  std::stable_sort(candidates.begin(), candidates.end(),
                   [&](const std::string& a, const std::string& b) { return key(a) < key(b); });
  if (candidates.size() > 3) candidates.resize(3);
  return candidates;
}

std::string profile_dir() {
  const char* env = std::getenv("LORAPLAN_PROFILES");
  return env && *env ? env : LORAPLAN_PROFILE_DIR;
}

std::vector<std::string> profile_names(const std::string& kind) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(fs::path(profile_dir()) / kind, ec)) {
    if (e.path().extension() == ".json") names.push_back(e.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The model profile `spec` names: its file name, or the Hugging Face id it describes
// ("meta-llama/Llama-3.1-8B", as `loraplan profiles` lists it), either in any case.
std::optional<std::string> find_profile(const std::string& spec) {
  const std::string wanted = lower(spec);
  const std::vector<std::string> names = profile_names("models");
  for (const std::string& n : names) {
    if (lower(n) == wanted) return n;
  }
  if (spec.find('/') == std::string::npos) return std::nullopt;
  for (const std::string& n : names) {
    const std::string file = (fs::path(profile_dir()) / "models" / (n + ".json")).string();
    if (lower(read_config_json(file).hf_id) == wanted) return n;
  }
  return std::nullopt;
}

std::string unknown_model_message(const std::string& name) {
  std::string msg = "--model: \"" + name + "\" is neither a file nor a model profile; closest: ";
  const std::vector<std::string> near = closest_names(name, profile_names("models"));
  for (size_t i = 0; i < near.size(); ++i) msg += (i ? ", " : "") + near[i];
  return msg + " (see loraplan profiles)";
}

}  // namespace

ModelDesc load_model(const std::string& spec) {
  if (spec.empty())
    throw InputError("--model: empty; give a profile name, a model folder or a model file");
  const fs::path path(spec);
  if (present(path)) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) return load_directory(path);
    require_regular_file(path);
    const std::string ext = path.extension().string();
    if (spec.ends_with(".index.json") || ext == ".safetensors" || ext == ".onnx")
      return load_weight_file(path);
    if (ext == ".json") return read_config_json(spec);
    throw InputError(located(spec, 0,
                             "unknown model file type (expected config.json, .safetensors, "
                             "model.safetensors.index.json or .onnx)"));
  }
  if (const std::optional<std::string> name = find_profile(spec)) {
    ModelDesc m =
        read_config_json((fs::path(profile_dir()) / "models" / (*name + ".json")).string());
    m.name = *name;
    return m;
  }
  throw InputError(unknown_model_message(spec));
}

WeightFiles safetensors_weights(const std::string& spec) {
  const fs::path path(spec);
  std::error_code ec;
  std::vector<fs::path> files;
  if (fs::is_directory(path, ec)) {
    files = weight_files(path);
  } else if (spec.ends_with(".index.json") || path.extension() == ".safetensors" ||
             path.extension() == ".onnx") {
    files = {path};
  }
  WeightFiles w;
  for (const fs::path& f : files) {
    if (f.extension() == ".onnx") {
      throw InputError(
          "--model: " + spec + ": train reads safetensors weights and this model's are ONNX (" +
          f.filename().string() +
          "); convert them to safetensors, or pass its config.json to train on random weights");
    }
    std::vector<TensorRecord> part = read_safetensors_tensors(f.string());
    w.tensors.insert(w.tensors.end(), part.begin(), part.end());
  }
  if (!w.tensors.empty()) w.source = spec;
  return w;
}

}  // namespace loraplan::planner
