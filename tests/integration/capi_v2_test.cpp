// The aclnn C API of the V2 family (Dispatch V2/V3/V4, Combine V2/V3/V4, CombineAddRmsNorm and
// its V2): first-phase codes and messages, and one whole job through each of the eight entry
// points against the reference.
#include <gtest/gtest.h>

#include <barrier>
#include <cstring>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "acl/acl.h"
#include "aclnnop/aclnn_moe_distribute_combine_add_rms_norm.h"
#include "aclnnop/aclnn_moe_distribute_combine_add_rms_norm_v2.h"
#include "aclnnop/aclnn_moe_distribute_combine_v2.h"
#include "aclnnop/aclnn_moe_distribute_combine_v3.h"
#include "aclnnop/aclnn_moe_distribute_combine_v4.h"
#include "aclnnop/aclnn_moe_distribute_dispatch_v2.h"
#include "aclnnop/aclnn_moe_distribute_dispatch_v3.h"
#include "aclnnop/aclnn_moe_distribute_dispatch_v4.h"
#include "harness/acl_calls.hpp"
#include "harness/job.hpp"
#include "hccl/hccl.h"
#include "job_specs.hpp"

namespace {

struct Tensor {
    std::vector<uint8_t> storage;
    aclTensor* handle = nullptr;
    Tensor(std::vector<int64_t> shape, aclDataType dtype, std::size_t elem) {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        storage.assign(static_cast<std::size_t>(n) * elem + 8, 0);
        std::vector<int64_t> strides(shape.size(), 1);
        for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i) {
            strides[static_cast<std::size_t>(i)] =
                strides[static_cast<std::size_t>(i + 1)] * shape[static_cast<std::size_t>(i + 1)];
        }
        const int64_t storage_dims[1] = {n};
        handle = aclCreateTensor(shape.data(),
                                 shape.size(),
                                 dtype,
                                 strides.data(),
                                 0,
                                 ACL_FORMAT_ND,
                                 storage_dims,
                                 1,
                                 storage.data());
    }
    ~Tensor() {
        if (handle != nullptr) aclDestroyTensor(handle);
    }
    Tensor(const Tensor&) = delete;
    Tensor& operator=(const Tensor&) = delete;
};

std::string recent() {
    const char* m = aclGetRecentErrMsg();
    return m == nullptr ? "" : m;
}

// Rank 0 of a W = 2, E = 2, K = 1, H = 8, BS = 2 job (A = 4): dispatch's tensors, and combine's
// (expandX (4, 8), assistInfo, epSendCounts of zeros: no rows received yet).
struct Args {
    Tensor x{{2, 8}, ACL_BF16, 2}, ids{{2, 1}, ACL_INT32, 4};
    Tensor expand_x{{4, 8}, ACL_BF16, 2}, assist{{12}, ACL_INT32, 4};
    Tensor token_nums{{1}, ACL_INT64, 8}, counts{{2}, ACL_INT32, 4};
    Tensor weights{{2, 1}, ACL_FLOAT, 4}, x_out{{2, 8}, ACL_BF16, 2};
    Tensor residual{{2, 1, 8}, ACL_BF16, 2}, gamma{{8}, ACL_BF16, 2};
    Tensor y_out{{2, 1, 8}, ACL_BF16, 2}, rstd_out{{2, 1, 1}, ACL_FLOAT, 4},
        x_norm{{2, 1, 8}, ACL_BF16, 2};
    Tensor elastic{{8}, ACL_INT32, 4};
    std::string group;
    uint64_t ws = 0;
    aclOpExecutor* exec = nullptr;

    // DispatchV4 with the given mask, assistInfo, elasticInfo, performanceInfo and commAlg.
    aclnnStatus dispatch_v4(const aclTensor* mask,
                            aclTensor* assist_out,
                            const aclTensor* elastic_info = nullptr,
                            const aclTensor* performance = nullptr,
                            const char* comm_alg = "") {
        return aclnnMoeDistributeDispatchV4GetWorkspaceSize(x.handle,
                                                            ids.handle,
                                                            nullptr,
                                                            mask,
                                                            nullptr,
                                                            elastic_info,
                                                            performance,
                                                            group.c_str(),
                                                            2,
                                                            0,
                                                            2,
                                                            "",
                                                            0,
                                                            0,
                                                            0,
                                                            1,
                                                            0,
                                                            0,
                                                            0,
                                                            1,
                                                            comm_alg,
                                                            0,
                                                            0,
                                                            0,
                                                            expand_x.handle,
                                                            nullptr,
                                                            assist_out,
                                                            token_nums.handle,
                                                            counts.handle,
                                                            nullptr,
                                                            nullptr,
                                                            &ws,
                                                            &exec);
    }

