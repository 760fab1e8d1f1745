#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "loraplan/planner/simulator.h"
#include "loraplan/reports/timeline.h"

namespace loraplan::reports {

// One row of predicted vs measured: the peak, or one phase's peak.
struct VerifyRow {
  std::string name;
  int64_t predicted = 0, measured = 0;
  double error = 0;  // (predicted - measured) / measured; 0 when nothing was measured
  bool pass = true;  // within the tolerance of a measurement (measured > 0)
};

struct Verification {
  std::vector<VerifyRow> rows;
  double tolerance = 0;
  double max_rel_error = 0;
  bool pass = true;
};

// The prediction against a run's measurement: the peak, then every predicted phase (setup aside);
// a phase measured at 0 bytes or not at all fails.
Verification verify(const planner::Estimate& predicted, int64_t measured_peak,
                    const std::vector<std::pair<std::string, int64_t>>& measured_phases,
                    double tolerance);

std::string verification_text(const Verification& v);  // the table and the PASS/FAIL line
std::string verification_markdown(const Verification& v);
nlohmann::json verification_json(const Verification& v);  // pass, max_rel_error, tolerance, rows

// verify --format html: the verdict, the predicted timeline with the measured one drawn over it
// phase by phase (when the run recorded one), and every row with its error against the tolerance.
// The run's own curves over its optimizer steps (report.json "steps").
struct RunCurves {
  std::vector<double> loss, tokens_per_s;
  std::string
      stopped;  // why the run stopped early ("... out of memory (...)"); empty: it completed
};
std::string verification_html(const Verification& v, const planner::Estimate& predicted,
                              const MeasuredSeries* measured, const RunCurves* curves,
                              const std::string& title, const std::string& command);

}  // namespace loraplan::reports
