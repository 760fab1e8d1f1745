// loraplan train: run the configuration with the LibTorch executor and measure its memory.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <tuple>

#include "app.h"
#include "checkpoints.h"
#include "config_flags.h"
#include "data_flags.h"
#include "loraplan/data/dataset.h"
#include "loraplan/data/token_cache.h"
#include "loraplan/executor/backend.h"
#include "loraplan/planner/batch_shapes.h"
#include "loraplan/planner/content_hash.h"
#include "loraplan/planner/errors.h"
#include "loraplan/planner/hardware.h"
#include "loraplan/planner/json_fields.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/planner/plan_file.h"
#include "loraplan/planner/simulator.h"
#include "loraplan/reports/estimate_report.h"
#include "loraplan/reports/run_report.h"
#include "loraplan/reports/table.h"
#include "loraplan/reports/timeline.h"

namespace loraplan::cli {

namespace {

struct TrainFlags {
  ConfigFlags config;
  std::string plan;
  DataFlags data;
  bool synthetic = false;
  int64_t steps = 50;
  std::string out;
  double lr = 2e-4;
  int64_t warmup_steps = 0;
  uint64_t seed = 0;
  int threads = 1;
  double max_grad_norm = 1.0;
  int64_t eval_every = 0;
  int64_t save_every = 0;
  int64_t keep = 2;
  std::string resume;
  std::string on_oom = "split";
  int64_t trace_step = 1;
  std::string trace;
};

// The measured timeline as the reports draw it: the live bytes (one series, no kinds) and the
// phases as runs of points.
reports::Timeline measured_as_timeline(const executor::MeasuredTimeline& m) {
  reports::Timeline t;
  t.phases = m.phases;
  t.phases.emplace_back("before the first phase");
  const auto none = static_cast<int32_t>(t.phases.size() - 1);
  t.events = m.events;
  for (const executor::MeasuredPoint& p : m.points) {
    const int32_t phase = p.phase >= 0 ? p.phase : none;
    reports::TimelinePoint q;
    q.event = p.event;
    q.phase = phase;
    q.total = p.live;
    t.points.push_back(q);
    if (p.live > t.peak_bytes) {
      t.peak_bytes = p.live;
      t.peak_event = p.event;
    }
    if (t.spans.empty() || t.spans.back().phase != phase) {
      if (!t.spans.empty()) t.spans.back().end = p.event;
      t.spans.push_back({phase, p.event, p.event + 1});
    }
  }
  if (!t.spans.empty()) t.spans.back().end = m.events;
  return t;
}

nlohmann::json timeline_json(const executor::MeasuredTimeline& m, const std::string& device) {
  nlohmann::json points = nlohmann::json::array();
  for (const executor::MeasuredPoint& p : m.points) points.push_back({p.event, p.live, p.phase});
  return {{"step", m.step},     {"device", device},
          {"events", m.events}, {"bucket_events", m.bucket_events},
          {"phases", m.phases}, {"points", points}};
}

// What the run was, beside the request: the --model reference and the GPU it was planned for.
struct RunOrigin {
  std::string model_spec;
  std::string gpu;  // empty on the CPU
  std::string plan;
};

// A dataset as train batched it: its micro-batches and the epoch's predicted worst.
struct TrainData {
  DatasetLengths lengths;
  DatasetBatches batches;
  // The epoch's worst micro-batch as train orders it: every (shape, first in its step or not)
  // the epoch has, estimated (a step's first micro-batch runs before any gradient exists).
  size_t worst_batch = 0;
  int64_t worst_peak = 0;
  const data::MicroBatch& worst() const { return batches.batches[worst_batch]; }
};

// Finds d's worst micro-batch over one epoch of `grad_accum` micro-batches per step.
void find_worst(TrainData& d, const executor::TrainRequest& q, const planner::DeviceModel& device) {
  std::map<std::tuple<int64_t, int64_t, bool>, int64_t> peaks;  // (B, T, first) -> peak
  const auto& batches = d.batches.batches;
  for (size_t i = 0; i < batches.size(); ++i) {
    const bool first = static_cast<int64_t>(i) % q.config.grad_accum == 0;
    const auto key = std::make_tuple(batches[i].sequences, batches[i].seq_len, first);
    auto it = peaks.find(key);
    if (it == peaks.end()) {
      planner::TrainConfig c =
          planner::with_shape(q.config, {batches[i].sequences, batches[i].seq_len, 1, 0});
      if (first) c.grad_accum = 1;
      it = peaks.emplace(key, planner::estimate(q.model, c, device).peak_bytes).first;
    }
    const bool more_tokens = it->second == d.worst_peak && batches[i].tokens > d.worst().tokens;
    if (it->second > d.worst_peak || more_tokens) {
      d.worst_peak = it->second;
      d.worst_batch = i;
    }
  }
}

TrainData load_train_data(const DataFlags& f, const std::string& model_spec,
                          executor::TrainRequest& q, const planner::DeviceModel& device) {
  TrainData d;
  d.batches.options.batching = data::Batching::parse(f.batching.empty() ? "longest" : f.batching);
  d.lengths.summary = read_samples(
      f, model_spec, q.model.vocab, q.config.seq_len,
      [&](data::Sample&& s) {
        d.lengths.trained.push_back(static_cast<int64_t>(s.ids.size()));
        d.lengths.full.push_back(s.full_length);
        d.lengths.tokens += static_cast<int64_t>(s.ids.size());
        q.sequences.push_back({std::move(s.ids), std::move(s.labels)});
      },
      &d.lengths.cache_hit);
  if (q.sequences.empty()) throw InputError(f.data + ": no rows");
  d.batches = batch_dataset(f, d.lengths, q.config.seq_len, q.config.micro_batch,
                            f.seed_from_plan ? f.seed : q.seed, "longest");
  for (const data::MicroBatch& b : d.batches.batches) {
    q.batches.push_back({b.rows, b.seq_len, b.documents});
  }
  find_worst(d, q, device);
  return d;
}

// The shapes of the micro-batches `steps` optimizer steps ran (they take the epoch's in turn):
// (B, T, first), `first` for a step's first micro-batch, which runs before any gradient exists.
std::set<std::tuple<int64_t, int64_t, bool>> shapes_run(const TrainData& d, int64_t steps,
                                                        int64_t grad_accum) {
  std::set<std::tuple<int64_t, int64_t, bool>> seen;
  const auto& batches = d.batches.batches;
  for (int64_t i = 0; i < steps * grad_accum; ++i) {
    const data::MicroBatch& b = batches[static_cast<size_t>(i) % batches.size()];
    seen.insert({b.sequences, b.seq_len, i % grad_accum == 0});
    if (i >= 2 * static_cast<int64_t>(batches.size() * grad_accum)) break;  // every pairing seen
  }
  return seen;
}

nlohmann::json data_json(const TrainData& d, const std::string& path, int64_t steps_run,
                         int64_t grad_accum) {
  const data::MicroBatch& w = d.worst();
  nlohmann::json run = nlohmann::json::array();
  for (const auto& [b, t, first] : shapes_run(d, steps_run, grad_accum)) {
    run.push_back({{"micro_batch", b}, {"seq_len", t}, {"first", first}});
  }
  const int64_t n = static_cast<int64_t>(d.batches.batches.size());
  return {{"path", path},
          {"rows", d.lengths.summary.rows},
          {"tokens", d.lengths.tokens},
          {"truncated", d.lengths.summary.truncated},
          {"skipped", d.lengths.summary.skipped},
          {"batching", d.batches.options.batching.name()},
          {"pad_multiple", d.batches.options.pad_multiple},
          {"longest_first", d.batches.options.longest_first},
          {"micro_batches", n},
          {"epoch_steps", (n + grad_accum - 1) / grad_accum},
          {"shapes_run", run},
          {"worst_batch",
           {{"micro_batch", w.sequences},
            {"seq_len", w.seq_len},
            {"rows", w.rows},
            {"predicted_peak_bytes", d.worst_peak}}}};
}

// A plan made with --data fits that data batched that way: train takes its batching, padding and
// order, and refuses other data or another batching rather than run what the plan did not check.
void apply_plan_data(const std::string& plan_path, const CLI::App& sub, DataFlags& f) {
  const std::string text = planner::read_text_file(plan_path);
  const nlohmann::json plan = planner::parse_json(text, plan_path, "plan");
  if (!plan.is_object() || !plan.contains("data")) return;  // a plan for B x T micro-batches
  const nlohmann::json& d = plan["data"];
  const auto field = [&](const char* key) -> const nlohmann::json& {
    if (!d.is_object() || !d.contains(key)) {
      throw InputError(located(plan_path, json_key_line(text, "data"),
                               "\"data\" has no \"" + std::string(key) + "\""));
    }
    return d[key];
  };
  const std::string path = field("path").is_string() ? field("path").get<std::string>() : "";
  const std::string batching =
      field("batching").is_string() ? field("batching").get<std::string>() : "";
  if (f.data.empty()) {
    throw InputError("--plan: " + plan_path + " was made for the data " + path + " (batching " +
                     batching + "); give it as --data");
  }
  if (!field("hash").is_string() ||
      field("hash").get<std::string>() != planner::file_hash(f.data)) {
    throw InputError("--data: " + f.data + " is not the data " + plan_path + " was made for (" +
                     path + "); plan again with this data");
  }
  if (!f.batching.empty() && f.batching != batching) {
    throw InputError("--batching: " + plan_path + " was made for --batching " + batching +
                     ", not " + f.batching);
  }
  f.batching = batching;
  if (field("seed").is_number_unsigned()) {
    f.seed = field("seed").get<uint64_t>();  // the order the plan's shapes came from
    f.seed_from_plan = true;
  }
  if (sub.get_option("--pad-multiple")->count() == 0 && field("pad_multiple").is_number_integer()) {
    f.pad_multiple = field("pad_multiple").get<int64_t>();
  }
}

// What a checkpoint of this run must match to continue it (cli/checkpoints.h).
RunIdentity run_identity(const executor::TrainRequest& q, const RunOrigin& origin,
                         const DataFlags& data, const std::optional<TrainData>& batched) {
  RunIdentity id;
  id.fields["model"] = reports::run_model_json(reports::run_model(origin.model_spec, q.model));
  id.fields["weights"] = q.weights_source.empty() ? "random" : q.weights_source;
  id.fields["config"] = reports::config_json(q.config);
  id.fields["training"] = {{"steps", q.steps},
                           {"lr", q.lr},
                           {"warmup_steps", q.warmup_steps},
                           {"seed", q.seed},
                           {"max_grad_norm", q.max_grad_norm},
                           {"weight_decay", q.weight_decay},
                           {"eval_every", q.eval_every}};
  const auto content = [](const std::string& path) {
    return path.empty() ? nlohmann::json() : nlohmann::json(planner::file_hash(path));
  };
  id.fields["data"] = {{"content_xxh3_128", content(data.data)},
                       {"eval_content_xxh3_128", content(data.eval_data)}};
  if (batched) {
    const data::BatchingOptions& o = batched->batches.options;
    id.fields["data"]["batching"] = o.batching.name();
    id.fields["data"]["pad_multiple"] = o.pad_multiple;
    id.fields["data"]["longest_first"] = o.longest_first;
    id.fields["data"]["micro_batches"] = batched->batches.batches.size();
  }
  return id;
}

// SIGINT and SIGTERM while training: the first asks the executor to stop after a checkpoint,
// a second exits at once (the checkpoints already written are complete: each is renamed into
// place whole).
std::atomic<int> stop_signal{0};
extern "C" void on_stop_signal(int sig) {
  if (stop_signal.exchange(sig) != 0) std::_Exit(128 + sig);
}

class StopSignals {
 public:
  StopSignals() {
    stop_signal = 0;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction old_int_ {
  }, old_term_{};
};

// {"fwd L0": bytes, ...}: each phase's peak within one step.
nlohmann::ordered_json phase_peaks(const std::vector<executor::PhaseMeasure>& phases) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const executor::PhaseMeasure& p : phases) j[p.name] = p.peak_bytes;
  return j;
}

nlohmann::json report_json(const executor::RunReport& r, const executor::TrainRequest& q,
                           const RunOrigin& origin) {
  const std::string& plan = origin.plan;
  nlohmann::json j;
  j["model"] = reports::run_model_json(reports::run_model(origin.model_spec, q.model));
  j["config"] = reports::config_json(q.config);
  j["training"] = {
      {"steps", q.steps},
      {"lr", q.lr},
      {"warmup_steps", q.warmup_steps},
      {"seed", q.seed},
      {"data", q.data_path.empty() ? nlohmann::json("synthetic") : nlohmann::json(q.data_path)},
      {"budget_bytes", q.budget_bytes > 0 ? nlohmann::json(q.budget_bytes) : nlohmann::json()},
      {"weights", r.weights},
      {"gpu", origin.gpu.empty() ? nlohmann::json() : nlohmann::json(origin.gpu)},
      {"plan", plan.empty() ? nlohmann::json() : nlohmann::json(plan)}};
  j["environment"] = {
      {"device", r.device}, {"libtorch_version", r.libtorch_version}, {"threads", r.threads}};
  // peak_bytes: allocated (live tensor) bytes; reserved_peak_bytes: with the caching allocator's
  // free cached blocks on CUDA, equal to peak_bytes on the CPU.
  j["measured"] = {{"peak_bytes", r.peak_bytes},
                   {"reserved_peak_bytes", r.reserved_peak_bytes},
                   {"resident_bytes", r.resident_bytes},
                   {"host_bytes", r.host_bytes}};
  j["measured"]["phases"] = nlohmann::json::array();
  for (const executor::PhaseMeasure& p : r.phases) {
    j["measured"]["phases"].push_back({{"name", p.name},
                                       {"peak_bytes", p.peak_bytes},
                                       {"reserved_peak_bytes", p.reserved_peak_bytes}});
  }
  j["steps"] = nlohmann::json::array();
  for (const executor::StepMeasure& s : r.steps) {
    j["steps"].push_back(
        {{"step", s.step},
         {"loss", s.loss},
         {"tokens", s.tokens},
         {"eval_loss", s.eval_loss >= 0 ? nlohmann::json(s.eval_loss) : nlohmann::json()},
         {"tokens_per_s", s.tokens_per_s},
         {"peak_bytes", s.peak_bytes},
         {"reserved_peak_bytes", s.reserved_peak_bytes},
         {"live_bytes", s.live_bytes},
         {"host_rss_bytes", s.host_rss_bytes},
         {"phases", phase_peaks(s.phases)},
         {"lr", s.lr}});
  }
  j["oom_splits"] = nlohmann::json::array();
  for (const executor::OomSplit& s : r.oom_splits) {
    j["oom_splits"].push_back({{"step", s.step},
                               {"micro_batch", s.micro_batch},
                               {"from", s.from},
                               {"to", s.to},
                               {"eval", s.eval}});
  }
  j["interrupted"] = r.interrupted != 0;
  j["interrupt_signal"] = r.interrupted != 0
                              ? nlohmann::json("SIG" + std::string(sigabbrev_np(r.interrupted)))
                              : nlohmann::json();
  j["checkpoint"] = r.checkpoint.empty() ? nlohmann::json() : nlohmann::json(r.checkpoint);
  j["resumed_from"] =
      q.resume_from.empty()
          ? nlohmann::json()
          : nlohmann::json({{"checkpoint", q.resume_from}, {"step", r.resumed_step}});
  j["out_of_memory"] = r.out_of_memory;
  j["diverged_step"] = r.diverged_step > 0 ? nlohmann::json(r.diverged_step) : nlohmann::json();
  j["error"] = r.error.empty() ? nlohmann::json() : nlohmann::json(r.error);
  j["files"] = r.files;
  return j;
}

// After an out-of-memory the run could not split its way out of (the last micro-batch it tried
// had `tried` sequences): whether the planner predicted it, and else the largest micro-batch it
// predicts to fit the budget at this T.
std::string what_would_fit(const executor::TrainRequest& q, const planner::DeviceModel& device,
                           int64_t tried) {
  const int64_t budget = q.budget_bytes > 0 ? q.budget_bytes : device.budget_bytes;
  if (budget <= 0) return "no budget to plan against";
  const auto peak_at = [&](int64_t b) {
    planner::TrainConfig c = planner::with_shape(q.config, {b, q.config.seq_len, 1, 0});
    c.grad_accum = q.config.grad_accum;
    return planner::estimate(q.model, c, device).peak_bytes;
  };
  const std::string T = std::to_string(q.config.seq_len);
  if (const int64_t p = peak_at(tried); p <= budget) {
    return "the planner predicted " + planner::format_bytes(p) + " for micro-batch " +
           std::to_string(tried) + " x " + T + ", within the budget of " +
           planner::format_bytes(budget) +
           ": an out-of-memory it did not predict; loraplan verify --run on the report holds each "
           "measured phase against the prediction";
  }
  for (int64_t b = tried - 1; b >= 1; --b) {
    if (const int64_t p = peak_at(b); p <= budget) {
      const int64_t effective = q.config.micro_batch * q.config.grad_accum;
      return "the planner predicts micro-batch " + std::to_string(b) + " x " + T + " fits (peak " +
             planner::format_bytes(p) + " of " + planner::format_bytes(budget) +
             "): --micro-batch " + std::to_string(b) + " --grad-accum " +
             std::to_string((effective + b - 1) / b) +
             " keeps the batch; loraplan plan finds the fastest plan that fits";
    }
  }
  return "the planner predicts even micro-batch 1 x " + T + " needs " +
         planner::format_bytes(peak_at(1)) + ", over the budget of " +
         planner::format_bytes(budget) +
         "; loraplan plan searches checkpointing, offload and loss chunking for a plan that fits";
}

// Host memory the system can give this process now: MemAvailable (/proc/meminfo), lowered to
// what the cgroup (a container's limit, cgroup v2) has left; LORAPLAN_HOST_MEMORY_AVAILABLE
// (bytes, or a size such as 8GiB) overrides both. 0: unknown.
int64_t host_memory_available() {
  if (const char* v = std::getenv("LORAPLAN_HOST_MEMORY_AVAILABLE"); v != nullptr && *v != 0)
    return planner::parse_size(v, "LORAPLAN_HOST_MEMORY_AVAILABLE");
  int64_t available = 0;
  std::ifstream meminfo("/proc/meminfo");
  for (std::string key; meminfo >> key;) {
    int64_t kb = 0;
    meminfo >> kb;
    if (key == "MemAvailable:") available = kb * 1024;
    meminfo.ignore(64, '\n');
  }
  std::ifstream max("/sys/fs/cgroup/memory.max"), current("/sys/fs/cgroup/memory.current");
  int64_t limit = 0, used = 0;
  if (max >> limit && current >> used && limit > used) {
    available = available > 0 ? std::min(available, limit - used) : limit - used;
  }
  return available;
}

// Refuses a run whose host memory need (offloaded weights, paged optimizer state, the dataset's
// tokens held for training) exceeds what the system has; warns above 80% of it.
void check_host_memory(const executor::TrainRequest& q, const planner::Estimate& e,
                       std::ostream& err) {
  int64_t tokens = 0;
  for (const auto* set : {&q.sequences, &q.eval_sequences}) {
    for (const executor::DataSequence& d : *set) tokens += static_cast<int64_t>(d.ids.size());
  }
  // The executor's copy of each sequence: int64 ids and labels.
  const int64_t dataset = tokens * 16;
  const int64_t need = e.host_bytes + dataset;
  const int64_t available = host_memory_available();
  if (need == 0 || available <= 0) return;
  std::string parts;
  if (e.host_bytes > 0) {
    parts = "offloaded weights and paged optimizer state " + planner::format_bytes(e.host_bytes);
  }
  if (dataset > 0) {
    parts += (parts.empty() ? "" : ", ") + std::string("the dataset's tokens ") +
             planner::format_bytes(dataset);
  }
  if (need > available) {
    throw InputError("host memory: the run needs " + planner::format_bytes(need) + " (" + parts +
                     ") beside LibTorch itself, more than the " + planner::format_bytes(available) +
                     " this system has available" +
                     (e.host_bytes > 0 ? "; offload fewer layers (--offload) or keep the "
                                         "optimizer state on the device (adamw-8bit)"
                                       : std::string()));
  }
  if (need * 5 > available * 4) {
    err << "loraplan: warning: host memory: the run needs " << planner::format_bytes(need) << " ("
        << parts << ") of the " << planner::format_bytes(available) << " available\n";
  }
}

// One line per step: step, loss, learning rate, tokens/s, memory (CPU: live and peak; CUDA:
// allocated, reserved and peak) beside the planner's predicted peak, and the process's resident
// memory. On a terminal the line is redrawn in place each step with a bar and the time left;
// otherwise it is printed at step 1, every 10th and the last (and where the run stopped).
class Progress {
 public:
  Progress(std::ostream& out, bool terminal, bool cuda, int64_t steps, int64_t predicted_peak)
      : out_(out),
        terminal_(terminal),
        cuda_(cuda),
        steps_(steps),
        predicted_(predicted_peak),
        start_(std::chrono::steady_clock::now()) {}