    aclnnStatus combine_v4(const aclTensor* assist_in,
                           const aclTensor* scales,
                           const aclTensor* elastic_info = nullptr,
                           const char* comm_alg = nullptr,
                           int64_t out_dtype = 0) {
        return aclnnMoeDistributeCombineV4GetWorkspaceSize(expand_x.handle,
                                                           ids.handle,
                                                           assist_in,
                                                           counts.handle,
                                                           scales,
                                                           nullptr,
                                                           nullptr,
                                                           nullptr,
                                                           nullptr,
                                                           nullptr,
                                                           nullptr,
                                                           nullptr,
                                                           elastic_info,
                                                           nullptr,
                                                           nullptr,
                                                           nullptr,
                                                           nullptr,
                                                           nullptr,
                                                           group.c_str(),
                                                           2,
                                                           0,
                                                           2,
                                                           "",
                                                           0,
                                                           0,
                                                           0,
                                                           1,
                                                           0,
                                                           0,
                                                           out_dtype,
                                                           0,
                                                           0,
                                                           comm_alg,
                                                           0,
                                                           0,
                                                           0,
                                                           x_out.handle,
                                                           &ws,
                                                           &exec);
    }

    aclnnStatus add_rms_norm(const aclTensor* residual_x, const aclTensor* gamma_in) {
        return aclnnMoeDistributeCombineAddRmsNormGetWorkspaceSize(expand_x.handle,
                                                                   ids.handle,
                                                                   assist.handle,
                                                                   counts.handle,
                                                                   weights.handle,
                                                                   residual_x,
                                                                   gamma_in,
                                                                   nullptr,
                                                                   nullptr,
                                                                   nullptr,
                                                                   nullptr,
                                                                   nullptr,
                                                                   nullptr,
                                                                   nullptr,
                                                                   group.c_str(),
                                                                   2,
                                                                   0,
                                                                   2,
                                                                   "",
                                                                   0,
                                                                   0,
                                                                   0,
                                                                   1,
                                                                   0,
                                                                   0,
                                                                   0,
                                                                   0,
                                                                   0,
                                                                   nullptr,
                                                                   1e-6f,
                                                                   y_out.handle,
                                                                   rstd_out.handle,
                                                                   x_norm.handle,
                                                                   &ws,
                                                                   &exec);
    }
};

class CApiV2 : public ::testing::Test {
protected:
    void SetUp() override {
        int32_t devices[2] = {0, 1};
        ASSERT_EQ(HcclCommInitAll(2, devices, comms_), HCCL_SUCCESS);
        char name[128] = {};
        ASSERT_EQ(HcclGetCommName(comms_[0], name), HCCL_SUCCESS);
        args_.group = name;
    }
    void TearDown() override {
        HcclCommDestroy(comms_[0]);
        HcclCommDestroy(comms_[1]);
    }
    HcclComm comms_[2] = {nullptr, nullptr};
    Args args_;
};

TEST_F(CApiV2, ValidFirstPhasesSucceed) {
    EXPECT_EQ(args_.dispatch_v4(nullptr, args_.assist.handle), 0) << recent();
    EXPECT_EQ(args_.combine_v4(args_.assist.handle, args_.weights.handle), 0) << recent();
    EXPECT_EQ(args_.add_rms_norm(args_.residual.handle, args_.gamma.handle), 0) << recent();
}

TEST_F(CApiV2, NullAssistInfoIs161001) {
    EXPECT_EQ(args_.dispatch_v4(nullptr, nullptr), 161001);
    EXPECT_EQ(recent(), "assistInfoForCombine must be non-null, got nullptr");
    EXPECT_EQ(args_.combine_v4(nullptr, args_.weights.handle), 161001);
    EXPECT_EQ(recent(), "assistInfoForCombine must be non-null, got nullptr");
}

