// The naive reference of SPEC.md: scalar, obviously correct, whole-job (every rank at once).
// It shares no code with src/: it is written from SPEC.md alone and is what tests and
// `moedist run` compare moedist against.
//
// Ranks: a job has W·T ranks; global rank g = ep_rank * T + tp_rank (the seed sample's layout).
// EP group t holds the ranks {ep * T + t : ep in [0, W)}; TP group e holds {e * T + t : t in [0,
// T)}.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moedist_ref {

enum class Elem { kFloat16, kBFloat16, kInt8, kFp8E4M3, kFp8E5M2, kHiFloat8 };

struct JobConfig {
    int ep_world_size = 0;          // W
    int tp_size = 1;                // T: 1 or 2 (2 requires L == 1)
    int shared_rank_num = 0;        // S
    int moe_expert_num = 0;         // E
    int top_k = 0;                  // K
    int hidden = 0;                 // H
    int64_t global_bs = 0;          // 0 (every rank has the same BS) or maxBs * W
    int quant_mode = 0;             // SPEC §5: 0 none / pre-quantized x, 1 static, 2 per-token,
                                    // 3 per-group (128), 4 MX (blocks of 32)
    Elem x_elem = Elem::kBFloat16;  // dtype of x: fp16/bf16, or fp8/hifloat8 (mode 0 pre-quantized)
    Elem expand_elem = Elem::kBFloat16;   // expandX dtype: x_elem in mode 0, else the target format
    Elem combine_elem = Elem::kBFloat16;  // expert outputs and combine's x: fp16 or bf16
    int static_scales = 0;           // mode 1: scales shape 1 = (1,), 2 = (H,), 3 = (E + (S>0), H)
    bool has_smooth_scales = false;  // modes 2/3: smooth scales (E + (S>0), H) given
    bool has_expert_scales = false;  // dispatch got expertScales and expandScales
    int expert_token_nums_type = 0;  // 0 inclusive prefix sum, 1 counts
    int comm_quant_mode = 0;         // combine: 0 or 2
};

// One global rank's inputs. x and expert outputs are raw 16-bit patterns of x_elem.
struct RankInput {
    int64_t num_tokens = 0;            // BS of this rank
    std::vector<uint16_t> x;           // BS * H 16-bit patterns (x_elem fp16/bf16), else empty
    std::vector<uint8_t> x8;           // BS * H bytes (x_elem fp8/hifloat8), else empty
    std::vector<float> x_scales;       // BS per-token scales of a pre-quantized x, else empty
    std::vector<int32_t> expert_ids;   // BS * K, each in [0, E)
    std::vector<float> scales;         // smooth (E + (S>0)) * H (modes 2/3), static (mode 1) as
                                       // static_scales says, else empty
    std::vector<float> expert_scales;  // BS * K (always given: combine needs it)
};

// One global rank's dispatch outputs, sized exactly as SPEC's minimums:
//   expand_x: T*A rows of H elements of expand_elem (2 bytes each for fp16/bf16, 1 byte for the
//             8-bit formats), rows past the real count zero; stored as bytes.
//   dynamic_scales: floats, zero past the real rows: T*A (pre-quantized mode 0: the row's token
//             scale; mode 2), T*A*G row-major (mode 3, G = ceil(H/128)); empty otherwise.
//   dynamic_scale_bytes: mode 4 only: T*A rows of 2*ceil(ceil(H/32)/2) E8M0 bytes (pad byte 0),
//             zero past the real rows; empty otherwise.
//   expand_idx: BS*K.  expert_token_nums: L (1 on a shared rank).
//   ep_recv_counts: T*W*L on a MoE rank, T*W on a shared rank.
//   tp_recv_counts: 2 entries when T == 2, else empty.
//   expand_scales: A floats when has_expert_scales, else empty.
struct DispatchOutput {
    int64_t capacity_rows = 0;  // A
    int64_t own_rows = 0;       // rows received in this rank's EP group
    int64_t peer_rows = 0;      // rows of the TP peer (T == 2), else 0
    std::vector<uint8_t> expand_x;
    std::vector<float> dynamic_scales;
    std::vector<uint8_t> dynamic_scale_bytes;
    std::vector<int32_t> expand_idx;
    std::vector<int64_t> expert_token_nums;
    std::vector<int32_t> ep_recv_counts;
    std::vector<int32_t> tp_recv_counts;
    std::vector<float> expand_scales;
};

// A of SPEC §1 for a rank (shared or MoE) of this job; `max_bs` as SPEC defines it.
int64_t capacity_rows(const JobConfig& cfg, int ep_rank, int64_t max_bs);

// Dispatch for the whole job. ranks.size() == W*T. Returns an empty vector and sets *error when
// the job is invalid at run time (an id outside [0,E), more rows than A for some rank).
// It also rejects (same way) a job outside the contract that the reference cannot index safely:
// W < 1, S not in [0,W), E not a positive multiple of W-S, T not 1/2, T == 2 with L != 1, K not in
// [1,E], H < 1, unequal BS with global_bs == 0, BS > global_bs/W, input vectors of the wrong size.
std::vector<DispatchOutput> dispatch(const JobConfig& cfg,
                                     const std::vector<RankInput>& ranks,
                                     std::string* error);

// Combine for the whole job. expert_out[g] has the layout of dispatch[g].expand_x in combine_elem
// (T*A rows of H 16-bit values; only the real rows are read). Returns x per rank (BS*H, in
// combine_elem).
// Returns an empty vector when dispatch would fail for this job, or when dispatched/expert_out do
// not match the job's routing (row counts, sizes). Rows are found through the routing's recorded
// origins (source rank, token, k or shared), not through expandIdx / epRecvCounts offsets.
std::vector<std::vector<uint16_t>> combine(const JobConfig& cfg,
                                           const std::vector<RankInput>& ranks,
                                           const std::vector<DispatchOutput>& dispatched,
                                           const std::vector<std::vector<uint16_t>>& expert_out);

// Scalar conversions written from the format definitions (also used by tests on their own).
float f16_to_f32(uint16_t bits);
float bf16_to_f32(uint16_t bits);
uint16_t f32_to_f16(float value);   // RNE, subnormals kept, NaN -> 0x7E00 | sign
uint16_t f32_to_bf16(float value);  // RNE, subnormals kept, NaN -> 0x7FC0 | sign

}  // namespace moedist_ref
