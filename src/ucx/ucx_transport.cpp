// The ucx engine (ucx_engine.hpp). Layout of a group of W ranks on N nodes:
//
//   node group      this host's ranks: shared memory (records, flags, exposed rows) as on one host
//   UcxEndpoint     the group: rank r's worker talks to every other rank's worker
//     round 1       my fixed record (kMaxRecordBytes) to every other rank      tag (1, me, call)
//     round 2       my flag and one-line message to every other rank            tag (2, me, call)
//     exchange()    bytes between ranks of different nodes, point-to-point      tag (3, me, seq)
//
// A tag is kind (4 bits) | source rank (16 bits) | sequence (44 bits), received with the full
// mask: a message is matched to its round and its sender alone. Waits progress the worker,
// yielding, until MOEDIST_TIMEOUT_MS; the first rank whose message has not come is named and the
// group is broken for good (requests still open are cancelled when the group goes). Endpoints
// use UCX's peer error handling: a send to a rank that died fails and names it.

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>
#include <vector>

#include "transport/node_endpoint.hpp"
#include "transport/process_group.hpp"
#include "transport/registry.hpp"
#include "ucx/ucp_api.hpp"
#include "ucx/ucx_engine.hpp"
#include "util/env.hpp"
#include "util/log.hpp"
#include "util/peer_text.hpp"

