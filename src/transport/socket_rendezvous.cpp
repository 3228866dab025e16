#include "transport/socket_rendezvous.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "util/env.hpp"

namespace moedist::transport {
namespace {

sockaddr_un address_of(const std::string& key, socklen_t* length) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string name = "moedist/" + key;  // abstract: sun_path[0] = '\0'
    const std::size_t n = std::min(name.size(), sizeof(addr.sun_path) - 1);
    std::memcpy(addr.sun_path + 1, name.data(), n);
    *length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
    return addr;
}

// What the hub tells its members before anything else: fine (code 0, and the hub's rank), or why
// the rendezvous failed, so every member fails with the cause the hub saw.
struct Verdict {
    int32_t code = 0;
    int32_t hub_rank = -1;
    char message[384] = {};
};

Verdict verdict_of(const Status& s, int hub) {
    Verdict v;
    v.code = s.raw_code();
    v.hub_rank = hub;
    const std::size_t n = std::min(s.message().size(), sizeof(v.message) - 1);
    std::memcpy(v.message, s.message().data(), n);
    return v;
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

}  // namespace

SocketRendezvous::SocketRendezvous(int rank, int size, Clock::time_point deadline)
    : rank_(rank), size_(size), deadline_(deadline) {}

SocketRendezvous::~SocketRendezvous() {
    if (listen_fd_ >= 0) close(listen_fd_);
    if (hub_fd_ >= 0) close(hub_fd_);
    for (int fd : member_fds_)
        if (fd >= 0) close(fd);
}

Status SocketRendezvous::send_all(int fd, const void* data, std::size_t bytes) {
    const auto* p = static_cast<const char*>(data);
    while (bytes > 0) {
        pollfd pfd{fd, POLLOUT, 0};
        if (poll(&pfd, 1, ms_left(deadline_)) <= 0)
            return timeout("the rendezvous '" + key_ + "' must send its bytes");
        const ssize_t n = send(fd, p, bytes, MSG_NOSIGNAL);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) {
            return {Code::kRuntime,
                    "the rendezvous '" + key_ +
                        "' must keep its connections, got: " + std::strerror(errno)};
        }
        p += n;
        bytes -= static_cast<std::size_t>(n);
    }
    return Status::Ok();
}

Status SocketRendezvous::receive_all(int fd, void* data, std::size_t bytes) {
    auto* p = static_cast<char*>(data);
    while (bytes > 0) {
        pollfd pfd{fd, POLLIN, 0};
        if (poll(&pfd, 1, ms_left(deadline_)) <= 0)
            return timeout("the rendezvous '" + key_ + "' must receive its bytes");
        const ssize_t n = recv(fd, p, bytes, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) {
            return {Code::kRuntime,
                    "a member of the rendezvous '" + key_ +
                        "' must stay until it completes, got its connection closed (it exited or "
                        "died)"};
        }
        p += n;
        bytes -= static_cast<std::size_t>(n);
    }
    return Status::Ok();
}

