#include "loraplan/reports/html.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "loraplan/planner/hardware.h"

namespace loraplan::reports {
namespace {

using planner::Category;

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

// Ticks of a byte axis up to `max`: a 1, 2 or 5 step of MiB or GiB, labelled in that unit.
struct Tick {
  int64_t bytes;
  std::string label;
};
std::vector<Tick> byte_ticks(int64_t max) {
  const double gib = 1024.0 * 1024 * 1024, mib = 1024.0 * 1024, kib = 1024.0;
  const double unit = max >= 2 * gib ? gib : max >= 2 * mib ? mib : kib;
  const char* name = unit == gib ? "GiB" : unit == mib ? "MiB" : "KiB";
  const double raw = static_cast<double>(max) / unit / 5;
  const double p = std::pow(10, std::floor(std::log10(std::max(raw, 1e-9))));
  double step = p;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (m * p >= raw) {
      step = m * p;
      break;
    }
  }
  std::vector<Tick> ticks;
  for (double v = 0; v * unit <= static_cast<double>(max) * 1.0001; v += step) {
    char b[32];
    std::snprintf(b, sizeof b, step < 1 ? "%.2f %s" : "%.0f %s", v, name);
    ticks.push_back({static_cast<int64_t>(v * unit), b});
  }
  return ticks;
}

}  // namespace

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string html_page(const std::string& title, const std::string& body,
                      const std::string& command) {
  return "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src "
         "'unsafe-inline'\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>" +
         html_escape(title) +
         "</title>\n<style>\n"
         "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#222;"
         "margin:24px auto;max-width:1240px;padding:0 16px}\n"
         "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}\n"
         "code,.mono{font-family:ui-monospace,'DejaVu Sans Mono',monospace;font-size:13px}\n"
         ".verdict{font-size:18px;font-weight:600;margin:12px 0}.fits{color:#00734d}"
         ".over{color:#b03a00}\n"
         "table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;text-align:left;"
         "border-bottom:1px solid #e4e4e4}td.n,th.n{text-align:right;font-variant-numeric:"
         "tabular-nums}\n"
         ".swatch{display:inline-block;width:11px;height:11px;margin-right:6px;"
         "vertical-align:-1px;border:1px solid #0003}\n"
         "svg text{font:12px system-ui,sans-serif;fill:#333}svg .small{font-size:10.5px}\n"
         "footer{margin-top:32px;color:#666;font-size:12.5px;border-top:1px solid #ddd;"
         "padding-top:8px}\n"
         "@media print{body{margin:0;max-width:none}h2{break-after:avoid}svg{break-inside:avoid}}\n"
         "</style>\n</head>\n<body>\n" +
         body + "<footer>made by <code>" + html_escape(command) +
         "</code>: loraplan's prediction (its simulator, docs/simulator.md) and, where shown, a "
         "run's "
         "measurement (docs/reports.md)</footer>\n"
         "</body>\n</html>\n";
}

std::string_view category_colour(Category c) {
  switch (c) {  // Okabe and Ito's palette, distinguishable with each colour vision deficiency
    case Category::kWeights:
      return "#0072B2";
    case Category::kAdapters:
      return "#56B4E9";
    case Category::kOptimizer:
      return "#CC79A7";
    case Category::kGradients:
      return "#E69F00";
    case Category::kActivations:
      return "#009E73";
    case Category::kBatch:
      return "#999999";
    case Category::kLogits:
      return "#D55E00";
    case Category::kWorkspace:
      return "#F0E442";
    case Category::kOffloadStaging:
      return "#000000";
  }
  return "#999999";
}

std::string_view category_label(Category c) {
  switch (c) {
    case Category::kWeights:
      return "frozen weights";
    case Category::kAdapters:
      return "LoRA adapters";
    case Category::kOptimizer:
      return "optimizer state";
    case Category::kGradients:
      return "gradients";
    case Category::kActivations:
      return "activations";
    case Category::kBatch:
      return "input batch";
    case Category::kLogits:
      return "logits and loss";
    case Category::kWorkspace:
      return "workspace";
    case Category::kOffloadStaging:
      return "offload staging";
  }
  return "";
}

