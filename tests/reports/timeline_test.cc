// The predicted timeline: live bytes after every event of the schedule, downsampled without losing
// the peak or any bucket's maximum; its Chrome trace; estimate --trace and --format html.
#include "loraplan/reports/timeline.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "../cli/run_cli.h"
#include "fixtures/model_files.h"
#include "loraplan/planner/errors.h"
#include "loraplan/planner/hardware.h"
#include "loraplan/planner/model_loader.h"
#include "loraplan/planner/simulator.h"

namespace loraplan::reports {
namespace {

using nlohmann::json;

planner::Estimate readme_estimate() {
  const planner::ModelDesc m = planner::load_model("phi-4-mini-instruct");
  planner::TrainConfig c;  // the README's: T 1024, B 1 x 8, nf4+dq, fp16, checkpoint all
  c.checkpointed.assign(static_cast<size_t>(m.layers), true);
  c.offloaded.assign(static_cast<size_t>(m.layers), false);
  c.lora_targets = planner::parse_lora_targets("all-linear", m, "--lora-targets");
  return planner::estimate(m, c, planner::cuda_device(planner::resolve_gpu("6GB"), 0));
}

TEST(Timeline, EveryEventIsAPointAndThePeakIsTheReplays) {
  const planner::Estimate e = readme_estimate();
  const Timeline t = predicted_timeline(e.schedule, e.schedule.events.size());
  ASSERT_EQ(t.points.size(), e.schedule.events.size());
  EXPECT_EQ(t.events, static_cast<int64_t>(e.schedule.events.size()));
  EXPECT_EQ(t.peak_bytes, e.lower_bound.peak_bytes);
  EXPECT_EQ(t.peak_event, e.lower_bound.peak_event);
  EXPECT_EQ(t.points[static_cast<size_t>(t.peak_event)].live, e.lower_bound.at_peak);
  EXPECT_EQ(t.points.back().total, e.lower_bound.resident_bytes);
  // Spans tile the events, each a run of one phase, every phase of the schedule among them.
  int64_t next = 0;
  std::set<int32_t> phases;
  for (const PhaseSpan& s : t.spans) {
    EXPECT_EQ(s.begin, next);
    EXPECT_GT(s.end, s.begin);
    next = s.end;
    phases.insert(s.phase);
  }
  EXPECT_EQ(next, t.events);
  EXPECT_EQ(phases.size(), e.schedule.phases.size());
}

TEST(Timeline, DownsamplingKeepsEveryBucketsHighAndLow) {
  const planner::Estimate e = readme_estimate();
  const Timeline full = predicted_timeline(e.schedule, e.schedule.events.size());
  const Timeline t = predicted_timeline(e.schedule, 500);
  EXPECT_LE(t.points.size(), 502u);
  EXPECT_GE(t.points.size(), 400u);
  EXPECT_EQ(t.peak_bytes, full.peak_bytes);
  // Each kept point is the full timeline's at that event, in order.
  int64_t last = -1;
  bool has_peak = false;
  for (const TimelinePoint& p : t.points) {
    EXPECT_GT(p.event, last);
    last = p.event;
    EXPECT_EQ(p.total, full.points[static_cast<size_t>(p.event)].total);
    has_peak = has_peak || p.total == full.peak_bytes;
  }
  EXPECT_TRUE(has_peak);
  // The largest total between two kept points is never above the larger of them... within a
  // bucket: every event's total lies within its bucket's kept low and high.
  const size_t per = (2 * full.points.size() + 499) / 500;
  for (size_t b = 0; b * per < full.points.size(); ++b) {
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (size_t i = b * per; i < std::min(full.points.size(), (b + 1) * per); ++i) {
      lo = std::min(lo, full.points[i].total);
      hi = std::max(hi, full.points[i].total);
    }
    bool lo_kept = false, hi_kept = false;
    for (const TimelinePoint& p : t.points) {
      if (static_cast<size_t>(p.event) / per != b) continue;
      lo_kept = lo_kept || p.total == lo;
      hi_kept = hi_kept || p.total == hi;
    }
    EXPECT_TRUE(lo_kept && hi_kept) << "bucket " << b;
  }
}

TEST(Timeline, AMeasuredTimelineIsReadAndLaidOnThePredictionPhaseByPhase) {
  const planner::Estimate e = readme_estimate();
  const Timeline t = predicted_timeline(e.schedule, e.schedule.events.size());
  // A "measurement" of the prediction's own points, at ten times the events: each run of a phase
  // lands on the same phase's run.
  nlohmann::json points = nlohmann::json::array();
  for (const TimelinePoint& p : t.points) points.push_back({p.event * 10, p.total, p.phase});
  const json file = {{"step", 1},
                     {"device", "cpu"},
                     {"events", t.events * 10},
                     {"phases", t.phases},
                     {"points", points}};
  const MeasuredSeries m = parse_measured_timeline(file.dump(), "timeline.json");
  ASSERT_EQ(m.points.size(), t.points.size());
  const std::vector<std::vector<OverlayPoint>> lines = align_to_prediction(t, m);
  size_t n = 0;
  for (const auto& line : lines) {
    for (const OverlayPoint& p : line) {
      EXPECT_GE(p.x, 0);
      EXPECT_LE(p.x, static_cast<double>(t.events));
      ++n;
    }
  }
  EXPECT_EQ(n, t.points.size());
  // Every run starts where its phase's run starts in the prediction.
  for (const PhaseSpan& s : t.spans) {
    bool found = false;
    for (const auto& line : lines)
      for (const OverlayPoint& p : line) found = found || p.x == static_cast<double>(s.begin);
    EXPECT_TRUE(found) << t.phases[static_cast<size_t>(s.phase)];
  }
  for (const char* bad :
       {"[]", "{\"events\": 3, \"phases\": [], \"points\": [[0, 1, 2]]}",
        "{\"events\": 3, \"phases\": [\"a\"], \"points\": [[1, 1, 0], [0, 1, 0]]}"}) {
    EXPECT_THROW(parse_measured_timeline(bad, "timeline.json"), InputError) << bad;
  }
}

TEST(Timeline, EstimateTraceIsAChromeTraceOfThePrediction) {
  loraplan::testing::TempDir dir;
  const cli::testing::Result r = cli::testing::run_cli(
      {"estimate", "--gpu", "6GB", "--format", "json", "--trace", dir.file("t.json")});
  ASSERT_EQ(r.code, 0) << r.err;
  const json e = json::parse(r.out);
  const json trace = json::parse(loraplan::testing::read_text(dir.file("t.json")));
  int64_t total_max = 0;
  std::set<std::string> spans, counters;
  for (const json& ev : trace["traceEvents"]) {
    if (ev["ph"] == "X") spans.insert(ev["name"].get<std::string>());
    if (ev["ph"] == "C") {
      counters.insert(ev["name"].get<std::string>());
      if (ev["name"] == "total")
        total_max = std::max(total_max, ev["args"]["bytes"].get<int64_t>());
    }
  }
  EXPECT_EQ(total_max, e["lower_bound_bytes"].get<int64_t>());
  for (const json& p : e["phases"]) EXPECT_TRUE(spans.count(p["name"].get<std::string>())) << p;
  for (const char* c : {"weights", "adapters", "optimizer", "gradients", "activations", "logits",
                        "workspace", "total"})
    EXPECT_TRUE(counters.count(c)) << c;
  EXPECT_EQ(trace["otherData"]["peak_bytes"], e["lower_bound_bytes"]);
  // A trace path that cannot be written is one line, exit 2.
  const cli::testing::Result bad =
      cli::testing::run_cli({"estimate", "--trace", dir.file("no/such/dir/t.json")});
  EXPECT_EQ(bad.code, 2);
  EXPECT_EQ(bad.out, "");
}

TEST(Timeline, EstimateHtmlIsOnePageThatFetchesNothing) {
  const cli::testing::Result r =
      cli::testing::run_cli({"estimate", "--gpu", "6GB", "--format", "html"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string& h = r.out;
  EXPECT_EQ(h.rfind("<!doctype html>", 0), 0u);
  EXPECT_NE(h.find("Content-Security-Policy\" content=\"default-src 'none'"), std::string::npos);
  for (const char* absent : {"<script", "src=", "href=", "url(", "@import", "http:", "https:"})
    EXPECT_EQ(h.find(absent), std::string::npos) << absent;
  for (const char* present :
       {"<svg class=\"timeline\"", "<svg class=\"bar\"", "class=\"area\" data-category=\"weights\"",
        "FITS with 718.0 MiB to spare", "5.30 GiB", "live peak 4.78 GiB (loss)", "fwd L0-31",
        "bwd L31-0", "<title>optim</title>",
        "made by <code>loraplan estimate --gpu 6GB --format "
        "html</code>"})
    EXPECT_NE(h.find(present), std::string::npos) << present;
}

TEST(Timeline, PlanHtmlShowsTheCandidatesAgainstTheBudget) {
  const cli::testing::Result r =
      cli::testing::run_cli({"plan", "--gpu", "6GB", "--format", "html"});
  ASSERT_EQ(r.code, 0) << r.err;
  const cli::testing::Result j =
      cli::testing::run_cli({"plan", "--gpu", "6GB", "--format", "json"});
  ASSERT_EQ(j.code, 0) << j.err;
  const json plan = json::parse(j.out);
  const std::string& h = r.out;
  EXPECT_EQ(h.find("<script"), std::string::npos);
  for (const std::string& present :
       {std::string("<svg class=\"plan\""), std::string("data-kind=\"chosen\""),
        std::string("data-kind=\"runner-up\""), std::string("<title>budget 6.00 GiB</title>"),
        std::string("What stopped a bigger choice"), std::string("<svg class=\"timeline\""),
        std::string("chosen: B 1 x 8 | checkpoint 18/32")})
    EXPECT_NE(h.find(present), std::string::npos) << present;
  // The chosen plan's peak, as plan.json has it.
  EXPECT_NE(h.find(planner::format_bytes(plan["prediction"]["peak_bytes"].get<int64_t>())),
            std::string::npos);
}

TEST(Timeline, SweepHtmlIsAHeatmapOfGpuBySequenceLength) {
  const cli::testing::Result r = cli::testing::run_cli(
      {"sweep", "--gpus", "4GB,6GB,24GB", "--seq-lens", "512,4096", "--format", "html"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string& h = r.out;
  EXPECT_NE(h.find("<svg class=\"sweep\""), std::string::npos);
  size_t cells = 0, fits = 0;
  for (size_t at = h.find("<g class=\"cell\""); at != std::string::npos;
       at = h.find("<g class=\"cell\"", at + 1)) {
    ++cells;
    fits += h.compare(at, 33, "<g class=\"cell\" data-fits=\"yes\"") == 0;
  }
  EXPECT_EQ(cells, 6u);
  // As sweep's own JSON says: which cells fit.
  const cli::testing::Result j = cli::testing::run_cli(
      {"sweep", "--gpus", "4GB,6GB,24GB", "--seq-lens", "512,4096", "--format", "json"});
  ASSERT_EQ(j.code, 0);
  size_t fits_json = 0;
  for (const json& row : json::parse(j.out)["rows"]) fits_json += row["fits"].get<bool>();
  EXPECT_EQ(fits, fits_json);
  EXPECT_NE(h.find(">T 4096</text>"), std::string::npos);
}

}  // namespace
}  // namespace loraplan::reports
