// What the engines of a group across nodes (mpi, ucx) share: the node topology, a node's ranks
// as a process group (shared memory: everything exposed, mapped or scratch goes through it), the
// broken state, and the flags of round 2 with their one-line messages. An engine adds how its
// records and flags travel (publish, finish and their waits) and exchange().
//
//   node_of[r]      the node of rank r (0..nodes-1)
//   node_ranks[n]   the ranks of node n, ascending; local_of[r] = r's index there, which is its
//                   rank in that node's process group
#pragma once

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "transport/registry.hpp"
#include "transport/transport.hpp"
#include "util/log.hpp"
#include "util/peer_text.hpp"

namespace moedist::transport {

class NodeEndpoint : public Transport {
public:
    // `group_id`: the same on every rank of the group (the engine agrees on it while joining), so
    // a TP peer's records can name this group and every rank of it can check that it pairs with
    // one group (core/call_rounds).
    NodeEndpoint(std::string name,
                 int rank,
                 std::vector<int> node_of,
                 std::shared_ptr<Transport> node,
                 uint64_t group_id)
        : name_(std::move(name)),
          rank_(rank),
          size_(static_cast<int>(node_of.size())),
          node_of_(std::move(node_of)),
          node_(std::move(node)) {
        int nodes = 0;
        for (int n : node_of_) nodes = std::max(nodes, n + 1);
        node_ranks_.resize(static_cast<std::size_t>(nodes));
        for (int r = 0; r < size_; ++r) {
            auto& members =
                node_ranks_[static_cast<std::size_t>(node_of_[static_cast<std::size_t>(r)])];
            local_of_.push_back(static_cast<int>(members.size()));
            members.push_back(r);
        }
        flags_.resize(static_cast<std::size_t>(size_));
        ref_.id = group_id;
    }

    int rank() const override { return rank_; }
    int size() const override { return size_; }
    const std::string& name() const override { return name_; }
    GroupRef ref() const override { return ref_; }
    // A group across nodes is never a TP pair's open peer: the pair relays its rows over the TP
    // group instead (core/tp_relay.hpp).
    Status open_peer(const GroupRef&, int, std::shared_ptr<Transport>*) override {
        return {Code::kRuntime,
                "the EP group '" + name_ + "' spans " + std::to_string(node_ranks_.size()) +
                    " nodes: its TP pair relays rows instead of reading the peer group"};
    }

    std::string gone(int rank, bool grace) override {
        if (node_of_[static_cast<std::size_t>(rank)] != my_node()) return {};
        return node_->gone(local_of_[static_cast<std::size_t>(rank)], grace);
    }
    void mark_broken(const std::string& reason) override {
        if (broken_.empty()) {
            broken_ = reason;
            MOEDIST_LOG(kWarn, "communicator '{}' is broken: {}", name_, reason);
        }
    }
    Status broken_status() const override {
        if (broken_.empty()) return Status::Ok();
        return {Code::kRuntime,
                "communicator '" + name_ + "' must not be broken, got broken by: " + broken_};
    }
    Status expose(const void* data, std::size_t bytes, int stage, RegionRef* out) override {
        return node_->expose(data, bytes, stage, out);
    }
    bool exposes_in_place(const void* data, std::size_t bytes) override {
        return node_->exposes_in_place(data, bytes);
    }
    const std::byte* map(int rank, const RegionRef& region) override {
        if (node_of_[static_cast<std::size_t>(rank)] != my_node()) return nullptr;
        return node_->map(local_of_[static_cast<std::size_t>(rank)], region);
    }
    void* scratch_slot(int slot, std::size_t bytes) override {
        return node_->scratch_slot(slot, bytes);
    }
    bool pipelines_calls() const override { return false; }
    void set_scratch_bank(uint64_t call) override {
        Transport::set_scratch_bank(call);
        node_->set_scratch_bank(call);
    }

    int node_count() const override { return static_cast<int>(node_ranks_.size()); }
    int node_of(int rank) const override { return node_of_[static_cast<std::size_t>(rank)]; }
    std::span<const int> node_ranks(int node) const override {
        return node_ranks_[static_cast<std::size_t>(node)];
    }
    Transport* node_group() override { return node_.get(); }

protected:
    struct FlagRecord {
        int32_t code = 0;
        char message[252] = {};
    };

    int my_node() const { return node_of_[static_cast<std::size_t>(rank_)]; }
    // After an engine's wait timed out: why a rank of this node is dead (the group is then
    // broken with it), or empty. Asked without grace: a timeout is long past any dying moment.
    std::string dead_node_peer() {
        for (int r : node_ranks_[static_cast<std::size_t>(my_node())]) {
            if (r == rank_) continue;
            if (std::string why = gone(r, false); !why.empty()) return why;
        }
        return {};
    }

    // My flag of round 2, also in flags_[rank_]; the engine sends my_flag_ to every other rank.
    void set_my_flag(int32_t flag, std::string_view message) {
        my_flag_ = FlagRecord{};
        my_flag_.code = flag;
        if (!message.empty())  // an empty view may hold no pointer at all
            std::memcpy(my_flag_.message,
                        message.data(),
                        std::min(message.size(), sizeof(my_flag_.message) - 1));
        flags_[static_cast<std::size_t>(rank_)] = my_flag_;
    }

    // After round 2: the first rank's non-zero flag (*flag is empty when none), then the broken
    // state.
    Status first_flag(Flag* flag) const {
        *flag = Flag{};
        for (int r = 0; r < size_; ++r) {
            const FlagRecord& f = flags_[static_cast<std::size_t>(r)];
            if (f.code != 0) {
                *flag = Flag{f.code, r, util::peer_text(f.message)};
                break;
            }
        }
        return broken_status();
    }

    std::string name_;
    int rank_ = 0, size_ = 0;
    std::vector<int> node_of_;
    std::vector<int> local_of_;
    std::vector<std::vector<int>> node_ranks_;
    std::shared_ptr<Transport> node_;
    GroupRef ref_;
    std::string broken_;
    FlagRecord my_flag_;
    std::vector<FlagRecord> flags_;
};

}  // namespace moedist::transport