  void step(const executor::StepMeasure& s) {
    if (first_ == 0) first_ = s.step;
    if (terminal_) {
      out_ << "\r" << line(s) << "  " << bar(s) << "\x1b[K" << std::flush;
      open_ = true;
    } else if (s.step == 1 || s.step % 10 == 0 || s.step == steps_) {
      out_ << line(s) << "\n" << std::flush;
    }
    last_ = s;
    shown_ = terminal_ || s.step == 1 || s.step % 10 == 0 || s.step == steps_;
  }

  // Ends the redrawn line, and shows the last step if it was not shown.
  void finish() {
    if (open_) {
      out_ << "\n";
    } else if (last_.step > 0 && !shown_) {
      out_ << line(last_) << "\n";
    }
    out_ << std::flush;
  }

 private:
  std::string line(const executor::StepMeasure& s) const {
    const auto bytes = [](int64_t b) { return planner::format_bytes(b); };
    std::string memory =
        cuda_ ? "allocated " + bytes(s.live_bytes) + "  reserved " + bytes(s.reserved_peak_bytes)
              : "live " + bytes(s.live_bytes);
    memory += "  peak " + bytes(s.peak_bytes);
    if (predicted_ > 0) memory += " (predicted " + bytes(predicted_) + ")";
    char head[96];
    std::snprintf(head, sizeof head, "step %4lld/%lld  loss %.4f  lr %.1e  %8.0f tokens/s  ",
                  static_cast<long long>(s.step), static_cast<long long>(steps_), s.loss, s.lr,
                  s.tokens_per_s);
    return head + memory + "  rss " + bytes(s.host_rss_bytes);
  }

