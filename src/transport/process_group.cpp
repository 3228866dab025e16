#include "transport/process_group.hpp"

#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "transport/agent.hpp"
#include "transport/bootstrap.hpp"
#include "transport/peer_memory.hpp"
#include "transport/registry.hpp"
#include "transport/shm_arena.hpp"
#include "transport/slot_group.hpp"
#include "util/log.hpp"
#include "util/peer_text.hpp"

namespace moedist::transport {
namespace {

constexpr int kMaxGroupSize = 65536;

Status fail(const std::string& what) { return {Code::kRuntime, what}; }

uint64_t hash_name(const std::string& text) {
    uint64_t h = 1469598103934665603ull;
    for (const char ch : text) h = (h ^ static_cast<unsigned char>(ch)) * 1099511628211ull;
    return h;
}

// One mapping of a group's control block in this process, shared by its endpoints here: the
// rounds over it, the members' processes (pidfds taken at join), and the peers' memory this
// process maps for the group (unmapped with it).
class ProcessGroupState {
public:
    ProcessGroupState(util::UniqueFd control,
                      std::byte* base,
                      std::size_t bytes,
                      int size,
                      std::string name,
                      std::vector<ProcessId> member_processes,
                      std::vector<util::UniqueFd> pidfds)
        : control_(std::move(control)),
          base_(base),
          bytes_(bytes),
          protocol(base, size, std::move(name), true),
          members(std::move(member_processes)),
          pidfds_(std::move(pidfds)) {
        id = protocol.header().id;
        agent_offer(AgentObject::kControl, id, control_.get(), bytes_);
        protocol.set_liveness([this](int r) { return alive(r); });
    }
    ~ProcessGroupState() {
        agent_withdraw(AgentObject::kControl, id);
        munmap(base_, bytes_);
    }
    ProcessGroupState(const ProcessGroupState&) = delete;
    ProcessGroupState& operator=(const ProcessGroupState&) = delete;

    bool alive(int r) const {
        const auto& fd = pidfds_[static_cast<std::size_t>(r)];
        if (!fd.valid()) return true;  // a rank of this process
        pollfd p{fd.get(), POLLIN, 0};
        return poll(&p, 1, 0) == 0;  // readable: the process has exited
    }

    GroupRef ref() const {
        GroupRef ref;
        ref.id = id;
        ref.owner = self_process();
        ref.control_bytes = bytes_;
        return ref;
    }

    // The paired group (TP) this process last opened through this group, kept mapped.
    std::shared_ptr<ProcessGroupState> paired(uint64_t paired_id) {
        std::lock_guard<std::mutex> lock(paired_mutex_);
        return paired_ != nullptr && paired_->id == paired_id ? paired_ : nullptr;
    }
    void keep_paired(std::shared_ptr<ProcessGroupState> state) {
        std::lock_guard<std::mutex> lock(paired_mutex_);
        paired_ = std::move(state);
    }

    uint64_t id = 0;

private:
    util::UniqueFd control_;
    std::byte* base_;
    std::size_t bytes_;

public:
    SlotProtocol protocol;
    const std::vector<ProcessId> members;
    PeerMemory memory;

private:
    std::vector<util::UniqueFd> pidfds_;  // by rank; invalid for ranks of this process
    std::mutex paired_mutex_;
    std::shared_ptr<ProcessGroupState> paired_;
};

// Pidfds of every member but those of this process, each proven through the member's agent.
Status member_pidfds(const std::vector<ProcessId>& members,
                     Clock::time_point deadline,
                     std::vector<util::UniqueFd>* out) {
    const ProcessId self = self_process();
    out->clear();
    out->resize(members.size());
    for (std::size_t r = 0; r < members.size(); ++r) {
        if (members[r] == self) continue;
        if (Status s = agent_pidfd(members[r], deadline, &(*out)[r]); !s.ok())
            return fail("rank " + std::to_string(r) + " must be reachable, got: " + s.message());
    }
    return Status::Ok();
}

// Maps a control block received from an agent; null (and *why) when it cannot.
std::byte* map_control(int fd, std::size_t bytes, std::string* why) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        *why = std::string("the control block must map, got: ") + std::strerror(errno);
        return nullptr;
    }
    return static_cast<std::byte*>(p);
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
    GroupRef ref() const override { return group_->ref(); }

