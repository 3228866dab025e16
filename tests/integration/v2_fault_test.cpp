// The V2 family's errors (docs/contract.md §10.2, §10.10, §10.11): what moedist checks that the
// device leaves undefined (a 1-D mask that is not a prefix, active ids outside [0, E'), a combine
// whose ids or mask differ from dispatch's, tampered triples) fails every rank with 361001 naming
// the cause, never a hang or a read of another token's rows; first-phase errors are 161001 /
// 161002 / 561002. Also performanceInfo's wait accounting.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "moedist/moedist.hpp"

namespace {

const bool kShortTimeout = [] {
    setenv("MOEDIST_TIMEOUT_MS", "1500", 1);
    return true;
}();

using moedist::Code;
using moedist::DType;
using moedist::Status;
using moedist::TensorView;

// One rank of a tiny V2 job: W ranks, S shared ranks holding N shared experts, E = W − S MoE
// experts (L = 1), K = 2, H = 8, BS = 4, a (BS, K) mask (all true unless a test changes it).
struct Rank {
    static constexpr int64_t kTokens = 4, kTopK = 2, kHidden = 8;
    moedist::MoeConfig config;
    std::vector<uint16_t> x, expand_x, x_out;
    std::vector<int32_t> ids, assist, counts;
    std::vector<int64_t> token_nums, performance;
    std::vector<uint8_t> mask;
    std::vector<float> weights;
    moedist::DispatchInputs in;
    moedist::DispatchOutputs out;

