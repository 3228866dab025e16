// CANN rank tables (the JSON file HcclCommInitClusterInfo names), parsed from their text.
//
// Accepted layouts: "server_list"[]."device"[]."rank_id" (versions 1.0 and 1.2, A2 and A3), or
// "group_list"[]."instance_list"[]."rank_id" (version 0.x); server_list wins when both are
// present. A rank_id is a decimal string ("3") or a JSON integer; the rank_ids of the list must
// be exactly 0..n-1 with 1 <= n <= kMaxRanks. Everything else in the table is skipped.
//
// The parse is bounded whatever the text: nesting deeper than kMaxDepth stops it (no recursion
// anywhere), at most kMaxRanks + 1 ids are kept, and a message quotes at most kQuoteChars
// characters of any value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "moedist/config.hpp"

namespace moedist::runtime {

struct RankTable {
    static constexpr std::size_t kMaxDepth = 32;
    static constexpr int64_t kMaxRanks = MoeConfig::kMaxWorldSize;  // the ops' largest W
    static constexpr std::size_t kQuoteChars = 40;

    int size = 0;  // ranks listed
    // server_list tables: each rank's server_id (at most 255 characters; "" when its entry has
    // none); group_list tables: all "".
    std::vector<std::string> server_of_rank;
    // server_list tables: each rank's device_id as written (bounded, quotes dropped; "" when
    // none), which only tells two tables of one layout apart (a CPU has no devices).
    std::vector<std::string> device_of_rank;
};

// Parses `text`; false with *why ("<what> must be <expected>, got <actual>") when the table is
// not usable.
bool parse_rank_table(std::string_view text, RankTable* out, std::string* why);

// At most RankTable::kQuoteChars characters of `text`, with "..." appended when cut.
std::string quote_bounded(std::string_view text);

}  // namespace moedist::runtime
