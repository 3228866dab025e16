// The expert-padded row layout (docs/contract.md §12.3, MoeConfig::row_layout): the same call as
// the packed layout with local expert e's rows moved to start at row e·W·maxBs.
// Checked against the packed call on the same inputs (itself checked against the naive reference
// by the whole-job suite), with an independent mapping: rows, scales and assist triples of every
// block where the padded address says, the gaps untouched (or zero with zero padding), the counts
// equal, and combine bit-identical. A block past maxBs rows fails every rank; the layout with
// shared ranks or V1 is refused in the first phase.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "forked_ranks.hpp"
#include "moedist/moedist.hpp"

namespace {

using moedist::Communicator;
using moedist::DType;
using moedist::MoeConfig;
using moedist::MoeDistributor;
using moedist::RowLayout;
using moedist::Status;
using moedist::TensorView;

constexpr int kWorld = 4;
constexpr int kExperts = 8;  // L = 2
constexpr int64_t kTopK = 3, kHidden = 64, kMaxBs = 5;
constexpr uint16_t kPoison = 0x7FC1;

struct Case {
    bool mask = false;
    int quant_mode = 0;
    bool zero_padding = false;
    bool same_expert_twice = false;  // every token picks expert 0 twice: blocks past maxBs
};

MoeConfig config_of(int rank, RowLayout layout, const Case& c) {
    MoeConfig config;
    config.ep_world_size = kWorld;
    config.ep_rank_id = rank;
    config.moe_expert_num = kExperts;
    config.api = moedist::Api::kV2;
    config.global_bs = kMaxBs * kWorld;
    config.quant_mode = c.quant_mode;
    config.row_layout = layout;
    config.zero_padding = c.zero_padding;
    return config;
}

// One rank's inputs (random per rank, token and column) and outputs, poisoned.
struct Rank {
    int64_t bs = 0, capacity = 0;
    std::vector<uint16_t> x, expand_x, expert_out, x_out;
    std::vector<uint8_t> mask, expand_q;
    std::vector<int32_t> ids, recv, assist;
    std::vector<float> weights, dyn;
    std::vector<int64_t> nums;
    moedist::DispatchInputs din;
    moedist::DispatchOutputs dout;

    Rank(int rank, const Case& c) {
        std::mt19937 rng(static_cast<uint32_t>(97 * rank + 5));
        bs = kMaxBs - rank % 2;
        capacity = kMaxBs * kWorld * (kExperts / kWorld);  // the padded A (>= the packed one)
        x.resize(static_cast<std::size_t>(bs * kHidden));
        for (auto& v : x) v = static_cast<uint16_t>(0x3C00 + rng() % 0x0800 + (rng() % 2) * 0x8000);
        ids.resize(static_cast<std::size_t>(bs * kTopK));
        for (int64_t t = 0; t < bs; ++t) {
            std::vector<int32_t> pool(kExperts);
            for (int e = 0; e < kExperts; ++e) pool[static_cast<std::size_t>(e)] = e;
            std::shuffle(pool.begin(), pool.end(), rng);
            for (int64_t k = 0; k < kTopK; ++k)
                ids[static_cast<std::size_t>(t * kTopK + k)] = pool[static_cast<std::size_t>(k)];
            if (c.same_expert_twice)
                ids[static_cast<std::size_t>(t * kTopK)] =
                    ids[static_cast<std::size_t>(t * kTopK + 1)] = 0;
        }
        weights.resize(ids.size());
        for (auto& w : weights) w = 0.1f + static_cast<float>(rng() % 1000) / 997.0f;
        expand_x.assign(static_cast<std::size_t>(capacity * kHidden), kPoison);
        expand_q.assign(static_cast<std::size_t>(capacity * kHidden), 0xAB);
        dyn.assign(static_cast<std::size_t>(capacity), -1.0f);
        nums.assign(kExperts / kWorld, -7);
        recv.assign(static_cast<std::size_t>(kWorld * kExperts / kWorld), -7);
        assist.assign(static_cast<std::size_t>(3 * capacity), -7);
        x_out.assign(static_cast<std::size_t>(bs * kHidden), 0x7FC2);
        din.x = TensorView::contiguous(x.data(), DType::kBFloat16, {bs, kHidden});
        din.expert_ids = TensorView::contiguous(ids.data(), DType::kInt32, {bs, kTopK});
        din.expert_scales = TensorView::contiguous(weights.data(), DType::kFloat32, {bs, kTopK});
        if (c.mask) {
            mask.resize(ids.size());
            for (auto& m : mask) m = rng() % 4 != 0;
            din.x_active_mask = TensorView::contiguous(mask.data(), DType::kBool, {bs, kTopK});
        }
        const bool quantized = c.quant_mode == 2;
        dout.expand_x =
            quantized
                ? TensorView::contiguous(expand_q.data(), DType::kInt8, {capacity, kHidden})
                : TensorView::contiguous(expand_x.data(), DType::kBFloat16, {capacity, kHidden});
        if (quantized)
            dout.dynamic_scales = TensorView::contiguous(dyn.data(), DType::kFloat32, {capacity});
        dout.assist_info = TensorView::contiguous(assist.data(), DType::kInt32, {3 * capacity});
        dout.expert_token_nums =
            TensorView::contiguous(nums.data(), DType::kInt64, {static_cast<int64_t>(nums.size())});
        dout.ep_recv_counts =
            TensorView::contiguous(recv.data(), DType::kInt32, {static_cast<int64_t>(recv.size())});
    }