TEST_F(CApiV2, NullExpertScalesIs161001ButEmptyOnesAreUnweighted) {
    EXPECT_EQ(args_.combine_v4(args_.assist.handle, nullptr), 161001);
    EXPECT_EQ(recent(), "expertScales must be non-null, got nullptr");
    Tensor empty_1d({0}, ACL_FLOAT, 4), empty_2d({2, 0}, ACL_FLOAT, 4);
    EXPECT_EQ(args_.combine_v4(args_.assist.handle, empty_1d.handle), 0) << recent();
    EXPECT_EQ(args_.combine_v4(args_.assist.handle, empty_2d.handle), 0) << recent();
}

TEST_F(CApiV2, AddRmsNormNeedsResidualAndGamma) {
    EXPECT_EQ(args_.add_rms_norm(nullptr, args_.gamma.handle), 161001);
    EXPECT_EQ(recent(), "residualX must be non-null, got nullptr");
    EXPECT_EQ(args_.add_rms_norm(args_.residual.handle, nullptr), 161001);
    EXPECT_EQ(recent(), "gamma must be non-null, got nullptr");
}

TEST_F(CApiV2, ElasticInfoIs561002) {
    const std::string message =
        "elasticInfo must be nullptr (elastic scaling is not supported), got a tensor";
    EXPECT_EQ(args_.dispatch_v4(nullptr, args_.assist.handle, args_.elastic.handle), 561002);
    EXPECT_EQ(recent(), message);
    EXPECT_EQ(aclnnMoeDistributeDispatchV3GetWorkspaceSize(args_.x.handle,
                                                           args_.ids.handle,
                                                           nullptr,
                                                           nullptr,
                                                           nullptr,
                                                           args_.elastic.handle,
                                                           args_.group.c_str(),
                                                           2,
                                                           0,
                                                           2,
                                                           "",
                                                           0,
                                                           0,
                                                           0,
                                                           1,
                                                           0,
                                                           0,
                                                           0,
                                                           1,
                                                           "",
                                                           0,
                                                           0,
                                                           0,
                                                           args_.expand_x.handle,
                                                           nullptr,
                                                           args_.assist.handle,
                                                           args_.token_nums.handle,
                                                           args_.counts.handle,
                                                           nullptr,
                                                           nullptr,
                                                           &args_.ws,
                                                           &args_.exec),
              561002);
    EXPECT_EQ(recent(), message);
    EXPECT_EQ(args_.combine_v4(args_.assist.handle, args_.weights.handle, args_.elastic.handle),
              561002);
    EXPECT_EQ(recent(), message);
    EXPECT_EQ(aclnnMoeDistributeCombineAddRmsNormV2GetWorkspaceSize(args_.expand_x.handle,
                                                                    args_.ids.handle,
                                                                    args_.assist.handle,
                                                                    args_.counts.handle,
                                                                    args_.weights.handle,
                                                                    args_.residual.handle,
                                                                    args_.gamma.handle,
                                                                    nullptr,
                                                                    nullptr,
                                                                    nullptr,
                                                                    nullptr,
                                                                    nullptr,
                                                                    nullptr,
                                                                    nullptr,
                                                                    args_.elastic.handle,
                                                                    nullptr,
                                                                    nullptr,
                                                                    nullptr,
                                                                    nullptr,
                                                                    args_.group.c_str(),
                                                                    2,
                                                                    0,
                                                                    2,
                                                                    "",
                                                                    0,
                                                                    0,
                                                                    0,
                                                                    1,
                                                                    0,
                                                                    0,
                                                                    0,
                                                                    0,
                                                                    0,
                                                                    "",
                                                                    1e-6f,
                                                                    0,
                                                                    0,
                                                                    0,
                                                                    args_.y_out.handle,
                                                                    args_.rstd_out.handle,
                                                                    args_.x_norm.handle,
                                                                    &args_.ws,
                                                                    &args_.exec),
              561002);
    EXPECT_EQ(recent(), message);
}

