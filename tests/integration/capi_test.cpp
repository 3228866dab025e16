// The aclnn C API's first phase and executor handling: codes and aclGetRecentErrMsg messages.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "acl/acl.h"
#include "aclnnop/aclnn_moe_distribute_combine.h"
#include "aclnnop/aclnn_moe_distribute_dispatch.h"
#include "hccl/hccl.h"

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
        handle = aclCreateTensor(shape.data(),
                                 shape.size(),
                                 dtype,
                                 strides.data(),
                                 0,
                                 ACL_FORMAT_ND,
                                 shape.data(),
                                 shape.size(),
                                 storage.data());
    }
    ~Tensor() {
        if (handle != nullptr) aclDestroyTensor(handle);
    }
};

// One rank of a W = 2, E = 2, K = 1, H = 8, BS = 2 job (A = 4).
struct DispatchArgs {
    Tensor x{{2, 8}, ACL_BF16, 2}, ids{{2, 1}, ACL_INT32, 4}, expand_x{{4, 8}, ACL_BF16, 2};
    Tensor expand_idx{{2}, ACL_INT32, 4}, token_nums{{1}, ACL_INT64, 8}, counts{{2}, ACL_INT32, 4};
    std::string group;
    bool null_workspace_size = false;
    aclnnStatus call(const aclTensor* x_arg, const aclTensor* ids_arg, int64_t experts = 2) {
        uint64_t ws = 0;
        aclOpExecutor* exec = nullptr;
        return aclnnMoeDistributeDispatchGetWorkspaceSize(x_arg,
                                                          ids_arg,
                                                          nullptr,
                                                          nullptr,
                                                          nullptr,
                                                          group.c_str(),
                                                          2,
                                                          0,
                                                          experts,
                                                          "",
                                                          0,
                                                          0,
                                                          0,
                                                          0,
                                                          0,
                                                          0,
                                                          0,
                                                          0,
                                                          expand_x.handle,
                                                          nullptr,
                                                          expand_idx.handle,
                                                          token_nums.handle,
                                                          counts.handle,
                                                          nullptr,
                                                          nullptr,
                                                          null_workspace_size ? nullptr : &ws,
                                                          &exec);
    }
};

std::string recent() {
    const char* m = aclGetRecentErrMsg();
    return m == nullptr ? "" : m;
}

class CApi : public ::testing::Test {
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
    DispatchArgs args_;
};

TEST_F(CApi, NullRequiredTensorIs161001WithAMessage) {
    EXPECT_EQ(args_.call(nullptr, args_.ids.handle), 161001);
    EXPECT_EQ(recent(), "x must be non-null, got nullptr");
}

TEST_F(CApi, DestroyedTensorIs161001) {
    aclTensor* stale = args_.ids.handle;
    aclDestroyTensor(stale);
    args_.ids.handle = nullptr;
    EXPECT_EQ(args_.call(args_.x.handle, stale), 161001);
    EXPECT_NE(recent().find("expertIds must be a live aclTensor"), std::string::npos);
}

TEST_F(CApi, WrongDtypeIs161002) {
    Tensor ids64({2, 1}, ACL_INT64, 8);
    EXPECT_EQ(args_.call(args_.x.handle, ids64.handle), 161002);
    EXPECT_EQ(recent(), "expertIds dtype must be int32, got int64");
}

TEST_F(CApi, TopKAboveExpertsIs561002) {
    Tensor ids3({2, 3}, ACL_INT32, 4);
    EXPECT_EQ(args_.call(args_.x.handle, ids3.handle), 561002);
    EXPECT_EQ(recent(), "K (expertIds dim 1) must be in [1, moeExpertNum = 2], got 3");
}

TEST_F(CApi, UnknownGroupIs561002) {
    args_.group = "no-such-group";
    EXPECT_EQ(args_.call(args_.x.handle, args_.ids.handle), 561002);
    EXPECT_NE(recent().find("no-such-group"), std::string::npos);
}

TEST_F(CApi, ExecutorsRunOnceAndUnknownOnesAreRefused) {
    EXPECT_EQ(aclnnMoeDistributeDispatch(nullptr, 0, nullptr, nullptr), 161001);
    auto* bogus = reinterpret_cast<aclOpExecutor*>(&args_);
    EXPECT_EQ(aclnnMoeDistributeDispatch(nullptr, 0, bogus, nullptr), 161001);
    EXPECT_NE(recent().find("executor must be one phase 1 returned"), std::string::npos);
}

TEST_F(CApi, GroupNameLengthIs161001) {
    const std::string live = args_.group;
    args_.group = "";
    EXPECT_EQ(args_.call(args_.x.handle, args_.ids.handle), 161001);
    EXPECT_EQ(recent(), "groupEp length must be in [1, 128), got 0");
    args_.group = std::string(128, 'g');
    EXPECT_EQ(args_.call(args_.x.handle, args_.ids.handle), 161001);
    EXPECT_EQ(recent(), "groupEp length must be in [1, 128), got 128 or more");
    args_.group = live;  // 127 characters at most: the live name passes
    EXPECT_EQ(args_.call(args_.x.handle, args_.ids.handle), 0) << recent();
}

TEST_F(CApi, AclDtypeMoedistDoesNotKnowIs161002) {
    Tensor x64({2, 8}, ACL_DOUBLE, 8);
    EXPECT_EQ(args_.call(x64.handle, args_.ids.handle), 161002);
    EXPECT_NE(recent().find("x dtype must be one moedist supports"), std::string::npos) << recent();
}

TEST_F(CApi, NullWorkspaceSizeOrExecutorIs161001) {
    args_.null_workspace_size = true;
    EXPECT_EQ(args_.call(args_.x.handle, args_.ids.handle), 161001);
    EXPECT_EQ(recent(), "workspaceSize and executor must be non-null, got nullptr");
}

TEST_F(CApi, CombineOutDtypeOtherThanZeroIs561002) {
    Tensor weights({2, 1}, ACL_FLOAT, 4), x_out({2, 8}, ACL_BF16, 2);
    for (int64_t out_dtype : {0, 1}) {
        uint64_t ws = 0;
        aclOpExecutor* exec = nullptr;
        const aclnnStatus status =
            aclnnMoeDistributeCombineGetWorkspaceSize(args_.expand_x.handle,
                                                      args_.ids.handle,
                                                      args_.expand_idx.handle,
                                                      args_.counts.handle,
                                                      weights.handle,
                                                      nullptr,
                                                      nullptr,
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
                                                      0,
                                                      0,
                                                      0,
                                                      out_dtype,
                                                      0,
                                                      0,
                                                      x_out.handle,
                                                      &ws,
                                                      &exec);
        if (out_dtype == 0) {
            EXPECT_EQ(status, 0) << recent();
        } else {
            EXPECT_EQ(status, 561002);
            EXPECT_EQ(recent(), "outDtype must be 0, got 1");
        }
    }
}

}  // namespace
