// Internal to the naive V2 reference (reference_v2.cpp, reference_v2_combine.cpp): the job's
// geometry, its active entries and its routing, computed once from the contract
// (docs/contract.md §10.2, §10.3) and shared by dispatch and combine. No code shared with src/.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "reference_v2.hpp"

namespace moedist_ref::v2::impl {

// docs/contract.md §1 and §10's notation. N is the number of shared experts after the fix-up
// (0 whenever S = 0), R = S / N ranks per shared expert.
struct Geometry {
    int W = 0, T = 1, S = 0, E = 0, L = 0, K = 0, H = 0;
    int N = 0, R = 1;
    int Z = 0, C = 0, Q = 0;
    int64_t e_prime() const { return int64_t{E} + Z + C + Q; }  // E'
    int ranks() const { return W * T; }
    int slots() const { return K + N; }  // per token: K entries, then N shared experts
    bool is_shared(int ep) const { return ep < S; }
    int ep_of(int g) const { return g / T; }
    int tp_of(int g) const { return g % T; }
    int global(int ep, int tp) const { return ep * T + tp; }
    int expert_rank(int e) const { return S + e / L; }
    int expert_local(int e) const { return e % L; }
};

std::string rank_name(const Geometry& geo, int g);

// Where one received row came from: source EP rank (same EP group as the receiver), token index
// into the source's x, and slot: k in [0, K) for a MoE row, K + j for shared expert j
// (docs/contract.md §10.4: exactly the assist triple of that row).
struct Origin {
    int src_ep = 0;
    int64_t token = 0;
    int slot = 0;
};

// The whole job as the contract sees it before any byte moves.
struct Job {
    Geometry geo;
    int64_t max_bs = 0;
    // Per global rank: BS*K entry flags and BS token flags (docs/contract.md §10.2).
    std::vector<std::vector<uint8_t>> entry_active;
    std::vector<std::vector<uint8_t>> token_active;
    // Per global rank: its own (EP-group) received rows in expandX order (§10.3, §10.4).
    std::vector<std::vector<Origin>> rows;
};

// Checks the configuration and inputs (dispatch's, plus combine's own when `for_combine`), finds
// the active entries, routes and checks every rank's capacity. "" when fine, else the message of
// the first problem (a run-time error of the contract, or a job the reference cannot index).
std::string plan(const JobConfig& cfg,
                 const std::vector<RankInput>& ranks,
                 bool for_combine,
                 Job* job);

float elem_to_f32(Elem el, uint16_t bits);
uint16_t f32_to_elem(Elem el, float value);

}  // namespace moedist_ref::v2::impl
