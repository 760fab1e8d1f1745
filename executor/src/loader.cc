// Finds and loads the LibTorch executor module. No LibTorch header is included here.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <vector>

#include "loraplan/executor/backend.h"

namespace loraplan::executor {
namespace {

namespace fs = std::filesystem;

constexpr const char* kModuleName = "libloraplan_torch.so";

std::vector<fs::path> candidates() {
  std::vector<fs::path> paths;
  if (const char* env = std::getenv("LORAPLAN_EXECUTOR_MODULE"); env && *env)
    paths.emplace_back(env);
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    paths.push_back(exe.parent_path() / kModuleName);
    paths.push_back(exe.parent_path().parent_path() / "lib" / "loraplan" / kModuleName);
  }
#ifdef LORAPLAN_EXECUTOR_MODULE_DIR
  paths.push_back(fs::path(LORAPLAN_EXECUTOR_MODULE_DIR) / kModuleName);
#endif
  return paths;
}

struct Loaded {
  std::unique_ptr<Backend> backend;
  std::string path;
};

Loaded load() {
  for (const fs::path& p : candidates()) {
    std::error_code ec;
    if (!fs::exists(p, ec)) continue;
    void* handle = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle)
      throw std::runtime_error("loading the executor module " + p.string() + ": " + dlerror());
    auto* create = reinterpret_cast<Backend* (*)()>(dlsym(handle, "loraplan_create_torch_backend"));
    if (!create) throw std::runtime_error("executor module " + p.string() + " has no entry point");
    return {std::unique_ptr<Backend>(create()), p.string()};  // the module stays loaded
  }
  return {};
}

const Loaded& loaded() {
  static const Loaded once = load();
  return once;
}

}  // namespace

Backend* torch_backend() { return loaded().backend.get(); }

BackendInfo backend_info() {
  Backend* b = torch_backend();
  if (!b) return {};
  BackendInfo info = b->info();
  info.module_path = loaded().path;
  return info;
}

Backend& require_backend(const std::string& what) {
  Backend* b = torch_backend();
  if (!b) {
    throw std::runtime_error(what +
                             ": built without LibTorch; install libtorch-dev "
                             "(scripts/install-deps.sh) and rebuild");
  }
  return *b;
}

}  // namespace loraplan::executor
