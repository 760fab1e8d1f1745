#include "checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "loraplan/planner/content_hash.h"

namespace loraplan::executor {
namespace {

namespace fs = std::filesystem;

constexpr const char* kFormat = "loraplan-checkpoint-1";

// The adapter's tensors under PEFT's names, in the model's order.
std::vector<std::pair<std::string, Tensor>> adapter_tensors(const Model& model) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const DecoderLayer& d : model.layers()) {
    for (const auto* group : {&d.attn, &d.mlp}) {
      for (const FrozenLinear& l : *group) {
        if (!l.lora) continue;
        out.emplace_back("base_model.model." + l.name + ".lora_A.weight", l.lora->A);
        out.emplace_back("base_model.model." + l.name + ".lora_B.weight", l.lora->B);
      }
    }
  }
  return out;
}

const char* dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return "F32";
    case at::kByte:
      return "U8";
    default:
      throw std::logic_error("checkpoint: no safetensors dtype for " +
                             std::string(c10::toString(t)));
  }
}

// A file written under `path`.tmp, flushed, then renamed to `path`.
template <typename Write>
void write_atomic(const fs::path& path, Write write) {
  const std::string tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    write(out);
    out.flush();
    if (!out) {
      out.close();
      fs::remove(tmp);
      throw std::runtime_error("writing " + path.string() + ": failed");
    }
  }
  fs::rename(tmp, path);
}

// safetensors: the tensors as they are (CPU tensors are written from their own memory; others
// are copied to the CPU first, outside the tracked device memory).
void write_safetensors(const fs::path& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors) {
  nlohmann::ordered_json header;
  header["__metadata__"] = {{"format", "pt"}};
  std::vector<Tensor> data;
  int64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    Tensor c = t.detach();
    if (!c.device().is_cpu()) c = c.to(torch::kCPU);
    if (!c.is_contiguous()) c = c.contiguous();
    const int64_t bytes = c.numel() * static_cast<int64_t>(c.element_size());
    header[name] = {{"dtype", dtype_name(c.scalar_type())},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(c);
  }
  const std::string text = header.dump();
  write_atomic(path, [&](std::ofstream& out) {
    const uint64_t n = text.size();
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
    out << text;
    for (const Tensor& c : data) {
      out.write(static_cast<const char*>(c.data_ptr()),
                static_cast<std::streamsize>(c.numel() * c.element_size()));
    }
  });
}

// A safetensors file opened for reading its tensors one by one.
class SafetensorsReader {
 public:
  explicit SafetensorsReader(const fs::path& path) : path_(path), in_(path, std::ios::binary) {
    uint64_t n = 0;
    for (int i = 0; i < 8 && in_; ++i) n |= static_cast<uint64_t>(in_.get() & 0xff) << (8 * i);
    if (!in_ || n == 0 || n > (64u << 20)) throw std::runtime_error(path.string() + ": no header");
    std::string text(n, '\0');
    in_.read(text.data(), static_cast<std::streamsize>(n));
    header_ = nlohmann::json::parse(text, nullptr, false);
    if (!in_ || header_.is_discarded() || !header_.is_object())
      throw std::runtime_error(path.string() + ": its header is not JSON");
    base_ = static_cast<std::streamoff>(8 + n);
  }

  // Tensor `name` into `t` (same dtype and shape), in place: a contiguous CPU tensor straight
  // from the file, others through a host buffer.
  void read_into(const std::string& name, const Tensor& t) {
    const int64_t bytes = t.numel() * static_cast<int64_t>(t.element_size());
    const nlohmann::json& e = entry(name);
    if (e.at("dtype").get<std::string>() != dtype_name(t.scalar_type()) ||
        e.at("shape").get<std::vector<int64_t>>() != t.sizes().vec() || size(name) != bytes) {
      throw std::runtime_error(path_.string() + ": " + name + " has another dtype or shape");
    }
    in_.seekg(base_ + e.at("data_offsets")[0].get<std::streamoff>());
    Tensor dst = t.detach();
    if (dst.device().is_cpu() && dst.is_contiguous()) {
      in_.read(static_cast<char*>(dst.data_ptr()), bytes);
    } else {
      std::vector<uint8_t> host(static_cast<size_t>(bytes));
      in_.read(reinterpret_cast<char*>(host.data()), bytes);
      dst.copy_(
          torch::from_blob(host.data(), t.sizes(), torch::TensorOptions().dtype(t.scalar_type())));
    }
    if (!in_) throw std::runtime_error(path_.string() + ": " + name + " is cut short");
  }

