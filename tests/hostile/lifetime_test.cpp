// Executors against the lifetime of what they use: memory freed (and re-allocated at the same
// address) between the phases fails the call on every rank with 361001 naming the tensor and its
// rank, and no rank reads it (ASan would report it); descriptors destroyed between the phases
// change nothing; executors run twice, given to the other operation, or after a failed call are
// refused with 161001 and leave the process usable. The block registry's pins are tested directly.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "runtime/memory_registry.hpp"
#include "support.hpp"

namespace {

using hostile::RankOutcome;
using hostile::RankTensors;
using hostile::recent;

constexpr aclnnStatus kNull = 161001, kRuntime = 361001;

std::string freed_message(const std::string& tensor,
                          int rank,
                          const std::string& group,
                          bool dispatch) {
    const std::string op = dispatch ? "aclnnMoeDistributeDispatch" : "aclnnMoeDistributeCombine";
    return tensor + " memory of rank " + std::to_string(rank) + " of '" + group +
           "' must stay allocated until " + op + ", got its aclrtMalloc block freed after " + op +
           "GetWorkspaceSize";
}

hostile::Tensor& tensor_named(RankTensors& t, const std::string& name, bool dispatch) {
    if (name == "x") return dispatch ? t.x : t.out_x;
    if (name == "expertIds") return t.expert_ids;
    if (name == "expertScales") return t.expert_scales;
    if (name == "expandX") return t.expand_x;
    if (name == "expandIdx") return t.expand_idx;
    if (name == "expertTokenNums") return t.expert_token_nums;
    return t.ep_recv_counts;  // epRecvCounts / epSendCounts
}

// Runs the job on a group made here (its name goes into the expected messages).
std::vector<RankOutcome> run(const hostile::JobHooks& hooks, std::string* group_name) {
    hostile::JobShape shape;
    hostile::Group group(shape.world);
    *group_name = group.name();
    return hostile::run_job(shape, hooks, &group);
}

TEST(HostileLifetime, MemoryFreedBetweenDispatchPhasesFailsEveryRankNamingIt) {
    for (const char* name : {"x",
                             "expertIds",
                             "expertScales",
                             "expandX",
                             "expandIdx",
                             "expertTokenNums",
                             "epRecvCounts"}) {
        SCOPED_TRACE(name);
        hostile::JobHooks hooks;
        hooks.dispatch_between =
            [&](int rank, RankTensors& t, aclOpExecutor*, aclnnStatus*, std::string*) {
                if (rank == 1) tensor_named(t, name, true).free_memory();
                return false;
            };
        std::string group;
        const std::vector<RankOutcome> out = run(hooks, &group);
        for (std::size_t r = 0; r < out.size(); ++r) {
            SCOPED_TRACE("rank " + std::to_string(r));
            EXPECT_EQ(out[r].dispatch1, 0) << out[r].dispatch1_msg;
            EXPECT_EQ(out[r].dispatch2, kRuntime);
            EXPECT_EQ(out[r].dispatch2_msg, freed_message(name, 1, group, true));
            EXPECT_EQ(out[r].combine1, -1);  // not called after a failed dispatch
        }
        EXPECT_TRUE(hostile::fresh_job_succeeds());
    }
}

TEST(HostileLifetime, MemoryFreedBetweenCombinePhasesFailsEveryRankNamingIt) {
    for (const char* name :
         {"expandX", "expertIds", "expandIdx", "epSendCounts", "expertScales", "x"}) {
        SCOPED_TRACE(name);
        hostile::JobHooks hooks;
        hooks.combine_between =
            [&](int rank, RankTensors& t, aclOpExecutor*, aclnnStatus*, std::string*) {
                if (rank == 0) tensor_named(t, name, false).free_memory();
                return false;
            };
        std::string group;
        const std::vector<RankOutcome> out = run(hooks, &group);
        for (const RankOutcome& o : out) {
            EXPECT_EQ(o.dispatch2, 0) << o.dispatch2_msg;
            EXPECT_EQ(o.combine1, 0) << o.combine1_msg;
            EXPECT_EQ(o.combine2, kRuntime);
            EXPECT_EQ(o.combine2_msg, freed_message(name, 0, group, false));
        }
        EXPECT_TRUE(hostile::fresh_job_succeeds());
    }
}

TEST(HostileLifetime, FreeAndMallocAtTheSameAddressIsStillAFreedBlock) {
    void* again = nullptr;
    void* old_address = nullptr;
    hostile::JobHooks hooks;
    hooks.dispatch_between =
        [&](int rank, RankTensors& t, aclOpExecutor*, aclnnStatus*, std::string*) {
            if (rank != 1) return false;
            old_address = t.x.data();
            const std::size_t bytes = t.x.bytes();
            t.x.free_memory();
            // glibc hands the same chunk back at once (ASan quarantines it: another address);
            // either way the block the executor saw is gone.
            EXPECT_EQ(aclrtMalloc(&again, bytes, ACL_MEM_MALLOC_HUGE_FIRST), ACL_SUCCESS);
            std::memcpy(again, t.x_bytes.data(), bytes);
            return false;
        };
    std::string group;
    const std::vector<RankOutcome> out = run(hooks, &group);
    for (const RankOutcome& o : out) {
        EXPECT_EQ(o.dispatch2, kRuntime);
        EXPECT_EQ(o.dispatch2_msg, freed_message("x", 1, group, true));
    }
    RecordProperty("same_address", again == old_address ? "yes" : "no");
    EXPECT_EQ(aclrtFree(again), ACL_SUCCESS);
    EXPECT_TRUE(hostile::fresh_job_succeeds());
}

TEST(HostileLifetime, MemoryFreedBeforePhaseOneIs161001) {
    hostile::JobShape shape;
    hostile::Group group(2);
    RankTensors t = hostile::make_rank(shape, 0);
    hostile::DispatchCall call = hostile::dispatch_call(shape, 0, group.name(), t);
    t.expand_idx.free_memory();
    aclOpExecutor* exec = nullptr;
    EXPECT_EQ(call.phase1(&exec), kNull);
    EXPECT_EQ(
        recent(),
        "expandIdx memory must be a live aclrtMalloc block, got one freed after aclCreateTensor");
    EXPECT_TRUE(hostile::fresh_job_succeeds());
}

TEST(HostileLifetime, DescriptorsDestroyedBetweenThePhasesChangeNothing) {
    hostile::JobHooks hooks;
    hooks.dispatch_between = [](int, RankTensors& t, aclOpExecutor*, aclnnStatus*, std::string*) {
        t.x.destroy();  // combine does not use dispatch's x
        return false;
    };
    hooks.combine_between = [](int, RankTensors& t, aclOpExecutor*, aclnnStatus*, std::string*) {
        for (hostile::Tensor* d : {&t.expert_ids,
                                   &t.expert_scales,
                                   &t.expand_x,
                                   &t.expand_idx,
                                   &t.expert_token_nums,
                                   &t.ep_recv_counts,
                                   &t.out_x}) {
            d->destroy();  // memory stays
        }
        return false;
    };
    std::string group;
    for (const RankOutcome& o : run(hooks, &group)) {
        EXPECT_EQ(o.dispatch2, 0) << o.dispatch2_msg;
        EXPECT_EQ(o.combine2, 0) << o.combine2_msg;
        EXPECT_TRUE(o.x_ok);
    }
}

TEST(HostileLifetime, CrossedExecutorsAreRefusedAndStayUsableForTheirOwnOperation) {
    hostile::JobHooks hooks;
    std::vector<std::string> crossed(4);
    hooks.dispatch_between =
        [&](int r, RankTensors&, aclOpExecutor* e, aclnnStatus*, std::string*) {
            EXPECT_EQ(aclnnMoeDistributeCombine(nullptr, 0, e, nullptr), kNull);
            crossed[static_cast<std::size_t>(r)] = recent();
            return false;  // run_job now runs it as the dispatch it is
        };
    hooks.combine_between = [&](int r, RankTensors&, aclOpExecutor* e, aclnnStatus*, std::string*) {
        EXPECT_EQ(aclnnMoeDistributeDispatch(nullptr, 0, e, nullptr), kNull);
        crossed[static_cast<std::size_t>(2 + r)] = recent();
        return false;
    };
    std::string group;
    for (const RankOutcome& o : run(hooks, &group)) {
        EXPECT_EQ(o.dispatch2, 0) << o.dispatch2_msg;
        EXPECT_EQ(o.combine2, 0) << o.combine2_msg;
        EXPECT_TRUE(o.x_ok);
    }
    for (int r = 0; r < 2; ++r) {
        EXPECT_EQ(crossed[static_cast<std::size_t>(r)],
                  "aclnnMoeDistributeCombine executor must be one "
                  "aclnnMoeDistributeCombineGetWorkspaceSize returned, got one of "
                  "aclnnMoeDistributeDispatchGetWorkspaceSize (left for its own operation)");
        EXPECT_EQ(crossed[static_cast<std::size_t>(2 + r)],
                  "aclnnMoeDistributeDispatch executor must be one "
                  "aclnnMoeDistributeDispatchGetWorkspaceSize returned, got one of "
                  "aclnnMoeDistributeCombineGetWorkspaceSize (left for its own operation)");
    }
}

TEST(HostileLifetime, AnExecutorRunsOnceEvenAfterAFailedCall) {
    hostile::JobHooks hooks;
    std::vector<aclnnStatus> again(2, -1);
    std::vector<std::string> again_msg(2);
    hooks.dispatch_between =
        [&](int r, RankTensors& t, aclOpExecutor* e, aclnnStatus* status, std::string* msg) {
            if (r == 1) t.expand_x.free_memory();  // the first run fails on every rank
            *status = aclnnMoeDistributeDispatch(nullptr, 0, e, nullptr);
            *msg = recent();
            again[static_cast<std::size_t>(r)] = aclnnMoeDistributeDispatch(nullptr, 0, e, nullptr);
            again_msg[static_cast<std::size_t>(r)] = recent();
            return true;
        };
    std::string group;
    const std::vector<RankOutcome> out = run(hooks, &group);
    for (std::size_t r = 0; r < 2; ++r) {
        EXPECT_EQ(out[r].dispatch2, kRuntime);
        EXPECT_EQ(out[r].dispatch2_msg, freed_message("expandX", 1, group, true));
        EXPECT_EQ(again[r], kNull);
        EXPECT_EQ(again_msg[r],
                  "aclnnMoeDistributeDispatch executor must be one phase 1 returned and not yet "
                  "run, got an unknown or used one");
    }
    EXPECT_TRUE(hostile::fresh_job_succeeds());
}

TEST(HostileLifetime, TheGroupServesTheNextCallAfterAFreedBlock) {
    hostile::JobShape shape;
    hostile::Group group(shape.world);
    hostile::JobHooks bad;
    bad.dispatch_between =
        [](int rank, RankTensors& t, aclOpExecutor*, aclnnStatus*, std::string*) {
            if (rank == 0) t.expert_ids.free_memory();
            return false;
        };
    for (const RankOutcome& o : hostile::run_job(shape, bad, &group)) {
        EXPECT_EQ(o.dispatch2, kRuntime);
        EXPECT_EQ(o.dispatch2_msg, freed_message("expertIds", 0, group.name(), true));
    }
    for (const RankOutcome& o : hostile::run_job(shape, {}, &group)) {
        EXPECT_EQ(o.dispatch2, 0) << o.dispatch2_msg;
        EXPECT_EQ(o.combine2, 0) << o.combine2_msg;
        EXPECT_TRUE(o.x_ok);
    }
}

TEST(HostileLifetime, HostMemoryFreedBetweenThePhasesCannotBeSeen) {
    // The runtime does not know host memory: the executor holds its view; the call works while
    // the memory is alive (documented: its bounds and lifetime cannot be checked).
    hostile::JobHooks hooks;
    hooks.device = false;
    std::string group;
    for (const RankOutcome& o : run(hooks, &group)) {
        EXPECT_EQ(o.combine2, 0) << o.combine2_msg;
        EXPECT_TRUE(o.x_ok);
    }
}

TEST(HostileBlocks, APinnedBlockOutlivesItsFreeUntilUnpinned) {
    namespace rt = moedist::runtime;
    void* p = nullptr;
    ASSERT_EQ(aclrtMalloc(&p, 100, ACL_MEM_MALLOC_HUGE_FIRST), ACL_SUCCESS);
    const rt::BlockRef ref = rt::find_block(static_cast<char*>(p) + 99);
    ASSERT_TRUE(ref.found());
    EXPECT_EQ(ref.base, reinterpret_cast<uintptr_t>(p));
    EXPECT_EQ(ref.size, 100u);
    EXPECT_TRUE(rt::find_block(static_cast<char*>(p) + 127).found());  // alignment padding
    EXPECT_FALSE(rt::find_block(static_cast<char*>(p) + 128).found());
    EXPECT_EQ(rt::pin_blocks(&ref, 1), 1u);
    EXPECT_EQ(aclrtFree(p), ACL_SUCCESS);  // succeeds at once ...
    EXPECT_FALSE(rt::block_is_live(ref));
    EXPECT_FALSE(rt::find_block(p).found());
    EXPECT_EQ(aclrtFree(p), ACL_ERROR_INVALID_PARAM);  // ... once
    std::memset(p, 7, 100);  // ... and the memory stays until the pin goes (ASan would object)
    const rt::BlockRef refs[2] = {rt::BlockRef{}, ref};
    EXPECT_EQ(rt::pin_blocks(refs, 2), 1u);  // a pin on a freed block is refused
    rt::unpin_blocks(&ref, 1);
    EXPECT_FALSE(rt::find_block(p).found());
    // Generations tell a new block at the same address from the freed one.
    void* q = nullptr;
    ASSERT_EQ(aclrtMalloc(&q, 100, ACL_MEM_MALLOC_HUGE_FIRST), ACL_SUCCESS);
    const rt::BlockRef fresh = rt::find_block(q);
    EXPECT_NE(fresh.generation, ref.generation);
    if (q == p) {
        EXPECT_FALSE(rt::block_is_live(ref));
        EXPECT_TRUE(rt::block_is_live(fresh));
    }
    EXPECT_EQ(aclrtFree(q), ACL_SUCCESS);
}

}  // namespace
