#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace loraplan::planner {

// Pre-tokenized training data as `train --data` reads it: one {"input_ids": [...]} object per
// line, ids in [0, vocab), at least 2 per sequence; blank lines are skipped. Throws InputError
// "where:line: ..." naming the line and what is wrong with it.
std::vector<std::vector<int64_t>> parse_token_lines(const std::string& text,
                                                    const std::string& where, int64_t vocab);
std::vector<std::vector<int64_t>> read_token_lines(const std::string& path, int64_t vocab);

}  // namespace loraplan::planner