namespace moedist::ucx {
namespace {

using transport::Clock;
using transport::Flag;
using transport::GroupRef;
using transport::RegionRef;
using transport::Transport;

constexpr uint64_t kRecordKind = 1, kFlagKind = 2, kExchangeKind = 3;
constexpr int kMaxRanks = 1 << 16;

uint64_t tag_of(uint64_t kind, int source, uint64_t sequence) {
    return kind << 60 | static_cast<uint64_t>(source) << 44 |
           (sequence & ((uint64_t{1} << 44) - 1));
}

// What each rank says in the global all-gather.
struct JoinBlob {
    int32_t ok = 0;
    uint32_t address_bytes = 0;
    uint64_t group_id = 0;  // rank 0's names the group on every rank
    char message[200] = {};
};
constexpr std::size_t kMaxAddressBytes = kMaxBlobBytes - sizeof(JoinBlob);

// A UCX context and worker, released in order.
struct Worker {
    ucp_context_h context = nullptr;
    ucp_worker_h worker = nullptr;
    ~Worker() {
        if (worker != nullptr) ucp().ucp_worker_destroy(worker);
        if (context != nullptr) ucp().ucp_cleanup(context);
    }
};

Status open_worker(Worker* w, std::vector<std::byte>* address) {
    if (std::string why; load_ucp(&why) == nullptr) return {Code::kRuntime, why};
    ucp_config_t* config = nullptr;
    if (ucs_status_t s = ucp().ucp_config_read(nullptr, nullptr, &config); s != UCS_OK)
        return {Code::kRuntime,
                std::string("UCX must read its configuration, got: ") + ucp().ucs_status_string(s)};
    // moedist's defaults where the user set none (the environment variable wins): TCP segments
    // of 512 KiB (UCX's 8 KiB sends and 64 KiB receives made d+c 1.2-1.3x slower at EP8 BS128
    // H7168 across two hosts here) and eager messages of any size (rows are expected: every receive
    // is posted before the round's sends). UCX 1.13 takes a transport's option by its bare name
    // (TX_SEG_SIZE: only tcp has it); "TCP_TX_SEG_SIZE" is refused with a warning.
    struct Default {
        const char* env;   // what the user sets
        const char* name;  // what ucp_config_modify takes
        const char* value;
    };
    for (const Default& d : {Default{"UCX_TCP_TX_SEG_SIZE", "TX_SEG_SIZE", "512k"},
                             Default{"UCX_TCP_RX_SEG_SIZE", "RX_SEG_SIZE", "512k"},
                             Default{"UCX_RNDV_THRESH", "RNDV_THRESH", "inf"}}) {
        if (std::getenv(d.env) == nullptr) (void)ucp().ucp_config_modify(config, d.name, d.value);
    }
    ucp_params_t params{};
    params.field_mask = UCP_PARAM_FIELD_FEATURES;
    params.features = UCP_FEATURE_TAG;
    const ucs_status_t init =
        ucp().ucp_init_version(UCP_API_MAJOR, UCP_API_MINOR, &params, config, &w->context);
    ucp().ucp_config_release(config);
    if (init != UCS_OK)
        return {Code::kRuntime,
                std::string("UCX must start, got: ") + ucp().ucs_status_string(init)};
    ucp_worker_params_t wp{};
    wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
    wp.thread_mode = UCS_THREAD_MODE_SINGLE;
    if (ucs_status_t s = ucp().ucp_worker_create(w->context, &wp, &w->worker); s != UCS_OK)
        return {Code::kRuntime,
                std::string("UCX must create a worker, got: ") + ucp().ucs_status_string(s)};
    ucp_address_t* bytes = nullptr;
    std::size_t length = 0;
    if (ucs_status_t s = ucp().ucp_worker_get_address(w->worker, &bytes, &length); s != UCS_OK)
        return {
            Code::kRuntime,
            std::string("UCX must give the worker's address, got: ") + ucp().ucs_status_string(s)};
    const auto* p = reinterpret_cast<const std::byte*>(bytes);
    address->assign(p, p + length);
    ucp().ucp_worker_release_address(w->worker, bytes);
    if (length > kMaxAddressBytes)
        return {Code::kRuntime,
                "UCX's worker address must fit in " + std::to_string(kMaxAddressBytes) +
                    " bytes, got " + std::to_string(length) + " (set UCX_TLS to fewer transports)"};
    return Status::Ok();
}

class UcxEndpoint final : public transport::NodeEndpoint {
public:
    UcxEndpoint(std::string name,
                int rank,
                std::vector<int> node_of,
                std::shared_ptr<Transport> node,
                std::unique_ptr<Worker> worker,
                uint64_t group_id)
        : NodeEndpoint(std::move(name), rank, std::move(node_of), std::move(node), group_id),
          worker_(std::move(worker)) {
        for (auto& buffer : records_)
            buffer.resize(static_cast<std::size_t>(size_) * kMaxRecordBytes);
        eps_.resize(static_cast<std::size_t>(size_), nullptr);
        lost_.assign(static_cast<std::size_t>(size_), UCS_OK);
    }
    ~UcxEndpoint() override {
        for (Open& o : open_) {
            if (o.request == nullptr) continue;
            ucp().ucp_request_cancel(worker_->worker, o.request);
        }
        drain(open_, Clock::now() + std::chrono::milliseconds(200));
        std::vector<void*> closing;
        ucp_request_param_t param{};
        param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
        param.flags = UCP_EP_CLOSE_FLAG_FORCE;
        for (ucp_ep_h ep : eps_) {
            if (ep == nullptr) continue;
            void* request = ucp().ucp_ep_close_nbx(ep, &param);
            if (UCS_PTR_IS_PTR(request)) closing.push_back(request);
        }
        const auto until = Clock::now() + std::chrono::milliseconds(500);
        for (void* request : closing) {
            while (ucp().ucp_request_check_status(request) == UCS_INPROGRESS &&
                   Clock::now() < until)
                ucp().ucp_worker_progress(worker_->worker);
            ucp().ucp_request_free(request);
        }
    }

