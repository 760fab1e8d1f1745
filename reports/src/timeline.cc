#include "loraplan/reports/timeline.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace loraplan::reports {

Timeline predicted_timeline(const planner::Schedule& s, size_t max_points) {
  Timeline t;
  t.phases = s.phases;
  t.events = static_cast<int64_t>(s.events.size());
  const size_t n = s.events.size();
  // Two points per bucket: buckets of `per` events.
  const size_t per = n <= max_points ? 1 : (2 * n + max_points - 1) / max_points;
  planner::CategoryBytes live{};
  int64_t total = 0;
  TimelinePoint lo, hi;
  size_t in_bucket = 0;
  auto flush = [&] {
    if (in_bucket == 0) return;
    if (per == 1) {
      t.points.push_back(hi);
    } else if (lo.event == hi.event) {
      t.points.push_back(lo);
    } else {
      t.points.push_back(lo.event < hi.event ? lo : hi);
      t.points.push_back(lo.event < hi.event ? hi : lo);
    }
    in_bucket = 0;
  };
  for (size_t i = 0; i < n; ++i) {
    const planner::Event& e = s.events[i];
    const planner::Buffer& b = s.buffers[static_cast<size_t>(e.buffer)];
    const int64_t d = e.alloc ? b.bytes : -b.bytes;
    live[static_cast<size_t>(b.category)] += d;
    total += d;
    const TimelinePoint p{static_cast<int64_t>(i), e.phase, live, total};
    if (total > t.peak_bytes) {
      t.peak_bytes = total;
      t.peak_event = p.event;
    }
    if (t.spans.empty() || t.spans.back().phase != e.phase) {
      if (!t.spans.empty()) t.spans.back().end = p.event;
      t.spans.push_back({e.phase, p.event, p.event + 1});
    }
    t.spans.back().end = p.event + 1;
    if (in_bucket == 0 || total < lo.total) lo = p;
    if (in_bucket == 0 || total > hi.total) hi = p;
    if (++in_bucket == per) flush();
  }
  flush();
  return t;
}

std::string chrome_trace_json(const Timeline& t, const std::string& title) {
  nlohmann::json events = nlohmann::json::array();
  events.push_back(
      {{"name", "process_name"}, {"ph", "M"}, {"pid", 1}, {"tid", 0}, {"args", {{"name", title}}}});
  events.push_back({{"name", "thread_name"},
                    {"ph", "M"},
                    {"pid", 1},
                    {"tid", 1},
                    {"args", {{"name", "phases"}}}});
  for (const PhaseSpan& s : t.spans) {
    events.push_back({{"name", t.phases[static_cast<size_t>(s.phase)]},
                      {"cat", "phase"},
                      {"ph", "X"},
                      {"pid", 1},
                      {"tid", 1},
                      {"ts", s.begin},
                      {"dur", s.end - s.begin}});
  }
  for (const TimelinePoint& p : t.points) {
    for (int c = 0; c < planner::kCategoryCount; ++c) {
      events.push_back(
          {{"name", std::string(planner::category_name(static_cast<planner::Category>(c)))},
           {"cat", "memory"},
           {"ph", "C"},
           {"pid", 1},
           {"ts", p.event},
           {"args", {{"bytes", p.live[static_cast<size_t>(c)]}}}});
    }
    events.push_back({{"name", "total"},
                      {"cat", "memory"},
                      {"ph", "C"},
                      {"pid", 1},
                      {"ts", p.event},
                      {"args", {{"bytes", p.total}}}});
  }
  const nlohmann::json j = {{"traceEvents", events},
                            {"displayTimeUnit", "ms"},
                            {"otherData",
                             {{"title", title},
                              {"time", "schedule event index (a prediction has no clock)"},
                              {"events", t.events},
                              {"peak_bytes", t.peak_bytes},
                              {"peak_event", t.peak_event}}}};
  return j.dump() + "\n";
}

}  // namespace loraplan::reports
