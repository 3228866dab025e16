// Limits: group names of every length with and without a terminator (read to 128 bytes, never
// past, checked against a PROT_NONE page), BS·K beyond int32, running out of memory (361001 with
// the bytes), exceptions of any type at the API boundaries (361001, never 561000), and the combine
// shape messages a new user hit (expandIdx of BS·K + 1, expandX dim 1 ≠ H).
#include "util/cpu.hpp"
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "api/boundary.hpp"
#include "api/facade.hpp"
#include "support.hpp"

namespace {

using hostile::recent;
using hostile::Tensor;

constexpr aclnnStatus kNull = 161001, kRuntime = 361001, kShape = 561002;

class HostileNames : public ::testing::Test {
protected:
    hostile::JobShape shape_;
    hostile::Group group_{2};
    hostile::Group tp_{2};
    hostile::RankTensors t_ = hostile::make_rank(shape_, 0);

    aclnnStatus dispatch(const char* group_ep, const char* group_tp, int64_t tp_world) {
        hostile::DispatchCall d = hostile::dispatch_call(shape_, 0, group_.name(), t_);
        d.group_ep = group_ep;
        d.group_tp = group_tp;
        d.tp_world_size = tp_world;
        aclOpExecutor* exec = nullptr;
        const aclnnStatus status = d.phase1(&exec);
        message_ = recent();
        return status;
    }
    aclnnStatus combine(const char* group_ep) {
        hostile::CombineCall c = hostile::combine_call(shape_, 0, group_.name(), t_);
        c.group_ep = group_ep;
        aclOpExecutor* exec = nullptr;
        const aclnnStatus status = c.phase1(&exec);
        message_ = recent();
        return status;
    }
    void TearDown() override { EXPECT_TRUE(hostile::fresh_job_succeeds()); }
    std::string message_;
};

TEST_F(HostileNames, TerminatedNamesOfEveryLengthEndingAtAGuardPage) {
    for (std::size_t n = 0; n < 128; ++n) {
        SCOPED_TRACE(n);
        hostile::GuardedBuffer buffer(n + 1);  // the NUL is the last readable byte
        std::memset(buffer.data(), 'g', n);
        buffer.data()[n] = '\0';
        const aclnnStatus status = dispatch(buffer.data(), "", 0);
        if (n == 0) {
            EXPECT_EQ(status, kNull);
            EXPECT_EQ(message_, "groupEp length must be in [1, 128), got 0");
        } else {
            EXPECT_EQ(status, kShape);  // no such communicator
            EXPECT_NE(message_.find(std::string(n, 'g')), std::string::npos) << message_;
        }
    }
    // The live name, ending at the guard page.
    hostile::GuardedBuffer live(group_.name().size() + 1);
    std::memcpy(live.data(), group_.name().c_str(), group_.name().size() + 1);
    EXPECT_EQ(dispatch(live.data(), "", 0), 0) << message_;
    EXPECT_EQ(combine(live.data()), 0) << message_;
}

TEST_F(HostileNames, UnterminatedNamesAreReadTo128BytesOnly) {
    for (std::size_t n : {128, 129, 200, 4096}) {
        SCOPED_TRACE(n);
        // Byte 128 of the name is the first byte of the guard page when n = 128.
        hostile::GuardedBuffer buffer(n);
        std::memset(buffer.data(), 'g', n);
        EXPECT_EQ(dispatch(buffer.data(), "", 0), kNull);
        EXPECT_EQ(message_, "groupEp length must be in [1, 128), got 128 or more");
        EXPECT_EQ(combine(buffer.data()), kNull);
        EXPECT_EQ(message_, "groupEp length must be in [1, 128), got 128 or more");
        // groupTp when T = 2 ...
        Tensor counts = Tensor::device({2 * shape_.world}, ACL_INT32);
        Tensor tp_counts = Tensor::device({2}, ACL_INT32);
        hostile::DispatchCall d = hostile::dispatch_call(shape_, 0, group_.name(), t_);
        d.tp_world_size = 2;
        d.group_tp = buffer.data();
        d.ep_recv_counts = counts.get();
        d.tp_recv_counts = tp_counts.get();
        aclOpExecutor* exec = nullptr;
        EXPECT_EQ(d.phase1(&exec), kNull);
        EXPECT_EQ(recent(), "groupTp length must be in [1, 128), got 128 or more");
        // ... and when T = 0, where only the profile rules read it.
        EXPECT_EQ(dispatch(group_.name().c_str(), buffer.data(), 0), 0) << message_;
    }
}

TEST_F(HostileNames, HcclGetCommNameWritesAtMost128Bytes) {
    hostile::GuardedBuffer name(128);
    HcclComm comms[1] = {nullptr};
    int32_t devices[1] = {0};
    ASSERT_EQ(HcclCommInitAll(1, devices, comms), HCCL_SUCCESS);
    EXPECT_EQ(HcclGetCommName(comms[0], name.data()), HCCL_SUCCESS);
    EXPECT_LT(strnlen(name.data(), 128), 128u);
    HcclCommDestroy(comms[0]);
}

// A shared rank (W 2, S 1, rank 0) with BS = 2^12 and K = 2^20: 2^32 expandIdx entries. Inputs
// are zero-stride views of a few bytes; expandX has its real T·A = 8192 rows.
struct HugeTopK {
    static constexpr int64_t kTokens = int64_t{1} << 12, kTopK = int64_t{1} << 20, kHidden = 8;
    hostile::Group group{2};
    void* block = nullptr;
    Tensor x, ids, scales, expand_x, expand_idx, token_nums, counts, out_x;
    HugeTopK() {
        if (aclrtMalloc(&block, 64, ACL_MEM_MALLOC_HUGE_FIRST) != ACL_SUCCESS) std::abort();
        std::memset(block, 0, 64);
        x = Tensor::view({kTokens, kHidden}, {0, 0}, ACL_BF16, 0, block);
        ids = Tensor::view({kTokens, kTopK}, {0, 0}, ACL_INT32, 0, block);
        scales = Tensor::view({kTokens, kTopK}, {0, 0}, ACL_FLOAT, 0, block);
        expand_x = Tensor::device({2 * kTokens, kHidden}, ACL_BF16);
        expand_idx = Tensor::device({kTokens}, ACL_INT32);  // far too short: BS·K fails first
        token_nums = Tensor::device({1}, ACL_INT64);
        counts = Tensor::device({2}, ACL_INT32);
        out_x = Tensor::device({kTokens, kHidden}, ACL_BF16);
    }
    ~HugeTopK() {
        x = Tensor(), ids = Tensor(), scales = Tensor();
        aclrtFree(block);
    }
};

TEST(HostileLimits, BsTimesKBeyondInt32IsRejectedInPhaseOneOfBothOperations) {
    HugeTopK h;
    hostile::DispatchCall d;
    d.x = h.x.get(), d.expert_ids = h.ids.get(), d.group_ep = h.group.name().c_str();
    d.ep_world_size = 2, d.ep_rank_id = 0, d.moe_expert_num = int64_t{1} << 20;
    d.shared_expert_num = 1, d.shared_expert_rank_num = 1;
    d.expand_x = h.expand_x.get(), d.expand_idx = h.expand_idx.get();
    d.expert_token_nums = h.token_nums.get(), d.ep_recv_counts = h.counts.get();
    aclOpExecutor* exec = nullptr;
    EXPECT_EQ(d.phase1(&exec), kShape);
    EXPECT_EQ(recent(), "BS*K (expandIdx entries) must be <= 2147483647, got 4294967296");
    hostile::CombineCall c;
    c.expand_x = h.expand_x.get(), c.expert_ids = h.ids.get(), c.expand_idx = h.expand_idx.get();
    c.ep_send_counts = h.counts.get(), c.expert_scales = h.scales.get();
    c.group_ep = h.group.name().c_str();
    c.ep_world_size = 2, c.ep_rank_id = 0, c.moe_expert_num = int64_t{1} << 20;
    c.shared_expert_num = 1, c.shared_expert_rank_num = 1, c.x = h.out_x.get();
    EXPECT_EQ(c.phase1(&exec), kShape);
    EXPECT_EQ(recent(), "BS*K (expandIdx entries) must be <= 2147483647, got 4294967296");
    EXPECT_TRUE(hostile::fresh_job_succeeds());
}

TEST(HostileLimits, CombineShapeMessagesNameTheTensorAtFault) {
    hostile::JobShape s;
    hostile::Group group(2);
    hostile::RankTensors t = hostile::make_rank(s, 0);
    aclOpExecutor* exec = nullptr;
    Tensor long_idx = Tensor::device({s.tokens + 1}, ACL_INT32);
    hostile::CombineCall c = hostile::combine_call(s, 0, group.name(), t);
    c.expand_idx = long_idx.get();
    EXPECT_EQ(c.phase1(&exec), kShape);
    EXPECT_EQ(recent(), "expandIdx dim 0 must be BS*K = 2 (dispatch's expandIdx), got 3");
    Tensor wide = Tensor::device({s.capacity(), s.hidden + 1}, ACL_BF16);
    c = hostile::combine_call(s, 0, group.name(), t);
    c.expand_x = wide.get();
    EXPECT_EQ(c.phase1(&exec), kShape);
    EXPECT_EQ(recent(), "expandX dim 1 must be H = x dim 1 = 8, got 9");
    // Dispatch's expandIdx may be longer than BS·K (entries past it are left untouched).
    hostile::DispatchCall d = hostile::dispatch_call(s, 0, group.name(), t);
    d.expand_idx = long_idx.get();
    EXPECT_EQ(d.phase1(&exec), 0) << recent();
    EXPECT_TRUE(hostile::fresh_job_succeeds());
}

// Exceptions at the boundaries: any type becomes 361001 with a message (never 561000).
TEST(HostileBoundary, ExceptionsOfEveryTypeBecome361001) {
    namespace api = moedist::api;
    const auto memory = [] { return std::string("the test's 42 bytes"); };
    moedist::Status s = api::guard("op", memory, []() -> moedist::Status { throw 42; });
    EXPECT_EQ(s.raw_code(), kRuntime);
    EXPECT_EQ(s.message(), "op must succeed, got an exception of a non-standard type");
    s = api::guard("op", memory, []() -> moedist::Status { throw std::bad_alloc(); });
    EXPECT_EQ(s.raw_code(), kRuntime);
    EXPECT_EQ(s.message(), "op must have memory for the test's 42 bytes, got std::bad_alloc");
    s = api::guard("op", memory, []() -> moedist::Status { throw std::runtime_error("boom"); });
    EXPECT_EQ(s.raw_code(), kRuntime);
    EXPECT_EQ(s.message(), "op must succeed, got an exception: boom");
    // Phase one's frame: whatever its preparation throws is reported as 361001.
    uint64_t workspace = 0;
    aclOpExecutor* exec = nullptr;
    struct NotAnException {};
    EXPECT_EQ(api::phase_one<moedist::core::DispatchOp>(
                  "phase",
                  &workspace,
                  &exec,
                  [](moedist::core::DispatchOp*, api::Bindings*) -> moedist::Status {
                      throw NotAnException{};
                  }),
              kRuntime);
    EXPECT_EQ(recent(), "phase must succeed, got an exception of a non-standard type");
    EXPECT_EQ(exec, nullptr);
    EXPECT_EQ(api::phase_one<moedist::core::CombineOp>(
                  "phase",
                  &workspace,
                  &exec,
                  [](moedist::core::CombineOp*, api::Bindings*) -> moedist::Status {
                      throw std::bad_alloc();
                  }),
              kRuntime);
    EXPECT_NE(recent().find("phase must have memory for its executor ("), std::string::npos);
    EXPECT_TRUE(hostile::fresh_job_succeeds());
}

#if defined(MOEDIST_SANITIZED)
#define MOEDIST_HOSTILE_SANITIZED 1
#endif

// Out of memory in the op call: a W = 1 job whose send plan needs 2 GiB (BS = K = E = 2^14) under
// an address-space limit of what the process maps plus 256 MiB. expandX and expandIdx are
// PROT_NONE reservations the runtime did not allocate (not checked); the plan's allocation fails
// before anything is written. Sanitizers reserve terabytes of address space: skipped there.
TEST(HostileLimits, OutOfMemoryInTheOpCallIs361001WithTheBytes) {
#ifdef MOEDIST_HOSTILE_SANITIZED
    GTEST_SKIP() << "address-space limits do not combine with sanitizers";
#else
    constexpr int64_t n = int64_t{1} << 14;  // BS = K = E = L
    hostile::Group group(1);
    const std::size_t expand_bytes = static_cast<std::size_t>(n * n) * 2;  // (n*n, 1) bf16
    const std::size_t idx_bytes = static_cast<std::size_t>(n * n) * 4;
    void* reserve = mmap(nullptr,
                         expand_bytes + idx_bytes,
                         PROT_NONE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                         -1,
                         0);
    ASSERT_NE(reserve, MAP_FAILED);
    Tensor x = Tensor::device({n, 1}, ACL_BF16);
    void* one = nullptr;
    ASSERT_EQ(aclrtMalloc(&one, 64, ACL_MEM_MALLOC_HUGE_FIRST), ACL_SUCCESS);
    std::memset(one, 0, 64);
    Tensor ids = Tensor::view({n, n}, {0, 0}, ACL_INT32, 0, one);  // every entry to expert 0
    Tensor expand_x = Tensor::view({n * n, 1}, {}, ACL_BF16, 0, reserve);
    Tensor expand_idx =
        Tensor::view({n * n}, {}, ACL_INT32, 0, static_cast<char*>(reserve) + expand_bytes);
    Tensor token_nums = Tensor::device({n}, ACL_INT64);
    Tensor counts = Tensor::device({n}, ACL_INT32);
    hostile::DispatchCall d;
    d.x = x.get(), d.expert_ids = ids.get(), d.group_ep = group.name().c_str();
    d.ep_world_size = 1, d.ep_rank_id = 0, d.moe_expert_num = n;
    d.expand_x = expand_x.get(), d.expand_idx = expand_idx.get();
    d.expert_token_nums = token_nums.get(), d.ep_recv_counts = counts.get();
    aclOpExecutor* exec = nullptr;
    ASSERT_EQ(d.phase1(&exec), 0) << recent();

    std::ifstream statm("/proc/self/statm");
    std::size_t pages = 0;
    statm >> pages;
    rlimit old{};
    ASSERT_EQ(getrlimit(RLIMIT_AS, &old), 0);
    rlimit tight = old;
    tight.rlim_cur = static_cast<rlim_t>(pages) * static_cast<rlim_t>(sysconf(_SC_PAGESIZE)) +
                     (rlim_t{256} << 20);
    ASSERT_EQ(setrlimit(RLIMIT_AS, &tight), 0);
    const aclnnStatus status = aclnnMoeDistributeDispatch(nullptr, 0, exec, nullptr);
    const std::string message = recent();
    ASSERT_EQ(setrlimit(RLIMIT_AS, &old), 0);
    EXPECT_EQ(status, kRuntime);
    EXPECT_EQ(message,
              "aclnnMoeDistributeDispatch must have memory for its per-call scratch (2147549193 "
              "bytes: a send plan of BS*K = 268435456 entries and 16384 experts, rows of H = 1), "
              "got std::bad_alloc");
    ids = Tensor();
    aclrtFree(one);
    expand_x = Tensor(), expand_idx = Tensor();
    munmap(reserve, expand_bytes + idx_bytes);
    EXPECT_TRUE(hostile::fresh_job_succeeds());
#endif
}

}  // namespace
