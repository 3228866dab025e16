// Split calls (docs/contract.md §13) on threads and on processes: two micro-batches in flight
// per group — two dispatch send halves, their receive halves, then two combines the same way —
// give bit for bit what blocking calls give (V1 with a shared rank and quantization, V2 with
// entry masks); a third send half and a blocking call while calls are in flight fail at once;
// a receive half out of order fails and leaves its call pending; a peer killed between the
// halves makes the receive half fail with 361001 naming it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "moedist/moedist.hpp"
#include "transport/socket_rendezvous.hpp"

namespace {

using moedist::Communicator;
using moedist::DType;
using moedist::MoeConfig;
using moedist::MoeDistributor;
using moedist::PendingCall;
using moedist::Status;
using moedist::TensorView;
using Clock = std::chrono::steady_clock;

struct Scene {
    int world = 4;
    bool v2 = false;
    int shared_ranks = 1;
    int experts = 6;
    int64_t top_k = 3, hidden = 96, tokens = 5;
    int quant_mode = 0;
};

MoeConfig config_of(const Scene& scene, int rank) {
    MoeConfig c;
    c.ep_world_size = scene.world;
    c.ep_rank_id = rank;
    c.moe_expert_num = scene.experts;
    c.shared_expert_rank_num = scene.shared_ranks;
    c.shared_expert_num = 1;
    c.quant_mode = scene.quant_mode;
    if (scene.v2) c.api = moedist::Api::kV2;
    return c;
}

// One micro-batch of one rank: random inputs (per rank, batch, token and column) and outputs.
struct Batch {
    std::vector<uint16_t> x, expand_x, expert_out, x_out;
    std::vector<int32_t> ids, expand_idx, recv, assist;
    std::vector<float> weights, dyn;
    std::vector<int64_t> nums;
    std::vector<uint8_t> mask, expand_q;
    moedist::DispatchInputs din;
    moedist::DispatchOutputs dout;

    Batch(const Scene& scene, int rank, int batch) {
        const MoeConfig config = config_of(scene, rank);
        std::mt19937 rng(static_cast<uint32_t>(1000 * batch + 17 * rank + 3));
        const int64_t bs = scene.tokens - (batch + rank) % 2;  // BS differs: globalBs is set
        const int64_t k = scene.top_k, h = scene.hidden;
        const int64_t capacity = config.capacity_rows(scene.tokens, k) * 2;  // room either way
        x.resize(static_cast<std::size_t>(bs * h));
        for (auto& v : x) v = static_cast<uint16_t>(0x3C00 + rng() % 0x0800 + (rng() % 2) * 0x8000);
        ids.resize(static_cast<std::size_t>(bs * k));
        for (int64_t t = 0; t < bs; ++t) {
            std::vector<int32_t> pool(static_cast<std::size_t>(scene.experts));
            for (int e = 0; e < scene.experts; ++e) pool[static_cast<std::size_t>(e)] = e;
            std::shuffle(pool.begin(), pool.end(), rng);
            for (int64_t j = 0; j < k; ++j)
                ids[static_cast<std::size_t>(t * k + j)] = pool[static_cast<std::size_t>(j)];
        }
        weights.resize(ids.size());
        for (auto& w : weights) w = 0.1f + static_cast<float>(rng() % 1000) / 997.0f;
        const bool quantized = scene.quant_mode == 2;
        if (quantized) {
            expand_q.assign(static_cast<std::size_t>(capacity * h), 0xAB);
            dyn.assign(static_cast<std::size_t>(capacity), -1.0f);
        }
        expand_x.assign(static_cast<std::size_t>(capacity * h), 0x7FC1);
        expand_idx.assign(ids.size(), -7);
        nums.assign(static_cast<std::size_t>(scene.experts), -7);
        recv.assign(static_cast<std::size_t>(scene.world * scene.experts), -7);
        assist.assign(static_cast<std::size_t>(3 * capacity), -7);
        x_out.assign(static_cast<std::size_t>(bs * h), 0x7FC2);
        din.x = TensorView::contiguous(x.data(), DType::kBFloat16, {bs, h});
        din.expert_ids = TensorView::contiguous(ids.data(), DType::kInt32, {bs, k});
        din.expert_scales = TensorView::contiguous(weights.data(), DType::kFloat32, {bs, k});
        if (scene.v2) {
            mask.resize(ids.size());
            for (auto& m : mask) m = rng() % 4 != 0;
            din.x_active_mask = TensorView::contiguous(mask.data(), DType::kBool, {bs, k});
            dout.assist_info = TensorView::contiguous(assist.data(), DType::kInt32, {3 * capacity});
        }
        dout.expand_x =
            quantized ? TensorView::contiguous(expand_q.data(), DType::kInt8, {capacity, h})
                      : TensorView::contiguous(expand_x.data(), DType::kBFloat16, {capacity, h});
        if (quantized)
            dout.dynamic_scales = TensorView::contiguous(dyn.data(), DType::kFloat32, {capacity});
        dout.expand_idx = TensorView::contiguous(expand_idx.data(), DType::kInt32, {bs * k});
        dout.expert_token_nums =
            TensorView::contiguous(nums.data(), DType::kInt64, {static_cast<int64_t>(nums.size())});
        dout.ep_recv_counts =
            TensorView::contiguous(recv.data(), DType::kInt32, {static_cast<int64_t>(recv.size())});
        expert_out.assign(static_cast<std::size_t>(capacity * h), 0);
    }

