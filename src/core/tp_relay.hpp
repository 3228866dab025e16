// TP = 2 with EP groups that span nodes (docs/contract.md §8). On one node a rank reads its peer
// rows straight from the senders of its TP peer's EP group; across nodes those senders are
// elsewhere, so the two ranks of a TP pair (always on one node) hand each other what their own EP
// exchanges produced, in one relay round on the TP group (CallRounds::relay_round):
//
//   dispatch, after my own rows are written:
//     the peer's expandX / dynamicScales / extra rows [0, n')  →  my rows [own, own + n')
//     the peer's epRecvCounts' own blocks                      →  my epRecvCounts [W·L, 2·W·L)
//     tpRecvCounts = (own, n') by TP rank; expertTokenNums (L == 1) = own + n'
//   combine, before my EP record is published:
//     summed[i] = rne(f32(expandX[i]) + f32(peer.expandX[peer_own + i]))   for my own rows i
//     (docs/contract.md §4 step 1) into scratch; the EP combine then returns `summed` as a
//     T == 1 rank returns its rows.
//
// The bits are those of the one-node path: the same rows in the same order, the same rounding.
// Everything in the peer's record is checked before use (bounded rows, dtypes, shapes, regions).
#pragma once

#include <functional>

#include "core/call_rounds.hpp"
#include "core/ops.hpp"
#include "core/records.hpp"
#include "moedist/status.hpp"

namespace moedist::core {

// After move_rows (or instead, when `verdict` failed): the relay round of a dispatch. Returns the
// call's verdict; *peer_rows gets the rows copied.
Status relay_dispatch_rows(const DispatchOp& op,
                           CallRounds& rounds,
                           const Status& verdict,
                           int64_t own_rows,
                           int64_t* peer_rows);

// The TP peer's tensor a ref names, mapped here (data null when it cannot be).
using PeerTensors = std::function<TensorView(const TensorRef&)>;

// The dispatch relay's read, on its own for the hostile tests: every field of the peer's record
// checked (rows within A and expandX, each tensor's dtype, shape and extent inside its region,
// the counts a running total ending at its rows) before its rows, scales, extra rows and counts
// are copied after mine and tpRecvCounts / expertTokenNums written. Nothing is written on failure.
Status take_peer_rows(const DispatchOp& op,
                      int64_t own_rows,
                      const TpRelayRecord& peer,
                      const PeerTensors& tensors,
                      int64_t* peer_rows);

// Before arriving: the relay round of a combine. On success *summed views my own rows with the
// peer's partials added (exposable scratch of my EP endpoint).
Status relay_combine_partials(const CombineOp& op,
                              CallRounds& rounds,
                              const Status& verdict,
                              TensorView* summed);

}  // namespace moedist::core