Status SocketRendezvous::open(const std::string& key,
                              int rank,
                              int size,
                              Clock::time_point deadline,
                              std::unique_ptr<SocketRendezvous>* out) {
    std::unique_ptr<SocketRendezvous> r(new SocketRendezvous(rank, size, deadline));
    r->key_ = key;
    socklen_t length = 0;
    const sockaddr_un addr = address_of(key, &length);
    if (size == 1) {
        *out = std::move(r);
        return Status::Ok();
    }
    const int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0)
        return {Code::kRuntime, std::string("socket() failed: ") + std::strerror(errno)};
    if (bind(listener, reinterpret_cast<const sockaddr*>(&addr), length) == 0 &&
        listen(listener, size) == 0) {
        // The hub: every other member connects and names its rank.
        r->listen_fd_ = listener;
        r->member_fds_.assign(static_cast<std::size_t>(size), -1);
        for (int joined = 1; joined < size;) {
            pollfd pfd{listener, POLLIN, 0};
            if (poll(&pfd, 1, ms_left(deadline)) <= 0) {
                int missing = 0;
                while (missing < size &&
                       (missing == rank || r->member_fds_[static_cast<std::size_t>(missing)] >= 0))
                    ++missing;
                return r->tell_members(timeout("rank " + std::to_string(missing) + " of '" + key +
                                               "' must join the rendezvous (" +
                                               std::to_string(joined) + " of " +
                                               std::to_string(size) + " joined)"));
            }
            const int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) continue;
            int32_t member = -1;
            if (Status s = r->receive_all(fd, &member, sizeof(member)); !s.ok()) {
                close(fd);
                continue;
            }
            if (member < 0 || member >= size || member == rank ||
                r->member_fds_[static_cast<std::size_t>(member)] >= 0) {
                close(fd);
                return r->tell_members({Code::kRuntime,
                                        "every rank of '" + key + "' must join once, got rank " +
                                            std::to_string(member) + " twice"});
            }
            r->member_fds_[static_cast<std::size_t>(member)] = fd;
            ++joined;
        }
        if (Status s = r->tell_members(Status::Ok()); !s.ok()) return s;
        *out = std::move(r);
        return Status::Ok();
    }
    close(listener);
    // A member: connect to whoever bound the name first, retrying until the hub is there.
    for (int attempt = 0;; ++attempt) {
        const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return {Code::kRuntime, std::string("socket() failed: ") + std::strerror(errno)};
        if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), length) == 0) {
            r->hub_fd_ = fd;
            const int32_t me = rank;
            if (Status s = r->send_all(fd, &me, sizeof(me)); !s.ok()) return s;
            // A member waits a little past the hub's deadline, so that when the hub gives up it
            // hears the hub's reason (which rank is missing) rather than a timeout of its own.
            r->deadline_ = deadline + std::chrono::seconds(2);
            if (Status s = r->hear_hub(); !s.ok()) return s;
            *out = std::move(r);
            return Status::Ok();
        }
        close(fd);
        if (Clock::now() >= deadline) {
            return timeout("the hub of '" + key + "' (the first rank to start) must accept rank " +
                           std::to_string(rank));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min(1 + attempt, 20)));
    }
}

Status SocketRendezvous::tell_members(const Status& status) {
    const Verdict v = verdict_of(status, rank_);
    for (int fd : member_fds_) {
        if (fd >= 0) (void)send_all(fd, &v, sizeof(v));
    }
    return status;
}

Status SocketRendezvous::hear_hub() {
    Verdict v;
    if (Status s = receive_all(hub_fd_, &v, sizeof(v)); !s.ok()) {
        return {s.code(),
                (hub_rank_ >= 0 ? "rank " + std::to_string(hub_rank_) + " of '" + key_ +
                                      "' (the rendezvous hub): "
                                : std::string("the rendezvous hub of '" + key_ + "': ")) +
                    s.message()};
    }
    hub_rank_ = v.hub_rank;
    v.message[sizeof(v.message) - 1] = '\0';
    if (v.code != 0) return {static_cast<Code>(v.code), v.message};
    return Status::Ok();
}

Status SocketRendezvous::all_gather(std::span<const std::byte> mine, std::vector<std::byte>* all) {
    const std::size_t n = mine.size();
    all->assign(n * static_cast<std::size_t>(size_), std::byte{0});
    std::memcpy(all->data() + n * static_cast<std::size_t>(rank_), mine.data(), n);
    if (size_ == 1) return Status::Ok();
    if (hub_fd_ >= 0) {  // member: my bytes up, the hub's verdict and everyone's down
        Status s = send_all(hub_fd_, mine.data(), n);
        if (s.ok()) s = hear_hub();
        if (s.ok()) s = receive_all(hub_fd_, all->data(), all->size());
        if (!s.ok() && s.message().find("rendezvous hub") == std::string::npos &&
            s.message().find(" of '" + key_ + "'") == std::string::npos) {
            return {s.code(),
                    "rank " + std::to_string(hub_rank_) + " of '" + key_ +
                        "' (the rendezvous hub): " + s.message()};
        }
        return s;
    }
    for (int r = 0; r < size_; ++r) {
        if (r == rank_) continue;
        if (Status s = receive_all(member_fds_[static_cast<std::size_t>(r)],
                                   all->data() + n * static_cast<std::size_t>(r),
                                   n);
            !s.ok()) {
            return tell_members(
                {s.code(), "rank " + std::to_string(r) + " of '" + key_ + "': " + s.message()});
        }
    }
    if (Status s = tell_members(Status::Ok()); !s.ok()) return s;
    for (int r = 0; r < size_; ++r) {
        if (r == rank_) continue;
        if (Status s = send_all(member_fds_[static_cast<std::size_t>(r)], all->data(), all->size());
            !s.ok())
            return s;
    }
    return Status::Ok();
}

}  // namespace moedist::transport
