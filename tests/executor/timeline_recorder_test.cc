// The measured timeline's recorder: bounded, and every bucket keeps its lowest and highest point.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "memory_meter.h"

namespace loraplan::executor {
namespace {

TEST(TimelineRecorder, FewEventsAreKeptWhole) {
  TimelineRecorder r(64);
  for (int64_t i = 0; i < 30; ++i) r.add(100 + i * (i % 2 ? 1 : -1), static_cast<int32_t>(i / 10));
  const MeasuredTimeline t = r.finish({"a", "b", "c"});
  ASSERT_EQ(t.points.size(), 30u);
  EXPECT_EQ(t.events, 30);
  for (int64_t i = 0; i < 30; ++i) {
    EXPECT_EQ(t.points[static_cast<size_t>(i)].event, i);
    EXPECT_EQ(t.points[static_cast<size_t>(i)].live, 100 + i * (i % 2 ? 1 : -1));
    EXPECT_EQ(t.points[static_cast<size_t>(i)].phase, i / 10);
  }
}

TEST(TimelineRecorder, ManyEventsStayBoundedAndKeepEveryBucketsExtremes) {
  constexpr size_t kMax = 256;
  constexpr int64_t kEvents = 100'003;
  std::mt19937_64 rng(7);
  std::vector<int64_t> live(kEvents);
  int64_t v = 1'000'000;
  for (int64_t& x : live) {
    v += static_cast<int64_t>(rng() % 2001) - 1000;
    x = v;
  }
  live[77'777] = 5'000'000;  // one spike
  TimelineRecorder r(kMax);
  for (int64_t i = 0; i < kEvents; ++i) r.add(live[static_cast<size_t>(i)], 0);
  const MeasuredTimeline t = r.finish({"step"});
  EXPECT_EQ(t.events, kEvents);
  ASSERT_LE(t.points.size(), kMax);
  ASSERT_GE(t.points.size(), kMax / 4);
  // In event order, each the value at its event; the spike and the lowest point are there.
  for (size_t i = 1; i < t.points.size(); ++i) EXPECT_GT(t.points[i].event, t.points[i - 1].event);
  for (const MeasuredPoint& p : t.points) EXPECT_EQ(p.live, live[static_cast<size_t>(p.event)]);
  const auto has = [&](int64_t value) {
    return std::any_of(t.points.begin(), t.points.end(),
                       [&](const MeasuredPoint& p) { return p.live == value; });
  };
  EXPECT_TRUE(has(5'000'000));
  EXPECT_TRUE(has(*std::min_element(live.begin(), live.end())));
  // Buckets of bucket_events (a power of two), each keeping its low and high.
  const int64_t per = t.bucket_events;
  EXPECT_GT(per, 1);
  EXPECT_EQ(per & (per - 1), 0);
  for (int64_t b = 0; b * per < kEvents; ++b) {
    const auto first = live.begin() + b * per;
    const auto last = live.begin() + std::min(kEvents, (b + 1) * per);
    const int64_t lo = *std::min_element(first, last), hi = *std::max_element(first, last);
    bool lo_kept = false, hi_kept = false;
    for (const MeasuredPoint& p : t.points) {
      if (p.event / per != b) continue;
      lo_kept = lo_kept || p.live == lo;
      hi_kept = hi_kept || p.live == hi;
    }
    EXPECT_TRUE(lo_kept && hi_kept) << "bucket " << b << " of " << per << " events";
  }
}

}  // namespace
}  // namespace loraplan::executor
