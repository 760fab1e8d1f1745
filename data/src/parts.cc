#include "parts.h"

#include <array>

#include "loraplan/data/utf8.h"
#include "loraplan/planner/errors.h"
#include "loraplan/planner/json_fields.h"

namespace loraplan::data {

void Where::fail(const std::string& message) const {
  throw InputError(file + ": " + (path.empty() ? "" : path + ": ") + message);
}

const std::string& string_field(const nlohmann::json& j, const char* key, const Where& where) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_string()) {
    where.fail("\"" + std::string(key) + "\" must be a string, got " +
               (it == j.end() ? std::string("nothing") : planner::json_excerpt(*it)));
  }
  return it->get_ref<const std::string&>();
}

bool bool_field(const nlohmann::json& j, const char* key, bool fallback, const Where& where) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) {
    where.fail("\"" + std::string(key) + "\" must be true or false, got " +
               planner::json_excerpt(*it));
  }
  return it->get<bool>();
}

const nlohmann::json& array_field(const nlohmann::json& j, const char* key, const Where& where) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_array()) {
    where.fail("\"" + std::string(key) + "\" must be an array, got " +
               (it == j.end() ? std::string("nothing") : planner::json_excerpt(*it)));
  }
  return *it;
}

std::string char_field(const nlohmann::json& j, const char* key, const Where& where) {
  const std::string& s = string_field(j, key, where);
  if (s.empty() || static_cast<size_t>(utf8_sequence_length(s[0])) != s.size()) {
    where.fail("\"" + std::string(key) + "\" must be one character, got " +
               planner::json_excerpt(j.at(key)));
  }
  return s;
}

namespace {

std::array<int, 256> byte_order() {
  // Printable bytes stand for themselves; the others (controls, space, 0x7F-0xA0, 0xAD) take the
  // code points from U+0100 up, in byte order.
  std::array<int, 256> cp{};
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    cp[b] = printable ? b : next++;
  }
  return cp;
}

}  // namespace

const std::vector<std::string>& byte_chars() {
  static const std::vector<std::string> table = [] {
    std::vector<std::string> t(256);
    const std::array<int, 256> cp = byte_order();
    for (int b = 0; b < 256; ++b) append_utf8(t[b], static_cast<char32_t>(cp[b]));
    return t;
  }();
  return table;
}

int byte_of_char(char32_t c) {
  static const std::array<int, 324> inverse = [] {
    std::array<int, 324> inv;
    inv.fill(-1);
    const std::array<int, 256> cp = byte_order();
    for (int b = 0; b < 256; ++b) inv[cp[b]] = b;
    return inv;
  }();
  return c < inverse.size() ? inverse[c] : -1;
}

}  // namespace loraplan::data
