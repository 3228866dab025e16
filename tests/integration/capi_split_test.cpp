// Ascend's split operations through the C API (docs/contract.md §13): on 4 threads, two
// micro-batches in flight — DispatchSetup ×2, DispatchTeardown ×2, CombineSetup ×2,
// CombineTeardown ×2 — give bit for bit what the V2 calls give for the same inputs (no
// quantization with a 2-D mask, and per-token int8), the Setup's expandIdx is V1's expandIdx of
// the active entries, a Teardown with an unknown commCmdInfo is refused, and the CalcOutputSize
// helpers give Ascend's sizes (the buffers are allocated from them).
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "acl/acl.h"
#include "aclnnop/aclnn_moe_distribute_combine_setup.h"
#include "aclnnop/aclnn_moe_distribute_combine_teardown.h"
#include "aclnnop/aclnn_moe_distribute_dispatch_setup.h"
#include "aclnnop/aclnn_moe_distribute_dispatch_teardown.h"
#include "moedist/moedist.hpp"

namespace {

using moedist::DType;
using moedist::TensorView;

constexpr int kWorld = 4;
constexpr int64_t kExperts = 8, kTopK = 3, kHidden = 48, kTokens = 5;

struct Buf {
    std::vector<uint8_t> bytes;
    aclTensor* t = nullptr;
    Buf(std::vector<int64_t> shape, aclDataType acl, std::size_t elem, uint8_t fill = 0) {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        bytes.assign(static_cast<std::size_t>(n) * elem + 8, fill);
        std::vector<int64_t> strides(shape.size(), 1);
        for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i)
            strides[static_cast<std::size_t>(i)] =
                strides[static_cast<std::size_t>(i + 1)] * shape[static_cast<std::size_t>(i + 1)];
        const int64_t storage[1] = {n};
        t = aclCreateTensor(shape.data(),
                            shape.size(),
                            acl,
                            strides.data(),
                            0,
                            ACL_FORMAT_ND,
                            storage,
                            1,
                            bytes.data());
    }
    ~Buf() { aclDestroyTensor(t); }
    Buf(const Buf&) = delete;
    Buf& operator=(const Buf&) = delete;
    template <class T>
    T* as() {
        return reinterpret_cast<T*>(bytes.data());
    }
};

struct Batch {
    int quant;
    Buf x{{kTokens, kHidden}, ACL_BF16, 2}, ids{{kTokens, kTopK}, ACL_INT32, 4};
    Buf weights{{kTokens, kTopK}, ACL_FLOAT, 4}, mask{{kTokens, kTopK}, ACL_BOOL, 1};
    Batch(int rank, int seed, int quant_mode) : quant(quant_mode) {
        std::mt19937 rng(static_cast<uint32_t>(100 * seed + rank));
        for (int64_t i = 0; i < kTokens * kHidden; ++i)
            x.as<uint16_t>()[i] =
                static_cast<uint16_t>(0x3C00 + rng() % 0x0600 + (rng() % 2) * 0x8000);
        for (int64_t t = 0; t < kTokens; ++t) {
            std::vector<int32_t> pool(kExperts);
            for (int e = 0; e < kExperts; ++e) pool[static_cast<std::size_t>(e)] = e;
            std::shuffle(pool.begin(), pool.end(), rng);
            for (int64_t k = 0; k < kTopK; ++k) {
                ids.as<int32_t>()[t * kTopK + k] = pool[static_cast<std::size_t>(k)];
                weights.as<float>()[t * kTopK + k] =
                    0.1f + static_cast<float>(rng() % 900) / 1000.0f;
                mask.as<uint8_t>()[t * kTopK + k] = rng() % 4 != 0;
            }
        }
    }
};

// A V2 call's outputs (capacity A = BS·W·min(L, K) with globalBs 0).
struct Outputs {
    static constexpr int64_t kCapacity = kTokens * kWorld * 2;  // L = 2 < K
    Buf expand_x, dyn{{kCapacity}, ACL_FLOAT, 4, 0xEE},
        assist{{128 * kCapacity}, ACL_INT32, 4, 0xEE};
    Buf nums{{2}, ACL_INT64, 8, 0xEE}, recv{{kWorld * 2}, ACL_INT32, 4, 0xEE};
    Buf x_out{{kTokens, kHidden}, ACL_BF16, 2, 0};
    explicit Outputs(int quant)
        : expand_x(
              {kCapacity, kHidden}, quant == 2 ? ACL_INT8 : ACL_BF16, quant == 2 ? 1 : 2, 0xEE) {}
};

