#include "transport/bootstrap.hpp"

#include <cstring>

#include "transport/slot_group.hpp"
#include "util/peer_text.hpp"

namespace moedist::transport {

Code code_from_peer(int32_t raw) {
    switch (static_cast<Code>(raw)) {
        case Code::kOk:
        case Code::kNullptr:
        case Code::kInvalidParam:
        case Code::kRuntime:
        case Code::kInnerTiling:
        case Code::kInternal:
            return static_cast<Code>(raw);
    }
    return Code::kRuntime;
}

std::string check_hellos(std::span<const std::byte> all,
                         int size,
                         uint64_t name_hash,
                         bool first_round,
                         int* failed) {
    if (failed != nullptr) *failed = -1;
    if (size < 1 || all.size() != sizeof(Hello) * static_cast<std::size_t>(size)) {
        return "the bootstrap all-gather must return " + std::to_string(size) + " hellos of " +
               std::to_string(sizeof(Hello)) + " bytes, got " + std::to_string(all.size()) +
               " bytes";
    }
    for (int r = 0; r < size; ++r) {
        Hello h;
        std::memcpy(&h, all.data() + sizeof(Hello) * static_cast<std::size_t>(r), sizeof(Hello));
        const std::string who = "the hello of rank " + std::to_string(r);
        if (h.magic != Hello::kMagic || h.version != Hello::kVersion)
            return who + " must be a moedist hello of version 1, got other bytes";
        if (h.size != size || h.rank != r) {
            return who + " must be from rank " + std::to_string(r) + " of " +
                   std::to_string(size) + ", got rank " + std::to_string(h.rank) + " of " +
                   std::to_string(h.size) + " (the rank table changed between ranks' starts?)";
        }
        if (h.name_hash != name_hash)
            return who + " must name the same group as this rank, got another name";
        if (h.process.pid <= 0 || h.process.nonce == 0)
            return who + " must name its process, got pid " + std::to_string(h.process.pid);
        if (first_round && r == 0 && h.ok != 0) {
            if (h.group_id == 0) return who + " must carry the group's id, got 0";
            if (h.control_bytes != control_bytes(size)) {
                return who + " must announce a control block of " +
                       std::to_string(control_bytes(size)) + " bytes for " +
                       std::to_string(size) + " ranks, got " + std::to_string(h.control_bytes) +
                       " (the rank table changed between ranks' starts?)";
            }
        }
        if (h.ok == 0 && failed != nullptr && *failed < 0) *failed = r;
    }
    return {};
}

std::string check_claim(std::span<const std::byte> bytes, int size, int hub_rank, Claim* out) {
    if (bytes.size() != sizeof(Claim))
        return "a claim must be " + std::to_string(sizeof(Claim)) + " bytes, got " +
               std::to_string(bytes.size());
    Claim c;
    std::memcpy(&c, bytes.data(), sizeof(c));
    if (c.magic != Claim::kMagic || c.version != Claim::kVersion)
        return "a claim must be of moedist's rendezvous protocol, got other bytes";
    if (c.rank < 0 || c.rank >= size || c.rank == hub_rank) {
        return "a claim must name a rank in [0, " + std::to_string(size) + ") other than the hub's " +
               std::to_string(hub_rank) + ", got " + std::to_string(c.rank);
    }
    *out = c;
    return {};
}

Status read_verdict(std::span<const std::byte> bytes, const std::string& rendezvous) {
    Verdict v;
    if (bytes.size() != sizeof(v)) {
        return {Code::kRuntime,
                "the hub of '" + rendezvous + "' must answer with a verdict, got " +
                    std::to_string(bytes.size()) + " bytes"};
    }
    std::memcpy(&v, bytes.data(), sizeof(v));
    if (v.magic != Verdict::kMagic)
        return {Code::kRuntime, "the hub of '" + rendezvous + "' must answer with a verdict, got other bytes"};
    if (v.code == 0) return Status::Ok();
    return {code_from_peer(v.code),
            "rank " + std::to_string(v.hub_rank) + " (the rendezvous hub of '" + rendezvous +
                "') says: " + util::peer_text(v.message)};
}

}  // namespace moedist::transport
