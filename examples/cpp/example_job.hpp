// The MoE layer every example runs, on whatever group it was given: W ranks, 2·W experts (two per
// rank), top-2 routing, bf16. Each expert doubles its rows; combine weighs each of a token's two
// rows by 0.25, so every token comes back as itself, bit for bit (powers of two: no rounding).
// Tensors live in moedist's shared memory (moedist::shared_allocate), so ranks that are
// processes read each other's tensors in place; any memory works, other memory is staged once
// per call.
#pragma once

#include <moedist/moedist.hpp>

#include <cstdio>
#include <cstring>
#include <new>

namespace example {

template <class T>
struct Shared {  // an array in moedist's shared memory
    explicit Shared(std::size_t n) : data(static_cast<T*>(moedist::shared_allocate(n * sizeof(T)))) {
        if (data == nullptr) throw std::bad_alloc();
    }
    ~Shared() { moedist::shared_free(data); }
    Shared(const Shared&) = delete;
    Shared& operator=(const Shared&) = delete;
    T& operator[](std::size_t i) { return data[i]; }
    T* data;
};

// Runs the layer on `comm`'s rank; true when every token came back unchanged.
inline bool run_layer(const moedist::Communicator& comm) {
    constexpr int64_t kTokens = 5, kTopK = 2, kHidden = 64;
    const int rank = comm.rank(), world = comm.size();
    moedist::MoeConfig config;
    config.ep_world_size = world;
    config.ep_rank_id = rank;
    config.moe_expert_num = 2 * world;
    config.expert_token_nums_type = 1;  // per-expert counts (torch_npu's default; MoeConfig's is 0)
    moedist::MoeDistributor moe(comm, std::nullopt, config);
    const moedist::DispatchShapes shapes = config.shapes(kTokens, kTopK, kHidden);

    // Inputs: x (BS, H) bf16, expert ids (BS, K) int32, routing weights (BS, K) fp32.
    Shared<uint16_t> x(kTokens * kHidden);
    Shared<int32_t> ids(kTokens * kTopK);
    Shared<float> weights(kTokens * kTopK);
    for (int64_t t = 0; t < kTokens; ++t) {
        for (int64_t h = 0; h < kHidden; ++h)
            x[t * kHidden + h] = moedist::bf16_from_float(0.25f * (rank + 1) + 0.001f * h + t);
        ids[t * kTopK] = static_cast<int32_t>((rank + t) % (2 * world));
        ids[t * kTopK + 1] = static_cast<int32_t>((rank + t + 3) % (2 * world));
        weights[t * kTopK] = weights[t * kTopK + 1] = 0.25f;
    }
    // Outputs, at the shapes dispatch needs (MoeConfig::shapes).
    Shared<uint16_t> expand_x(shapes.expand_x_rows * kHidden);
    Shared<int32_t> expand_idx(shapes.expand_idx), recv(shapes.ep_recv_counts);
    Shared<int64_t> token_nums(shapes.expert_token_nums);
    Shared<uint16_t> y(kTokens * kHidden);

    using moedist::DType;
    using moedist::TensorView;
    moedist::DispatchInputs in;
    in.x = TensorView::contiguous(x.data, DType::kBFloat16, {kTokens, kHidden});
    in.expert_ids = TensorView::contiguous(ids.data, DType::kInt32, {kTokens, kTopK});
    moedist::DispatchOutputs out;
    out.expand_x =
        TensorView::contiguous(expand_x.data, DType::kBFloat16, {shapes.expand_x_rows, kHidden});
    out.expand_idx = TensorView::contiguous(expand_idx.data, DType::kInt32, {shapes.expand_idx});
    out.expert_token_nums =
        TensorView::contiguous(token_nums.data, DType::kInt64, {shapes.expert_token_nums});
    out.ep_recv_counts =
        TensorView::contiguous(recv.data, DType::kInt32, {shapes.ep_recv_counts});
    moedist::DispatchHandle handle = moe.dispatch(in, out);

    // The experts: expandX's rows are grouped by local expert, token_nums[e] rows each.
    int64_t row = 0;
    for (int64_t e = 0; e < shapes.expert_token_nums; ++e)
        for (int64_t i = 0; i < token_nums[e]; ++i, ++row)
            for (int64_t h = 0; h < kHidden; ++h)
                expand_x[row * kHidden + h] = moedist::bf16_from_float(
                    2.0f * moedist::float_from_bf16(expand_x[row * kHidden + h]));

    moe.combine(handle,
                out.expand_x,
                TensorView::contiguous(weights.data, DType::kFloat32, {kTokens, kTopK}),
                TensorView::contiguous(y.data, DType::kBFloat16, {kTokens, kHidden}));
    const bool same = std::memcmp(y.data, x.data, sizeof(uint16_t) * kTokens * kHidden) == 0;
    std::printf("rank %d of '%s': %s\n", rank, comm.name().c_str(), same ? "ok" : "WRONG");
    return same;
}

}  // namespace example
