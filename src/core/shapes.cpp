#include "core/shapes.hpp"

namespace moedist::core {

__int128 capacity_rows(const MoeConfig& config, int64_t bs, int64_t top_k) {
    const auto max_bs = static_cast<__int128>(config.max_bs(bs));
    const auto world = static_cast<__int128>(config.ep_world_size);
    if (config.is_shared_rank() && config.v2()) {  // maxBs · ⌈W / R⌉, R = S / N
        const auto replicas =
            static_cast<__int128>(config.shared_expert_rank_num / config.shared_experts());
        return max_bs * ((world + replicas - 1) / replicas);
    }
    if (config.is_shared_rank()) {
        const auto shared = static_cast<__int128>(config.shared_expert_rank_num);
        return (max_bs * world + shared - 1) / shared;
    }
    const int64_t local = config.local_moe_expert_num();
    return max_bs * world * static_cast<__int128>(local < top_k ? local : top_k);
}

bool mode_makes_scales(int64_t quant_mode, DType x_dtype) {
    return quant_mode >= 2 || (quant_mode == 0 && dtype_size(x_dtype) == 1);
}

int64_t scale_columns(int64_t quant_mode, int64_t hidden) {
    if (quant_mode == 3) return (hidden + 127) / 128;
    if (quant_mode == 4) return 2 * (((hidden + 31) / 32 + 1) / 2);
    return 0;
}

OutputShapes output_shapes(
    const MoeConfig& config, int64_t bs, int64_t top_k, int64_t hidden, DType x_dtype) {
    OutputShapes s;
    s.tp = config.tp_size();
    s.local_experts = config.local_expert_num();
    s.capacity = capacity_rows(config, bs, top_k);
    s.rows = s.capacity * s.tp;
    s.makes_scales = mode_makes_scales(config.quant_mode, x_dtype);
    s.scale_columns = s.makes_scales ? scale_columns(config.quant_mode, hidden) : 0;
    s.expand_idx = config.v2() ? 0 : static_cast<__int128>(bs) * top_k;
    s.assist_info = config.v2() ? 3 * s.capacity : 0;
    s.expert_token_nums = s.local_experts;
    s.ep_recv_counts = s.tp * config.ep_world_size * s.local_experts;
    s.tp_recv_counts = s.tp == 2 ? 2 : 0;
    s.expand_scales = s.capacity;
    return s;
}

}  // namespace moedist::core
