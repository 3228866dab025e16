// Dispatch, second phase: plan → exchange round → single copy → completion round.
//
// expandX of a MoE rank with L local experts (receiver's view), T == 2:
//
//   row 0 ┌──────────────────────────────┐
//         │ e=0: src 0 rows, in src 0's flattened (token,k) order
//         │      src 1 rows …  src W−1 rows
//         │ e=1: src 0 … src W−1      (block e·W+src ends at epRecvCounts[e·W+src])
//         │ …
//   own   ├──────────────────────────────┤
//         │ the TP peer's own rows, in the peer's order (its epRecvCounts verbatim after mine)
//   own+peer ├───────────────────────────┤
//         │ tail up to dim 0: untouched (zero bytes with zero padding)
//         └──────────────────────────────┘
//
// A shared rank has L = 1 and its blocks are by source: its own tokens first (src = itself,
// since no other shared rank sends to it), then each MoE rank's chunk in token order.
//
// Every row is written once, by the receiver, straight from the sender's x (quantized on the
// way when the mode asks); the TP peer block is filled the same way from the peer's EP group.
#include <algorithm>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "core/call_rounds.hpp"
#include "core/ops.hpp"
#include "core/plan.hpp"
#include "core/records.hpp"
#include "core/tensor_access.hpp"
#include "quant/dispatch_quant.hpp"
#include "quant/fused_rows.hpp"
#include "quant/row_kernels.hpp"
#include "util/env.hpp"
#include "util/float_env.hpp"
#include "util/memory_ops.hpp"

namespace moedist::core {
namespace {

struct Scratch {
    SendPlan plan;
    ReceiveLayout own_layout;
    ReceiveLayout peer_layout;
    std::vector<float> row;
    std::vector<uint8_t> bytes;  // a quantized row, when expandX's columns are strided
};

// Per rank thread; reused across calls, so a steady shape allocates nothing after its first call.
Scratch& scratch() {
    thread_local Scratch instance;
    return instance;
}

Topology topology_of(const MoeConfig& config) {
    return {config.ep_world_size,
            config.shared_expert_rank_num,
            config.moe_expert_num,
            config.local_moe_expert_num()};
}

int64_t capacity_of(const MoeConfig& config, int64_t rank, int64_t max_bs, int64_t top_k) {
    MoeConfig at = config;
    at.ep_rank_id = rank;
    return at.capacity_rows(max_bs, top_k);
}

template <class Records>
void build_layout(const Topology& topo,
                  int64_t dst,
                  const Records& records,
                  ReceiveLayout* layout) {
    build_receive_layout(
        topo.world_size,
        topo.local_experts(dst),
        [&](int64_t src, int64_t le) {
            const DispatchRecord& r = records(src);
            return rows_from(topo, dst, src, le, r.num_tokens, *r.plan);
        },
        layout);
}

// Run-time checks over one EP group's records: ids in range, BS agreement when globalBs = 0,
// no receiver over its capacity A. Identical on every rank that looks at the same records.
template <class Records>
Status check_group(const DispatchOp& op,
                   const Topology& topo,
                   const Records& records,
                   int64_t group_bs,
                   const std::string& group_name) {
    const int64_t world = topo.world_size;
    for (int64_t r = 0; r < world; ++r) {
        const DispatchRecord& rec = records(r);
        if (rec.plan->has_bad_id) {
            return {Code::kRuntime,
                    "expertIds[" + std::to_string(rec.plan->bad_token) + "][" +
                        std::to_string(rec.plan->bad_k) + "] on rank " + std::to_string(r) +
                        " of '" + group_name + "' must be in [0, " +
                        std::to_string(topo.moe_expert_num) + "), got " +
                        std::to_string(rec.plan->bad_id)};
        }
        if (op.config.global_bs == 0 && rec.num_tokens != group_bs) {
            return {Code::kRuntime,
                    "BS must be equal on every rank when globalBs = 0, got " +
                        std::to_string(group_bs) + " and " + std::to_string(rec.num_tokens) +
                        " on rank " + std::to_string(r) + " of '" + group_name + "'"};
        }
    }
    const int64_t max_bs = op.config.global_bs == 0 ? group_bs : op.config.global_bs / world;
    for (int64_t dst = 0; dst < world; ++dst) {
        int64_t total = 0;
        for (int64_t src = 0; src < world; ++src) {
            const DispatchRecord& rec = records(src);
            for (int64_t le = 0; le < topo.local_experts(dst); ++le) {
                total += rows_from(topo, dst, src, le, rec.num_tokens, *rec.plan);
            }
        }
        const int64_t capacity = capacity_of(op.config, dst, max_bs, op.top_k);
        if (total > capacity) {
            return {Code::kRuntime,
                    "rows received by rank " + std::to_string(dst) + " of '" + group_name +
                        "' must be at most A = " + std::to_string(capacity) + ", got " +
                        std::to_string(total)};
        }
    }
    return Status::Ok();
}

class RowFiller {
public:
    // `streaming`: the call writes more than the caches hold, so rows go out with streaming
    // stores.
    RowFiller(const DispatchOp& op,
              const Topology& topo,
              std::vector<float>* row,
              std::vector<uint8_t>* bytes,
              bool streaming)
        : op_(op), topo_(topo), row_(row), bytes_(bytes), streaming_(streaming) {
        row_->resize(static_cast<std::size_t>(op.hidden));
        write_expand_scales_ = op.out.expand_scales.has_value() && op.in.expert_scales.has_value();
    }

