#include "transport/deferred.hpp"

#include <mutex>
#include <thread>

#include "transport/registry.hpp"

namespace moedist::transport {
namespace {

class DeferredEndpoint final : public Transport {
public:
    DeferredEndpoint(std::string name, int rank, int size, Join join)
        : name_(std::move(name)), rank_(rank), size_(size) {
        worker_ = std::thread([this, join = std::move(join)] {
            std::shared_ptr<Transport> joined;
            Status s = join(&joined);
            std::lock_guard<std::mutex> lock(mutex_);
            inner_ = std::move(joined);
            status_ = s.ok() && inner_ == nullptr ? Status(Code::kRuntime, "join gave no endpoint")
                                                  : std::move(s);
        });
    }
    ~DeferredEndpoint() override {
        if (worker_.joinable()) worker_.join();
    }

    int rank() const override { return rank_; }
    int size() const override { return size_; }
    const std::string& name() const override { return name_; }
    GroupRef ref() const override { return ready() ? inner_->ref() : GroupRef{}; }
    Status open_peer(const GroupRef& ref, int rank, std::shared_ptr<Transport>* out) override {
        if (!ready()) return status_;
        return inner_->open_peer(ref, rank, out);
    }
    uint64_t begin_call() override { return ready() ? inner_->begin_call() : 0; }
    void publish(uint64_t call, std::span<const std::byte> record) override {
        if (ready()) inner_->publish(call, record);
    }
    Status wait_published(uint64_t call, Clock::time_point deadline, int64_t* arrival_us) override {
        return ready() ? inner_->wait_published(call, deadline, arrival_us) : status_;
    }
    const std::byte* record(int rank, uint64_t call) const override {
        return inner_->record(rank, call);
    }
    void finish(uint64_t call, int32_t flag, std::string_view message) override {
        if (ready()) inner_->finish(call, flag, message);
    }
    Status wait_finished(uint64_t call, Clock::time_point deadline, Flag* flag) override {
        return ready() ? inner_->wait_finished(call, deadline, flag) : status_;
    }
    std::string gone(int rank, bool grace) override {
        return ready() ? inner_->gone(rank, grace) : status_.message();
    }
    void settle_sends(Clock::time_point deadline) override {
        if (ready()) inner_->settle_sends(deadline);
    }
    void mark_broken(const std::string& reason) override {
        if (ready()) inner_->mark_broken(reason);
    }
    Status broken_status() const override { return ready() ? inner_->broken_status() : status_; }
    Status expose(const void* data, std::size_t bytes, int stage, RegionRef* out) override {
        return ready() ? inner_->expose(data, bytes, stage, out) : status_;
    }
    const std::byte* map(int rank, const RegionRef& region) override {
        return ready() ? inner_->map(rank, region) : nullptr;
    }
    bool exposes_in_place(const void* data, std::size_t bytes) override {
        return ready() && inner_->exposes_in_place(data, bytes);
    }
    bool pipelines_calls() const override { return ready() ? inner_->pipelines_calls() : true; }
    void set_scratch_bank(uint64_t call) override {
        Transport::set_scratch_bank(call);
        if (ready()) inner_->set_scratch_bank(call);
    }
    void* scratch_slot(int slot, std::size_t bytes) override {
        return ready() ? inner_->scratch_slot(slot, bytes) : nullptr;
    }
    int node_count() const override { return ready() ? inner_->node_count() : 1; }
    int node_of(int rank) const override { return ready() ? inner_->node_of(rank) : 0; }
    std::span<const int> node_ranks(int node) const override {
        return ready() ? inner_->node_ranks(node) : Transport::node_ranks(node);
    }
    Transport* node_group() override { return ready() ? inner_->node_group() : nullptr; }
    Status exchange(std::span<const std::span<const std::byte>> send,
                    std::span<const std::span<std::byte>> recv,
                    Clock::time_point deadline) override {
        return ready() ? inner_->exchange(send, recv, deadline) : status_;
    }

private:
    // Waits for the join (it has its own deadline); true when it succeeded.
    bool ready() const {
        std::call_once(joined_once_, [this] { worker_.join(); });
        return status_.ok();
    }

    std::string name_;
    int rank_;
    int size_;
    mutable std::mutex mutex_;
    mutable std::thread worker_;
    mutable std::once_flag joined_once_;
    std::shared_ptr<Transport> inner_;
    Status status_;
};

}  // namespace

std::shared_ptr<Transport> deferred_endpoint(const std::string& name,
                                             int rank,
                                             int size,
                                             Join join) {
    auto endpoint = std::make_shared<DeferredEndpoint>(name, rank, size, std::move(join));
    std::vector<std::shared_ptr<Transport>> endpoints(static_cast<std::size_t>(size));
    endpoints[static_cast<std::size_t>(rank)] = endpoint;
    register_group(name, std::hash<std::string>{}(name), size, endpoints);
    return endpoint;
}

}  // namespace moedist::transport
