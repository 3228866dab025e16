// Ranks on other nodes (the mpi backend across hosts): the bytes that must cross nodes, each
// once per node, and the views the core then reads them through.
//
// Dispatch. Sender s sends to every other node n, once, the tokens n needs (a token with an
// expert on n, or whose shared rank is on n), to n's gateway for s: the rank of n at index
// (s's index in its node) mod (ranks of n). One pack per (s, n):
//
//   [ tokens: int32 × c | ids: int32 × c·K | V2: entry flags: byte × c·K (1: active) |
//     weights: f32 × c·K (with expertScales) |
//     token scales: f32 × c (pre-quantized x) | scales: the whole tensor (static or smooth) |
//     rows: c × (x row, or the staged quantized row) | staged scales: c × their entries ]
//
// every section 64-byte aligned; both sides compute the layout from s's record (c comes in
// its tokens_to_node). The gateway keeps the packs in its arena, builds each sender's plan over
// the compact tokens, and lists them in a directory it publishes in a node-local round; every
// rank of the node reads remote senders through those (SourceView with compact_of).
//
// Combine. Expert rank d sends each remote source s the rows of s it holds, in its block order
// (local expert, then s's order; a shared rank: s's chunk); s knows how many from its own ids.
// s reads them through an OwnerView whose counts place them where its expandIdx points.
#pragma once

#include <vector>

#include "core/ops.hpp"
#include "moedist/export.hpp"
#include "core/plan.hpp"
#include "core/records.hpp"
#include "core/views.hpp"
#include "transport/transport.hpp"

namespace moedist::core {

// What this rank's last call sent to other nodes: rows and bytes (packs with their metadata),
// and the rows a flat all-to-all (one row per (token, k) entry and shared row) would have sent.
struct CrossNodeTraffic {
    int64_t dispatch_rows = 0, dispatch_bytes = 0, dispatch_flat_rows = 0;
    int64_t combine_rows = 0, combine_bytes = 0;
};
MOEDIST_API CrossNodeTraffic last_cross_node_traffic();

// The tokens of this rank (ascending) node n needs, for every node (empty for its own).
void tokens_for_nodes(const DispatchOp& op,
                      const Topology& topo,
                      const transport::Transport& endpoint,
                      const SendPlan& plan,
                      std::vector<std::vector<int32_t>>* out);

// Sends this rank's packs, receives those it is the gateway of, publishes them to the node and
// fills sources[s] for every sender s on another node. Collective over the group and the node.
// `published` says whether this rank joined the node round (it must then finish it).
Status bring_remote_sources(const DispatchOp& op,
                            const Topology& topo,
                            const SendPlan& plan,
                            transport::Transport& endpoint,
                            const std::vector<const DispatchRecord*>& records,
                            std::vector<SourceView>* sources,
                            uint64_t* node_call);

// Sends the rows this rank holds for sources on other nodes and receives its own tokens' rows
// from every remote expert rank; owners[d] of every remote d then reads them. Collective.
// `fake_counts` holds the counts of those views (kept until the reduction is done).
Status bring_remote_rows(const CombineOp& op,
                         const Topology& topo,
                         const SendPlan& plan,
                         transport::Transport& endpoint,
                         std::vector<OwnerView>* owners,
                         std::vector<int32_t>* fake_counts);

}  // namespace moedist::core
