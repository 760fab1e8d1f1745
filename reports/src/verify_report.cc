#include "loraplan/reports/verify_report.h"

#include <cmath>
#include <cstdio>
#include <map>

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

}  // namespace loraplan::reports
