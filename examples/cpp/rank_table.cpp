// Ranks as processes of one host, found through an HCCL rank table (the same file
// HcclCommInitClusterInfo takes): every rank calls Communicator::from_rank_table(path, rank) from
// whatever process it runs in; they meet through the table's path (processes of one launch: this
// program forks them all). Usage: rank_table [table.json = rank_table.json next to the source]
// [ranks = 4]
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "example_job.hpp"

int main(int argc, char** argv) {
    const std::string table = argc > 1 ? argv[1] : MOEDIST_EXAMPLE_TABLE;
    const int ranks = argc > 2 ? std::atoi(argv[2]) : 4;
    std::vector<pid_t> children;
    for (int r = 0; r < ranks; ++r) {
        const pid_t pid = fork();
        if (pid == 0) {
            moedist::Communicator comm;
            moedist::Status s = moedist::Communicator::from_rank_table(table, r, &comm);
            if (!s.ok()) {
                std::fprintf(stderr, "rank %d: %s\n", r, s.message().c_str());
                _exit(1);
            }
            _exit(example::run_layer(comm) ? 0 : 1);
        }
        children.push_back(pid);
    }
    int failed = 0;
    for (pid_t pid : children) {
        int status = 0;
        waitpid(pid, &status, 0);
        failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    std::printf("rank_table: %s\n", failed == 0 ? "OK" : "FAILED");
    return failed == 0 ? 0 : 1;
}
