#include "weight_source.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace loraplan::executor {
namespace {

std::string shape_text(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Closes the descriptor on every path out.
struct File {
  int fd;
  ~File() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

at::Tensor RandomWeights::get(const std::string& /*name*/, at::IntArrayRef shape, Init init) const {
  switch (init) {
    case Init::kOnes:
      return at::ones(shape, at::kFloat);
    case Init::kZeros:
      return at::zeros(shape, at::kFloat);
    case Init::kNormal:
      break;
  }
  return at::randn(shape, at::kFloat) * 0.02;
}

SafetensorsWeights::SafetensorsWeights(std::string source,
                                       const std::vector<planner::TensorRecord>& tensors)
    : source_(std::move(source)) {
  for (const planner::TensorRecord& t : tensors) tensors_.emplace(t.name, t);
}

at::Tensor SafetensorsWeights::get(const std::string& name, at::IntArrayRef shape,
                                   Init /*init*/) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    throw std::invalid_argument("loading weights: " + source_ + ": tensor \"" + name + "\" " +
                                shape_text(shape) + " is missing");
  }
  const planner::TensorRecord& t = it->second;
  const std::string where = "loading weights: " + t.file + ": tensor \"" + name + "\": ";
  if (at::IntArrayRef(t.shape) != shape) {
    throw std::invalid_argument(where + "shape " + shape_text(t.shape) + " where the model needs " +
                                shape_text(shape));
  }
  at::ScalarType type;
  switch (t.dtype) {
    case planner::DType::kF32:
      type = at::kFloat;
      break;
    case planner::DType::kF16:
      type = at::kHalf;
      break;
    case planner::DType::kBF16:
      type = at::kBFloat16;
      break;
    default:
      throw std::invalid_argument(where + "dtype " +
                                  std::string(planner::safetensors_dtype_name(t.dtype)) +
                                  " (expected F32, F16 or BF16)");
  }
  at::Tensor out = at::empty(shape, type);
  const size_t bytes = static_cast<size_t>(out.numel()) * out.element_size();
  const File f{::open(t.file.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) throw std::invalid_argument(where + "cannot open: " + std::strerror(errno));
  auto* dst = static_cast<char*>(out.data_ptr());
  for (size_t done = 0; done < bytes;) {
    const ssize_t n = ::pread(f.fd, dst + done, bytes - done, static_cast<off_t>(t.offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      throw std::invalid_argument(
          where + "cannot read " + std::to_string(bytes) + " bytes at offset " +
          std::to_string(t.offset) +
          (n < 0 ? std::string(": ") + std::strerror(errno) : ": file too short"));
    }
    done += static_cast<size_t>(n);
  }
  return out;
}

}  // namespace loraplan::executor
