// An all-gather among the processes of a job across hosts, before they have anything else in
// common: a TCP hub that the table's rank 0 runs on the first server's address, every other rank
// connecting to it (retrying until the deadline). One round: each rank gives a blob of at most
// kBlobBytes (its host and its UCX worker address), every rank gets everyone's, in rank order.
//
// What comes over the socket is untrusted. Every message is one frame — a fixed header (magic,
// version, kind, length ≤ kMaxFrameBytes) then its body — read with a deadline, bounded before
// anything is allocated, and checked field by field by the pure functions below (the fuzzers
// call them on any bytes). Nothing in a frame is ever a pointer, a descriptor or a size used
// unchecked.
//
//   hub → member   Challenge  a fresh random nonce
//   member → hub   Claim      the table's fingerprint, rank, size, the member's own nonce, its
//                             blob, and a MAC over the hub's nonce and all of that
//   hub → member   Verdict    ok or why not, everyone's blobs, a MAC over the member's nonce
//
// The MAC is HMAC-SHA256 keyed with MOEDIST_JOB_KEY when it is set (then both ends prove they
// hold it, and a replayed frame fails: the nonces are fresh), all zero otherwise (then the
// fingerprint alone keeps two jobs apart). The hub drops a stranger — garbage, silence past a
// second, another table, a wrong MAC, a rank out of range or already claimed — with a log line
// and goes on; only a rank that never comes makes the round fail (361001 on every member that
// came, naming it), as does a hub that never answers (naming its address).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "transport/transport.hpp"

namespace moedist::transport {

struct HostFrameHeader {
    static constexpr uint32_t kMagic = 0x3148646DU;  // "mdH1"
    static constexpr uint16_t kVersion = 1;
    uint32_t magic = kMagic;
    uint16_t version = kVersion;
    uint16_t kind = 0;
    uint32_t bytes = 0;  // the body's
};

enum class HostFrame : uint16_t { kChallenge = 1, kClaim = 2, kVerdict = 3 };

constexpr std::size_t kHostBlobBytes = 4096;
constexpr int kHostMaxRanks = 4096;
constexpr std::size_t kHostNonceBytes = 16;
constexpr std::size_t kHostMacBytes = 32;

struct HostClaim {
    uint64_t fingerprint = 0;
    int32_t rank = -1;
    int32_t size = 0;
    uint8_t nonce[kHostNonceBytes] = {};
    uint32_t blob_bytes = 0;
    uint32_t reserved = 0;
    uint8_t mac[kHostMacBytes] = {};
};

struct HostVerdict {
    int32_t ok = 0;
    int32_t size = 0;
    char message[240] = {};
    uint8_t mac[kHostMacBytes] = {};
};

// The largest body of any frame: a verdict with kHostMaxRanks blobs.
constexpr std::size_t kHostMaxFrameBytes = sizeof(HostVerdict) + kHostMaxRanks * kHostBlobBytes;

// Empty when `header` is a frame of this protocol of kind `kind` whose body is `body_bytes`
// long, which must be within [min, max]; else what is wrong, in words.
std::string check_host_header(std::span<const std::byte> header,
                              HostFrame kind,
                              std::size_t min,
                              std::size_t max);

// Empty when `body` is a claim of a rank of a group of `size` with `fingerprint`, with its blob
// (≤ kHostBlobBytes) after it; *out gets the claim. The MAC is checked by the caller.
std::string check_host_claim(std::span<const std::byte> body,
                             uint64_t fingerprint,
                             int size,
                             HostClaim* out);

// Empty when `body` is a verdict for a group of `size` whose blobs are blob_bytes long each;
// *out gets it (its message as sent; show it through util::peer_text).
std::string check_host_verdict(std::span<const std::byte> body,
                               int size,
                               std::size_t blob_bytes,
                               HostVerdict* out);

// HMAC-SHA256 of the parts, keyed with `key`; all zero when the key is empty.
void host_mac(const std::string& key,
              std::span<const std::span<const std::byte>> parts,
              uint8_t (&out)[kHostMacBytes]);

struct HostRendezvousOptions {
    std::string hub_address;  // the first server's address (numeric IPv4/IPv6 or a name)
    int port = 0;
    uint64_t fingerprint = 0;
    std::string key;  // MOEDIST_JOB_KEY's value, or ""
    int rank = -1;
    int size = 0;
    Clock::time_point deadline;
};

// The one round: `mine` (at most kHostBlobBytes; padded with zeros to blob_bytes, which every
// rank must pass alike) in, everyone's blobs (size · blob_bytes, rank order) out.
Status host_all_gather(const HostRendezvousOptions& options,
                       std::span<const std::byte> mine,
                       std::size_t blob_bytes,
                       std::vector<std::byte>* all);

}  // namespace moedist::transport
