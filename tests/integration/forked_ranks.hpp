// Runs a body on `world` forked processes joined as one process group (a socket rendezvous, then
// Communicator::join_processes), and returns what each rank reported: "" when its body found
// nothing wrong, else the first difference or failure in words ("never reported" when the rank
// died or was killed at the 60 s deadline).
#pragma once

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "moedist/moedist.hpp"
#include "transport/socket_rendezvous.hpp"

namespace moedist::forked {

// body(rank, communicator) → "" or what went wrong.
inline std::vector<std::string> run_ranks(
    int world, const std::string& key, const std::function<std::string(int, Communicator&)>& body) {
    using Clock = std::chrono::steady_clock;
    struct Report {
        char text[300] = {};
        int32_t done = 0;
    };
    auto* reports = static_cast<Report*>(mmap(nullptr,
                                              sizeof(Report) * static_cast<std::size_t>(world),
                                              PROT_READ | PROT_WRITE,
                                              MAP_SHARED | MAP_ANONYMOUS,
                                              -1,
                                              0));
    if (reports == MAP_FAILED)
        return std::vector<std::string>(static_cast<std::size_t>(world), "no shared report page");
    for (int r = 0; r < world; ++r) new (&reports[r]) Report();
    std::fflush(nullptr);
    std::vector<pid_t> pids;
    for (int rank = 0; rank < world; ++rank) {
        const pid_t pid = fork();
        if (pid == 0) {
            std::unique_ptr<transport::SocketRendezvous> rendezvous;
            Status s = transport::SocketRendezvous::open(
                key, rank, world, 0, Clock::now() + std::chrono::seconds(20), &rendezvous);
            Communicator comm;
            if (s.ok()) {
                s = Communicator::join_processes(
                    rank,
                    world,
                    key,
                    [&](const std::vector<std::byte>& mine, std::vector<std::byte>* all) {
                        return rendezvous->all_gather(mine, all);
                    },
                    &comm);
            }
            rendezvous.reset();
            const std::string text = s.ok() ? body(rank, comm) : "join: " + s.message();
            std::snprintf(reports[rank].text, sizeof(reports[rank].text), "%s", text.c_str());
            reports[rank].done = 1;
            _exit(0);
        }
        pids.push_back(pid);
    }
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    for (pid_t pid : pids) {
        int status = 0;
        while (waitpid(pid, &status, WNOHANG) == 0) {
            if (Clock::now() > deadline)
                for (pid_t p : pids) kill(p, SIGKILL);
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    }
    std::vector<std::string> out;
    for (int r = 0; r < world; ++r)
        out.push_back(reports[r].done ? reports[r].text : "never reported");
    munmap(reports, sizeof(Report) * static_cast<std::size_t>(world));
    return out;
}

}  // namespace moedist::forked