std::vector<uint8_t> rows_of(Outputs& o, int quant) {
    const int64_t rows = o.nums.as<int64_t>()[0] + o.nums.as<int64_t>()[1];
    const std::size_t row_bytes = static_cast<std::size_t>(kHidden) * (quant == 2 ? 1 : 2);
    std::vector<uint8_t> out(
        o.expand_x.bytes.begin(),
        o.expand_x.bytes.begin() + static_cast<std::ptrdiff_t>(rows * row_bytes));
    if (quant == 2) {
        const auto* d = o.dyn.bytes.data();
        out.insert(out.end(), d, d + rows * 4);
    }
    const auto* a = o.assist.bytes.data();
    out.insert(out.end(), a, a + rows * 12);
    return out;
}

void run_rank(int rank, const std::string& group, int quant, std::vector<std::string>* failures) {
    auto fail = [&](const std::string& what) {
        failures->push_back("rank " + std::to_string(rank) + ": " + what);
    };
    const char* g = group.c_str();
    uint64_t ws = 0;
    aclOpExecutor* exec = nullptr;
    Batch b0(rank, 1, quant), b1(rank, 2, quant);
    Batch* batches[2] = {&b0, &b1};
    // Reference: the V2 calls (C++ API), batch by batch.
    std::vector<std::vector<uint8_t>> want_rows, want_out;
    moedist::Communicator comm;
    if (!moedist::Communicator::find(group, rank, &comm).ok()) return fail("no group");
    moedist::MoeConfig c;
    c.api = moedist::Api::kV2;
    c.ep_world_size = kWorld;
    c.ep_rank_id = rank;
    c.moe_expert_num = kExperts;
    c.quant_mode = quant;
    c.expert_token_nums_type = 1;
    moedist::MoeDistributor moe(comm, std::nullopt, c);
    for (Batch* b : batches) {
        Outputs o(quant);
        moedist::DispatchInputs in;
        in.x = TensorView::contiguous(b->x.bytes.data(), DType::kBFloat16, {kTokens, kHidden});
        in.expert_ids =
            TensorView::contiguous(b->ids.bytes.data(), DType::kInt32, {kTokens, kTopK});
        in.x_active_mask =
            TensorView::contiguous(b->mask.bytes.data(), DType::kBool, {kTokens, kTopK});
        moedist::DispatchOutputs out;
        out.expand_x = TensorView::contiguous(o.expand_x.bytes.data(),
                                              quant == 2 ? DType::kInt8 : DType::kBFloat16,
                                              {Outputs::kCapacity, kHidden});
        if (quant == 2)
            out.dynamic_scales =
                TensorView::contiguous(o.dyn.bytes.data(), DType::kFloat32, {Outputs::kCapacity});
        out.assist_info = TensorView::contiguous(
            o.assist.bytes.data(), DType::kInt32, {128 * Outputs::kCapacity});
        out.expert_token_nums = TensorView::contiguous(o.nums.bytes.data(), DType::kInt64, {2});
        out.ep_recv_counts =
            TensorView::contiguous(o.recv.bytes.data(), DType::kInt32, {kWorld * 2});
        if (moedist::Status s = moe.try_dispatch(in, out); !s.ok()) return fail(s.message());
        want_rows.push_back(rows_of(o, quant));
        if (quant == 0) {  // combine the rows as they came (quantized rows are not combined here)
            moedist::CombineInputs cin;
            cin.expand_x = out.expand_x;
            cin.expert_ids = in.expert_ids;
            cin.ep_send_counts = out.ep_recv_counts;
            cin.expert_scales =
                TensorView::contiguous(b->weights.bytes.data(), DType::kFloat32, {kTokens, kTopK});
            cin.assist_info = out.assist_info;
            cin.x_active_mask = in.x_active_mask;
            if (moedist::Status s = moe.try_combine(
                    cin,
                    TensorView::contiguous(
                        o.x_out.bytes.data(), DType::kBFloat16, {kTokens, kHidden}));
                !s.ok())
                return fail(s.message());
            want_out.push_back(o.x_out.bytes);
        }
    }
    // Split: both dispatches in flight, then both combines.
    // Ascend's sizes (H = 48, BS = 5, K = 3, N = 1, W = 4, L = 2, A = 40): y's dim 1 is
    // Align256(H) = 256 unquantized, Align512(Align32(H) + 4) = 512 in mode 2.
    uint64_t token_msg = 0, idx_size = 0, assist_size = 0, info_size = 0;
    if (aclnnMoeDistributeDispatchSetupTeardownCalcOutputSize(b0.x.t,
                                                              b0.ids.t,
                                                              nullptr,
                                                              b0.mask.t,
                                                              g,
                                                              kWorld,
                                                              rank,
                                                              kExperts,
                                                              0,
                                                              1,
                                                              0,
                                                              quant,
                                                              0,
                                                              1,
                                                              0,
                                                              "",
                                                              token_msg,
                                                              idx_size,
                                                              assist_size,
                                                              info_size) != 0)
        return fail(std::string("DispatchSetupTeardownCalcOutputSize: ") + aclGetRecentErrMsg());
    if (token_msg != (quant == 0 ? 256u : 512u) || idx_size != kTokens * kTopK ||
        assist_size != 128 * Outputs::kCapacity || info_size != (kTokens * 4 + kWorld * 2) * 16)
        fail("dispatch sizes " + std::to_string(token_msg) + " " + std::to_string(idx_size) + " " +
             std::to_string(assist_size) + " " + std::to_string(info_size));
    uint64_t ignored[4] = {};
    if (aclnnMoeDistributeDispatchSetupTeardownCalcOutputSize(b0.x.t,
                                                              b0.ids.t,
                                                              nullptr,
                                                              nullptr,
                                                              g,
                                                              kWorld,
                                                              rank,
                                                              kExperts,
                                                              0,
                                                              1,
                                                              0,
                                                              3,
                                                              0,
                                                              1,
                                                              0,
                                                              "",
                                                              ignored[0],
                                                              ignored[1],
                                                              ignored[2],
                                                              ignored[3]) != 561002 ||
        std::strstr(aclGetRecentErrMsg(), "quantMode") == nullptr)
        fail("CalcOutputSize must refuse quantMode 3 as the Setup does");
    const auto y_cols = static_cast<int64_t>(token_msg);
    std::vector<std::unique_ptr<Buf>> ys, idxs, infos;
    for (Batch* b : batches) {
        ys.push_back(std::make_unique<Buf>(std::vector<int64_t>{kTokens * kTopK, y_cols},
                                           quant == 0 ? ACL_BF16 : ACL_INT8,
                                           quant == 0 ? 2 : 1));
        idxs.push_back(std::make_unique<Buf>(
            std::vector<int64_t>{static_cast<int64_t>(idx_size)}, ACL_INT32, 4, 0xEE));
        infos.push_back(std::make_unique<Buf>(
            std::vector<int64_t>{static_cast<int64_t>(info_size)}, ACL_INT32, 4));
        if (aclnnMoeDistributeDispatchSetupGetWorkspaceSize(b->x.t,
                                                            b->ids.t,
                                                            nullptr,
                                                            b->mask.t,
                                                            g,
                                                            kWorld,
                                                            rank,
                                                            kExperts,
                                                            0,
                                                            1,
                                                            0,
                                                            quant,
                                                            0,
                                                            0,
                                                            "",
                                                            ys.back()->t,
                                                            idxs.back()->t,
                                                            infos.back()->t,
                                                            &ws,
                                                            &exec) != 0 ||
            aclnnMoeDistributeDispatchSetup(nullptr, 0, exec, nullptr) != 0)
            return fail(std::string("DispatchSetup: ") + aclGetRecentErrMsg());
        // V1's expandIdx of the active entries.
        std::map<int32_t, int32_t> seen;
        for (int64_t i = 0; i < kTokens * kTopK; ++i) {
            const bool active = b->mask.as<uint8_t>()[i] != 0;
            const int32_t want = active ? seen[b->ids.as<int32_t>()[i]]++ : 0;
            if (idxs.back()->as<int32_t>()[i] != want) fail("expandIdx entry " + std::to_string(i));
        }
    }
    Buf bogus({4}, ACL_INT32, 4, 0x7F);
    const aclnnStatus refused = aclnnMoeDistributeDispatchTeardownGetWorkspaceSize(b0.x.t,
                                                                                   ys[0]->t,
                                                                                   b0.ids.t,
                                                                                   bogus.t,
                                                                                   g,
                                                                                   kWorld,
                                                                                   rank,
                                                                                   kExperts,
                                                                                   0,
                                                                                   1,
                                                                                   0,
                                                                                   quant,
                                                                                   0,
                                                                                   1,
                                                                                   0,
                                                                                   "",
                                                                                   nullptr,
                                                                                   nullptr,
                                                                                   nullptr,
                                                                                   nullptr,
                                                                                   &ws,
                                                                                   &exec);
    if (refused != 161002 ||
        std::strstr(aclGetRecentErrMsg(), "commCmdInfo must name a pending DispatchSetup") ==
            nullptr)
        fail("an unknown commCmdInfo must be refused with 161002, got " + std::to_string(refused));
    std::vector<std::unique_ptr<Outputs>> outs;
    for (int i = 0; i < 2; ++i) {
        Batch* b = batches[i];
        outs.push_back(std::make_unique<Outputs>(quant));
        Outputs& o = *outs.back();
        if (aclnnMoeDistributeDispatchTeardownGetWorkspaceSize(
                b->x.t,
                ys[static_cast<std::size_t>(i)]->t,
                b->ids.t,
                infos[static_cast<std::size_t>(i)]->t,
                g,
                kWorld,
                rank,
                kExperts,
                0,
                1,
                0,
                quant,
                0,
                1,
                0,
                "",
                o.expand_x.t,
                quant == 2 ? o.dyn.t : nullptr,
                o.assist.t,
                o.nums.t,
                &ws,
                &exec) != 0 ||
            aclnnMoeDistributeDispatchTeardown(nullptr, 0, exec, nullptr) != 0)
            return fail(std::string("DispatchTeardown: ") + aclGetRecentErrMsg());
        if (rows_of(o, quant) != want_rows[static_cast<std::size_t>(i)])
            fail("dispatch rows of batch " + std::to_string(i));
    }
    if (quant != 0) return;
    std::vector<std::unique_ptr<Buf>> quants, cinfos;
    for (int i = 0; i < 2; ++i) {
        Batch* b = batches[i];
        Outputs& o = *outs[static_cast<std::size_t>(i)];
        // Align512(Align32(H) + Align8(H)/8*4) = 512 columns; (A + W)*16 = 704 entries.
        uint64_t quant_cols = 0, cinfo_size = 0;
        if (aclnnMoeDistributeCombineSetupTeardownCalcOutputSize(o.expand_x.t,
                                                                 b->ids.t,
                                                                 o.assist.t,
                                                                 g,
                                                                 kWorld,
                                                                 rank,
                                                                 kExperts,
                                                                 0,
                                                                 1,
                                                                 0,
                                                                 0,
                                                                 0,
                                                                 0,
                                                                 "",
                                                                 quant_cols,
                                                                 cinfo_size) != 0)
            return fail(std::string("CombineSetupTeardownCalcOutputSize: ") + aclGetRecentErrMsg());
        if (quant_cols != 512 || cinfo_size != (Outputs::kCapacity + kWorld) * 16)
            fail("combine sizes " + std::to_string(quant_cols) + " " + std::to_string(cinfo_size));
        quants.push_back(std::make_unique<Buf>(
            std::vector<int64_t>{Outputs::kCapacity, static_cast<int64_t>(quant_cols)},
            ACL_INT8,
            1));
        cinfos.push_back(std::make_unique<Buf>(
            std::vector<int64_t>{static_cast<int64_t>(cinfo_size)}, ACL_INT32, 4));
        if (aclnnMoeDistributeCombineSetupGetWorkspaceSize(o.expand_x.t,
                                                           b->ids.t,
                                                           o.assist.t,
                                                           g,
                                                           kWorld,
                                                           rank,
                                                           kExperts,
                                                           0,
                                                           1,
                                                           0,
                                                           0,
                                                           0,
                                                           0,
                                                           "",
                                                           quants.back()->t,
                                                           cinfos.back()->t,
                                                           &ws,
                                                           &exec) != 0 ||
            aclnnMoeDistributeCombineSetup(nullptr, 0, exec, nullptr) != 0)
            return fail(std::string("CombineSetup: ") + aclGetRecentErrMsg());
    }
    for (int i = 0; i < 2; ++i) {
        Batch* b = batches[i];
        Outputs& o = *outs[static_cast<std::size_t>(i)];
        if (aclnnMoeDistributeCombineTeardownGetWorkspaceSize(
                o.expand_x.t,
                quants[static_cast<std::size_t>(i)]->t,
                b->ids.t,
                idxs[static_cast<std::size_t>(i)]->t,
                b->weights.t,
                cinfos[static_cast<std::size_t>(i)]->t,
                b->mask.t,
                nullptr,
                g,
                kWorld,
                rank,
                kExperts,
                0,
                1,
                0,
                0,
                0,
                0,
                "",
                o.x_out.t,
                &ws,
                &exec) != 0 ||
            aclnnMoeDistributeCombineTeardown(nullptr, 0, exec, nullptr) != 0)
            return fail(std::string("CombineTeardown: ") + aclGetRecentErrMsg());
        if (o.x_out.bytes != want_out[static_cast<std::size_t>(i)])
            fail("combine of batch " + std::to_string(i));
    }
}

class CApiSplit : public ::testing::TestWithParam<int> {};

TEST_P(CApiSplit, TwoMicroBatchesInFlightMatchTheV2Calls) {
    const int quant = GetParam();
    auto group =
        moedist::Communicator::create_local_group(kWorld, "capi_split_q" + std::to_string(quant));
    std::vector<std::vector<std::string>> failures(kWorld);
    std::vector<std::thread> threads;
    for (int r = 0; r < kWorld; ++r)
        threads.emplace_back([&, r] {
            run_rank(r, group[0].name(), quant, &failures[static_cast<std::size_t>(r)]);
        });
    for (auto& t : threads) t.join();
    for (const auto& f : failures)
        for (const auto& m : f) ADD_FAILURE() << m;
}

INSTANTIATE_TEST_SUITE_P(Modes, CApiSplit, ::testing::Values(0, 2));

}  // namespace
