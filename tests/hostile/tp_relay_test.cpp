// A hostile TP peer in the relay round (TP = 2 with EP groups across nodes, core/tp_relay.hpp):
// its record comes from another process, so every field is checked before a byte is copied. A
// forged row count, dtype, column count, region, or counts that are not a running total ending
// at its rows make the read fail with a message, and leave every output as it was; an honest
// record's rows, counts, tpRecvCounts and expertTokenNums land where the contract puts them.
#include "core/tp_relay.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/shapes.hpp"

namespace {

using moedist::DType;
using moedist::MoeConfig;
using moedist::Status;
using moedist::TensorView;
using moedist::core::DispatchOp;
using moedist::core::TensorRef;
using moedist::core::TpRelayRecord;

constexpr int64_t kWorld = 4, kTokens = 4, kTopK = 2, kHidden = 16;

// One rank's dispatch outputs (W = 4, E = 4, T = 2, rank 1, TP rank 0), filled with a sentinel.
struct Rank {
    std::vector<uint16_t> expand_x;
    std::vector<int32_t> ep_recv_counts = std::vector<int32_t>(2 * kWorld, -7);
    std::vector<int32_t> tp_recv_counts = std::vector<int32_t>(2, -7);
    std::vector<int64_t> expert_token_nums = std::vector<int64_t>(1, -7);
    DispatchOp op;
    int64_t capacity = 0;

    Rank() {
        op.config.ep_world_size = kWorld;
        op.config.ep_rank_id = 1;
        op.config.moe_expert_num = kWorld;
        op.config.tp_world_size = 2;
        op.config.tp_rank_id = 0;
        op.num_tokens = kTokens;
        op.top_k = kTopK;
        op.hidden = kHidden;
        capacity =
            static_cast<int64_t>(moedist::core::capacity_rows_of(op.config, 1, kTokens, kTopK));
        expand_x.assign(static_cast<std::size_t>(2 * capacity * kHidden), 0xBEEF);
        op.out.expand_x =
            TensorView::contiguous(expand_x.data(), DType::kBFloat16, {2 * capacity, kHidden});
        op.out.ep_recv_counts =
            TensorView::contiguous(ep_recv_counts.data(), DType::kInt32, {2 * kWorld});
        op.out.tp_recv_counts = TensorView::contiguous(tp_recv_counts.data(), DType::kInt32, {2});
        op.out.expert_token_nums =
            TensorView::contiguous(expert_token_nums.data(), DType::kInt64, {1});
    }
    bool untouched(const Rank& before) const {
        return expand_x == before.expand_x && ep_recv_counts == before.ep_recv_counts &&
               tp_recv_counts == before.tp_recv_counts &&
               expert_token_nums == before.expert_token_nums;
    }
};

// The peer's side: its own rows (random bf16 bits, different per row and column) and counts,
// described by refs whose regions stand for these buffers.
struct Peer {
    std::vector<uint16_t> rows;
    std::vector<int32_t> counts;
    TpRelayRecord record;

