// Trust at the door between hosts: the hub of a rank table across hosts (host_rendezvous.hpp),
// on 127.0.0.1 with ranks as threads. Strangers send garbage, stay silent, present another
// table or a rank twice: they are dropped and the job goes on. A wrong MOEDIST_JOB_KEY on either
// side, or a rank that never comes, fails every rank that came, naming the cause, within the
// deadline; nothing hangs.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "transport/host_rendezvous.hpp"

namespace {

namespace tp = moedist::transport;
using moedist::Status;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kBlob = 64;
constexpr uint64_t kFingerprint = 0x5EEDF00DULL;

// A port nothing listens on now.
int free_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t length = sizeof(addr);
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length);
    close(fd);
    return ntohs(addr.sin_port);
}

tp::HostRendezvousOptions options(int port, int rank, int size, std::string key = "") {
    tp::HostRendezvousOptions o;
    o.hub_address = "127.0.0.1";
    o.port = port;
    o.fingerprint = kFingerprint;
    o.key = std::move(key);
    o.rank = rank;
    o.size = size;
    o.deadline = Clock::now() + std::chrono::seconds(4);
    return o;
}

std::vector<std::byte> blob_of(int rank) {
    std::vector<std::byte> b(kBlob);
    for (std::size_t i = 0; i < kBlob; ++i)
        b[i] = static_cast<std::byte>((rank * 31 + i * 7) & 0xFF);
    return b;
}

struct Result {
    Status status;
    std::vector<std::byte> all;
};

// Ranks `ranks` of a group of `size` meet (each with its key); their results by rank.
std::vector<Result> meet(int port,
                         int size,
                         const std::vector<int>& ranks,
                         const std::vector<std::string>& keys,
                         const std::function<void()>& meanwhile = {}) {
    std::vector<Result> results(static_cast<std::size_t>(size));
    std::vector<std::thread> threads;
    const auto start = [&](std::size_t i) {
        const int r = ranks[i];
        threads.emplace_back([&, r, i] {
            Result& out = results[static_cast<std::size_t>(r)];
            const auto mine = blob_of(r);
            out.status =
                tp::host_all_gather(options(port, r, size, keys[i]), mine, kBlob, &out.all);
        });
    };
    start(0);  // the hub (or the first member) first; `meanwhile` before the others come
    if (meanwhile) meanwhile();
    for (std::size_t i = 1; i < ranks.size(); ++i) start(i);
    for (auto& t : threads) t.join();
    return results;
}

int connect_to(int port) {
    for (int attempt = 0; attempt < 200; ++attempt) {
        const int fd = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(static_cast<uint16_t>(port));
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) return fd;
        close(fd);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
}

// A stranger's claim: a well-formed frame with `fingerprint` and `rank`, no MAC.
void send_claim(int fd, uint64_t fingerprint, int rank, int size) {
    std::byte challenge[sizeof(tp::HostFrameHeader) + tp::kHostNonceBytes];
    (void)!read(fd, challenge, sizeof(challenge));
    tp::HostClaim claim;
    claim.fingerprint = fingerprint;
    claim.rank = rank;
    claim.size = size;
    claim.blob_bytes = kBlob;
    tp::HostFrameHeader h;
    h.kind = static_cast<uint16_t>(tp::HostFrame::kClaim);
    h.bytes = static_cast<uint32_t>(sizeof(claim) + kBlob);
    std::vector<std::byte> frame(sizeof(h) + sizeof(claim) + kBlob, std::byte{0x5A});
    std::memcpy(frame.data(), &h, sizeof(h));
    std::memcpy(frame.data() + sizeof(h), &claim, sizeof(claim));
    (void)!write(fd, frame.data(), frame.size());
}

TEST(TrustHosts, FourRanksGetEveryBlobInRankOrder) {
    const int port = free_port();
    const auto results = meet(port, 4, {0, 1, 2, 3}, {"", "", "", ""});
    for (int r = 0; r < 4; ++r) {
        ASSERT_TRUE(results[r].status.ok()) << results[r].status.message();
        ASSERT_EQ(results[r].all.size(), 4 * kBlob);
        for (int s = 0; s < 4; ++s)
            EXPECT_EQ(0, std::memcmp(results[r].all.data() + s * kBlob, blob_of(s).data(), kBlob))
                << "rank " << r << " got rank " << s << "'s blob wrong";
    }
}

