#include "transport/agent.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "util/log.hpp"

namespace moedist::transport {
namespace {

constexpr uint32_t kMagic = 0x6D644167;  // "mdAg"
constexpr uint32_t kVersion = 1;
constexpr std::size_t kMaxClients = 4096;
constexpr int kMaxRefusalLogs = 32;  // log lines about refused peers, per process

struct Request {
    uint32_t magic = kMagic;
    uint32_t version = kVersion;
    uint32_t kind = 0;
    uint32_t reserved = 0;
    uint64_t id = 0;
};

struct Reply {
    uint32_t magic = kMagic;
    int32_t status = 0;  // 0: the descriptor follows; else an errno value
    uint64_t bytes = 0;
};

struct Offer {
    int fd = -1;
    uint64_t bytes = 0;
    int count = 0;  // offers not yet withdrawn (several endpoints of this process may offer one)
};

// This process's agent. Never destroyed (the thread may run during static teardown); after fork
// the child starts from a fresh one (its parent's thread does not exist there).
struct AgentState {
    std::mutex mutex;
    bool started = false;
    ProcessId self;
    int listen_fd = -1;
    std::map<std::pair<uint32_t, uint64_t>, Offer> offers;
    std::atomic<int> refusals_logged{0};
};

std::atomic<AgentState*> state_slot{nullptr};

void reset_in_child() {
    AgentState* old = state_slot.load(std::memory_order_relaxed);
    if (old != nullptr && old->listen_fd >= 0) ::close(old->listen_fd);  // the parent's to serve
    state_slot.store(new AgentState(), std::memory_order_relaxed);       // the old one leaks
}

AgentState& state() {
    static std::once_flag once;
    std::call_once(once, [] {
        state_slot.store(new AgentState(), std::memory_order_release);
        pthread_atfork(nullptr, nullptr, &reset_in_child);
    });
    return *state_slot.load(std::memory_order_acquire);
}

sockaddr_un agent_address(const ProcessId& id, uid_t euid, socklen_t* length) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    char name[96];
    const int n = std::snprintf(name,
                                sizeof(name),
                                "moedist-agent/%u/%d/%016llx",
                                static_cast<unsigned>(euid),
                                id.pid,
                                static_cast<unsigned long long>(id.nonce));
    std::memcpy(addr.sun_path + 1, name, static_cast<std::size_t>(n));  // abstract: [0] = '\0'
    *length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + static_cast<std::size_t>(n));
    return addr;
}

void log_refusal(AgentState& s, const std::string& what) {
    if (s.refusals_logged.fetch_add(1, std::memory_order_relaxed) < kMaxRefusalLogs)
        MOEDIST_LOG(kWarn, "agent of pid {}: {}", s.self.pid, what);
}

bool peer_credentials(int fd, ucred* cred) {
    socklen_t length = sizeof(*cred);
    return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &length) == 0 && length == sizeof(*cred);
}

