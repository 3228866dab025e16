#include "core/plan.hpp"

namespace moedist::core {

Topology topology_of(const MoeConfig& config) {
    Topology t;
    t.world_size = config.ep_world_size;
    t.shared_rank_num = config.shared_expert_rank_num;
    t.moe_expert_num = config.moe_expert_num;
    t.local_moe_experts = config.local_moe_expert_num();
    t.v2 = config.v2();
    t.shared_experts = config.shared_experts();
    t.special_experts = config.v2() ? config.special_expert_num() : 0;
    return t;
}

EntryMask entry_mask(const MoeConfig& config, const std::optional<TensorView>& mask) {
    EntryMask m;
    if (!config.v2() || !mask || mask->data == nullptr) return m;
    m.data = static_cast<const uint8_t*>(mask->data);
    m.stride0 = mask->stride(0);
    m.stride1 = mask->ndim == 2 ? mask->stride(1) : 0;
    m.kind = mask->ndim == 2 ? EntryMask::kEntries : EntryMask::kTokens;
    return m;
}

TokenRange shared_chunk(int64_t src, int64_t num_tokens, int64_t shared_rank_num, int64_t s) {
    const int64_t base = src * num_tokens / shared_rank_num;
    return {(s + src) * num_tokens / shared_rank_num - base,
            (s + src + 1) * num_tokens / shared_rank_num - base};
}

int64_t shared_rank_of_token(int64_t src,
                             int64_t num_tokens,
                             int64_t shared_rank_num,
                             int64_t token) {
    for (int64_t s = 0; s < shared_rank_num; ++s) {
        if (shared_chunk(src, num_tokens, shared_rank_num, s).contains(token)) return s;
    }
    return -1;
}

namespace {

// The two passes of a plan over the entries `active(t, k)` admits.
template <class Active>
void place_entries(const int32_t* ids,
                   int64_t row_stride,
                   int64_t col_stride,
                   int64_t special_experts,
                   Active active,
                   SendPlan* plan) {
    const int64_t num_tokens = plan->num_tokens, top_k = plan->top_k, num_experts = plan->num_experts;
    // Pass 1: occurrence index per active MoE entry; expert_begin[e+1] counts entries of e.
    for (int64_t t = 0; t < num_tokens; ++t) {
        for (int64_t k = 0; k < top_k; ++k) {
            const auto flat = static_cast<std::size_t>(t * top_k + k);
            plan->expand_idx[flat] = 0;
            if (!active(t, k)) continue;
            const int64_t id = ids[t * row_stride + k * col_stride];
            if (id >= 0 && id < num_experts) {
                plan->expand_idx[flat] = plan->expert_begin[static_cast<std::size_t>(id + 1)]++;
            } else if (id < num_experts || id >= num_experts + special_experts) {
                if (!plan->has_bad_id) {
                    plan->has_bad_id = true;
                    plan->bad_token = t;
                    plan->bad_k = k;
                    plan->bad_id = id;
                }
            }  // else a special expert: active, not sent
        }
    }
    // After this loop: expert_begin[e] = first slot of expert e in entries_by_expert.
    for (int64_t e = 0; e < num_experts; ++e) {
        plan->expert_begin[static_cast<std::size_t>(e + 1)] +=
            plan->expert_begin[static_cast<std::size_t>(e)];
    }
    // Pass 2: place every active MoE entry at its expert's begin + occurrence (stable).
    for (int64_t t = 0; t < num_tokens; ++t) {
        for (int64_t k = 0; k < top_k; ++k) {
            if (!active(t, k)) continue;
            const int64_t id = ids[t * row_stride + k * col_stride];
            if (id < 0 || id >= num_experts) continue;
            const auto flat = static_cast<std::size_t>(t * top_k + k);
            const int64_t slot =
                plan->expert_begin[static_cast<std::size_t>(id)] + plan->expand_idx[flat];
            plan->entries_by_expert[static_cast<std::size_t>(slot)] = static_cast<int32_t>(flat);
        }
    }
}

}  // namespace

void build_send_plan(const int32_t* ids,
                     int64_t row_stride,
                     int64_t col_stride,
                     int64_t num_tokens,
                     int64_t top_k,
                     int64_t num_experts,
                     SendPlan* plan,
                     const EntryMask& mask,
                     int64_t special_experts) {
    const int64_t num_entries = num_tokens * top_k;
    plan->num_tokens = num_tokens;
    plan->top_k = top_k;
    plan->num_experts = num_experts;
    plan->has_bad_id = false;
    plan->has_bad_mask = false;
    plan->listed = false;
    plan->active_count = num_tokens;
    plan->expand_idx.resize(static_cast<std::size_t>(num_entries));
    plan->entries_by_expert.resize(static_cast<std::size_t>(num_entries));
    plan->expert_begin.assign(static_cast<std::size_t>(num_experts + 1), 0);
    auto byte = [&](int64_t t, int64_t k) {
        return mask.data[t * mask.stride0 + k * mask.stride1] != 0;
    };
    switch (mask.kind) {
        case EntryMask::kAll:
            place_entries(ids, row_stride, col_stride, special_experts,
                          [](int64_t, int64_t) { return true; }, plan);
            return;
        case EntryMask::kTokens: {
            // n = the true bytes; they must be tokens [0, n) (the prefix rule).
            int64_t n = 0;
            for (int64_t t = 0; t < num_tokens; ++t) n += byte(t, 0) ? 1 : 0;
            for (int64_t t = 0; t < num_tokens; ++t) {
                if (byte(t, 0) != (t < n)) {
                    plan->has_bad_mask = true;
                    plan->bad_mask_token = t;
                    break;
                }
            }
            plan->active_count = n;
            place_entries(ids, row_stride, col_stride, special_experts,
                          [n](int64_t t, int64_t) { return t < n; }, plan);
            return;
        }
        case EntryMask::kEntries: {
            plan->listed = true;
            plan->active_tokens.clear();
            plan->active_index.assign(static_cast<std::size_t>(num_tokens), -1);
            for (int64_t t = 0; t < num_tokens; ++t) {
                bool any = false;
                for (int64_t k = 0; k < top_k && !any; ++k) any = byte(t, k);
                if (!any) continue;
                plan->active_index[static_cast<std::size_t>(t)] =
                    static_cast<int32_t>(plan->active_tokens.size());
                plan->active_tokens.push_back(static_cast<int32_t>(t));
            }
            plan->active_count = static_cast<int64_t>(plan->active_tokens.size());
            place_entries(ids, row_stride, col_stride, special_experts, byte, plan);
            return;
        }
    }
}

bool shared_receives_from(const Topology& topo, int64_t dst, int64_t src) {
    if (topo.v2) return src % topo.replicas() == dst % topo.replicas();
    return src == dst || !topo.is_shared(src);
}

TokenRange shared_tokens(const Topology& topo,
                         int64_t dst,
                         int64_t src,
                         int64_t src_num_tokens,
                         const PlanView& src_plan) {
    if (!shared_receives_from(topo, dst, src)) return {0, 0};
    if (topo.v2) return {0, src_plan.num_active};  // indices of src's active tokens
    if (src == dst) return {0, src_num_tokens};     // a shared rank keeps all its own tokens
    return shared_chunk(src, src_num_tokens, topo.shared_rank_num, dst);
}

int64_t rows_from(const Topology& topo,
                  int64_t dst,
                  int64_t src,
                  int64_t local_expert,
                  int64_t src_num_tokens,
                  const PlanView& src_plan) {
    if (!topo.is_shared(dst))
        return src_plan.rows_for_expert(topo.first_expert(dst) + local_expert);
    return shared_tokens(topo, dst, src, src_num_tokens, src_plan).size();
}

int64_t rows_to_rank(const Topology& topo,
                     int64_t dst,
                     int64_t src,
                     int64_t src_num_tokens,
                     const PlanView& src_plan) {
    if (topo.is_shared(dst)) return rows_from(topo, dst, src, 0, src_num_tokens, src_plan);
    const int64_t first = topo.first_expert(dst);
    return src_plan.expert_begin[first + topo.local_moe_experts] - src_plan.expert_begin[first];
}

}  // namespace moedist::core
