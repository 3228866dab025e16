// The two halves of a combine (combine.cpp runs them around the call's rounds):
//
//   combine.cpp         this rank's plan and what it publishes (its expert outputs, counts and,
//                       V2, the triples of its rows), then every owner as this rank reads it
//   combine_reduce.cpp  where each returned row of this rank's tokens lives, checked against
//                       the owners' counts (and V2 triples) before any read, then the reduction
#pragma once

#include <string>
#include <vector>

#include "core/call_rounds.hpp"
#include "core/ops.hpp"
#include "core/plan.hpp"
#include "core/views.hpp"

namespace moedist::core {

// Per rank thread; reused across calls, so a steady shape allocates nothing after its first call.
struct CombineScratch {
    SendPlan plan;  // this rank's tokens as dispatch sent them (from ids and mask)
    std::vector<OwnerView> own_owners;
    std::vector<std::vector<int32_t>> own_counts;  // owners' counts, copied out of their memory
    std::vector<std::vector<int32_t>> peer_counts;
    std::vector<int32_t> remote_counts;  // counts of the views of owners on other nodes
    std::vector<OwnerView> peer_owners;
    std::vector<float> acc;
    std::vector<float> row;
    std::vector<float> peer_row;
    std::vector<const uint16_t*> rows;  // one token's weighted rows (the register-blocked path)
    std::vector<float> weights;
    std::vector<const uint16_t*> unweighted;  // its shared rows and sharedExpertX
    std::vector<float> special;               // 3·H: const experts' and AddRmsNorm's work rows
    std::vector<uint16_t> narrow;             // H: AddRmsNorm's rounding to the 16-bit type
};
CombineScratch& combine_scratch();

// This rank's plan (into scratch.plan) from its expert ids and (V2) mask.
void plan_combine(const CombineOp& op, CombineScratch& s);

// Locates every returned row of this rank's tokens (a failure names the first bad one), then
// writes x (and AddRmsNorm's outputs). Reads only what the owners' copied counts allow.
Status gather_and_reduce(const CombineOp& op, const CallRounds& rounds, CombineScratch& s);

}  // namespace moedist::core
