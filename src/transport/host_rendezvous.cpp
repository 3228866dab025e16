#include "transport/host_rendezvous.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "util/env.hpp"
#include "util/log.hpp"
#include "util/peer_text.hpp"
#include "util/unique_fd.hpp"

namespace moedist::transport {

std::string check_host_header(std::span<const std::byte> header,
                              HostFrame kind,
                              std::size_t min,
                              std::size_t max) {
    HostFrameHeader h;
    if (header.size() != sizeof(h))
        return "a frame header must be " + std::to_string(sizeof(h)) + " bytes, got " +
               std::to_string(header.size());
    std::memcpy(&h, header.data(), sizeof(h));
    if (h.magic != HostFrameHeader::kMagic) return "a frame must start with moedist's magic";
    if (h.version != HostFrameHeader::kVersion)
        return "a frame must be of protocol version 1, got " + std::to_string(h.version);
    if (h.kind != static_cast<uint16_t>(kind))
        return "a frame must be of kind " + std::to_string(static_cast<int>(kind)) + ", got " +
               std::to_string(h.kind);
    if (h.bytes < min || h.bytes > max || h.bytes > kHostMaxFrameBytes)
        return "a frame's body must be " + std::to_string(min) + ".." + std::to_string(max) +
               " bytes, got " + std::to_string(h.bytes);
    return {};
}

std::string check_host_claim(std::span<const std::byte> body,
                             uint64_t fingerprint,
                             int size,
                             HostClaim* out) {
    if (body.size() < sizeof(HostClaim)) return "a claim must hold its fixed part";
    std::memcpy(out, body.data(), sizeof(HostClaim));
    if (out->fingerprint != fingerprint)
        return "a claim must carry this rank table's fingerprint (another job or another table)";
    if (out->size != size)
        return "a claim must be for a group of " + std::to_string(size) + ", got " +
               std::to_string(out->size);
    if (out->rank < 1 || out->rank >= size)
        return "a claim's rank must be in [1, " + std::to_string(size) + "), got " +
               std::to_string(out->rank);
    if (out->blob_bytes > kHostBlobBytes || body.size() != sizeof(HostClaim) + out->blob_bytes)
        return "a claim's blob must be at most " + std::to_string(kHostBlobBytes) +
               " bytes and fill the frame";
    return {};
}

std::string check_host_verdict(std::span<const std::byte> body,
                               int size,
                               std::size_t blob_bytes,
                               HostVerdict* out) {
    if (body.size() < sizeof(HostVerdict)) return "a verdict must hold its fixed part";
    std::memcpy(out, body.data(), sizeof(HostVerdict));
    if (out->ok != 0 && out->ok != 1) return "a verdict must say ok (1) or not (0)";
    if (out->size != size)
        return "a verdict must be for a group of " + std::to_string(size) + ", got " +
               std::to_string(out->size);
    const std::size_t blobs = out->ok ? static_cast<std::size_t>(size) * blob_bytes : 0;
    if (body.size() != sizeof(HostVerdict) + blobs)
        return "a verdict must carry every rank's blob and nothing more";
    return {};
}

void host_mac(const std::string& key,
              std::span<const std::span<const std::byte>> parts,
              uint8_t (&out)[kHostMacBytes]) {
    std::memset(out, 0, sizeof(out));
    if (key.empty()) return;
    std::vector<unsigned char> text;
    for (const auto& part : parts) {
        const auto* p = reinterpret_cast<const unsigned char*>(part.data());
        text.insert(text.end(), p, p + part.size());
    }
    unsigned int length = 0;
    HMAC(EVP_sha256(),
         key.data(),
         static_cast<int>(key.size()),
         text.data(),
         text.size(),
         out,
         &length);
}

namespace {

constexpr auto kClaimWindow = std::chrono::seconds(1);   // a connection's time to say who it is
constexpr auto kRetry = std::chrono::milliseconds(50);   // between a member's connect attempts
constexpr auto kVerdictGrace = std::chrono::seconds(2);  // a member waits this past the deadline

int ms_left(Clock::time_point deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left, 1 << 30));
}