// Sends a reply (and `fd` when non-negative) as one message.
bool send_reply(int client, const Reply& reply, int fd) {
    iovec iov{const_cast<Reply*>(&reply), sizeof(reply)};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    if (fd >= 0) {
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    return sendmsg(client, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) == static_cast<ssize_t>(sizeof(reply));
}

// One request of a client; false when the connection must be dropped.
bool serve_one(AgentState& s, int client) {
    Request request;
    char extra[sizeof(Request) + 1];
    const ssize_t n = recv(client, extra, sizeof(extra), MSG_DONTWAIT);
    if (n == 0) return false;  // the client is done
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    if (static_cast<std::size_t>(n) != sizeof(Request)) {
        log_refusal(s, "dropped a connection that sent " + std::to_string(n) + " bytes, not a request");
        return false;
    }
    std::memcpy(&request, extra, sizeof(request));
    if (request.magic != kMagic || request.version != kVersion) {
        log_refusal(s, "dropped a connection that sent a request of another protocol");
        return false;
    }
    Reply reply;
    int fd = -1;
    if (request.kind == static_cast<uint32_t>(AgentObject::kPing)) {
        reply.status = 0;
    } else {
        std::lock_guard<std::mutex> lock(s.mutex);
        auto it = s.offers.find({request.kind, request.id});
        if (it == s.offers.end() || it->second.fd < 0) {
            reply.status = ENOENT;
        } else {
            // A duplicate of our own, sent below outside the lock (a withdraw meanwhile closes
            // only the offer's).
            fd = fcntl(it->second.fd, F_DUPFD_CLOEXEC, 0);
            reply.bytes = it->second.bytes;
            if (fd < 0) reply.status = errno;
        }
    }
    const bool sent = send_reply(client, reply, reply.status == 0 ? fd : -1);
    if (fd >= 0) ::close(fd);
    return sent;
}

void serve(AgentState* s, int listener) {
    std::vector<pollfd> fds{{listener, POLLIN, 0}};
    const uid_t euid = geteuid();
    for (;;) {
        if (poll(fds.data(), fds.size(), -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        for (std::size_t i = fds.size(); i-- > 1;) {
            if (fds[i].revents == 0) continue;
            const bool keep = (fds[i].revents & POLLIN) != 0 && serve_one(*s, fds[i].fd);
            if (!keep) {
                ::close(fds[i].fd);
                fds.erase(fds.begin() + static_cast<std::ptrdiff_t>(i));
            }
        }
        if ((fds[0].revents & POLLIN) == 0) continue;
        const int client = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (client < 0) continue;
        ucred cred{};
        if (!peer_credentials(client, &cred) || cred.uid != euid) {
            log_refusal(*s,
                        "refused a connection from uid " + std::to_string(cred.uid) + " (pid " +
                            std::to_string(cred.pid) + "): only this user's processes are served");
            ::close(client);
            continue;
        }
        if (fds.size() > kMaxClients) {  // the oldest connection makes room
            ::close(fds[1].fd);
            fds.erase(fds.begin() + 1);
        }
        fds.push_back({client, POLLIN, 0});
    }
}

// Starts the agent of this process once; false when it cannot (the reason is logged).
bool ensure_started(AgentState& s) {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.started) return s.listen_fd >= 0;
    s.started = true;
    s.self.pid = static_cast<int32_t>(getpid());
    s.self.nonce = random_u64();
    socklen_t length = 0;
    const sockaddr_un addr = agent_address(s.self, geteuid(), &length);
    const int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, reinterpret_cast<const sockaddr*>(&addr), length) != 0 ||
        listen(fd, 128) != 0) {
        MOEDIST_LOG(kWarn, "the agent of pid {} cannot listen: {}", s.self.pid, std::strerror(errno));
        if (fd >= 0) ::close(fd);
        return false;
    }
    s.listen_fd = fd;
    std::thread(serve, &s, fd).detach();
    return true;
}

int ms_left(Clock::time_point deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left, 1 << 30));
}

std::string who(const ProcessId& owner) { return "the agent of process " + std::to_string(owner.pid); }

// A connection to `owner`'s agent, its credentials checked.
Status connect_agent(const ProcessId& owner, Clock::time_point deadline, util::UniqueFd* out) {
    if (owner.pid <= 0 || owner.nonce == 0)
        return {Code::kRuntime, "a process must be named by its pid and nonce, got none"};
    socklen_t length = 0;
    const sockaddr_un addr = agent_address(owner, geteuid(), &length);
    for (int attempt = 0;; ++attempt) {
        util::UniqueFd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
        if (!fd.valid())
            return {Code::kRuntime, std::string("socket() failed: ") + std::strerror(errno)};
        if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), length) == 0) {
            ucred cred{};
            if (!peer_credentials(fd.get(), &cred) || cred.uid != geteuid() ||
                cred.pid != owner.pid) {
                return {Code::kRuntime,
                        who(owner) + " must run as uid " + std::to_string(geteuid()) + " in pid " +
                            std::to_string(owner.pid) + ", got uid " + std::to_string(cred.uid) +
                            " pid " + std::to_string(cred.pid)};
            }
            *out = std::move(fd);
            return Status::Ok();
        }
        // A full backlog is worth a retry; a missing name means the process is gone.
        if (errno != EAGAIN || Clock::now() >= deadline) {
            return {Code::kRuntime,
                    who(owner) + " must answer, got: " + std::strerror(errno) +
                        " (the process exited or is not a moedist process)"};
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min(1 + attempt, 10)));
    }
}

// One request/reply on `fd`; *received gets the descriptor of an ok reply.
Status ask(int fd,
           const ProcessId& owner,
           AgentObject kind,
           uint64_t id,
           Clock::time_point deadline,
           Reply* reply,
           util::UniqueFd* received) {
    Request request;
    request.kind = static_cast<uint32_t>(kind);
    request.id = id;
    if (send(fd, &request, sizeof(request), MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof(request)))
        return {Code::kRuntime, who(owner) + " must take a request, got: " + std::strerror(errno)};
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, ms_left(deadline)) <= 0)
        return {Code::kRuntime, who(owner) + " must reply within MOEDIST_TIMEOUT_MS, got no reply"};
    iovec iov{reply, sizeof(*reply)};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] = {};
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    const ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    int fds_received = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
            int got = -1;
            std::memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (fds_received++ == 0) {
                received->reset(got);
            } else {
                ::close(got);  // never more than one
            }
        }
    }
    if (n != static_cast<ssize_t>(sizeof(*reply)) || reply->magic != kMagic ||
        (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 || fds_received > 1) {
        received->reset();
        return {Code::kRuntime, who(owner) + " must reply with one well-formed message, got another"};
    }
    if (reply->status != 0) {
        received->reset();
        return {Code::kRuntime,
                who(owner) + " must serve the object asked for, got: " +
                    std::strerror(reply->status)};
    }
    return Status::Ok();
}

}  // namespace

