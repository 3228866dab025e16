// Views against their memory: a view made on an aclrtMalloc block must end inside it (every
// boundary: exact fit, one byte over, offsets up to and past the end, strided and zero-stride
// views, the alignment padding, empty blocks, host blocks), and an output the call writes must
// not overlap itself (zero strides, rows shorter than their stride, interleaved columns) on every
// output of both operations. Each refusal is 561002 naming the tensor; the process stays usable.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "support.hpp"

namespace {

using hostile::recent;
using hostile::Tensor;

constexpr aclnnStatus kShape = 561002;

// One rank of a fresh two-rank group, tensors on aclrtMalloc blocks: phase 1 of either
// operation after the test changed the arguments.
class HostileView : public ::testing::Test {
protected:
    hostile::JobShape shape_;
    hostile::Group group_{2};
    hostile::RankTensors t_ = hostile::make_rank(shape_, 0);

    aclnnStatus dispatch(const std::function<void(hostile::DispatchCall&)>& change) {
        hostile::DispatchCall call = hostile::dispatch_call(shape_, 0, group_.name(), t_);
        change(call);
        aclOpExecutor* exec = nullptr;
        const aclnnStatus status = call.phase1(&exec);
        message_ = recent();
        return status;
    }
    aclnnStatus combine(const std::function<void(hostile::CombineCall&)>& change) {
        hostile::CombineCall call = hostile::combine_call(shape_, 0, group_.name(), t_);
        change(call);
        aclOpExecutor* exec = nullptr;
        const aclnnStatus status = call.phase1(&exec);
        message_ = recent();
        return status;
    }
    void TearDown() override { EXPECT_TRUE(hostile::fresh_job_succeeds()); }
    std::string message_;
};

std::string over(const std::string& name, std::size_t block, std::size_t bytes, std::size_t at) {
    return name + " view must end inside its aclrtMalloc block (" + std::to_string(block) +
           " bytes), got a view of " + std::to_string(bytes) + " bytes starting at byte " +
           std::to_string(at) + " of it";
}

// x (2, 8) bf16 over a block of `block` bytes, `offset` elements in, with `strides`.
struct XView {
    void* block = nullptr;
    Tensor tensor;
    XView(std::size_t block_bytes, int64_t offset, std::vector<int64_t> strides = {}) {
        if (aclrtMalloc(&block, block_bytes, ACL_MEM_MALLOC_HUGE_FIRST) != ACL_SUCCESS)
            std::abort();
        tensor = Tensor::view({2, 8}, strides, ACL_BF16, offset, block);
    }
    ~XView() {
        tensor = Tensor();
        aclrtFree(block);
    }
};

TEST_F(HostileView, XAtEveryBoundaryOfItsBlock) {
    struct Case {
        std::size_t block;
        int64_t offset;
        std::vector<int64_t> strides;
        std::size_t bytes, at;  // the view: bytes spanned, starting byte in the block
        bool fits;
    };
    const std::vector<Case> cases = {
        {32, 0, {}, 32, 0, true},       // exact fit
        {31, 0, {}, 32, 0, false},      // one byte over
        {1000, 0, {}, 32, 0, true},     // room to spare
        {64, 16, {}, 32, 32, true},     // offset: ends at the last byte
        {64, 17, {}, 32, 34, false},    // one element further
        {64, 32, {}, 32, 64, false},    // starts at the end
        {64, 40, {}, 32, 80, false},    // starts past the end (and past the block's padding)
        {48, 0, {16, 1}, 48, 0, true},  // padded rows: (1 * 16 + 7 + 1) elements
        {47, 0, {16, 1}, 48, 0, false},
        {32, 0, {1, 2}, 32, 0, true},  // column-major-like strides: last element 15
        {31, 0, {1, 2}, 32, 0, false},
        {2, 0, {0, 0}, 2, 0, true},  // zero strides: one element
        {1, 0, {0, 0}, 2, 0, false},
        {4, 1, {0, 0}, 2, 2, true},
        {4, 2, {0, 0}, 2, 4, false},
        {0, 0, {0, 0}, 2, 0, false},     // an empty block holds nothing
        {30, 16, {0, 0}, 2, 32, false},  // inside the alignment padding after 30 bytes
    };
    for (const Case& c : cases) {
        SCOPED_TRACE("block " + std::to_string(c.block) + " offset " + std::to_string(c.offset));
        XView x(c.block, c.offset, c.strides);
        ASSERT_NE(x.tensor.get(), nullptr) << recent();
        const aclnnStatus status = dispatch([&](auto& d) { d.x = x.tensor.get(); });
        if (c.fits) {
            EXPECT_EQ(status, 0) << message_;
        } else {
            EXPECT_EQ(status, kShape);
            EXPECT_EQ(message_, over("x", c.block, c.bytes, c.at));
        }
    }
}

TEST_F(HostileView, HostBlocksAreCheckedAndForeignMemoryIsNot) {
    void* host = nullptr;
    ASSERT_EQ(aclrtMallocHost(&host, 31), ACL_SUCCESS);
    {
        Tensor x = Tensor::view({2, 8}, {}, ACL_BF16, 0, host);
        EXPECT_EQ(dispatch([&](auto& d) { d.x = x.get(); }), kShape);
        EXPECT_EQ(message_, over("x", 31, 32, 0));
    }
    ASSERT_EQ(aclrtFreeHost(host), ACL_SUCCESS);
    // Memory the runtime did not allocate: its bounds cannot be checked, the call proceeds.
    std::vector<uint16_t> foreign(16, 0x3F80);
    Tensor x = Tensor::view({2, 8}, {}, ACL_BF16, 0, foreign.data());
    EXPECT_EQ(dispatch([&](auto& d) { d.x = x.get(); }), 0) << message_;
}

TEST_F(HostileView, EveryTensorOfBothOperationsOneByteOverItsBlockIsNamed) {
    // Each tensor rebuilt alone on a block one byte short of its view.
    const hostile::JobShape& s = shape_;
    struct Slot {
        const char* name;
        std::vector<int64_t> shape;
        aclDataType dtype;
        std::function<void(hostile::DispatchCall&, aclTensor*)> set_dispatch;
        std::function<void(hostile::CombineCall&, aclTensor*)> set_combine;
    };
    const int64_t rows = s.capacity();
    const std::vector<Slot> slots = {
        {"x", {s.tokens, s.hidden}, ACL_BF16, [](auto& d, aclTensor* t) { d.x = t; }, nullptr},
        {"expertIds",
         {s.tokens, 1},
         ACL_INT32,
         [](auto& d, aclTensor* t) { d.expert_ids = t; },
         [](auto& c, aclTensor* t) { c.expert_ids = t; }},
        {"expertScales",
         {s.tokens, 1},
         ACL_FLOAT,
         [](auto& d, aclTensor* t) { d.expert_scales = t; },
         [](auto& c, aclTensor* t) { c.expert_scales = t; }},
        {"expandX",
         {rows, s.hidden},
         ACL_BF16,
         [](auto& d, aclTensor* t) { d.expand_x = t; },
         [](auto& c, aclTensor* t) { c.expand_x = t; }},
        {"expandIdx",
         {s.tokens},
         ACL_INT32,
         [](auto& d, aclTensor* t) { d.expand_idx = t; },
         [](auto& c, aclTensor* t) { c.expand_idx = t; }},
        {"expertTokenNums",
         {1},
         ACL_INT64,
         [](auto& d, aclTensor* t) { d.expert_token_nums = t; },
         nullptr},
        {"epRecvCounts",
         {s.world},
         ACL_INT32,
         [](auto& d, aclTensor* t) { d.ep_recv_counts = t; },
         nullptr},
        {"epSendCounts",
         {s.world},
         ACL_INT32,
         nullptr,
         [](auto& c, aclTensor* t) { c.ep_send_counts = t; }},
        {"expandScales",
         {rows},
         ACL_FLOAT,
         [](auto& d, aclTensor* t) { d.expand_scales = t; },
         nullptr},
        {"x", {s.tokens, s.hidden}, ACL_BF16, nullptr, [](auto& c, aclTensor* t) { c.x = t; }},
    };
    for (const Slot& slot : slots) {
        SCOPED_TRACE(slot.name);
        for (int64_t slack : {0, -1}) {
            Tensor t = Tensor::device(slot.shape, slot.dtype, slack);
            ASSERT_NE(t.get(), nullptr) << recent();
            const std::size_t bytes = t.bytes();
            if (slot.set_dispatch) {
                const aclnnStatus status =
                    dispatch([&](auto& d) { slot.set_dispatch(d, t.get()); });
                if (slack == 0) {
                    EXPECT_EQ(status, 0) << message_;
                } else {
                    EXPECT_EQ(status, kShape);
                    EXPECT_EQ(message_, over(slot.name, bytes - 1, bytes, 0));
                }
            }
            if (slot.set_combine) {
                const aclnnStatus status = combine([&](auto& c) { slot.set_combine(c, t.get()); });
                if (slack == 0) {
                    EXPECT_EQ(status, 0) << message_;
                } else {
                    EXPECT_EQ(status, kShape);
                    EXPECT_EQ(message_, over(slot.name, bytes - 1, bytes, 0));
                }
            }
        }
    }
    // scales and dynamicScales of a quantizing dispatch (mode 2 to int8, smooth scales (E, H)).
    for (int64_t slack : {0, -1}) {
        Tensor expand_x = Tensor::device({rows, s.hidden}, ACL_INT8);
        Tensor scales = Tensor::device({s.world, s.hidden}, ACL_FLOAT, slack);
        Tensor dynamic = Tensor::device({rows}, ACL_FLOAT, slack);
        auto quantized = [&](hostile::DispatchCall& d) {
            d.quant_mode = 2;
            d.expand_x = expand_x.get();
            d.scales = scales.get();
            d.dynamic_scales = dynamic.get();
        };
        const aclnnStatus status = dispatch(quantized);
        if (slack == 0) {
            EXPECT_EQ(status, 0) << message_;
        } else {
            EXPECT_EQ(status, kShape);
            EXPECT_EQ(message_, over("scales", scales.bytes() - 1, scales.bytes(), 0));
        }
    }
}

TEST_F(HostileView, MisalignedDataIsRefused) {
    void* block = nullptr;
    ASSERT_EQ(aclrtMalloc(&block, 64, ACL_MEM_MALLOC_HUGE_FIRST), ACL_SUCCESS);
    std::memset(block, 0, 64);
    for (std::size_t at : {0, 1, 2, 3, 4}) {
        Tensor ids = Tensor::view({2, 1}, {}, ACL_INT32, 0, static_cast<char*>(block) + at);
        const aclnnStatus status = dispatch([&](auto& d) { d.expert_ids = ids.get(); });
        if (at % 4 == 0) {
            EXPECT_EQ(status, 0) << message_;
        } else {
            EXPECT_EQ(status, kShape);
            EXPECT_EQ(message_,
                      "expertIds data must be aligned to its element size (4 bytes), got an "
                      "address " +
                          std::to_string(at) + " bytes past a multiple of it");
        }
    }
    aclrtFree(block);
}

TEST_F(HostileView, ACreateTensorWithNegativeOrOverflowingExtentsIsRefused) {
    char byte = 0;
    struct Case {
        std::vector<int64_t> shape, strides;
        int64_t offset;
        aclDataType dtype;
        std::string message;
    };
    const std::vector<Case> cases = {
        {{-1, 8}, {}, 0, ACL_BF16, "aclCreateTensor viewDims[0] must be >= 0, got -1"},
        {{2, 8}, {8, -1}, 0, ACL_BF16, "aclCreateTensor stride[1] must be >= 0, got -1"},
        {{2, 8}, {}, -1, ACL_BF16, "aclCreateTensor offset must be >= 0, got -1"},
        {{int64_t{1} << 40, int64_t{1} << 40},
         {},
         0,
         ACL_BF16,
         "aclCreateTensor viewDims must describe an addressable tensor, got an overflowing shape"},
        {{3, 2},
         {INT64_MAX / 2 + 1, 1},
         0,
         ACL_BF16,
         "aclCreateTensor viewDims and stride must describe an addressable tensor, got an "
         "overflowing view"},
        {{2, 2},
         {1, 1},
         INT64_MAX,
         ACL_BF16,
         "aclCreateTensor viewDims and stride must describe an addressable tensor, got an "
         "overflowing view"},
        {{1},
         {1},
         INT64_MAX / 2,
         ACL_FLOAT,
         "aclCreateTensor offset must be addressable, got 4611686018427387903"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.message);
        aclTensor* t = aclCreateTensor(c.shape.data(),
                                       c.shape.size(),
                                       c.dtype,
                                       c.strides.empty() ? nullptr : c.strides.data(),
                                       c.offset,
                                       ACL_FORMAT_ND,
                                       nullptr,
                                       0,
                                       &byte);
        EXPECT_EQ(t, nullptr);
        EXPECT_EQ(recent(), c.message);
    }
}

// Outputs that overlap themselves, through the C API on small blocks (so the block check
// passes and the overlap check must catch them).
TEST_F(HostileView, EveryDispatchOutputThatOverlapsItselfIsRefused) {
    const int64_t rows = shape_.capacity(), h = shape_.hidden;
    void* block = nullptr;
    ASSERT_EQ(aclrtMalloc(&block, 1 << 16, ACL_MEM_MALLOC_HUGE_FIRST), ACL_SUCCESS);
    struct Case {
        const char* name;
        std::vector<int64_t> shape, strides;
        aclDataType dtype;
        std::function<void(hostile::DispatchCall&, aclTensor*)> set;
    };
    auto expand_x = [](auto& d, aclTensor* t) { d.expand_x = t; };
    const std::vector<Case> cases = {
        {"expandX", {rows, h}, {0, 1}, ACL_BF16, expand_x},
        {"expandX", {rows, h}, {h - 1, 1}, ACL_BF16, expand_x},  // rows overlap by one
        {"expandX", {rows, h}, {h, 0}, ACL_BF16, expand_x},      // columns collapse
        {"expandX", {rows, h}, {0, 0}, ACL_BF16, expand_x},
        {"expandX", {rows, h}, {1, rows - 1}, ACL_BF16, expand_x},       // columns interleave
        {"expandX", {int64_t{1} << 40, h}, {0, 1}, ACL_BF16, expand_x},  // the 2^40 rows
        {"expandIdx",
         {shape_.tokens},
         {0},
         ACL_INT32,
         [](auto& d, aclTensor* t) { d.expand_idx = t; }},
        {"expertTokenNums",
         {2},
         {0},
         ACL_INT64,
         [](auto& d, aclTensor* t) { d.expert_token_nums = t; }},
        {"epRecvCounts",
         {shape_.world},
         {0},
         ACL_INT32,
         [](auto& d, aclTensor* t) { d.ep_recv_counts = t; }},
        {"expandScales",
         {rows},
         {0},
         ACL_FLOAT,
         [](auto& d, aclTensor* t) { d.expand_scales = t; }},
    };
    setenv("MOEDIST_ZERO_PADDING", "1", 1);  // the issue: one memset per tail row, forever
    for (const Case& c : cases) {
        SCOPED_TRACE(std::string(c.name) + " strides " + std::to_string(c.strides[0]));
        Tensor t = Tensor::view(c.shape, c.strides, c.dtype, 0, block);
        ASSERT_NE(t.get(), nullptr) << recent();
        EXPECT_EQ(dispatch([&](auto& d) { c.set(d, t.get()); }), kShape);
        EXPECT_NE(message_.find(std::string(c.name) +
                                " strides must be non-overlapping (each element at its own "
                                "address), got ("),
                  std::string::npos)
            << message_;
    }
    unsetenv("MOEDIST_ZERO_PADDING");
    // dynamicScales: per-token (mode 2) and per-group (mode 3) rows.
    Tensor expand_i8 = Tensor::device({rows, h}, ACL_INT8);
    Tensor expand_f8 = Tensor::device({rows, h}, ACL_FLOAT8_E4M3FN);
    Tensor per_token = Tensor::view({rows}, {0}, ACL_FLOAT, 0, block);
    EXPECT_EQ(dispatch([&](auto& d) {
                  d.quant_mode = 2, d.expand_x = expand_i8.get(),
                  d.dynamic_scales = per_token.get();
              }),
              kShape);
    EXPECT_EQ(message_,
              "dynamicScales strides must be non-overlapping (each element at its own address), "
              "got (0,) for shape (4,)");
    Tensor per_group = Tensor::view({rows, 1}, {0, 1}, ACL_FLOAT, 0, block);
    EXPECT_EQ(dispatch([&](auto& d) {
                  d.quant_mode = 3, d.expand_x = expand_f8.get(),
                  d.dynamic_scales = per_group.get();
              }),
              kShape);
    EXPECT_EQ(message_,
              "dynamicScales strides must be non-overlapping (each element at its own address), "
              "got (0, 1) for shape (4, 1)");
    // Outputs the call never writes are never looked at: dynamicScales without a scale mode.
    EXPECT_EQ(dispatch([&](auto& d) { d.dynamic_scales = per_token.get(); }), 0) << message_;
    // Non-overlapping layouts pass: padded rows, column-major.
    Tensor padded = Tensor::view({rows, h}, {2 * h, 1}, ACL_BF16, 0, block);
    EXPECT_EQ(dispatch([&](auto& d) { d.expand_x = padded.get(); }), 0) << message_;
    Tensor column_major = Tensor::view({rows, h}, {1, rows}, ACL_BF16, 0, block);
    EXPECT_EQ(dispatch([&](auto& d) { d.expand_x = column_major.get(); }), 0) << message_;
    per_token = Tensor();
    per_group = Tensor();
    padded = Tensor();
    column_major = Tensor();
    aclrtFree(block);
}

TEST_F(HostileView, TpRecvCountsThatOverlapsItselfIsRefused) {
    hostile::Group tp(2);
    void* block = nullptr;
    ASSERT_EQ(aclrtMalloc(&block, 64, ACL_MEM_MALLOC_HUGE_FIRST), ACL_SUCCESS);
    Tensor ep_counts = Tensor::device({2 * shape_.world}, ACL_INT32);
    Tensor expand_x = Tensor::device({2 * shape_.capacity(), shape_.hidden}, ACL_BF16);
    for (int64_t stride : {1, 0}) {
        Tensor tp_counts = Tensor::view({2}, {stride}, ACL_INT32, 0, block);
        const aclnnStatus status = dispatch([&](auto& d) {
            d.tp_world_size = 2;
            d.group_tp = tp.name().c_str();
            d.ep_recv_counts = ep_counts.get();
            d.expand_x = expand_x.get();
            d.tp_recv_counts = tp_counts.get();
        });
        if (stride == 1) {
            EXPECT_EQ(status, 0) << message_;
        } else {
            EXPECT_EQ(status, kShape);
            EXPECT_EQ(message_,
                      "tpRecvCounts strides must be non-overlapping (each element at its own "
                      "address), got (0,) for shape (2,)");
        }
    }
    aclrtFree(block);
}

TEST_F(HostileView, CombineXThatOverlapsItselfIsRefused) {
    void* block = nullptr;
    ASSERT_EQ(aclrtMalloc(&block, 4096, ACL_MEM_MALLOC_HUGE_FIRST), ACL_SUCCESS);
    const int64_t bs = shape_.tokens, h = shape_.hidden;
    for (const std::vector<int64_t>& strides :
         std::vector<std::vector<int64_t>>{{0, 1}, {h - 1, 1}, {h, 0}, {1, bs - 1}}) {
        Tensor x = Tensor::view({bs, h}, strides, ACL_BF16, 0, block);
        EXPECT_EQ(combine([&](auto& c) { c.x = x.get(); }), kShape);
        EXPECT_NE(message_.find("x strides must be non-overlapping (each element at its own "
                                "address), got (" +
                                std::to_string(strides[0]) + ", " + std::to_string(strides[1]) +
                                ") for shape (2, 8)"),
                  std::string::npos)
            << message_;
    }
    Tensor column_major = Tensor::view({bs, h}, {1, bs}, ACL_BF16, 0, block);
    EXPECT_EQ(combine([&](auto& c) { c.x = column_major.get(); }), 0) << message_;
    column_major = Tensor();
    aclrtFree(block);
}

}  // namespace