  std::string bar(const executor::StepMeasure& s) const {
    constexpr int kWidth = 20;
    const double done = static_cast<double>(s.step) / static_cast<double>(steps_);
    const int filled = static_cast<int>(done * kWidth);
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double per_step = elapsed / static_cast<double>(s.step - first_ + 1);
    const auto left = static_cast<int64_t>(per_step * static_cast<double>(steps_ - s.step) + 0.5);
    char eta[32];
    std::snprintf(eta, sizeof eta, "%lld:%02lld", static_cast<long long>(left / 60),
                  static_cast<long long>(left % 60));
    return "[" + std::string(filled, '#') + std::string(kWidth - filled, '.') + "] " + eta +
           " left";
  }

  std::ostream& out_;
  bool terminal_, cuda_;
  int64_t steps_, predicted_;
  std::chrono::steady_clock::time_point start_;
  int64_t first_ = 0;
  executor::StepMeasure last_;
  bool open_ = false, shown_ = false;
};

}  // namespace

Handler define_train(CLI::App& sub) {
  auto f = std::make_shared<TrainFlags>();
  f->config = executor_flags();
  add_config_flags(sub, f->config);
  sub.add_option("--plan", f->plan,
                 "plan.json from loraplan plan (made with --device cpu): applies every knob of it");
  auto* data = add_data_flags(sub, f->data, DataFlagsFor::kTraining);
  sub.add_flag("--synthetic", f->synthetic,
               "Train on a small fixed set of random sequences (the default)")
      ->excludes(data);
  sub.add_option("--steps", f->steps, "Optimizer steps")
      ->check(positive_integer())
      ->default_str("50");
  sub.add_option("--out", f->out, "Directory for report.json and the adapter (PEFT format)")
      ->required();
  sub.add_option("--lr", f->lr, "Peak learning rate")
      ->check(positive_number())
      ->default_str("2e-4");
  sub.add_option("--warmup-steps", f->warmup_steps, "Linear warmup steps before the cosine decay")
      ->check(non_negative_integer())
      ->default_str("0");
  sub.add_option("--seed", f->seed, "Seed of weights, adapters, dropout and data order")
      ->default_str("0");
  sub.add_option("--threads", f->threads, "Intra-op threads")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            const std::optional<int64_t> n = parse_positive_integer(text);
            return n && *n <= 1024 ? ""
                                   : "must be a number of threads in 1..1024, got \"" + text + "\"";
          },
          "1..1024"))
      ->default_str("1");
  sub.add_option("--eval-every", f->eval_every,
                 "With --eval-data: evaluate after every N optimizer steps (and after the last)")
      ->check(non_negative_integer())
      ->default_str("0");
  sub.add_option("--max-grad-norm", f->max_grad_norm, "Gradient clipping (0 = off)")
      ->check(non_negative_number())
      ->default_str("1.0");
  sub.add_option("--save-every", f->save_every,
                 "Write a checkpoint under --out/checkpoints after every N optimizer steps "
                 "(0 = only when interrupted)")
      ->check(non_negative_integer())
      ->default_str("0");
  sub.add_option("--keep", f->keep, "Checkpoints kept (the newest)")
      ->check(positive_integer())
      ->default_str("2");
  sub.add_option("--on-oom", f->on_oom,
                 "Out of memory inside a micro-batch: split it in halves and go on with the same "
                 "gradient (split), or stop (stop)")
      ->check(CLI::IsMember({"split", "stop"}))
      ->default_str("split");
  sub.add_option("--trace-step", f->trace_step,
                 "The optimizer step whose memory timeline is recorded into --out/timeline.json "
                 "(every allocation and free; CPU); 0: none")
      ->check(non_negative_integer())
      ->default_str("1");
  sub.add_option("--trace", f->trace,
                 "Also write that timeline as a Chrome trace (JSON; Perfetto, chrome://tracing)");
  sub.add_option("--resume", f->resume,
                 "Continue from the newest complete checkpoint in DIR (a run's --out, its "
                 "checkpoints folder or one step-N folder); the run's flags must match it");
  return [f, &sub](Io& io) {
    executor::Backend& backend = executor::require_backend("train");
    executor::TrainRequest q;
    RunSpec run = resolve_run(sub, f->config, f->plan);
    if (!f->plan.empty()) apply_plan_data(f->plan, sub, f->data);
    planner::WeightFiles weights = planner::safetensors_weights(run.model_spec);
    q.model = std::move(run.model);
    q.config = run.config;
    q.weights_source = std::move(weights.source);
    q.weights = std::move(weights.tensors);
    q.data_path = f->data.data;
    q.steps = f->steps;
    q.lr = f->lr;
    q.warmup_steps = f->warmup_steps;
    q.seed = f->seed;
    q.threads = f->threads;
    q.max_grad_norm = f->max_grad_norm;
    // --budget, else the plan's (a CPU plan is made for the executor's limit).
    q.budget_bytes = !f->config.budget.empty() ? planner::parse_size(f->config.budget, "--budget")
                     : f->plan.empty()         ? 0
                                               : run.device.budget_bytes;
    q.out_dir = f->out;
    const planner::TrainConfig planned = q.config;  // with --plan, its eval step
    const std::vector<data::MicroBatch> eval_batches =
        apply_eval_data(f->data, run.model_spec, q.model.vocab, q.config, [&](data::Sample&& s) {
          q.eval_sequences.push_back({std::move(s.ids), std::move(s.labels)});
        });
    for (const data::MicroBatch& b : eval_batches) {
      q.eval_batches.push_back({b.rows, b.seq_len, b.documents});
    }
    q.eval_every = f->eval_every;
    if (!f->plan.empty() && planned.has_eval()) {
      const std::string shape =
          std::to_string(planned.eval_micro_batch) + " x " + std::to_string(planned.eval_seq_len);
      if (eval_batches.empty()) {
        throw InputError("--plan: " + f->plan + " includes an eval step of " + shape +
                         "; give its --eval-data");
      }
      if (q.config.eval_micro_batch > planned.eval_micro_batch ||
          q.config.eval_seq_len > planned.eval_seq_len) {
        throw InputError("--eval-data: its largest micro-batch is " +
                         std::to_string(q.config.eval_micro_batch) + " x " +
                         std::to_string(q.config.eval_seq_len) + ", beyond the plan's " + shape);
      }
      q.config.eval_micro_batch = planned.eval_micro_batch;
      q.config.eval_seq_len = planned.eval_seq_len;
    }
    std::optional<TrainData> data;
    if (!f->data.data.empty()) {
      data = load_train_data(f->data, run.model_spec, q, run.device);
      const data::MicroBatch& w = data->worst();
      const int64_t n = static_cast<int64_t>(data->batches.batches.size());
      io.out << "data: " << f->data.data << ", " << reports::with_commas(data->lengths.summary.rows)
             << " rows in " << reports::with_commas(n) << " micro-batches ("
             << data->batches.options.batching.name() << "), an epoch is "
             << (n + q.config.grad_accum - 1) / q.config.grad_accum << " steps; worst micro-batch "
             << w.sequences << " x " << w.seq_len << " (rows " << rows_text(w.rows)
             << "), predicted peak " << planner::format_bytes(data->worst_peak) << "\n";
    }
    const planner::Estimate planned_step = planner::estimate(q.model, q.config, run.device);
    check_host_memory(q, planned_step, io.err);
    prepare_output_dir(f->out);
    const RunOrigin origin{
        run.model_spec, q.config.device == planner::Device::kCuda ? run.device.name : "", f->plan};
    q.save_every = f->save_every;
    q.keep = f->keep;
    q.checkpoint_dir = (std::filesystem::path(f->out) / "checkpoints").string();
    const RunIdentity identity = run_identity(q, origin, f->data, data);
    q.identity = identity.text();
    if (!f->resume.empty()) {
      q.resume_from = find_checkpoint(f->resume, identity, io.err);
      const int64_t step = checkpoint_step(q.resume_from);
      io.out << "resuming from " << q.resume_from << ": step " << step << " of " << q.steps
             << " done\n";
    }
    q.stop = &stop_signal;
    q.split_on_oom = f->on_oom == "split";
    q.trace_step = f->trace_step;
    if (q.weights.empty()) {
      io.out << "weights: random (seed " << q.seed << "): " << run.model_spec
             << " names no weight files, so the frozen weights are drawn at random\n";
    }
    const int64_t predicted = data ? data->worst_peak : planned_step.peak_bytes;
    Progress progress(io.out, &io.out == &std::cout && isatty(STDOUT_FILENO) != 0,
                      q.config.device == planner::Device::kCuda, q.steps, predicted);
    q.on_step = [&](const executor::StepMeasure& s) { progress.step(s); };
    executor::RunReport r;
    try {
      const StopSignals signals;
      r = backend.train(q);
    } catch (const std::invalid_argument& e) {
      throw InputError(e.what());
    }
    progress.finish();
    const std::string report_path = (std::filesystem::path(f->out) / "report.json").string();
    nlohmann::json report = report_json(r, q, origin);
    if (data) {
      report["data"] =
          data_json(*data, f->data.data, static_cast<int64_t>(r.steps.size()), q.config.grad_accum);
    }
    if (!r.timeline.points.empty()) {
      const std::string path = (std::filesystem::path(f->out) / "timeline.json").string();
      write_file_atomic(path, timeline_json(r.timeline, r.device).dump() + "\n");
      report["timeline"] = {{"step", r.timeline.step},
                            {"file", "timeline.json"},
                            {"events", r.timeline.events},
                            {"points", r.timeline.points.size()}};
      if (!f->trace.empty()) {
        write_file_atomic(
            f->trace,
            reports::chrome_trace_json(
                measured_as_timeline(r.timeline),
                "loraplan train: step " + std::to_string(r.timeline.step) + " measured"),
            "--trace");
      }
    } else if (!f->trace.empty()) {
      io.err << "loraplan: --trace: no timeline was recorded ("
             << (r.device == "cuda" ? "CUDA runs do not record one yet"
                                    : "step " + std::to_string(f->trace_step) + " did not run")
             << "); " << f->trace << " not written\n";
    }
    write_file_atomic(report_path, report.dump(2) + "\n");
    io.out << "measured peak " << planner::format_bytes(r.peak_bytes) << " ("
           << reports::with_commas(r.peak_bytes) << " bytes); report: " << report_path << "\n";
    if (r.interrupted != 0) {
      const int64_t done = r.steps.empty() ? 0 : r.steps.back().step;
      io.out << "INTERRUPTED (SIG" << sigabbrev_np(r.interrupted) << ") after step " << done
             << " of " << q.steps;
      const std::string& checkpoint = !r.checkpoint.empty() ? r.checkpoint : q.resume_from;
      if (checkpoint.empty()) {
        io.out << ": no step had finished, so there is no checkpoint to resume from\n";
      } else {
        io.out << ": checkpoint " << checkpoint << "; continue with the same command and --resume "
               << f->out << "\n";
      }
      return 128 + r.interrupted;
    }
    int64_t reached = q.config.micro_batch;  // the training micro-batch the splits came down to
    for (const executor::OomSplit& s : r.oom_splits) {
      if (s.eval) {
        io.out << "out of memory in step " << s.step << "'s evaluation, eval micro-batch "
               << s.micro_batch << " (" << s.from << " sequences): split into pieces of " << s.to
               << " with the same eval loss, and so on from there\n";
        continue;
      }
      reached = s.to;
      io.out << "out of memory in step " << s.step << ", micro-batch " << s.micro_batch << " ("
             << s.from << " sequences): split into pieces of " << s.to
             << " with the same gradient, and so on from there\n";
    }
    if (r.out_of_memory) {
      io.out << "OUT OF MEMORY: " << r.error << "\n";
      io.out << what_would_fit(q, run.device, reached) << "\n";
      return kExitCheckFailed;
    }
    if (r.diverged_step > 0) {
      io.out << "STOPPED, NOT FINITE: " << r.error << "; no adapter written\n";
      return kExitCheckFailed;
    }
    return kExitOk;
  };
}

}  // namespace loraplan::cli