    // Fills the rows this rank (EP rank `dst`) receives in one EP group, starting at `row_base`.
    template <class Records>
    void fill(const Records& records, const ReceiveLayout& layout, int64_t row_base, bool own) {
        const int64_t world = topo_.world_size;
        const int64_t dst = op_.config.ep_rank_id;
        for (int64_t le = 0; le < topo_.local_experts(dst); ++le) {
            for (int64_t src = 0; src < world; ++src) {
                const DispatchRecord& rec = records(src);
                int64_t row = row_base + layout.block_begin(le * world + src);
                if (topo_.is_shared(dst)) {
                    TokenRange tokens{0, 0};
                    if (src == dst) {
                        tokens = {0, rec.num_tokens};
                    } else if (!topo_.is_shared(src)) {
                        tokens = shared_chunk(src, rec.num_tokens, topo_.shared_rank_num, dst);
                    }
                    for (int64_t t = tokens.lo; t < tokens.hi; ++t, ++row) {
                        copy_row(rec, t, row, /*scale_row=*/0);
                        if (own && write_expand_scales_)
                            store1<float>(*op_.out.expand_scales, row, 1.0f);
                    }
                    continue;
                }
                const int64_t expert = topo_.first_expert(dst) + le;
                const SendPlan& plan = *rec.plan;
                const int64_t scale_row = expert + (topo_.shared_rank_num > 0 ? 1 : 0);
                for (int64_t i = plan.expert_begin[static_cast<std::size_t>(expert)];
                     i < plan.expert_begin[static_cast<std::size_t>(expert + 1)];
                     ++i, ++row) {
                    const int64_t flat = plan.entries_by_expert[static_cast<std::size_t>(i)];
                    const int64_t token = flat / plan.top_k;
                    copy_row(rec, token, row, scale_row);
                    if (own && write_expand_scales_) {
                        const float weight =
                            load2<float>(rec.expert_scales, token, flat % plan.top_k);
                        store1<float>(*op_.out.expand_scales, row, weight);
                    }
                }
            }
        }
    }

private:
    // The fused AVX-512 paths (quant/fused_rows.hpp) for contiguous rows: static int8 and the
    // fp8 targets of modes 2, 3 and 4. False when the row must take the generic path.
    bool copy_row_fused(const DispatchRecord& src,
                        int64_t token,
                        int64_t dst_row,
                        int64_t scale_row) {
        const TensorView& out = op_.out.expand_x;
        const TensorView& scales = src.scales;
        const int64_t mode = op_.config.quant_mode;
        const int64_t hidden = op_.hidden;
        const bool fp8 = out.dtype == DType::kFp8E4M3 || out.dtype == DType::kFp8E5M2;
        if (!quant::fused_available() || src.x.stride(1) != 1 || out.stride(1) != 1) return false;
        const auto* x = reinterpret_cast<const uint16_t*>(element_ptr(src.x, token, 0));
        uint8_t* q = reinterpret_cast<uint8_t*>(element_ptr(out, dst_row, 0));
        if (mode == 1 && out.dtype == DType::kInt8) {
            const bool per_expert = scales.ndim == 2;
            const int64_t stride =
                per_expert ? scales.stride(1) : (scales.dim(0) == 1 ? 0 : scales.stride(0));
            if (stride > 1) return false;
            const auto* s = reinterpret_cast<const float*>(
                per_expert ? element_ptr(scales, scale_row, 0) : element_ptr(scales, 0));
            quant::fused_static_int8(
                src.x.dtype, x, s, stride, hidden, reinterpret_cast<int8_t*>(q));
            return true;
        }
        if (!fp8 || mode < 2) return false;
        const TensorView& dyn = *op_.out.dynamic_scales;
        if (mode == 4) {
            const int64_t blocks = (hidden + 31) / 32;
            auto* row_bytes = reinterpret_cast<uint8_t*>(element_ptr(dyn, dst_row, 0));
            const bool direct = dyn.stride(1) == 1;  // the E8M0 bytes straight into the row
            uint8_t* bytes = direct ? row_bytes : bytes_->data();
            quant::fused_fp8_mx(src.x.dtype, x, out.dtype, hidden, q, bytes, streaming_);
            if (!direct) {
                for (int64_t b = 0; b < blocks; ++b) {
                    *reinterpret_cast<uint8_t*>(element_ptr(dyn, dst_row, b)) = bytes[b];
                }
            }
            if (blocks % 2 == 1) *reinterpret_cast<uint8_t*>(element_ptr(dyn, dst_row, blocks)) = 0;
            return true;
        }
        const float* smooth = nullptr;
        if (scales.data != nullptr) {
            if (scales.stride(1) != 1) return false;
            smooth = reinterpret_cast<const float*>(element_ptr(scales, scale_row, 0));
        }
        // Per-group scales go straight into a contiguous dynamicScales row.
        const bool direct = mode == 3 && dyn.stride(1) == 1;
        float* block_scales =
            direct ? reinterpret_cast<float*>(element_ptr(dyn, dst_row, 0)) : row_->data();
        const int64_t block = mode == 2 ? hidden : 128;
        quant::fused_fp8_dynamic(
            src.x.dtype, x, smooth, out.dtype, hidden, block, q, block_scales, streaming_);
        if (mode == 2) {
            store1<float>(dyn, dst_row, block_scales[0]);
        } else if (!direct) {
            for (int64_t g = 0; g * 128 < hidden; ++g) {
                std::memcpy(element_ptr(dyn, dst_row, g), &block_scales[g], sizeof(float));
            }
        }
        return true;
    }

