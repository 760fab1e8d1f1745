#include "loraplan/reports/timeline.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "loraplan/planner/errors.h"

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
  // Counter tracks for the kinds that hold bytes (a measured timeline has none, only the total).
  std::vector<bool> used(planner::kCategoryCount, false);
  for (const TimelinePoint& p : t.points) {
    for (int c = 0; c < planner::kCategoryCount; ++c)
      used[static_cast<size_t>(c)] =
          used[static_cast<size_t>(c)] || p.live[static_cast<size_t>(c)] != 0;
  }
  for (const TimelinePoint& p : t.points) {
    for (int c = 0; c < planner::kCategoryCount; ++c) {
      if (!used[static_cast<size_t>(c)]) continue;
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

MeasuredSeries parse_measured_timeline(const std::string& text, const std::string& where) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  auto fail = [&](const std::string& what) { throw InputError(where + ": " + what); };
  if (j.is_discarded() || !j.is_object()) fail("not a JSON object (train writes timeline.json)");
  MeasuredSeries m;
  if (!j.contains("events") || !j["events"].is_number_integer()) fail("\"events\" missing");
  if (!j.contains("phases") || !j["phases"].is_array()) fail("\"phases\" missing");
  if (!j.contains("points") || !j["points"].is_array()) fail("\"points\" missing");
  m.events = j["events"].get<int64_t>();
  m.step = j.value("step", int64_t{0});
  m.device = j.value("device", std::string());
  for (const nlohmann::json& p : j["phases"]) {
    if (!p.is_string()) fail("\"phases\" must hold names");
    m.phases.push_back(p.get<std::string>());
  }
  int64_t last = -1;
  for (const nlohmann::json& p : j["points"]) {
    if (!p.is_array() || p.size() != 3 || !p[0].is_number_integer() || !p[1].is_number_integer() ||
        !p[2].is_number_integer())
      fail("each of \"points\" must be [event, live bytes, phase]");
    MeasuredSeries::Point q{p[0].get<int64_t>(), p[1].get<int64_t>(), p[2].get<int32_t>()};
    if (q.event <= last || q.event >= m.events || q.live < 0 || q.phase < -1 ||
        q.phase >= static_cast<int32_t>(m.phases.size()))
      fail("point " + p.dump() + " is out of order or out of range");
    last = q.event;
    m.points.push_back(q);
  }
  return m;
}

std::vector<std::vector<OverlayPoint>> align_to_prediction(const Timeline& predicted,
                                                           const MeasuredSeries& m) {
  // The prediction's runs of each phase name, in order.
  std::map<std::string, std::vector<const PhaseSpan*>> runs;
  for (const PhaseSpan& s : predicted.spans)
    runs[predicted.phases[static_cast<size_t>(s.phase)]].push_back(&s);
  // The measurement's runs: consecutive points of one phase.
  std::vector<std::vector<OverlayPoint>> lines;
  std::map<std::string, size_t> seen;
  double last_x = -1;
  for (size_t i = 0; i < m.points.size();) {
    size_t j = i;
    while (j + 1 < m.points.size() && m.points[j + 1].phase == m.points[i].phase) ++j;
    const int64_t begin = m.points[i].event;
    const int64_t end = j + 1 < m.points.size() ? m.points[j + 1].event : m.events;
    const int32_t phase = m.points[i].phase;
    const std::string name = phase >= 0 ? m.phases[static_cast<size_t>(phase)] : "setup";
    const auto it = runs.find(name);
    if (it != runs.end()) {
      const size_t k = std::min(seen[name]++, it->second.size() - 1);
      const PhaseSpan& target = *it->second[k];
      const double scale = static_cast<double>(target.end - target.begin) /
                           static_cast<double>(std::max<int64_t>(end - begin, 1));
      for (size_t p = i; p <= j; ++p) {
        const double x = static_cast<double>(target.begin) +
                         scale * static_cast<double>(m.points[p].event - begin);
        if (lines.empty() || x < last_x) lines.emplace_back();
        lines.back().push_back({x, m.points[p].live});
        last_x = x;
      }
    }
    i = j + 1;
  }
  return lines;
}

}  // namespace loraplan::reports
