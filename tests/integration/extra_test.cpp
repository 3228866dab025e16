// Bytes beside the rows (DispatchInputs::extra → DispatchOutputs::expand_extra, docs/contract.md
// §12.2): every row a rank receives gets its token's extra columns in the same row of
// expandExtra. Checked row by row through an independent key: V2 rows by their assist triple
// (source, token), V1 rows by their x bits (every x row is distinct), in the packed and the
// expert-padded layouts, with masks, on threads and on processes (extra outside the arena is
// staged); expandExtra's tails untouched; the first-phase checks of the pair.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "forked_ranks.hpp"
#include "moedist/moedist.hpp"

namespace {

using moedist::Communicator;
using moedist::DType;
using moedist::MoeConfig;
using moedist::MoeDistributor;
using moedist::Status;
using moedist::TensorView;

constexpr int kWorld = 4;
constexpr int64_t kTopK = 3, kHidden = 32, kMaxBs = 6, kCols = 5;
constexpr int32_t kPoison = -777;

struct Scene {
    bool v2 = true;
    bool padded = false;
    bool mask = false;
    int shared_ranks = 0;
};

MoeConfig config_of(int rank, const Scene& s, int world = kWorld) {
    MoeConfig c;
    c.ep_world_size = world;
    c.ep_rank_id = rank;
    c.shared_expert_rank_num = s.shared_ranks;
    c.shared_expert_num = 1;
    c.moe_expert_num = 2 * (kWorld - s.shared_ranks);
    c.global_bs = kMaxBs * world;
    if (s.v2) c.api = moedist::Api::kV2;
    if (s.padded) c.row_layout = moedist::RowLayout::kExpertPadded;
    return c;
}

// The extra of (rank, token): kCols int32 values no other (rank, token) has.
int32_t extra_value(int rank, int64_t token, int64_t col) {
    return static_cast<int32_t>(100000 * (rank + 1) + 100 * token + 7 * col + 3);
}

struct Rank {
    MoeConfig config;
    int64_t bs = 0, capacity = 0;
    std::vector<uint16_t> x, expand_x;
    std::vector<int32_t> ids, extra, expand_extra, expand_idx, recv, assist;
    std::vector<int64_t> nums;
    std::vector<uint8_t> mask;
    moedist::DispatchInputs din;
    moedist::DispatchOutputs dout;

