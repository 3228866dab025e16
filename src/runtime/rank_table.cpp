// A SAX reader of CANN rank tables: the parser keeps an explicit stack (nlohmann's SAX parse does
// not recurse), this reader keeps one frame per open container and stops at
// RankTable::kMaxDepth, and no DOM is ever built, so neither depth nor size can exhaust the
// stack or the heap.
// GCC 12 reports a false -Wrestrict inside std::string's operator+ (GCC PR 105329).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

#include "runtime/rank_table.hpp"

#include <charconv>
#include <nlohmann/json.hpp>
#include <system_error>
#include <vector>

namespace moedist::runtime {
namespace {

using Json = nlohmann::json;

// The two layouts: server_list/device and group_list/instance_list.
enum Layout : uint8_t { kServers = 0, kGroups = 1 };

constexpr const char* kListName[2] = {"server_list", "group_list"};
constexpr const char* kChildListName[2] = {"device", "instance_list"};
constexpr const char* kEntryName[2] = {"server_list entry", "group_list entry"};
constexpr const char* kMemberName[2] = {"device", "instance"};
constexpr const char* kAMember[2] = {"a device", "an instance"};

// Where a container or value sits in the table.
enum class Role : uint8_t { kRoot, kList, kEntry, kMembers, kMember, kRankId, kDeviceId, kSkip };

// The key of an object's current member, as far as the reader cares.
enum class Key : uint8_t {
    kOther,
    kServerList,
    kGroupList,
    kDevice,
    kInstanceList,
    kRankId,
    kServerId,
    kDeviceId
};

struct Frame {
    Role role = Role::kSkip;
    Layout layout = kServers;
    bool object = false;
    Key key = Key::kOther;   // objects: the member being read
    bool has_child = false;  // kRoot: unused; kEntry: its member list seen; kMember: rank_id seen
    bool has_list[2] = {false, false};  // kRoot: server_list / group_list seen
};

// A scalar's text for a message, bounded.
std::string describe_number(int64_t v) { return std::to_string(v); }

class Reader final : public nlohmann::json_sax<Json> {
public:
    explicit Reader(std::string* why) : why_(why) { stack_.reserve(RankTable::kMaxDepth); }

    bool null() override { return scalar("null", nullptr); }
    bool boolean(bool v) override { return scalar(v ? "true" : "false", nullptr); }
    bool number_integer(number_integer_t v) override {
        if (v < 0) return scalar(describe_number(v), nullptr);
        const auto id = static_cast<uint64_t>(v);
        return scalar(describe_number(v), &id);
    }
    bool number_unsigned(number_unsigned_t v) override {
        const uint64_t id = v;
        return scalar(std::to_string(v), &id);
    }
    bool number_float(number_float_t, const string_t& text) override {
        return scalar(quote_bounded(text), nullptr);
    }
    bool string(string_t& text) override {
        if (!stack_.empty() && stack_.back().role == Role::kEntry &&
            stack_.back().layout == kServers && stack_.back().key == Key::kServerId &&
            !servers_.empty()) {
            servers_.back() = text.substr(0, 255);
        }
        uint64_t id = 0;
        const char* end = text.data() + text.size();
        const auto [at, error] = std::from_chars(text.data(), end, id);
        const bool decimal = !text.empty() && error == std::errc() && at == end;
        return scalar("\"" + quote_bounded(text) + "\"", decimal ? &id : nullptr);
    }
    bool binary(binary_t&) override { return fail("a rank table must be JSON text", "binary"); }
    bool start_object(std::size_t) override { return open(true); }
    bool end_object() override { return close(); }
    bool start_array(std::size_t) override { return open(false); }
    bool end_array() override { return close(); }
    bool key(string_t& name) override {
        Frame& f = stack_.back();
        f.key = Key::kOther;
        if (name == "server_list") f.key = Key::kServerList;
        if (name == "group_list") f.key = Key::kGroupList;
        if (name == "device") f.key = Key::kDevice;
        if (name == "instance_list") f.key = Key::kInstanceList;
        if (name == "rank_id") f.key = Key::kRankId;
        if (name == "server_id") f.key = Key::kServerId;
        if (name == "device_id") f.key = Key::kDeviceId;
        return true;
    }
    bool parse_error(std::size_t position,
                     const std::string&,
                     const nlohmann::detail::exception&) override {
        return fail("a rank table must be valid JSON",
                    "a syntax error at byte " + std::to_string(position));
    }