    // One row from the sender's x into expandX, converted as quantMode says (SPEC §5).
    // `scale_row` is the row of a per-expert scales tensor: e + (S > 0) for MoE expert e, 0 for
    // the shared expert.
    void copy_row(const DispatchRecord& src, int64_t token, int64_t dst_row, int64_t scale_row) {
        const TensorView& out = op_.out.expand_x;
        const int64_t hidden = op_.hidden;
        const int64_t mode = op_.config.quant_mode;
        if (mode == 0) {  // a bit copy; a pre-quantized x carries its token's scale along
            const auto elem = dtype_size(out.dtype);
            if (src.x.stride(1) == 1 && out.stride(1) == 1) {
                util::copy_bytes(element_ptr(out, dst_row, 0),
                                 element_ptr(src.x, token, 0),
                                 static_cast<std::size_t>(hidden) * elem,
                                 streaming_);
            } else {
                for (int64_t c = 0; c < hidden; ++c) {
                    std::memcpy(element_ptr(out, dst_row, c), element_ptr(src.x, token, c), elem);
                }
            }
            if (elem == 1)
                store1<float>(*op_.out.dynamic_scales, dst_row, load1<float>(src.scales, token));
            return;
        }
        float* row = row_->data();
        if (mode == 2 && out.dtype == DType::kInt8) {  // the fused fast path
            const float* smooth = nullptr;
            int64_t smooth_stride = 1;
            if (src.scales.data != nullptr) {
                smooth = reinterpret_cast<const float*>(element_ptr(src.scales, scale_row, 0));
                smooth_stride = src.scales.stride(1);
            }
            const float scale = quant::quantize_row_int8_from(
                src.x.dtype,
                element_ptr(src.x, token, 0),
                src.x.stride(1),
                smooth,
                smooth_stride,
                row,
                reinterpret_cast<int8_t*>(element_ptr(out, dst_row, 0)),
                out.stride(1),
                hidden,
                streaming_);
            store1<float>(*op_.out.dynamic_scales, dst_row, scale);
            return;
        }
        if (copy_row_fused(src, token, dst_row, scale_row)) return;
        quant::load_row_f32(
            src.x.dtype, element_ptr(src.x, token, 0), src.x.stride(1), row, hidden);
        const bool direct = out.stride(1) == 1;
        uint8_t* q =
            direct ? reinterpret_cast<uint8_t*>(element_ptr(out, dst_row, 0)) : bytes_->data();
        const TensorView& scales = src.scales;
        if (mode == 1) {  // static: (1,), (H,) or (E[+1], H)
            const bool per_expert = scales.ndim == 2;
            const auto* s = reinterpret_cast<const float*>(
                per_expert ? element_ptr(scales, scale_row, 0) : element_ptr(scales, 0));
            const int64_t stride =
                per_expert ? scales.stride(1) : (scales.dim(0) == 1 ? 0 : scales.stride(0));
            quant::quantize_static(out.dtype, row, s, stride, q, hidden);
        } else if (mode == 2 || mode == 3) {  // dynamic per token / per group of 128
            if (scales.data != nullptr) {
                const auto* smooth =
                    reinterpret_cast<const float*>(element_ptr(scales, scale_row, 0));
                for (int64_t i = 0; i < hidden; ++i) row[i] = row[i] * smooth[i * scales.stride(1)];
            }
            const TensorView& dyn = *op_.out.dynamic_scales;
            if (mode == 2) {
                store1<float>(dyn, dst_row, quant::quantize_dynamic(out.dtype, row, q, hidden));
            } else {
                for (int64_t g = 0; g * 128 < hidden; ++g) {
                    const int64_t n = std::min<int64_t>(128, hidden - g * 128);
                    const float scale =
                        quant::quantize_dynamic(out.dtype, row + g * 128, q + g * 128, n);
                    std::memcpy(element_ptr(dyn, dst_row, g), &scale, sizeof(scale));
                }
            }
        } else {  // MX: blocks of 32, one E8M0 byte each, an even count per row
            const TensorView& dyn = *op_.out.dynamic_scales;
            int64_t blocks = 0;
            for (; blocks * 32 < hidden; ++blocks) {
                const int64_t n = std::min<int64_t>(32, hidden - blocks * 32);
                *reinterpret_cast<uint8_t*>(element_ptr(dyn, dst_row, blocks)) =
                    quant::quantize_mx(out.dtype, row + blocks * 32, q + blocks * 32, n);
            }
            if (blocks % 2 == 1) *reinterpret_cast<uint8_t*>(element_ptr(dyn, dst_row, blocks)) = 0;
        }
        if (!direct) {
            for (int64_t c = 0; c < hidden; ++c)
                *reinterpret_cast<uint8_t*>(element_ptr(out, dst_row, c)) = q[c];
        }
    }