    Rank(int rank, const Scene& s, int world = kWorld) : config(config_of(rank, s, world)) {
        std::mt19937 rng(static_cast<uint32_t>(31 * rank + 11));
        bs = kMaxBs - rank % 3;
        capacity = config.capacity_rows(bs, kTopK);
        x.resize(static_cast<std::size_t>(bs * kHidden));
        for (auto& v : x) v = static_cast<uint16_t>(0x3C00 + rng() % 0x0800 + (rng() % 2) * 0x8000);
        ids.resize(static_cast<std::size_t>(bs * kTopK));
        const int experts = static_cast<int>(config.moe_expert_num);
        for (int64_t t = 0; t < bs; ++t) {
            std::vector<int32_t> pool(static_cast<std::size_t>(experts));
            for (int e = 0; e < experts; ++e) pool[static_cast<std::size_t>(e)] = e;
            std::shuffle(pool.begin(), pool.end(), rng);
            for (int64_t k = 0; k < kTopK; ++k)
                ids[static_cast<std::size_t>(t * kTopK + k)] = pool[static_cast<std::size_t>(k)];
        }
        extra.resize(static_cast<std::size_t>(bs * kCols));
        for (int64_t t = 0; t < bs; ++t)
            for (int64_t c = 0; c < kCols; ++c)
                extra[static_cast<std::size_t>(t * kCols + c)] = extra_value(rank, t, c);
        expand_x.assign(static_cast<std::size_t>(capacity * kHidden), 0x7FC1);
        expand_extra.assign(static_cast<std::size_t>(capacity * kCols), kPoison);
        expand_idx.assign(ids.size(), -1);
        nums.assign(static_cast<std::size_t>(config.local_expert_num()), -1);
        recv.assign(static_cast<std::size_t>(world * config.local_expert_num()), -1);
        assist.assign(static_cast<std::size_t>(3 * capacity), -1);
        din.x = TensorView::contiguous(x.data(), DType::kBFloat16, {bs, kHidden});
        din.expert_ids = TensorView::contiguous(ids.data(), DType::kInt32, {bs, kTopK});
        din.extra = TensorView::contiguous(extra.data(), DType::kInt32, {bs, kCols});
        if (s.mask) {
            mask.resize(ids.size());
            for (auto& m : mask) m = rng() % 3 != 0;
            din.x_active_mask = TensorView::contiguous(mask.data(), DType::kBool, {bs, kTopK});
        }
        dout.expand_x =
            TensorView::contiguous(expand_x.data(), DType::kBFloat16, {capacity, kHidden});
        dout.expand_extra =
            TensorView::contiguous(expand_extra.data(), DType::kInt32, {capacity, kCols});
        dout.expand_idx = TensorView::contiguous(expand_idx.data(), DType::kInt32, {bs * kTopK});
        dout.expert_token_nums =
            TensorView::contiguous(nums.data(), DType::kInt64, {static_cast<int64_t>(nums.size())});
        dout.ep_recv_counts =
            TensorView::contiguous(recv.data(), DType::kInt32, {static_cast<int64_t>(recv.size())});
        if (s.v2)
            dout.assist_info = TensorView::contiguous(assist.data(), DType::kInt32, {3 * capacity});
    }
};

// Every written row's extra is its token's, every other row keeps the poison; "" or the first
// difference. `senders` are every rank's inputs (for V1, rows are found by their x bits).
std::string check(const Rank& me, const std::vector<const Rank*>& senders, const Scene& s) {
    std::map<std::vector<uint16_t>, std::pair<int, int64_t>> by_bits;
    for (int r = 0; r < kWorld; ++r)
        for (int64_t t = 0; t < senders[static_cast<std::size_t>(r)]->bs; ++t) {
            const auto* row = senders[static_cast<std::size_t>(r)]->x.data() + t * kHidden;
            by_bits[std::vector<uint16_t>(row, row + kHidden)] = {r, t};
        }
    int64_t written = 0;
    for (int64_t row = 0; row < me.capacity; ++row) {
        const auto* bits = me.expand_x.data() + row * kHidden;
        const bool has_row = bits[0] != 0x7FC1;
        const int32_t* got = me.expand_extra.data() + row * kCols;
        if (!has_row) {
            for (int64_t c = 0; c < kCols; ++c)
                if (got[c] != kPoison) return "row " + std::to_string(row) + ": a tail written";
            continue;
        }
        ++written;
        int src = -1;
        int64_t token = -1;
        if (s.v2) {
            src = me.assist[static_cast<std::size_t>(3 * row)];
            token = me.assist[static_cast<std::size_t>(3 * row + 1)];
        } else {
            auto it = by_bits.find(std::vector<uint16_t>(bits, bits + kHidden));
            if (it == by_bits.end())
                return "row " + std::to_string(row) + ": no sender has its bits";
            std::tie(src, token) = it->second;
        }
        for (int64_t c = 0; c < kCols; ++c)
            if (got[c] != extra_value(src, token, c))
                return "row " + std::to_string(row) + " col " + std::to_string(c) + ": " +
                       std::to_string(got[c]) + ", want rank " + std::to_string(src) + " token " +
                       std::to_string(token) + "'s";
    }
    return written > 0 ? "" : "no row received";
}

std::vector<std::string> on_threads(const Scene& s) {
    std::vector<Rank> ranks;
    for (int r = 0; r < kWorld; ++r) ranks.emplace_back(r, s);
    auto group = Communicator::create_local_group(kWorld);
    std::vector<Status> statuses(kWorld);
    std::vector<std::thread> threads;
    for (int r = 0; r < kWorld; ++r)
        threads.emplace_back([&, r] {
            const auto i = static_cast<std::size_t>(r);
            MoeDistributor moe(group[i], std::nullopt, ranks[i].config);
            statuses[i] = moe.try_dispatch(ranks[i].din, ranks[i].dout);
        });
    for (auto& t : threads) t.join();
    std::vector<const Rank*> senders;
    for (const Rank& r : ranks) senders.push_back(&r);
    std::vector<std::string> out;
    for (int r = 0; r < kWorld; ++r) {
        const auto i = static_cast<std::size_t>(r);
        out.push_back(statuses[i].ok() ? check(ranks[i], senders, s) : statuses[i].message());
    }
    return out;
}

const Scene kScenes[] = {
    {true, false, false, 0},   // V2
    {true, false, true, 0},    // V2, entry masks
    {true, true, true, 0},     // V2, expert-padded rows, masks
    {false, false, false, 1},  // V1 with a shared rank
};

TEST(Extra, EveryRowGetsItsTokensExtraOnThreads) {
    for (const Scene& s : kScenes) {
        const auto got = on_threads(s);
        for (int r = 0; r < kWorld; ++r)
            EXPECT_EQ(got[static_cast<std::size_t>(r)], "")
                << "rank " << r << ", V" << (s.v2 ? 2 : 1) << (s.padded ? " padded" : "")
                << (s.mask ? " mask" : "");
    }
}

TEST(Extra, FirstPhaseChecksThePair) {
    auto group = Communicator::create_local_group(1);
    Rank r(0, Scene{}, /*world=*/1);
    MoeDistributor moe(group[0], std::nullopt, r.config);
    moedist::DispatchOutputs no_out = r.dout;
    no_out.expand_extra.reset();
    Status st = moe.try_dispatch(r.din, no_out);
    EXPECT_EQ(st.raw_code(), 161001) << st.message();
    EXPECT_NE(st.message().find("expandExtra must be non-null when extra is given"),
              std::string::npos)
        << st.message();
    moedist::DispatchOutputs narrow = r.dout;
    narrow.expand_extra =
        TensorView::contiguous(r.expand_extra.data(), DType::kInt32, {r.capacity, kCols - 1});
    st = moe.try_dispatch(r.din, narrow);
    EXPECT_EQ(st.raw_code(), 561002) << st.message();
    EXPECT_NE(st.message().find("expandExtra shape must be"), std::string::npos) << st.message();
    moedist::DispatchOutputs other = r.dout;
    other.expand_extra->dtype = DType::kFloat32;
    st = moe.try_dispatch(r.din, other);
    EXPECT_EQ(st.raw_code(), 161002) << st.message();
}

// --- processes: extra in plain heap memory, staged for peers -----------------------------------

TEST(Extra, EveryRowGetsItsTokensExtraOnProcesses) {
    const auto got = moedist::forked::run_ranks(
        kWorld,
        "extra-" + std::to_string(getpid()),
        [](int rank, Communicator& comm) -> std::string {
            for (const Scene& s : {kScenes[1], kScenes[2]}) {
                std::vector<Rank> all;
                for (int r = 0; r < kWorld; ++r)
                    all.emplace_back(r, s);  // everyone's inputs, for the check
                Rank& mine = all[static_cast<std::size_t>(rank)];
                MoeDistributor moe(comm, std::nullopt, mine.config);
                if (Status d = moe.try_dispatch(mine.din, mine.dout); !d.ok()) return d.message();
                std::vector<const Rank*> senders;
                for (const Rank& r : all) senders.push_back(&r);
                if (std::string diff = check(mine, senders, s); !diff.empty()) return diff;
            }
            return "";
        });
    for (int r = 0; r < kWorld; ++r)
        EXPECT_EQ(got[static_cast<std::size_t>(r)], "") << "rank " << r;
}

}  // namespace
