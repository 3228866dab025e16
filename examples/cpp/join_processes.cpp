// Ranks as processes bootstrapped over an all-gather of your own (Communicator::join_processes):
// how to put moedist under any launcher that can exchange a few bytes — MPI_Allgather,
// torch.distributed's all_gather_object, a key-value store, or, here, a coordinator process.
//
// The all-gather moedist calls (twice, on every member of one host, with the same length
// everywhere; members on several hosts make it four rounds):
//
//   mine: this rank's bytes (a few hundred)          all: every rank's bytes, in rank order
//   rank 0: [a a a]  rank 1: [b b b]  rank 2: [c c c]  →  all = [a a a | b b b | c c c] on every
//   rank
//
// Here the parent is the coordinator: each child sends `mine` on its socket, the parent waits for
// every child's, and sends the concatenation back to each. Usage: join_processes [ranks = 4]
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "example_job.hpp"

namespace {

bool send_all(int fd, const void* data, std::size_t bytes) {
    for (auto* p = static_cast<const char*>(data); bytes > 0;) {
        const ssize_t n = send(fd, p, bytes, MSG_NOSIGNAL);
        if (n <= 0) return false;
        p += n;
        bytes -= static_cast<std::size_t>(n);
    }
    return true;
}

bool receive_all(int fd, void* data, std::size_t bytes) {
    for (auto* p = static_cast<char*>(data); bytes > 0;) {
        const ssize_t n = recv(fd, p, bytes, 0);
        if (n <= 0) return false;
        p += n;
        bytes -= static_cast<std::size_t>(n);
    }
    return true;
}

// The coordinator: two rounds of (one message from every child, the concatenation to each).
void coordinate(const std::vector<int>& sockets) {
    for (int round = 0; round < 2; ++round) {
        std::vector<std::byte> all;
        uint64_t length = 0;
        for (int fd : sockets) {
            if (!receive_all(fd, &length, sizeof(length))) return;
            std::vector<std::byte> mine(length);
            if (!receive_all(fd, mine.data(), length)) return;
            all.insert(all.end(), mine.begin(), mine.end());
        }
        for (int fd : sockets) send_all(fd, all.data(), all.size());
    }
}

}  // namespace

int main(int argc, char** argv) {
    const int ranks = argc > 1 ? std::atoi(argv[1]) : 4;
    std::vector<int> sockets;
    std::vector<pid_t> children;
    for (int r = 0; r < ranks; ++r) {
        int pair[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) return 1;
        const pid_t pid = fork();
        if (pid == 0) {
            for (int fd : sockets) close(fd);
            close(pair[0]);
            const int fd = pair[1];
            auto all_gather = [fd, ranks](const std::vector<std::byte>& mine,
                                          std::vector<std::byte>* all) {
                const uint64_t length = mine.size();
                all->resize(mine.size() * static_cast<std::size_t>(ranks));
                if (!send_all(fd, &length, sizeof(length)) ||
                    !send_all(fd, mine.data(), mine.size()) ||
                    !receive_all(fd, all->data(), all->size()))
                    return moedist::Status(moedist::Code::kRuntime, "the coordinator went away");
                return moedist::Status::Ok();
            };
            moedist::Communicator comm;
            moedist::Status s =
                moedist::Communicator::join_processes(r, ranks, "example", all_gather, &comm);
            if (!s.ok()) {
                std::fprintf(stderr, "rank %d: %s\n", r, s.message().c_str());
                _exit(1);
            }
            _exit(example::run_layer(comm) ? 0 : 1);
        }
        close(pair[1]);
        sockets.push_back(pair[0]);
        children.push_back(pid);
    }
    coordinate(sockets);
    int failed = 0;
    for (pid_t pid : children) {
        int status = 0;
        waitpid(pid, &status, 0);
        failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    std::printf("join_processes: %s\n", failed == 0 ? "OK" : "FAILED");
    return failed == 0 ? 0 : 1;
}