std::string stacked_bar_svg(const std::vector<BarPart>& parts, int64_t budget, int width) {
  int64_t total = 0;
  for (const BarPart& p : parts) total += p.bytes;
  const int64_t scale = std::max<int64_t>({total, budget, 1});
  const double left = 24, w = width - 48, top = 8, h = 44;
  std::string svg = "<svg class=\"bar\" role=\"img\" width=\"" + std::to_string(width) +
                    "\" height=\"" + std::to_string(static_cast<int>(top + h + 34)) +
                    "\" viewBox=\"0 0 " + std::to_string(width) + " " +
                    std::to_string(static_cast<int>(top + h + 34)) +
                    "\"><title>memory at the peak by kind</title>\n";
  double x = left;
  for (const BarPart& p : parts) {
    if (p.bytes <= 0) continue;
    const double pw = w * static_cast<double>(p.bytes) / static_cast<double>(scale);
    svg += "<rect class=\"part\" x=\"" + num(x) + "\" y=\"" + num(top) + "\" width=\"" +
           num(std::max(pw, 0.5)) + "\" height=\"" + num(h) + "\" fill=\"" + p.colour +
           "\" stroke=\"#fff\" stroke-width=\"0.5\"><title>" + html_escape(p.label) + ": " +
           planner::format_bytes(p.bytes) + "</title></rect>\n";
    x += pw;
  }
  for (const Tick& t : byte_ticks(scale)) {
    const double tx = left + w * static_cast<double>(t.bytes) / static_cast<double>(scale);
    svg += "<line x1=\"" + num(tx) + "\" x2=\"" + num(tx) + "\" y1=\"" + num(top + h) + "\" y2=\"" +
           num(top + h + 5) + "\" stroke=\"#666\"/><text class=\"small\" x=\"" + num(tx) +
           "\" y=\"" + num(top + h + 18) + "\" text-anchor=\"middle\">" + t.label + "</text>\n";
  }
  if (budget > 0) {
    const double bx = left + w * static_cast<double>(budget) / static_cast<double>(scale);
    svg += "<line class=\"budget\" x1=\"" + num(bx) + "\" x2=\"" + num(bx) + "\" y1=\"" +
           num(top - 6) + "\" y2=\"" + num(top + h + 6) +
           "\" stroke=\"#b03a00\" stroke-width=\"2\" stroke-dasharray=\"5 3\"><title>budget " +
           planner::format_bytes(budget) + "</title></line>\n";
  }
  return svg + "</svg>\n";
}

