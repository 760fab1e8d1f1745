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

// A measured step's timeline as train writes it (the run folder's timeline.json): the live bytes
// after allocations and frees (downsampled), each with the step's phase it happened in.
struct MeasuredSeries {
  struct Point {
    int64_t event = 0, live = 0;
    int32_t phase = -1;  // index into phases; -1 before the step's first phase
  };
  int64_t step = 0, events = 0;
  std::string device;
  std::vector<std::string> phases;
  std::vector<Point> points;
};
// Throws InputError naming `where` for text that is not such a file.
MeasuredSeries parse_measured_timeline(const std::string& text, const std::string& where);

// The measured points on the predicted timeline's event axis, as polylines: each run of a phase
// is stretched onto a run of the same phase in the prediction (the k-th onto the k-th, later ones
// onto the last: the simulator's micro-batches 2..n repeat micro-batch 2), so the two curves meet
// phase by phase. A run mapped left of the one before starts a new polyline.
struct OverlayPoint {
  double x = 0;  // predicted event index
  int64_t bytes = 0;
};
std::vector<std::vector<OverlayPoint>> align_to_prediction(const Timeline& predicted,
                                                           const MeasuredSeries& m);

// The timeline in the Chrome trace event format: one counter track per category (bytes) and the
// total, and each phase span as a complete event on a "phases" track. Time is the event index, in
// microseconds: a prediction has no clock. `title` names the process ("loraplan estimate: ...").
std::string chrome_trace_json(const Timeline& t, const std::string& title);

}  // namespace loraplan::reports