    Rank(int world, int shared, int n, int rank) {
        config.api = moedist::Api::kV2;
        config.ep_world_size = world;
        config.ep_rank_id = rank;
        config.shared_expert_rank_num = shared;
        config.shared_expert_num = n;
        config.moe_expert_num = world - shared;
        config.zero_expert_num = 1;  // id E is a zero expert
        const int64_t capacity = config.capacity_rows(kTokens, kTopK);
        const int64_t experts = world - shared;
        x.resize(kTokens * kHidden);
        for (std::size_t i = 0; i < x.size(); ++i)
            x[i] = static_cast<uint16_t>(0x3F00 + 31 * i + 7 * rank);
        for (int64_t t = 0; t < kTokens; ++t) {
            ids.push_back(static_cast<int32_t>((t + rank) % experts));
            ids.push_back(static_cast<int32_t>((t + rank + 1) % experts));
        }
        mask.assign(kTokens * kTopK, 1);
        expand_x.assign(static_cast<std::size_t>(capacity * kHidden), 0);
        x_out.assign(x.size(), 0);
        assist.assign(static_cast<std::size_t>(3 * capacity), 0);
        counts.assign(static_cast<std::size_t>(world), 0);
        token_nums.assign(1, 0);
        performance.assign(static_cast<std::size_t>(world), 0);
        weights.assign(kTokens * kTopK, 0.25f);
        in.x = TensorView::contiguous(x.data(), DType::kBFloat16, {kTokens, kHidden});
        in.expert_ids = TensorView::contiguous(ids.data(), DType::kInt32, {kTokens, kTopK});
        in.x_active_mask = TensorView::contiguous(mask.data(), DType::kBool, {kTokens, kTopK});
        out.expand_x =
            TensorView::contiguous(expand_x.data(), DType::kBFloat16, {capacity, kHidden});
        out.expand_idx = TensorView::contiguous(nullptr, DType::kInt32, {0});
        out.assist_info = TensorView::contiguous(
            assist.data(), DType::kInt32, {static_cast<int64_t>(assist.size())});
        out.expert_token_nums = TensorView::contiguous(token_nums.data(), DType::kInt64, {1});
        out.ep_recv_counts = TensorView::contiguous(counts.data(), DType::kInt32, {world});
        out.performance_info = TensorView::contiguous(performance.data(), DType::kInt64, {world});
    }
    moedist::CombineInputs combine_inputs() {
        moedist::CombineInputs c;
        c.expand_x = out.expand_x;
        c.expert_ids = in.expert_ids;
        c.expand_idx = out.expand_idx;
        c.ep_send_counts = out.ep_recv_counts;
        c.expert_scales = TensorView::contiguous(weights.data(), DType::kFloat32, {kTokens, kTopK});
        c.assist_info = out.assist_info;
        c.x_active_mask = in.x_active_mask;
        c.performance_info = out.performance_info;
        return c;
    }
    TensorView x_view() {
        return TensorView::contiguous(x_out.data(), DType::kBFloat16, {kTokens, kHidden});
    }
};

struct Job {
    int world, shared, n;
    std::vector<Rank> ranks;
    Job(int w, int s, int shared_experts) : world(w), shared(s), n(shared_experts) {
        for (int r = 0; r < w; ++r) ranks.emplace_back(w, s, shared_experts, r);
    }
    // Runs body(rank, distributor, its tensors) on one thread per rank.
    template <class Body>
    std::vector<Status> run(Body body) {
        auto group = moedist::Communicator::create_local_group(world);
        std::vector<Status> statuses(static_cast<std::size_t>(world));
        std::vector<std::thread> threads;
        for (int r = 0; r < world; ++r) {
            threads.emplace_back([&, r] {
                Rank& me = ranks[static_cast<std::size_t>(r)];
                std::optional<moedist::MoeDistributor> moe;
                Status s = moedist::MoeDistributor::create(
                    group[static_cast<std::size_t>(r)], std::nullopt, me.config, &moe);
                statuses[static_cast<std::size_t>(r)] = s.ok() ? body(r, *moe, me) : s;
            });
        }
        for (auto& t : threads) t.join();
        return statuses;
    }
};

Status dispatch_and_combine(int, moedist::MoeDistributor& moe, Rank& me) {
    if (Status s = moe.try_dispatch(me.in, me.out); !s.ok()) return s;
    return moe.try_combine(me.combine_inputs(), me.x_view());
}

void expect_all(const std::vector<Status>& statuses, Code code, const std::string& text) {
    for (const Status& s : statuses) {
        EXPECT_EQ(s.code(), code) << s.message();
        EXPECT_NE(s.message().find(text), std::string::npos) << s.message();
    }
}

TEST(V2Faults, AWellFormedJobPassesAndInactiveEntriesMayHoldAnyId) {
    Job job(5, 2, 2);
    // Inactive entries with ids no expert has; a token wholly inactive; a special entry.
    job.ranks[1].mask[1] = 0, job.ranks[1].ids[1] = 9999;
    job.ranks[2].mask[4] = job.ranks[2].mask[5] = 0, job.ranks[2].ids[4] = -7;
    job.ranks[3].ids[2] = 3;  // E = 3: the zero expert
    for (const Status& s : job.run(dispatch_and_combine)) EXPECT_TRUE(s.ok()) << s.message();
    // The wholly inactive token of rank 2 keeps its x row (nothing writes it).
    for (int h = 0; h < Rank::kHidden; ++h) EXPECT_EQ(job.ranks[2].x_out[2 * Rank::kHidden + h], 0);
}

TEST(V2Faults, AOneDimensionalMaskThatIsNotAPrefixFailsEveryRankNamingTheToken) {
    Job job(4, 1, 1);
    std::vector<uint8_t> tokens = {1, 0, 1, 0};
    job.ranks[2].in.x_active_mask = TensorView::contiguous(tokens.data(), DType::kBool, {4});
    expect_all(job.run(dispatch_and_combine), Code::kRuntime, "xActiveMask on rank 2");
    for (const Status& s : job.run(dispatch_and_combine))
        EXPECT_NE(s.message().find("token 1"), std::string::npos) << s.message();
}

TEST(V2Faults, AnActiveIdOutsideEPrimeFailsEveryRank) {
    Job job(4, 1, 1);
    job.ranks[3].ids[5] = 4;  // E' = 3 + 1
    expect_all(job.run(dispatch_and_combine), Code::kRuntime, "expertIds[2][1] on rank 3");
}

TEST(V2Faults, ACombineWhoseMaskDiffersFromDispatchsFailsInsteadOfReadingOtherRows) {
    Job job(5, 2, 2);
    auto statuses = job.run([](int rank, moedist::MoeDistributor& moe, Rank& me) -> Status {
        if (Status s = moe.try_dispatch(me.in, me.out); !s.ok()) return s;
        if (rank == 3) me.mask[2] = 0;  // one entry fewer at combine
        return moe.try_combine(me.combine_inputs(), me.x_view());
    });
    expect_all(statuses, Code::kRuntime, "of rank 3");
    EXPECT_NE(statuses[0].message().find("must match dispatch's"), std::string::npos)
        << statuses[0].message();
}

TEST(V2Faults, ACombineWhoseIdsDifferFromDispatchsFails) {
    Job job(5, 2, 1);
    auto statuses = job.run([](int rank, moedist::MoeDistributor& moe, Rank& me) -> Status {
        if (Status s = moe.try_dispatch(me.in, me.out); !s.ok()) return s;
        if (rank == 4) std::swap(me.ids[0], me.ids[2]);  // same counts, other tokens' rows
        return moe.try_combine(me.combine_inputs(), me.x_view());
    });
    expect_all(statuses, Code::kRuntime, "of rank 4");
}

TEST(V2Faults, ATamperedTripleFailsTheRankWhoseRowItNames) {
    Job job(4, 1, 1);
    auto statuses = job.run([](int rank, moedist::MoeDistributor& moe, Rank& me) -> Status {
        if (Status s = moe.try_dispatch(me.in, me.out); !s.ok()) return s;
        if (rank == 2) me.assist[1] += 1;  // row 0's token
        return moe.try_combine(me.combine_inputs(), me.x_view());
    });
    for (const Status& s : statuses) EXPECT_EQ(s.code(), Code::kRuntime) << s.message();
}

TEST(V2Faults, FirstPhaseErrorsOfTheV2Tensors) {
    auto dispatch_status = [&](auto mutate) {
        Job job(4, 1, 1);
        for (Rank& k : job.ranks) mutate(k);
        return job.run(dispatch_and_combine)[0];
    };
    EXPECT_EQ(dispatch_status([](Rank& k) { k.out.assist_info.reset(); }).code(), Code::kNullptr);
    EXPECT_EQ(dispatch_status([](Rank& k) { k.out.assist_info->shape[0] = 3; }).code(),
              Code::kInnerTiling);
    EXPECT_EQ(dispatch_status([](Rank& k) { k.in.x_active_mask->dtype = DType::kUInt8; }).code(),
              Code::kInvalidParam);
    EXPECT_EQ(dispatch_status([](Rank& k) { k.in.x_active_mask->shape[1] = 3; }).code(),
              Code::kInnerTiling);
    EXPECT_EQ(dispatch_status([](Rank& k) { k.out.performance_info->shape[0] = 3; }).code(),
              Code::kInnerTiling);
    // sharedExpertX only without shared ranks; AddRmsNorm needs yOut and rstdOut.
    Job job(4, 1, 1);
    std::vector<uint16_t> sx(Rank::kTokens * Rank::kHidden, 0x3F80);
    std::vector<uint16_t> gamma(Rank::kHidden, 0x3F80);
    auto statuses = job.run([&](int, moedist::MoeDistributor& moe, Rank& me) -> Status {
        if (Status s = moe.try_dispatch(me.in, me.out); !s.ok()) return s;
        moedist::CombineInputs c = me.combine_inputs();
        c.shared_expert_x =
            TensorView::contiguous(sx.data(), DType::kBFloat16, {Rank::kTokens, Rank::kHidden});
        Status shared = moe.try_combine(c, me.x_view());
        if (shared.code() != Code::kInnerTiling) return {Code::kInternal, shared.message()};
        c = me.combine_inputs();
        c.residual_x = TensorView::contiguous(
            sx.data(), DType::kBFloat16, {Rank::kTokens, 1, Rank::kHidden});
        c.gamma = TensorView::contiguous(gamma.data(), DType::kBFloat16, {Rank::kHidden});
        return moe.try_combine(c, me.x_view());
    });
    // A rank fails its own first phase (161001), or first learns of a peer's (361001).
    for (const Status& s : statuses) {
        EXPECT_TRUE(s.code() == Code::kNullptr || s.code() == Code::kRuntime) << s.message();
        EXPECT_NE(s.message().find("yOut must be non-null"), std::string::npos) << s.message();
    }
}

TEST(V2Faults, PerformanceInfoAddsTheWaitForALateRank) {
    Job job(3, 0, 1);
    auto statuses = job.run([](int rank, moedist::MoeDistributor& moe, Rank& me) -> Status {
        for (int call = 0; call < 2; ++call) {
            if (rank == 2) std::this_thread::sleep_for(std::chrono::milliseconds(60));
            const std::vector<int64_t> before = me.performance;
            if (Status s = dispatch_and_combine(rank, moe, me); !s.ok()) return s;
            for (std::size_t r = 0; r < before.size(); ++r) {
                if (me.performance[r] < before[r])
                    return {Code::kInternal, "performanceInfo went down"};
            }
        }
        return Status::Ok();
    });
    for (const Status& s : statuses) ASSERT_TRUE(s.ok()) << s.message();
    // Ranks 0 and 1 waited about 60 ms for rank 2 in each dispatch: at least 2 × 40 ms.
    for (int r = 0; r < 2; ++r) {
        EXPECT_GE(job.ranks[static_cast<std::size_t>(r)].performance[2], 80000)
            << "rank " << r;
        EXPECT_GE(job.ranks[static_cast<std::size_t>(r)].performance[r], 0);
    }
}

}  // namespace