std::string timeline_svg(const Timeline& t, int64_t limit, const std::string& limit_label,
                         int width, int height,
                         const std::vector<std::vector<OverlayPoint>>& measured) {
  const double left = 78, right = 16, top = 30, bottom = 44;
  const double w = width - left - right, h = height - top - bottom;
  int64_t ymax = std::max<int64_t>(t.peak_bytes, 1);
  for (const auto& line : measured)
    for (const OverlayPoint& p : line) ymax = std::max(ymax, p.bytes);
  // A limit far above the curve would flatten it: then it is named, not drawn.
  const bool limit_drawn = limit > 0 && limit <= 4 * ymax;
  if (limit_drawn) ymax = std::max(ymax, limit);
  const double xmax = static_cast<double>(std::max<int64_t>(t.events, 1));
  auto X = [&](double event) { return left + w * event / xmax; };
  auto Y = [&](double bytes) { return top + h - h * bytes / (static_cast<double>(ymax) * 1.06); };
  std::string svg = "<svg class=\"timeline\" role=\"img\" width=\"" + std::to_string(width) +
                    "\" height=\"" + std::to_string(height) + "\" viewBox=\"0 0 " +
                    std::to_string(width) + " " + std::to_string(height) +
                    "\"><title>live bytes over the step, by kind</title>\n";
  // Phase bands: consecutive phases of one kind ("fwd L0" .. "fwd L31") shaded as one group and
  // labelled "fwd L0-31" where there is room; each phase keeps its own hover title.
  auto kind = [&](const PhaseSpan& s) {
    const std::string& n = t.phases[static_cast<size_t>(s.phase)];
    return n.substr(0, n.find(' '));
  };
  size_t group = 0;
  for (size_t i = 0; i < t.spans.size(); ++i) {
    if (i > 0 && kind(t.spans[i]) != kind(t.spans[i - 1])) ++group;
    const PhaseSpan& s = t.spans[i];
    const double x0 = X(static_cast<double>(s.begin)), x1 = X(static_cast<double>(s.end));
    svg += "<rect class=\"phase\" x=\"" + num(x0) + "\" y=\"" + num(top) + "\" width=\"" +
           num(std::max(x1 - x0, 0.1)) + "\" height=\"" + num(h) + "\" fill=\"" +
           (group % 2 ? "#ececec" : "#f9f9f9") + "\"><title>" +
           html_escape(t.phases[static_cast<size_t>(s.phase)]) + "</title></rect>\n";
  }
  for (size_t i = 0; i < t.spans.size();) {
    size_t j = i;
    while (j + 1 < t.spans.size() && kind(t.spans[j + 1]) == kind(t.spans[i])) ++j;
    const std::string& first = t.phases[static_cast<size_t>(t.spans[i].phase)];
    const std::string& last = t.phases[static_cast<size_t>(t.spans[j].phase)];
    std::string label = first;
    if (j > i && first.find(" L") != std::string::npos && last.find(" L") != std::string::npos)
      label = first + "-" + last.substr(last.find(" L") + 2);
    const double x0 = X(static_cast<double>(t.spans[i].begin)),
                 x1 = X(static_cast<double>(t.spans[j].end));
    if (x1 - x0 >= 6.5 * static_cast<double>(label.size()) + 4) {
      svg += "<text class=\"small phase-label\" x=\"" + num((x0 + x1) / 2) + "\" y=\"" +
             num(top - 6) + "\" text-anchor=\"middle\">" + html_escape(label) + "</text>\n";
    }
    i = j + 1;
  }
  // Stacked areas: category c's band lies between the sums of the categories before it and
  // through it, drawn as steps (bytes stay until the next event).
  for (int c = 0; c < planner::kCategoryCount; ++c) {
    bool any = false;
    for (const TimelinePoint& p : t.points) any = any || p.live[static_cast<size_t>(c)] != 0;
    if (!any) continue;
    std::string upper;
    std::vector<std::string> lower;  // drawn back from the right end
    for (size_t i = 0; i < t.points.size(); ++i) {
      const TimelinePoint& p = t.points[i];
      int64_t below = 0;
      for (int k = 0; k < c; ++k) below += p.live[static_cast<size_t>(k)];
      const int64_t above = below + p.live[static_cast<size_t>(c)];
      const double x0 = X(static_cast<double>(p.event));
      const double x1 =
          X(static_cast<double>(i + 1 < t.points.size() ? t.points[i + 1].event : p.event + 1));
      upper += num(x0) + "," + num(Y(static_cast<double>(above))) + " " + num(x1) + "," +
               num(Y(static_cast<double>(above))) + " ";
      lower.push_back(num(x1) + "," + num(Y(static_cast<double>(below))) + " " + num(x0) + "," +
                      num(Y(static_cast<double>(below))) + " ");
    }
    for (auto it = lower.rbegin(); it != lower.rend(); ++it) upper += *it;
    const auto cat = static_cast<planner::Category>(c);
    svg += "<polygon class=\"area\" data-category=\"" + std::string(planner::category_name(cat)) +
           "\" points=\"" + upper + "\" fill=\"" + std::string(category_colour(cat)) +
           "\" fill-opacity=\"0.9\"><title>" + std::string(category_label(cat)) +
           "</title></polygon>\n";
  }
  // Axes.
  for (const Tick& tk : byte_ticks(static_cast<int64_t>(static_cast<double>(ymax) * 1.06))) {
    const double y = Y(static_cast<double>(tk.bytes));
    svg += "<line x1=\"" + num(left) + "\" x2=\"" + num(left + w) + "\" y1=\"" + num(y) +
           "\" y2=\"" + num(y) + "\" stroke=\"#0002\"/><text x=\"" + num(left - 6) + "\" y=\"" +
           num(y + 4) + "\" text-anchor=\"end\">" + tk.label + "</text>\n";
  }
  svg += "<line x1=\"" + num(left) + "\" x2=\"" + num(left + w) + "\" y1=\"" + num(top + h) +
         "\" y2=\"" + num(top + h) + "\" stroke=\"#444\"/>\n<text x=\"" + num(left + w / 2) +
         "\" y=\"" + num(height - 8.0) +
         "\" text-anchor=\"middle\">event of the step (allocations and frees, in order), " +
         std::to_string(t.events) + " in all</text>\n";
  if (limit > 0 && !limit_drawn) {
    svg += "<text class=\"small\" x=\"" + num(left + w - 4) + "\" y=\"" + num(top + 12) +
           "\" text-anchor=\"end\" fill=\"#b03a00\">" + html_escape(limit_label) +
           ": far above, off the scale</text>\n";
  }
  if (limit_drawn) {
    const double y = Y(static_cast<double>(limit));
    svg += "<line class=\"limit\" x1=\"" + num(left) + "\" x2=\"" + num(left + w) + "\" y1=\"" +
           num(y) + "\" y2=\"" + num(y) +
           "\" stroke=\"#b03a00\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/><text "
           "class=\"small\" x=\"" +
           num(left + w - 4) + "\" y=\"" + num(y - 5) + "\" text-anchor=\"end\" fill=\"#b03a00\">" +
           html_escape(limit_label) + "</text>\n";
  }
  // The measurement over the prediction.
  for (const auto& line : measured) {
    std::string pts;
    for (const OverlayPoint& p : line)
      pts += num(X(p.x)) + "," + num(Y(static_cast<double>(p.bytes))) + " ";
    svg += "<polyline class=\"measured\" points=\"" + pts +
           "\" fill=\"none\" stroke=\"#000\" stroke-width=\"1.2\"><title>measured</title>"
           "</polyline>\n";
  }
  // The peak.
  const double px = X(static_cast<double>(t.peak_event)), py = Y(static_cast<double>(t.peak_bytes));
  const std::string peak_text = "live peak " + planner::format_bytes(t.peak_bytes) + " (" +
                                html_escape(t.phases.empty() ? "" : [&] {
                                  for (const PhaseSpan& s : t.spans) {
                                    if (s.begin <= t.peak_event && t.peak_event < s.end)
                                      return t.phases[static_cast<size_t>(s.phase)];
                                  }
                                  return std::string();
                                }()) +
                                ")";
  svg +=
      "<circle class=\"peak\" cx=\"" + num(px) + "\" cy=\"" + num(py) +
      "\" r=\"4.5\" fill=\"none\" stroke=\"#000\" stroke-width=\"2\"/><text class=\"peak-label\" "
      "x=\"" +
      num(std::min(px + 8, left + w - 150)) + "\" y=\"" + num(py - 8) + "\">" + peak_text +
      "</text>\n";
  return svg + "</svg>\n";
}

