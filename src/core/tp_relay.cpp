#include "core/tp_relay.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "core/records.hpp"
#include "core/scratch.hpp"
#include "core/shapes.hpp"
#include "core/tensor_access.hpp"
#include "core/validate_util.hpp"
#include "quant/row_kernels.hpp"

namespace moedist::core {
namespace {

std::string text(int64_t v) { return std::to_string(v); }

// `view` cut to its first `rows` rows (or elements, 1-D).
TensorView first_rows(TensorView view, int64_t rows) {
    view.shape[0] = rows;
    return view;
}

// Copies rows (1-D: elements) [0, n) of `from` to rows [at, at + n) of `to`; same dtype, and for
// 2-D the same columns.
void copy_rows(const TensorView& from, const TensorView& to, int64_t at, int64_t n) {
    const auto elem = dtype_size(to.dtype);
    if (to.ndim == 1) {
        for (int64_t i = 0; i < n; ++i)
            std::memcpy(element_ptr(to, at + i), element_ptr(from, i), elem);
        return;
    }
    const int64_t cols = to.dim(1);
    for (int64_t i = 0; i < n; ++i) {
        if (from.stride(1) == 1 && to.stride(1) == 1) {
            std::memcpy(element_ptr(to, at + i, 0),
                        element_ptr(from, i, 0),
                        static_cast<std::size_t>(cols) * elem);
            continue;
        }
        for (int64_t c = 0; c < cols; ++c)
            std::memcpy(element_ptr(to, at + i, c), element_ptr(from, i, c), elem);
    }
}

// The peer's tensor `ref`, checked to hold `rows` rows shaped like `like` and mapped; `what`
// names it in errors.
Status peer_view(const PeerTensors& tensors,
                 const TensorRef& ref,
                 const TensorView& like,
                 int64_t rows,
                 const char* what,
                 TensorView* out) {
    const std::string name = std::string("the TP peer's ") + what;
    if (std::string why = check_tensor_ref(ref, like.ndim, like.dtype, name.c_str()); !why.empty())
        return {Code::kRuntime, why};
    if (ref.shape[0] < rows || (like.ndim == 2 && ref.shape[1] != like.dim(1)))
        return {Code::kRuntime,
                name + " must have " + text(rows) + " rows" +
                    (like.ndim == 2 ? " of " + text(like.dim(1)) + " columns" : "") + ", got " +
                    text(ref.shape[0]) + (like.ndim == 2 ? " x " + text(ref.shape[1]) : "")};
    *out = tensors(ref);
    if (rows > 0 && out->data == nullptr)
        return {Code::kRuntime, name + " must be readable by this rank, got memory it cannot map"};
    return Status::Ok();
}

// The peer's tensors through the TP group; a peer that is gone is named as such.
PeerTensors tensors_of(transport::Transport& tp) {
    return [&tp](const TensorRef& ref) { return view_of(tp, 1 - tp.rank(), ref); };
}

Status named_if_gone(Status s, transport::Transport& tp) {
    if (s.ok()) return s;
    if (std::string why = tp.gone(1 - tp.rank(), true); !why.empty()) return {Code::kRuntime, why};
    return s;
}

// What a dispatch relays: my own rows and my counts' own blocks.
Status describe_dispatch(const DispatchOp& op,
                         transport::Transport& tp,
                         int64_t own_rows,
                         int64_t blocks,
                         TpRelayRecord* mine) {
    mine->rows = own_rows;
    if (Status s = publish_tensor(
            tp, first_rows(op.out.expand_x, own_rows), kScratchStageX, &mine->rows_x);
        !s.ok())
        return s;
    if (op.format.makes_scales() && op.out.dynamic_scales) {
        if (Status s = publish_tensor(
                tp, first_rows(*op.out.dynamic_scales, own_rows), kScratchStageAux, &mine->scales);
            !s.ok())
            return s;
    }
    if (op.out.expand_extra) {
        if (Status s = publish_tensor(
                tp, first_rows(*op.out.expand_extra, own_rows), kScratchStageAux2, &mine->extra);
            !s.ok())
            return s;
    }
    return publish_tensor(
        tp, first_rows(op.out.ep_recv_counts, blocks), kScratchStageAux3, &mine->counts);
}

}  // namespace

Status take_peer_rows(const DispatchOp& op,
                      int64_t own_rows,
                      const TpRelayRecord& peer,
                      const PeerTensors& tensors,
                      int64_t* peer_rows) {
    *peer_rows = 0;
    const int64_t rank = op.config.ep_rank_id;
    const int64_t blocks = op.config.ep_world_size * op.config.local_expert_num();
    const int64_t n = peer.rows;
    const __int128 capacity =
        capacity_rows_of(op.config, rank, op.config.max_bs(op.num_tokens), op.top_k);
    if (n < 0 || n > capacity || own_rows + n > op.out.expand_x.dim(0))
        return {
            Code::kRuntime,
            "the TP peer's rows must number at most A = " + text(static_cast<int64_t>(capacity)) +
                " and fit expandX after this rank's " + text(own_rows) +
                " (dim 0 = " + text(op.out.expand_x.dim(0)) + "), got " + text(n)};
    TensorView rows_x, scales, extra, counts;
    MOEDIST_TRY(peer_view(tensors, peer.rows_x, op.out.expand_x, n, "expandX rows", &rows_x));
    const bool with_scales = op.format.makes_scales() && op.out.dynamic_scales;
    if (with_scales)
        MOEDIST_TRY(
            peer_view(tensors, peer.scales, *op.out.dynamic_scales, n, "dynamicScales", &scales));
    if (op.out.expand_extra)
        MOEDIST_TRY(peer_view(tensors, peer.extra, *op.out.expand_extra, n, "extra rows", &extra));
    MOEDIST_TRY(peer_view(tensors,
                          peer.counts,
                          first_rows(op.out.ep_recv_counts, blocks),
                          blocks,
                          "epRecvCounts",
                          &counts));
    // The counts are copied before they are checked: the peer cannot change them after.
    std::vector<int32_t> running(static_cast<std::size_t>(blocks));
    for (int64_t i = 0; i < blocks; ++i)
        running[static_cast<std::size_t>(i)] = load1<int32_t>(counts, i);
    for (int64_t i = 0; i < blocks; ++i) {
        const int32_t before = i == 0 ? 0 : running[static_cast<std::size_t>(i - 1)];
        if (running[static_cast<std::size_t>(i)] < before)
            return {Code::kRuntime,
                    "the TP peer's epRecvCounts must be a running total, got " +
                        text(running[static_cast<std::size_t>(i)]) + " after " + text(before) +
                        " at entry " + text(i)};
    }
    if (blocks > 0 && running.back() != n)
        return {Code::kRuntime,
                "the TP peer's epRecvCounts must end at its " + text(n) + " rows, got " +
                    text(running.back())};
    copy_rows(rows_x, op.out.expand_x, own_rows, n);
    if (with_scales) copy_rows(scales, *op.out.dynamic_scales, own_rows, n);
    if (op.out.expand_extra) copy_rows(extra, *op.out.expand_extra, own_rows, n);
    for (int64_t i = 0; i < blocks; ++i)
        store1<int32_t>(op.out.ep_recv_counts, blocks + i, running[static_cast<std::size_t>(i)]);
    store1<int32_t>(*op.out.tp_recv_counts, op.config.tp_rank_id, static_cast<int32_t>(own_rows));
    store1<int32_t>(*op.out.tp_recv_counts, 1 - op.config.tp_rank_id, static_cast<int32_t>(n));
    store1<int64_t>(op.out.expert_token_nums, 0, own_rows + n);  // T == 2: L == 1
    *peer_rows = n;
    return Status::Ok();
}

Status relay_dispatch_rows(const DispatchOp& op,
                           CallRounds& rounds,
                           const Status& verdict,
                           int64_t own_rows,
                           int64_t* peer_rows) {
    *peer_rows = 0;
    const int64_t blocks = op.config.ep_world_size * op.config.local_expert_num();
    TpRelayRecord mine;
    Status outcome = verdict;
    if (outcome.ok()) outcome = describe_dispatch(op, rounds.tp_memory(), own_rows, blocks, &mine);
    return rounds.relay_round(
        outcome, &mine, [&](const TpRelayRecord& peer, transport::Transport& tp) {
            return named_if_gone(take_peer_rows(op, own_rows, peer, tensors_of(tp), peer_rows), tp);
        });
}

Status relay_combine_partials(const CombineOp& op,
                              CallRounds& rounds,
                              const Status& verdict,
                              TensorView* summed) {
    const TensorView& x = op.in.expand_x;
    const int64_t hidden = op.hidden;
    // (A failed first phase may have left tpSendCounts out: nothing is read then.)
    const bool counted = verdict.ok() && op.in.tp_send_counts.has_value();
    const int64_t own = counted ? load1<int32_t>(*op.in.tp_send_counts, op.config.tp_rank_id) : 0;
    const int64_t held =
        counted ? load1<int32_t>(*op.in.tp_send_counts, 1 - op.config.tp_rank_id) : 0;
    TpRelayRecord mine;
    Status outcome = verdict;
    if (outcome.ok() && !counted)
        outcome = {Code::kNullptr, "tpSendCounts must be given when tpWorldSize = 2, got none"};
    if (outcome.ok() && (own < 0 || held < 0 || own + held > x.dim(0)))
        outcome = {Code::kRuntime,
                   "tpSendCounts must name rows inside expandX (dim 0 = " + text(x.dim(0)) +
                       "), got " + text(own) + " own and " + text(held) + " of the peer's"};
    if (outcome.ok()) {  // the partials I hold of the peer's rows: [own, own + held)
        TensorView partials = first_rows(x, held);
        partials.data = held > 0 ? element_ptr(x, own, 0) : x.data;
        mine.rows = held;
        outcome = publish_tensor(rounds.tp_memory(), partials, kScratchStageX, &mine.rows_x);
    }
    return rounds.relay_round(
        outcome, &mine, [&](const TpRelayRecord& peer, transport::Transport& tp) -> Status {
            if (peer.rows != own)
                return {Code::kRuntime,
                        "the TP peer must hold partials of this rank's " + text(own) +
                            " rows (tpSendCounts), got " + text(peer.rows)};
            TensorView partials;
            MOEDIST_TRY(named_if_gone(
                peer_view(tensors_of(tp), peer.rows_x, x, own, "partial rows", &partials), tp));
            const std::size_t row_bytes = static_cast<std::size_t>(hidden) * dtype_size(x.dtype);
            void* out = rounds.endpoint().scratch(
                kScratchStaged,
                std::max<std::size_t>(row_bytes * static_cast<std::size_t>(own), 1));
            if (out == nullptr)
                return {Code::kRuntime,
                        "the TP-reduced rows must find exposable scratch memory, got none"};
            *summed = TensorView::contiguous(out, x.dtype, {own, hidden});
            std::vector<float> row(static_cast<std::size_t>(hidden));
            std::vector<float> other(static_cast<std::size_t>(hidden));
            for (int64_t i = 0; i < own; ++i) {
                quant::load_row_f32(x.dtype, element_ptr(x, i, 0), x.stride(1), row.data(), hidden);
                quant::load_row_f32(
                    x.dtype, element_ptr(partials, i, 0), partials.stride(1), other.data(), hidden);
                quant::add_round_row(x.dtype, row.data(), other.data(), hidden);
                quant::store_row_f32(x.dtype, row.data(), element_ptr(*summed, i, 0), 1, hidden);
            }
            return Status::Ok();
        });
}

}  // namespace moedist::core
