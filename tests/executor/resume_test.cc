// Checkpoints and resume through the loraplan binary: a run killed (SIGKILL) at a random point
// and resumed ends with an adapter bit-identical to an uninterrupted run (fp32, CPU, 1 thread,
// dropout on); SIGINT and SIGTERM stop cleanly with a checkpoint; a damaged checkpoint is skipped
// for the one before; a checkpoint of another run is refused.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "fixtures/model_files.h"
#include "run_train_cli.h"

extern char** environ;

namespace loraplan::cli {
namespace {

namespace fs = std::filesystem;
using loraplan::testing::read_text;
using loraplan::testing::TempDir;

const char* const kBinary = LORAPLAN_BINARY_DIR "/cli/loraplan";

testing::Result run(const std::vector<std::string>& args) {
  return testing::run_with_executor(args);
}

// 60 optimizer steps of tiny-llama in fp32 with LoRA dropout: about a second and a half of
// training, long enough to be killed in the middle.
std::vector<std::string> train_args(const std::string& out, std::vector<std::string> extra = {}) {
  std::vector<std::string> a = {
      "train", "--model",      "tiny-llama", "--seq-len",       "64",   "--micro-batch",
      "2",     "--grad-accum", "2",          "--compute-dtype", "fp32", "--lora-dropout",
      "0.1",   "--steps",      "60",         "--seed",          "5",    "--threads",
      "1",     "--out",        out};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// The binary as a child process (output discarded).
pid_t spawn(const std::vector<std::string>& args) {
  testing::use_executor_module();
  std::vector<std::string> all = {kBinary};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, kBinary, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(rc, 0);
  return pid;
}

// Waits until a complete checkpoint of step `step` or later exists under `out` (or the child has
// exited); false when it exited first.
bool wait_for_checkpoint(pid_t pid, const std::string& out, int64_t step = 1) {
  for (int i = 0; i < 10000; ++i) {
    std::error_code ec;
    for (const fs::directory_entry& e : fs::directory_iterator(fs::path(out) / "checkpoints", ec)) {
      const std::string name = e.path().filename().string();
      if (name.rfind("step-", 0) == 0 && std::stoll(name.substr(5)) >= step) return true;
    }
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

int exit_status(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string adapter(const std::string& out) {
  return read_text(out + "/adapter_model.safetensors");
}

TEST(Resume, ARunKilledAtARandomPointAndResumedEqualsOneNeverStopped) {
  TempDir dir;
  const std::string whole = dir.file("whole"), killed = dir.file("killed");
  ASSERT_EQ(run(train_args(whole)).code, 0);
  // A random point: after a random one of the first 10 checkpoints (every 4 steps), a random
  // fraction of a step later; 20 steps are left whatever the machine's speed.
  std::mt19937 rng(std::random_device{}());
  const int64_t after = 4 * std::uniform_int_distribution<int64_t>(1, 10)(rng);
  const int delay_us = std::uniform_int_distribution<int>(0, 3000)(rng);
  const pid_t pid = spawn(train_args(killed, {"--save-every", "4"}));
  ASSERT_TRUE(wait_for_checkpoint(pid, killed, after)) << "the run ended before step " << after;
  std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
  kill(pid, SIGKILL);
  const std::string at = std::to_string(delay_us) + " us after checkpoint " + std::to_string(after);
  ASSERT_EQ(exit_status(pid), 128 + SIGKILL) << "the run ended before the kill, " << at;
  ASSERT_FALSE(fs::exists(killed + "/adapter_model.safetensors"));
  const testing::Result r = run(train_args(killed, {"--save-every", "4", "--resume", killed}));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("resuming from " + killed + "/checkpoints/step-"), std::string::npos)
      << r.out;
  EXPECT_EQ(adapter(killed), adapter(whole)) << "killed " << at;
  const nlohmann::json a = nlohmann::json::parse(read_text(whole + "/report.json"));
  const nlohmann::json b = nlohmann::json::parse(read_text(killed + "/report.json"));
  ASSERT_EQ(b["steps"].size(), 60u);
  for (size_t i = 0; i < 60; ++i) EXPECT_EQ(a["steps"][i]["loss"], b["steps"][i]["loss"]) << i;
  EXPECT_GT(b["resumed_from"]["step"].get<int64_t>(), 0);
  EXPECT_EQ(b["interrupted"], false);
}

struct SignalCase {
  int signal;
  int twice;  // a second signal right after the first
};

class Stop : public ::testing::TestWithParam<SignalCase> {};

TEST_P(Stop, ASignalStopsWithACheckpointAndTheRunContinuesFromIt) {
  const SignalCase p = GetParam();
  TempDir dir;
  const std::string whole = dir.file("whole"), stopped = dir.file("stopped");
  ASSERT_EQ(run(train_args(whole)).code, 0);
  const pid_t pid = spawn(train_args(stopped, {"--save-every", "5"}));
  ASSERT_TRUE(wait_for_checkpoint(pid, stopped));
  kill(pid, p.signal);
  if (p.twice) kill(pid, p.signal);
  EXPECT_EQ(exit_status(pid), 128 + p.signal);
  if (!p.twice) {
    // A clean stop: report.json says where, and a checkpoint of the last finished step exists.
    const nlohmann::json report = nlohmann::json::parse(read_text(stopped + "/report.json"));
    EXPECT_EQ(report["interrupted"], true);
    EXPECT_EQ(report["interrupt_signal"], p.signal == SIGINT ? "SIGINT" : "SIGTERM");
    const int64_t done = report["steps"].back()["step"];
    EXPECT_LT(done, 60);
    char name[32];
    std::snprintf(name, sizeof name, "step-%06lld", static_cast<long long>(done));
    EXPECT_EQ(report["checkpoint"], stopped + "/checkpoints/" + name);
    EXPECT_FALSE(fs::exists(stopped + "/adapter_model.safetensors"));
  }
  // Either way every checkpoint left is whole, and the run continues to the same adapter.
  const testing::Result r = run(train_args(stopped, {"--save-every", "5", "--resume", stopped}));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");  // no damaged checkpoint skipped
  EXPECT_EQ(adapter(stopped), adapter(whole));
}

INSTANTIATE_TEST_SUITE_P(Signals, Stop,
                         ::testing::Values(SignalCase{SIGINT, 0}, SignalCase{SIGTERM, 0},
                                           SignalCase{SIGINT, 1}),
                         [](const auto& info) {
                           return std::string(info.param.signal == SIGINT ? "sigint" : "sigterm") +
                                  (info.param.twice ? "_twice" : "");
                         });

TEST(Resume, ADamagedCheckpointIsSkippedForThePreviousOne) {
  TempDir dir;
  const std::string whole = dir.file("whole"), run_dir = dir.file("run");
  ASSERT_EQ(run(train_args(whole)).code, 0);
  // Checkpoints at 10, 20, 30, 40, 50; the newest three kept.
  ASSERT_EQ(run(train_args(run_dir, {"--save-every", "10", "--keep", "3"})).code, 0);
  const fs::path ck = fs::path(run_dir) / "checkpoints";
  std::vector<std::string> names;
  for (const fs::directory_entry& e : fs::directory_iterator(ck))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  ASSERT_EQ(names, (std::vector<std::string>{"step-000030", "step-000040", "step-000050"}));
  // The newest cut short, as a full disk or a kill in the middle of a copy would leave it.
  const fs::path state = ck / "step-000050" / "training_state.safetensors";
  ASSERT_EQ(fs::file_size(state), 305914u);
  fs::resize_file(state, 152957);
  fs::remove(run_dir + "/adapter_model.safetensors");
  const testing::Result r = run(train_args(run_dir, {"--resume", run_dir}));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "loraplan: warning: --resume: skipping " + (ck / "step-000050").string() +
                       ": training_state.safetensors has 152,957 bytes, trainer_state.json "
                       "says 305,914\n");
  EXPECT_NE(r.out.find("resuming from " + (ck / "step-000040").string() + ": step 40 of 60 done"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(adapter(run_dir), adapter(whole));
}

TEST(Resume, ACheckpointOfAnotherRunIsRefusedNamingTheField) {
  TempDir dir;
  const std::string run_dir = dir.file("run");
  ASSERT_EQ(run(train_args(run_dir, {"--save-every", "20"})).code, 0);
  std::vector<std::string> args = train_args(run_dir, {"--resume", run_dir, "--lora-rank", "8"});
  testing::Result r = run(args);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "loraplan: error: --resume: " + run_dir +
                       "/checkpoints/step-000040 continues another run: config.lora.rank is 16 "
                       "in the checkpoint; this run has 8\n");
  args = train_args(run_dir, {"--resume", run_dir});
  *(std::find(args.begin(), args.end(), "--seed") + 1) = "6";
  r = run(args);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("training.seed is 5 in the checkpoint; this run has 6"), std::string::npos)
      << r.err;
  r = run(train_args(dir.file("fresh"), {"--resume", dir.file("fresh")}));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("holds no checkpoint"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace loraplan::cli