    bool has_root() const { return root_done_; }
    Layout layout() const { return root_lists_[kServers] ? kServers : kGroups; }
    bool has_any_list() const { return root_lists_[kServers] || root_lists_[kGroups]; }
    const std::vector<uint64_t>& ids(Layout l) const { return ids_[l]; }
    const std::vector<std::string>& servers() const { return servers_; }
    const std::vector<std::size_t>& entry_of_id() const { return entry_of_id_; }
    const std::vector<std::string>& devices() const { return devices_; }

private:
    bool fail(const std::string& what, const std::string& actual) {
        *why_ = what + ", got " + actual;
        return false;
    }

    // The role of the value about to be read, from its parent frame; claims the parent's slot
    // (a list or rank_id seen twice fails).
    bool slot(Role* role, Layout* layout) {
        *layout = kServers;
        if (stack_.empty()) {
            if (root_done_) return fail("a rank table must be one JSON value", "more");
            *role = Role::kRoot;
            return true;
        }
        Frame& parent = stack_.back();
        *layout = parent.layout;
        *role = Role::kSkip;
        switch (parent.role) {
            case Role::kRoot:
                if (parent.key == Key::kServerList || parent.key == Key::kGroupList) {
                    *layout = parent.key == Key::kServerList ? kServers : kGroups;
                    if (parent.has_list[*layout]) {
                        return fail(
                            std::string(kListName[*layout]) + " must appear once in a rank table",
                            "it twice");
                    }
                    parent.has_list[*layout] = true;
                    *role = Role::kList;
                }
                return true;
            case Role::kList:
                *role = Role::kEntry;
                return true;
            case Role::kEntry:
                if (parent.key == (parent.layout == kServers ? Key::kDevice : Key::kInstanceList)) {
                    if (parent.has_child) {
                        return fail(std::string(kChildListName[parent.layout]) +
                                        " must appear once per " + kEntryName[parent.layout],
                                    "it twice");
                    }
                    parent.has_child = true;
                    *role = Role::kMembers;
                }
                return true;
            case Role::kMembers:
                *role = Role::kMember;
                return true;
            case Role::kMember:
                if (parent.key == Key::kRankId) {
                    if (parent.has_child) {
                        return fail(std::string("rank_id must appear once per ") +
                                        kMemberName[parent.layout],
                                    "it twice");
                    }
                    parent.has_child = true;
                    *role = Role::kRankId;
                } else if (parent.key == Key::kDeviceId && parent.layout == kServers) {
                    *role = Role::kDeviceId;
                }
                return true;
            default:
                return true;
        }
    }

    bool open(bool object) {
        Role role;
        Layout layout;
        if (!slot(&role, &layout)) return false;
        const char* kind = object ? "an object" : "an array";
        switch (role) {
            case Role::kRoot:
                if (!object) return fail("a rank table must be a JSON object", kind);
                break;
            case Role::kList:
                if (object)
                    return fail(std::string(kListName[layout]) + " must be a JSON array", kind);
                break;
            case Role::kEntry:
                if (!object) {
                    return fail(std::string("every ") + kEntryName[layout] + " must be an object",
                                kind);
                }
                break;
            case Role::kMembers:
                if (object) {
                    return fail(std::string(kChildListName[layout]) + " must be a JSON array",
                                kind);
                }
                break;
            case Role::kMember:
                if (!object) {
                    return fail(std::string("every ") + kMemberName[layout] + " must be an object",
                                kind);
                }
                break;
            case Role::kRankId:
                return fail("rank_id must be a non-negative integer", kind);
            case Role::kDeviceId:  // not a scalar: no device named
            case Role::kSkip:
                break;
        }
        if (stack_.size() >= RankTable::kMaxDepth) {
            return fail("a rank table must nest at most " + std::to_string(RankTable::kMaxDepth) +
                            " levels",
                        "deeper");
        }
        if (role == Role::kEntry && layout == kServers && servers_.size() < RankTable::kMaxRanks) {
            servers_.emplace_back();  // this entry's server_id, when it has one
        }
        if (role == Role::kMember) {  // its device_id may come before or after its rank_id
            member_device_.clear();
            member_id_ = -1;
        }
        Frame f;
        f.role = role;
        f.layout = layout;
        f.object = object;
        stack_.push_back(f);
        return true;
    }

    bool close() {
        const Frame f = stack_.back();
        stack_.pop_back();
        if (f.role == Role::kEntry && !f.has_child) {
            return fail(std::string("every ") + kEntryName[f.layout] + " must have a " +
                            kChildListName[f.layout] + " list",
                        "an entry without one");
        }
        if (f.role == Role::kMember && !f.has_child) {
            return fail(std::string("every ") + kMemberName[f.layout] + " must have a rank_id",
                        std::string(kAMember[f.layout]) + " without one");
        }
        if (f.role == Role::kRoot) {
            root_done_ = true;
            root_lists_[kServers] = f.has_list[kServers];
            root_lists_[kGroups] = f.has_list[kGroups];
        }
        return true;
    }