    // Endpoints to every other rank from their worker addresses (all: size · blob_bytes).
    Status connect(std::span<const std::byte> all, std::size_t blob_bytes) {
        for (int r = 0; r < size_; ++r) {
            if (r == rank_) continue;
            const std::byte* blob = all.data() + static_cast<std::size_t>(r) * blob_bytes;
            ucp_ep_params_t params{};
            params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS |
                                UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                                UCP_EP_PARAM_FIELD_ERR_HANDLER;
            params.address = reinterpret_cast<const ucp_address_t*>(blob + sizeof(JoinBlob));
            params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
            params.err_handler.cb = &UcxEndpoint::on_peer_lost;
            params.err_handler.arg = &lost_[static_cast<std::size_t>(r)];
            if (ucs_status_t s = ucp().ucp_ep_create(
                    worker_->worker, &params, &eps_[static_cast<std::size_t>(r)]);
                s != UCS_OK) {
                eps_[static_cast<std::size_t>(r)] = nullptr;
                return {Code::kRuntime,
                        "UCX must reach rank " + std::to_string(r) + " of '" + name_ +
                            "', got: " + ucp().ucs_status_string(s)};
            }
        }
        return Status::Ok();
    }

    // My sends complete (connections wired up on the way), then the worker flushed: what is
    // left is in the kernel's socket buffers, delivered without me.
    void settle_sends(Clock::time_point deadline) override {
        for (;;) {
            ucp().ucp_worker_progress(worker_->worker);
            bool open = false;
            for (Open& o : open_) {
                if (!o.send || o.request == nullptr) continue;
                if (ucp().ucp_request_check_status(o.request) == UCS_INPROGRESS &&
                    lost_[static_cast<std::size_t>(o.peer)] == UCS_OK)
                    open = true;
            }
            if (!open || Clock::now() >= deadline) break;
            std::this_thread::yield();
        }
        ucp_request_param_t param{};
        ucs_status_ptr_t flush = ucp().ucp_worker_flush_nbx(worker_->worker, &param);
        if (UCS_PTR_IS_ERR(flush) || flush == nullptr) return;
        while (ucp().ucp_request_check_status(flush) == UCS_INPROGRESS && Clock::now() < deadline) {
            ucp().ucp_worker_progress(worker_->worker);
            std::this_thread::yield();
        }
        if (ucp().ucp_request_check_status(flush) == UCS_INPROGRESS)
            ucp().ucp_request_cancel(worker_->worker, flush);
        ucp().ucp_request_free(flush);
    }

    uint64_t begin_call() override { return next_call_++; }
    void publish(uint64_t call, std::span<const std::byte> record) override {
        // An aborted call leaves its rounds open: they complete before mine_ is reused.
        if (!open_.empty()) (void)wait(transport::call_deadline(), "depart", call - 1);
        mine_.assign(kMaxRecordBytes, std::byte{0});
        std::memcpy(mine_.data(), record.data(), std::min(record.size(), kMaxRecordBytes));
        std::byte* all = records_[call % 2].data();
        std::memcpy(
            all + static_cast<std::size_t>(rank_) * kMaxRecordBytes, mine_.data(), kMaxRecordBytes);
        post(mine_.data(), all, kMaxRecordBytes, kRecordKind, call);
    }
    Status wait_published(uint64_t call, Clock::time_point deadline, int64_t* arrival_us) override {
        const auto start = Clock::now();
        if (Status s = wait(deadline, "arrive", call); !s.ok()) return s;
        if (arrival_us != nullptr) {
            const int64_t us =
                std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
            std::fill(arrival_us, arrival_us + size_, us);
        }
        return broken_status();
    }
    const std::byte* record(int rank, uint64_t call) const override {
        return records_[call % 2].data() + static_cast<std::size_t>(rank) * kMaxRecordBytes;
    }
    void finish(uint64_t call, int32_t flag, std::string_view message) override {
        set_my_flag(flag, message);
        post(reinterpret_cast<const std::byte*>(&my_flag_),
             reinterpret_cast<std::byte*>(flags_.data()),
             sizeof(FlagRecord),
             kFlagKind,
             call);
    }
    Status wait_finished(uint64_t call, Clock::time_point deadline, Flag* flag) override {
        if (Status s = wait(deadline, "depart", call); !s.ok()) return s;
        return first_flag(flag);
    }

