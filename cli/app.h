#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace CLI {
class App;
class Validator;
}  // namespace CLI

namespace loraplan::cli {

// Exit codes; only run() turns outcomes into them.
constexpr int kExitOk = 0;
constexpr int kExitCheckFailed = 1;  // the command ran and its answer is "no" (verify, fits)
constexpr int kExitBadInput = 2;     // a flag, file or profile is wrong
constexpr int kExitInternal = 3;     // a bug or an environment failure

struct Io {
  std::ostream& out;
  std::ostream& err;
  std::string command;  // the command line as given ("loraplan estimate --gpu 6GB"), for reports
};

// What a subcommand runs once its flags are parsed; returns the exit code.
using Handler = std::function<int(Io&)>;

// One row of the command table: declares the subcommand's flags on `sub` (binding them to
// state the handler captures) and returns the handler.
struct Command {
  const char* name;
  const char* help;
  Handler (*define)(CLI::App& sub);
};

const std::vector<Command>& commands();

// Runs the loraplan command line and returns the process exit code.
int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int run(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

// Flags shared by several subcommands.
void add_format_flag(CLI::App& sub, std::string& format, bool markdown = true, bool html = false);
void add_model_flag(CLI::App& sub, std::string& model);

// "12" -> 12; anything but a positive decimal integer -> nullopt.
std::optional<int64_t> parse_positive_integer(const std::string& text);

// Flag check with a readable message: "--lora-rank: must be a positive integer, got "0"".
CLI::Validator positive_integer();
CLI::Validator non_negative_integer();

// "2e-4" -> 2e-4: a finite decimal number and nothing else (no spaces, hex, inf or nan).
std::optional<double> parse_number(const std::string& text);

// Flag checks for numbers (parse_number, then the range): lr > 0, alpha > 0, norm >= 0, dropout
// in [0, 1).
CLI::Validator positive_number();
CLI::Validator non_negative_number();
CLI::Validator probability();

// Writes `text` to `path` whole or not at all: a temporary file in the same folder, renamed over
// `path` once complete. Refuses (InputError naming `flag`) an empty path, a missing folder, and a
// path that is a folder, a device, a FIFO or a socket: only a regular file is ever replaced.
void write_file_atomic(const std::string& path, const std::string& text,
                       const std::string& flag = "--out");

// Makes `dir` a folder that exists and can be written (creating it and its parents); InputError
// naming `flag` when it cannot: "--out: run/report.json exists and is not a folder".
void prepare_output_dir(const std::string& dir, const std::string& flag = "--out");

// Splits "a,b,c" into its entries (no empty ones).
std::vector<std::string> split_list(const std::string& text);

// The names of a knob table's rows (planner::optimizers(), planner::weight_formats()), as a
// flag's choices.
template <typename Rows>
std::vector<std::string> names_of(const Rows& rows) {
  std::vector<std::string> names;
  for (const auto& r : rows) names.emplace_back(r.name);
  return names;
}

Handler define_estimate(CLI::App& sub);
Handler define_inspect(CLI::App& sub);
Handler define_profiles(CLI::App& sub);
Handler define_train(CLI::App& sub);
Handler define_verify(CLI::App& sub);
Handler define_report(CLI::App& sub);
Handler define_plan(CLI::App& sub);
Handler define_sweep(CLI::App& sub);
Handler define_demo(CLI::App& sub);
Handler define_tokenize(CLI::App& sub);
Handler define_data(CLI::App& sub);
Handler define_export(CLI::App& sub);
Handler define_merge(CLI::App& sub);

}  // namespace loraplan::cli
