#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "loraplan/data/dataset.h"

namespace loraplan::data {

class Tokenizer;

// Where tokenized datasets are kept: $LORAPLAN_CACHE, else $XDG_CACHE_HOME/loraplan, else
// ~/.cache/loraplan; each dataset under tokens/.
std::string default_cache_dir();

// for_each_sample through a token cache in `cache_dir` ("" reads the file directly, with no cache):
// the dataset is tokenized once into a binary file (tokens/<key>.bin, memory-mapped on reuse) keyed
// by the dataset's and the tokenizer's contents and the reading options. Tokenizing streams the
// rows to the file: memory stays bounded by the longest row, not the file. Sequences are kept whole
// and cut to options.seq_len when read back, so one cache serves every T. `*hit` (when given) says
// whether the cache already held it.
// The tokenizer is named by its fingerprint (tokenizer_fingerprint; "" for none) and loaded by
// `tokenizer` only when the cache does not hold the dataset (it may return nullptr: none).
DatasetSummary for_each_cached_sample(const std::string& path,
                                      const std::string& tokenizer_fingerprint,
                                      const std::function<const Tokenizer*()>& tokenizer,
                                      const DatasetOptions& options, const std::string& cache_dir,
                                      const std::function<void(Sample&&)>& sample,
                                      bool* hit = nullptr);

}  // namespace loraplan::data
