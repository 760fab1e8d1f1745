#include "loraplan/reports/table.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace loraplan::reports {

namespace {

// Columns a cell takes in a terminal: one per character, two for East Asian wide ones and most
// emoji, none for combining marks and joiners. Cells are UTF-8 (tokens, model names).
size_t display_width(const std::string& s) {
  size_t width = 0;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const int n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    char32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (int k = 1; k < n && i + k < s.size(); ++k) cp = (cp << 6) | (s[i + k] & 0x3F);
    i += n;
    const bool zero = (cp >= 0x300 && cp <= 0x36F) || (cp >= 0x200B && cp <= 0x200F) ||
                      (cp >= 0xFE00 && cp <= 0xFE0F);
    const bool wide = (cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0xA4CF) ||
                      (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
                      (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
                      (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x1F300 && cp <= 0x1FAFF) ||
                      (cp >= 0x20000 && cp <= 0x3FFFD);
    width += zero ? 0 : wide ? 2 : 1;
  }
  return width;
}

}  // namespace

void Table::add_row(std::vector<std::string> cells) {
  if (cells.size() != columns_.size()) throw std::logic_error("table row has the wrong width");
  rows_.push_back(std::move(cells));
}

void Table::add_rule() { rows_.emplace_back(); }

std::string Table::text(int indent) const {
  std::vector<size_t> width(columns_.size());
  for (size_t c = 0; c < columns_.size(); ++c) width[c] = display_width(columns_[c].header);
  for (const auto& row : rows_) {
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], display_width(row[c]));
  }
  const std::string pad(indent, ' ');
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s = pad;
    for (size_t c = 0; c < cells.size(); ++c) {
      const std::string fill(width[c] - display_width(cells[c]), ' ');
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