    Status exchange(std::span<const std::span<const std::byte>> send,
                    std::span<const std::span<std::byte>> recv,
                    Clock::time_point deadline) override {
        if (!broken_.empty()) return broken_status();
        const uint64_t sequence = next_exchange_++;
        std::vector<Open> requests;
        for (int r = 0; r < size_; ++r) {
            const auto& in = recv[static_cast<std::size_t>(r)];
            if (!in.empty())
                receive(in.data(), in.size(), tag_of(kExchangeKind, r, sequence), r, &requests);
        }
        for (int r = 0; r < size_; ++r) {
            const auto& out = send[static_cast<std::size_t>(r)];
            if (!out.empty())
                transmit(
                    out.data(), out.size(), tag_of(kExchangeKind, rank_, sequence), r, &requests);
        }
        const int open = drain(requests, deadline);
        if (open == -1) return Status::Ok();
        if (open == -3) {
            cancel(requests);
            return interrupted_status();
        }
        mark_broken(open_text(requests, open, "move its rows between nodes", sequence));
        cancel(requests);
        return broken_status();
    }

private:
    // UCX's report that the connection to a peer is gone (from ucp_worker_progress): its
    // requests fail too; the status names how in the group's reason.
    static void on_peer_lost(void* arg, ucp_ep_h /*ep*/, ucs_status_t status) {
        *static_cast<ucs_status_t*>(arg) = status;
    }

    struct Open {
        void* request = nullptr;  // null once complete
        int peer = -1;
        ucs_status_t status = UCS_OK;
        bool send = false;
    };

    void receive(void* data, std::size_t bytes, uint64_t tag, int peer, std::vector<Open>* into) {
        ucp_request_param_t param{};
        ucs_status_ptr_t request =
            ucp().ucp_tag_recv_nbx(worker_->worker, data, bytes, tag, ~uint64_t{0}, &param);
        into->push_back(settle(request, peer));
    }
    void transmit(
        const void* data, std::size_t bytes, uint64_t tag, int peer, std::vector<Open>* into) {
        ucp_request_param_t param{};
        ucs_status_ptr_t request =
            ucp().ucp_tag_send_nbx(eps_[static_cast<std::size_t>(peer)], data, bytes, tag, &param);
        into->push_back(settle(request, peer));
        into->back().send = true;
    }
    static Open settle(ucs_status_ptr_t request, int peer) {
        Open o;
        o.peer = peer;
        if (UCS_PTR_IS_ERR(request)) {
            o.status = UCS_PTR_STATUS(request);
        } else if (request != nullptr) {
            o.request = request;
        }
        return o;
    }

    // One round: my `bytes` to every other rank, theirs into all[r · bytes].
    void post(
        const std::byte* mine, std::byte* all, std::size_t bytes, uint64_t kind, uint64_t call) {
        for (int r = 0; r < size_; ++r) {
            if (r == rank_) continue;
            receive(
                all + static_cast<std::size_t>(r) * bytes, bytes, tag_of(kind, r, call), r, &open_);
        }
        for (int r = 0; r < size_; ++r) {
            if (r == rank_) continue;
            transmit(mine, bytes, tag_of(kind, rank_, call), r, &open_);
        }
    }

    // Progresses until every request is complete (-1), or the deadline (the index of the first
    // still open), or a failure (the index of the first request that failed or whose peer's
    // connection is lost), or an interrupt (-3).
    int drain(std::vector<Open>& requests, Clock::time_point deadline) {
        auto next_check = Clock::now() + std::chrono::milliseconds(10);
        for (int spins = 0;; ++spins) {
            ucp().ucp_worker_progress(worker_->worker);
            int first_open = -1;
            for (std::size_t i = 0; i < requests.size(); ++i) {
                Open& o = requests[i];
                if (o.request != nullptr) {
                    const ucs_status_t s = ucp().ucp_request_check_status(o.request);
                    if (s != UCS_INPROGRESS) {
                        ucp().ucp_request_free(o.request);
                        o.request = nullptr;
                        o.status = s;
                    }
                }
                if (o.status != UCS_OK && o.status != UCS_ERR_CANCELED) return static_cast<int>(i);
                if (o.request != nullptr && lost_[static_cast<std::size_t>(o.peer)] != UCS_OK)
                    return static_cast<int>(i);  // its peer is gone: it never completes
                if (o.request != nullptr && first_open < 0) first_open = static_cast<int>(i);
            }
            if (first_open < 0) {
                requests.clear();
                return -1;
            }
            if (Clock::now() >= deadline) return first_open;
            if (spins > 64) std::this_thread::yield();
            if (const char* why = nullptr; Clock::now() >= next_check) {
                if (transport::interrupted(&why)) return -3;
                next_check = Clock::now() + std::chrono::milliseconds(10);
            }
        }
    }