std::string line_chart_svg(const std::vector<double>& values, const std::string& label,
                           const char* format, int width, int height) {
  const double left = 64, right = 14, top = 24, bottom = 36;
  const double w = width - left - right, h = height - top - bottom;
  double lo = values.empty() ? 0 : *std::min_element(values.begin(), values.end());
  double hi = values.empty() ? 1 : *std::max_element(values.begin(), values.end());
  if (hi - lo < 1e-12 * std::max(1.0, std::abs(hi))) {
    lo -= 0.5 * std::max(std::abs(lo), 1e-3);
    hi += 0.5 * std::max(std::abs(hi), 1e-3);
  }
  const double n = static_cast<double>(std::max<size_t>(values.size(), 2) - 1);
  auto X = [&](size_t i) { return left + w * static_cast<double>(i) / n; };
  auto Y = [&](double v) { return top + h - h * (v - lo) / (hi - lo); };
  auto text = [&](double v) {
    char b[32];
    std::snprintf(b, sizeof b, format, v);
    return std::string(b);
  };
  std::string svg = "<svg class=\"line\" role=\"img\" width=\"" + std::to_string(width) +
                    "\" height=\"" + std::to_string(height) + "\" viewBox=\"0 0 " +
                    std::to_string(width) + " " + std::to_string(height) + "\"><title>" +
                    html_escape(label) + " by step</title>\n<text x=\"" + num(left) +
                    "\" y=\"14\">" + html_escape(label) + "</text>\n";
  for (double v : {lo, (lo + hi) / 2, hi}) {
    svg += "<line x1=\"" + num(left) + "\" x2=\"" + num(left + w) + "\" y1=\"" + num(Y(v)) +
           "\" y2=\"" + num(Y(v)) + "\" stroke=\"#0002\"/><text class=\"small\" x=\"" +
           num(left - 6) + "\" y=\"" + num(Y(v) + 4) + "\" text-anchor=\"end\">" + text(v) +
           "</text>\n";
  }
  std::string pts;
  for (size_t i = 0; i < values.size(); ++i) pts += num(X(i)) + "," + num(Y(values[i])) + " ";
  svg += "<polyline points=\"" + pts + "\" fill=\"none\" stroke=\"#0072B2\" stroke-width=\"2\"/>\n";
  for (size_t i = 0; i < values.size(); ++i) {
    svg += "<circle cx=\"" + num(X(i)) + "\" cy=\"" + num(Y(values[i])) +
           "\" r=\"2.5\" fill=\"#0072B2\"><title>step " + std::to_string(i + 1) + ": " +
           text(values[i]) + "</title></circle>\n";
  }
  svg += "<text class=\"small\" x=\"" + num(left + w / 2) + "\" y=\"" + num(height - 6.0) +
         "\" text-anchor=\"middle\">optimizer step (1-" + std::to_string(values.size()) +
         ")</text>\n";
  return svg + "</svg>\n";
}

