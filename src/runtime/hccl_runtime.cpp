// HCCL communicators of the CPU runtime: every rank of a communicator is a thread of this process,
// and an HcclComm is a CommObject holding that rank's moedist::Communicator handle.
//
// Invariants:
// - Every HcclComm handed out is in State::comms until HcclCommDestroy; other pointers are refused.
// - A rank table file (by canonical path) maps to one pending group while some of its ranks have
//   not joined yet; the entry holds every rank's handle, hands out each rank at most once, and is
//   dropped when the last rank joins (the group then lives as long as its CommObjects do).
// - No exception leaves a C function.
#include <charconv>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <system_error>
#include <unordered_set>
#include <vector>

#include "hccl/hccl.h"
#include "runtime/objects.hpp"

namespace moedist::runtime {
namespace {

constexpr std::size_t kMaxPathLength = 4096;              // CANN's limit for clusterInfo
constexpr std::uintmax_t kMaxRankTableBytes = 64u << 20;  // far beyond any real rank table

struct PendingGroup {
    int size = 0;
    std::vector<moedist::Communicator> handles;  // index = rank
    std::vector<bool> joined;
    int joined_count = 0;
};

struct State {
    std::mutex mutex;
    std::unordered_set<const CommObject*> comms;
    std::map<std::string, PendingGroup> pending;  // canonical rank-table path -> group being joined
};

State& state() {
    static State* instance = new State();  // never destroyed: usable during static teardown
    return *instance;
}

HcclResult fail(HcclResult code, const std::string& message) {
    set_recent_error(message);
    return code;
}

template <typename Body>
HcclResult guarded(const char* api, Body&& body) noexcept {
    try {
        return body();
    } catch (const std::bad_alloc&) {
        set_recent_error(std::string(api) + " memory must be available, got out of memory");
        return HCCL_E_MEMORY;
    } catch (const std::exception& e) {
        set_recent_error(std::string(api) + " must succeed, got internal error: " + e.what());
        return HCCL_E_INTERNAL;
    } catch (...) {
        set_recent_error(std::string(api) + " must succeed, got unknown internal error");
        return HCCL_E_INTERNAL;
    }
}

// The live CommObject behind `comm`, or null. The caller holds state().mutex.
const CommObject* find_locked(const State& s, HcclComm comm) {
    auto* object = static_cast<const CommObject*>(comm);
    return object != nullptr && s.comms.count(object) != 0 ? object : nullptr;
}

// A rank_id as CANN writes it: a decimal string ("3") or a JSON integer. -1 when it is neither.
int64_t parse_rank_id(const nlohmann::json& value) {
    if (value.is_number_integer()) {
        const auto id = value.get<int64_t>();
        return id >= 0 ? id : -1;
    }
    if (!value.is_string()) return -1;
    const std::string& text = value.get_ref<const std::string&>();
    int64_t id = -1;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (error != std::errc() || end != text.data() + text.size() || text.empty() || id < 0)
        return -1;
    return id;
}

// Appends the rank_id of every entry of `list` (a JSON array of objects); false on a malformed one.
bool collect_rank_ids(const nlohmann::json& list, std::vector<int64_t>* ids, std::string* why) {
    if (!list.is_array()) {
        *why = "a list of devices must be a JSON array";
        return false;
    }
    for (const nlohmann::json& entry : list) {
        if (!entry.is_object() || !entry.contains("rank_id")) {
            *why = "every device must have a rank_id";
            return false;
        }
        const int64_t id = parse_rank_id(entry["rank_id"]);
        if (id < 0) {
            *why = "rank_id must be a non-negative integer, got " + entry["rank_id"].dump();
            return false;
        }
        ids->push_back(id);
    }
    return true;
}

// The number of ranks a CANN rank table describes: "server_list"[]."device"[] (versions 1.0 and
// 1.2, A2 and A3) or "group_list"[]."instance_list"[] (version 0.x). Its rank_ids must be exactly
// 0..n-1. Returns 0 with *why set when the table is not usable.
int rank_count(const nlohmann::json& table, std::string* why) {
    if (!table.is_object()) {
        *why = "a rank table must be a JSON object";
        return 0;
    }
    std::vector<int64_t> ids;
    if (table.contains("server_list")) {
        const nlohmann::json& servers = table["server_list"];
        if (!servers.is_array()) {
            *why = "server_list must be a JSON array";
            return 0;
        }
        for (const nlohmann::json& server : servers) {
            if (!server.is_object() || !server.contains("device")) {
                *why = "every server_list entry must have a device list";
                return 0;
            }
            if (!collect_rank_ids(server["device"], &ids, why)) return 0;
        }
    } else if (table.contains("group_list")) {
        const nlohmann::json& groups = table["group_list"];
        if (!groups.is_array()) {
            *why = "group_list must be a JSON array";
            return 0;
        }
        for (const nlohmann::json& group : groups) {
            if (!group.is_object() || !group.contains("instance_list")) {
                *why = "every group_list entry must have an instance_list";
                return 0;
            }
            if (!collect_rank_ids(group["instance_list"], &ids, why)) return 0;
        }
    } else {
        *why = "a rank table must have a server_list or a group_list";
        return 0;
    }
    if (ids.empty() || ids.size() > static_cast<std::size_t>(INT32_MAX)) {
        *why = "a rank table must list at least one rank, got " + std::to_string(ids.size());
        return 0;
    }
    std::vector<bool> seen(ids.size(), false);
    for (const int64_t id : ids) {
        if (id >= static_cast<int64_t>(ids.size()) || seen[static_cast<std::size_t>(id)]) {
            *why = "rank_ids must be 0.." + std::to_string(ids.size() - 1) + " each once, got " +
                   std::to_string(id);
            return 0;
        }
        seen[static_cast<std::size_t>(id)] = true;
    }
    return static_cast<int>(ids.size());
}

HcclResult init_cluster_info(const char* cluster_info, uint32_t rank, HcclComm* comm) {
    if (cluster_info == nullptr || comm == nullptr) {
        return fail(HCCL_E_PTR,
                    "HcclCommInitClusterInfo clusterInfo and comm must be non-null, got null");
    }
    *comm = nullptr;
    const std::size_t length = strnlen(cluster_info, kMaxPathLength);
    if (length == 0 || length >= kMaxPathLength) {
        return fail(
            HCCL_E_PARA,
            "HcclCommInitClusterInfo clusterInfo must be a path of 1..4095 characters, got " +
                std::to_string(length) + (length >= kMaxPathLength ? " or more" : ""));
    }
    std::error_code error;
    const std::filesystem::path path = std::filesystem::canonical(cluster_info, error);
    const std::uintmax_t bytes = error ? 0 : std::filesystem::file_size(path, error);
    if (error) {
        return fail(HCCL_E_OPEN_FILE_FAILURE,
                    "HcclCommInitClusterInfo clusterInfo must name a readable rank table, got '" +
                        std::string(cluster_info) + "': " + error.message());
    }
    if (bytes > kMaxRankTableBytes) {
        return fail(HCCL_E_PARA,
                    "HcclCommInitClusterInfo rank table must be at most 64 MiB, got " +
                        std::to_string(bytes) + " bytes");
    }
    std::ifstream file(path, std::ios::binary);
    std::ostringstream text;
    text << file.rdbuf();
    if (!file) {
        return fail(HCCL_E_OPEN_FILE_FAILURE,
                    "HcclCommInitClusterInfo clusterInfo must name a readable rank table, got '" +
                        path.string() + "'");
    }
    const nlohmann::json table =
        nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
    if (table.is_discarded()) {
        return fail(
            HCCL_E_PARA,
            "HcclCommInitClusterInfo rank table must be valid JSON, got '" + path.string() + "'");
    }
    std::string why;
    const int size = rank_count(table, &why);
    if (size == 0)
        return fail(HCCL_E_PARA, "HcclCommInitClusterInfo " + why + " ('" + path.string() + "')");
    if (rank >= static_cast<uint32_t>(size)) {
        return fail(HCCL_E_PARA,
                    "HcclCommInitClusterInfo rank must be < " + std::to_string(size) +
                        " (ranks in '" + path.string() + "'), got " + std::to_string(rank));
    }

    State& s = state();
    std::lock_guard<std::mutex> lock(s.mutex);
    auto it = s.pending.find(path.string());
    if (it == s.pending.end()) {
        PendingGroup group;
        group.size = size;
        group.handles = moedist::Communicator::create_local_group(size);
        if (static_cast<int>(group.handles.size()) != size) {
            return fail(HCCL_E_INTERNAL,
                        "HcclCommInitClusterInfo group must hold " + std::to_string(size) +
                            " ranks, got " + std::to_string(group.handles.size()));
        }
        group.joined.assign(static_cast<std::size_t>(size), false);
        it = s.pending.emplace(path.string(), std::move(group)).first;
    }
    PendingGroup& group = it->second;
    if (group.size != size) {
        return fail(HCCL_E_PARA,
                    "HcclCommInitClusterInfo rank table must keep " + std::to_string(group.size) +
                        " ranks while its group forms, got " + std::to_string(size));
    }
    const auto index = static_cast<std::size_t>(rank);
    if (group.joined[index]) {
        return fail(HCCL_E_PARA,
                    "HcclCommInitClusterInfo rank must join '" + path.string() +
                        "' once, got rank " + std::to_string(rank) + " again");
    }
    auto object = std::make_unique<CommObject>(CommObject{group.handles[index]});
    s.comms.insert(object.get());
    group.joined[index] = true;
    if (++group.joined_count == group.size) s.pending.erase(it);
    *comm = object.release();
    return HCCL_SUCCESS;
}

HcclResult init_all(uint32_t ndev, const int32_t* devices, HcclComm* comms) {
    if (devices == nullptr || comms == nullptr) {
        return fail(HCCL_E_PTR, "HcclCommInitAll devices and comms must be non-null, got null");
    }
    if (ndev == 0 || ndev > static_cast<uint32_t>(INT32_MAX)) {
        return fail(HCCL_E_PARA,
                    "HcclCommInitAll ndev must be in [1, 2^31), got " + std::to_string(ndev));
    }
    std::unordered_set<int32_t> seen;
    for (uint32_t i = 0; i < ndev; ++i) {
        if (devices[i] < 0 || !seen.insert(devices[i]).second) {
            return fail(HCCL_E_PARA,
                        "HcclCommInitAll devices must be distinct ids >= 0, got devices[" +
                            std::to_string(i) + "] = " + std::to_string(devices[i]));
        }
    }
    std::vector<moedist::Communicator> handles =
        moedist::Communicator::create_local_group(static_cast<int>(ndev));
    if (handles.size() != ndev) {
        return fail(HCCL_E_INTERNAL,
                    "HcclCommInitAll group must hold " + std::to_string(ndev) + " ranks, got " +
                        std::to_string(handles.size()));
    }
    std::vector<std::unique_ptr<CommObject>> objects;
    objects.reserve(ndev);
    for (moedist::Communicator& handle : handles)
        objects.push_back(std::make_unique<CommObject>(CommObject{handle}));
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mutex);
    // Register every rank before handing any out, so a failure leaves comms[] and the registry as
    // they were.
    std::size_t registered = 0;
    try {
        for (; registered < objects.size(); ++registered) s.comms.insert(objects[registered].get());
    } catch (...) {
        for (std::size_t i = 0; i < registered; ++i) s.comms.erase(objects[i].get());
        throw;
    }
    for (uint32_t i = 0; i < ndev; ++i) comms[i] = objects[i].release();
    return HCCL_SUCCESS;
}

}  // namespace
}  // namespace moedist::runtime