uint64_t random_u64() {
    uint64_t value = 0;
    while (value == 0) {
        if (getrandom(&value, sizeof(value), 0) != static_cast<ssize_t>(sizeof(value))) {
            // No entropy source: mix the clock, the pid and an address (not secret, still unique).
            value = static_cast<uint64_t>(Clock::now().time_since_epoch().count()) ^
                    (static_cast<uint64_t>(getpid()) << 40) ^
                    reinterpret_cast<uintptr_t>(&value);
        }
    }
    return value;
}

ProcessId self_process() {
    AgentState& s = state();
    ensure_started(s);
    std::lock_guard<std::mutex> lock(s.mutex);
    return s.self;
}

void agent_offer(AgentObject kind, uint64_t id, int fd, uint64_t bytes) {
    AgentState& s = state();
    if (!ensure_started(s)) return;
    std::lock_guard<std::mutex> lock(s.mutex);
    auto& offer = s.offers[{static_cast<uint32_t>(kind), id}];
    if (offer.count++ > 0) return;  // served already
    offer.fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    offer.bytes = bytes;
}

void agent_withdraw(AgentObject kind, uint64_t id) {
    AgentState& s = state();
    std::lock_guard<std::mutex> lock(s.mutex);
    auto it = s.offers.find({static_cast<uint32_t>(kind), id});
    if (it == s.offers.end() || --it->second.count > 0) return;
    if (it->second.fd >= 0) ::close(it->second.fd);
    s.offers.erase(it);
}

std::string check_sealed_memory(int fd, uint64_t bytes) {
    struct stat info {};
    if (fstat(fd, &info) != 0) return std::string("fstat failed: ") + std::strerror(errno);
    if (!S_ISREG(info.st_mode)) return "it is not a memory file";
    const int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
        return "it is not sealed against shrinking and growing";
    if (static_cast<uint64_t>(info.st_size) != bytes) {
        return "it has " + std::to_string(info.st_size) + " bytes, not the " +
               std::to_string(bytes) + " announced";
    }
    return {};
}

util::UniqueFd sealed_memory(const char* name, uint64_t bytes) {
    util::UniqueFd fd(memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!fd.valid()) return fd;
    if (ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0 ||
        fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        const int saved = errno;
        fd.reset();
        errno = saved;
    }
    return fd;
}

Status agent_fetch(const ProcessId& owner,
                   AgentObject kind,
                   uint64_t id,
                   uint64_t bytes,
                   Clock::time_point deadline,
                   util::UniqueFd* out) {
    util::UniqueFd connection;
    if (Status s = connect_agent(owner, deadline, &connection); !s.ok()) return s;
    Reply reply;
    util::UniqueFd received;
    if (Status s = ask(connection.get(), owner, kind, id, deadline, &reply, &received); !s.ok())
        return s;
    if (!received.valid())
        return {Code::kRuntime, who(owner) + " must send a descriptor, got none"};
    if (std::string why = check_sealed_memory(received.get(), bytes); !why.empty()) {
        return {Code::kRuntime,
                "the memory " + who(owner) + " sent must be a sealed memory file of " +
                    std::to_string(bytes) + " bytes, got: " + why};
    }
    *out = std::move(received);
    return Status::Ok();
}

Status agent_pidfd(const ProcessId& owner, Clock::time_point deadline, util::UniqueFd* out) {
    util::UniqueFd connection;
    if (Status s = connect_agent(owner, deadline, &connection); !s.ok()) return s;
    util::UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, owner.pid, 0)));
    if (!pidfd.valid())
        return {Code::kRuntime,
                "process " + std::to_string(owner.pid) + " must be alive, got: " +
                    std::strerror(errno)};
    // The agent answering now proves its process lived from the connection to this moment, so
    // the pidfd (opened in between) is that process's.
    Reply reply;
    util::UniqueFd unused;
    if (Status s = ask(connection.get(), owner, AgentObject::kPing, 0, deadline, &reply, &unused);
        !s.ok())
        return s;
    *out = std::move(pidfd);
    return Status::Ok();
}

}  // namespace moedist::transport
