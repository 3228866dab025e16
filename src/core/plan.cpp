#include "core/plan.hpp"

namespace moedist::core {

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

void build_send_plan(const int32_t* ids,
                     int64_t row_stride,
                     int64_t col_stride,
                     int64_t num_tokens,
                     int64_t top_k,
                     int64_t num_experts,
                     SendPlan* plan) {
    const int64_t num_entries = num_tokens * top_k;
    plan->num_tokens = num_tokens;
    plan->top_k = top_k;
    plan->num_experts = num_experts;
    plan->has_bad_id = false;
    plan->expand_idx.resize(static_cast<std::size_t>(num_entries));
    plan->entries_by_expert.resize(static_cast<std::size_t>(num_entries));
    plan->expert_begin.assign(static_cast<std::size_t>(num_experts + 1), 0);

    // Pass 1: occurrence index per entry; expert_begin[e+1] counts entries of e.
    for (int64_t t = 0; t < num_tokens; ++t) {
        for (int64_t k = 0; k < top_k; ++k) {
            const int64_t id = ids[t * row_stride + k * col_stride];
            const auto flat = static_cast<std::size_t>(t * top_k + k);
            if (id < 0 || id >= num_experts) {
                if (!plan->has_bad_id) {
                    plan->has_bad_id = true;
                    plan->bad_token = t;
                    plan->bad_k = k;
                    plan->bad_id = id;
                }
                plan->expand_idx[flat] = 0;
                continue;
            }
            plan->expand_idx[flat] = plan->expert_begin[static_cast<std::size_t>(id + 1)]++;
        }
    }
    // After this loop: expert_begin[e] = first slot of expert e in entries_by_expert.
    for (int64_t e = 0; e < num_experts; ++e) {
        plan->expert_begin[static_cast<std::size_t>(e + 1)] +=
            plan->expert_begin[static_cast<std::size_t>(e)];
    }
    // Pass 2: place every entry at its expert's begin + occurrence (stable by construction).
    for (int64_t t = 0; t < num_tokens; ++t) {
        for (int64_t k = 0; k < top_k; ++k) {
            const int64_t id = ids[t * row_stride + k * col_stride];
            if (id < 0 || id >= num_experts) continue;
            const auto flat = static_cast<std::size_t>(t * top_k + k);
            const int64_t slot =
                plan->expert_begin[static_cast<std::size_t>(id)] + plan->expand_idx[flat];
            plan->entries_by_expert[static_cast<std::size_t>(slot)] = static_cast<int32_t>(flat);
        }
    }
}

int64_t rows_from(const Topology& topo,
                  int64_t dst,
                  int64_t src,
                  int64_t local_expert,
                  int64_t src_num_tokens,
                  const PlanView& src_plan) {
    if (!topo.is_shared(dst))
        return src_plan.rows_for_expert(topo.first_expert(dst) + local_expert);
    if (src == dst) return src_num_tokens;  // a shared rank keeps all its own tokens
    if (topo.is_shared(src)) return 0;      // and sends none to other shared ranks
    return shared_chunk(src, src_num_tokens, topo.shared_rank_num, dst).size();
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
