#include "app.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <ostream>

#include "loraplan/executor/backend.h"
#include "loraplan/planner/errors.h"
#include "loraplan/planner/text.h"

#ifndef LORAPLAN_VERSION
#define LORAPLAN_VERSION "0.0.0"
#endif

namespace loraplan::cli {

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"estimate", "Simulate one training step's memory and say whether it fits the GPU",
       define_estimate},
      {"plan", "Find the fastest plan that fits the GPU and write it as plan.json", define_plan},
      {"sweep", "Which GPUs fit the model at which sequence lengths, with the best plan of each",
       define_sweep},
      {"inspect", "Show a model's architecture, parameters by role and dtype, and sizes",
       define_inspect},
      {"profiles", "List the model and GPU profiles --model and --gpu accept", define_profiles},
      {"train", "Train with the LibTorch executor as configured and measure memory per phase",
       define_train},
      {"verify", "Hold a run's measured memory against the prediction, phase by phase",
       define_verify},
      {"data",
       "A dataset's lengths and, per batching policy, micro-batches, padding and the largest",
       define_data},
      {"tokenize", "Run a Hugging Face tokenizer.json on a text or a dataset's rows: the ids",
       define_tokenize},
      {"export",
       "Write a plan as a trainer's configuration: transformers, TRL, axolotl, torchtune, Unsloth",
       define_export},
      {"report", "A run's page: predicted and measured memory over the step, phases, loss",
       define_report},
      {"merge", "Merge a LoRA adapter into its base model's safetensors, for serving",
       define_merge},
      {"demo", "The whole loop on a tiny model on the CPU: estimate, train a few steps, verify",
       define_demo},
  };
  return table;
}

void add_format_flag(CLI::App& sub, std::string& format, bool markdown, bool html) {
  std::vector<std::string> formats = {"table", "json"};
  if (markdown) formats.push_back("md");
  if (html) formats.push_back("html");
  sub.add_option("--format", format, "Output format")
      ->check(CLI::IsMember(formats))
      ->default_str(format);
}

std::optional<int64_t> parse_positive_integer(const std::string& text) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty() || v <= 0)
    return std::nullopt;
  return v;
}

CLI::Validator positive_integer() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        return parse_positive_integer(text) ? ""
                                            : "must be a positive integer, got \"" + text + "\"";
      },
      "N > 0");
}

CLI::Validator non_negative_integer() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        return text == "0" || parse_positive_integer(text)
                   ? ""
                   : "must be a non-negative integer, got \"" + text + "\"";
      },
      "N >= 0");
}

std::optional<double> parse_number(const std::string& text) {
  double v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v))
    return std::nullopt;
  return v;
}

namespace {

CLI::Validator number_check(bool (*in_range)(double), const std::string& requirement,
                            const std::string& label) {
  return CLI::Validator(
      [in_range, requirement](std::string& text) -> std::string {
        const std::optional<double> v = parse_number(text);
        return v && in_range(*v) ? "" : "must be " + requirement + ", got \"" + text + "\"";
      },
      label);
}

}  // namespace

CLI::Validator positive_number() {
  return number_check([](double v) { return v > 0; }, "a finite number > 0", "X > 0");
}
CLI::Validator non_negative_number() {
  return number_check([](double v) { return v >= 0; }, "a finite number >= 0", "X >= 0");
}
CLI::Validator probability() {
  return number_check([](double v) { return v >= 0 && v < 1; }, "a number in [0, 1)", "0 <= P < 1");
}

