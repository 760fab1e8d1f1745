// The plan search against brute force, its boundaries, the cost model's arithmetic, and plan.json.
#include "loraplan/planner/plan_search.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "loraplan/planner/cost_model.h"
#include "loraplan/planner/errors.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/planner/plan_file.h"
#include "loraplan/planner/simulator.h"
#include "loraplan/planner/train_config.h"

namespace loraplan::planner {
namespace {

TrainConfig base_config(const ModelDesc& m, Device device, DType compute, int64_t seq_len = 256) {
  TrainConfig c;
  c.seq_len = seq_len;
  c.device = device;
  c.compute = compute;
  c.lora_targets = parse_lora_targets("all-linear", m, "--lora-targets");
  c.checkpointed.assign(m.layers, false);
  c.offloaded.assign(m.layers, false);
  validate(c, m);
  return c;
}

// Every plan the search may choose (first k checkpointed, first n offloaded), tried one by one.
double brute_force_best(const ModelDesc& m, const TrainConfig& base, const DeviceModel& d,
                        const Rates& r, const SearchSpace& space, TrainConfig* best_config) {
  DeviceModel limited = d;
  limited.budget_bytes = d.budget_bytes - margin_for(space, d.budget_bytes);
  double best = 0;
  const std::vector<Attention> attentions =
      d.device == Device::kCpu ? std::vector<Attention>{Attention::kEfficient, Attention::kEager}
                               : std::vector<Attention>{Attention::kEfficient};
  for (int64_t b = 1; b <= space.target_batch; ++b) {
    if (space.target_batch % b) continue;
    for (Attention a : attentions) {
      for (int chunked = 0; chunked < 2; ++chunked) {
        TrainConfig c = base;
        c.micro_batch = b;
        c.grad_accum = space.target_batch / b;
        c.attention = a;
        c.loss_chunk = chunked ? suggested_loss_chunk(m, c) : 0;
        if (chunked && c.loss_chunk >= c.tokens()) continue;
        for (int64_t k = 0; k <= m.layers; ++k) {
          for (int64_t n = 0; n <= (k == m.layers ? m.layers : 0); ++n) {
            for (int64_t l = 0; l < m.layers; ++l) {
              c.checkpointed[l] = l < k;
              c.offloaded[l] = l < n;
            }
            if (!estimate(m, c, limited).fits) continue;
            const double t = step_cost(m, c, r).tokens_per_s;
            if (t > best) {
              best = t;
              *best_config = c;
            }
          }
        }
      }
    }
  }
  return best;
}

struct SearchCase {
  const char* model;
  Device device;
  const char* budget;
  int64_t seq_len;
};

class SearchAgainstBruteForce : public ::testing::TestWithParam<SearchCase> {};

TEST_P(SearchAgainstBruteForce, ChoosesTheFastestPlanThatFits) {
  const SearchCase& sc = GetParam();
  const ModelDesc m = load_model(sc.model);
  const bool cpu = sc.device == Device::kCpu;
  const TrainConfig base = base_config(m, sc.device, cpu ? DType::kF32 : DType::kF16, sc.seq_len);
  const DeviceModel d = cpu ? cpu_device(parse_size(sc.budget, "budget"))
                            : cuda_device(resolve_gpu("t4"), parse_size(sc.budget, "budget"));
  const Rates r = cpu ? cpu_rates(1) : gpu_rates(resolve_gpu("t4"), base.compute);
  SearchSpace space;
  space.margin_share = 0.05;
  const PlanSearch s = search_plan(m, base, d, r, space);
  TrainConfig expected;
  const double best = brute_force_best(m, base, d, r, space, &expected);
  ASSERT_GT(best, 0) << "the case must have a plan that fits";
  ASSERT_TRUE(s.found);
  EXPECT_DOUBLE_EQ(s.chosen.cost.tokens_per_s, best)
      << plan_label(s.chosen.config) << " vs " << plan_label(expected);
  // The chosen plan fits under budget - margin, and its full estimate says so too.
  EXPECT_LE(s.estimate.peak_bytes, s.limit_bytes);
  EXPECT_EQ(s.limit_bytes,
            d.budget_bytes - std::llround(0.05 * static_cast<double>(d.budget_bytes)));
  for (const PlanCandidate& p : s.runner_ups) {
    EXPECT_TRUE(p.fits);
    EXPECT_LE(p.cost.tokens_per_s, s.chosen.cost.tokens_per_s);
  }
  // One checkpointed (or offloaded) layer fewer does not fit.
  const int64_t k =
      std::count(s.chosen.config.checkpointed.begin(), s.chosen.config.checkpointed.end(), true);
  const int64_t n =
      std::count(s.chosen.config.offloaded.begin(), s.chosen.config.offloaded.end(), true);
  if (k > 0 && n == 0) {
    TrainConfig fewer = s.chosen.config;
    fewer.checkpointed[k - 1] = false;
    DeviceModel limited = d;
    limited.budget_bytes = s.limit_bytes;
    EXPECT_FALSE(estimate(m, fewer, limited).fits);
    ASSERT_FALSE(s.boundaries.empty());
    EXPECT_EQ(s.boundaries.back().rfind("checkpointing " + std::to_string(k - 1) +
                                            " layers instead of " + std::to_string(k) + ": needs ",
                                        0),
              0u)
        << s.boundaries.back();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, SearchAgainstBruteForce,
    ::testing::Values(SearchCase{"tiny-llama", Device::kCpu, "3MiB", 64},
                      SearchCase{"tiny-gemma2", Device::kCpu, "6MiB", 64},
                      SearchCase{"smollm2-135m", Device::kCuda, "1300MiB", 256},
                      SearchCase{"qwen2.5-0.5b", Device::kCuda, "1600MiB", 256}),
    [](const auto& info) {
      std::string name = std::string(info.param.model) + "_" + info.param.budget;
      for (char& ch : name) {
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      }
      return name;
    });

TEST(PlanSearch, NothingFitsSaysHowMuchTheMostFrugalNeeds) {
  const ModelDesc m = load_model("llama-3.1-8b");
  const TrainConfig base = base_config(m, Device::kCuda, DType::kF16);
  const DeviceModel d = cuda_device(resolve_gpu("2GB"), 0);
  SearchSpace space;
  space.allow_offload = false;
  const PlanSearch s = search_plan(m, base, d, gpu_rates(resolve_gpu("2GB"), DType::kF16), space);
  EXPECT_FALSE(s.found);
  ASSERT_FALSE(s.rejected.empty());
  for (const PlanCandidate& p : s.rejected) EXPECT_FALSE(p.fits);
  const PlanCandidate& b1 = s.rejected.front();
  EXPECT_NE(b1.reason.find("with every layer checkpointed"), std::string::npos) << b1.reason;
  EXPECT_GT(b1.peak_bytes, d.budget_bytes);  // nf4 weights alone are ~5 GiB
}

TEST(PlanSearch, TargetBatchIsMicroBatchTimesAccumulation) {
  const ModelDesc m = load_model("smollm2-135m");
  const TrainConfig base = base_config(m, Device::kCuda, DType::kF16);
  SearchSpace space;
  space.target_batch = 12;
  const PlanSearch s = search_plan(m, base, cuda_device(resolve_gpu("a100-80gb"), 0),
                                   gpu_rates(resolve_gpu("a100-80gb"), DType::kF16), space);
  ASSERT_TRUE(s.found);
  EXPECT_EQ(s.chosen.config.micro_batch * s.chosen.config.grad_accum, 12);
  EXPECT_EQ(s.chosen.config.micro_batch, 12);  // 80 GB hold it all; larger micro-batches run faster
}

TEST(CostModel, ProductFlopsOfOneStep) {
  const ModelDesc m = load_model("tiny-llama");  // V 256, C 64, I 176, L 2, H 4, Hkv 2, D 16
  TrainConfig c = base_config(m, Device::kCpu, DType::kF32);
  c.micro_batch = 2;
  c.grad_accum = 1;
  c.seq_len = 32;
  const double N = 64, r = 16, C = 64, I = 176, q = 64, kv = 32, V = 256;
  // Frozen products forward and input gradient (2 x 2 N in out); LoRA 2 N r (in + out) forward
  // and both gradients (3x); attention 4 B H T^2 D forward and twice that backward; head 2 N C V
  // forward and input gradient.
  const double frozen = 2 * N * (q * C + 2 * kv * C + C * q + 3 * I * C);
  const double lora = 2 * N * r * ((C + q) + 2 * (C + kv) + (q + C) + 3 * (C + I));
  const double attention = 4 * 2 * 4 * 32 * 32 * 16;
  const StepCost s = step_cost(m, c, cpu_rates(1));
  EXPECT_DOUBLE_EQ(s.flops, 2 * (2 * frozen + 3 * lora + 3 * attention) + 2 * 2 * N * C * V);
  // Checkpointing a layer adds its forward once more; offloading adds traffic; both cost time.
  TrainConfig ck = c;
  ck.checkpointed[0] = true;
  const StepCost sck = step_cost(m, ck, cpu_rates(1));
  EXPECT_DOUBLE_EQ(sck.flops - s.flops, frozen + lora + attention);
  EXPECT_GT(sck.step_s, s.step_s);
  TrainConfig off = ck;
  off.offloaded[0] = true;
  EXPECT_GT(step_cost(m, off, cpu_rates(1)).offload_s, 0);
  EXPECT_GT(step_cost(m, off, cpu_rates(1)).step_s, sck.step_s);
}

TEST(CostModel, GenericRatesForABareSize) {
  const Rates known = gpu_rates(resolve_gpu("rtx-4090"), DType::kBF16);
  EXPECT_DOUBLE_EQ(known.matmul_flops, 165.2e12 * 0.5);
  EXPECT_EQ(known.source, "rtx-4090 profile");
  const Rates generic = gpu_rates(resolve_gpu("6GB"), DType::kF16);
  EXPECT_EQ(generic.source, "a generic GPU's rates (6GB names no profile)");
  // fp32 compute runs at the fp32 rate, not the tensor-core one.
  EXPECT_DOUBLE_EQ(gpu_rates(resolve_gpu("rtx-4090"), DType::kF32).matmul_flops, 82.58e12 * 0.7);
}

// plan.json: written, read back, and every bad field named.
class PlanFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("loraplan_plan_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    model_ = load_model("tiny-llama");
    base_ = base_config(model_, Device::kCpu, DType::kF32, 64);
    device_ = cpu_device(parse_size("3MiB", "budget"));
    rates_ = cpu_rates(1);
    space_.margin_share = 0.05;
    search_ = search_plan(model_, base_, device_, rates_, space_);
    ASSERT_TRUE(search_.found);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string plan_text() const {
    return plan_json({"tiny-llama", model_, device_, rates_, space_, search_}).dump(2) + "\n";
  }
  std::string write(const std::string& text, const char* name = "plan.json") const {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  std::string error_of(const std::string& text) const {
    try {
      read_plan(write(text, "bad.json"));
    } catch (const InputError& e) {
      std::string msg = e.what();
      const std::string prefix = (dir_ / "bad.json").string();
      return msg.rfind(prefix, 0) == 0 ? "bad.json" + msg.substr(prefix.size()) : msg;
    }
    return "no error";
  }
  std::string replaced(const std::string& from, const std::string& to) const {
    std::string t = plan_text();
    const size_t at = t.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return t.replace(at, from.size(), to);
  }

  std::filesystem::path dir_;
  ModelDesc model_;
  TrainConfig base_;
  DeviceModel device_;
  Rates rates_;
  SearchSpace space_;
  PlanSearch search_;
};

TEST_F(PlanFileTest, SameInputsSameBytesAndItReadsBack) {
  const std::string text = plan_text();
  EXPECT_EQ(text, plan_json({"tiny-llama", model_, device_, rates_, space_,
                             search_plan(model_, base_, device_, rates_, space_)})
                          .dump(2) +
                      "\n");
  const PlanFile p = read_plan(write(text));
  EXPECT_EQ(plan_config_json(p.config), plan_config_json(search_.chosen.config));
  EXPECT_EQ(p.device, Device::kCpu);
  EXPECT_EQ(p.budget_bytes, 3 << 20);
  EXPECT_EQ(p.predicted_peak_bytes, search_.estimate.peak_bytes);
  EXPECT_EQ(p.model.layers, 2);
}

TEST_F(PlanFileTest, BadFieldsAreNamed) {
  EXPECT_EQ(
      error_of(replaced("\"micro_batch\": " + std::to_string(search_.chosen.config.micro_batch),
                        "\"micro_batch\": 0")),
      "bad.json:" + std::to_string(json_key_line(plan_text(), "micro_batch")) +
          ": \"config.micro_batch\" must be a positive integer up to 65536, got 0");
  EXPECT_EQ(error_of(replaced("\"version\": 1", "\"version\": 7")).substr(0, 15),
            "bad.json:3: \"ve");
  EXPECT_NE(error_of(replaced("\"version\": 1", "\"version\": 7"))
                .find("must be 1 (this loraplan reads plan version 1)"),
            std::string::npos);
  EXPECT_NE(error_of(replaced("\"attention\": \"", "\"attention\": \"x"))
                .find("\"config.attention\" must be \"eager\" or \"efficient\""),
            std::string::npos);
  EXPECT_NE(error_of(replaced("\"layers\": 2", "\"layers\": 3"))
                .find("\"model.layers\" must match the model tiny-llama (2)"),
            std::string::npos);
  EXPECT_NE(error_of(replaced("\"offload\": [\n      \"gpu\",", "\"offload\": ["))
                .find("\"config.offload\" must give \"gpu\" or \"cpu\" for each of the 2 layers"),
            std::string::npos);
  EXPECT_NE(error_of("[1, 2]").find("a plan must be a JSON object"), std::string::npos);
  EXPECT_NE(error_of("{\"schema\": \"loraplan-plan\"").find("malformed plan"), std::string::npos);
}

}  // namespace
}  // namespace loraplan::planner