// All of `bytes`, or false at the deadline, a closed peer or an error.
bool write_all(int fd, const void* data, std::size_t bytes, Clock::time_point deadline) {
    const auto* p = static_cast<const char*>(data);
    while (bytes > 0) {
        pollfd pfd{fd, POLLOUT, 0};
        if (poll(&pfd, 1, ms_left(deadline)) <= 0) return false;
        const ssize_t n = send(fd, p, bytes, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n <= 0) return false;
        p += n;
        bytes -= static_cast<std::size_t>(n);
    }
    return true;
}

bool read_all(int fd, void* data, std::size_t bytes, Clock::time_point deadline) {
    auto* p = static_cast<char*>(data);
    while (bytes > 0) {
        pollfd pfd{fd, POLLIN, 0};
        if (poll(&pfd, 1, ms_left(deadline)) <= 0) return false;
        const ssize_t n = recv(fd, p, bytes, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n <= 0) return false;
        p += n;
        bytes -= static_cast<std::size_t>(n);
    }
    return true;
}

bool send_frame(int fd,
                HostFrame kind,
                std::span<const std::span<const std::byte>> parts,
                Clock::time_point deadline) {
    HostFrameHeader h;
    h.kind = static_cast<uint16_t>(kind);
    std::size_t total = 0;
    for (const auto& part : parts) total += part.size();
    h.bytes = static_cast<uint32_t>(total);
    if (!write_all(fd, &h, sizeof(h), deadline)) return false;
    for (const auto& part : parts)
        if (!write_all(fd, part.data(), part.size(), deadline)) return false;
    return true;
}

// A frame's body, its header checked first (nothing is allocated before); "" or what is wrong.
std::string read_frame(int fd,
                       HostFrame kind,
                       std::size_t min,
                       std::size_t max,
                       Clock::time_point deadline,
                       std::vector<std::byte>* body) {
    std::byte header[sizeof(HostFrameHeader)];
    if (!read_all(fd, header, sizeof(header), deadline))
        return "a frame must come before the deadline, got none (or the connection closed)";
    if (std::string why = check_host_header(header, kind, min, max); !why.empty()) return why;
    HostFrameHeader h;
    std::memcpy(&h, header, sizeof(h));
    body->resize(h.bytes);
    if (!read_all(fd, body->data(), body->size(), deadline))
        return "a frame's body must come before the deadline, got it cut short";
    return {};
}

std::string endpoint_text(const sockaddr_storage& addr) {
    char host[INET6_ADDRSTRLEN] = {};
    int port = 0;
    if (addr.ss_family == AF_INET) {
        const auto& a = reinterpret_cast<const sockaddr_in&>(addr);
        inet_ntop(AF_INET, &a.sin_addr, host, sizeof(host));
        port = ntohs(a.sin_port);
    } else if (addr.ss_family == AF_INET6) {
        const auto& a = reinterpret_cast<const sockaddr_in6&>(addr);
        inet_ntop(AF_INET6, &a.sin6_addr, host, sizeof(host));
        port = ntohs(a.sin6_port);
    }
    return std::string(host) + ":" + std::to_string(port);
}

Status resolve(const HostRendezvousOptions& o, sockaddr_storage* out, socklen_t* length) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const std::string port = std::to_string(o.port);
    if (int rc = getaddrinfo(o.hub_address.c_str(), port.c_str(), &hints, &found);
        rc != 0 || found == nullptr) {
        return {Code::kRuntime,
                "the first server's address '" +
                    util::peer_text(o.hub_address.c_str(), o.hub_address.size()) +
                    "' must resolve, got: " + gai_strerror(rc)};
    }
    std::memcpy(out, found->ai_addr, found->ai_addrlen);
    *length = found->ai_addrlen;
    freeaddrinfo(found);
    return Status::Ok();
}