    // The experts: row i of expert_out is a function of expand_x's row i (its bits, rotated).
    void run_experts(const Scene& scene) {
        const std::size_t n = expert_out.size();
        for (std::size_t i = 0; i < n; ++i) {
            const uint16_t in = scene.quant_mode == 2
                                    ? static_cast<uint16_t>(0x3E00 + expand_q[i] % 0x100)
                                    : expand_x[i];
            expert_out[i] =
                static_cast<uint16_t>(((in & 0x7FFF) % 0x0700 + 0x3A00) | (in & 0x8000));
        }
    }

    moedist::CombineInputs combine_inputs(const Scene& scene) {
        moedist::CombineInputs in;
        const int64_t rows = static_cast<int64_t>(expert_out.size()) / scene.hidden;
        in.expand_x =
            TensorView::contiguous(expert_out.data(), DType::kBFloat16, {rows, scene.hidden});
        in.expert_ids = din.expert_ids;
        in.expand_idx = dout.expand_idx;
        in.ep_send_counts = dout.ep_recv_counts;
        in.expert_scales = *din.expert_scales;
        if (scene.v2) {
            in.assist_info = dout.assist_info;
            in.x_active_mask = din.x_active_mask;
        }
        return in;
    }
    TensorView x_out_view() {
        return TensorView::contiguous(x_out.data(), DType::kBFloat16, {din.x.dim(0), din.x.dim(1)});
    }

