#include "transport/process_group.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "transport/registry.hpp"
#include "transport/shm_arena.hpp"
#include "transport/slot_group.hpp"
#include "util/log.hpp"

namespace moedist::transport {
namespace {

Status fail(const std::string& what) { return {Code::kRuntime, what}; }

std::string errno_text() { return std::strerror(errno); }

// Opens another process's fd through /proc (the same file, so a memfd is shared).
int open_foreign_fd(int32_t pid, int32_t fd) {
    if (pid == getpid()) return fcntl(fd, F_DUPFD_CLOEXEC, 0);
    const std::string path = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
    return open(path.c_str(), O_RDWR | O_CLOEXEC);
}

// Segments of other processes this process has mapped, by (pid, fd, bytes). Mappings stay until
// the process exits (a peer's segment is never reused for other bytes while it lives).
class PeerSegments {
public:
    const std::byte* base(int32_t pid, int32_t fd, uint64_t bytes) {
        std::lock_guard<std::mutex> lock(mutex_);
        const auto key = std::make_tuple(pid, fd, bytes);
        auto it = maps_.find(key);
        if (it != maps_.end()) return it->second;
        const int local = open_foreign_fd(pid, fd);
        if (local < 0) return nullptr;
        void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, local, 0);
        close(local);
        if (p == MAP_FAILED) return nullptr;
        auto* b = static_cast<const std::byte*>(p);
        maps_.emplace(key, b);
        return b;
    }

private:
    std::mutex mutex_;
    std::map<std::tuple<int32_t, int32_t, uint64_t>, const std::byte*> maps_;
};

PeerSegments& peer_segments() {
    static auto* instance = new PeerSegments();  // never destroyed
    return *instance;
}

// pidfds of peer processes: alive(pid) is false once the process has exited (zombie or not).
class Liveness {
public:
    bool alive(int32_t pid) {
        if (pid <= 0 || pid == getpid()) return true;
        int fd = -1;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            auto it = fds_.find(pid);
            if (it != fds_.end()) {
                fd = it->second;
            } else {
                fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
                if (fd < 0) return errno != ESRCH;  // no such process: gone
                fds_.emplace(pid, fd);
            }
        }
        pollfd p{fd, POLLIN, 0};
        return poll(&p, 1, 0) == 0;  // readable: the process has exited
    }

private:
    std::mutex mutex_;
    std::map<int32_t, int> fds_;
};

Liveness& liveness() {
    static auto* instance = new Liveness();  // never destroyed
    return *instance;
}

// One mapping of a group's control block in this process, shared by its endpoints here.
struct ProcessGroupState {
    ProcessGroupState(int fd_, std::byte* base_, std::size_t bytes_, int size, std::string name)
        : fd(fd_), base(base_), bytes(bytes_), protocol(base_, size, std::move(name), true) {
        protocol.set_liveness([this](int r) {
            return liveness().alive(protocol.slot(r).pid.load(std::memory_order_relaxed));
        });
    }
    ~ProcessGroupState() {
        munmap(base, bytes);
        close(fd);
    }
    ProcessGroupState(const ProcessGroupState&) = delete;
    ProcessGroupState& operator=(const ProcessGroupState&) = delete;

    int fd;
    std::byte* base;
    std::size_t bytes;
    SlotProtocol protocol;
};

// Groups this process reads as the TP peer of one of its own (by id), so repeated calls reuse
// one mapping.
std::mutex peer_groups_mutex;
std::map<uint64_t, std::weak_ptr<ProcessGroupState>>& peer_groups() {
    static auto* instance = new std::map<uint64_t, std::weak_ptr<ProcessGroupState>>();
    return *instance;
}

class ProcessEndpoint final : public Transport {
public:
    ProcessEndpoint(std::shared_ptr<ProcessGroupState> group, int rank)
        : group_(std::move(group)), rank_(rank) {}
    ~ProcessEndpoint() override {
        for (void* p : scratch_) {
            if (p != nullptr) arena_free(p);
        }
    }

    int rank() const override { return rank_; }
    int size() const override { return group_->protocol.size(); }
    const std::string& name() const override { return group_->protocol.name(); }
    GroupRef ref() const override {
        GroupRef ref;
        ref.id = group_->protocol.header().id;
        ref.owner_pid = getpid();
        ref.control_fd = group_->fd;
        ref.control_bytes = group_->bytes;
        return ref;
    }
    bool same_address_space() const override { return false; }

