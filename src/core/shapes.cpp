#include "core/shapes.hpp"

namespace moedist::core {

__int128 capacity_rows(const MoeConfig& config, int64_t bs, int64_t top_k) {
    return capacity_rows_of(config, config.ep_rank_id, bs, top_k);
}

__int128 capacity_rows_of(const MoeConfig& config, int64_t rank, int64_t bs, int64_t top_k) {
    const auto max_bs = static_cast<__int128>(config.max_bs(bs));
    const auto world = static_cast<__int128>(config.ep_world_size);
    const bool shared = rank < config.shared_expert_rank_num;
    if (shared && config.v2()) {  // maxBs · ⌈W / R⌉, R = S / N
        const auto replicas =
            static_cast<__int128>(config.shared_expert_rank_num / config.shared_experts());
        return max_bs * ((world + replicas - 1) / replicas);
    }
    if (shared) {
        const auto ranks = static_cast<__int128>(config.shared_expert_rank_num);
        return (max_bs * world + ranks - 1) / ranks;
    }
    const int64_t local = config.local_moe_expert_num();
    if (config.expert_padded()) return max_bs * world * static_cast<__int128>(local);
    return max_bs * world * static_cast<__int128>(local < top_k ? local : top_k);
}

bool mode_makes_scales(QuantMode mode, DType x_dtype) {
    // Modes past kMx are invalid; they count here so that a façade looks at dynamicScales
    // whenever a valid mode needs it (validate() refuses them afterwards).
    return mode == QuantMode::kPerToken || mode == QuantMode::kPerGroup || mode == QuantMode::kMx ||
           static_cast<int64_t>(mode) > static_cast<int64_t>(QuantMode::kMx) ||
           (mode == QuantMode::kNone && dtype_size(x_dtype) == 1);
}

int64_t scale_columns(QuantMode mode, int64_t hidden) {
    if (mode == QuantMode::kPerGroup) return (hidden + 127) / 128;
    if (mode == QuantMode::kMx) return 2 * (((hidden + 31) / 32 + 1) / 2);
    return 0;
}

OutputShapes output_shapes(
    const MoeConfig& config, int64_t bs, int64_t top_k, int64_t hidden, DType x_dtype) {
    OutputShapes s;
    s.tp = config.tp_size();
    s.local_experts = config.local_expert_num();
    s.capacity = capacity_rows(config, bs, top_k);
    s.rows = s.capacity * s.tp;
    s.makes_scales = mode_makes_scales(config.quant(), x_dtype);
    s.scale_columns = s.makes_scales ? scale_columns(config.quant(), hidden) : 0;
    s.expand_idx = config.v2() ? 0 : static_cast<__int128>(bs) * top_k;
    s.assist_info = config.v2() ? 3 * s.capacity : 0;
    s.expert_token_nums = s.local_experts;
    s.ep_recv_counts = s.tp * config.ep_world_size * s.local_experts;
    s.tp_recv_counts = s.tp == 2 ? 2 : 0;
    s.expand_scales = s.capacity;
    return s;
}

}  // namespace moedist::core