TEST(TrustHosts, StrangersAreDroppedAndTheJobGoesOn) {
    const int port = free_port();
    std::vector<int> strangers;
    const auto results = meet(port, 4, {0, 1, 2, 3}, {"k", "k", "k", "k"}, [&] {
        int garbage = connect_to(port);  // bytes that are no frame
        (void)!write(garbage, "GET / HTTP/1.0\r\n\r\n", 18);
        strangers.push_back(garbage);
        strangers.push_back(connect_to(port));  // silence (the hub waits a second for it)
        int other = connect_to(port);           // another table's claim
        send_claim(other, kFingerprint + 1, 2, 4);
        strangers.push_back(other);
        int forged = connect_to(port);  // this table's fingerprint, without the key
        send_claim(forged, kFingerprint, 3, 4);
        strangers.push_back(forged);
    });
    for (int r = 0; r < 4; ++r) {
        ASSERT_TRUE(results[r].status.ok()) << "rank " << r << ": " << results[r].status.message();
        for (int s = 0; s < 4; ++s)
            EXPECT_EQ(0, std::memcmp(results[r].all.data() + s * kBlob, blob_of(s).data(), kBlob));
    }
    for (int fd : strangers) close(fd);
}

TEST(TrustHosts, ARankThatNeverComesIsNamedOnEveryRankThatCame) {
    const int port = free_port();
    const auto start = Clock::now();
    const auto results = meet(port, 4, {0, 1, 3}, {"", "", ""});
    for (int r : {0, 1, 3}) {
        EXPECT_EQ(results[r].status.raw_code(), 361001);
        EXPECT_NE(results[r].status.message().find("rank 2 of the rank table must reach the hub"),
                  std::string::npos)
            << results[r].status.message();
    }
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
}

TEST(TrustHosts, AMemberWithAnotherKeyIsRefusedAndNamed) {
    const int port = free_port();
    const auto results = meet(port, 3, {0, 1, 2}, {"secret", "secret", "guess"});
    EXPECT_EQ(results[2].status.raw_code(), 361001) << "the member with the wrong key must fail";
    for (int r : {0, 1}) {
        EXPECT_EQ(results[r].status.raw_code(), 361001);
        EXPECT_NE(results[r].status.message().find("rank 2 of the rank table"), std::string::npos)
            << results[r].status.message();
    }
}

TEST(TrustHosts, AHubWithAnotherKeyIsNotBelieved) {
    const int port = free_port();
    const auto results = meet(port, 2, {0, 1}, {"forged", "secret"});
    EXPECT_EQ(results[1].status.raw_code(), 361001);
    EXPECT_EQ(results[0].status.raw_code(), 361001);
}

TEST(TrustHosts, ARankClaimedTwiceKeepsTheFirstClaim) {
    const int port = free_port();
    std::vector<Result> results(4);
    Result twice;
    std::vector<std::thread> threads;
    for (int r : {0, 1, 2, 3})
        threads.emplace_back([&, r] {
            results[r].status =
                tp::host_all_gather(options(port, r, 4), blob_of(r), kBlob, &results[r].all);
        });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // rank 1's first claim is in
    threads.emplace_back([&] {
        twice.status = tp::host_all_gather(options(port, 1, 4), blob_of(9), kBlob, &twice.all);
    });
    for (auto& t : threads) t.join();
    EXPECT_FALSE(twice.status.ok()) << "a second claim of rank 1 must be refused";
    for (int r = 0; r < 4; ++r) {
        ASSERT_TRUE(results[r].status.ok()) << results[r].status.message();
        EXPECT_EQ(0, std::memcmp(results[r].all.data() + kBlob, blob_of(1).data(), kBlob));
    }
}

TEST(TrustHosts, FramesOutOfBoundsAreRefusedBeforeAnyAllocation) {
    tp::HostFrameHeader h;
    h.kind = static_cast<uint16_t>(tp::HostFrame::kVerdict);
    h.bytes = 0xFFFFFFFFu;
    std::byte raw[sizeof(h)];
    std::memcpy(raw, &h, sizeof(h));
    EXPECT_FALSE(tp::check_host_header(raw, tp::HostFrame::kVerdict, 0, 1 << 20).empty());
    h.bytes = 100;
    h.magic ^= 1;
    std::memcpy(raw, &h, sizeof(h));
    EXPECT_FALSE(tp::check_host_header(raw, tp::HostFrame::kVerdict, 0, 1 << 20).empty());
    h.magic ^= 1;
    std::memcpy(raw, &h, sizeof(h));
    EXPECT_TRUE(tp::check_host_header(raw, tp::HostFrame::kVerdict, 0, 1 << 20).empty());
    EXPECT_FALSE(tp::check_host_header(raw, tp::HostFrame::kClaim, 0, 1 << 20).empty());
}

}  // namespace