    Status open_peer(const GroupRef& ref, int rank, std::shared_ptr<Transport>* out) override {
        if (auto local = find_endpoint_by_id(ref.id, rank)) {  // a group this process joined
            *out = std::move(local);
            return Status::Ok();
        }
        std::shared_ptr<ProcessGroupState> state;
        {
            std::lock_guard<std::mutex> lock(peer_groups_mutex);
            state = peer_groups()[ref.id].lock();
        }
        if (state == nullptr) {
            const int fd = open_foreign_fd(ref.owner_pid, ref.control_fd);
            if (fd < 0) {
                return fail("the paired group must be reachable through /proc/" +
                            std::to_string(ref.owner_pid) + "/fd/" +
                            std::to_string(ref.control_fd) + ", got: " + errno_text());
            }
            void* p = mmap(nullptr, ref.control_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (p == MAP_FAILED) {
                close(fd);
                return fail("the paired group's control block must map, got: " + errno_text());
            }
            const auto* header = static_cast<const ControlHeader*>(p);
            state = std::make_shared<ProcessGroupState>(
                fd, static_cast<std::byte*>(p), ref.control_bytes, header->size, header->name);
            std::lock_guard<std::mutex> lock(peer_groups_mutex);
            peer_groups()[ref.id] = state;
        }
        if (rank < 0 || rank >= state->protocol.size())
            return fail("rank " + std::to_string(rank) + " must be in the paired group");
        *out = std::make_shared<ProcessEndpoint>(std::move(state), rank);
        return Status::Ok();
    }

    uint64_t begin_call() override { return group_->protocol.begin_call(rank_); }
    void publish(uint64_t call, std::span<const std::byte> record) override {
        group_->protocol.publish(rank_, call, record);
    }
    Status wait_published(uint64_t call, Clock::time_point deadline) override {
        return group_->protocol.wait_published(call, deadline);
    }
    const std::byte* record(int rank, uint64_t call) const override {
        return group_->protocol.record(rank, call);
    }
    void finish(uint64_t call, int32_t flag, std::string_view message) override {
        group_->protocol.finish(rank_, call, flag, message);
    }
    Status wait_finished(uint64_t call, Clock::time_point deadline, Flag* flag) override {
        return group_->protocol.wait_finished(call, deadline, flag);
    }
    std::string gone(int rank) override { return group_->protocol.gone(rank); }
    void mark_broken(const std::string& reason) override { group_->protocol.mark_broken(reason); }
    Status broken_status() const override { return group_->protocol.broken_status(); }

    Status expose(const void* data, std::size_t bytes, int stage, RegionRef* out) override {
        if (arena_region(data, bytes, out)) return Status::Ok();
        // Memory peers cannot map: staged once into this rank's arena scratch.
        void* copy = scratch(stage, bytes);
        if (copy == nullptr) {
            return fail("staging " + std::to_string(bytes) +
                        " bytes for peers must find shared memory, got none");
        }
        std::memcpy(copy, data, bytes);
        if (!arena_region(copy, bytes, out)) return fail("staged bytes must be in the arena");
        return Status::Ok();
    }

    const std::byte* map(int /*rank*/, const RegionRef& region) override {
        if (region.segment_fd < 0) {
            return region.owner_pid == getpid() ? reinterpret_cast<const std::byte*>(region.offset)
                                                : nullptr;
        }
        return map_foreign(region);
    }

    void* scratch(int slot, std::size_t bytes) override {
        if (scratch_[slot] == nullptr || scratch_bytes_[slot] < bytes) {
            if (scratch_[slot] != nullptr) arena_free(scratch_[slot]);
            const std::size_t grown = bytes + bytes / 4;
            scratch_[slot] = arena_allocate(grown);
            scratch_bytes_[slot] = scratch_[slot] != nullptr ? grown : 0;
        }
        return scratch_[slot];
    }

private:
    std::shared_ptr<ProcessGroupState> group_;
    int rank_;
    void* scratch_[kScratchSlots] = {};
    std::size_t scratch_bytes_[kScratchSlots] = {};
};

struct Hello {
    int32_t pid = 0;
    int32_t control_fd = -1;
    uint64_t control_bytes = 0;
    uint64_t id = 0;
    int32_t ok = 1;
    char message[200] = {};
};

}  // namespace

const std::byte* map_foreign(const RegionRef& region) {
    if (region.segment_fd < 0) return nullptr;
    if (region.offset > region.segment_bytes || region.bytes > region.segment_bytes - region.offset)
        return nullptr;
    const std::byte* base =
        peer_segments().base(region.owner_pid, region.segment_fd, region.segment_bytes);
    return base == nullptr ? nullptr : base + region.offset;
}