using moedist::runtime::fail;
using moedist::runtime::guarded;
using moedist::runtime::state;
using moedist::runtime::State;

extern "C" {

HcclResult HcclCommInitClusterInfo(const char* clusterInfo, uint32_t rank, HcclComm* comm) {
    return guarded("HcclCommInitClusterInfo",
                   [&] { return moedist::runtime::init_cluster_info(clusterInfo, rank, comm); });
}

HcclResult HcclCommInitAll(uint32_t ndev, int32_t* devices, HcclComm* comms) {
    return guarded("HcclCommInitAll",
                   [&] { return moedist::runtime::init_all(ndev, devices, comms); });
}

HcclResult HcclGetCommName(HcclComm comm, char* commName) {
    return guarded("HcclGetCommName", [&] {
        if (commName == nullptr)
            return fail(HCCL_E_PTR, "HcclGetCommName commName must be non-null, got null");
        State& s = state();
        std::lock_guard<std::mutex> lock(s.mutex);
        const moedist::runtime::CommObject* object = moedist::runtime::find_locked(s, comm);
        if (object == nullptr)
            return fail(HCCL_E_PTR, "HcclGetCommName comm must be a live communicator, got none");
        const std::string& name = object->comm.name();
        if (name.size() >= COMM_NAME_MAX_LENGTH) {
            return fail(HCCL_E_INTERNAL,
                        "HcclGetCommName name must be shorter than 128 characters, got " +
                            std::to_string(name.size()));
        }
        std::memcpy(commName, name.c_str(), name.size() + 1);
        return HCCL_SUCCESS;
    });
}

HcclResult HcclGetRankSize(HcclComm comm, uint32_t* rankSize) {
    return guarded("HcclGetRankSize", [&] {
        if (rankSize == nullptr)
            return fail(HCCL_E_PTR, "HcclGetRankSize rankSize must be non-null, got null");
        State& s = state();
        std::lock_guard<std::mutex> lock(s.mutex);
        const moedist::runtime::CommObject* object = moedist::runtime::find_locked(s, comm);
        if (object == nullptr)
            return fail(HCCL_E_PTR, "HcclGetRankSize comm must be a live communicator, got none");
        *rankSize = static_cast<uint32_t>(object->comm.size());
        return HCCL_SUCCESS;
    });
}

HcclResult HcclGetRankId(HcclComm comm, uint32_t* rank) {
    return guarded("HcclGetRankId", [&] {
        if (rank == nullptr)
            return fail(HCCL_E_PTR, "HcclGetRankId rank must be non-null, got null");
        State& s = state();
        std::lock_guard<std::mutex> lock(s.mutex);
        const moedist::runtime::CommObject* object = moedist::runtime::find_locked(s, comm);
        if (object == nullptr)
            return fail(HCCL_E_PTR, "HcclGetRankId comm must be a live communicator, got none");
        *rank = static_cast<uint32_t>(object->comm.rank());
        return HCCL_SUCCESS;
    });
}

HcclResult HcclCommDestroy(HcclComm comm) {
    return guarded("HcclCommDestroy", [&] {
        const moedist::runtime::CommObject* object = nullptr;
        {
            State& s = state();
            std::lock_guard<std::mutex> lock(s.mutex);
            object = moedist::runtime::find_locked(s, comm);
            if (object == nullptr)
                return fail(HCCL_E_PTR,
                            "HcclCommDestroy comm must be a live communicator, got none");
            s.comms.erase(object);
        }
        delete object;  // drops this rank's handle only; the group lives while peers hold theirs
        return HCCL_SUCCESS;
    });
}

const char* HcclGetErrorString(HcclResult code) {
    switch (code) {
        case HCCL_SUCCESS:
            return "success";
        case HCCL_E_PARA:
            return "parameter error";
        case HCCL_E_PTR:
            return "empty pointer";
        case HCCL_E_MEMORY:
            return "memory error";
        case HCCL_E_INTERNAL:
            return "internal error";
        case HCCL_E_NOT_SUPPORT:
            return "not support feature";
        case HCCL_E_NOT_FOUND:
            return "not found specific resource";
        case HCCL_E_UNAVAIL:
            return "resource unavailable";
        case HCCL_E_SYSCALL:
            return "call system interface error";
        case HCCL_E_TIMEOUT:
            return "timeout";
        case HCCL_E_OPEN_FILE_FAILURE:
            return "open file fail";
        case HCCL_E_TCP_CONNECT:
            return "tcp connect fail";
        case HCCL_E_ROCE_CONNECT:
            return "roce connect fail";
        case HCCL_E_TCP_TRANSFER:
            return "tcp transfer fail";
        case HCCL_E_ROCE_TRANSFER:
            return "roce transfer fail";
        case HCCL_E_RUNTIME:
            return "call runtime api fail";
        case HCCL_E_DRV:
            return "call driver api fail";
        case HCCL_E_PROFILING:
            return "call profiling api fail";
        case HCCL_E_CCE:
            return "call cce api fail";
        case HCCL_E_NETWORK:
            return "call network api fail";
        case HCCL_E_AGAIN:
            return "try again";
        case HCCL_E_REMOTE:
            return "error cqe";
        case HCCL_E_SUSPENDING:
            return "error communicator suspending";
        default:
            return "unknown error";
    }
}

}  // extern "C"