    // A scalar value; `id` is its value as a rank_id when it is a non-negative integer.
    bool scalar(const std::string& text, const uint64_t* id) {
        Role role;
        Layout layout;
        if (!slot(&role, &layout)) return false;
        switch (role) {
            case Role::kRoot:
                return fail("a rank table must be a JSON object", text);
            case Role::kList:
                return fail(std::string(kListName[layout]) + " must be a JSON array", text);
            case Role::kEntry:
                return fail(std::string("every ") + kEntryName[layout] + " must be an object",
                            text);
            case Role::kMembers:
                return fail(std::string(kChildListName[layout]) + " must be a JSON array", text);
            case Role::kMember:
                return fail(std::string("every ") + kMemberName[layout] + " must be an object",
                            text);
            case Role::kRankId:
                if (id == nullptr) {
                    return fail(
                        "rank_id must be a non-negative integer (a JSON integer or a "
                        "decimal string)",
                        text);
                }
                if (static_cast<int64_t>(ids_[layout].size()) >= RankTable::kMaxRanks) {
                    return fail("a rank table must list at most " +
                                    std::to_string(RankTable::kMaxRanks) +
                                    " ranks (the largest epWorldSize)",
                                "more");
                }
                ids_[layout].push_back(*id);
                if (layout == kServers) {
                    entry_of_id_.push_back(servers_.empty() ? 0 : servers_.size() - 1);
                    member_id_ = static_cast<int64_t>(devices_.size());
                    devices_.push_back(member_device_);
                }
                return true;
            case Role::kDeviceId: {  // "0" and 0 name the same device
                std::string device = text;
                if (device.size() >= 2 && device.front() == '"')
                    device = device.substr(1, device.size() - 2);
                member_device_ = device;
                if (member_id_ >= 0) devices_[static_cast<std::size_t>(member_id_)] = device;
                return true;
            }
            default:
                return true;
        }
    }

    std::string* why_;
    std::vector<Frame> stack_;
    std::vector<uint64_t> ids_[2];
    std::vector<std::string> servers_;      // server_list entries' server_id ("" when none)
    std::vector<std::size_t> entry_of_id_;  // server_list: the entry of ids_[kServers][i]
    std::vector<std::string> devices_;      // server_list: the device_id of ids_[kServers][i]
    std::string member_device_;             // the current member's device_id so far
    int64_t member_id_ = -1;                // the current member's index in devices_, once known
    bool root_done_ = false;
    bool root_lists_[2] = {false, false};
};

}  // namespace

std::string quote_bounded(std::string_view text) {
    if (text.size() <= RankTable::kQuoteChars) return std::string(text);
    return std::string(text.substr(0, RankTable::kQuoteChars)) + "...";
}

bool parse_rank_table(std::string_view text, RankTable* out, std::string* why) {
    out->size = 0;
    out->server_of_rank.clear();
    out->device_of_rank.clear();
    Reader reader(why);
    if (!Json::sax_parse(text.data(), text.data() + text.size(), &reader)) return false;
    if (!reader.has_root()) {
        *why = "a rank table must be a JSON object, got nothing";
        return false;
    }
    if (!reader.has_any_list()) {
        *why = "a rank table must have a server_list or a group_list, got neither";
        return false;
    }
    const Layout layout = reader.layout();
    const std::vector<uint64_t>& ids = reader.ids(layout);
    if (ids.empty()) {
        *why = std::string("a rank table must list at least one rank, got 0 in its ") +
               kListName[layout];
        return false;
    }
    std::vector<bool> seen(ids.size(), false);
    const std::string expected =
        "rank_ids must be 0.." + std::to_string(ids.size() - 1) + " each once";
    for (const uint64_t id : ids) {
        if (id >= ids.size()) {
            *why = expected + ", got rank_id " + std::to_string(id);
            return false;
        }
        if (seen[id]) {
            *why = expected + ", got rank_id " + std::to_string(id) + " twice";
            return false;
        }
        seen[id] = true;
    }
    out->size = static_cast<int>(ids.size());
    out->server_of_rank.assign(ids.size(), std::string());
    out->device_of_rank.assign(ids.size(), std::string());
    if (layout == kServers) {
        for (std::size_t i = 0; i < ids.size(); ++i) {
            out->server_of_rank[ids[i]] = reader.servers()[reader.entry_of_id()[i]];
            out->device_of_rank[ids[i]] = reader.devices()[i];
        }
    }
    return true;
}

}  // namespace moedist::runtime
