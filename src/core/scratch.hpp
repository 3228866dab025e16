// The scratch slots the core keeps on each endpoint (Transport::scratch): exposable memory of this
// rank that lives across calls, one slot per use, so a steady shape allocates nothing.
#pragma once

#include "transport/transport.hpp"

namespace moedist::core {

enum ScratchSlot : int {
    kScratchPlan = 0,         // the send plan's arrays
    kScratchStaged = 1,       // rows the sender prepared once for every receiver (quantized)
    kScratchStageX = 2,       // copies of tensors whose memory peers cannot map (processes)
    kScratchStageAux = 3,
    kScratchStageAux2 = 4,
    kScratchRemoteSend = 5,   // bytes for ranks of other nodes
    kScratchRemoteRecv = 6,   // bytes from ranks of other nodes (node peers read them)
    kScratchRemotePlans = 7,  // plans and token maps of the senders this rank serves
    kScratchStageAux3 = 8,
};
static_assert(kScratchStageAux3 < transport::Transport::kScratchSlots);

}  // namespace moedist::core
