#pragma once
// The pieces of loraplan's HTML reports: one self-contained page (inline CSS and SVG, a
// Content-Security-Policy that allows no request of any kind), a colour-blind-safe palette
// (Okabe and Ito), byte axes in MiB/GiB, a stacked bar and a step's memory timeline.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "loraplan/planner/schedule.h"
#include "loraplan/reports/timeline.h"

namespace loraplan::reports {

std::string html_escape(std::string_view text);

// <!doctype html> ... with `title`, `body` (HTML) and a footer naming `command`.
std::string html_page(const std::string& title, const std::string& body,
                      const std::string& command);

// A category's colour ("#0072B2"), the same in every chart and legend.
std::string_view category_colour(planner::Category c);
// A human name for the legend ("frozen weights", "activations", ...).
std::string_view category_label(planner::Category c);

struct BarPart {
  std::string label;
  int64_t bytes = 0;
  std::string colour;
};
// A horizontal bar of `parts` (left to right) against a scale to max(total, budget), the budget
// drawn as a line; each part has a <title> for hover and a legend row below.
std::string stacked_bar_svg(const std::vector<BarPart>& parts, int64_t budget, int width);

// The timeline as stacked areas of live bytes by category over the step's events, phases as
// labelled bands, the peak marked; `limit` > 0 draws a dashed line labelled `limit_label`.
// `measured` (optional): polylines drawn over the areas, the measurement on the same axis.
std::string timeline_svg(const Timeline& t, int64_t limit, const std::string& limit_label,
                         int width, int height,
                         const std::vector<std::vector<OverlayPoint>>& measured = {});

// A histogram of `lengths` (tokens per row) in up to `bins` equal bins from 0 to the longest, the
// rows of `marked` (indices into lengths) drawn in their own colour on top: the worst micro-batch.
std::string length_histogram_svg(const std::vector<int64_t>& lengths,
                                 const std::vector<int64_t>& marked, int64_t seq_len, int bins,
                                 int width, int height);

// `values` over optimizer steps 1..n as a line with dots, the y axis from their range; `format`
// prints a value ("%.3f").
std::string line_chart_svg(const std::vector<double>& values, const std::string& label,
                           const char* format, int width, int height);

}  // namespace loraplan::reports