std::string length_histogram_svg(const std::vector<int64_t>& lengths,
                                 const std::vector<int64_t>& marked, int64_t seq_len, int bins,
                                 int width, int height) {
  const double left = 64, right = 14, top = 20, bottom = 40;
  const double w = width - left - right, h = height - top - bottom;
  int64_t longest = 1;
  for (int64_t n : lengths) longest = std::max(longest, n);
  const int64_t top_len = std::max(longest, seq_len);
  const int64_t bin = std::max<int64_t>(1, (top_len + bins - 1) / bins);
  const int count = static_cast<int>((top_len + bin - 1) / bin) + 1;
  std::vector<int64_t> all(static_cast<size_t>(count), 0), worst(static_cast<size_t>(count), 0);
  for (int64_t n : lengths) ++all[static_cast<size_t>(n / bin)];
  for (int64_t i : marked) {
    if (i >= 0 && i < static_cast<int64_t>(lengths.size()))
      ++worst[static_cast<size_t>(lengths[static_cast<size_t>(i)] / bin)];
  }
  const int64_t most = std::max<int64_t>(1, *std::max_element(all.begin(), all.end()));
  auto X = [&](double tokens) { return left + w * tokens / static_cast<double>(count * bin); };
  auto Y = [&](double rows) { return top + h - h * rows / static_cast<double>(most); };
  std::string svg = "<svg class=\"histogram\" role=\"img\" width=\"" + std::to_string(width) +
                    "\" height=\"" + std::to_string(height) + "\" viewBox=\"0 0 " +
                    std::to_string(width) + " " + std::to_string(height) +
                    "\"><title>rows by length, the worst micro-batch's marked</title>\n";
  for (int b = 0; b < count; ++b) {
    const double x0 = X(static_cast<double>(b * bin)), x1 = X(static_cast<double>((b + 1) * bin));
    const std::string range =
        std::to_string(b * bin) + "-" + std::to_string((b + 1) * bin - 1) + " tokens";
    if (all[static_cast<size_t>(b)] > 0) {
      svg += "<rect class=\"bin\" x=\"" + num(x0) + "\" y=\"" +
             num(Y(static_cast<double>(all[static_cast<size_t>(b)]))) + "\" width=\"" +
             num(std::max(x1 - x0 - 1, 0.5)) + "\" height=\"" +
             num(top + h - Y(static_cast<double>(all[static_cast<size_t>(b)]))) +
             "\" fill=\"#56B4E9\"><title>" + range + ": " +
             std::to_string(all[static_cast<size_t>(b)]) + " rows</title></rect>\n";
    }
    if (worst[static_cast<size_t>(b)] > 0) {
      svg += "<rect class=\"worst\" x=\"" + num(x0) + "\" y=\"" +
             num(Y(static_cast<double>(worst[static_cast<size_t>(b)]))) + "\" width=\"" +
             num(std::max(x1 - x0 - 1, 0.5)) + "\" height=\"" +
             num(top + h - Y(static_cast<double>(worst[static_cast<size_t>(b)]))) +
             "\" fill=\"#D55E00\"><title>" + range + ": " +
             std::to_string(worst[static_cast<size_t>(b)]) +
             " rows of the worst micro-batch</title></rect>\n";
    }
  }
  for (const double v : {0.0, static_cast<double>(most) / 2, static_cast<double>(most)}) {
    svg += "<text class=\"small\" x=\"" + num(left - 6) + "\" y=\"" + num(Y(v) + 4) +
           "\" text-anchor=\"end\">" + std::to_string(static_cast<int64_t>(v)) + "</text>\n";
  }
  const double sx = X(static_cast<double>(seq_len));
  svg += "<line class=\"seq-len\" x1=\"" + num(sx) + "\" x2=\"" + num(sx) + "\" y1=\"" + num(top) +
         "\" y2=\"" + num(top + h) +
         "\" stroke=\"#444\" stroke-dasharray=\"4 3\"/><text class=\"small\" x=\"" + num(sx - 4) +
         "\" y=\"" + num(top + 10) + "\" text-anchor=\"end\">--seq-len " + std::to_string(seq_len) +
         "</text>\n<line x1=\"" + num(left) + "\" x2=\"" + num(left + w) + "\" y1=\"" +
         num(top + h) + "\" y2=\"" + num(top + h) + "\" stroke=\"#444\"/>\n<text x=\"" +
         num(left + w / 2) + "\" y=\"" + num(height - 8.0) +
         "\" text-anchor=\"middle\">tokens per row (bins of " + std::to_string(bin) +
         "); rows</text>\n";
  return svg + "</svg>\n";
}

}  // namespace loraplan::reports
