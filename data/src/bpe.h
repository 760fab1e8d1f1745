#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "parts.h"

namespace loraplan::data {

// Hashing std::string keys by string_view, so lookups never build a string.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenIds = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// A byte-pair-encoding model as tokenizer.json's "model" describes it (type "BPE"): a word's
// characters are merged by rank, lowest first, with a priority queue (each merge O(log n)), and
// words are cached. Not for concurrent use of one object (the cache).
class Bpe {
 public:
  Bpe(const nlohmann::json& model, const Where& where);

  // Appends the ids of `word` (UTF-8) to `out`.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  int32_t find(std::string_view token) const;  // -1 when absent
  const std::string* token(int32_t id) const;  // nullptr when absent
  int32_t max_id() const { return static_cast<int32_t>(id_to_token_.size()) - 1; }

 private:
  struct Merge {
    int32_t rank;
    int32_t id;  // the merged token
  };
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;
  const Merge* merge_of(int32_t left, int32_t right) const;
  void read_merges(const nlohmann::json& merges, const Where& where);

  // Merges in an open-addressing table (linear probing): the lookup merging does most.
  struct MergeSlot {
    uint64_t key = kEmpty;
    Merge merge{};
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  void put_merge(uint64_t key, Merge merge);

  TokenIds vocab_;
  std::vector<std::string> id_to_token_;  // "" for ids the vocabulary skips
  std::vector<MergeSlot> merges_;         // (left << 32 | right) -> merge; size a power of two
  int merge_shift_ = 64;
  std::array<int32_t, 256> byte_ids_{};  // <0xAB> tokens for byte_fallback, -1 when absent
  std::string continuing_prefix_, end_suffix_;
  int32_t unk_id_ = -1;
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;

  // Words seen before and their ids; words of 256 bytes or more are not kept, nor more than
  // 10,000 words (Hugging Face's cache has the same bounds).
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace loraplan::data