// A connect that gives up at the deadline (a host that does not answer would otherwise hold it
// for the kernel's SYN retries, minutes); *why on failure.
bool connect_by(int fd,
                const sockaddr_storage& addr,
                socklen_t length,
                Clock::time_point deadline,
                std::string* why) {
    const int flags = fcntl(fd, F_GETFL, 0);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), length) != 0) {
        if (errno != EINPROGRESS) {
            *why = std::strerror(errno);
            return false;
        }
        pollfd pfd{fd, POLLOUT, 0};
        if (poll(&pfd, 1, ms_left(deadline)) <= 0) {
            *why = "no answer to the connection";
            return false;
        }
        int error = 0;
        socklen_t size = sizeof(error);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size);
        if (error != 0) {
            *why = std::strerror(error);
            return false;
        }
    }
    fcntl(fd, F_SETFL, flags);
    return true;
}

std::string hub_text(const HostRendezvousOptions& o) {
    return "the hub of rank 0 at " + o.hub_address + ":" + std::to_string(o.port);
}

void random_nonce(uint8_t (&nonce)[kHostNonceBytes]) {
    std::size_t got = 0;
    while (got < sizeof(nonce)) {
        const ssize_t n = getrandom(nonce + got, sizeof(nonce) - got, 0);
        if (n > 0) got += static_cast<std::size_t>(n);
    }
}

template <class T>
std::span<const std::byte> bytes_of(const T& value) {
    return {reinterpret_cast<const std::byte*>(&value), sizeof(T)};
}

struct Member {
    util::UniqueFd fd;
    uint8_t nonce[kHostNonceBytes] = {};
};

// One connection: its claim within kClaimWindow, checked; "" and the claim, or why it is dropped.
std::string take_claim(int fd,
                       const HostRendezvousOptions& o,
                       std::size_t blob_bytes,
                       HostClaim* claim,
                       std::vector<std::byte>* body) {
    uint8_t challenge[kHostNonceBytes];
    random_nonce(challenge);
    const auto window = std::min(o.deadline, Clock::now() + kClaimWindow);
    const std::span<const std::byte> parts[] = {
        {reinterpret_cast<const std::byte*>(challenge), sizeof(challenge)}};
    if (!send_frame(fd, HostFrame::kChallenge, parts, window)) return "it took no challenge";
    if (std::string why = read_frame(fd,
                                     HostFrame::kClaim,
                                     sizeof(HostClaim),
                                     sizeof(HostClaim) + kHostBlobBytes,
                                     window,
                                     body);
        !why.empty())
        return why;
    if (std::string why = check_host_claim(*body, o.fingerprint, o.size, claim); !why.empty())
        return why;
    if (claim->blob_bytes != blob_bytes)
        return "a claim's blob must be " + std::to_string(blob_bytes) + " bytes";
    HostClaim unsigned_claim = *claim;
    std::memset(unsigned_claim.mac, 0, sizeof(unsigned_claim.mac));
    uint8_t mac[kHostMacBytes];
    const std::span<const std::byte> signed_parts[] = {
        {reinterpret_cast<const std::byte*>(challenge), sizeof(challenge)},
        bytes_of(unsigned_claim),
        std::span<const std::byte>(*body).subspan(sizeof(HostClaim))};
    host_mac(o.key, signed_parts, mac);
    if (CRYPTO_memcmp(mac, claim->mac, sizeof(mac)) != 0)
        return "a claim must prove MOEDIST_JOB_KEY (the same on every host), got a wrong MAC";
    return {};
}

