// hosts_probe TABLE FIRST COUNT CALLS PAUSE_MS: forks COUNT processes, ranks FIRST.. of the rank
// table TABLE, each joining the table's group (across hosts: the ucx engine) and running CALLS
// dispatch + combine pairs (V1, small random inputs), PAUSE_MS apart. Each rank prints one line:
//   "rank R: ok C calls"                                   every call succeeded
//   "rank R: call I failed with CODE after MS ms: MESSAGE"  the first failure, then
//   "rank R: next call CODE"                                what the call after it returned
// (a broken group fails at once), and exits 0 either way: the fault tests read the lines. With
// HOSTS_PROBE_REJOIN=TABLE2 a rank that saw a failure then joins TABLE2 as rank (R - FIRST) and
// runs 3 pairs there ("rank R: new group ok" or "rank R: new group failed ..."): survivors build
// a new group. Survivors leave the broken group at different times (each wait is bounded by the
// timeout, the node round after the exchange between nodes by twice that), so a survivor whose
// join times out before the last one came tries again, as an elastic launcher would (up to 3
// joins). The parent exits when every rank has.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "moedist/moedist.hpp"

namespace {

using moedist::DType;
using moedist::TensorView;

constexpr int64_t kTokens = 4, kHidden = 64, kTopK = 2, kExpertsPerRank = 2;

// CALLS pairs on the group of `table`; the first failure (printed), or OK. *joined says whether
// the group was formed.
moedist::Status run_group(
    const std::string& table, int rank, int calls, int pause_ms, int shown, bool* joined) {
    moedist::Communicator comm;
    *joined = false;
    if (moedist::Status s = moedist::Communicator::from_rank_table(table, rank, &comm); !s.ok()) {
        std::printf("rank %d: call 0 failed with %d after 0 ms: %s\n",
                    shown,
                    s.raw_code(),
                    s.message().c_str());
        return s;
    }
    *joined = true;
    const int64_t world = comm.size(), experts = world * kExpertsPerRank;
    moedist::MoeConfig c;
    c.ep_world_size = world;
    c.ep_rank_id = rank;
    c.moe_expert_num = experts;
    moedist::MoeDistributor moe(comm, std::nullopt, c);
    const int64_t capacity = kTokens * world * kTopK;
    std::mt19937 rng(static_cast<uint32_t>(rank) * 7919u + 1u);
    std::vector<uint16_t> x(kTokens * kHidden), expand_x(capacity * kHidden),
        out(kTokens * kHidden);
    std::vector<int32_t> ids(kTokens * kTopK), expand_idx(kTokens * kTopK),
        recv(world * kExpertsPerRank);
    std::vector<int64_t> nums(kExpertsPerRank);
    std::vector<float> weights(kTokens * kTopK);
    for (auto& v : x) v = static_cast<uint16_t>(0x3C00 + rng() % 0x0400);
    for (int64_t t = 0; t < kTokens; ++t) {
        ids[t * kTopK] = static_cast<int32_t>(rng() % experts);
        ids[t * kTopK + 1] =
            static_cast<int32_t>((ids[t * kTopK] + 1 + rng() % (experts - 1)) % experts);
        weights[t * kTopK] = 0.25f + static_cast<float>(rng() % 100) / 200.0f;
        weights[t * kTopK + 1] = 0.25f + static_cast<float>(rng() % 100) / 200.0f;
    }
    moedist::DispatchInputs in;
    in.x = TensorView::contiguous(x.data(), DType::kBFloat16, {kTokens, kHidden});
    in.expert_ids = TensorView::contiguous(ids.data(), DType::kInt32, {kTokens, kTopK});
    moedist::DispatchOutputs o;
    o.expand_x = TensorView::contiguous(expand_x.data(), DType::kBFloat16, {capacity, kHidden});
    o.expand_idx = TensorView::contiguous(expand_idx.data(), DType::kInt32, {kTokens * kTopK});
    o.expert_token_nums = TensorView::contiguous(nums.data(), DType::kInt64, {kExpertsPerRank});
    o.ep_recv_counts =
        TensorView::contiguous(recv.data(), DType::kInt32, {world * kExpertsPerRank});
    moedist::CombineInputs cin;
    cin.expand_x = o.expand_x;
    cin.expert_ids = in.expert_ids;
    cin.expand_idx = o.expand_idx;
    cin.ep_send_counts = o.ep_recv_counts;
    cin.expert_scales = TensorView::contiguous(weights.data(), DType::kFloat32, {kTokens, kTopK});
    const TensorView x_out =
        TensorView::contiguous(out.data(), DType::kBFloat16, {kTokens, kHidden});
    for (int i = 0; i < calls; ++i) {
        const auto start = std::chrono::steady_clock::now();
        moedist::Status s = moe.try_dispatch(in, o);
        if (s.ok()) s = moe.try_combine(cin, x_out);
        if (!s.ok()) {
            const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::steady_clock::now() - start)
                                .count();
            std::printf("rank %d: call %d failed with %d after %lld ms: %s\n",
                        shown,
                        i,
                        s.raw_code(),
                        static_cast<long long>(ms),
                        s.message().c_str());
            const moedist::Status next = moe.try_dispatch(in, o);
            std::printf("rank %d: next call %d\n", shown, next.raw_code());
            std::fflush(stdout);
            return s;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
    }
    return moedist::Status::Ok();
}

int run_rank(const std::string& table, int first, int rank, int calls, int pause_ms) {
    bool joined = false;
    if (run_group(table, rank, calls, pause_ms, rank, &joined).ok()) {
        std::printf("rank %d: ok %d calls\n", rank, calls);
    } else if (const char* rejoin = std::getenv("HOSTS_PROBE_REJOIN"); rejoin != nullptr) {
        moedist::Status again = run_group(rejoin, rank - first, 3, 0, rank, &joined);
        for (int attempt = 2; !again.ok() && !joined && attempt <= 3; ++attempt)
            again = run_group(rejoin, rank - first, 3, 0, rank, &joined);
        if (again.ok())
            std::printf("rank %d: new group ok\n", rank);
        else
            std::printf("rank %d: new group failed %d\n", rank, again.raw_code());
    }
    std::fflush(stdout);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 6) {
        std::fprintf(stderr, "usage: hosts_probe TABLE FIRST COUNT CALLS PAUSE_MS\n");
        return 2;
    }
    const std::string table = argv[1];
    const int first = std::atoi(argv[2]), count = std::atoi(argv[3]), calls = std::atoi(argv[4]),
              pause_ms = std::atoi(argv[5]);
    std::fflush(nullptr);
    std::vector<pid_t> children;
    for (int i = 0; i < count; ++i) {
        const pid_t pid = fork();
        if (pid == 0) _exit(run_rank(table, first, first + i, calls, pause_ms));
        children.push_back(pid);
    }
    for (pid_t pid : children) waitpid(pid, nullptr, 0);
    return 0;
}
