#include "loraplan/reports/table.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace loraplan::reports {

void Table::add_row(std::vector<std::string> cells) {
  if (cells.size() != columns_.size()) throw std::logic_error("table row has the wrong width");
  rows_.push_back(std::move(cells));
}

void Table::add_rule() { rows_.emplace_back(); }

std::string Table::text(int indent) const {
  std::vector<size_t> width(columns_.size());
  for (size_t c = 0; c < columns_.size(); ++c) width[c] = columns_[c].header.size();
  for (const auto& row : rows_) {
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  const std::string pad(indent, ' ');
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s = pad;
    for (size_t c = 0; c < cells.size(); ++c) {
      const std::string fill(width[c] - cells[c].size(), ' ');
      s += c ? "  " : "";
      s += columns_[c].align == Align::kRight ? fill + cells[c] : cells[c] + fill;
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s + "\n";
  };
  size_t total = 0;
  for (size_t w : width) total += w;
  const std::string rule = pad + std::string(total + 2 * (width.size() - 1), '-') + "\n";
  std::vector<std::string> headers;
  for (const Column& c : columns_) headers.push_back(c.header);
  std::string out = line(headers) + rule;
  for (const auto& row : rows_) out += row.empty() ? rule : line(row);
  return out;
}

std::string Table::markdown() const {
  std::string out = "|", sep = "|";
  for (const Column& c : columns_) {
    out += " " + c.header + " |";
    sep += c.align == Align::kRight ? " ---: |" : " --- |";
  }
  out += "\n" + sep + "\n";
  for (const auto& row : rows_) {
    if (row.empty()) continue;
    out += "|";
    for (const std::string& cell : row) out += " " + cell + " |";
    out += "\n";
  }
  return out;
}

std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) digits.insert(i, ",");
  return n < 0 ? "-" + digits : digits;
}

std::string short_count(int64_t n) {
  char buf[32];
  const double v = static_cast<double>(n);
  if (v >= 1e9)
    std::snprintf(buf, sizeof buf, "%.2fB", v / 1e9);
  else if (v >= 1e6)
    std::snprintf(buf, sizeof buf, "%.1fM", v / 1e6);
  else if (v >= 1e3)
    std::snprintf(buf, sizeof buf, "%.1fK", v / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
  return buf;
}

std::string percent(double part, double whole, int decimals) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f%%", decimals, whole == 0 ? 0.0 : 100.0 * part / whole);
  return buf;
}

}  // namespace loraplan::reports