Status run_hub(const HostRendezvousOptions& o,
               std::span<const std::byte> mine,
               std::size_t blob_bytes,
               std::vector<std::byte>* all) {
    sockaddr_storage addr{};
    socklen_t length = 0;
    if (Status s = resolve(o, &addr, &length); !s.ok()) return s;
    util::UniqueFd listener(socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const int yes = 1;
    setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    if (!listener.valid() ||
        bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), length) != 0 ||
        listen(listener.get(), std::min(o.size + 16, 4096)) != 0) {
        return {Code::kRuntime,
                "rank 0 must listen on the first server's address " + o.hub_address + ":" +
                    std::to_string(o.port) +
                    " (this host's; the port is HCCL_IF_BASE_PORT + the table's offset), got: " +
                    std::strerror(errno)};
    }
    all->assign(static_cast<std::size_t>(o.size) * blob_bytes, std::byte{0});
    if (!mine.empty()) std::memcpy(all->data(), mine.data(), std::min(mine.size(), blob_bytes));
    std::vector<Member> members(static_cast<std::size_t>(o.size));
    int claimed = 1;
    while (claimed < o.size) {
        pollfd pfd{listener.get(), POLLIN, 0};
        if (poll(&pfd, 1, ms_left(o.deadline)) <= 0) break;
        sockaddr_storage from{};
        socklen_t from_length = sizeof(from);
        util::UniqueFd fd(accept4(
            listener.get(), reinterpret_cast<sockaddr*>(&from), &from_length, SOCK_CLOEXEC));
        if (!fd.valid()) continue;
        HostClaim claim;
        std::vector<std::byte> body;
        std::string why = take_claim(fd.get(), o, blob_bytes, &claim, &body);
        if (why.empty() && members[static_cast<std::size_t>(claim.rank)].fd.valid())
            why = "rank " + std::to_string(claim.rank) + " was claimed already";
        if (!why.empty()) {
            MOEDIST_LOG(kWarn,
                        "rank table hub {}:{}: dropped a connection from {}: {}",
                        o.hub_address,
                        o.port,
                        endpoint_text(from),
                        why);
            continue;
        }
        Member& m = members[static_cast<std::size_t>(claim.rank)];
        m.fd = std::move(fd);
        std::memcpy(m.nonce, claim.nonce, sizeof(m.nonce));
        std::memcpy(all->data() + static_cast<std::size_t>(claim.rank) * blob_bytes,
                    body.data() + sizeof(HostClaim),
                    blob_bytes);
        ++claimed;
    }
    HostVerdict verdict;
    verdict.size = o.size;
    verdict.ok = claimed == o.size ? 1 : 0;
    Status result = Status::Ok();
    if (!verdict.ok) {
        int missing = 1;
        while (members[static_cast<std::size_t>(missing)].fd.valid()) ++missing;
        result = {Code::kRuntime,
                  "rank " + std::to_string(missing) + " of the rank table must reach " +
                      hub_text(o) + " within " + timeout_text() + ", got " +
                      std::to_string(claimed) + " of " + std::to_string(o.size) + " ranks"};
        std::memcpy(verdict.message,
                    result.message().data(),
                    std::min(result.message().size(), sizeof(verdict.message) - 1));
    }
    const std::span<const std::byte> blobs =
        verdict.ok ? std::span<const std::byte>(*all) : std::span<const std::byte>();
    const auto send_until = Clock::now() + kVerdictGrace;
    for (Member& m : members) {
        if (!m.fd.valid()) continue;
        HostVerdict signed_verdict = verdict;
        const std::span<const std::byte> parts[] = {
            {reinterpret_cast<const std::byte*>(m.nonce), sizeof(m.nonce)},
            bytes_of(verdict),
            blobs};
        host_mac(o.key, parts, signed_verdict.mac);
        const std::span<const std::byte> frame[] = {bytes_of(signed_verdict), blobs};
        (void)send_frame(m.fd.get(), HostFrame::kVerdict, frame, send_until);
    }
    return result;
}