TEST_F(CApiV2, CommAlgIsCheckedAndNullMeansEmpty) {
    EXPECT_EQ(args_.dispatch_v4(nullptr, args_.assist.handle, nullptr, nullptr, nullptr), 0)
        << recent();
    for (const char* alg : {"", "0", "fullmesh", "fullmesh_v1", "fullmesh_v2", "hierarchy"}) {
        EXPECT_EQ(args_.dispatch_v4(nullptr, args_.assist.handle, nullptr, nullptr, alg), 0)
            << alg << ": " << recent();
        EXPECT_EQ(args_.combine_v4(args_.assist.handle, args_.weights.handle, nullptr, alg), 0)
            << alg << ": " << recent();
    }
    EXPECT_EQ(args_.dispatch_v4(nullptr, args_.assist.handle, nullptr, nullptr, "ring"), 561002);
    EXPECT_EQ(recent(),
              "commAlg must be \"\", \"0\", \"fullmesh\", \"fullmesh_v1\", \"fullmesh_v2\" or "
              "\"hierarchy\", got \"ring\"");
    EXPECT_EQ(args_.combine_v4(args_.assist.handle, args_.weights.handle, nullptr, "FULLMESH"),
              561002);
    EXPECT_NE(recent().find("commAlg must be"), std::string::npos) << recent();
    // Read up to 128 bytes, never further: a longer value is refused.
    const std::string long_alg(300, 'f');
    EXPECT_EQ(
        args_.dispatch_v4(nullptr, args_.assist.handle, nullptr, nullptr, long_alg.c_str()),
        561002);
}

TEST_F(CApiV2, WrongV2DtypesAre161002) {
    Tensor mask_i32({2}, ACL_INT32, 4), assist_i64({12}, ACL_INT64, 8), perf_i32({2}, ACL_INT32, 4);
    EXPECT_EQ(args_.dispatch_v4(mask_i32.handle, args_.assist.handle), 161002);
    EXPECT_EQ(recent(), "xActiveMask dtype must be bool, got int32");
    EXPECT_EQ(args_.dispatch_v4(nullptr, assist_i64.handle), 161002);
    EXPECT_EQ(recent(), "assistInfo dtype must be int32, got int64");
    EXPECT_EQ(args_.dispatch_v4(nullptr, args_.assist.handle, nullptr, perf_i32.handle), 161002);
    EXPECT_EQ(recent(), "performanceInfo dtype must be int64, got int32");
    EXPECT_EQ(args_.combine_v4(assist_i64.handle, args_.weights.handle), 161002);
    EXPECT_EQ(recent(), "assistInfo dtype must be int32, got int64");
    Tensor fp16_residual({2, 1, 8}, ACL_FLOAT16, 2);
    EXPECT_EQ(args_.add_rms_norm(fp16_residual.handle, args_.gamma.handle), 161002);
    EXPECT_EQ(recent(), "residualX dtype must be bfloat16, got float16");
}

TEST_F(CApiV2, CombineOutDtypeOtherThanZeroIs561002) {
    EXPECT_EQ(args_.combine_v4(args_.assist.handle, args_.weights.handle, nullptr, "", 1), 561002);
    EXPECT_EQ(recent(), "outDtype must be 0, got 1");
}

TEST_F(CApiV2, CrossedExecutorsNameTheirFirstPhase) {
    ASSERT_EQ(args_.dispatch_v4(nullptr, args_.assist.handle), 0) << recent();
    EXPECT_EQ(aclnnMoeDistributeCombineV4(nullptr, 0, args_.exec, nullptr), 161001);
    EXPECT_EQ(recent(),
              "aclnnMoeDistributeCombineV4 executor must be one "
              "aclnnMoeDistributeCombineV4GetWorkspaceSize returned, got one of "
              "aclnnMoeDistributeDispatchV4GetWorkspaceSize (left for its own operation)");
    EXPECT_EQ(aclnnMoeDistributeDispatchV2(nullptr, 0, nullptr, nullptr), 161001);
    EXPECT_EQ(recent(),
              "aclnnMoeDistributeDispatchV2 executor must be one phase 1 returned and not yet run, "
              "got nullptr");
}