    explicit Peer(int64_t n) {
        std::mt19937 random(static_cast<uint32_t>(n) * 7919u + 13u);
        rows.resize(static_cast<std::size_t>(std::max<int64_t>(n, 1) * kHidden));
        for (auto& v : rows) v = static_cast<uint16_t>(random() & 0x7F7F);
        // n rows over the W blocks: a running total ending at n.
        for (int64_t b = 0; b < kWorld; ++b)
            counts.push_back(static_cast<int32_t>(n * (b + 1) / kWorld));
        record.rows = n;
        record.rows_x = ref(DType::kBFloat16, {n, kHidden}, {kHidden, 1}, n * kHidden * 2);
        record.counts = ref(DType::kInt32, {kWorld, 0}, {1, 0}, kWorld * 4);
        record.counts.ndim = 1;
    }
    static TensorRef ref(DType dtype,
                         std::array<int64_t, 2> shape,
                         std::array<int64_t, 2> strides,
                         int64_t bytes) {
        TensorRef r;
        r.dtype = dtype;
        r.ndim = 2;
        r.shape[0] = shape[0];
        r.shape[1] = shape[1];
        r.strides[0] = strides[0];
        r.strides[1] = strides[1];
        r.region.bytes = static_cast<uint64_t>(bytes);
        return r;
    }
    // What the TP group maps: the buffer a ref stands for (null when its region is empty).
    moedist::core::PeerTensors tensors() {
        return [this](const TensorRef& r) {
            void* data = nullptr;
            if (!r.region.empty())
                data = r.dtype == DType::kInt32 ? static_cast<void*>(counts.data())
                                                : static_cast<void*>(rows.data());
            return moedist::core::view_over(r, data);
        };
    }
};

constexpr int64_t kOwnRows = 3;

Status take(Rank& rank, Peer& peer, int64_t* n) {
    return moedist::core::take_peer_rows(rank.op, kOwnRows, peer.record, peer.tensors(), n);
}

void expect_refused(Rank& rank, Peer& peer, const std::string& fragment) {
    const Rank before = rank;
    int64_t n = -1;
    const Status s = take(rank, peer, &n);
    EXPECT_FALSE(s.ok()) << fragment;
    EXPECT_NE(s.message().find(fragment), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(" must "), std::string::npos) << s.message();
    EXPECT_EQ(n, 0);
    EXPECT_TRUE(rank.untouched(before)) << fragment;
}

TEST(HostileTpRelay, AnHonestPeersRowsLandAfterMine) {
    Rank rank;
    Peer peer(5);
    int64_t n = 0;
    ASSERT_TRUE(take(rank, peer, &n).ok());
    EXPECT_EQ(n, 5);
    for (int64_t r = 0; r < 2 * rank.capacity; ++r) {
        for (int64_t c = 0; c < kHidden; ++c) {
            const uint16_t got = rank.expand_x[static_cast<std::size_t>(r * kHidden + c)];
            const bool peer_row = r >= kOwnRows && r < kOwnRows + 5;
            const uint16_t want =
                peer_row ? peer.rows[static_cast<std::size_t>((r - kOwnRows) * kHidden + c)]
                         : uint16_t{0xBEEF};
            ASSERT_EQ(got, want) << "row " << r << " column " << c;
        }
    }
    for (int64_t b = 0; b < kWorld; ++b) {
        EXPECT_EQ(rank.ep_recv_counts[static_cast<std::size_t>(b)], -7);  // mine: not the relay's
        EXPECT_EQ(rank.ep_recv_counts[static_cast<std::size_t>(kWorld + b)],
                  peer.counts[static_cast<std::size_t>(b)]);
    }
    EXPECT_EQ(rank.tp_recv_counts[0], kOwnRows);  // [tpRankId] = own rows
    EXPECT_EQ(rank.tp_recv_counts[1], 5);
    EXPECT_EQ(rank.expert_token_nums[0], kOwnRows + 5);
}

TEST(HostileTpRelay, ForgedRowCountsAreRefused) {
    Rank rank;
    {
        Peer peer(5);
        peer.record.rows = -1;
        expect_refused(rank, peer, "the TP peer's rows must number at most A");
    }
    {
        Peer peer(5);
        peer.record.rows = rank.capacity + 1;
        expect_refused(rank, peer, "the TP peer's rows must number at most A");
    }
    {
        Peer peer(5);
        peer.record.rows = int64_t{1} << 62;
        expect_refused(rank, peer, "the TP peer's rows must number at most A");
    }
    {  // rows within A but past expandX's end after my own rows
        Rank small;
        small.op.out.expand_x.shape[0] = kOwnRows + 4;
        Peer peer(5);
        expect_refused(small, peer, "fit expandX after this rank's 3");
    }
}

TEST(HostileTpRelay, ForgedTensorsAreRefused) {
    Rank rank;
    {
        Peer peer(5);
        peer.record.rows_x.dtype = DType::kFloat16;
        expect_refused(rank, peer, "the TP peer's expandX rows must be bfloat16");
    }
    {
        Peer peer(5);
        peer.record.rows_x.shape[1] = kHidden + 1;
        peer.record.rows_x.strides[0] = kHidden + 1;  // inside its (larger) region
        peer.record.rows_x.region.bytes = 5 * (kHidden + 1) * 2;
        peer.rows.resize(5 * (kHidden + 1));
        expect_refused(rank, peer, "the TP peer's expandX rows must have 5 rows of 16 columns");
    }
    {
        Peer peer(5);
        peer.record.rows_x.shape[0] = 4;
        expect_refused(rank, peer, "the TP peer's expandX rows must have 5 rows");
    }
    {  // an extent past the region that carries it
        Peer peer(5);
        peer.record.rows_x.strides[0] = 1 << 20;
        expect_refused(rank, peer, "must lie inside the region that carries it");
    }
    {
        Peer peer(5);
        peer.record.rows_x.ndim = 7;
        expect_refused(rank, peer, "the TP peer's expandX rows must have 2 dims");
    }
    {  // memory this rank cannot map
        Peer peer(5);
        peer.record.rows_x.region.bytes = 0;
        expect_refused(rank, peer, "must be readable by this rank");
    }
    {
        Peer peer(5);
        peer.record.counts.dtype = DType::kInt64;
        expect_refused(rank, peer, "the TP peer's epRecvCounts must be int32");
    }
}

TEST(HostileTpRelay, CountsThatAreNoRunningTotalOfItsRowsAreRefused) {
    Rank rank;
    {
        Peer peer(5);
        peer.counts[2] = 0;
        expect_refused(rank, peer, "must be a running total, got 0 after 2 at entry 2");
    }
    {
        Peer peer(5);
        peer.counts[3] = 4;
        expect_refused(rank, peer, "the TP peer's epRecvCounts must end at its 5 rows, got 4");
    }
    {
        Peer peer(5);
        peer.counts[0] = -3;
        expect_refused(rank, peer, "must be a running total");
    }
}

TEST(HostileTpRelay, NoRowsIsFine) {
    Rank rank;
    Peer peer(0);
    int64_t n = -1;
    ASSERT_TRUE(take(rank, peer, &n).ok());
    EXPECT_EQ(n, 0);
    EXPECT_EQ(rank.tp_recv_counts[1], 0);
    EXPECT_EQ(rank.expert_token_nums[0], kOwnRows);
}

}  // namespace
