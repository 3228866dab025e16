// HCCL communicators of the CPU runtime. An HcclComm is a CommObject holding one rank's
// moedist::Communicator handle: a thread group (HcclCommInitAll) or a process group of this host
// formed from a rank table (HcclCommInitClusterInfo, runtime/cluster.hpp), whatever the process
// layout of its ranks.
//
// Invariants:
// - Every HcclComm handed out is in State::comms until HcclCommDestroy; other pointers are refused.
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
#include "runtime/cluster.hpp"
#include "runtime/objects.hpp"
#include "runtime/rank_table.hpp"

namespace moedist::runtime {
namespace {

struct State {
    std::mutex mutex;
    std::unordered_set<const CommObject*> comms;
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

HcclResult init_cluster_info(const char* cluster_info, uint32_t rank, HcclComm* comm) {
    if (cluster_info == nullptr || comm == nullptr) {
        return fail(HCCL_E_PTR,
                    "HcclCommInitClusterInfo clusterInfo and comm must be non-null, got null");
    }
    *comm = nullptr;
    std::string message;
    LoadedTable table;
    if (HcclResult code = load_rank_table(cluster_info, &table, &message); code != HCCL_SUCCESS)
        return fail(code, "HcclCommInitClusterInfo " + message);
    moedist::Communicator handle;
    if (HcclResult code = join_rank_table(table, rank, &handle, &message); code != HCCL_SUCCESS)
        return fail(code, "HcclCommInitClusterInfo " + message);
    auto object = std::make_unique<CommObject>(CommObject{handle});
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mutex);
    s.comms.insert(object.get());
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
