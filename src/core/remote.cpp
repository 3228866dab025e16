#include "core/remote.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "core/records.hpp"
#include "core/scratch.hpp"
#include "core/tensor_access.hpp"
#include "util/peer_text.hpp"

namespace moedist::core {
namespace {

constexpr std::size_t kAlign = 64;
std::size_t align(std::size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

int index_in_node(const transport::Transport& ep, int rank) {
    const auto ranks = ep.node_ranks(ep.node_of(rank));
    return static_cast<int>(std::find(ranks.begin(), ranks.end(), rank) - ranks.begin());
}

// The rank of node `node` that receives sender `s`'s tokens for that node.
int gateway(const transport::Transport& ep, int s, int node) {
    const auto ranks = ep.node_ranks(node);
    return ranks[static_cast<std::size_t>(index_in_node(ep, s)) % ranks.size()];
}

bool pre_quantized_x(const DispatchRecord& rec) { return dtype_size(rec.x.dtype) == 1; }

int64_t elements(const TensorRef& t) {
    int64_t n = 1;
    for (int d = 0; d < t.ndim; ++d) n *= t.shape[d];
    return t.ndim == 0 ? 0 : n;
}

// The sections of one pack (see remote.hpp), from the sender's record.
struct PackLayout {
    int64_t count = 0;
    bool flags = false, weights = false, token_scales = false, scales = false, staged = false;
    bool staged_scales = false;
    std::size_t row_bytes = 0, staged_scale_bytes = 0, scales_bytes = 0;
    std::size_t at_tokens = 0, at_ids = 0, at_flags = 0, at_weights = 0, at_token_scales = 0,
                at_scales = 0;
    std::size_t at_rows = 0, at_staged_scales = 0, total = 0;
};

PackLayout pack_layout(const DispatchRecord& rec, int64_t count, int64_t hidden, bool v2) {
    PackLayout p;
    p.count = count;
    p.flags = v2;
    const auto c = static_cast<std::size_t>(count);
    const auto k = static_cast<std::size_t>(rec.top_k);
    p.weights = rec.expert_scales.present();
    p.token_scales = rec.scales.present() && pre_quantized_x(rec);
    p.scales = rec.scales.present() && !pre_quantized_x(rec);
    p.staged = rec.staged_rows.present();
    p.staged_scales = p.staged && rec.staged_scales.present();
    const DType row_dtype = p.staged ? rec.staged_rows.dtype : rec.x.dtype;
    p.row_bytes = static_cast<std::size_t>(hidden) * dtype_size(row_dtype);
    if (p.staged_scales) {
        const int64_t cols = rec.staged_scales.ndim == 2 ? rec.staged_scales.shape[1] : 1;
        p.staged_scale_bytes = static_cast<std::size_t>(cols) * dtype_size(rec.staged_scales.dtype);
    }
    if (p.scales) p.scales_bytes = static_cast<std::size_t>(elements(rec.scales)) * 4;
    std::size_t at = 0;
    p.at_tokens = at;
    at = align(at + c * 4);
    p.at_ids = at;
    at = align(at + c * k * 4);
    p.at_flags = at;
    if (p.flags) at = align(at + c * k);
    p.at_weights = at;
    if (p.weights) at = align(at + c * k * 4);
    p.at_token_scales = at;
    if (p.token_scales) at = align(at + c * 4);
    p.at_scales = at;
    if (p.scales) at = align(at + p.scales_bytes);
    p.at_rows = at;
    at = align(at + c * p.row_bytes);
    p.at_staged_scales = at;
    if (p.staged_scales) at = align(at + c * p.staged_scale_bytes);
    p.total = count > 0 ? at : 0;
    return p;
}

// Copies view row `row` (any strides) into `dst`, contiguous.
void copy_row_out(const TensorView& v, int64_t row, std::byte* dst, int64_t columns) {
    const auto elem = dtype_size(v.dtype);
    if (v.ndim == 1) {
        std::memcpy(dst, element_ptr(v, row), elem);
        return;
    }
    if (v.stride(1) == 1) {
        std::memcpy(dst, element_ptr(v, row, 0), static_cast<std::size_t>(columns) * elem);
        return;
    }
    for (int64_t c = 0; c < columns; ++c)
        std::memcpy(dst + static_cast<std::size_t>(c) * elem, element_ptr(v, row, c), elem);
}

// This rank's pack for a node that needs `tokens`.
void write_pack(const DispatchOp& op,
                const DispatchRecord& mine,
                const SendPlan& plan,
                const TensorView& staged_rows,
                const std::optional<TensorView>& staged_scales,
                const std::vector<int32_t>& tokens,
                std::byte* out) {
    const PackLayout p =
        pack_layout(mine, static_cast<int64_t>(tokens.size()), op.hidden, op.config.v2());
    const int64_t k_count = op.top_k;
    const EntryMask mask = entry_mask(op.config, op.in.x_active_mask);
    for (std::size_t i = 0; i < tokens.size(); ++i) {
        const int32_t t = tokens[i];
        std::memcpy(out + p.at_tokens + i * 4, &t, 4);
        for (int64_t k = 0; k < k_count; ++k) {
            const int32_t id = load2<int32_t>(op.in.expert_ids, t, k);
            std::memcpy(
                out + p.at_ids +
                    (i * static_cast<std::size_t>(k_count) + static_cast<std::size_t>(k)) * 4,
                &id,
                4);
            if (p.flags) {
                out[p.at_flags + i * static_cast<std::size_t>(k_count) +
                    static_cast<std::size_t>(k)] =
                    static_cast<std::byte>(entry_active(mask, plan, t, k) ? 1 : 0);
            }
            if (p.weights) {
                const float w = load2<float>(*op.in.expert_scales, t, k);
                std::memcpy(
                    out + p.at_weights +
                        (i * static_cast<std::size_t>(k_count) + static_cast<std::size_t>(k)) * 4,
                    &w,
                    4);
            }
        }
        if (p.token_scales) {
            const float s = load1<float>(*op.in.scales, t);
            std::memcpy(out + p.at_token_scales + i * 4, &s, 4);
        }
        if (p.staged) {
            copy_row_out(staged_rows, t, out + p.at_rows + i * p.row_bytes, op.hidden);
            if (p.staged_scales) {
                const TensorView& sv = *staged_scales;
                copy_row_out(sv,
                             t,
                             out + p.at_staged_scales + i * p.staged_scale_bytes,
                             sv.ndim == 2 ? sv.dim(1) : 1);
            }
        } else {
            copy_row_out(op.in.x, t, out + p.at_rows + i * p.row_bytes, op.hidden);
        }
    }
    if (p.scales && !tokens.empty()) {
        const TensorView& sc = *op.in.scales;
        if (sc.ndim == 1) {
            for (int64_t i = 0; i < sc.dim(0); ++i)
                std::memcpy(
                    out + p.at_scales + static_cast<std::size_t>(i) * 4, element_ptr(sc, i), 4);
        } else {
            for (int64_t r = 0; r < sc.dim(0); ++r)
                copy_row_out(sc,
                             r,
                             out + p.at_scales + static_cast<std::size_t>(r * sc.dim(1)) * 4,
                             sc.dim(1));
        }
    }
}

// What a gateway publishes to its node for one sender it serves.
struct DirectoryEntry {
    int32_t source = -1;
    int32_t count = 0;   // tokens in the pack
    int32_t active = 0;  // V2: of them active (listed after compact_of, as compact rows)
    int32_t reserved = 0;
    transport::RegionRef pack;
    // int32: expert_begin[E+1], entries[count·K], V2: active compact rows[active], compact_of[BS]
    transport::RegionRef plan;
};

// What a rank tells its node after the exchange between nodes: its directory, or (code != 0)
// why its exchange failed, so that its node peers report the cause, not the rank that kept them
// waiting.
struct NodeRecord {
    transport::RegionRef directory;
    int32_t entries = 0;
    int32_t code = 0;
    char message[400] = {};
};

// The node round's wait: past every node peer's own exchange deadline (`deadline` + the call's
// timeout), so a peer held up in its exchange fails first and says why.
transport::Clock::time_point node_round_deadline(transport::Clock::time_point deadline) {
    return deadline + std::chrono::milliseconds(transport::call_timeout_ms());
}

// A failed exchange still takes part in the node round, carrying its reason.
Status fail_node_round(transport::Transport& endpoint,
                       transport::Clock::time_point deadline,
                       uint64_t* node_call,
                       const Status& failed) {
    transport::Transport& node = *endpoint.node_group();
    NodeRecord mine_node;
    mine_node.code = failed.raw_code();
    const std::string& why = failed.message();
    std::memcpy(mine_node.message, why.data(), std::min(why.size(), sizeof(mine_node.message) - 1));
    *node_call = node.begin_call();
    node.publish(*node_call, {reinterpret_cast<const std::byte*>(&mine_node), sizeof(mine_node)});
    (void)node.wait_published(*node_call, node_round_deadline(deadline));
    return failed;
}

thread_local CrossNodeTraffic traffic;

}  // namespace

CrossNodeTraffic last_cross_node_traffic() { return traffic; }

void tokens_for_nodes(const DispatchOp& op,
                      const Topology& topo,
                      const transport::Transport& endpoint,
                      const SendPlan& plan,
                      std::vector<std::vector<int32_t>>* out) {
    const EntryMask mask = entry_mask(op.config, op.in.x_active_mask);
    const int nodes = endpoint.node_count();
    const int me = static_cast<int>(op.config.ep_rank_id);
    const int my_node = endpoint.node_of(me);
    out->assign(static_cast<std::size_t>(nodes), {});
    std::vector<int> last(static_cast<std::size_t>(nodes), -1);
    const int64_t bs = op.num_tokens;
    for (int64_t t = 0; t < bs; ++t) {
        auto need = [&](int64_t rank) {
            const int n = endpoint.node_of(static_cast<int>(rank));
            if (n == my_node || last[static_cast<std::size_t>(n)] == t) return;
            last[static_cast<std::size_t>(n)] = static_cast<int>(t);
            (*out)[static_cast<std::size_t>(n)].push_back(static_cast<int32_t>(t));
        };
        if (topo.v2 && plan.index_of_active(t) < 0) continue;  // an inactive token goes nowhere
        for (int64_t k = 0; k < op.top_k; ++k) {
            if (!entry_active(mask, plan, t, k)) continue;
            const int32_t e = load2<int32_t>(op.in.expert_ids, t, k);
            if (e >= 0 && e < topo.moe_expert_num) need(topo.rank_of_expert(e));
        }
        if (topo.v2) {  // every active token to each shared expert (the replica rule)
            for (int64_t j = 0; j < topo.shared_experts; ++j) need(topo.shared_rank_for(me, j));
        } else if (topo.shared_rank_num > 0 && !topo.is_shared(me)) {
            need(shared_rank_of_token(me, bs, topo.shared_rank_num, t));
        }
    }
}

Status bring_remote_sources(const DispatchOp& op,
                            const Topology& topo,
                            const SendPlan& plan,
                            transport::Transport& endpoint,
                            const std::vector<const DispatchRecord*>& records,
                            std::vector<SourceView>* sources,
                            uint64_t* node_call) {
    const int world = endpoint.size();
    const int me = endpoint.rank();
    const int my_node = endpoint.node_of(me);
    const int nodes = endpoint.node_count();
    const DispatchRecord& mine = *records[static_cast<std::size_t>(me)];
    const auto deadline = transport::call_deadline();

    // My packs, one per other node.
    std::vector<std::vector<int32_t>> needed;
    tokens_for_nodes(op, topo, endpoint, plan, &needed);
    std::vector<std::size_t> send_at(static_cast<std::size_t>(nodes), 0);
    std::size_t send_total = 0;
    for (int n = 0; n < nodes; ++n) {
        send_at[static_cast<std::size_t>(n)] = send_total;
        send_total += pack_layout(mine,
                                  static_cast<int64_t>(needed[static_cast<std::size_t>(n)].size()),
                                  op.hidden,
                                  topo.v2)
                          .total;
    }
    auto* send_buffer = static_cast<std::byte*>(endpoint.scratch(kScratchRemoteSend, send_total));
    if (send_buffer == nullptr)
        return {Code::kRuntime, "the bytes between nodes must find shared memory, got none"};
    const TensorView staged_rows = view_of(endpoint, me, mine.staged_rows);
    std::optional<TensorView> staged_scales;
    if (mine.staged_scales.present()) staged_scales = view_of(endpoint, me, mine.staged_scales);
    std::vector<std::span<const std::byte>> send(static_cast<std::size_t>(world));
    for (int n = 0; n < nodes; ++n) {
        if (n == my_node || needed[static_cast<std::size_t>(n)].empty()) continue;
        const PackLayout p =
            pack_layout(mine,
                        static_cast<int64_t>(needed[static_cast<std::size_t>(n)].size()),
                        op.hidden,
                        topo.v2);
        std::byte* out = send_buffer + send_at[static_cast<std::size_t>(n)];
        write_pack(
            op, mine, plan, staged_rows, staged_scales, needed[static_cast<std::size_t>(n)], out);
        send[static_cast<std::size_t>(gateway(endpoint, me, n))] = {out, p.total};
    }

    // The packs I receive: from every sender on another node whose gateway here is me.
    std::vector<std::size_t> recv_at(static_cast<std::size_t>(world), 0);
    std::vector<PackLayout> layouts(static_cast<std::size_t>(world));
    std::size_t recv_total = 0;
    std::size_t plans_total = 0;
    int served = 0;
    for (int s = 0; s < world; ++s) {
        const DispatchRecord& rec = *records[static_cast<std::size_t>(s)];
        if (endpoint.node_of(s) == my_node || gateway(endpoint, s, my_node) != me) continue;
        layouts[static_cast<std::size_t>(s)] =
            pack_layout(rec, rec.tokens_to_node[my_node], op.hidden, topo.v2);
        recv_at[static_cast<std::size_t>(s)] = recv_total;
        recv_total += layouts[static_cast<std::size_t>(s)].total;
        plans_total += align(
            static_cast<std::size_t>(rec.num_experts + 1 + rec.tokens_to_node[my_node] * rec.top_k +
                                     rec.num_tokens + rec.tokens_to_node[my_node]) *
            4);
        ++served;
    }
    auto* recv_buffer = static_cast<std::byte*>(endpoint.scratch(kScratchRemoteRecv, recv_total));
    std::vector<std::span<std::byte>> recv(static_cast<std::size_t>(world));
    for (int s = 0; s < world; ++s) {
        const std::size_t bytes = layouts[static_cast<std::size_t>(s)].total;
        if (bytes > 0)
            recv[static_cast<std::size_t>(s)] = {recv_buffer + recv_at[static_cast<std::size_t>(s)],
                                                 bytes};
    }
    if (send_buffer == nullptr || recv_buffer == nullptr)
        return {Code::kRuntime, "the bytes between nodes must find shared memory, got none"};
    traffic.dispatch_rows = traffic.dispatch_bytes = traffic.dispatch_flat_rows = 0;
    for (int n = 0; n < nodes; ++n) {
        if (n == my_node) continue;
        traffic.dispatch_rows += static_cast<int64_t>(needed[static_cast<std::size_t>(n)].size());
        for (int r : endpoint.node_ranks(n)) traffic.dispatch_flat_rows += mine.rows_to[r];
    }
    for (const auto& span : send) traffic.dispatch_bytes += static_cast<int64_t>(span.size());
    if (Status s = endpoint.exchange(send, recv, deadline); !s.ok())
        return fail_node_round(endpoint, deadline, node_call, s);

    // Plans over the compact tokens and the directory, for my node.
    const std::size_t directory_bytes =
        static_cast<std::size_t>(std::max(served, 1)) * sizeof(DirectoryEntry);
    auto* plans = static_cast<std::byte*>(
        endpoint.scratch(kScratchRemotePlans, plans_total + align(directory_bytes)));
    if (plans == nullptr)
        return {Code::kRuntime, "the remote plans must find shared memory, got none"};
    auto* directory = reinterpret_cast<DirectoryEntry*>(plans + plans_total);
    std::size_t plan_at = 0;
    int entry = 0;
    SendPlan compact;  // a remote sender's plan over the tokens it sent here
    for (int s = 0; s < world; ++s) {
        const DispatchRecord& rec = *records[static_cast<std::size_t>(s)];
        if (endpoint.node_of(s) == my_node || gateway(endpoint, s, my_node) != me) continue;
        const PackLayout& p = layouts[static_cast<std::size_t>(s)];
        const std::byte* pack = recv_buffer + recv_at[static_cast<std::size_t>(s)];
        EntryMask flags;  // V2: which of the pack's entries are active, as the sender said
        if (p.flags && p.count > 0) {
            flags.kind = EntryMask::kEntries;
            flags.data = reinterpret_cast<const uint8_t*>(pack + p.at_flags);
            flags.stride0 = rec.top_k;
            flags.stride1 = 1;
        }
        build_send_plan(p.count > 0 ? reinterpret_cast<const int32_t*>(pack + p.at_ids) : nullptr,
                        rec.top_k,
                        1,
                        p.count,
                        rec.top_k,
                        rec.num_experts,
                        &compact,
                        flags,
                        topo.special_experts);
        // int32: expert_begin[E+1] | entries[count·K] | V2: active compact rows | compact_of[BS]
        const int64_t active = p.flags ? compact.num_active() : 0;
        auto* arrays = reinterpret_cast<int32_t*>(plans + plan_at);
        int32_t* at = std::copy(compact.expert_begin.begin(), compact.expert_begin.end(), arrays);
        at = std::copy(compact.entries_by_expert.begin(), compact.entries_by_expert.end(), at);
        for (int64_t i = 0; i < active; ++i)
            *at++ = static_cast<int32_t>(compact.active_token_at(i));
        int32_t* compact_of = at;
        std::fill(compact_of, compact_of + rec.num_tokens, -1);
        for (int64_t i = 0; i < p.count; ++i) {
            int32_t t = 0;
            std::memcpy(&t, pack + p.at_tokens + static_cast<std::size_t>(i) * 4, 4);
            if (t >= 0 && t < rec.num_tokens) compact_of[t] = static_cast<int32_t>(i);
        }
        const std::size_t plan_bytes =
            static_cast<std::size_t>(rec.num_experts + 1 + p.count * rec.top_k + active +
                                     rec.num_tokens) *
            4;
        DirectoryEntry& d = directory[entry++];
        d = DirectoryEntry{};
        d.source = s;
        d.count = static_cast<int32_t>(p.count);
        d.active = static_cast<int32_t>(active);
        if (p.total > 0) {
            if (Status st = endpoint.expose(pack, p.total, kScratchRemoteRecv, &d.pack); !st.ok())
                return st;
        }
        if (Status st = endpoint.expose(arrays, plan_bytes, kScratchRemotePlans, &d.plan); !st.ok())
            return st;
        plan_at += align(plan_bytes);
    }

    // The node round: every gateway's directory, for every rank of the node.
    transport::Transport& node = *endpoint.node_group();
    NodeRecord mine_node;
    mine_node.entries = entry;
    if (Status st =
            node.expose(directory, directory_bytes, kScratchRemotePlans, &mine_node.directory);
        !st.ok())
        return st;
    *node_call = node.begin_call();
    node.publish(*node_call, {reinterpret_cast<const std::byte*>(&mine_node), sizeof(mine_node)});
    if (Status st = node.wait_published(*node_call, node_round_deadline(deadline)); !st.ok())
        return st;
    for (int g = 0; g < static_cast<int>(endpoint.node_ranks(my_node).size()); ++g) {
        NodeRecord theirs;  // a node peer whose exchange failed: its reason is the call's
        std::memcpy(&theirs, node.record(g, *node_call), sizeof(theirs));
        if (theirs.code != 0)
            return {Code::kRuntime,
                    "rank " +
                        std::to_string(endpoint.node_ranks(my_node)[static_cast<std::size_t>(g)]) +
                        " of this node must move its rows between nodes, got: " +
                        util::peer_text(theirs.message)};
    }

    // What the node's gateways published comes from other processes: every count, region and
    // plan is checked, and the plans are copied, before any of it is used.
    thread_local std::vector<std::vector<int32_t>> plan_copies;
    thread_local std::vector<std::vector<int32_t>> token_copies;
    plan_copies.resize(static_cast<std::size_t>(world));
    token_copies.resize(static_cast<std::size_t>(world));
    std::vector<DirectoryEntry> entries;
    for (int s = 0; s < world; ++s) {
        if (endpoint.node_of(s) == my_node) continue;
        const DispatchRecord& rec = *records[static_cast<std::size_t>(s)];
        SourceView& v = (*sources)[static_cast<std::size_t>(s)];
        v = SourceView{};
        v.num_tokens = rec.num_tokens;
        const int g = index_in_node(endpoint, gateway(endpoint, s, my_node));
        auto broken = [&](const std::string& why) -> Status {
            return {Code::kRuntime,
                    "the rows of rank " + std::to_string(s) + " must reach this node, got " + why};
        };
        NodeRecord nr;
        std::memcpy(&nr, node.record(g, *node_call), sizeof(nr));
        if (nr.entries < 0 || nr.entries > world ||
            nr.directory.bytes < static_cast<uint64_t>(nr.entries) * sizeof(DirectoryEntry))
            return broken("a gateway directory of " + std::to_string(nr.entries) + " entries");
        const auto* dir = node.map(g, nr.directory);
        entries.resize(static_cast<std::size_t>(nr.entries));
        if (dir != nullptr && nr.entries > 0)
            std::memcpy(entries.data(), dir, entries.size() * sizeof(DirectoryEntry));
        const DirectoryEntry* found = nullptr;
        for (const DirectoryEntry& e : entries)
            if (e.source == s) found = &e;
        if (found == nullptr) return broken("no directory entry");
        if (found->count != rec.tokens_to_node[my_node])
            return broken("a directory entry of " + std::to_string(found->count) + " tokens, not " +
                          std::to_string(rec.tokens_to_node[my_node]));
        const PackLayout p = pack_layout(rec, found->count, op.hidden, topo.v2);
        if (found->active < 0 || found->active > found->count || (!topo.v2 && found->active != 0))
            return broken("a directory entry of " + std::to_string(found->active) +
                          " active tokens");
        const int64_t active = found->active;
        const std::size_t plan_entries = static_cast<std::size_t>(
            rec.num_experts + 1 + p.count * rec.top_k + active + rec.num_tokens);
        if (found->plan.bytes != plan_entries * 4 || (p.total > 0 && found->pack.bytes < p.total))
            return broken("a plan or pack of another size");
        const auto* arrays = reinterpret_cast<const int32_t*>(node.map(g, found->plan));
        const std::byte* pack = found->count > 0 ? node.map(g, found->pack) : nullptr;
        if (arrays == nullptr || (found->count > 0 && pack == nullptr))
            return {Code::kRuntime,
                    "the rows of rank " + std::to_string(s) + " must be mappable on this node"};
        auto& copy = plan_copies[static_cast<std::size_t>(s)];
        copy.assign(arrays, arrays + plan_entries);
        if (std::string why = check_plan_arrays(
                copy.data(), rec.num_experts, p.count, rec.top_k, active, topo.v2);
            !why.empty())
            return broken(why);
        const int32_t* plan_entries_at = copy.data() + rec.num_experts + 1;
        const int32_t* compact_of = plan_entries_at + p.count * rec.top_k + active;
        // token_of inverts compact_of: every compact row names exactly one token.
        auto& token_of = token_copies[static_cast<std::size_t>(s)];
        token_of.assign(static_cast<std::size_t>(p.count), -1);
        int64_t mapped = 0;
        for (int64_t t = 0; t < rec.num_tokens; ++t) {
            const int32_t row = compact_of[t];
            if (row < -1 || row >= p.count ||
                (row >= 0 && token_of[static_cast<std::size_t>(row)] >= 0))
                return broken("a token map entry of " + std::to_string(row));
            if (row >= 0) {
                token_of[static_cast<std::size_t>(row)] = static_cast<int32_t>(t);
                ++mapped;
            }
        }
        if (mapped != p.count) return broken("a token map of " + std::to_string(mapped) + " rows");
        v.plan = PlanView{copy.data(),
                          plan_entries_at,
                          topo.v2 ? plan_entries_at + p.count * rec.top_k : nullptr,
                          topo.v2 ? active : p.count,
                          p.count,
                          rec.top_k,
                          rec.num_experts};
        v.compact_of = compact_of;
        v.token_of = token_of.data();
        // Every rank of this node must find all its rows: what the sender counted for it.
        for (int d : endpoint.node_ranks(my_node)) {
            const int64_t got = rows_to_rank(topo, d, s, rec.num_tokens, v.plan);
            if (got != rec.rows_to[d])
                return broken(std::to_string(got) + " rows for rank " + std::to_string(d) +
                              ", not " + std::to_string(rec.rows_to[d]));
        }
        if (!topo.v2 && topo.shared_rank_num > 0 && !topo.is_shared(s)) {  // V1 shared chunks here
            for (int64_t sr = 0; sr < topo.shared_rank_num; ++sr) {
                if (endpoint.node_of(static_cast<int>(sr)) != my_node) continue;
                const TokenRange chunk = shared_chunk(s, rec.num_tokens, topo.shared_rank_num, sr);
                for (int64_t t = chunk.lo; t < chunk.hi; ++t)
                    if (compact_of[t] < 0) return broken("no row for token " + std::to_string(t));
            }
        }
        auto* base = const_cast<std::byte*>(pack);
        const DType row_dtype = p.staged ? rec.staged_rows.dtype : rec.x.dtype;
        const TensorView rows = TensorView::contiguous(
            base == nullptr ? nullptr : base + p.at_rows, row_dtype, {p.count, op.hidden});
        if (p.staged) {
            v.staged_rows = rows;
            if (p.staged_scales) {
                const DType sd = rec.staged_scales.dtype;
                v.staged_scales =
                    rec.staged_scales.ndim == 2
                        ? TensorView::contiguous(
                              base + p.at_staged_scales, sd, {p.count, rec.staged_scales.shape[1]})
                        : TensorView::contiguous(base + p.at_staged_scales, sd, {p.count});
            }
        } else {
            v.row.x = rows;
        }
        if (p.token_scales)
            v.row.scales =
                TensorView::contiguous(base + p.at_token_scales, DType::kFloat32, {p.count});
        if (p.scales) {
            v.row.scales = rec.scales.ndim == 2
                               ? TensorView::contiguous(base + p.at_scales,
                                                        DType::kFloat32,
                                                        {rec.scales.shape[0], rec.scales.shape[1]})
                               : TensorView::contiguous(
                                     base + p.at_scales, DType::kFloat32, {rec.scales.shape[0]});
        }
        if (p.weights)
            v.expert_scales =
                TensorView::contiguous(base + p.at_weights, DType::kFloat32, {p.count, rec.top_k});
    }
    return Status::Ok();
}

Status bring_remote_rows(const CombineOp& op,
                         const Topology& topo,
                         const SendPlan& plan,
                         transport::Transport& endpoint,
                         std::vector<OwnerView>* owners,
                         std::vector<int32_t>* fake_counts) {
    const int world = endpoint.size();
    const int me = endpoint.rank();
    const int my_node = endpoint.node_of(me);
    const auto row_bytes = static_cast<std::size_t>(op.hidden) * dtype_size(op.in.expand_x.dtype);
    const int64_t bs = op.num_tokens;
    auto remote = [&](int r) { return endpoint.node_of(r) != my_node; };
    // One span per peer: n rows, then (V2) their n triples at a 4-byte boundary.
    const bool triples = topo.v2;
    auto span_bytes = [&](std::size_t n) {
        return triples ? (n * row_bytes + 3) / 4 * 4 + n * 12 : n * row_bytes;
    };

    // What I send: the rows I hold for each remote source, block by block.
    const int64_t my_blocks = topo.local_experts(me);
    std::vector<std::size_t> send_rows(static_cast<std::size_t>(world), 0);
    std::size_t send_total = 0;
    auto counts_through = [&](int64_t b) -> int64_t {
        return load1<int32_t>(op.in.ep_send_counts, b);
    };
    auto block_rows = [&](int64_t b, int64_t* begin) {
        const int64_t before = packed_begin_of(b, counts_through);
        *begin = op.config.expert_padded()
                     ? padded_block_begin(b,
                                          world,
                                          op.config.max_bs(bs),
                                          before,
                                          packed_begin_of(b / world * world, counts_through))
                     : before;
        return counts_through(b) - before;
    };
    for (int s = 0; s < world; ++s) {
        if (!remote(s)) continue;
        for (int64_t le = 0; le < my_blocks; ++le) {
            int64_t begin = 0;
            send_rows[static_cast<std::size_t>(s)] +=
                static_cast<std::size_t>(std::max<int64_t>(block_rows(le * world + s, &begin), 0));
        }
        send_total += span_bytes(send_rows[static_cast<std::size_t>(s)]);
    }
    // What I receive: my rows on each remote expert rank, counted from my own ids.
    std::vector<std::vector<int64_t>> counts(static_cast<std::size_t>(world));
    std::size_t recv_total = 0;
    for (int d = 0; d < world; ++d)
        if (remote(d))
            counts[static_cast<std::size_t>(d)].assign(
                static_cast<std::size_t>(topo.local_experts(d)), 0);
    for (int d = 0; d < world; ++d) {
        if (!remote(d)) continue;
        auto& c = counts[static_cast<std::size_t>(d)];
        if (topo.is_shared(d)) {
            c[0] = shared_tokens(topo, d, me, bs, plan).size();
            continue;
        }
        for (int64_t le = 0; le < topo.local_moe_experts; ++le)
            c[static_cast<std::size_t>(le)] = plan.rows_for_expert(topo.first_expert(d) + le);
    }
    std::vector<std::size_t> recv_at(static_cast<std::size_t>(world), 0);
    std::vector<int64_t> recv_rows(static_cast<std::size_t>(world), 0);
    for (int d = 0; d < world; ++d) {
        for (int64_t c : counts[static_cast<std::size_t>(d)])
            recv_rows[static_cast<std::size_t>(d)] += c;
        recv_at[static_cast<std::size_t>(d)] = recv_total;
        recv_total += span_bytes(static_cast<std::size_t>(recv_rows[static_cast<std::size_t>(d)]));
    }
    auto* send_buffer = static_cast<std::byte*>(endpoint.scratch(kScratchRemoteSend, send_total));
    auto* recv_buffer = static_cast<std::byte*>(endpoint.scratch(kScratchRemoteRecv, recv_total));
    if (send_buffer == nullptr || recv_buffer == nullptr)
        return {Code::kRuntime, "the rows between nodes must find memory, got none"};
    std::vector<std::span<const std::byte>> send(static_cast<std::size_t>(world));
    std::vector<std::span<std::byte>> recv(static_cast<std::size_t>(world));
    std::size_t at = 0;
    for (int s = 0; s < world; ++s) {
        if (!remote(s) || send_rows[static_cast<std::size_t>(s)] == 0) continue;
        std::byte* out = send_buffer + at;
        const std::size_t n_rows = send_rows[static_cast<std::size_t>(s)];
        auto* triple = reinterpret_cast<int32_t*>(out + (n_rows * row_bytes + 3) / 4 * 4);
        std::size_t written = 0;
        for (int64_t le = 0; le < my_blocks; ++le) {
            int64_t begin = 0;
            const int64_t n = block_rows(le * world + s, &begin);
            for (int64_t r = 0; r < n; ++r, written += row_bytes) {
                copy_row_out(op.in.expand_x, begin + r, out + written, op.hidden);
                if (!triples) continue;
                for (int64_t j = 0; j < 3; ++j)
                    *triple++ = load1<int32_t>(*op.in.assist_info, 3 * (begin + r) + j);
            }
        }
        send[static_cast<std::size_t>(s)] = {out, span_bytes(n_rows)};
        at += span_bytes(n_rows);
    }
    for (int d = 0; d < world; ++d) {
        const std::size_t bytes =
            span_bytes(static_cast<std::size_t>(recv_rows[static_cast<std::size_t>(d)]));
        if (bytes > 0)
            recv[static_cast<std::size_t>(d)] = {recv_buffer + recv_at[static_cast<std::size_t>(d)],
                                                 bytes};
    }
    traffic.combine_rows = 0;
    for (std::size_t r : send_rows) traffic.combine_rows += static_cast<int64_t>(r);
    traffic.combine_bytes = traffic.combine_rows * static_cast<int64_t>(row_bytes);
    if (Status s = endpoint.exchange(send, recv, transport::call_deadline()); !s.ok()) return s;

    // Each remote owner as an OwnerView: its rows for me, and counts whose block for me holds them
    // (every other block empty), so expandIdx finds them where it points.
    fake_counts->assign(static_cast<std::size_t>(world) * static_cast<std::size_t>(world) *
                            static_cast<std::size_t>(std::max<int64_t>(topo.local_moe_experts, 1)),
                        0);
    std::size_t fake_at = 0;
    for (int d = 0; d < world; ++d) {
        if (!remote(d)) continue;
        const int64_t blocks = topo.local_experts(d) * world;
        int32_t* c = fake_counts->data() + fake_at;
        int64_t running = 0;
        for (int64_t le = 0; le < topo.local_experts(d); ++le) {
            for (int64_t src = 0; src < world; ++src) {
                if (src == me)
                    running += counts[static_cast<std::size_t>(d)][static_cast<std::size_t>(le)];
                c[le * world + src] = static_cast<int32_t>(running);
            }
        }
        OwnerView& v = (*owners)[static_cast<std::size_t>(d)];
        v = OwnerView{};
        v.expand_x = TensorView::contiguous(recv_buffer + recv_at[static_cast<std::size_t>(d)],
                                            op.in.expand_x.dtype,
                                            {std::max<int64_t>(running, 1), op.hidden});
        v.expand_x.shape[0] = running;
        if (running == 0) v.expand_x.data = recv_buffer;  // never read: no rows name it
        v.ep_send_counts = TensorView::contiguous(c, DType::kInt32, {blocks});
        if (triples) {
            const auto rows = static_cast<std::size_t>(running);
            v.assist = TensorView::contiguous(
                recv_buffer + recv_at[static_cast<std::size_t>(d)] + (rows * row_bytes + 3) / 4 * 4,
                DType::kInt32,
                {3 * running});
        }
        fake_at += static_cast<std::size_t>(blocks);
    }
    return Status::Ok();
}

}  // namespace moedist::core
