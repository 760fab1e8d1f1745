#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace loraplan::reports {

enum class Align { kLeft, kRight };

struct Column {
  std::string header;
  Align align = Align::kLeft;
};

// A table of text cells, rendered for a terminal (aligned columns) or as Markdown.
class Table {
 public:
  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

  void add_row(std::vector<std::string> cells);  // cells.size() must equal the column count
  void add_rule();                               // a horizontal rule before the next row

  std::string text(int indent = 2) const;
  std::string markdown() const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;  // an empty row marks a rule
};

std::string with_commas(int64_t n);  // 3836021760 -> "3,836,021,760"
std::string short_count(int64_t n);  // 3836021760 -> "3.84B", 17825792 -> "17.8M"
std::string percent(double part, double whole, int decimals = 1);  // "16.0%"

}  // namespace loraplan::reports
