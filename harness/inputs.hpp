// The deterministic inputs of a harness job: every value a function of (seed, global rank, token,
// column), so any process can build any rank's inputs, and the reference sees the same ones.
#pragma once

#include <cstdint>
#include <vector>

#include "harness/job.hpp"
#include "reference.hpp"
#include "reference_v2.hpp"

namespace moedist::harness {

// Poisons the harness writes into every output before the first call (untouched tails keep them).
inline constexpr uint8_t kGarbage = 0xAB;     // byte outputs
inline constexpr float kPoisonScale = -7.0f;  // fp32 scale outputs
inline constexpr int32_t kSentinel = -12345;  // int32 outputs

// The shape of a job. Global rank g = ep·T + tp (the A2/A3 sample programs' layout).
struct Layout {
    int W = 0, T = 1, S = 0, E = 0, K = 0, H = 0, L = 0;
    int64_t max_bs = 0, global_bs = 0;
    bool v2 = false;
    int N = 0;        // shared experts (V1: 1 when S > 0)
    int specials = 0; // Z + C + Q (V2)
    int ranks() const { return W * T; }
    int ep_of(int g) const { return g / T; }
    int tp_of(int g) const { return g % T; }
    bool shared(int ep) const { return ep < S; }
    int local_experts(int ep) const { return shared(ep) ? 1 : L; }
    // The expert a shared rank serves, numbered after the E MoE experts.
    int shared_expert(int ep) const { return E + (v2 ? ep / (S / N) : 0); }
};

Layout layout_of(const JobSpec& spec);

// The reference's view of the job.
moedist_ref::JobConfig reference_config(const JobSpec& spec, const Layout& lay);
moedist_ref::v2::JobConfig reference_config_v2(const JobSpec& spec, const Layout& lay);

// V2: rank g's xActiveMask bytes (BS or BS·K; empty without a mask) and the combine tensors
// (sharedExpertX, oriX, the const experts', residualX and gamma) as the spec asks.
std::vector<uint8_t> mask_of(const JobSpec& spec, const Layout& lay, int g, int64_t bs);
moedist_ref::v2::RankInput rank_input_v2(const JobSpec& spec,
                                         const Layout& lay,
                                         int g,
                                         const moedist_ref::RankInput& base);

// Rank g's inputs (x, expert ids, scales, routing weights), fault injection applied.
moedist_ref::RankInput rank_input(const JobSpec& spec, const Layout& lay, int g);

// Rows of expandX (T·A + extra) and of epRecvCounts the harness allocates for rank g.
int64_t expand_rows(const JobSpec& spec, const Layout& lay, int g, int64_t bs);

// Columns of dynamicScales per row: 1 (pre-quantized x, per-token), ⌈H/128⌉ (per-group), the
// even MX block count (MX bytes), 0 when the mode makes no scales.
int64_t scale_columns(const JobSpec& spec, int64_t H);

// A rank's received rows as the expert stage reads them.
struct Received {
    const uint8_t* expand_x;
    const float* scales;       // fp32 scales per row (× columns), or null
    const uint8_t* mx_scales;  // MX scale bytes per row (× columns), or null
    const int32_t* ep_recv_counts;
    const int32_t* tp_recv_counts;
};

// The expert stage: a deterministic function of the row, its global expert id and the TP rank,
// written into `out` (expandX's layout, the job's 16-bit dtype).
void run_experts(const JobSpec& spec, const Layout& lay, int g, const Received& r, uint16_t* out);

// splitmix64, and a value in [0, 1) that depends on every argument.
uint64_t mix(uint64_t x);
double unit(uint64_t seed, uint64_t a, uint64_t b, uint64_t c, uint64_t d = 0);

}  // namespace moedist::harness
