#include "transport/socket_rendezvous.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "transport/bootstrap.hpp"
#include "util/env.hpp"
#include "util/log.hpp"

namespace moedist::transport {
namespace {

constexpr auto kClaimWindow = std::chrono::seconds(1);  // a connection's time to say who it is
constexpr auto kBindToListen = std::chrono::milliseconds(50);  // a hub between bind and listen

sockaddr_un address_of(const std::string& name, socklen_t* length) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::size_t n = std::min(name.size(), sizeof(addr.sun_path) - 1);
    std::memcpy(addr.sun_path + 1, name.data(), n);  // abstract: sun_path[0] = '\0'
    *length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
    return addr;
}

int ms_left(Clock::time_point deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left, 1 << 30));
}

Status timeout(const std::string& what) {
    return {Code::kRuntime,
            what + " within MOEDIST_TIMEOUT_MS = " + std::to_string(util::timeout_ms()) + " ms"};
}

bool credentials(int fd, ucred* cred) {
    socklen_t length = sizeof(*cred);
    return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &length) == 0 && length == sizeof(*cred);
}

int seqpacket() { return socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0); }

// What a member found at a candidate name.
enum class Found { kOurHub, kForeign, kNobody };

// Connects to the hub at `name`: kOurHub (and *fd) when a process of this user listens there,
// kForeign when another user's process holds it (or it never listens), kNobody when unbound.
Found connect_hub(const std::string& name, int* fd) {
    socklen_t length = 0;
    const sockaddr_un addr = address_of(name, &length);
    const auto give_up = Clock::now() + kBindToListen;
    for (;;) {
        const int s = seqpacket();
        if (s < 0) return Found::kNobody;
        if (connect(s, reinterpret_cast<const sockaddr*>(&addr), length) == 0) {
            ucred cred{};
            if (credentials(s, &cred) && cred.uid == geteuid()) {
                *fd = s;
                return Found::kOurHub;
            }
            MOEDIST_LOG(kWarn,
                        "the rendezvous name '{}' is held by uid {} (pid {}), not this user: "
                        "skipped",
                        name,
                        cred.uid,
                        cred.pid);
            close(s);
            return Found::kForeign;
        }
        const int error = errno;
        close(s);
        if (error == ECONNREFUSED || error == EAGAIN) {  // bound but not (yet) listening, or full
            if (Clock::now() >= give_up) return Found::kForeign;
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
            continue;
        }
        return Found::kNobody;
    }
}

}  // namespace

SocketRendezvous::SocketRendezvous(int rank, int size, Clock::time_point deadline)
    : rank_(rank), size_(size), deadline_(deadline) {}

SocketRendezvous::~SocketRendezvous() {
    if (listen_fd_ >= 0) close(listen_fd_);
    if (hub_fd_ >= 0) close(hub_fd_);
    for (int fd : member_fds_)
        if (fd >= 0) close(fd);
}

Status SocketRendezvous::send_bytes(int fd, const void* data, std::size_t bytes) {
    const auto* p = static_cast<const char*>(data);
    while (bytes > 0) {
        const std::size_t chunk = std::min(bytes, kChunk);
        pollfd pfd{fd, POLLOUT, 0};
        if (poll(&pfd, 1, ms_left(deadline_)) <= 0)
            return timeout("the rendezvous '" + name_ + "' must send its bytes");
        const ssize_t n = send(fd, p, chunk, MSG_NOSIGNAL);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n != static_cast<ssize_t>(chunk)) {
            return {Code::kRuntime,
                    "the rendezvous '" + name_ +
                        "' must keep its connections, got: " + std::strerror(errno)};
        }
        p += chunk;
        bytes -= chunk;
    }
    return Status::Ok();
}

Status SocketRendezvous::receive_bytes(int fd, void* data, std::size_t bytes) {
    auto* p = static_cast<char*>(data);
    while (bytes > 0) {
        const std::size_t chunk = std::min(bytes, kChunk);
        pollfd pfd{fd, POLLIN, 0};
        if (poll(&pfd, 1, ms_left(deadline_)) <= 0)
            return timeout("the rendezvous '" + name_ + "' must receive its bytes");
        const ssize_t n = recv(fd, p, chunk, MSG_TRUNC);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n == 0 || (n < 0 && errno != EINTR)) {
            return {Code::kRuntime,
                    "a member of the rendezvous '" + name_ +
                        "' must stay until it completes, got its connection closed (it exited or "
                        "died)"};
        }
        if (n != static_cast<ssize_t>(chunk)) {
            return {Code::kRuntime,
                    "a member of the rendezvous '" + name_ + "' must send " +
                        std::to_string(chunk) + "-byte chunks, got " + std::to_string(n)};
        }
        p += chunk;
        bytes -= chunk;
    }
    return Status::Ok();
}

