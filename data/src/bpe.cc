#include "bpe.h"

#include <bit>
#include <cstdio>
#include <queue>

#include "loraplan/data/utf8.h"
#include "loraplan/planner/json_fields.h"

namespace loraplan::data {

namespace {

constexpr size_t kCacheWordBytes = 256;
constexpr size_t kCacheWords = 10000;

std::string optional_string(const nlohmann::json& j, const char* key, const Where& where) {
  if (!j.contains(key) || j[key].is_null()) return "";
  return string_field(j, key, where);
}

}  // namespace

Bpe::Bpe(const nlohmann::json& model, const Where& where) {
  if (model.contains("dropout") && !model["dropout"].is_null() &&
      !(model["dropout"].is_number() && model["dropout"].get<double>() == 0.0)) {
    where.fail("BPE dropout " + planner::json_excerpt(model["dropout"]) +
               " is random at every encode; loraplan reads deterministic tokenizers only");
  }
  const auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object()) where.fail("\"vocab\" must be an object");
  vocab_.reserve(vocab->size());
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() > INT32_MAX) {
      where.fail("vocab[" + planner::json_excerpt(it.key()) + "] must be a non-negative id, got " +
                 planner::json_excerpt(it.value()));
    }
    const auto id = static_cast<int32_t>(it.value().get<int64_t>());
    if (static_cast<size_t>(id) >= id_to_token_.size()) {
      if (static_cast<size_t>(id) > vocab->size() * 4 + 1024) {
        where.fail("vocab id " + std::to_string(id) + " is far beyond the vocabulary's " +
                   std::to_string(vocab->size()) + " entries");
      }
      id_to_token_.resize(static_cast<size_t>(id) + 1);
    }
    id_to_token_[id] = it.key();
    vocab_.emplace(it.key(), id);
  }
  continuing_prefix_ = optional_string(model, "continuing_subword_prefix", where);
  end_suffix_ = optional_string(model, "end_of_word_suffix", where);
  byte_fallback_ = bool_field(model, "byte_fallback", false, where);
  fuse_unk_ = bool_field(model, "fuse_unk", false, where);
  ignore_merges_ = bool_field(model, "ignore_merges", false, where);
  if (const std::string unk = optional_string(model, "unk_token", where); !unk.empty()) {
    unk_id_ = find(unk);
    if (unk_id_ < 0) where.fail("unk_token \"" + unk + "\" is not in the vocabulary");
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    byte_ids_[b] = find(name);
  }
  read_merges(model.value("merges", nlohmann::json::array()), where);
}

void Bpe::read_merges(const nlohmann::json& merges, const Where& where) {
  if (!merges.is_array()) where.fail("\"merges\" must be an array");
  size_t slots = 16;
  while (slots < merges.size() * 2) slots *= 2;
  merges_.assign(slots, MergeSlot{});
  merge_shift_ = 64 - std::countr_zero(slots);
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const nlohmann::json& m = merges[rank];
    std::string_view left, right;
    if (m.is_string()) {  // "a b"
      const std::string& s = m.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        where.fail("merges[" + std::to_string(rank) +
                   "] must be two tokens separated by one space, got " + planner::json_excerpt(m));
      }
      left = std::string_view(s).substr(0, space);
      right = std::string_view(s).substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {  // [a, b]
      left = m[0].get_ref<const std::string&>();
      right = m[1].get_ref<const std::string&>();
    } else {
      where.fail("merges[" + std::to_string(rank) + "] must be \"a b\" or [\"a\", \"b\"], got " +
                 planner::json_excerpt(m));
    }
    const int32_t l = find(left), r = find(right);
    std::string joined(left);
    joined += right.substr(std::min(continuing_prefix_.size(), right.size()));
    const int32_t id = find(joined);
    if (l < 0 || r < 0 || id < 0) {
      where.fail("merges[" + std::to_string(rank) + "] " + planner::json_excerpt(m) +
                 " names a token that is not in the vocabulary");
    }
    // A pair listed twice keeps its last rank, as Hugging Face's map does.
    put_merge((static_cast<uint64_t>(l) << 32) | static_cast<uint32_t>(r),
              Merge{static_cast<int32_t>(rank), id});
  }
}