    std::vector<std::vector<uint8_t>> outputs() const {
        auto bytes = [](const auto& v) {
            const auto* p = reinterpret_cast<const uint8_t*>(v.data());
            return std::vector<uint8_t>(p, p + v.size() * sizeof(v[0]));
        };
        return {bytes(expand_x),
                bytes(expand_q),
                bytes(dyn),
                bytes(expand_idx),
                bytes(nums),
                bytes(recv),
                bytes(assist),
                bytes(x_out)};
    }
};

MoeConfig with_global_bs(MoeConfig c, const Scene& scene) {
    c.global_bs = scene.tokens * scene.world;
    return c;
}

// Blocking: dispatch, experts, combine, for batch 0 then batch 1.
std::vector<std::vector<uint8_t>> blocking(const Scene& scene, const Communicator& comm, int rank) {
    MoeDistributor moe(comm, std::nullopt, with_global_bs(config_of(scene, rank), scene));
    std::vector<std::vector<uint8_t>> all;
    for (int b = 0; b < 2; ++b) {
        Batch batch(scene, rank, b);
        moedist::throw_if_error(moe.try_dispatch(batch.din, batch.dout));
        batch.run_experts(scene);
        moedist::throw_if_error(moe.try_combine(batch.combine_inputs(scene), batch.x_out_view()));
        for (auto& o : batch.outputs()) all.push_back(std::move(o));
    }
    return all;
}

// Split: both dispatches in flight, then both combines; the misuse checks on the way. Returns the
// same outputs as blocking(), or throws.
std::vector<std::vector<uint8_t>> split(const Scene& scene, const Communicator& comm, int rank) {
    MoeDistributor moe(comm, std::nullopt, with_global_bs(config_of(scene, rank), scene));
    Batch b0(scene, rank, 0), b1(scene, rank, 1), b2(scene, rank, 0);
    PendingCall d0, d1, d2;
    moedist::throw_if_error(moe.try_dispatch_send(b0.din, b0.dout, &d0));
    moedist::throw_if_error(moe.try_dispatch_send(b1.din, b1.dout, &d1));
    EXPECT_TRUE(d0.pending() && d1.pending());
    const Status third = moe.try_dispatch_send(b2.din, b2.dout, &d2);
    EXPECT_EQ(third.raw_code(), 361001) << third.message();
    EXPECT_NE(third.message().find("at most 1 call between its send and receive halves"),
              std::string::npos)
        << third.message();
    EXPECT_FALSE(d2.pending());
    const Status blocked = moe.try_dispatch(b2.din, b2.dout);
    EXPECT_EQ(blocked.raw_code(), 361001) << blocked.message();
    EXPECT_NE(blocked.message().find("no call between its send and receive halves"),
              std::string::npos);
    const Status early = d1.wait();
    EXPECT_EQ(early.raw_code(), 361001) << early.message();
    EXPECT_NE(early.message().find("must run receive halves in call order"), std::string::npos)
        << early.message();
    EXPECT_TRUE(d1.pending());
    moedist::throw_if_error(d0.wait());
    moedist::throw_if_error(d1.wait());
    EXPECT_FALSE(d0.pending() || d1.pending());
    b0.run_experts(scene);  // the first batch's experts could run while the second's rows travel
    b1.run_experts(scene);
    PendingCall c0, c1;
    moedist::throw_if_error(moe.try_combine_send(b0.combine_inputs(scene), b0.x_out_view(), &c0));
    moedist::throw_if_error(moe.try_combine_send(b1.combine_inputs(scene), b1.x_out_view(), &c1));
    moedist::throw_if_error(c0.wait());
    moedist::throw_if_error(c1.wait());
    EXPECT_TRUE(c1.wait().ok());  // a completed call's outcome, again
    std::vector<std::vector<uint8_t>> all;
    for (Batch* b : {&b0, &b1})
        for (auto& o : b->outputs()) all.push_back(std::move(o));
    return all;
}

const Scene kScenes[] = {
    {4, false, 1, 6, 3, 96, 5, 0},  // V1, one shared rank
    {4, false, 0, 8, 2, 64, 4, 2},  // V1, per-token int8
    {4, true, 1, 6, 3, 80, 5, 0},   // V2, entry masks
};

TEST(SplitCalls, TwoInFlightOnThreadsMatchBlockingCallsBitForBit) {
    for (const Scene& scene : kScenes) {
        auto blocking_group = Communicator::create_local_group(scene.world);
        auto split_group = Communicator::create_local_group(scene.world);
        std::vector<std::vector<std::vector<uint8_t>>> want(static_cast<std::size_t>(scene.world)),
            got(static_cast<std::size_t>(scene.world));
        std::vector<std::thread> threads;
        for (int r = 0; r < scene.world; ++r) {
            threads.emplace_back([&, r] {
                try {
                    want[static_cast<std::size_t>(r)] =
                        blocking(scene, blocking_group[static_cast<std::size_t>(r)], r);
                    got[static_cast<std::size_t>(r)] =
                        split(scene, split_group[static_cast<std::size_t>(r)], r);
                } catch (const moedist::Error& e) {
                    ADD_FAILURE() << "rank " << r << ": " << e.what();
                }
            });
        }
        for (auto& t : threads) t.join();
        for (int r = 0; r < scene.world; ++r)
            EXPECT_EQ(got[static_cast<std::size_t>(r)], want[static_cast<std::size_t>(r)])
                << "rank " << r << ", V" << (scene.v2 ? 2 : 1) << ", quantMode "
                << scene.quant_mode;
    }
}

// --- processes -----------------------------------------------------------------------------

struct Report {
    int32_t code = -1;
    int32_t same = 0;  // split outputs equal the blocking ones
    char message[400] = {};
};

template <class Body>
std::vector<Report> run_processes(int world, const std::string& key, Body body) {
    auto* reports = static_cast<Report*>(mmap(nullptr,
                                              sizeof(Report) * world,
                                              PROT_READ | PROT_WRITE,
                                              MAP_SHARED | MAP_ANONYMOUS,
                                              -1,
                                              0));
    for (int r = 0; r < world; ++r) new (&reports[r]) Report();
    std::vector<pid_t> pids;
    std::fflush(nullptr);
    for (int rank = 0; rank < world; ++rank) {
        const pid_t pid = fork();
        if (pid == 0) {
            std::unique_ptr<moedist::transport::SocketRendezvous> rendezvous;
            Status s = moedist::transport::SocketRendezvous::open(
                key, rank, world, 0, Clock::now() + std::chrono::seconds(20), &rendezvous);
            Communicator comm;
            if (s.ok()) {
                s = Communicator::join_processes(
                    rank,
                    world,
                    "split_" + key,
                    [&](const std::vector<std::byte>& mine, std::vector<std::byte>* all) {
                        return rendezvous->all_gather(mine, all);
                    },
                    &comm);
            }
            rendezvous.reset();
            if (!s.ok()) _exit(10);
            body(rank, comm, &reports[rank]);
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
    std::vector<Report> out(reports, reports + world);
    munmap(reports, sizeof(Report) * world);
    return out;
}

std::string unique_key(const char* what) {
    return std::string(what) + "-" + std::to_string(getpid()) + "-" +
           std::to_string(Clock::now().time_since_epoch().count() % 1000000);
}

TEST(SplitCalls, TwoInFlightOnProcessesMatchBlockingCallsBitForBit) {
    for (const Scene& scene : kScenes) {
        const auto reports = run_processes(
            scene.world, unique_key("bits"), [&](int rank, Communicator& comm, Report* report) {
                try {
                    const auto want = blocking(scene, comm, rank);
                    const auto got = split(scene, comm, rank);
                    report->same = got == want ? 1 : 0;
                    report->code = ::testing::Test::HasFailure() ? 1 : 0;
                } catch (const moedist::Error& e) {
                    report->code = static_cast<int32_t>(e.code());
                    std::snprintf(report->message, sizeof(report->message), "%s", e.what());
                }
            });
        for (int r = 0; r < scene.world; ++r) {
            const Report& report = reports[static_cast<std::size_t>(r)];
            EXPECT_EQ(report.code, 0) << "rank " << r << ": " << report.message;
            EXPECT_EQ(report.same, 1) << "rank " << r << ", V" << (scene.v2 ? 2 : 1);
        }
    }
}

TEST(SplitCalls, APeerKilledBetweenTheHalvesFailsTheReceiveHalfNamingIt) {
    const Scene scene = kScenes[0];
    const int victim = 2;
    const auto reports = run_processes(
        scene.world, unique_key("kill"), [&](int rank, Communicator& comm, Report* report) {
            MoeDistributor moe(comm, std::nullopt, with_global_bs(config_of(scene, rank), scene));
            Batch b0(scene, rank, 0);
            PendingCall d0;
            const Status sent = moe.try_dispatch_send(b0.din, b0.dout, &d0);
            if (rank == victim) raise(SIGKILL);  // after publishing, before its receive half
            const Status got = sent.ok() ? d0.wait() : sent;
            report->code = got.raw_code();
            std::snprintf(report->message, sizeof(report->message), "%s", got.message().c_str());
        });
    for (int r = 0; r < scene.world; ++r) {
        if (r == victim) continue;
        const Report& report = reports[static_cast<std::size_t>(r)];
        EXPECT_EQ(report.code, 361001) << "rank " << r << ": " << report.message;
        EXPECT_NE(std::string(report.message).find("rank " + std::to_string(victim)),
                  std::string::npos)
            << "rank " << r << ": " << report.message;
    }
}

}  // namespace