bool arena_region(const void* data, std::size_t bytes, RegionRef* out) {
    ArenaSegment seg;
    if (!arena_find(data, bytes, &seg)) return false;
    *out = RegionRef{};
    out->owner_pid = getpid();
    out->segment_fd = seg.fd;
    out->segment_bytes = seg.bytes;
    out->offset = static_cast<uint64_t>(static_cast<const std::byte*>(data) - seg.base);
    out->bytes = bytes;
    return true;
}

Status join_process_group(int rank,
                          int size,
                          const std::string& name,
                          const AllGather& all_gather,
                          std::shared_ptr<Transport>* out,
                          bool register_endpoint) {
    if (size < 1 || rank < 0 || rank >= size)
        return fail("rank must be in [0, " + std::to_string(size) + "), got " +
                    std::to_string(rank));
    const std::size_t bytes = control_bytes(size);
    Hello mine;
    mine.pid = getpid();
    int fd = -1;
    std::byte* base = nullptr;
    if (rank == 0) {
        fd = memfd_create("moedist-group", MFD_CLOEXEC);
        void* p = MAP_FAILED;
        if (fd >= 0 && ftruncate(fd, static_cast<off_t>(bytes)) == 0)
            p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            mine.ok = 0;
            std::snprintf(
                mine.message, sizeof(mine.message), "control block: %s", std::strerror(errno));
        } else {
            base = static_cast<std::byte*>(p);
            mine.id = new_group_id();
            SlotProtocol::initialize(base, size, mine.id, mine.pid, name);
        }
        mine.control_fd = fd;
        mine.control_bytes = bytes;
    }
    std::vector<std::byte> all;
    auto gather = [&](const Hello& h, std::vector<Hello>* hellos) -> Status {
        if (Status s = all_gather({reinterpret_cast<const std::byte*>(&h), sizeof(h)}, &all);
            !s.ok())
            return s;
        if (all.size() != sizeof(Hello) * static_cast<std::size_t>(size))
            return fail("the bootstrap all-gather must return " + std::to_string(size) +
                        " records");
        hellos->resize(static_cast<std::size_t>(size));
        std::memcpy(hellos->data(), all.data(), all.size());
        for (const Hello& other : *hellos) {
            if (!other.ok)
                return fail("group '" + name + "' must form, got: " + std::string(other.message));
        }
        return Status::Ok();
    };
    auto cleanup = [&] {
        if (base != nullptr) munmap(base, bytes);
        if (fd >= 0) close(fd);
    };
    std::vector<Hello> hellos;
    if (Status s = gather(mine, &hellos); !s.ok()) {
        cleanup();
        return s;
    }
    const Hello& root = hellos[0];
    Hello mapped;
    mapped.pid = mine.pid;
    if (rank != 0) {
        fd = open_foreign_fd(root.pid, root.control_fd);
        void* p = MAP_FAILED;
        if (fd >= 0)
            p = mmap(nullptr, root.control_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            mapped.ok = 0;
            std::snprintf(mapped.message,
                          sizeof(mapped.message),
                          "rank %d must map rank 0's control block (/proc/%d/fd/%d), got: %s",
                          rank,
                          root.pid,
                          root.control_fd,
                          std::strerror(errno));
        } else {
            base = static_cast<std::byte*>(p);
        }
    }
    if (base != nullptr) {
        auto* slot = reinterpret_cast<Slot*>(base + ((sizeof(ControlHeader) + 63) / 64 * 64));
        slot[rank].pid.store(mine.pid, std::memory_order_seq_cst);
    }
    std::vector<Hello> confirmations;
    if (Status s = gather(mapped, &confirmations); !s.ok()) {
        cleanup();
        return s;
    }
    auto state = std::make_shared<ProcessGroupState>(fd, base, root.control_bytes, size, name);
    auto endpoint = std::make_shared<ProcessEndpoint>(std::move(state), rank);
    std::vector<std::shared_ptr<Transport>> endpoints(static_cast<std::size_t>(size));
    endpoints[static_cast<std::size_t>(rank)] = endpoint;
    if (register_endpoint) register_group(name, root.id, size, endpoints);
    MOEDIST_LOG(
        kInfo, "joined process group '{}' as rank {} of {} (pid {})", name, rank, size, mine.pid);
    *out = std::move(endpoint);
    return Status::Ok();
}

}  // namespace moedist::transport