int32_t Bpe::find(std::string_view token) const {
  const auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

const std::string* Bpe::token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || id_to_token_[id].empty()) {
    return nullptr;
  }
  return &id_to_token_[id];
}

namespace {

size_t slot_of(uint64_t key, int shift) {
  return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift);  // Fibonacci hashing
}

}  // namespace

void Bpe::put_merge(uint64_t key, Merge merge) {
  const size_t mask = merges_.size() - 1;
  for (size_t i = slot_of(key, merge_shift_);; i = (i + 1) & mask) {
    if (merges_[i].key == kEmpty || merges_[i].key == key) {
      merges_[i] = {key, merge};
      return;
    }
  }
}

const Bpe::Merge* Bpe::merge_of(int32_t left, int32_t right) const {
  const uint64_t key = (static_cast<uint64_t>(left) << 32) | static_cast<uint32_t>(right);
  const size_t mask = merges_.size() - 1;
  for (size_t i = slot_of(key, merge_shift_);; i = (i + 1) & mask) {
    if (merges_[i].key == key) return &merges_[i].merge;
    if (merges_[i].key == kEmpty) return nullptr;
  }
}

void Bpe::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const int32_t id = find(word); id >= 0) {
      out.push_back(id);
      return;
    }
  }
  if (const auto hit = cache_.find(word); hit != cache_.end()) {
    out.insert(out.end(), hit->second.begin(), hit->second.end());
    return;
  }
  std::vector<int32_t> ids;
  merge_word(word, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (word.size() < kCacheWordBytes && cache_.size() < kCacheWords) {
    cache_.emplace(std::string(word), std::move(ids));
  }
}

void Bpe::merge_word(std::string_view word, std::vector<int32_t>& out) const {
  // The word's characters as symbols (a doubly linked list over a vector).
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  const auto add = [&](int32_t id) {
    const auto n = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, n - 1, n + 1, true});
  };
  int32_t pending_unk = -1;  // an unknown run waiting to be added (fused when fuse_unk)
  std::string symbol;
  for (size_t i = 0; i < word.size();) {
    const size_t n = std::min<size_t>(utf8_sequence_length(word[i]), word.size() - i);
    symbol.assign(i == 0 ? "" : continuing_prefix_);
    symbol.append(word.substr(i, n));
    if (i + n == word.size()) symbol += end_suffix_;
    i += n;
    if (const int32_t id = find(symbol); id >= 0) {
      if (pending_unk >= 0) add(pending_unk), pending_unk = -1;
      add(id);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (const char c : symbol) all = all && byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        // HF adds the byte tokens without flushing a pending unknown first.
        for (const char c : symbol) add(byte_ids_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (unk_id_ >= 0) {
      if (pending_unk >= 0 && !fuse_unk_) add(pending_unk);
      pending_unk = unk_id_;
    }
  }
  if (pending_unk >= 0) add(pending_unk);
  if (!symbols.empty()) symbols.back().next = -1;

  struct Candidate {
    int32_t rank, pos, id;
    bool operator<(const Candidate& o) const {  // a min-heap on (rank, pos)
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate> queue;
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) {
    if (const Merge* m = merge_of(symbols[i].id, symbols[i + 1].id))
      queue.push({m->rank, i, m->id});
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    const Merge* m = merge_of(left.id, right.id);
    if (m == nullptr || m->id != top.id) continue;  // stale: a neighbour merged since
    left.id = top.id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    if (left.prev >= 0) {
      if (const Merge* p = merge_of(symbols[left.prev].id, left.id)) {
        queue.push({p->rank, left.prev, p->id});
      }
    }
    if (left.next >= 0) {
      if (const Merge* n = merge_of(left.id, symbols[left.next].id)) {
        queue.push({n->rank, top.pos, n->id});
      }
    }
  }
  for (const Symbol& s : symbols) {
    if (s.alive) out.push_back(s.id);
  }
}

}  // namespace loraplan::data
