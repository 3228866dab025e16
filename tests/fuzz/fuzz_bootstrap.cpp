// The messages of a group's bootstrap as another process may send them (transport/bootstrap.hpp):
// any bytes as the all-gather's hellos (either round, any group size), as a claim at the hub, as
// the hub's verdict. Invariants, checked here:
// - no input crashes or reads past what it was given (ASan);
// - a verdict's status carries a known code and a message of printable characters only, bounded;
// - a claim is accepted only with this protocol's magic and a rank in range other than the hub's;
// - hellos are accepted only when every one names its rank, the group size, the name and (round
//   1) rank 0's control block of control_bytes(size); `failed` then names a member that said no;
// - the frames of the hub across hosts (transport/host_rendezvous.hpp): a header is accepted only
//   with the magic, version 1, the kind asked and a body within its bounds; a claim only with the
//   fingerprint, the group size, a rank in [1, size) and a blob that fills the frame and is at
//   most kHostBlobBytes; a verdict only ok 0/1, the size, and exactly every blob when ok.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "byte_reader.hpp"
#include "transport/bootstrap.hpp"
#include "transport/host_rendezvous.hpp"
#include "transport/slot_group.hpp"
#include "util/peer_text.hpp"

namespace {

namespace tp = moedist::transport;

[[noreturn]] void fail(const std::string& why) {
    std::fprintf(stderr, "fuzz_bootstrap: %s\n", why.c_str());
    std::abort();
}

void check_text(const std::string& text, const char* what) {
    for (char c : text) {
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7F)
            fail(std::string(what) + " holds a non-printable byte");
    }
    if (text.size() > 1200) fail(std::string(what) + " is not bounded");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    moedist::fuzz::ByteReader in(data, size);
    const int kind = static_cast<int>(in.range(0, 5));
    const int group = static_cast<int>(in.range(1, 8));
    const std::size_t header = size < 3 ? size : 3;
    std::vector<std::byte> rest(reinterpret_cast<const std::byte*>(data) + header,
                                reinterpret_cast<const std::byte*>(data) + size);
    if (kind == 0) {  // hellos; the front of the input may be turned into well-formed hellos
        const bool first_round = (size > 2 && (data[2] & 1) != 0);
        const uint64_t name_hash = 0xABCDEF;
        if (rest.size() >= sizeof(tp::Hello) * static_cast<std::size_t>(group) && size > 2 &&
            (data[2] & 2) != 0) {
            for (int r = 0; r < group; ++r) {  // keep the fuzzer's bytes past the fixed fields
                tp::Hello h;
                std::memcpy(
                    &h, rest.data() + sizeof(tp::Hello) * static_cast<std::size_t>(r), sizeof(h));
                h.magic = tp::Hello::kMagic;
                h.version = tp::Hello::kVersion;
                h.size = group;
                h.rank = r;
                h.name_hash = name_hash;
                if (r == 0 && first_round) h.control_bytes = tp::control_bytes(group);
                std::memcpy(
                    rest.data() + sizeof(tp::Hello) * static_cast<std::size_t>(r), &h, sizeof(h));
            }
        }
        int failed = -2;
        const std::string why = tp::check_hellos(rest, group, name_hash, first_round, &failed);
        if (why.size() > 1200) fail("a hello verdict is not bounded");
        if (why.empty()) {
            if (rest.size() != sizeof(tp::Hello) * static_cast<std::size_t>(group))
                fail("accepted a short all-gather");
            for (int r = 0; r < group; ++r) {
                tp::Hello h;
                std::memcpy(
                    &h, rest.data() + sizeof(tp::Hello) * static_cast<std::size_t>(r), sizeof(h));
                if (h.rank != r || h.size != group || h.magic != tp::Hello::kMagic)
                    fail("accepted a foreign hello");
                if (h.process.pid <= 0 || h.process.nonce == 0) fail("accepted an unnamed process");
                if (first_round && r == 0 && h.ok != 0 &&
                    h.control_bytes != tp::control_bytes(group))
                    fail("accepted a control block of another size");
            }
            if (failed >= group || failed < -1) fail("named a failed member out of range");
        }
    } else if (kind == 1) {
        tp::Claim claim;
        const int hub = static_cast<int>(in.range(0, 7)) % group;
        const std::string why = tp::check_claim(rest, group, hub, &claim);
        if (why.empty() &&
            (claim.magic != tp::Claim::kMagic || claim.rank < 0 || claim.rank >= group ||
             claim.rank == hub || rest.size() != sizeof(tp::Claim)))
            fail("accepted a bad claim");
    } else if (kind == 3) {  // a host frame's header
        const auto want = static_cast<tp::HostFrame>(1 + group % 3);
        const std::size_t low = static_cast<std::size_t>(group) * 8, high = low + 4096;
        const std::span<const std::byte> frame(rest.data(),
                                               std::min(rest.size(), sizeof(tp::HostFrameHeader)));
        if (tp::check_host_header(frame, want, low, high).empty()) {
            tp::HostFrameHeader h;
            std::memcpy(&h, frame.data(), sizeof(h));
            if (frame.size() != sizeof(h) || h.magic != tp::HostFrameHeader::kMagic ||
                h.version != 1 || h.kind != static_cast<uint16_t>(want) || h.bytes < low ||
                h.bytes > high)
                fail("accepted a bad frame header");
        }
    } else if (kind == 4) {  // a claim at the hub
        tp::HostClaim claim;
        const uint64_t fingerprint = 0x1234567890ULL;
        if (rest.size() >= sizeof(tp::HostClaim) && size > 2 && (data[2] & 1) != 0) {
            std::memcpy(
                rest.data(), &fingerprint, sizeof(fingerprint));  // get past the first check
            std::memcpy(rest.data() + 12, &group, sizeof(group));
        }
        if (tp::check_host_claim(rest, fingerprint, group, &claim).empty() &&
            (claim.fingerprint != fingerprint || claim.size != group || claim.rank < 1 ||
             claim.rank >= group || claim.blob_bytes > tp::kHostBlobBytes ||
             rest.size() != sizeof(tp::HostClaim) + claim.blob_bytes))
            fail("accepted a bad host claim");
    } else if (kind == 5) {  // the hub's verdict
        tp::HostVerdict verdict;
        const std::size_t blob = static_cast<std::size_t>(in.range(0, 64));
        if (tp::check_host_verdict(rest, group, blob, &verdict).empty()) {
            if ((verdict.ok != 0 && verdict.ok != 1) || verdict.size != group ||
                rest.size() != sizeof(tp::HostVerdict) +
                                   (verdict.ok ? static_cast<std::size_t>(group) * blob : 0))
                fail("accepted a bad host verdict");
            check_text(moedist::util::peer_text(verdict.message), "a host verdict's message");
        }
    } else {
        const moedist::Status s = tp::read_verdict(rest, "fuzz");
        const int code = s.raw_code();
        if (code != 0 && code != 161001 && code != 161002 && code != 361001 && code != 561002 &&
            code != 561000)
            fail("a verdict carried an unknown code");
        check_text(s.message(), "a verdict's message");
    }
    return 0;
}