    void cancel(std::vector<Open>& requests) {
        for (Open& o : requests)
            if (o.request != nullptr) ucp().ucp_request_cancel(worker_->worker, o.request);
        (void)drain(requests, Clock::now() + std::chrono::milliseconds(100));
        for (Open& o : requests)
            if (o.request != nullptr)
                ucp().ucp_request_free(o.request);  // released when it completes
        requests.clear();
    }

    Status interrupted_status() {
        const char* why = "";
        transport::interrupted(&why);
        mark_broken(std::string("a call on this rank was interrupted: ") + why);
        cancel(open_);
        return broken_status();
    }

    std::string open_text(const std::vector<Open>& requests,
                          int index,
                          const char* what,
                          uint64_t n) {
        const Open& o = requests[static_cast<std::size_t>(index)];
        if (std::string why = gone(o.peer, false); !why.empty()) return why;
        const ucs_status_t lost = lost_[static_cast<std::size_t>(o.peer)];
        if (lost != UCS_OK)
            return "rank " + std::to_string(o.peer) + " of '" + name_ + "' (node " +
                   std::to_string(node_of(o.peer)) + ") must " + what +
                   ", got its connection lost: " + ucp().ucs_status_string(lost) + " (call " +
                   std::to_string(n) + ")";
        if (o.status != UCS_OK && o.status != UCS_INPROGRESS)
            return "rank " + std::to_string(o.peer) + " of '" + name_ + "' (node " +
                   std::to_string(node_of(o.peer)) + ") must " + what +
                   ", got its connection lost: " + ucp().ucs_status_string(o.status) + " (call " +
                   std::to_string(n) + ")";
        return "rank " + std::to_string(o.peer) + " of '" + name_ + "' (node " +
               std::to_string(node_of(o.peer)) + ") must " + what + " within " +
               transport::timeout_text() + ", got nothing (call " + std::to_string(n) + ")";
    }

    Status wait(Clock::time_point deadline, const char* round, uint64_t call) {
        if (open_.empty()) return broken_status();
        if (!broken_.empty()) {  // this call failed here already: my sends tell the peers so,
            settle_sends(std::min(deadline, Clock::now() + std::chrono::milliseconds(100)));
            cancel(open_);  // and nothing they send can change the outcome
            return broken_status();
        }
        const int open = drain(open_, deadline);
        if (open == -1) return Status::Ok();
        if (open == -3) return interrupted_status();
        if (std::string why = dead_node_peer(); !why.empty()) {  // a dead node peer first
            mark_broken(why);
            cancel(open_);
            return broken_status();
        }
        mark_broken(open_text(open_, open, round, call));
        cancel(open_);
        return broken_status();
    }

