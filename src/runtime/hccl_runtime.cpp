// HCCL communicators of the CPU runtime: every rank of a communicator is a thread of this process,
// and an HcclComm is a CommObject holding that rank's moedist::Communicator handle.
//
// Invariants:
// - Every HcclComm handed out is in State::comms until HcclCommDestroy; other pointers are refused.
// - A rank table file (by canonical path) maps to one pending group while some of its ranks have
//   not joined yet; the entry holds every rank's handle, hands out each rank at most once, and is
//   dropped when the last rank joins (the group then lives as long as its CommObjects do).
// - No exception leaves a C function.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <unordered_set>
#include <vector>

#include "hccl/hccl.h"
#include "runtime/objects.hpp"
#include "runtime/rank_table.hpp"

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

// Reads the rank table at `path` into *text: a regular file (checked on the open descriptor, so a
// FIFO, a device or a directory is refused without blocking) of at most kMaxRankTableBytes.
// Empty on success, else the reason.
std::string read_table(const std::filesystem::path& path, std::string* text) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return std::string("it cannot be opened: ") + std::strerror(errno);
    struct FdCloser {
        int fd;
        ~FdCloser() { ::close(fd); }
    } closer{fd};
    struct stat info {};
    if (::fstat(fd, &info) != 0) return std::string("fstat failed: ") + std::strerror(errno);
    if (!S_ISREG(info.st_mode)) {
        const char* kind = S_ISDIR(info.st_mode)    ? "a directory"
                           : S_ISFIFO(info.st_mode) ? "a FIFO"
                           : S_ISSOCK(info.st_mode) ? "a socket"
                           : S_ISCHR(info.st_mode)  ? "a character device"
                           : S_ISBLK(info.st_mode)  ? "a block device"
                                                    : "not a regular file";
        return std::string("it is ") + kind + ", not a regular file";
    }
    if (static_cast<std::uintmax_t>(info.st_size) > kMaxRankTableBytes) {
        return "it has " + std::to_string(info.st_size) + " bytes, more than 64 MiB";
    }
    text->clear();
    char chunk[1 << 16];
    for (;;) {
        const ssize_t n = ::read(fd, chunk, sizeof(chunk));
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            return std::string("reading it failed: ") + std::strerror(errno);
        }
        if (text->size() + static_cast<std::size_t>(n) > kMaxRankTableBytes)
            return "it grew past 64 MiB while being read";
        text->append(chunk, static_cast<std::size_t>(n));
    }
    return {};
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
    const std::string given(cluster_info, length);
    std::error_code error;
    const std::filesystem::path path = std::filesystem::canonical(given, error);
    if (error) {
        return fail(HCCL_E_OPEN_FILE_FAILURE,
                    "HcclCommInitClusterInfo clusterInfo must name a readable rank table, got '" +
                        given + "': " + error.message());
    }
    std::string text;
    if (std::string why = read_table(path, &text); !why.empty()) {
        return fail(HCCL_E_OPEN_FILE_FAILURE,
                    "HcclCommInitClusterInfo clusterInfo must name a readable rank table, got '" +
                        path.string() + "': " + why);
    }
    RankTable table;
    std::string why;
    if (!parse_rank_table(text, &table, &why))
        return fail(HCCL_E_PARA, "HcclCommInitClusterInfo " + why + " ('" + path.string() + "')");
    const int size = table.size;
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
    if (ndev == 0 || ndev > static_cast<uint32_t>(RankTable::kMaxRanks)) {
        return fail(HCCL_E_PARA,
                    "HcclCommInitAll ndev must be in [1, " + std::to_string(RankTable::kMaxRanks) +
                        "] (the largest epWorldSize), got " + std::to_string(ndev));
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