    Status open_peer(const GroupRef& ref, int rank, std::shared_ptr<Transport>* out) override {
        if (auto local = find_endpoint_by_id(ref.id, rank)) {  // a group this process joined
            *out = std::move(local);
            return Status::Ok();
        }
        std::shared_ptr<ProcessGroupState> state = group_->paired(ref.id);
        if (state == nullptr) {
            if (Status s = open_paired(ref, &state); !s.ok()) return s;
            group_->keep_paired(state);
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
    Status wait_published(uint64_t call, Clock::time_point deadline, int64_t* arrival_us) override {
        return group_->protocol.wait_published(call, deadline, arrival_us);
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
    std::string gone(int rank, bool grace) override { return group_->protocol.gone(rank, grace); }
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

    bool exposes_in_place(const void* data, std::size_t bytes) override {
        RegionRef region;
        return arena_region(data, bytes, &region);
    }

    // Only memory of the process holding `rank` (a region naming another process is refused).
    const std::byte* map(int rank, const RegionRef& region) override {
        if (rank < 0 || rank >= size()) return nullptr;
        if (!(region.owner == group_->members[static_cast<std::size_t>(rank)])) return nullptr;
        return group_->memory.map(region);
    }

    void* scratch_slot(int slot, std::size_t bytes) override {
        if (scratch_[slot] == nullptr || scratch_bytes_[slot] < bytes) {
            if (scratch_[slot] != nullptr) arena_free(scratch_[slot]);
            const std::size_t grown = bytes + bytes / 4;
            scratch_[slot] = arena_allocate(grown);
            scratch_bytes_[slot] = scratch_[slot] != nullptr ? grown : 0;
        }
        return scratch_[slot];
    }

private:
    // A group this process is not a member of (the TP peer's EP group), from its owner's agent.
    static Status open_paired(const GroupRef& ref, std::shared_ptr<ProcessGroupState>* out) {
        const auto deadline = call_deadline();
        util::UniqueFd fd;
        if (Status s = agent_fetch(
                ref.owner, AgentObject::kControl, ref.id, ref.control_bytes, deadline, &fd);
            !s.ok())
            return fail("the paired group must be reachable, got: " + s.message());
        std::string why;
        std::byte* base = map_control(fd.get(), ref.control_bytes, &why);
        if (base == nullptr) return fail("the paired group's " + why);
        const auto* header = reinterpret_cast<const ControlHeader*>(base);
        const int size = header->size;
        if (header->magic.load(std::memory_order_acquire) != SlotProtocol::kMagic ||
            header->id != ref.id || size < 1 || size > kMaxGroupSize ||
            control_bytes(size) != ref.control_bytes) {
            munmap(base, ref.control_bytes);
            return fail("the paired group's control block must describe group " +
                        std::to_string(ref.id) + ", got another block");
        }
        std::vector<ProcessId> members(static_cast<std::size_t>(size));
        const auto* slots = reinterpret_cast<const Slot*>(base + SlotProtocol::header_bytes());
        for (int r = 0; r < size; ++r) members[static_cast<std::size_t>(r)] = slots[r].process;
        std::vector<util::UniqueFd> pidfds;
        if (Status s = member_pidfds(members, deadline, &pidfds); !s.ok()) {
            munmap(base, ref.control_bytes);
            return fail("the paired group's " + s.message());
        }
        *out = std::make_shared<ProcessGroupState>(std::move(fd),
                                                   base,
                                                   ref.control_bytes,
                                                   size,
                                                   util::peer_text(header->name),
                                                   std::move(members),
                                                   std::move(pidfds));
        return Status::Ok();
    }

    std::shared_ptr<ProcessGroupState> group_;
    int rank_;
    void* scratch_[Transport::kScratchSlots] = {};
    std::size_t scratch_bytes_[Transport::kScratchSlots] = {};
};

void copy_message(char (&to)[160], const std::string& text) {
    const std::size_t n = std::min(text.size(), sizeof(to) - 1);
    std::memcpy(to, text.data(), n);
    to[n] = '\0';
}

// One all-gather of hellos, every one checked; the status names the first member that failed.
Status gather_hellos(const AllGather& all_gather,
                     const Hello& mine,
                     int size,
                     uint64_t name_hash,
                     bool first_round,
                     const std::string& name,
                     std::vector<Hello>* hellos) {
    std::vector<std::byte> all;
    if (Status s = all_gather({reinterpret_cast<const std::byte*>(&mine), sizeof(mine)}, &all);
        !s.ok())
        return s;
    int failed = -1;
    if (std::string why = check_hellos(all, size, name_hash, first_round, &failed); !why.empty())
        return fail("group '" + name + "' must form, got: " + why);
    hellos->resize(static_cast<std::size_t>(size));
    std::memcpy(hellos->data(), all.data(), all.size());
    if (failed >= 0) {
        return fail("group '" + name + "' must form, got from rank " + std::to_string(failed) +
                    ": " + util::peer_text((*hellos)[static_cast<std::size_t>(failed)].message));
    }
    return Status::Ok();
}

}  // namespace

Status join_process_group(int rank,
                          int size,
                          const std::string& name,
                          const AllGather& all_gather,
                          std::shared_ptr<Transport>* out,
                          bool register_endpoint) {
    if (size < 1 || size > kMaxGroupSize || rank < 0 || rank >= size)
        return fail("rank must be in [0, " + std::to_string(size) + ") of a group of at most " +
                    std::to_string(kMaxGroupSize) + ", got " + std::to_string(rank));
    const auto deadline = call_deadline();
    const std::size_t bytes = control_bytes(size);
    const uint64_t name_hash = hash_name(name);
    Hello mine;
    mine.size = size;
    mine.rank = rank;
    mine.process = self_process();
    mine.name_hash = name_hash;
    util::UniqueFd control;
    std::byte* base = nullptr;
    auto unmap = [&] {
        if (base != nullptr) munmap(base, bytes);
        base = nullptr;
    };
    if (mine.process.nonce == 0) {
        mine.ok = 0;
        copy_message(mine.message, "this process's agent cannot start");
    } else if (rank == 0) {
        control = sealed_memory("moedist-group", bytes);
        std::string why = control.valid() ? "" : std::string("memfd: ") + std::strerror(errno);
        if (control.valid()) base = map_control(control.get(), bytes, &why);
        if (base == nullptr) {
            mine.ok = 0;
            copy_message(mine.message, "control block: " + why);
        } else {
            mine.group_id = random_u64();
            mine.control_bytes = bytes;
            SlotProtocol::initialize(base, size, mine.group_id, mine.process.pid, name);
            // Served before the hellos go out: every member asks for it right after.
            agent_offer(AgentObject::kControl, mine.group_id, control.get(), bytes);
        }
    }
    // Rank 0's first offer lasts until the group formed (the state then offers the block).
    struct OfferUntilFormed {
        uint64_t id;
        ~OfferUntilFormed() {
            if (id != 0) agent_withdraw(AgentObject::kControl, id);
        }
    } first_offer{mine.group_id};
    std::vector<Hello> hellos;
    if (Status s = gather_hellos(all_gather, mine, size, name_hash, true, name, &hellos); !s.ok()) {
        unmap();
        return s;
    }
    const Hello& root = hellos[0];
    std::vector<ProcessId> members(static_cast<std::size_t>(size));
    for (int r = 0; r < size; ++r)
        members[static_cast<std::size_t>(r)] = hellos[static_cast<std::size_t>(r)].process;

    Hello confirmed;
    confirmed.size = size;
    confirmed.rank = rank;
    confirmed.process = mine.process;
    confirmed.name_hash = name_hash;
    std::string why;
    if (rank != 0) {
        Status fetched = agent_fetch(
            root.process, AgentObject::kControl, root.group_id, bytes, deadline, &control);
        if (!fetched.ok()) {
            why = "rank " + std::to_string(rank) +
                  " must get rank 0's control block, got: " + fetched.message();
        } else if ((base = map_control(control.get(), bytes, &why)) != nullptr) {
            const auto* header = reinterpret_cast<const ControlHeader*>(base);
            if (header->magic.load(std::memory_order_acquire) != SlotProtocol::kMagic ||
                header->id != root.group_id || header->size != size) {
                why = "rank 0's control block must describe this group (id " +
                      std::to_string(root.group_id) + ", " + std::to_string(size) +
                      " ranks), got another block";
                unmap();
            }
        }
    }
    std::vector<util::UniqueFd> pidfds;
    if (why.empty()) {
        if (Status s = member_pidfds(members, deadline, &pidfds); !s.ok()) why = s.message();
    }
    if (why.empty()) {
        auto* slots = reinterpret_cast<Slot*>(base + SlotProtocol::header_bytes());
        slots[rank].process = mine.process;
    } else {
        confirmed.ok = 0;
        copy_message(confirmed.message, why);
    }
    std::vector<Hello> confirmations;
    Status confirmed_all =
        gather_hellos(all_gather, confirmed, size, name_hash, false, name, &confirmations);
    if (!why.empty()) confirmed_all = fail("group '" + name + "' must form, got: " + why);
    if (!confirmed_all.ok()) {  // my own reason in full, else the first member's
        unmap();
        return confirmed_all;
    }
    auto state = std::make_shared<ProcessGroupState>(
        std::move(control), base, bytes, size, name, std::move(members), std::move(pidfds));
    auto endpoint = std::make_shared<ProcessEndpoint>(std::move(state), rank);
    std::vector<std::shared_ptr<Transport>> endpoints(static_cast<std::size_t>(size));
    endpoints[static_cast<std::size_t>(rank)] = endpoint;
    if (register_endpoint) register_group(name, root.group_id, size, endpoints);
    MOEDIST_LOG(kInfo,
                "joined process group '{}' as rank {} of {} (pid {})",
                name,
                rank,
                size,
                mine.process.pid);
    *out = std::move(endpoint);
    return Status::Ok();
}

}  // namespace moedist::transport
