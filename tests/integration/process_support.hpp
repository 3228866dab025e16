// Pieces the process tests share: one rank's tiny dispatch in the arena, what a forked rank
// reports back, and the host state a test must leave as it found it.
#pragma once

#include <algorithm>
#include <dirent.h>

#include <string>
#include <vector>

#include "moedist/moedist.hpp"
#include "transport/shm_arena.hpp"

namespace moedist::process_test {

using moedist::DType;
using moedist::TensorView;

constexpr int64_t kTokens = 4, kTopK = 2, kHidden = 64;

// One rank's tensors in the arena (read by peers in place) for W ranks, E = W experts, K = 2.
struct Rank {
    moedist::MoeConfig config;
    moedist::DispatchInputs in;
    moedist::DispatchOutputs out;
    template <class T>
    static T* alloc(std::size_t n) {
        return static_cast<T*>(moedist::transport::arena_allocate(n * sizeof(T)));
    }
    Rank(int world, int rank) {
        config.ep_world_size = world;
        config.ep_rank_id = rank;
        config.moe_expert_num = world;
        const int64_t capacity = config.capacity_rows(kTokens, kTopK);
        auto* x = alloc<uint16_t>(kTokens * kHidden);
        for (int64_t i = 0; i < kTokens * kHidden; ++i)
            x[i] = static_cast<uint16_t>(0x3F00 + 31 * i + 7 * rank);
        auto* ids = alloc<int32_t>(kTokens * kTopK);
        for (int64_t t = 0; t < kTokens; ++t) {
            ids[t * 2] = static_cast<int32_t>((t + rank) % world);
            ids[t * 2 + 1] = static_cast<int32_t>((t + rank + 1) % world);
        }
        in.x = TensorView::contiguous(x, DType::kBFloat16, {kTokens, kHidden});
        in.expert_ids = TensorView::contiguous(ids, DType::kInt32, {kTokens, kTopK});
        out.expand_x =
            TensorView::contiguous(alloc<uint16_t>(static_cast<std::size_t>(capacity * kHidden)),
                                   DType::kBFloat16,
                                   {capacity, kHidden});
        out.expand_idx = TensorView::contiguous(
            alloc<int32_t>(kTokens * kTopK), DType::kInt32, {kTokens * kTopK});
        out.expert_token_nums = TensorView::contiguous(alloc<int64_t>(1), DType::kInt64, {1});
        out.ep_recv_counts = TensorView::contiguous(
            alloc<int32_t>(static_cast<std::size_t>(world)), DType::kInt32, {world});
    }
};

struct Outcome {
    int32_t code = -1;  // -1: the rank never reported
    int32_t calls = 0;
    double elapsed_ms = 0;  // of the failing call
    char message[400] = {};
};

// What /dev/shm holds, sorted, less what other programs running beside the test put there
// (ctest runs suites in parallel: OpenMPI's shared-memory transport makes vader_segment.* and
// sm_segment.* files while an MPI test runs next to this one; Python's multiprocessing makes
// sem.* semaphores). moedist itself never creates anything there (memfd only).
inline std::vector<std::string> dev_shm() {
    std::vector<std::string> names;
    if (DIR* d = opendir("/dev/shm")) {
        while (dirent* e = readdir(d)) {
            const std::string name = e->d_name;
            if (name.empty() || name[0] == '.') continue;
            if (name.rfind("vader_segment.", 0) == 0 || name.rfind("sm_segment.", 0) == 0) continue;
            if (name.rfind("sem.", 0) == 0) continue;  // POSIX semaphores (Python multiprocessing)
            names.push_back(name);
        }
        closedir(d);
    }
    std::sort(names.begin(), names.end());
    return names;
}

inline int open_fds() {
    int n = 0;
    if (DIR* d = opendir("/proc/self/fd")) {
        while (readdir(d) != nullptr) ++n;
        closedir(d);
    }
    return n;
}

}  // namespace moedist::process_test
