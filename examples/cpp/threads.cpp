// Ranks as threads of one process (moedist::Communicator::create_local_group): the simplest
// moedist program. Usage: threads [ranks = 4]
#include <atomic>
#include <cstdlib>
#include <thread>
#include <vector>

#include "example_job.hpp"

int main(int argc, char** argv) {
    const int ranks = argc > 1 ? std::atoi(argv[1]) : 4;
    auto group = moedist::Communicator::create_local_group(ranks);
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int r = 0; r < ranks; ++r)  // each rank on its own thread: the calls are collective
        threads.emplace_back([&, r] { ok += example::run_layer(group[static_cast<std::size_t>(r)]); });
    for (auto& t : threads) t.join();
    std::printf("threads: %s\n", ok == ranks ? "OK" : "FAILED");
    return ok == ranks ? 0 : 1;
}
