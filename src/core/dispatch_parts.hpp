// The two halves of a dispatch (dispatch.cpp runs them around the call's rounds):
//
//   send half (dispatch_send.cpp)      plan from this rank's ids and mask, rows staged once when
//                                      the quantization does not depend on the expert, and the
//                                      record that tells the receivers where everything is
//   receive half (dispatch_receive.cpp) every sender as this rank reads it (records checked,
//                                      plans copied), the run-time checks, then the single copy
//                                      into this rank's outputs
#pragma once

#include <string>
#include <vector>

#include "core/call_rounds.hpp"
#include "core/ops.hpp"
#include "core/plan.hpp"
#include "core/records.hpp"
#include "core/views.hpp"

namespace moedist::core {

// Per rank thread; reused across calls, so a steady shape allocates nothing after its first call.
struct DispatchScratch {
    SendPlan plan;
    std::vector<std::vector<int32_t>> own_plans;  // senders' plans, copied out of their memory
    std::vector<std::vector<int32_t>> peer_plans;
    ReceiveLayout own_layout;
    ReceiveLayout peer_layout;
    std::vector<SourceView> own_sources;
    std::vector<SourceView> peer_sources;
};
DispatchScratch& dispatch_scratch();

// This rank's plan (into scratch.plan) from its expert ids and mask.
void plan_sends(const DispatchOp& op, DispatchScratch& scratch);

// Everything this rank publishes: its plan, x and scales (and staged rows) for its receivers.
Status publish_inputs(const DispatchOp& op,
                      transport::Transport& endpoint,
                      const SendPlan& plan,
                      DispatchRecord* mine);

// What every record check of this call compares against.
RecordBounds dispatch_bounds(const DispatchOp& op, const Topology& topo, int node_count);

// The dispatch records of one EP group of a call: mine, or (T == 2) my TP peer's.
struct DispatchRecords {
    const CallRounds* rounds = nullptr;
    bool peer = false;
    const DispatchRecord& operator()(int64_t r) const {
        return peer ? rounds->peer<DispatchRecord>(r) : rounds->own<DispatchRecord>(r);
    }
};

// Every sender of a group, as this receiver reads it (records checked: the same verdict on every
// rank, returned; plans copied and tensors mapped: failures this rank's alone, into *local).
Status read_sources(const DispatchRecords& records,
                    const RecordBounds& bounds,
                    transport::Transport& memory,
                    const std::string& group,
                    std::vector<SourceView>* sources,
                    std::vector<std::vector<int32_t>>* plans,
                    Status* local);

// Run-time checks over one EP group's records: ids and masks, BS agreement when globalBs = 0,
// no receiver over its capacity A. Identical on every rank that looks at the same records.
Status check_group(const DispatchOp& op,
                   const Topology& topo,
                   const DispatchRecords& records,
                   const std::vector<SourceView>& sources,
                   int64_t group_bs,
                   const std::string& group_name);

// The single copy and every output; runs only after a successful verdict.
Status move_rows(const DispatchOp& op,
                 const Topology& topo,
                 const CallRounds& rounds,
                 DispatchScratch& s);

}  // namespace moedist::core