// Two thread ranks of a W = 2, E = 2, K = 1, H = 8, BS = 2 job on aclrtMalloc memory: DispatchV4
// (with performanceInfo), then CombineV4 of dispatch's rows. `between(rank, op, blocks)` runs
// between each operation's phases on each rank (op 0 dispatch, 1 combine), after a barrier.
struct MallocRank {
    std::vector<void*> blocks;
    std::vector<aclTensor*> tensors;
    aclTensor* make(std::vector<int64_t> shape, aclDataType dtype, std::size_t elem) {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        void* block = nullptr;
        EXPECT_EQ(aclrtMalloc(&block, static_cast<std::size_t>(n) * elem + 64, ACL_MEM_MALLOC_HUGE_FIRST),
                  ACL_SUCCESS);
        std::memset(block, 0, static_cast<std::size_t>(n) * elem + 64);
        blocks.push_back(block);
        std::vector<int64_t> strides(shape.size(), 1);
        for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i) {
            strides[static_cast<std::size_t>(i)] =
                strides[static_cast<std::size_t>(i + 1)] * shape[static_cast<std::size_t>(i + 1)];
        }
        aclTensor* t = aclCreateTensor(
            shape.data(), shape.size(), dtype, strides.data(), 0, ACL_FORMAT_ND, &n, 1, block);
        tensors.push_back(t);
        return t;
    }
    ~MallocRank() {
        for (aclTensor* t : tensors) aclDestroyTensor(t);
        for (void* b : blocks)
            if (b != nullptr) aclrtFree(b);
    }
    // Frees the block of tensors[i] (the destructor skips it).
    void free_block(std::size_t i) {
        aclrtFree(blocks[i]);
        blocks[i] = nullptr;
    }
};

struct Outcome {
    aclnnStatus dispatch = -1, combine = -1;
    std::string dispatch_msg, combine_msg;
};

// Indices into MallocRank::tensors.
enum : std::size_t { kX, kIds, kExpandX, kAssist, kNums, kCounts, kPerf, kWeights, kOut };

std::vector<Outcome> run_two_ranks(const std::function<void(int, int, MallocRank&)>& between,
                                   std::string* group) {
    HcclComm comms[2] = {nullptr, nullptr};
    int32_t devices[2] = {0, 1};
    EXPECT_EQ(HcclCommInitAll(2, devices, comms), HCCL_SUCCESS);
    char name[128] = {};
    HcclGetCommName(comms[0], name);
    *group = name;
    std::vector<Outcome> out(2);
    std::barrier sync(2);
    auto rank_main = [&](int r) {
        MallocRank m;
        m.make({2, 8}, ACL_BF16, 2);
        aclTensor* ids = m.make({2, 1}, ACL_INT32, 4);
        static_cast<int32_t*>(m.blocks[kIds])[1] = 1;  // token 0 to expert 0, token 1 to expert 1
        m.make({4, 8}, ACL_BF16, 2);
        m.make({12}, ACL_INT32, 4);
        m.make({1}, ACL_INT64, 8);
        m.make({2}, ACL_INT32, 4);
        m.make({2}, ACL_INT64, 8);
        m.make({2, 1}, ACL_FLOAT, 4);
        m.make({2, 8}, ACL_BF16, 2);
        const auto& t = m.tensors;
        uint64_t ws = 0;
        aclOpExecutor* exec = nullptr;
        Outcome& o = out[static_cast<std::size_t>(r)];
        o.dispatch = aclnnMoeDistributeDispatchV4GetWorkspaceSize(
            t[kX], ids, nullptr, nullptr, nullptr, nullptr, t[kPerf], name, 2, r, 2, "", 0, 0, 0,
            1, 0, 0, 0, 1, "", 0, 0, 0, t[kExpandX], nullptr, t[kAssist], t[kNums], t[kCounts],
            nullptr, nullptr, &ws, &exec);
        sync.arrive_and_wait();
        between(r, 0, m);
        sync.arrive_and_wait();
        if (o.dispatch == 0) o.dispatch = aclnnMoeDistributeDispatchV4(nullptr, ws, exec, nullptr);
        o.dispatch_msg = recent();
        if (o.dispatch != 0) return;
        exec = nullptr;
        o.combine = aclnnMoeDistributeCombineV4GetWorkspaceSize(
            t[kExpandX], ids, t[kAssist], t[kCounts], t[kWeights], nullptr, nullptr, nullptr,
            nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
            t[kPerf], name, 2, r, 2, "", 0, 0, 0, 1, 0, 0, 0, 0, 0, "", 0, 0, 0, t[kOut], &ws,
            &exec);
        sync.arrive_and_wait();
        between(r, 1, m);
        sync.arrive_and_wait();
        if (o.combine == 0) o.combine = aclnnMoeDistributeCombineV4(nullptr, ws, exec, nullptr);
        o.combine_msg = recent();
    };
    std::thread other(rank_main, 1);
    rank_main(0);
    other.join();
    HcclCommDestroy(comms[0]);
    HcclCommDestroy(comms[1]);
    return out;
}