Status SocketRendezvous::open(const std::string& key,
                              int rank,
                              int size,
                              uint64_t fingerprint,
                              Clock::time_point deadline,
                              std::unique_ptr<SocketRendezvous>* out) {
    std::unique_ptr<SocketRendezvous> r(new SocketRendezvous(rank, size, deadline));
    r->name_ = "moedist/" + key;
    if (size == 1) {
        *out = std::move(r);
        return Status::Ok();
    }
    for (int attempt = 0;; ++attempt) {
        int foreign = 0;
        for (int i = 0; i < kNames; ++i) {
            const std::string name = "moedist/" + key + "/" + std::to_string(i);
            socklen_t length = 0;
            const sockaddr_un addr = address_of(name, &length);
            const int listener = seqpacket();
            if (listener < 0)
                return {Code::kRuntime, std::string("socket() failed: ") + std::strerror(errno)};
            if (bind(listener, reinterpret_cast<const sockaddr*>(&addr), length) == 0 &&
                listen(listener, std::min(size + 16, 4096)) == 0) {
                r->name_ = name;  // the hub
                if (Status s = r->serve_claims(listener, fingerprint); !s.ok()) return s;
                *out = std::move(r);
                return Status::Ok();
            }
            close(listener);
            int fd = -1;
            const Found found = connect_hub(name, &fd);
            if (found == Found::kForeign) {
                ++foreign;
                continue;
            }
            if (found == Found::kNobody) break;  // the hub went between our bind and connect
            r->name_ = name;  // a member
            r->hub_fd_ = fd;
            Claim claim;
            claim.rank = rank;
            claim.size = size;
            claim.pid = static_cast<int32_t>(getpid());
            claim.table_fingerprint = fingerprint;
            if (Status s = r->send_bytes(fd, &claim, sizeof(claim)); !s.ok()) return s;
            // A member waits a little past the hub's deadline, so that when the hub gives up it
            // hears the hub's reason (which rank is missing) rather than a timeout of its own.
            r->deadline_ = deadline + std::chrono::seconds(2);
            if (Status s = r->hear_hub(); !s.ok()) return s;
            *out = std::move(r);
            return Status::Ok();
        }
        if (foreign == kNames) {
            return {Code::kRuntime,
                    "the rendezvous of '" + key +
                        "' must find a free name, got all " + std::to_string(kNames) +
                        " candidate names held by other users' processes"};
        }
        if (Clock::now() >= deadline) {
            return timeout("the hub of '" + key + "' (the first rank to start) must accept rank " +
                           std::to_string(rank));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min(1 + attempt, 20)));
    }
}

