// Run-time errors and faults: every rank fails together with 361001 and a message naming the
// cause; nothing hangs (MOEDIST_TIMEOUT_MS is short here); a broken communicator stays broken.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/test_hooks.hpp"
#include "hccl/hccl.h"
#include "moedist/moedist.hpp"

namespace {

// Before any moedist call reads it (read once per process).
const bool kShortTimeout = [] {
    setenv("MOEDIST_TIMEOUT_MS", "1500", 1);
    return true;
}();

using moedist::Code;
using moedist::DType;
using moedist::Status;
using moedist::TensorView;

// One rank's tensors for a tiny job: W ranks, E = W experts (L = 1), K = 2, H = 8, BS = 4.
struct MiniRank {
    static constexpr int64_t kTokens = 4, kTopK = 2, kHidden = 8;
    moedist::MoeConfig config;
    std::vector<uint16_t> x, expand_x, x_out;
    std::vector<int32_t> ids, expand_idx, counts;
    std::vector<int64_t> token_nums;
    std::vector<float> weights;
    moedist::DispatchInputs in;
    moedist::DispatchOutputs out;

    MiniRank(int world, int rank) {
        config.ep_world_size = world;
        config.ep_rank_id = rank;
        config.moe_expert_num = world;
        const int64_t capacity = config.capacity_rows(kTokens, kTopK);
        x.resize(kTokens * kHidden);
        for (std::size_t i = 0; i < x.size(); ++i)
            x[i] = static_cast<uint16_t>(0x3F00 + 31 * i + 7 * rank);
        for (int64_t t = 0; t < kTokens; ++t) {
            ids.push_back(static_cast<int32_t>((t + rank) % world));
            ids.push_back(static_cast<int32_t>((t + rank + 1) % world));
        }
        expand_x.assign(static_cast<std::size_t>(capacity * kHidden), 0);
        x_out.assign(x.size(), 0);
        expand_idx.assign(kTokens * kTopK, 0);
        counts.assign(static_cast<std::size_t>(world), 0);
        token_nums.assign(1, 0);
        weights.assign(kTokens * kTopK, 0.25f);
        in.x = TensorView::contiguous(x.data(), DType::kBFloat16, {kTokens, kHidden});
        in.expert_ids = TensorView::contiguous(ids.data(), DType::kInt32, {kTokens, kTopK});
        out.expand_x =
            TensorView::contiguous(expand_x.data(), DType::kBFloat16, {capacity, kHidden});
        out.expand_idx =
            TensorView::contiguous(expand_idx.data(), DType::kInt32, {kTokens * kTopK});
        out.expert_token_nums = TensorView::contiguous(token_nums.data(), DType::kInt64, {1});
        out.ep_recv_counts = TensorView::contiguous(counts.data(), DType::kInt32, {world});
    }
    moedist::CombineInputs combine_inputs() {
        moedist::CombineInputs c;
        c.expand_x = out.expand_x;
        c.expert_ids = in.expert_ids;
        c.expand_idx = out.expand_idx;
        c.ep_send_counts = out.ep_recv_counts;
        c.expert_scales = TensorView::contiguous(weights.data(), DType::kFloat32, {kTokens, kTopK});
        return c;
    }
};

// Runs `body(rank, distributor, mini)` on one thread per rank; returns each rank's status.
template <class Body>
std::vector<Status> on_ranks(int world,
                             std::vector<MiniRank>& minis,
                             Body body,
                             std::vector<moedist::MoeConfig>* configs = nullptr) {
    auto group = moedist::Communicator::create_local_group(world);
    std::vector<Status> statuses(static_cast<std::size_t>(world));
    std::vector<std::thread> threads;
    for (int r = 0; r < world; ++r) {
        threads.emplace_back([&, r] {
            const auto& config = configs ? (*configs)[static_cast<std::size_t>(r)]
                                         : minis[static_cast<std::size_t>(r)].config;
            std::optional<moedist::MoeDistributor> moe;
            Status s = moedist::MoeDistributor::create(
                group[static_cast<std::size_t>(r)], std::nullopt, config, &moe);
            statuses[static_cast<std::size_t>(r)] =
                s.ok() ? body(r, *moe, minis[static_cast<std::size_t>(r)]) : s;
        });
    }
    for (auto& t : threads) t.join();
    return statuses;
}

std::vector<MiniRank> make_minis(int world) {
    std::vector<MiniRank> minis;
    for (int r = 0; r < world; ++r) minis.emplace_back(world, r);
    return minis;
}

// The body of on_ranks that only dispatches.
Status dispatch_once(int, moedist::MoeDistributor& moe, MiniRank& m) {
    return moe.try_dispatch(m.in, m.out);
}

TEST(Faults, OutOfRangeIdFailsEveryRankWithTheSameMessage) {
    auto minis = make_minis(4);
    minis[2].ids[5] = 4;  // E = 4: out of range, on rank 2, token 2, k 1
    auto statuses = on_ranks(4, minis, dispatch_once);
    for (const Status& s : statuses) {
        EXPECT_EQ(s.code(), Code::kRuntime) << s.message();
        EXPECT_EQ(s.message(), statuses[0].message());
        EXPECT_NE(s.message().find("expertIds[2][1] on rank 2"), std::string::npos) << s.message();
        EXPECT_NE(s.message().find("got 4"), std::string::npos) << s.message();
    }
}

TEST(Faults, MoreRowsThanCapacityFailsEveryRank) {
    auto minis = make_minis(2);
    // L = 1 < K = 2: a token sending both entries to expert 0 gives rank 0 more than A rows.
    for (auto& m : minis) std::fill(m.ids.begin(), m.ids.end(), 0);
    auto statuses = on_ranks(2, minis, dispatch_once);
    for (const Status& s : statuses) {
        EXPECT_EQ(s.code(), Code::kRuntime);
        EXPECT_NE(s.message().find("rows received by rank 0"), std::string::npos) << s.message();
    }
}

TEST(Faults, AttributeMismatchIsNamedOnEveryRank) {
    auto minis = make_minis(3);
    std::vector<moedist::MoeConfig> configs;
    for (auto& m : minis) configs.push_back(m.config);
    configs[1].expert_token_nums_type = 1;  // allowed to differ
    configs[2].global_bs = 12;              // must agree: 0 elsewhere
    auto statuses = on_ranks(3, minis, dispatch_once, &configs);
    for (const Status& s : statuses) {
        EXPECT_EQ(s.code(), Code::kRuntime);
        EXPECT_NE(s.message().find("globalBs must agree"), std::string::npos) << s.message();
        EXPECT_NE(s.message().find("rank 2"), std::string::npos) << s.message();
    }
}

TEST(Faults, MissingRankTimesOutNamingItAndTheGroupStaysBroken) {
    auto minis = make_minis(3);
    const auto start = std::chrono::steady_clock::now();
    auto statuses =
        on_ranks(3, minis, [](int rank, moedist::MoeDistributor& moe, MiniRank& m) -> Status {
            if (rank == 2) return Status::Ok();  // never calls
            Status first = moe.try_dispatch(m.in, m.out);
            Status again = moe.try_dispatch(m.in, m.out);
            if (again.code() != Code::kRuntime ||
                again.message().find("broken") == std::string::npos) {
                return {Code::kInternal, "second call: " + again.message()};
            }
            return first;
        });
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(seconds, 10.0);
    for (int r = 0; r < 2; ++r) {
        EXPECT_EQ(statuses[static_cast<std::size_t>(r)].code(), Code::kRuntime)
            << statuses[static_cast<std::size_t>(r)].message();
        EXPECT_NE(statuses[static_cast<std::size_t>(r)].message().find("rank 2"), std::string::npos)
            << statuses[static_cast<std::size_t>(r)].message();
    }
}

TEST(Faults, BadCombineIndexFailsEveryRankWithoutReadingOutOfBounds) {
    auto minis = make_minis(3);
    auto statuses =
        on_ranks(3, minis, [](int rank, moedist::MoeDistributor& moe, MiniRank& m) -> Status {
            if (Status s = moe.try_dispatch(m.in, m.out); !s.ok()) return s;
            if (rank == 1) m.expand_idx[3] = 1000000;  // names no row
            return moe.try_combine(
                m.combine_inputs(),
                TensorView::contiguous(m.x_out.data(), DType::kBFloat16, {4, 8}));
        });
    for (const Status& s : statuses) {
        EXPECT_EQ(s.code(), Code::kRuntime);
        EXPECT_NE(s.message().find("rank 1"), std::string::npos) << s.message();
    }
}

TEST(Faults, ErrorsLeaveTheGroupUsableForTheNextCall) {
    // A failed call still completes on every rank (SPEC §7): the next calls on the same threads
    // and communicators work, alternating with failing ones.
    auto minis = make_minis(4);
    auto statuses =
        on_ranks(4, minis, [](int rank, moedist::MoeDistributor& moe, MiniRank& m) -> Status {
            for (int round = 0; round < 3; ++round) {
                const int32_t saved = m.ids[1];
                if (rank == 3) m.ids[1] = -1;
                Status bad = moe.try_dispatch(m.in, m.out);
                m.ids[1] = saved;
                if (bad.code() != Code::kRuntime)
                    return {Code::kInternal, "bad call: " + bad.message()};
                if (Status good = moe.try_dispatch(m.in, m.out); !good.ok()) return good;
                if (Status good = moe.try_combine(
                        m.combine_inputs(),
                        TensorView::contiguous(m.x_out.data(), DType::kBFloat16, {4, 8}));
                    !good.ok()) {
                    return good;
                }
            }
            return Status::Ok();
        });
    for (const Status& s : statuses) EXPECT_TRUE(s.ok()) << s.message();
}

TEST(Faults, TpGroupsWithDifferentBsFailInsteadOfOverflowing) {
    // W = 2, T = 2, globalBs = 0: EP group 0 has BS = 1, EP group 1 has BS = 4. Outputs are sized
    // for each rank's own BS, so filling the peer rows would overflow: every rank must fail.
    constexpr int kW = 2, kH = 8;
    auto ep = std::vector<std::vector<moedist::Communicator>>{
        moedist::Communicator::create_local_group(kW),
        moedist::Communicator::create_local_group(kW)};
    std::vector<std::vector<moedist::Communicator>> tp;
    for (int e = 0; e < kW; ++e) tp.push_back(moedist::Communicator::create_local_group(2));
    std::vector<Status> statuses(4);
    std::vector<std::thread> threads;
    for (int g = 0; g < 4; ++g) {
        threads.emplace_back([&, g] {
            const int e = g / 2, t = g % 2;
            const int64_t bs = t == 0 ? 1 : 4;
            moedist::MoeConfig c;
            c.ep_world_size = kW;
            c.ep_rank_id = e;
            c.moe_expert_num = kW;
            c.tp_world_size = 2;
            c.tp_rank_id = t;
            const int64_t capacity = c.capacity_rows(bs, 1);
            std::vector<uint16_t> x(static_cast<std::size_t>(bs * kH), 0x3F80),
                expand_x(static_cast<std::size_t>(2 * capacity * kH));
            std::vector<int32_t> ids(static_cast<std::size_t>(bs), 0),
                idx(static_cast<std::size_t>(bs)), counts(2 * kW), tp_counts(2);
            std::vector<int64_t> nums(1);
            moedist::DispatchInputs in;
            in.x = TensorView::contiguous(x.data(), DType::kBFloat16, {bs, kH});
            in.expert_ids = TensorView::contiguous(ids.data(), DType::kInt32, {bs, 1});
            moedist::DispatchOutputs out;
            out.expand_x =
                TensorView::contiguous(expand_x.data(), DType::kBFloat16, {2 * capacity, kH});
            out.expand_idx = TensorView::contiguous(idx.data(), DType::kInt32, {bs});
            out.expert_token_nums = TensorView::contiguous(nums.data(), DType::kInt64, {1});
            out.ep_recv_counts = TensorView::contiguous(counts.data(), DType::kInt32, {2 * kW});
            out.tp_recv_counts = TensorView::contiguous(tp_counts.data(), DType::kInt32, {2});
            moedist::MoeDistributor moe(
                ep[static_cast<std::size_t>(t)][static_cast<std::size_t>(e)],
                tp[static_cast<std::size_t>(e)][static_cast<std::size_t>(t)],
                c);
            statuses[static_cast<std::size_t>(g)] = moe.try_dispatch(in, out);
        });
    }
    for (auto& th : threads) th.join();
    for (const Status& s : statuses) {
        EXPECT_EQ(s.code(), Code::kRuntime) << s.message();
        EXPECT_NE(s.message().find("BS must be equal on every rank when globalBs = 0"),
                  std::string::npos)
            << s.message();
    }
}

TEST(Faults, CapacityBeyondInt32IsRejectedInTheFirstPhase) {
    MiniRank m(2, 0);
    m.config.global_bs = int64_t{1} << 31;  // A = 2^30 * 2 * 1 = 2^31 rows: past int32 counts
    auto group = moedist::Communicator::create_local_group(2);
    moedist::MoeDistributor moe(group[0], std::nullopt, m.config);
    Status s = moe.try_dispatch(m.in, m.out);
    EXPECT_EQ(s.code(), Code::kInnerTiling);
    EXPECT_NE(s.message().find("T*A (rows one rank can receive) must be <= 2147483647"),
              std::string::npos)
        << s.message();
}

TEST(Faults, FirstPhaseErrorsNameTheParameter) {
    MiniRank m(2, 0);
    auto group = moedist::Communicator::create_local_group(2);
    moedist::MoeDistributor moe(group[0], std::nullopt, m.config);
    auto wrong_dtype = m.in;
    wrong_dtype.expert_ids.dtype = DType::kInt64;
    Status s = moe.try_dispatch(wrong_dtype, m.out);
    EXPECT_EQ(s.code(), Code::kInvalidParam);
    EXPECT_EQ(s.message(), "expertIds dtype must be int32, got int64");
    auto small = m.out;
    small.expand_x.shape[0] = 3;
    s = moe.try_dispatch(m.in, small);
    EXPECT_EQ(s.code(), Code::kInnerTiling);
    EXPECT_NE(s.message().find("expandX shape must be (>= T*A = 8, H = 8), got (3, 8)"),
              std::string::npos)
        << s.message();
    moedist::MoeConfig bad = m.config;
    bad.moe_expert_num = 3;  // not a multiple of W - S = 2
    std::optional<moedist::MoeDistributor> none;
    s = moedist::MoeDistributor::create(group[0], std::nullopt, bad, &none);
    EXPECT_EQ(s.code(), Code::kInnerTiling);
    EXPECT_NE(s.message().find("moeExpertNum must be a multiple"), std::string::npos)
        << s.message();
    EXPECT_THROW(moedist::MoeDistributor(group[1], std::nullopt, bad), moedist::Error);
}

// MoeConfig::soc picks the profile per call: A2 rejects W = 4 on every rank in the first phase;
// the generic profile runs the same job.
TEST(Faults, ProductProfileRejectsInTheFirstPhaseOnEveryRank) {
    auto minis = make_minis(4);
    std::vector<moedist::MoeConfig> configs;
    for (auto& m : minis) configs.push_back(m.config);
    for (auto& c : configs) c.soc = moedist::Soc::kA2;
    auto statuses = on_ranks(4, minis, dispatch_once, &configs);
    for (const Status& s : statuses) {
        EXPECT_EQ(s.code(), Code::kInnerTiling) << s.message();
        EXPECT_NE(s.message().find("epWorldSize must be 16, 32 or 64, got 4"), std::string::npos)
            << s.message();
        EXPECT_NE(s.message().find("rule A2.epWorldSize"), std::string::npos) << s.message();
    }
    for (auto& c : configs) c.soc = moedist::Soc::kGeneric;
    statuses = on_ranks(4, minis, dispatch_once, &configs);
    for (const Status& s : statuses) EXPECT_TRUE(s.ok()) << s.message();
}

// A rank whose profile rejects the call never arrives: its peers time out naming it.
TEST(Faults, OneRankRejectedByItsProfileMakesPeersTimeOutNamingIt) {
    auto minis = make_minis(3);
    std::vector<moedist::MoeConfig> configs;
    for (auto& m : minis) configs.push_back(m.config);
    configs[1].soc = moedist::Soc::kA3;  // H = 8 is no A3 configuration
    auto statuses = on_ranks(3, minis, dispatch_once, &configs);
    EXPECT_EQ(statuses[1].code(), Code::kInnerTiling) << statuses[1].message();
    for (int r : {0, 2}) {
        const Status& s = statuses[static_cast<std::size_t>(r)];
        EXPECT_EQ(s.code(), Code::kRuntime) << s.message();
        EXPECT_NE(s.message().find("rank 1"), std::string::npos) << s.message();
    }
}

// Rank 1 stalls mid-call, right after arriving (its record is out, the peers copy from it),
// longer than the timeout: its peers return 361001 naming it (it never departs); every rank then
// finds the group broken.
TEST(Faults, RankStoppingMidCallMakesPeersTimeOutAndBreaksTheGroup) {
    auto minis = make_minis(3);
    moedist::core::test_hooks::set_mid_call([](int ep_rank) {
        if (ep_rank == 1) std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    });
    std::vector<Status> second(3);
    const auto start = std::chrono::steady_clock::now();
    auto statuses =
        on_ranks(3, minis, [&](int rank, moedist::MoeDistributor& moe, MiniRank& m) -> Status {
            Status first = moe.try_dispatch(m.in, m.out);
            if (rank == 1) moedist::core::test_hooks::set_mid_call(nullptr);
            second[static_cast<std::size_t>(rank)] = moe.try_dispatch(m.in, m.out);
            return first;
        });
    moedist::core::test_hooks::set_mid_call(nullptr);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(seconds, 10.0);
    for (int r : {0, 2}) {
        const Status& s = statuses[static_cast<std::size_t>(r)];
        EXPECT_EQ(s.code(), Code::kRuntime) << s.message();
        EXPECT_NE(s.message().find("rank 1"), std::string::npos) << s.message();
    }
    // The stalled rank's own call ends in the broken group too.
    EXPECT_EQ(statuses[1].code(), Code::kRuntime) << statuses[1].message();
    for (const Status& s : second) {
        EXPECT_EQ(s.code(), Code::kRuntime) << s.message();
        EXPECT_NE(s.message().find("broken"), std::string::npos) << s.message();
    }
}

// G.groups: the communicators must match the attributes (size, rank, distinct TP group).
TEST(Faults, CommunicatorsMustMatchTheAttributes) {
    auto group = moedist::Communicator::create_local_group(2);
    MiniRank m(3, 0);  // W = 3 against a 2-rank group
    std::optional<moedist::MoeDistributor> none;
    Status s = moedist::MoeDistributor::create(group[0], std::nullopt, m.config, &none);
    EXPECT_EQ(s.code(), Code::kInnerTiling);
    EXPECT_NE(s.message().find("epWorldSize/epRankId must match communicator"), std::string::npos)
        << s.message();
    MiniRank two(2, 0);
    two.config.tp_world_size = 2;  // the EP group offered as the TP group too
    std::vector<int32_t> tp_counts(2, 0);
    two.out.tp_recv_counts = TensorView::contiguous(tp_counts.data(), DType::kInt32, {2});
    two.out.ep_recv_counts.shape[0] = 2;
    std::vector<uint16_t> expand_x(static_cast<std::size_t>(2 * 8 * MiniRank::kHidden));
    two.out.expand_x =
        TensorView::contiguous(expand_x.data(), DType::kBFloat16, {16, MiniRank::kHidden});
    std::vector<int32_t> counts(4, 0);
    two.out.ep_recv_counts = TensorView::contiguous(counts.data(), DType::kInt32, {4});
    moedist::MoeDistributor moe(group[0], group[0], two.config);
    s = moe.try_dispatch(two.in, two.out);
    EXPECT_EQ(s.code(), Code::kInnerTiling) << s.message();
    EXPECT_NE(s.message().find("groupTp must be different from groupEp"), std::string::npos)
        << s.message();
}

// Rank 0 destroys its HcclComm as soon as its call returned, while rank 1 is still inside its
// own (stalled past the timeout): rank 1 finishes on the broken group without touching freed
// memory (ASan runs this), and the other handles still destroy cleanly.
TEST(Faults, DestroyingOneRanksCommunicatorNeverDisturbsPeersStillInside) {
    HcclComm comms[3] = {nullptr, nullptr, nullptr};
    int32_t devices[3] = {0, 1, 2};
    ASSERT_EQ(HcclCommInitAll(3, devices, comms), HCCL_SUCCESS);
    char name[128] = {};
    ASSERT_EQ(HcclGetCommName(comms[0], name), HCCL_SUCCESS);
    auto minis = make_minis(3);
    moedist::core::test_hooks::set_mid_call([](int ep_rank) {
        if (ep_rank == 1) std::this_thread::sleep_for(std::chrono::milliseconds(4500));
    });
    std::vector<Status> statuses(3);
    std::vector<std::thread> threads;
    for (int r = 0; r < 3; ++r) {
        threads.emplace_back([&, r] {
            moedist::Communicator comm;
            Status s = moedist::Communicator::find(name, r, &comm);
            std::optional<moedist::MoeDistributor> moe;
            if (s.ok()) {
                s = moedist::MoeDistributor::create(
                    comm, std::nullopt, minis[static_cast<std::size_t>(r)].config, &moe);
            }
            if (s.ok()) {
                auto& m = minis[static_cast<std::size_t>(r)];
                s = moe->try_dispatch(m.in, m.out);
            }
            if (r == 0) {
                moe.reset();
                comm = moedist::Communicator();
                HcclCommDestroy(comms[0]);
            }
            statuses[static_cast<std::size_t>(r)] = s;
        });
    }
    for (auto& t : threads) t.join();
    moedist::core::test_hooks::set_mid_call(nullptr);
    for (int r = 0; r < 3; ++r) {
        const Status& s = statuses[static_cast<std::size_t>(r)];
        EXPECT_EQ(s.code(), Code::kRuntime) << "rank " << r << ": " << s.message();
    }
    EXPECT_NE(statuses[0].message().find("rank 1"), std::string::npos) << statuses[0].message();
    EXPECT_EQ(HcclCommDestroy(comms[1]), HCCL_SUCCESS);
    EXPECT_EQ(HcclCommDestroy(comms[2]), HCCL_SUCCESS);
}

}  // namespace