  // Tensor `name`'s bytes, whatever its shape.
  std::vector<uint8_t> bytes(const std::string& name) {
    std::vector<uint8_t> out(static_cast<size_t>(size(name)));
    in_.seekg(base_ + entry(name).at("data_offsets")[0].get<std::streamoff>());
    in_.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size()));
    if (!in_) throw std::runtime_error(path_.string() + ": " + name + " is cut short");
    return out;
  }

 private:
  const nlohmann::json& entry(const std::string& name) const {
    if (!header_.contains(name)) throw std::runtime_error(path_.string() + ": has no " + name);
    return header_[name];
  }
  int64_t size(const std::string& name) const {
    const nlohmann::json& o = entry(name).at("data_offsets");
    return o.at(1).get<int64_t>() - o.at(0).get<int64_t>();
  }

  fs::path path_;
  std::ifstream in_;
  nlohmann::json header_;
  std::streamoff base_ = 0;
};

nlohmann::ordered_json step_json(const StepMeasure& s) {
  nlohmann::ordered_json phases = nlohmann::ordered_json::array();
  for (const PhaseMeasure& p : s.phases) {
    phases.push_back({p.name, p.peak_bytes, p.reserved_peak_bytes});
  }
  return {{"phases", phases},
          {"step", s.step},
          {"loss", s.loss},
          {"tokens", s.tokens},
          {"eval_loss", s.eval_loss},
          {"tokens_per_s", s.tokens_per_s},
          {"peak_bytes", s.peak_bytes},
          {"reserved_peak_bytes", s.reserved_peak_bytes},
          {"lr", s.lr},
          {"live_bytes", s.live_bytes},
          {"host_rss_bytes", s.host_rss_bytes}};
}

StepMeasure step_of(const nlohmann::json& j) {
  StepMeasure s;
  s.step = j.at("step").get<int64_t>();
  s.loss = j.at("loss").get<double>();
  s.tokens = j.at("tokens").get<int64_t>();
  s.eval_loss = j.at("eval_loss").get<double>();
  s.tokens_per_s = j.at("tokens_per_s").get<double>();
  s.peak_bytes = j.at("peak_bytes").get<int64_t>();
  s.reserved_peak_bytes = j.at("reserved_peak_bytes").get<int64_t>();
  s.lr = j.at("lr").get<double>();
  s.live_bytes = j.value("live_bytes", int64_t{0});
  s.host_rss_bytes = j.value("host_rss_bytes", int64_t{0});
  for (const nlohmann::json& p : j.value("phases", nlohmann::json::array())) {
    s.phases.push_back(
        {p.at(0).get<std::string>(), p.at(1).get<int64_t>(), p.at(2).get<int64_t>()});
  }
  return s;
}

std::string step_folder(int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%06lld", static_cast<long long>(step));
  return name;
}

}  // namespace

std::vector<std::string> save_adapter(const Model& model, const TrainRequest& r,
                                      const std::string& dir) {
  fs::create_directories(dir);
  std::vector<std::string> modules;
  for (const DecoderLayer& d : model.layers()) {
    for (const auto* group : {&d.attn, &d.mlp}) {
      for (const FrozenLinear& l : *group) {
        if (!l.lora) continue;
        const std::string module = l.name.substr(l.name.rfind('.') + 1);
        if (std::find(modules.begin(), modules.end(), module) == modules.end())
          modules.push_back(module);
      }
    }
  }
  const fs::path st = fs::path(dir) / "adapter_model.safetensors";
  write_safetensors(st, adapter_tensors(model));
  const planner::TrainConfig& c = r.config;
  nlohmann::ordered_json cfg = {
      {"alpha_pattern", nlohmann::json::object()},
      // Random frozen weights are no base model: the adapter claims none.
      {"base_model_name_or_path",
       r.weights.empty()
           ? nlohmann::json()
           : nlohmann::json(r.model.hf_id.empty() ? r.weights_source : r.model.hf_id)},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"inference_mode", true},
      {"init_lora_weights", true},
      {"layers_pattern", nullptr},
      {"layers_to_transform", nullptr},
      {"lora_alpha", c.lora_alpha},
      {"lora_dropout", c.lora_dropout},
      {"modules_to_save", nullptr},
      {"peft_type", "LORA"},
      {"r", c.lora_rank},
      {"rank_pattern", nlohmann::json::object()},
      {"revision", nullptr},
      {"target_modules", modules},
      {"task_type", "CAUSAL_LM"},
      {"use_dora", false},
      {"use_rslora", false},
  };
  const fs::path cj = fs::path(dir) / "adapter_config.json";
  write_atomic(cj, [&](std::ofstream& out) { out << cfg.dump(2) << "\n"; });
  return {st.string(), cj.string()};
}

std::vector<uint8_t> generator_state(c10::Device device) {
  // The CPU engine's plain data (dropout on the CPU draws from it), then the GPU's state tensor.
  auto* cpu = at::check_generator<at::CPUGeneratorImpl>(at::detail::getDefaultCPUGenerator());
  const at::mt19937_data_pod pod = cpu->engine().data();
  std::vector<uint8_t> out(sizeof pod);
  std::memcpy(out.data(), &pod, sizeof pod);
  if (device.is_cuda()) {
    const Tensor s = at::globalContext().defaultGenerator(device).get_state();  // host bytes
    out.insert(out.end(), s.data_ptr<uint8_t>(), s.data_ptr<uint8_t>() + s.numel());
  }
  return out;
}

