// Post-processors: TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel, Sequence.
// loraplan encodes single sequences, so a template's "pair" form is not read.
#include "loraplan/planner/json_fields.h"
#include "parts.h"

namespace loraplan::data {

namespace {

// A single-sequence template: ids before and after the sequence.
class Template : public PostProcessor {
 public:
  Template(std::vector<int32_t> before, std::vector<int32_t> after)
      : before_(std::move(before)), after_(std::move(after)) {}
  std::vector<int32_t> process(std::vector<int32_t> ids) const override {
    ids.insert(ids.begin(), before_.begin(), before_.end());
    ids.insert(ids.end(), after_.begin(), after_.end());
    return ids;
  }

 private:
  std::vector<int32_t> before_, after_;
};

class Identity : public PostProcessor {
 public:
  std::vector<int32_t> process(std::vector<int32_t> ids) const override { return ids; }
};

class Sequence : public PostProcessor {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PostProcessor>> parts) : parts_(std::move(parts)) {}
  std::vector<int32_t> process(std::vector<int32_t> ids) const override {
    for (const auto& p : parts_) ids = p->process(std::move(ids));
    return ids;
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> parts_;
};

std::vector<int32_t> special_ids(const nlohmann::json& specials, const std::string& name,
                                 const Where& where) {
  const auto it = specials.find(name);
  if (it == specials.end() || !it->is_object() || !it->contains("ids") ||
      !(*it)["ids"].is_array()) {
    where.fail("special token \"" + name + "\" is used but not defined in \"special_tokens\"");
  }
  std::vector<int32_t> ids;
  for (const nlohmann::json& id : (*it)["ids"]) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
      where.fail("special token \"" + name + "\" has id " + planner::json_excerpt(id));
    }
    ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
  }
  return ids;
}

std::unique_ptr<PostProcessor> read_template(const nlohmann::json& j, const Where& where) {
  const nlohmann::json& single = array_field(j, "single", where);
  const nlohmann::json specials = j.value("special_tokens", nlohmann::json::object());
  std::vector<int32_t> before, after;
  bool seen_sequence = false;
  for (size_t i = 0; i < single.size(); ++i) {
    const nlohmann::json& item = single[i];
    const Where at = where.at(".single[" + std::to_string(i) + "]");
    if (item.is_object() && item.contains("SpecialToken")) {
      const std::vector<int32_t> ids =
          special_ids(specials, string_field(item["SpecialToken"], "id", at), at);
      (seen_sequence ? after : before)
          .insert((seen_sequence ? after : before).end(), ids.begin(), ids.end());
    } else if (item.is_object() && item.contains("Sequence")) {
      const std::string& id = string_field(item["Sequence"], "id", at);
      if (id != "A" || seen_sequence) at.fail("a single-sequence template holds sequence A once");
      seen_sequence = true;
    } else {
      at.fail("must be {\"SpecialToken\": ...} or {\"Sequence\": ...}");
    }
  }
  if (!seen_sequence) where.fail("the single-sequence template has no sequence A");
  return std::make_unique<Template>(std::move(before), std::move(after));
}

// BertProcessing / RobertaProcessing: "cls": ["[CLS]", 101], "sep": ["[SEP]", 102].
int32_t pair_id(const nlohmann::json& j, const char* key, const Where& where) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_array() || it->size() != 2 || !(*it)[1].is_number_integer() ||
      (*it)[1].get<int64_t>() < 0 || (*it)[1].get<int64_t>() > INT32_MAX) {
    where.fail("\"" + std::string(key) + "\" must be [token, id]");
  }
  return static_cast<int32_t>((*it)[1].get<int64_t>());
}

}  // namespace

std::unique_ptr<PostProcessor> make_bos_eos_processor(int32_t bos, int32_t eos) {
  std::vector<int32_t> before, after;
  if (bos >= 0) before.push_back(bos);
  if (eos >= 0) after.push_back(eos);
  return std::make_unique<Template>(std::move(before), std::move(after));
}

std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& j, const Where& where) {
  if (j.is_null()) return nullptr;
  if (!j.is_object()) where.fail("must be an object or null");
  const std::string& type = string_field(j, "type", where);
  if (type == "TemplateProcessing") return read_template(j, where);
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    return std::make_unique<Template>(std::vector<int32_t>{pair_id(j, "cls", where)},
                                      std::vector<int32_t>{pair_id(j, "sep", where)});
  }
  if (type == "ByteLevel") return std::make_unique<Identity>();  // it only moves offsets
  if (type == "Sequence") {
    return std::make_unique<Sequence>(
        sequence_parts<PostProcessor>(j, "processors", where, make_post_processor));
  }
  where.fail("unsupported post-processor \"" + type +
             "\" (loraplan reads TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel "
             "and Sequence)");
}

}  // namespace loraplan::data