    std::unique_ptr<Worker> worker_;
    std::vector<ucp_ep_h> eps_;
    std::vector<ucs_status_t> lost_;  // per peer: UCS_OK, or how its connection was lost
    uint64_t next_call_ = 0, next_exchange_ = 0;
    std::vector<std::byte> mine_;
    std::vector<std::byte> records_[2];
    std::vector<Open> open_;
};

}  // namespace

Status join_hosts(const HostJoin& join, std::shared_ptr<transport::Transport>* out) {
    const int size = static_cast<int>(join.node_of.size());
    if (size < 1 || size > kMaxRanks || join.rank < 0 || join.rank >= size)
        return {Code::kInvalidParam,
                "a group across hosts must have 1.." + std::to_string(kMaxRanks) + " ranks, got " +
                    std::to_string(size)};
    const int my_node = join.node_of[static_cast<std::size_t>(join.rank)];
    int local = 0, local_size = 0;
    for (int r = 0; r < size; ++r) {
        if (join.node_of[static_cast<std::size_t>(r)] != my_node) continue;
        if (r < join.rank) ++local;
        ++local_size;
    }
    // The node first, then UCX; whatever failed travels in the global all-gather.
    std::shared_ptr<Transport> node;
    Status mine = transport::join_process_group(local,
                                                local_size,
                                                join.name + "_node" + std::to_string(my_node),
                                                join.node_all_gather,
                                                &node,
                                                /*register_endpoint=*/false);
    auto worker = std::make_unique<Worker>();
    std::vector<std::byte> address;
    if (mine.ok()) mine = open_worker(worker.get(), &address);
    std::vector<std::byte> blob(sizeof(JoinBlob) + address.size());
    JoinBlob head;
    head.ok = mine.ok() ? 1 : 0;
    head.address_bytes = static_cast<uint32_t>(address.size());
    head.group_id = transport::new_group_id();
    std::memcpy(head.message,
                mine.message().data(),
                std::min(mine.message().size(), sizeof(head.message) - 1));
    std::memcpy(blob.data(), &head, sizeof(head));
    if (!address.empty()) std::memcpy(blob.data() + sizeof(head), address.data(), address.size());
    std::vector<std::byte> all;
    if (Status s = join.global_all_gather(blob, &all); !s.ok()) return s;
    if (all.size() != static_cast<std::size_t>(size) * kMaxBlobBytes)
        return {Code::kRuntime, "the global all-gather must give every rank's blob"};
    for (int r = 0; r < size; ++r) {
        JoinBlob theirs;
        std::memcpy(
            &theirs, all.data() + static_cast<std::size_t>(r) * kMaxBlobBytes, sizeof(theirs));
        if (theirs.ok != 1)
            return {
                Code::kRuntime,
                "rank " + std::to_string(r) + " of '" + join.name +
                    "' must form its node and open UCX, got: " + util::peer_text(theirs.message)};
        if (theirs.address_bytes == 0 || theirs.address_bytes > kMaxAddressBytes)
            return {Code::kRuntime,
                    "rank " + std::to_string(r) + " of '" + join.name +
                        "' must give a UCX address of 1.." + std::to_string(kMaxAddressBytes) +
                        " bytes"};
    }
    JoinBlob first;
    std::memcpy(&first, all.data(), sizeof(first));
    auto endpoint = std::make_shared<UcxEndpoint>(
        join.name, join.rank, join.node_of, std::move(node), std::move(worker), first.group_id);
    if (Status s = endpoint->connect(all, kMaxBlobBytes); !s.ok()) return s;
    MOEDIST_LOG(kInfo,
                "joined '{}' as rank {} of {} across {} hosts (this host's ranks share memory, "
                "the hosts talk over UCX)",
                join.name,
                join.rank,
                size,
                endpoint->node_count());
    *out = std::move(endpoint);
    return Status::Ok();
}

std::string host_identity() {
    if (std::string given = util::server_id(); !given.empty())
        return "server " + given.substr(0, kHostIdBytes - 8);
    std::string boot;
    std::ifstream("/proc/sys/kernel/random/boot_id") >> boot;
    char net[64] = {};
    const ssize_t n = readlink("/proc/self/ns/net", net, sizeof(net) - 1);
    return ("boot " + boot.substr(0, 40) + " " +
            std::string(net, n > 0 ? static_cast<std::size_t>(n) : 0))
        .substr(0, kHostIdBytes);
}

Status join_over(int rank,
                 int size,
                 const std::string& name,
                 const AllGather& all_gather,
                 std::shared_ptr<transport::Transport>* out) {
    // On one host the caller's all-gather runs twice, as it always has: the host identities
    // ride in front of the first round's hellos. When they differ every rank stops that join at
    // once (the same bytes everywhere, the same decision) and joins across hosts instead.
    std::vector<int> node_of(static_cast<std::size_t>(size));
    bool across_hosts = false;
    int round = 0;
    const std::string me = host_identity();
    auto first_round = [&](std::span<const std::byte> bytes,
                           std::vector<std::byte>* all) -> Status {
        if (round++ > 0 || across_hosts) return all_gather(bytes, all);
        std::vector<std::byte> tagged(kHostIdBytes + bytes.size(), std::byte{0}), everyone;
        std::memcpy(tagged.data(), me.data(), std::min(me.size(), kHostIdBytes));
        std::memcpy(tagged.data() + kHostIdBytes, bytes.data(), bytes.size());
        if (Status s = all_gather(tagged, &everyone); !s.ok()) return s;
        if (everyone.size() != static_cast<std::size_t>(size) * tagged.size())
            return {Code::kRuntime,
                    "the all-gather must give every rank's bytes, of one length, got " +
                        std::to_string(everyone.size()) + " bytes"};
        std::vector<std::vector<std::byte>> hosts;
        all->clear();
        for (int r = 0; r < size; ++r) {
            const auto at = everyone.begin() + static_cast<std::ptrdiff_t>(r) *
                                                   static_cast<std::ptrdiff_t>(tagged.size());
            std::vector<std::byte> host(at, at + static_cast<std::ptrdiff_t>(kHostIdBytes));
            auto found = std::find(hosts.begin(), hosts.end(), host);
            if (found == hosts.end()) found = hosts.insert(hosts.end(), host);
            node_of[static_cast<std::size_t>(r)] = static_cast<int>(found - hosts.begin());
            all->insert(all->end(),
                        at + static_cast<std::ptrdiff_t>(kHostIdBytes),
                        at + static_cast<std::ptrdiff_t>(tagged.size()));
        }
        across_hosts = hosts.size() > 1;
        if (across_hosts) return {Code::kRuntime, "the group spans hosts"};
        return Status::Ok();
    };
    Status one_host = transport::join_process_group(rank, size, name, first_round, out);
    if (!across_hosts) return one_host;
    const int my_node = node_of[static_cast<std::size_t>(rank)];
    HostJoin spec;
    spec.name = name;
    spec.rank = rank;
    spec.node_of = node_of;
    // A node round is a global round: every rank gives its bytes, keeps its node's in order.
    spec.node_all_gather = [&](std::span<const std::byte> bytes,
                               std::vector<std::byte>* all) -> Status {
        std::vector<std::byte> everyone;
        if (Status s = all_gather(bytes, &everyone); !s.ok()) return s;
        if (everyone.size() != static_cast<std::size_t>(size) * bytes.size())
            return {Code::kRuntime, "the all-gather must give every rank's bytes, of one length"};
        all->clear();
        for (int r = 0; r < size; ++r) {
            if (node_of[static_cast<std::size_t>(r)] != my_node) continue;
            const auto at = everyone.begin() + static_cast<std::ptrdiff_t>(r) *
                                                   static_cast<std::ptrdiff_t>(bytes.size());
            all->insert(all->end(), at, at + static_cast<std::ptrdiff_t>(bytes.size()));
        }
        return Status::Ok();
    };
    spec.global_all_gather = [&](std::span<const std::byte> bytes,
                                 std::vector<std::byte>* all) -> Status {
        std::vector<std::byte> padded(kMaxBlobBytes, std::byte{0});
        std::memcpy(padded.data(), bytes.data(), std::min(bytes.size(), kMaxBlobBytes));
        return all_gather(padded, all);
    };
    std::shared_ptr<transport::Transport> endpoint;
    if (Status s = join_hosts(spec, &endpoint); !s.ok()) return s;
    std::vector<std::shared_ptr<transport::Transport>> endpoints(static_cast<std::size_t>(size));
    endpoints[static_cast<std::size_t>(rank)] = endpoint;
    transport::register_group(name, endpoint->ref().id, size, endpoints);
    *out = std::move(endpoint);
    return Status::Ok();
}

}  // namespace moedist::ucx