TEST(CApiV2Lifetime, AWholeJobOnAclrtMallocMemorySucceeds) {
    std::string group;
    const std::vector<Outcome> out = run_two_ranks([](int, int, MallocRank&) {}, &group);
    for (const Outcome& o : out) {
        EXPECT_EQ(o.dispatch, 0) << o.dispatch_msg;
        EXPECT_EQ(o.combine, 0) << o.combine_msg;
    }
}

// performanceInfo is written even by a failing call: a freed one must not be.
TEST(CApiV2Lifetime, PerformanceInfoFreedBetweenDispatchPhasesFailsEveryRankNamingIt) {
    std::string group;
    const std::vector<Outcome> out = run_two_ranks(
        [](int rank, int op, MallocRank& m) {
            if (rank == 1 && op == 0) m.free_block(kPerf);
        },
        &group);
    for (const Outcome& o : out) {
        EXPECT_EQ(o.dispatch, 361001);
        EXPECT_EQ(o.dispatch_msg,
                  "performanceInfo memory of rank 1 of '" + group +
                      "' must stay allocated until aclnnMoeDistributeDispatchV4, got its "
                      "aclrtMalloc block freed after aclnnMoeDistributeDispatchV4GetWorkspaceSize");
    }
}

TEST(CApiV2Lifetime, AssistInfoFreedBetweenCombinePhasesFailsEveryRankNamingIt) {
    std::string group;
    const std::vector<Outcome> out = run_two_ranks(
        [](int rank, int op, MallocRank& m) {
            if (rank == 0 && op == 1) m.free_block(kAssist);
        },
        &group);
    for (const Outcome& o : out) {
        EXPECT_EQ(o.dispatch, 0) << o.dispatch_msg;
        EXPECT_EQ(o.combine, 361001);
        EXPECT_EQ(o.combine_msg,
                  "assistInfoForCombine memory of rank 0 of '" + group +
                      "' must stay allocated until aclnnMoeDistributeCombineV4, got its "
                      "aclrtMalloc block freed after aclnnMoeDistributeCombineV4GetWorkspaceSize");
    }
}

// Whole jobs (threads), bit for bit against the V2 reference, through every entry point: the
// C API variants of the V2 suite, whose seeds choose the entry points.
TEST(CApiV2Jobs, EveryEntryPointRunsAWholeJob) {
    std::set<std::string> used;
    for (const moedist::harness::JobSpec& spec : moedist::test_specs::v2_jobs()) {
        if (!spec.c_api) continue;
        ASSERT_EQ(moedist::harness::spec_error(spec), "");
        const int version = moedist::harness::acl_dispatch_version(spec);
        const std::string combine = moedist::harness::acl_combine_entry(spec);
        const auto report = moedist::harness::run_job(spec, /*steps=*/2, /*check=*/true);
        EXPECT_TRUE(report.ok) << spec.describe() << " (DispatchV" << version << ", " << combine
                               << "): " << report.first_mismatch;
        used.insert("aclnnMoeDistributeDispatchV" + std::to_string(version));
        used.insert(combine);
    }
    const std::set<std::string> all = {"aclnnMoeDistributeDispatchV2",
                                       "aclnnMoeDistributeDispatchV3",
                                       "aclnnMoeDistributeDispatchV4",
                                       "aclnnMoeDistributeCombineV2",
                                       "aclnnMoeDistributeCombineV3",
                                       "aclnnMoeDistributeCombineV4",
                                       "aclnnMoeDistributeCombineAddRmsNorm",
                                       "aclnnMoeDistributeCombineAddRmsNormV2"};
    EXPECT_EQ(used, all);
}

}  // namespace
