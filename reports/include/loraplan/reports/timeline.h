#pragma once
// A step's memory over time, as the simulator predicts it: the live tensor bytes of each category
// after every allocation and free of the schedule, with the phase each event belongs to. Written
// as a Chrome trace (Perfetto, chrome://tracing) and drawn by the HTML reports.

#include <cstdint>
#include <string>
#include <vector>

#include "loraplan/planner/schedule.h"

namespace loraplan::reports {

struct TimelinePoint {
  int64_t event = 0;  // index into the schedule's events
  int32_t phase = 0;  // index into Timeline::phases
  planner::CategoryBytes live{};
  int64_t total = 0;  // sum of live
};

// A run of consecutive events of one phase: [begin, end).
struct PhaseSpan {
  int32_t phase = 0;
  int64_t begin = 0, end = 0;
};

struct Timeline {
  std::vector<std::string> phases;    // the schedule's phase names
  std::vector<TimelinePoint> points;  // in event order, downsampled (see predicted_timeline)
  std::vector<PhaseSpan> spans;       // every event is in one span, in order
  int64_t events = 0;                 // the schedule's events, before downsampling
  int64_t peak_bytes = 0;             // most live bytes after any event
  int64_t peak_event = 0;             // the first event that reached it
};

// The schedule's timeline. With more than `max_points` events it is cut into buckets of
// consecutive events and each bucket keeps its lowest and its highest point, in event order, so no
// maximum of the curve is lost (the peak is always a point) and every dip stays visible.
Timeline predicted_timeline(const planner::Schedule& s, size_t max_points = 4000);

// The timeline in the Chrome trace event format: one counter track per category (bytes) and the
// total, and each phase span as a complete event on a "phases" track. Time is the event index, in
// microseconds: a prediction has no clock. `title` names the process ("loraplan estimate: ...").
std::string chrome_trace_json(const Timeline& t, const std::string& title);

}  // namespace loraplan::reports