void set_generator_state(const std::vector<uint8_t>& state, c10::Device device) {
  at::mt19937_data_pod pod;
  if (state.size() < sizeof pod) throw std::runtime_error("checkpoint: generator state too short");
  std::memcpy(&pod, state.data(), sizeof pod);
  at::mt19937 engine;
  engine.set_data(pod);
  auto* cpu = at::check_generator<at::CPUGeneratorImpl>(at::detail::getDefaultCPUGenerator());
  cpu->set_engine(engine);
  cpu->set_next_float_normal_sample(c10::nullopt);
  cpu->set_next_double_normal_sample(c10::nullopt);
  if (device.is_cuda()) {
    std::vector<uint8_t> rest(state.begin() + sizeof pod, state.end());
    const Tensor s = torch::from_blob(rest.data(), {static_cast<int64_t>(rest.size())},
                                      torch::TensorOptions().dtype(torch::kUInt8))
                         .clone();
    at::Generator gen = at::globalContext().defaultGenerator(device);
    gen.set_state(s);
  }
}

std::string write_checkpoint(const Model& model, const Optimizer& optimizer,
                             const TrainerState& state, const TrainRequest& r, c10::Device device) {
  const fs::path root(r.checkpoint_dir);
  fs::create_directories(root);
  const std::string name = step_folder(state.step);
  const fs::path tmp = root / ("." + name + ".partial");
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  save_adapter(model, r, tmp.string());

  std::vector<std::pair<std::string, Tensor>> tensors = optimizer.state_tensors();
  std::vector<uint8_t> rng = generator_state(device);
  tensors.emplace_back("rng", torch::from_blob(rng.data(), {static_cast<int64_t>(rng.size())},
                                               torch::TensorOptions().dtype(torch::kUInt8)));
  write_safetensors(tmp / "training_state.safetensors", tensors);

  nlohmann::ordered_json j;
  j["format"] = kFormat;
  j["step"] = state.step;
  j["cursor"] = state.cursor;
  j["optimizer_steps"] = optimizer.step_count();
  j["split_to"] = state.split_to;
  j["identity"] = r.identity.empty() ? nlohmann::json::object()
                                     : nlohmann::json::parse(r.identity, nullptr, false);
  j["steps"] = nlohmann::json::array();
  for (const StepMeasure& s : state.steps) j["steps"].push_back(step_json(s));
  j["files"] = nlohmann::json::object();
  for (const char* f :
       {"adapter_model.safetensors", "adapter_config.json", "training_state.safetensors"}) {
    j["files"][f] = {{"bytes", fs::file_size(tmp / f)},
                     {"xxh3_128", planner::file_hash((tmp / f).string())}};
  }
  write_atomic(tmp / "trainer_state.json", [&](std::ofstream& out) { out << j.dump(2) << "\n"; });
  const fs::path final_dir = root / name;
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);

  // Keep the newest r.keep complete checkpoints.
  std::vector<fs::path> done;
  for (const fs::directory_entry& e : fs::directory_iterator(root)) {
    const std::string n = e.path().filename().string();
    if (e.is_directory() && n.rfind("step-", 0) == 0) done.push_back(e.path());
  }
  std::sort(done.begin(), done.end());
  for (size_t i = 0; r.keep > 0 && i + static_cast<size_t>(r.keep) < done.size(); ++i)
    fs::remove_all(done[i]);
  return final_dir.string();
}

TrainerState read_checkpoint(const Model& model, Optimizer& optimizer, const TrainRequest& r,
                             c10::Device device) {
  const fs::path dir(r.resume_from);
  std::ifstream in(dir / "trainer_state.json");
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("format", "") != kFormat)
    throw std::runtime_error(dir.string() + ": not a loraplan checkpoint");
  TrainerState s;
  s.step = j.at("step").get<int64_t>();
  s.cursor = j.at("cursor").get<uint64_t>();
  s.split_to = j.value("split_to", int64_t{0});
  for (const nlohmann::json& step : j.at("steps")) s.steps.push_back(step_of(step));
  optimizer.set_step_count(j.at("optimizer_steps").get<int64_t>());
  torch::NoGradGuard no_grad;
  SafetensorsReader adapter(dir / "adapter_model.safetensors");
  for (const auto& [name, t] : adapter_tensors(model)) adapter.read_into(name, t);
  SafetensorsReader training(dir / "training_state.safetensors");
  for (const auto& [name, t] : optimizer.state_tensors()) training.read_into(name, t);
  const std::vector<uint8_t> rng = training.bytes("rng");
  set_generator_state(rng, device);
  return s;
}

}  // namespace loraplan::executor