    const DispatchOp& op_;
    const Topology& topo_;
    std::vector<float>* row_;
    std::vector<uint8_t>* bytes_;
    bool write_expand_scales_ = false;
    bool streaming_ = false;
};

void write_counts(const DispatchOp& op,
                  const Topology& topo,
                  const Scratch& s,
                  int64_t own_rows,
                  int64_t peer_rows) {
    const int64_t rank = op.config.ep_rank_id;
    const int64_t blocks = topo.world_size * topo.local_experts(rank);
    for (int64_t i = 0; i < blocks; ++i) {
        store1<int32_t>(op.out.ep_recv_counts,
                        i,
                        static_cast<int32_t>(s.own_layout.block_end[static_cast<std::size_t>(i)]));
    }
    if (op.tp) {
        for (int64_t i = 0; i < blocks; ++i) {
            store1<int32_t>(
                op.out.ep_recv_counts,
                blocks + i,
                static_cast<int32_t>(s.peer_layout.block_end[static_cast<std::size_t>(i)]));
        }
        store1<int32_t>(
            *op.out.tp_recv_counts, op.config.tp_rank_id, static_cast<int32_t>(own_rows));
        store1<int32_t>(
            *op.out.tp_recv_counts, 1 - op.config.tp_rank_id, static_cast<int32_t>(peer_rows));
    }
    const int64_t local = topo.local_experts(rank);
    if (local == 1) {
        store1<int64_t>(op.out.expert_token_nums, 0, own_rows + peer_rows);
        return;
    }
    int64_t previous = 0;
    for (int64_t e = 0; e < local; ++e) {
        const int64_t end =
            s.own_layout
                .block_end[static_cast<std::size_t>(e * topo.world_size + topo.world_size - 1)];
        store1<int64_t>(op.out.expert_token_nums,
                        e,
                        op.config.expert_token_nums_type == 0 ? end : end - previous);
        previous = end;
    }
}

// Pre-quantized x (mode 0, 8-bit x) and modes 2, 3, 4 write dynamicScales.
bool makes_dynamic_scales(const DispatchOp& op) {
    return op.config.quant_mode >= 2 ||
           (op.config.quant_mode == 0 && dtype_size(op.in.x.dtype) == 1);
}

// Rows every rank of both EP groups receives in this call (each sender's entries, plus one shared
// row per token when S > 0), for the streaming decision: the same on every rank.
template <class Records>
int64_t rows_sent_by_group(const Topology& topo, int64_t top_k, const Records& records) {
    int64_t rows = 0;
    for (int64_t src = 0; src < topo.world_size; ++src) {
        rows += records(src).num_tokens * (top_k + (topo.shared_rank_num > 0 ? 1 : 0));
    }
    return rows;
}

// The single copy and every output; runs only after a successful verdict.
void move_rows(const DispatchOp& op, const Topology& topo, const CallRounds& rounds, Scratch& s) {
    auto own = [&](int64_t r) -> const DispatchRecord& { return rounds.own<DispatchRecord>(r); };
    auto peer = [&](int64_t r) -> const DispatchRecord& { return rounds.peer<DispatchRecord>(r); };
    const int64_t rank = op.config.ep_rank_id;
    build_layout(topo, rank, own, &s.own_layout);
    const int64_t own_rows = s.own_layout.total_rows;
    int64_t peer_rows = 0;
    int64_t rows_all = rows_sent_by_group(topo, op.top_k, own);
    if (rounds.has_peer()) {
        build_layout(topo, rank, peer, &s.peer_layout);
        peer_rows = s.peer_layout.total_rows;
        rows_all += rows_sent_by_group(topo, op.top_k, peer);
    }
    const int64_t used = own_rows + peer_rows;
    const TensorView& expand_x = op.out.expand_x;
    const auto row_bytes = static_cast<int64_t>(expand_x.dim(1) * dtype_size(expand_x.dtype));
    // Bytes all ranks write in this call (with padding, every rank's tail too): past the shared
    // cache, plain stores would only evict what the next stage reads.
    int64_t bytes_all = rows_all * row_bytes;
    if (op.zero_padding) bytes_all += (expand_x.dim(0) - used) * row_bytes * topo.world_size;
    const bool streaming = bytes_all >= static_cast<int64_t>(util::kStreamingThresholdBytes);

    RowFiller filler(op, topo, &s.row, &s.bytes, streaming);
    filler.fill(own, s.own_layout, 0, /*own=*/true);
    if (rounds.has_peer()) filler.fill(peer, s.peer_layout, own_rows, /*own=*/false);

    // SPEC §3 tails: untouched, or zero up to each tensor's end when zero padding is asked for.
    if (op.zero_padding) {
        zero_rows(expand_x, used, expand_x.dim(0), streaming);
        if (makes_dynamic_scales(op)) {
            const TensorView& dyn = *op.out.dynamic_scales;
            if (dyn.ndim == 1) {
                zero_elements(dyn, used, dyn.dim(0));
            } else {
                zero_rows(dyn, used, dyn.dim(0));
            }
        }
        if (op.out.expand_scales && op.in.expert_scales) {
            zero_elements(*op.out.expand_scales, own_rows, op.out.expand_scales->dim(0));
        }
    }
    for (int64_t i = 0; i < op.num_tokens * op.top_k; ++i) {
        store1<int32_t>(op.out.expand_idx, i, s.plan.expand_idx[static_cast<std::size_t>(i)]);
    }
    write_counts(op, topo, s, own_rows, peer_rows);
    if (streaming) util::streaming_fence();  // streaming stores land before we depart
}

}  // namespace

Status run_dispatch(const DispatchOp& op) {
    util::FloatEnvironment float_env;
    Scratch& s = scratch();
    const Topology topo = topology_of(op.config);
    const TensorView& ids = op.in.expert_ids;
    build_send_plan(static_cast<const int32_t*>(ids.data),
                    ids.stride(0),
                    ids.stride(1),
                    op.num_tokens,
                    op.top_k,
                    op.config.moe_expert_num,
                    &s.plan);
    // Every buffer the move needs is sized before arriving: after it nothing allocates.
    s.row.resize(static_cast<std::size_t>(op.hidden));
    s.bytes.resize(static_cast<std::size_t>(op.hidden));
    s.own_layout.block_end.resize(
        static_cast<std::size_t>(topo.world_size * topo.local_experts(op.config.ep_rank_id)));
    s.peer_layout.block_end.resize(s.own_layout.block_end.size());

    DispatchRecord mine;
    const bool has_expert_scales = op.in.expert_scales.has_value();
    mine.header.attrs = make_digest(
        1, op.config, op.top_k, op.hidden, op.in.x.dtype, op.out.expand_x.dtype, has_expert_scales);
    mine.ep_rank = op.config.ep_rank_id;
    mine.num_tokens = op.num_tokens;
    mine.plan = &s.plan;
    mine.x = op.in.x;
    if (op.in.scales) mine.scales = *op.in.scales;
    if (op.in.expert_scales) mine.expert_scales = *op.in.expert_scales;
    if (!op.pre_error.ok()) {  // every rank fails in check_headers; nobody reads my tensors
        mine.header.set_error(op.pre_error);
        mine.x.data = nullptr;
        mine.scales.data = nullptr;
        mine.expert_scales.data = nullptr;
    }

    CallRounds rounds(op.ep, op.tp);
    Status verdict = rounds.begin(&mine.header, sizeof(mine));
    try {  // once arrived, every path goes through finish()
        if (verdict.ok()) verdict = rounds.check_headers();
        auto own = [&](int64_t r) -> const DispatchRecord& {
            return rounds.own<DispatchRecord>(r);
        };
        auto peer = [&](int64_t r) -> const DispatchRecord& {
            return rounds.peer<DispatchRecord>(r);
        };
        // With globalBs = 0 every rank of both EP groups must have one BS: rank 0's of my group.
        const int64_t group_bs = verdict.ok() ? own(0).num_tokens : 0;
        if (verdict.ok()) verdict = check_group(op, topo, own, group_bs, rounds.ep_group().name());
        if (verdict.ok() && rounds.has_peer()) {
            verdict = check_group(op, topo, peer, group_bs, rounds.peer_group()->name());
        }
        if (verdict.ok()) move_rows(op, topo, rounds, s);
    } catch (const std::exception& e) {
        verdict = {Code::kRuntime, std::string("dispatch must not fail inside, got: ") + e.what()};
    } catch (...) {
        verdict = {Code::kRuntime, "dispatch must not fail inside, got an unknown exception"};
    }
    return rounds.finish(verdict);
}

}  // namespace moedist::core
