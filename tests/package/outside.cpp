// A tiny program outside the moedist tree: two thread ranks, one expert each, identity experts.
// Every token goes to expert (rank + t) % 2 with weight 0.5, so combine must return x * 0.5
// exactly (a power of two: no rounding), bit for bit.
#include <cstdio>
#include <cstring>
#include <moedist/moedist.hpp>
#include <thread>
#include <vector>

int main() {
    constexpr int kRanks = 2, kTokens = 3, kHidden = 8, kTopK = 1;
    auto group = moedist::Communicator::create_local_group(kRanks, "outside");
    int failures = 0;
    auto rank_main = [&](int rank) {
        moedist::MoeConfig config;
        config.ep_world_size = kRanks;
        config.ep_rank_id = rank;
        config.moe_expert_num = kRanks;
        moedist::MoeDistributor moe(group[static_cast<std::size_t>(rank)], std::nullopt, config);
        const int64_t capacity = config.capacity_rows(kTokens, kTopK);
        std::vector<uint16_t> x(kTokens * kHidden),
            expand_x(static_cast<std::size_t>(capacity * kHidden));
        for (std::size_t i = 0; i < x.size(); ++i)
            x[i] = static_cast<uint16_t>(0x3F80 + 17 * i + 300 * rank);  // bf16
        std::vector<int32_t> ids(kTokens), expand_idx(kTokens), counts(kRanks);
        std::vector<int64_t> token_nums(1);
        std::vector<float> weights(kTokens, 0.5f);
        for (int t = 0; t < kTokens; ++t) ids[static_cast<std::size_t>(t)] = (rank + t) % 2;
        using moedist::DType;
        using moedist::TensorView;
        moedist::DispatchInputs in;
        in.x = TensorView::contiguous(x.data(), DType::kBFloat16, {kTokens, kHidden});
        in.expert_ids = TensorView::contiguous(ids.data(), DType::kInt32, {kTokens, kTopK});
        moedist::DispatchOutputs out;
        out.expand_x =
            TensorView::contiguous(expand_x.data(), DType::kBFloat16, {capacity, kHidden});
        out.expand_idx = TensorView::contiguous(expand_idx.data(), DType::kInt32, {kTokens});
        out.expert_token_nums = TensorView::contiguous(token_nums.data(), DType::kInt64, {1});
        out.ep_recv_counts = TensorView::contiguous(counts.data(), DType::kInt32, {kRanks});
        moedist::DispatchHandle handle = moe.dispatch(in, out);
        std::vector<uint16_t> y(x.size());
        moe.combine(handle,
                    out.expand_x,
                    TensorView::contiguous(weights.data(), DType::kFloat32, {kTokens, kTopK}),
                    TensorView::contiguous(y.data(), DType::kBFloat16, {kTokens, kHidden}));
        for (std::size_t i = 0; i < x.size(); ++i) {
            const uint16_t want =
                static_cast<uint16_t>(x[i] - 0x0080);  // halving a normal bf16: exponent - 1
            if (y[i] != want) {
                std::printf("rank %d element %zu: got 0x%04x, want 0x%04x\n", rank, i, y[i], want);
                ++failures;
                return;
            }
        }
    };
    std::vector<std::thread> threads;
    for (int r = 0; r < kRanks; ++r) threads.emplace_back(rank_main, r);
    for (auto& t : threads) t.join();
    std::printf(failures == 0 ? "outside program: OK\n" : "outside program: FAILED\n");
    return failures == 0 ? 0 : 1;
}
