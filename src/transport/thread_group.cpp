#include "transport/thread_group.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "transport/registry.hpp"
#include "transport/slot_group.hpp"

namespace moedist::transport {
namespace {

struct BlockDeleter {
    void operator()(std::byte* p) const { std::free(p); }
};

// One thread group: its control block and rounds, shared by its endpoints.
struct ThreadGroupState {
    ThreadGroupState(int size, std::string name, uint64_t group_id)
        : block(static_cast<std::byte*>(std::aligned_alloc(64, control_bytes(size)))),
          protocol((SlotProtocol::initialize(checked(block.get()), size, group_id, 0, name),
                    block.get()),
                   size,
                   name,
                   /*shared=*/false),
          id(group_id) {}
    static std::byte* checked(std::byte* p) {
        if (p == nullptr) throw std::bad_alloc();
        return p;
    }
    std::unique_ptr<std::byte, BlockDeleter> block;
    SlotProtocol protocol;
    uint64_t id;
};

// Memory is one address space: a region's offset is its address.
class ThreadEndpoint final : public Transport {
public:
    ThreadEndpoint(std::shared_ptr<ThreadGroupState> group, int rank)
        : group_(std::move(group)), rank_(rank) {}

    int rank() const override { return rank_; }
    int size() const override { return group_->protocol.size(); }
    const std::string& name() const override { return group_->protocol.name(); }
    GroupRef ref() const override {
        GroupRef ref;
        ref.id = group_->id;
        return ref;
    }

    Status open_peer(const GroupRef& ref, int rank, std::shared_ptr<Transport>* out) override {
        *out = find_endpoint_by_id(ref.id, rank);
        if (*out == nullptr) {
            return {Code::kRuntime,
                    "the paired group " + std::to_string(ref.id) +
                        " must be a live thread group of this process with a rank " +
                        std::to_string(rank) + ", got none"};
        }
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
    // Threads of this living process.
    std::string gone(int /*rank*/, bool /*grace*/) override { return {}; }
    void mark_broken(const std::string& reason) override { group_->protocol.mark_broken(reason); }
    Status broken_status() const override { return group_->protocol.broken_status(); }

    Status expose(const void* data, std::size_t bytes, int /*stage*/, RegionRef* out) override {
        *out = RegionRef{};
        out->offset = reinterpret_cast<uint64_t>(data);
        out->bytes = bytes;
        return Status::Ok();
    }
    const std::byte* map(int /*rank*/, const RegionRef& region) override {
        return reinterpret_cast<const std::byte*>(region.offset);
    }
    void* scratch_slot(int slot, std::size_t bytes) override {
        auto& buffer = scratch_[slot];
        bytes = std::max<std::size_t>(bytes, 64);  // never null, even for nothing
        if (buffer.size() < bytes) buffer.resize(bytes + bytes / 4);
        return buffer.data();
    }

private:
    std::shared_ptr<ThreadGroupState> group_;
    int rank_;
    std::vector<std::byte> scratch_[Transport::kScratchSlots];
};

}  // namespace

std::vector<std::shared_ptr<Transport>> create_thread_group(int size, const std::string& name) {
    std::vector<std::shared_ptr<Transport>> endpoints;
    if (size <= 0) return endpoints;
    const std::string unique = unique_group_name(name, "moedist_comm_");
    const uint64_t id = new_group_id();
    auto group = std::make_shared<ThreadGroupState>(size, unique, id);
    endpoints.reserve(static_cast<std::size_t>(size));
    for (int r = 0; r < size; ++r) endpoints.push_back(std::make_shared<ThreadEndpoint>(group, r));
    register_group(unique, id, size, endpoints);
    return endpoints;
}

}  // namespace moedist::transport