Status run_member(const HostRendezvousOptions& o,
                  std::span<const std::byte> mine,
                  std::size_t blob_bytes,
                  std::vector<std::byte>* all) {
    sockaddr_storage addr{};
    socklen_t length = 0;
    if (Status s = resolve(o, &addr, &length); !s.ok()) return s;
    util::UniqueFd fd;
    std::vector<std::byte> body;
    std::string last = "nothing listened there";
    for (;;) {  // connect and pass the challenge; a refused or dropped attempt is retried
        if (Clock::now() >= o.deadline)
            return {Code::kRuntime,
                    "rank " + std::to_string(o.rank) + " must reach " + hub_text(o) + " within " +
                        timeout_text() + ", got: " + last};
        fd.reset(socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (fd.valid() && connect_by(fd.get(), addr, length, o.deadline, &last)) {
            last = read_frame(fd.get(),
                              HostFrame::kChallenge,
                              kHostNonceBytes,
                              kHostNonceBytes,
                              std::min(o.deadline, Clock::now() + kClaimWindow),
                              &body);
            if (last.empty()) break;
        }
        std::this_thread::sleep_for(kRetry);
    }
    HostClaim claim;
    claim.fingerprint = o.fingerprint;
    claim.rank = o.rank;
    claim.size = o.size;
    claim.blob_bytes = static_cast<uint32_t>(blob_bytes);
    random_nonce(claim.nonce);
    std::vector<std::byte> blob(blob_bytes, std::byte{0});
    if (!mine.empty()) std::memcpy(blob.data(), mine.data(), std::min(mine.size(), blob_bytes));
    const std::span<const std::byte> signed_parts[] = {body, bytes_of(claim), blob};
    host_mac(o.key, signed_parts, claim.mac);
    const std::span<const std::byte> frame[] = {bytes_of(claim), blob};
    const auto answer_by = o.deadline + kVerdictGrace;
    if (!send_frame(fd.get(), HostFrame::kClaim, frame, answer_by))
        return {Code::kRuntime,
                hub_text(o) + " must take rank " + std::to_string(o.rank) +
                    "'s claim, got the connection closed"};
    const std::size_t most = sizeof(HostVerdict) + static_cast<std::size_t>(o.size) * blob_bytes;
    if (std::string why =
            read_frame(fd.get(), HostFrame::kVerdict, sizeof(HostVerdict), most, answer_by, &body);
        !why.empty())
        return {Code::kRuntime,
                hub_text(o) + " must answer rank " + std::to_string(o.rank) + ", got: " + why};
    HostVerdict verdict;
    if (std::string why = check_host_verdict(body, o.size, blob_bytes, &verdict); !why.empty())
        return {Code::kRuntime, hub_text(o) + " must answer with a verdict, got: " + why};
    HostVerdict unsigned_verdict = verdict;
    std::memset(unsigned_verdict.mac, 0, sizeof(unsigned_verdict.mac));
    const auto blobs = std::span<const std::byte>(body).subspan(sizeof(HostVerdict));
    uint8_t mac[kHostMacBytes];
    const std::span<const std::byte> parts[] = {
        {reinterpret_cast<const std::byte*>(claim.nonce), sizeof(claim.nonce)},
        bytes_of(unsigned_verdict),
        blobs};
    host_mac(o.key, parts, mac);
    if (CRYPTO_memcmp(mac, verdict.mac, sizeof(mac)) != 0)
        return {Code::kRuntime,
                hub_text(o) +
                    " must prove MOEDIST_JOB_KEY (the same on every host), got a "
                    "wrong MAC"};
    if (!verdict.ok) return {Code::kRuntime, util::peer_text(verdict.message)};
    all->assign(blobs.begin(), blobs.end());
    return Status::Ok();
}

}  // namespace

Status host_all_gather(const HostRendezvousOptions& options,
                       std::span<const std::byte> mine,
                       std::size_t blob_bytes,
                       std::vector<std::byte>* all) {
    if (options.size < 1 || options.size > kHostMaxRanks || options.rank < 0 ||
        options.rank >= options.size || blob_bytes > kHostBlobBytes || mine.size() > blob_bytes)
        return {Code::kInvalidParam,
                "a rank table's hosts must meet as at most " + std::to_string(kHostMaxRanks) +
                    " ranks with blobs of at most " + std::to_string(kHostBlobBytes) + " bytes"};
    if (options.size == 1) {
        all->assign(blob_bytes, std::byte{0});
        if (!mine.empty()) std::memcpy(all->data(), mine.data(), mine.size());
        return Status::Ok();
    }
    return options.rank == 0 ? run_hub(options, mine, blob_bytes, all)
                             : run_member(options, mine, blob_bytes, all);
}

}  // namespace moedist::transport
