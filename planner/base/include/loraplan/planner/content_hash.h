#pragma once
// Content hashes: XXH3-128 as 32 hex digits. The keys of the token cache and of tokenizers, the
// data hash of plans, and the file hashes of checkpoints.

#include <string>
#include <string_view>

namespace loraplan::planner {

// A hash over bytes given in pieces.
class ContentHash {
 public:
  ContentHash();
  ~ContentHash();
  ContentHash(const ContentHash&) = delete;
  ContentHash& operator=(const ContentHash&) = delete;

  ContentHash& add(std::string_view bytes);
  std::string hex() const;  // of everything added so far

 private:
  void* state_;  // XXH3_state_t
};

// The hash of one string.
std::string content_hash(std::string_view bytes);

// The hash of a file's bytes, streamed in 1 MiB blocks; InputError "PATH: cannot open" when it
// cannot be read.
std::string file_hash(const std::string& path);

}  // namespace loraplan::planner
