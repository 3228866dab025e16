// Helpers shared by the hand-computed reference tests (reference_test.cpp,
// reference_quant_test.cpp): bit casts, 16-bit encode/decode, a rank input from floats and the
// tiny two-rank job both use.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "reference.hpp"

namespace reference_test {

namespace r = moedist_ref;
using r::Elem;

inline uint32_t bits_of(float v) {
    uint32_t b = 0;
    std::memcpy(&b, &v, sizeof b);
    return b;
}
inline float float_of(uint32_t b) {
    float v = 0.0f;
    std::memcpy(&v, &b, sizeof v);
    return v;
}
inline uint16_t enc(Elem el, float v) {
    return el == Elem::kFloat16 ? r::f32_to_f16(v) : r::f32_to_bf16(v);
}
inline float dec(Elem el, uint16_t b) {
    return el == Elem::kFloat16 ? r::f16_to_f32(b) : r::bf16_to_f32(b);
}

inline r::RankInput make_rank(Elem el,
                              int64_t bs,
                              const std::vector<float>& x,
                              const std::vector<int32_t>& ids,
                              const std::vector<float>& expert_scales) {
    r::RankInput in;
    in.num_tokens = bs;
    for (float v : x) in.x.push_back(enc(el, v));
    in.expert_ids = ids;
    in.expert_scales = expert_scales;
    return in;
}

// Element j of 16-bit row `row` of expand_x, decoded.
inline float x16(Elem el, const r::DispatchOutput& o, int64_t row, int h, int j) {
    uint16_t b = 0;
    std::memcpy(
        &b,
        o.expand_x.data() +
            (static_cast<size_t>(row) * static_cast<size_t>(h) + static_cast<size_t>(j)) * 2,
        2);
    return dec(el, b);
}
inline int q8(const r::DispatchOutput& o, int64_t row, int h, int j) {
    return static_cast<int8_t>(
        o.expand_x[static_cast<size_t>(row) * static_cast<size_t>(h) + static_cast<size_t>(j)]);
}

// W=2, S=0, E=2 (L=1), K=2, H=3, BS=2, bf16.
//   rank 0: t0=[1,2,3] ids [1,1] (duplicate)  scales [0.5, 0.25]
//           t1=[4,5,6] ids [0,1]              scales [0.125, 1]
//   rank 1: t0=[7,8,9] ids [1,0]              scales [2, 3]
//           t1=[10,11,12] ids [0,0]           scales [4, 5]
// A = maxBs·W·min(L,K) = 2·2·1 = 4.
// Expert 0 (rank 0): src0 (t1,k0) | src1 (t0,k1), (t1,k0), (t1,k1) -> first elems 4,7,10,10.
// Expert 1 (rank 1): src0 (t0,k0), (t0,k1), (t1,k1) | src1 (t0,k0) -> first elems 1,1,4,7.
inline r::JobConfig tiny_cfg() {
    r::JobConfig c;
    c.ep_world_size = 2;
    c.moe_expert_num = 2;
    c.top_k = 2;
    c.hidden = 3;
    c.x_elem = Elem::kBFloat16;
    c.has_expert_scales = true;
    return c;
}
inline std::vector<r::RankInput> tiny_ranks() {
    return {make_rank(
                Elem::kBFloat16, 2, {1, 2, 3, 4, 5, 6}, {1, 1, 0, 1}, {0.5f, 0.25f, 0.125f, 1.0f}),
            make_rank(Elem::kBFloat16, 2, {7, 8, 9, 10, 11, 12}, {1, 0, 0, 0}, {2, 3, 4, 5})};
}
}  // namespace reference_test
