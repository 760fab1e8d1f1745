#include "loraplan/reports/verify_report.h"

#include <cmath>
#include <cstdio>
#include <map>

#include "loraplan/planner/hardware.h"
#include "loraplan/reports/html.h"
#include "loraplan/reports/table.h"

namespace loraplan::reports {

Verification verify(const planner::Estimate& predicted, int64_t measured_peak,
                    const std::vector<std::pair<std::string, int64_t>>& measured_phases,
                    double tolerance) {
  Verification v;
  v.tolerance = tolerance;
  auto add = [&](const std::string& name, int64_t p, int64_t m) {
    VerifyRow r{name, p, m};
    r.error = m > 0 ? static_cast<double>(p - m) / static_cast<double>(m) : 0.0;
    r.pass = m > 0 && std::abs(r.error) <= tolerance;  // nothing measured is never a match
    v.max_rel_error = std::max(v.max_rel_error, std::abs(r.error));
    v.pass = v.pass && r.pass;
    v.rows.push_back(r);
  };
  add("peak", predicted.peak_bytes, measured_peak);
  const std::map<std::string, int64_t> measured(measured_phases.begin(), measured_phases.end());
  for (const planner::PhasePeak& p : predicted.phases) {
    if (p.name == "setup") continue;
    const auto it = measured.find(p.name);
    add(p.name, p.peak_bytes, it == measured.end() ? 0 : it->second);
  }
  return v;
}

namespace {

Table rows_table(const Verification& v) {
  Table t({{"phase"},
           {"predicted", Align::kRight},
           {"measured", Align::kRight},
           {"error", Align::kRight},
           {"verdict"}});
  for (const VerifyRow& r : v.rows) {
    char err[32];
    if (r.measured > 0)
      std::snprintf(err, sizeof err, "%+.2f%%", 100 * r.error);
    else
      std::snprintf(err, sizeof err, "n/a");
    t.add_row(
        {r.name, with_commas(r.predicted), with_commas(r.measured), err, r.pass ? "ok" : "OUT"});
  }
  return t;
}

std::string summary(const Verification& v) {
  char s[160];
  std::snprintf(s, sizeof s, "%s: max |error| %.2f%%, tolerance %.2f%%", v.pass ? "PASS" : "FAIL",
                100 * v.max_rel_error, 100 * v.tolerance);
  return s;
}

}  // namespace

std::string verification_text(const Verification& v) {
  return rows_table(v).text() + "\n  " + summary(v) + "\n";
}

std::string verification_markdown(const Verification& v) {
  return rows_table(v).markdown() + "\n**" + summary(v) + "**\n";
}

nlohmann::json verification_json(const Verification& v) {
  nlohmann::json j;
  j["pass"] = v.pass;
  j["max_rel_error"] = v.max_rel_error;
  j["tolerance"] = v.tolerance;
  j["rows"] = nlohmann::json::array();
  for (const VerifyRow& r : v.rows) {
    j["rows"].push_back({{"name", r.name},
                         {"predicted_bytes", r.predicted},
                         {"measured_bytes", r.measured},
                         {"rel_error", r.measured > 0 ? nlohmann::json(r.error) : nlohmann::json()},
                         {"pass", r.pass}});
  }
  return j;
}

std::string verification_html(const Verification& v, const planner::Estimate& predicted,
                              const MeasuredSeries* measured, const RunCurves* curves,
                              const std::string& title, const std::string& command) {
  using planner::format_bytes;
  std::string body = "<h1>" + html_escape(title) + "</h1>\n";
  if (curves && !curves->stopped.empty()) {
    // The run did not finish a step to hold the prediction to: say why, then show how far it got.
    body += "<p class=\"verdict over stopped\">" + html_escape(curves->stopped) +
            "</p>\n<p>Below: the prediction for its configuration and what the run measured "
            "before it stopped; phases it never reached show as not measured.</p>\n";
  } else {
    body += "<p class=\"verdict " + std::string(v.pass ? "fits" : "over") + "\">" +
            html_escape(summary(v)) + "</p>\n";
  }
  const Timeline t = predicted_timeline(predicted.schedule, 1200);
  body += "<h2>Over the step: predicted and measured</h2>\n";
  if (measured) {
    body += timeline_svg(t, 0, "", 1200, 440, align_to_prediction(t, *measured));
    body += "<p>Coloured areas: the predicted live tensor bytes by kind. Black line: step " +
            std::to_string(measured->step) + " as measured (" +
            html_escape(measured->device.empty() ? "the run" : measured->device) + ", " +
            std::to_string(measured->events) +
            " allocations and frees), each phase stretched onto the same phase of the prediction; "
            "micro-batches after the second lie over the second, which they repeat.</p>\n";
  } else {
    body += timeline_svg(t, 0, "", 1200, 440) +
            "<p>Predicted only: the run folder has no timeline.json (train records one with "
            "<code>--trace-step</code>, on the CPU).</p>\n";
  }
  body +=
      "<h2>Peak and phases</h2>\n<table class=\"rows\"><tr><th>phase</th><th "
      "class=\"n\">predicted</th><th class=\"n\">measured</th><th class=\"n\">error</th><th>"
      "against the tolerance (" +
      percent(v.tolerance, 1, 2) + ")</th></tr>\n";
  for (const VerifyRow& r : v.rows) {
    const double share = v.tolerance > 0 ? std::min(std::abs(r.error) / v.tolerance, 1.0) : 0;
    const std::string colour = r.pass ? "#009E73" : "#D55E00";
    char width[16];
    std::snprintf(width, sizeof width, "%.1f", 120 * share);
    body += "<tr><td>" + html_escape(r.name) + "</td><td class=\"n\">" + format_bytes(r.predicted) +
            "</td><td class=\"n\">" +
            (r.measured > 0 ? format_bytes(r.measured) : std::string("not measured")) +
            "</td><td class=\"n\">" + (r.measured > 0 ? percent(r.error, 1, 2) : std::string("-")) +
            "</td><td><svg class=\"err\" width=\"124\" height=\"10\"><rect width=\"120\" "
            "height=\"10\" fill=\"#eee\"/><rect width=\"" +
            width + "\" height=\"10\" fill=\"" + colour + "\"/></svg> " +
            (r.pass ? "pass" : "FAIL") + "</td></tr>\n";
  }
  body += "</table>\n";
  if (curves && !curves->loss.empty()) {
    body += "<h2>The run</h2>\n" + line_chart_svg(curves->loss, "loss", "%.3f", 590, 220) +
            line_chart_svg(curves->tokens_per_s, "tokens/s", "%.0f", 590, 220);
  }
  return html_page(title, body, command);
}

}  // namespace loraplan::reports