Status SocketRendezvous::serve_claims(int listener, uint64_t fingerprint) {
    listen_fd_ = listener;
    member_fds_.assign(static_cast<std::size_t>(size_), -1);
    std::vector<int> pids(static_cast<std::size_t>(size_), 0);
    struct Pending {
        int fd;
        Clock::time_point until;
        int32_t pid;
    };
    std::vector<Pending> pending;
    const std::size_t max_pending = static_cast<std::size_t>(size_) * 2 + 16;
    auto drop = [&](std::size_t i, const std::string& why) {
        MOEDIST_LOG(kWarn, "rendezvous '{}': dropped a connection (pid {}): {}", name_, pending[i].pid, why);
        close(pending[i].fd);
        pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(i));
    };
    for (int joined = 1; joined < size_;) {
        auto wake = deadline_;
        for (const Pending& p : pending) wake = std::min(wake, p.until);
        std::vector<pollfd> fds{{listener, POLLIN, 0}};
        for (const Pending& p : pending) fds.push_back({p.fd, POLLIN, 0});
        poll(fds.data(), fds.size(), ms_left(wake));
        const auto now = Clock::now();
        for (std::size_t i = pending.size(); i-- > 0;) {
            const short revents = fds[i + 1].revents;
            if (revents == 0) {
                if (now >= pending[i].until) drop(i, "it said nothing within a second");
                continue;
            }
            std::byte message[sizeof(Claim) + 1];
            const ssize_t n = recv(pending[i].fd, message, sizeof(message), MSG_DONTWAIT);
            if (n <= 0) {
                drop(i, "it closed before claiming a rank");
                continue;
            }
            Claim claim;
            if (std::string why = check_claim({message, static_cast<std::size_t>(n)}, size_, rank_, &claim);
                !why.empty()) {
                drop(i, why);
                continue;
            }
            if (claim.pid != pending[i].pid) {
                drop(i, "its claim says pid " + std::to_string(claim.pid));
                continue;
            }
            // The claimant hears the verdict too: it takes part in the failure.
            auto fail_all = [&](const Status& status) {
                member_fds_.push_back(pending[i].fd);
                for (Pending& p : pending)
                    if (p.fd != pending[i].fd) close(p.fd);
                pending.clear();
                return tell_members(status);
            };
            if (claim.size != size_ || claim.table_fingerprint != fingerprint) {
                return fail_all(
                    {Code::kRuntime,
                     "the rank table must not change between ranks' starts, got rank " +
                         std::to_string(claim.rank) + " (pid " + std::to_string(claim.pid) +
                         ") reading a different table (" + std::to_string(claim.size) +
                         " ranks) than the hub's (" + std::to_string(size_) + " ranks)"});
            }
            const auto r = static_cast<std::size_t>(claim.rank);
            if (member_fds_[r] >= 0) {
                const int first = pids[r];
                return fail_all(
                    {Code::kRuntime,
                     "every rank of '" + name_ + "' must be claimed once, got rank " +
                         std::to_string(claim.rank) + " claimed by pids " + std::to_string(first) +
                         " and " + std::to_string(claim.pid) +
                         ": another job is using this rank table (set MOEDIST_JOB_ID to run "
                         "jobs side by side)"});
            }
            member_fds_[r] = pending[i].fd;
            pids[r] = claim.pid;
            pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(i));
            ++joined;
        }
        if (joined == size_) break;
        if ((fds[0].revents & POLLIN) != 0) {
            const int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
            ucred cred{};
            if (fd >= 0 && (!credentials(fd, &cred) || cred.uid != geteuid())) {
                MOEDIST_LOG(kWarn,
                            "rendezvous '{}': refused a connection from uid {} (pid {})",
                            name_,
                            cred.uid,
                            cred.pid);
                close(fd);
            } else if (fd >= 0) {
                if (pending.size() >= max_pending) {
                    Pending oldest = pending.front();
                    pending.erase(pending.begin());
                    close(oldest.fd);
                }
                pending.push_back({fd, Clock::now() + kClaimWindow, cred.pid});
            }
        }
        if (Clock::now() >= deadline_) {
            int missing = 0;
            while (missing < size_ &&
                   (missing == rank_ || member_fds_[static_cast<std::size_t>(missing)] >= 0))
                ++missing;
            for (const Pending& p : pending) close(p.fd);
            return tell_members(timeout("rank " + std::to_string(missing) + " of '" + name_ +
                                        "' must join the rendezvous (" + std::to_string(joined) +
                                        " of " + std::to_string(size_) + " joined)"));
        }
    }
    for (const Pending& p : pending) close(p.fd);
    return tell_members(Status::Ok());
}

Status SocketRendezvous::tell_members(const Status& status) {
    Verdict v;
    v.code = status.raw_code();
    v.hub_rank = rank_;
    const std::size_t n = std::min(status.message().size(), sizeof(v.message) - 1);
    std::memcpy(v.message, status.message().data(), n);
    for (int fd : member_fds_) {
        if (fd >= 0) (void)send_bytes(fd, &v, sizeof(v));
    }
    return status;
}

Status SocketRendezvous::hear_hub() {
    std::byte message[sizeof(Verdict)];
    if (Status s = receive_bytes(hub_fd_, message, sizeof(message)); !s.ok())
        return {s.code(), "the rendezvous hub of '" + name_ + "': " + s.message()};
    return read_verdict(message, name_);
}

Status SocketRendezvous::all_gather(std::span<const std::byte> mine, std::vector<std::byte>* all) {
    const std::size_t n = mine.size();
    all->assign(n * static_cast<std::size_t>(size_), std::byte{0});
    std::memcpy(all->data() + n * static_cast<std::size_t>(rank_), mine.data(), n);
    if (size_ == 1) return Status::Ok();
    if (hub_fd_ >= 0) {  // member: my bytes up, the hub's verdict and everyone's down
        Status s = send_bytes(hub_fd_, mine.data(), n);
        if (s.ok()) s = hear_hub();
        if (s.ok()) s = receive_bytes(hub_fd_, all->data(), all->size());
        return s;
    }
    for (int r = 0; r < size_; ++r) {
        if (r == rank_) continue;
        if (Status s = receive_bytes(member_fds_[static_cast<std::size_t>(r)],
                                     all->data() + n * static_cast<std::size_t>(r),
                                     n);
            !s.ok()) {
            return tell_members(
                {s.code(), "rank " + std::to_string(r) + " of '" + name_ + "': " + s.message()});
        }
    }
    if (Status s = tell_members(Status::Ok()); !s.ok()) return s;
    for (int r = 0; r < size_; ++r) {
        if (r == rank_) continue;
        if (Status s = send_bytes(member_fds_[static_cast<std::size_t>(r)], all->data(), all->size());
            !s.ok())
            return s;
    }
    return Status::Ok();
}

}  // namespace moedist::transport
