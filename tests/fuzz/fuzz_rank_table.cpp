// The rank-table parser (src/runtime/rank_table.cpp) on any text: it must never crash, recurse
// without bound or allocate beyond the input; an accepted table lists 1..65536 ranks whose ids
// are exactly 0..n-1 (checked here against an independent nlohmann DOM parse of shallow inputs),
// and a refusal is one bounded "… must …, got …" line.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/rank_table.hpp"

namespace {

[[noreturn]] void fail(const char* why, const std::string& detail) {
    std::fprintf(stderr, "fuzz_rank_table: %s: %.300s\n", why, detail.c_str());
    std::abort();
}

// Nesting depth of the text's brackets outside strings (the DOM oracle only runs when shallow).
std::size_t depth_of(std::string_view text) {
    std::size_t depth = 0, deepest = 0;
    bool in_string = false, escaped = false;
    for (const char c : text) {
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
            }
            continue;
        }
        if (c == '"') in_string = true;
        if (c == '[' || c == '{') deepest = std::max(deepest, ++depth);
        if ((c == ']' || c == '}') && depth > 0) --depth;
    }
    return deepest;
}

// Parses text with nlohmann; *duplicate is set when any object repeats a key (the DOM keeps one
// of them, the streaming parser may refuse at either, so such texts have no oracle verdict).
nlohmann::json parse_dom(std::string_view text, bool* duplicate) {
    std::vector<std::set<std::string>> keys_per_open_object;
    *duplicate = false;
    const auto on_event =
        [&](int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
            using Event = nlohmann::json::parse_event_t;
            if (event == Event::object_start) keys_per_open_object.emplace_back();
            if (event == Event::object_end && !keys_per_open_object.empty())
                keys_per_open_object.pop_back();
            if (event == Event::key && !keys_per_open_object.empty() &&
                !keys_per_open_object.back().insert(parsed.get<std::string>()).second)
                *duplicate = true;
            return true;
        };
    return nlohmann::json::parse(text, on_event, false);
}

// The rank count by a DOM walk of the same rules, or -1 when the table is not usable.
int64_t oracle_size(const nlohmann::json& table) {
    if (!table.is_object()) return -1;
    const bool servers = table.contains("server_list");
    if (!servers && !table.contains("group_list")) return -1;
    const nlohmann::json& list = table[servers ? "server_list" : "group_list"];
    const char* child = servers ? "device" : "instance_list";
    if (!list.is_array()) return -1;
    std::vector<uint64_t> ids;
    for (const nlohmann::json& entry : list) {
        if (!entry.is_object() || !entry.contains(child) || !entry[child].is_array()) return -1;
        for (const nlohmann::json& member : entry[child]) {
            if (!member.is_object() || !member.contains("rank_id")) return -1;
            const nlohmann::json& id = member["rank_id"];
            if (id.is_number_unsigned()) {
                ids.push_back(id.get<uint64_t>());
            } else if (id.is_string()) {
                const std::string& s = id.get_ref<const std::string&>();
                if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) return -1;
                uint64_t value = 0;
                for (const char c : s) {
                    const auto digit = static_cast<uint64_t>(c - '0');
                    if (value > (UINT64_MAX - digit) / 10) return -1;  // beyond uint64: refused
                    value = value * 10 + digit;
                }
                ids.push_back(value);
            } else {
                return -1;
            }
        }
    }
    if (ids.empty() || ids.size() > 65536) return -1;
    std::vector<bool> seen(ids.size(), false);
    for (const uint64_t id : ids) {
        if (id >= ids.size() || seen[id]) return -1;
        seen[id] = true;
    }
    return static_cast<int64_t>(ids.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    moedist::runtime::RankTable table;
    std::string why;
    const bool ok = moedist::runtime::parse_rank_table(text, &table, &why);
    if (ok) {
        if (table.size < 1 || table.size > moedist::runtime::RankTable::kMaxRanks)
            fail("accepted size out of range", std::to_string(table.size));
    } else {
        if (why.empty() || why.size() > 400) fail("refusal message empty or unbounded", why);
        if (why.find(" must ") == std::string::npos || why.find(", got ") == std::string::npos)
            fail("refusal message not '<what> must <rule>, got <actual>'", why);
    }
    // Shallow texts without duplicate keys: the verdict must match a DOM walk of the same rules
    // (the parser refuses some repeated keys at the first copy, the DOM keeps one: no verdict).
    if (depth_of(text) < moedist::runtime::RankTable::kMaxDepth) {
        bool duplicate = false;
        const nlohmann::json dom = parse_dom(text, &duplicate);
        if (!dom.is_discarded() && !duplicate) {
            const int64_t expected = oracle_size(dom);
            // Also skipped: more than 65536 ids in a list the DOM walk ignores.
            const bool skipped = why.find("at most 65536") != std::string::npos;
            if (!skipped && (expected > 0) != ok)
                fail(ok ? "accepted a table the oracle refuses"
                        : "refused a table the oracle accepts",
                     why);
            if (ok && expected != table.size) fail("size differs from the oracle", why);
        }
    }
    return 0;
}
