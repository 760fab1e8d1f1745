// loraplan tokenize: a Hugging Face tokenizer.json run on a text or on a dataset's rows.
#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

#include "app.h"
#include "loraplan/data/text_rows.h"
#include "loraplan/data/tokenizer.h"
#include "loraplan/planner/errors.h"
#include "loraplan/reports/table.h"

namespace loraplan::cli {

namespace {

struct TokenizeFlags {
  std::string tokenizer;
  std::string text;
  std::string data;
  std::string field = "text";
  std::string format = "table";
  bool no_special = false;
};

std::string ids_json(const std::vector<int32_t>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ",";
    out += std::to_string(ids[i]);
  }
  return out + "]";
}

// A token as a table shows it: JSON-escaped without the quotes, so spaces and controls are seen.
std::string shown(const std::string& token) {
  const std::string quoted =
      nlohmann::json(token).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return quoted.substr(1, quoted.size() - 2);
}

int tokenize_text(Io& io, const data::Tokenizer& tok, const TokenizeFlags& f) {
  const std::vector<int32_t> ids = tok.encode(f.text, !f.no_special);
  if (f.format == "json") {
    io.out << ids_json(ids) << "\n";
    return kExitOk;
  }
  // The vocabulary's spelling (Ġ for a byte-level space) and what the token decodes to.
  reports::Table t(
      {{"#", reports::Align::kRight}, {"id", reports::Align::kRight}, {"token"}, {"text"}});
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t one[] = {ids[i]};
    t.add_row({std::to_string(i), std::to_string(ids[i]),
               shown(tok.id_to_token(ids[i]).value_or("")),
               nlohmann::json(tok.decode(one))
                   .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)});
  }
  io.out << t.text() << ids.size() << (ids.size() == 1 ? " token\n" : " tokens\n");
  return kExitOk;
}

int tokenize_data(Io& io, const data::Tokenizer& tok, const TokenizeFlags& f) {
  // Everything is held until the last row is read: a bad row prints its error and nothing else.
  std::ostringstream rows;
  int64_t count = 0, tokens = 0, longest = 0, longest_row = 0;
  data::for_each_text_row(f.data, f.field, [&](const data::TextRow& row) {
    const std::vector<int32_t> ids = tok.encode(row.text, !f.no_special);
    if (f.format == "json") rows << ids_json(ids) << "\n";
    ++count;
    tokens += static_cast<int64_t>(ids.size());
    if (static_cast<int64_t>(ids.size()) > longest) {
      longest = static_cast<int64_t>(ids.size());
      longest_row = row.index;
    }
  });
  if (f.format == "json") {
    io.out << rows.str();
    return kExitOk;
  }
  io.out << count << " rows, " << tokens << " tokens";
  if (count > 0) {
    io.out << " (mean " << (tokens + count / 2) / count << ", longest " << longest << " in row "
           << longest_row + 1 << ")";
  }
  io.out << "\n";
  return kExitOk;
}

}  // namespace

Handler define_tokenize(CLI::App& sub) {
  auto f = std::make_shared<TokenizeFlags>();
  sub.add_option("--tokenizer", f->tokenizer,
                 "A tokenizer.json, or a model folder holding one (and tokenizer_config.json)")
      ->required();
  auto* text = sub.add_option("--text", f->text, "Text to tokenize");
  auto* data = sub.add_option("--data", f->data, "JSONL (or JSON array) rows to tokenize");
  text->excludes(data);
  sub.add_option("--field", f->field, "The rows' text field")->default_str(f->field);
  sub.add_flag("--no-special", f->no_special,
               "Leave out the special tokens the post-processor adds (BOS/EOS)");
  add_format_flag(sub, f->format, false);
  sub.footer(
      "--format json prints the ids as a JSON array (one line per row with --data); table shows "
      "each token (--text) or the rows' token counts (--data).");
  return [f, text, data](Io& io) {
    if (text->count() == 0 && data->count() == 0) {
      throw InputError("tokenize: give --text or --data");
    }
    const data::Tokenizer tok = data::Tokenizer::load(f->tokenizer);
    return data->count() ? tokenize_data(io, tok, *f) : tokenize_text(io, tok, *f);
  };
}

}  // namespace loraplan::cli
