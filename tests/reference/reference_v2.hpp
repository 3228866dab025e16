// The naive reference of the V2 operator family (docs/contract.md §10): scalar, whole-job, and
// sharing no code with src/. Like reference.hpp, it is what tests and `moedist run --api v2`
// compare moedist against. It reuses this directory's V1 pieces (conversions, quantizers),
// never moedist's.
//
// Ranks: as reference.hpp (global rank g = ep_rank * T + tp_rank).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "reference.hpp"

namespace moedist_ref::v2 {

enum class Mask { kNone, kTokens, kEntries };  // no xActiveMask, (BS,) bool, (BS, K) bool

struct JobConfig {
    moedist_ref::JobConfig base;  // W, T, S, E, K, H, globalBs, quant, dtypes, commQuantMode ...
                                  // (base.static_scales 3 and smooth scales have N + E rows)
    int shared_expert_num = 1;    // N when S > 0 (S % N == 0); ignored when S = 0
    int zero_experts = 0;         // Z: ids [E, E+Z)
    int copy_experts = 0;         // C: ids [E+Z, E+Z+C)
    int const_experts = 0;        // Q: ids [E+Z+C, E')
    Mask mask = Mask::kNone;
    bool weighted = true;         // combine gets expertScales (false: an empty one, weights 1)
    bool shared_expert_x = false; // combine adds sharedExpertX (S = 0 only)
    int const_alpha_form = 1;     // 1: alpha (Q,), 2: alpha (Q, H)
    bool add_rms_norm = false;    // CombineAddRmsNorm: residualX, gamma -> x (sum), y, rstd
    float norm_eps = 1e-6f;
};

// One global rank's inputs (16-bit values are raw patterns of the element type they stand for).
struct RankInput {
    moedist_ref::RankInput base;        // x, ids (inactive entries: any int32), scales,
                                        // expert_scales (BS*K; ignored when !weighted)
    std::vector<uint8_t> mask;          // BS (kTokens) or BS*K (kEntries) bytes; else empty
    std::vector<uint16_t> shared_x;     // BS*H in combine_elem when shared_expert_x
    std::vector<uint16_t> ori_x;        // BS*H in combine_elem when C + Q > 0
    std::vector<uint16_t> alpha1;       // Q or Q*H (const_alpha_form) in combine_elem
    std::vector<uint16_t> alpha2;
    std::vector<uint16_t> const_v;      // Q*H in combine_elem
    std::vector<uint16_t> residual_x;   // BS*H in combine_elem when add_rms_norm
    std::vector<uint16_t> gamma;        // H in combine_elem when add_rms_norm
};

// One global rank's dispatch outputs, sized exactly as the contract's minimums (tails zero):
// as moedist_ref::DispatchOutput without expand_idx, plus assist_info (3*A int32: per own row
// (src, t, slot), zero past 3*own_rows).
struct DispatchOutput {
    int64_t capacity_rows = 0;  // A (V2: a shared rank's A is maxBs * ceil(W / R))
    int64_t own_rows = 0;
    int64_t peer_rows = 0;
    std::vector<uint8_t> expand_x;
    std::vector<float> dynamic_scales;
    std::vector<uint8_t> dynamic_scale_bytes;
    std::vector<int32_t> assist_info;
    std::vector<int64_t> expert_token_nums;
    std::vector<int32_t> ep_recv_counts;
    std::vector<int32_t> tp_recv_counts;
    std::vector<float> expand_scales;
};

// Combine's outputs for one global rank. active[t] == 0: token t's rows of x (and y, rstd) are
// not written by combine (the caller's bytes stay; zero under zero padding).
struct CombineOutput {
    std::vector<uint8_t> active;  // BS
    std::vector<uint16_t> x;      // BS*H in combine_elem (AddRmsNorm: xOut, the residual sum)
    std::vector<uint16_t> y;      // BS*H (AddRmsNorm only)
    std::vector<float> rstd;      // BS (AddRmsNorm only)
};

int64_t capacity_rows(const JobConfig& cfg, int ep_rank, int64_t max_bs);

// Dispatch for the whole job; empty and *error set when the job is invalid at run time (a 1-D
// mask that is not a prefix, an active id outside [0, E'), more rows than A for some rank,
// unequal BS with globalBs = 0) or outside what the reference can index.
std::vector<DispatchOutput> dispatch(const JobConfig& cfg,
                                     const std::vector<RankInput>& ranks,
                                     std::string* error);

// Combine for the whole job. expert_out[g] has the layout of dispatched[g].expand_x in
// combine_elem (only the real rows are read). Rows are found through the routing's recorded
// origins, never through assist_info or counts.
std::vector<CombineOutput> combine(const JobConfig& cfg,
                                   const std::vector<RankInput>& ranks,
                                   const std::vector<DispatchOutput>& dispatched,
                                   const std::vector<std::vector<uint16_t>>& expert_out,
                                   std::string* error);

}  // namespace moedist_ref::v2
