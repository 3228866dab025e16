// Dispatch's send half: what this rank decides and publishes before it arrives. Receivers pull
// every row straight from this rank's memory (x, or rows staged once), guided by its plan.
#include <algorithm>
#include <cstring>

#include "core/dispatch_parts.hpp"
#include "core/remote.hpp"
#include "core/row_writer.hpp"
#include "core/scratch.hpp"

namespace moedist::core {

DispatchScratch& dispatch_scratch() {
    thread_local DispatchScratch instance;
    return instance;
}

void plan_sends(const DispatchOp& op, DispatchScratch& s) {
    const TensorView& ids = op.in.expert_ids;
    build_send_plan(static_cast<const int32_t*>(ids.data),
                    ids.stride(0),
                    ids.stride(1),
                    op.num_tokens,
                    op.top_k,
                    op.config.moe_expert_num,
                    &s.plan,
                    entry_mask(op.config, op.in.x_active_mask),
                    op.config.v2() ? op.config.special_expert_num() : 0);
}

namespace {

// The sender's staging: BS rows in expandX's dtype, then their scales in dynamicScales' row
// layout, in this rank's exposable scratch.
struct Staging {
    TensorView rows;
    std::optional<TensorView> scales;
};

Staging stage_rows(const DispatchOp& op, transport::Transport& endpoint, Status* status) {
    const TensorView& out = op.out.expand_x;
    const int64_t bs = op.num_tokens;
    const int64_t hidden = op.hidden;
    const std::size_t row_bytes = static_cast<std::size_t>(hidden) * dtype_size(out.dtype);
    const std::size_t rows_bytes = (static_cast<std::size_t>(bs) * row_bytes + 63) / 64 * 64;
    int64_t columns = 0;
    DType scale_dtype = DType::kFloat32;
    if (op.out.dynamic_scales && op.format.makes_scales()) {
        const TensorView& dyn = *op.out.dynamic_scales;
        columns = dyn.ndim == 2 ? dyn.dim(1) : 1;
        scale_dtype = dyn.dtype;
    }
    const std::size_t scale_bytes =
        static_cast<std::size_t>(bs * std::max<int64_t>(columns, 1)) * dtype_size(scale_dtype);
    auto* base =
        static_cast<std::byte*>(endpoint.scratch(kScratchStaged, rows_bytes + scale_bytes));
    Staging staging;
    if (base == nullptr) {
        *status = {Code::kRuntime,
                   "the staged rows must find " + std::to_string(rows_bytes + scale_bytes) +
                       " bytes of shared memory, got none"};
        return staging;
    }
    staging.rows = TensorView::contiguous(base, out.dtype, {bs, hidden});
    if (columns > 0) {
        const auto& dyn = *op.out.dynamic_scales;
        staging.scales = dyn.ndim == 2
                             ? TensorView::contiguous(base + rows_bytes, scale_dtype, {bs, columns})
                             : TensorView::contiguous(base + rows_bytes, scale_dtype, {bs});
    }
    RowWriter writer(op.format, hidden, {staging.rows, staging.scales}, false);
    RowSource src{op.in.x, op.in.scales ? *op.in.scales : TensorView{}};
    for (int64_t t = 0; t < bs; ++t) writer.write(src, t, t, 0);
    return staging;
}

// The plan's arrays a receiver reads (expert_begin, entries_by_expert, and the active tokens
// when a 2-D mask makes them a list) in exposable scratch.
Status publish_plan(const SendPlan& plan, transport::Transport& endpoint, DispatchRecord* rec) {
    const std::size_t begin_count = plan.expert_begin.size();
    const std::size_t entry_count = plan.entries_by_expert.size();
    const std::size_t active_count = plan.listed ? plan.active_tokens.size() : 0;
    const std::size_t bytes = (begin_count + entry_count + active_count) * sizeof(int32_t);
    auto* arrays = static_cast<int32_t*>(endpoint.scratch(kScratchPlan, bytes));
    if (arrays == nullptr) {
        return {Code::kRuntime,
                "the send plan must find " + std::to_string(bytes) +
                    " bytes of shared memory, got none"};
    }
    std::memcpy(arrays, plan.expert_begin.data(), begin_count * sizeof(int32_t));
    if (entry_count > 0) {  // BS = 0: no entries (and no array to copy from)
        std::memcpy(
            arrays + begin_count, plan.entries_by_expert.data(), entry_count * sizeof(int32_t));
    }
    if (active_count > 0) {
        std::memcpy(arrays + begin_count + entry_count,
                    plan.active_tokens.data(),
                    active_count * sizeof(int32_t));
    }
    rec->top_k = plan.top_k;
    rec->num_experts = plan.num_experts;
    rec->num_active = plan.num_active();
    rec->active_listed = plan.listed ? 1 : 0;
    rec->bad_id = plan.has_bad_id ? 1 : 0;
    rec->bad_value = static_cast<int32_t>(plan.bad_id);
    rec->bad_token = plan.bad_token;
    rec->bad_k = plan.bad_k;
    rec->bad_mask = plan.has_bad_mask ? 1 : 0;
    rec->bad_mask_token = plan.bad_mask_token;
    return endpoint.expose(arrays, bytes, kScratchPlan, &rec->plan);
}

}  // namespace

Status publish_inputs(const DispatchOp& op,
                      transport::Transport& endpoint,
                      const SendPlan& plan,
                      DispatchRecord* mine) {
    mine->ep_rank = op.config.ep_rank_id;
    mine->num_tokens = op.num_tokens;
    if (Status st = endpoint.broken_status(); !st.ok()) return st;
    if (Status st = publish_plan(plan, endpoint, mine); !st.ok()) return st;
    const Topology topo = topology_of(op.config);
    const int64_t world = topo.world_size;
    if (world <= DispatchRecord::kRecordedRanks) {
        for (int64_t dst = 0; dst < world; ++dst) {
            mine->rows_to[dst] = static_cast<int32_t>(
                rows_to_rank(topo, dst, op.config.ep_rank_id, op.num_tokens, plan));
        }
    }
    if (op.config.expert_padded()) {
        for (int64_t e = 0; e < plan.num_experts; ++e)
            mine->most_rows_to_one_expert =
                std::max(mine->most_rows_to_one_expert, plan.rows_for_expert(e));
    }
    if (endpoint.node_count() > 1) {
        if (world > DispatchRecord::kRecordedRanks ||
            endpoint.node_count() > DispatchRecord::kMaxNodes) {
            return {Code::kRuntime,
                    "a group across nodes must have at most " +
                        std::to_string(DispatchRecord::kRecordedRanks) + " ranks on at most " +
                        std::to_string(DispatchRecord::kMaxNodes) + " nodes, got " +
                        std::to_string(world) + " ranks on " +
                        std::to_string(endpoint.node_count())};
        }
        std::vector<std::vector<int32_t>> needed;
        tokens_for_nodes(op, topo, endpoint, plan, &needed);
        for (std::size_t n = 0; n < needed.size(); ++n)
            mine->tokens_to_node[n] = static_cast<int32_t>(needed[n].size());
    }
    if (Status st = publish_tensor(endpoint, op.in.x, kScratchStageX, &mine->x); !st.ok())
        return st;
    if (op.in.scales) {
        if (Status st = publish_tensor(endpoint, *op.in.scales, kScratchStageAux, &mine->scales);
            !st.ok())
            return st;
    }
    if (op.in.expert_scales) {
        if (Status st = publish_tensor(
                endpoint, *op.in.expert_scales, kScratchStageAux2, &mine->expert_scales);
            !st.ok())
            return st;
    }
    if (op.in.extra) {
        if (endpoint.node_count() > 1) {
            return {Code::kRuntime,
                    "extra must be absent in a group across nodes, got extra on a group of " +
                        std::to_string(endpoint.node_count()) + " nodes"};
        }
        if (Status st = publish_tensor(endpoint, *op.in.extra, kScratchStageAux3, &mine->extra);
            !st.ok())
            return st;
    }
    if (op.format.staged_once() && !plan.has_bad_id) {
        Status staged_status = Status::Ok();
        const Staging staged = stage_rows(op, endpoint, &staged_status);
        if (!staged_status.ok()) return staged_status;
        if (Status st = publish_tensor(endpoint, staged.rows, kScratchStaged, &mine->staged_rows);
            !st.ok())
            return st;
        if (staged.scales) {
            if (Status st =
                    publish_tensor(endpoint, *staged.scales, kScratchStaged, &mine->staged_scales);
                !st.ok())
                return st;
        }
    }
    return Status::Ok();
}

RecordBounds dispatch_bounds(const DispatchOp& op, const Topology& topo, int node_count) {
    RecordBounds bounds;
    bounds.world = topo.world_size;
    bounds.experts = topo.moe_expert_num;
    bounds.top_k = op.top_k;
    bounds.hidden = op.hidden;
    bounds.nodes = node_count;
    bounds.x_dtype = op.in.x.dtype;
    bounds.expand_dtype = op.out.expand_x.dtype;
    bounds.v2 = topo.v2;
    bounds.scale_rows =
        topo.v2 ? topo.shared_experts + topo.moe_expert_num : topo.moe_expert_num + 1;
    if (op.in.extra) {
        bounds.extra_columns = op.in.extra->dim(1);
        bounds.extra_dtype = op.in.extra->dtype;
    }
    return bounds;
}

}  // namespace moedist::core