    // The experts: each output element a function of the same element of expandX (so a row moved
    // elsewhere gives the same output row).
    void run_experts(int quant_mode) {
        expert_out.resize(expand_x.size());
        for (std::size_t i = 0; i < expert_out.size(); ++i) {
            const uint16_t in =
                quant_mode == 2 ? static_cast<uint16_t>(0x3E00 + expand_q[i] % 0x100) : expand_x[i];
            expert_out[i] =
                static_cast<uint16_t>(((in & 0x7FFF) % 0x0700 + 0x3A00) | (in & 0x8000));
        }
    }

    Status dispatch_and_combine(MoeDistributor& moe, int quant_mode) {
        if (Status s = moe.try_dispatch(din, dout); !s.ok()) return s;
        run_experts(quant_mode);
        moedist::CombineInputs in;
        in.expand_x =
            TensorView::contiguous(expert_out.data(), DType::kBFloat16, {capacity, kHidden});
        in.expert_ids = din.expert_ids;
        in.ep_send_counts = dout.ep_recv_counts;
        in.expert_scales = *din.expert_scales;
        in.assist_info = dout.assist_info;
        in.x_active_mask = din.x_active_mask;
        return moe.try_combine(
            in, TensorView::contiguous(x_out.data(), DType::kBFloat16, {bs, kHidden}));
    }
};

// On kWorld threads: each rank's (packed, padded) pair and both statuses.
struct Outcome {
    std::vector<Rank> packed, padded;
    std::vector<Status> packed_status, padded_status;
};

Outcome run(const Case& c) {
    Outcome out;
    for (int r = 0; r < kWorld; ++r) {
        out.packed.emplace_back(r, c);
        out.padded.emplace_back(r, c);
    }
    out.packed_status.resize(kWorld);
    out.padded_status.resize(kWorld);
    auto packed_group = Communicator::create_local_group(kWorld);
    auto padded_group = Communicator::create_local_group(kWorld);
    std::vector<std::thread> threads;
    for (int r = 0; r < kWorld; ++r) {
        threads.emplace_back([&, r] {
            const auto i = static_cast<std::size_t>(r);
            MoeDistributor packed(
                packed_group[i], std::nullopt, config_of(r, RowLayout::kPacked, c));
            MoeDistributor padded(
                padded_group[i], std::nullopt, config_of(r, RowLayout::kExpertPadded, c));
            out.packed_status[i] = out.packed[i].dispatch_and_combine(packed, c.quant_mode);
            out.padded_status[i] = out.padded[i].dispatch_and_combine(padded, c.quant_mode);
        });
    }
    for (auto& t : threads) t.join();
    return out;
}

// The first difference between rank r's packed and padded outcomes, or "" when the padded one is
// the packed one moved to its padded addresses (gaps untouched, or zero with zero padding).
std::string difference(const Rank& a, const Rank& b, const Case& c) {
    const int64_t local = kExperts / kWorld;
    const auto h = static_cast<std::size_t>(kHidden);
    if (a.recv != b.recv) return "epRecvCounts differ";
    if (a.nums != b.nums) return "expertTokenNums differ";
    if (a.x_out != b.x_out) return "combine's x differs";
    std::vector<bool> used(static_cast<std::size_t>(b.capacity), false);
    for (int64_t block = 0; block < local * kWorld; ++block) {
        const int64_t begin = block == 0 ? 0 : a.recv[static_cast<std::size_t>(block - 1)];
        const int64_t size = a.recv[static_cast<std::size_t>(block)] - begin;
        const int64_t expert = block / kWorld;
        const int64_t expert_begin =
            expert == 0 ? 0 : a.recv[static_cast<std::size_t>(expert * kWorld - 1)];
        if (size > kMaxBs) return "block " + std::to_string(block) + " past maxBs";
        for (int64_t j = 0; j < size; ++j) {
            const auto from = static_cast<std::size_t>(begin + j);
            const auto to =
                static_cast<std::size_t>(expert * kWorld * kMaxBs + begin - expert_begin + j);
            used[to] = true;
            const std::string where =
                "block " + std::to_string(block) + " row " + std::to_string(j);
            if (!std::equal(a.expand_x.begin() + from * h,
                            a.expand_x.begin() + (from + 1) * h,
                            b.expand_x.begin() + to * h))
                return "expandX of " + where;
            if (!std::equal(a.expand_q.begin() + from * h,
                            a.expand_q.begin() + (from + 1) * h,
                            b.expand_q.begin() + to * h))
                return "int8 expandX of " + where;
            if (a.dyn[from] != b.dyn[to]) return "dynamicScales of " + where;
            for (std::size_t k = 0; k < 3; ++k)
                if (a.assist[3 * from + k] != b.assist[3 * to + k]) return "assistInfo of " + where;
        }
    }
    for (int64_t row = 0; row < b.capacity; ++row) {
        const auto at = static_cast<std::size_t>(row);
        if (used[at]) continue;
        const std::string where = "gap row " + std::to_string(row);
        if (c.quant_mode == 2) {
            if (b.expand_q[at * h] != (c.zero_padding ? 0 : 0xAB))
                return "int8 expandX of " + where;
            if (b.dyn[at] != (c.zero_padding ? 0.0f : -1.0f)) return "dynamicScales of " + where;
        } else if (b.expand_x[at * h + h - 1] != (c.zero_padding ? 0 : kPoison)) {
            return "expandX of " + where;
        }
        if (b.assist[3 * at + 1] != (c.zero_padding ? 0 : -7)) return "assistInfo of " + where;
    }
    return "";
}

void expect_padded_equals_packed(const Case& c) {
    const Outcome o = run(c);
    for (int r = 0; r < kWorld; ++r) {
        const auto i = static_cast<std::size_t>(r);
        ASSERT_TRUE(o.packed_status[i].ok()) << o.packed_status[i].message();
        ASSERT_TRUE(o.padded_status[i].ok()) << o.padded_status[i].message();
        EXPECT_EQ(difference(o.packed[i], o.padded[i], c), "") << "rank " << r;
    }
}

TEST(PaddedLayout, RowsAtTheirPaddedAddressesAndCombineBitIdentical) {
    expect_padded_equals_packed({});
}

TEST(PaddedLayout, WithEntryMasksAndPerTokenInt8) {
    expect_padded_equals_packed({/*mask=*/true, /*quant_mode=*/2});
}

TEST(PaddedLayout, ZeroPaddingZeroesEveryGap) {
    expect_padded_equals_packed({/*mask=*/true, /*quant_mode=*/0, /*zero_padding=*/true});
    expect_padded_equals_packed({/*mask=*/false, /*quant_mode=*/2, /*zero_padding=*/true});
}

TEST(PaddedLayout, ABlockPastMaxBsFailsEveryRank) {
    const Outcome o = run({false, 0, false, /*same_expert_twice=*/true});
    for (int r = 0; r < kWorld; ++r) {
        const Status& s = o.padded_status[static_cast<std::size_t>(r)];
        EXPECT_EQ(s.raw_code(), 361001) << s.message();
        EXPECT_NE(s.message().find("must be at most maxBs = 5 in the expert-padded row layout"),
                  std::string::npos)
            << s.message();
    }
}

TEST(PaddedLayout, SharedRanksOrV1AreRefusedInTheFirstPhase) {
    MoeConfig c = config_of(0, RowLayout::kExpertPadded, {});
    c.shared_expert_rank_num = 1;
    c.shared_expert_num = 1;
    c.moe_expert_num = 6;
    Status s = c.validate();
    EXPECT_EQ(s.raw_code(), 561002) << s.message();
    EXPECT_NE(
        s.message().find("rowLayout must be 0 (packed) unless V2 without shared ranks and TP"),
        std::string::npos)
        << s.message();
    MoeConfig v1 = config_of(0, RowLayout::kExpertPadded, {});
    v1.api = moedist::Api::kV1;
    EXPECT_EQ(v1.validate().raw_code(), 561002);
    MoeConfig bad = config_of(0, static_cast<RowLayout>(2), {});
    EXPECT_NE(
        bad.validate().message().find("rowLayout must be 0 (packed) or 1 (expert-padded), got 2"),
        std::string::npos);
}

// --- processes: expert outputs outside the arena, so combine stages the padded rows packed -----

TEST(PaddedLayout, OnProcessesWithRowsPeersCannotMapCombineStagesThemPacked) {
    const auto got = moedist::forked::run_ranks(
        kWorld,
        "padded-" + std::to_string(getpid()),
        [](int rank, Communicator& comm) -> std::string {
            for (const Case& c : {Case{}, Case{true, 2}}) {
                Rank packed(rank, c), padded(rank, c);  // plain heap memory: not in the arena
                MoeDistributor a(comm, std::nullopt, config_of(rank, RowLayout::kPacked, c));
                MoeDistributor b(comm, std::nullopt, config_of(rank, RowLayout::kExpertPadded, c));
                if (Status st = packed.dispatch_and_combine(a, c.quant_mode); !st.ok())
                    return "packed: " + st.message();
                if (Status st = padded.dispatch_and_combine(b, c.quant_mode); !st.ok())
                    return "padded: " + st.message();
                if (std::string diff = difference(packed, padded, c); !diff.empty()) return diff;
            }
            return "";
        });
    for (int r = 0; r < kWorld; ++r)
        EXPECT_EQ(got[static_cast<std::size_t>(r)], "") << "rank " << r;
}

}  // namespace