void write_file_atomic(const std::string& path, const std::string& text, const std::string& flag) {
  namespace fs = std::filesystem;
  if (path.empty()) throw InputError(flag + ": empty; give a file name");
  std::error_code ec;
  fs::path target(path);
  const fs::file_status st = fs::status(target, ec);  // follows links: a link's file is replaced
  if (fs::exists(st)) {
    if (fs::is_directory(st))
      throw InputError(flag + ": " + path + " is a folder; give a file name");
    if (!fs::is_regular_file(st))
      throw InputError(flag + ": " + path +
                       " is not a regular file (a device, FIFO or socket); refusing to replace it");
    if (fs::is_symlink(fs::symlink_status(target, ec))) target = fs::canonical(target, ec);
  }
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  if (!fs::is_directory(dir, ec))
    throw InputError(flag + ": " + path + ": the folder " + dir.string() + " does not exist");
  std::string tmp = (dir / ("." + target.filename().string() + ".XXXXXX")).string();
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0)
    throw InputError(flag + ": " + path + ": cannot write in " + dir.string() + ": " +
                     std::strerror(errno));
  bool ok = true;
  for (size_t done = 0; ok && done < text.size();) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  const int write_errno = errno;
  ok = ::fchmod(fd, 0644) == 0 && ok;
  ok = ::close(fd) == 0 && ok;
  if (!ok || ::rename(tmp.c_str(), target.c_str()) != 0) {
    const std::string why = std::strerror(ok ? errno : write_errno);
    ::unlink(tmp.c_str());
    throw InputError(flag + ": " + path + ": cannot write: " + why);
  }
}

void prepare_output_dir(const std::string& dir, const std::string& flag) {
  namespace fs = std::filesystem;
  if (dir.empty()) throw InputError(flag + ": empty; give a folder");
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (fs::exists(st) && !fs::is_directory(st))
    throw InputError(flag + ": " + dir + " exists and is not a folder");
  if (!fs::exists(st) && !fs::create_directories(dir, ec) && ec) {
    throw InputError(flag + ": cannot create the folder " + dir + ": " + ec.message());
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    throw InputError(flag + ": cannot write in the folder " + dir + ": " + std::strerror(errno));
  }
}

std::vector<std::string> split_list(const std::string& text) {
  return planner::split_nonempty(text, ',');
}

namespace {

std::string version_text() {
  const executor::BackendInfo b = executor::backend_info();
  std::string s = "loraplan " LORAPLAN_VERSION " (executor: ";
  if (!b.available) return s + "built without LibTorch)";
  return s + "LibTorch " + b.libtorch_version + (b.cuda_compiled ? ", CUDA)" : ", CPU)");
}

// CLI11's messages name the flag; keep them to one line.
std::string one_line(std::string s) {
  for (char& c : s) {
    if (c == '\n') c = ' ';
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

}  // namespace

int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app(
      "loraplan: will this LoRA/QLoRA fine-tuning run fit on this GPU, and what is the "
      "fastest plan that fits?",
      "loraplan");
  app.require_subcommand(0, 1);
  app.set_version_flag("--version", std::function<std::string()>(version_text));
  app.footer(
      "Exit codes: 0 ok, 1 the answer is no (does not fit, out of memory, verification failed, "
      "training diverged), 2 bad input (a flag, file or profile), 3 an internal error (a bug: "
      "please report "
      "it) or a part the build left out (the executor).");

  std::vector<std::pair<CLI::App*, Handler>> handlers;  // one per command-table row
  for (const Command& c : commands()) {
    CLI::App* sub = app.add_subcommand(c.name, c.help);
    handlers.emplace_back(sub, c.define(*sub));
  }

  // CLI11 parses argv in reverse order from a vector.
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    out << app.help();
    return kExitOk;
  } catch (const CLI::CallForVersion&) {
    out << version_text() << "\n";
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    err << "loraplan: error: " << one_line(e.what()) << " (see loraplan --help)\n";
    return kExitBadInput;
  }

  for (auto& [sub, handler] : handlers) {
    if (!sub->parsed()) continue;
    try {
      std::string command = "loraplan";
      for (const std::string& a : args) {
        const bool plain = !a.empty() && a.find_first_of(" \t\"'$\\") == std::string::npos;
        command += " " + (plain ? a : "'" + a + "'");
      }
      Io io{out, err, command};
      return handler(io);
    } catch (const InputError& e) {
      err << "loraplan: error: " << one_line(e.what()) << "\n";
      return kExitBadInput;
    } catch (const std::bad_alloc&) {
      err << "loraplan: error: out of host memory (" << sub->get_name()
          << " needed more than this machine could give)\n";
      return kExitCheckFailed;
    } catch (const std::exception& e) {
      err << "loraplan: error: " << one_line(e.what()) << "\n";
      return kExitInternal;
    }
  }
  out << app.help();
  return kExitOk;
}

int run(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return run(args, out, err);
}

}  // namespace loraplan::cli
