// aclCreateTensor + both first phases (and, when they accept, both op calls) over random views on
// random aclrtMalloc blocks: blocks of any size, storage anywhere in or past them, perturbed
// extents, zero, padded or random strides, element offsets. One thread rank (W = 1), so the op
// calls run inline. Invariants, checked here independently of moedist:
// - phase 1 returns 0, 161001, 161002 or 561002; an op call 0 or 361001; every error has a
//   message;
// - when phase 1 accepts, every tensor it was given lies inside its block (first to last byte of
//   the strided view), and every output the call writes gives each element its own address.
// An input of zero bytes is the valid canonical call; each tensor's first byte < 128 keeps it
// canonical.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "acl/acl.h"
#include "aclnnop/aclnn_moe_distribute_combine.h"
#include "aclnnop/aclnn_moe_distribute_dispatch.h"
#include "byte_reader.hpp"
#include "hccl/hccl.h"

namespace {

using moedist::fuzz::ByteReader;

std::string g_group;  // a one-rank communicator made once

[[noreturn]] void fail(const std::string& why) {
    std::fprintf(stderr, "fuzz_views: %s\n", why.c_str());
    std::abort();
}

int64_t saturating_mul(int64_t a, int64_t b) {
    int64_t product = 0;
    return __builtin_mul_overflow(a, b, &product) ? INT64_MAX : product;
}

std::string recent() {
    const char* m = aclGetRecentErrMsg();
    return m == nullptr ? "" : m;
}

// One tensor of the call: its block, the view made on it, and whether the call writes it.
struct Made {
    const char* name = "";
    void* block = nullptr;
    std::size_t block_bytes = 0;
    std::vector<int64_t> shape, strides;
    int64_t offset = 0;  // elements
    std::size_t elem = 1;
    char* storage = nullptr;
    aclTensor* tensor = nullptr;
    bool output = false;
};

class Call {
public:
    ~Call() {
        for (Made& m : made_) {
            if (m.tensor != nullptr) aclDestroyTensor(m.tensor);
            aclrtFree(m.block);
        }
    }

    // The canonical contiguous tensor of `shape` on an exact block, or (first byte >= 128) a
    // perturbed view on a block of any size.
    aclTensor* make(ByteReader& in,
                    const char* name,
                    std::vector<int64_t> shape,
                    aclDataType dtype,
                    bool output,
                    uint8_t fill_mod = 0) {
        Made m;
        m.name = name;
        m.output = output;
        m.elem = aclDataTypeSize(dtype);
        std::size_t exact = m.elem;
        for (int64_t d : shape) exact *= static_cast<std::size_t>(d);
        m.block_bytes = exact;
        std::size_t storage_at = 0;
        std::vector<int64_t> strides;
        if (in.u8() >= 128) {
            const uint8_t how = in.u8();
            if (how % 4 == 1) {  // within 8 bytes of the view's size
                const int64_t bytes = static_cast<int64_t>(exact) + in.u8() % 17 - 8;
                m.block_bytes = bytes < 0 ? 0 : static_cast<std::size_t>(bytes);
            }
            if (how % 4 == 2) m.block_bytes = in.u16() % 4096;
            if (how % 4 == 3) m.block_bytes = exact + in.u8();
            if (m.block_bytes > (1u << 20)) m.block_bytes = exact;
            // Storage anywhere in the block's allocation (its bytes and the alignment padding
            // after them); a pointer past that lies in no block, which the runtime cannot
            // tell from memory it did not allocate.
            const std::size_t held = m.block_bytes == 0 ? 64 : (m.block_bytes + 63) / 64 * 64;
            if (in.u8() % 4 == 0) storage_at = in.u16() % held;
            for (int64_t& d : shape) {
                const uint8_t k = in.u8();
                if (k % 8 == 1) d += 1;
                if (k % 8 == 2 && d > 0) d -= 1;
                if (k % 8 == 3) d = static_cast<int64_t>(in.u16());
                if (k % 8 == 4) d = int64_t{1} << (in.u8() % 48);
            }
            const uint8_t s = in.u8() % 5;
            if (s != 0) {
                strides.assign(shape.size(), 0);
                int64_t running = 1;
                for (std::size_t d = shape.size(); d-- > 0;) {
                    if (s == 1) strides[d] = 0;
                    if (s == 2) strides[d] = in.u8() % 5;
                    if (s == 3) strides[d] = d + 1 == shape.size() ? 1 : 2 * running;  // padded
                    if (s == 4) strides[d] = static_cast<int64_t>(in.u16());
                    running = saturating_mul(strides[d], shape[d] > 0 ? shape[d] : 1);
                }
            }
            if (in.u8() % 8 == 0) m.offset = in.u8();
        }
        if (aclrtMalloc(&m.block, m.block_bytes, ACL_MEM_MALLOC_HUGE_FIRST) != ACL_SUCCESS)
            fail("aclrtMalloc failed");
        auto* bytes = static_cast<uint8_t*>(m.block);
        for (std::size_t i = 0; i < m.block_bytes; ++i)
            bytes[i] = fill_mod ? static_cast<uint8_t>((in.u8() % fill_mod)) : 0;
        if (fill_mod != 0 && dtype == ACL_INT32) {  // small ids: mostly valid experts
            for (std::size_t i = 0; i + 4 <= m.block_bytes; i += 4) {
                const int32_t id = static_cast<int32_t>(bytes[i] % fill_mod);
                std::memcpy(bytes + i, &id, 4);
            }
        }
        m.storage = static_cast<char*>(m.block) + storage_at;
        m.shape = shape;
        m.strides = strides;
        m.tensor = aclCreateTensor(shape.data(),
                                   shape.size(),
                                   dtype,
                                   strides.empty() ? nullptr : strides.data(),
                                   m.offset,
                                   ACL_FORMAT_ND,
                                   nullptr,
                                   0,
                                   m.storage);
        if (m.tensor == nullptr && recent().empty())
            fail("aclCreateTensor refused without a message");
        if (m.strides.empty()) {  // aclCreateTensor's default: contiguous
            m.strides.assign(shape.size(), 1);
            for (std::size_t d = shape.size(); d-- > 1;)
                m.strides[d - 1] = saturating_mul(m.strides[d], shape[d]);
        }
        made_.push_back(m);
        return m.tensor;
    }

    // After an accepted phase 1 given `given`: every view inside its block; outputs without
    // self-overlap.
    void check_accepted(const char* op, std::initializer_list<const aclTensor*> given) const {
        for (const Made& m : made_) {
            if (m.tensor == nullptr ||
                std::find(given.begin(), given.end(), m.tensor) == given.end())
                continue;
            bool empty = false;
            unsigned __int128 last = 0;
            for (std::size_t d = 0; d < m.shape.size(); ++d) {
                if (m.shape[d] == 0) empty = true;
                if (m.shape[d] > 0)
                    last += static_cast<unsigned __int128>(m.shape[d] - 1) *
                            static_cast<uint64_t>(m.strides[d]);
            }
            const unsigned __int128 start =
                static_cast<unsigned __int128>(m.storage - static_cast<char*>(m.block)) +
                static_cast<unsigned __int128>(m.offset) * m.elem;
            const unsigned __int128 end = empty ? start : start + (last + 1) * m.elem;
            if (end > m.block_bytes) {
                fail(std::string(op) + " accepted " + m.name + " reaching past its block: " +
                     describe(m) + ", end " + std::to_string(static_cast<uint64_t>(end)));
            }
            if (m.output && !empty) check_distinct(m, op);
        }
    }

    void mark_output(const aclTensor* t, bool output) {
        if (t == nullptr) return;
        for (Made& m : made_)
            if (m.tensor == t) m.output = output;
    }

private:
    static std::string describe(const Made& m) {
        std::string text = "shape (";
        for (int64_t d : m.shape) text += std::to_string(d) + ",";
        text += ") strides (";
        for (int64_t d : m.strides) text += std::to_string(d) + ",";
        return text + ") offset " + std::to_string(m.offset) + " storage at byte " +
               std::to_string(m.storage - static_cast<char*>(m.block)) + " of a block of " +
               std::to_string(m.block_bytes) + " bytes";
    }

    static void check_distinct(const Made& m, const char* op) {
        uint64_t numel = 1;
        for (int64_t d : m.shape) numel *= static_cast<uint64_t>(d);
        if (numel > (1u << 16)) return;  // accepted outputs this big are checked by their rule
        std::set<int64_t> seen;
        std::vector<int64_t> index(m.shape.size(), 0);
        for (uint64_t i = 0; i < numel; ++i) {
            int64_t at = 0;
            for (std::size_t d = 0; d < m.shape.size(); ++d) at += index[d] * m.strides[d];
            if (!seen.insert(at).second)
                fail(std::string(op) + " accepted output " + m.name +
                     " with overlapping elements: " + describe(m));
            for (std::size_t d = m.shape.size(); d-- > 0;) {
                if (++index[d] < m.shape[d]) break;
                index[d] = 0;
            }
        }
    }

    std::vector<Made> made_;
};

void require_phase1(aclnnStatus s, const char* op) {
    if (s != 0 && s != 161001 && s != 161002 && s != 561002)
        fail(std::string(op) + " phase 1 returned " + std::to_string(s));
    if (s != 0 && recent().empty()) fail(std::string(op) + " phase 1 failed without a message");
}

void require_op(aclnnStatus s, const char* op) {
    if (s != 0 && s != 361001) fail(std::string(op) + " returned " + std::to_string(s));
    if (s != 0 && recent().empty()) fail(std::string(op) + " failed without a message");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    setenv("MOEDIST_TIMEOUT_MS", "10000", 1);
    HcclComm comm = nullptr;
    int32_t device = 0;
    if (HcclCommInitAll(1, &device, &comm) != HCCL_SUCCESS) fail("HcclCommInitAll failed");
    char name[128] = {};
    if (HcclGetCommName(comm, name) != HCCL_SUCCESS) fail("HcclGetCommName failed");
    g_group = name;
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    ByteReader in(data, size);
    const int64_t experts = int64_t{1} << in.range(0, 3);  // E = L (W = 1)
    const int64_t top_k = 1 + in.range(0, experts - 1);
    const int64_t bs = (in.u8() + 2) % 9;
    const int64_t hidden = 1 + (in.u8() + 7) % 64;
    const bool quant = in.u8() % 4 == 3;  // mode 2 to int8 with per-token scales
    const bool weights = in.u8() % 2 == 0;
    const bool expand_scales = weights && in.u8() % 2 == 0;
    if (in.u8() % 4 == 1) {
        setenv("MOEDIST_ZERO_PADDING", "1", 1);
    } else {
        unsetenv("MOEDIST_ZERO_PADDING");
    }
    const int64_t rows = bs * top_k;  // A = BS * W * min(L, K)
    const auto e = static_cast<uint8_t>(experts);

    Call call;
    aclTensor* x = call.make(in, "x", {bs, hidden}, ACL_BF16, false, 251);
    aclTensor* ids = call.make(in, "expertIds", {bs, top_k}, ACL_INT32, false, e);
    aclTensor* w = weights ? call.make(in, "expertScales", {bs, top_k}, ACL_FLOAT, false) : nullptr;
    aclTensor* expand_x =
        call.make(in, "expandX", {rows, hidden}, quant ? ACL_INT8 : ACL_BF16, true);
    aclTensor* dyn = quant ? call.make(in, "dynamicScales", {rows}, ACL_FLOAT, true) : nullptr;
    aclTensor* idx = call.make(in, "expandIdx", {bs * top_k}, ACL_INT32, true);
    aclTensor* nums = call.make(in, "expertTokenNums", {experts}, ACL_INT64, true);
    aclTensor* counts = call.make(in, "epRecvCounts", {experts}, ACL_INT32, true);
    aclTensor* es =
        expand_scales ? call.make(in, "expandScales", {rows}, ACL_FLOAT, true) : nullptr;

    call.mark_output(es, w != nullptr);  // expandScales is written only with expertScales
    uint64_t workspace = 0;
    aclOpExecutor* exec = nullptr;
    aclnnStatus s = aclnnMoeDistributeDispatchGetWorkspaceSize(x,
                                                               ids,
                                                               nullptr,
                                                               nullptr,
                                                               w,
                                                               g_group.c_str(),
                                                               1,
                                                               0,
                                                               experts,
                                                               "",
                                                               0,
                                                               0,
                                                               0,
                                                               0,
                                                               0,
                                                               quant ? 2 : 0,
                                                               0,
                                                               0,
                                                               expand_x,
                                                               dyn,
                                                               idx,
                                                               nums,
                                                               counts,
                                                               nullptr,
                                                               es,
                                                               &workspace,
                                                               &exec);
    require_phase1(s, "dispatch");
    if (s == 0) {
        call.check_accepted("dispatch", {x, ids, w, expand_x, dyn, idx, nums, counts, es});
        require_op(aclnnMoeDistributeDispatch(nullptr, 0, exec, nullptr),
                   "aclnnMoeDistributeDispatch");
    }
    if (quant) return 0;  // combine needs a bf16 expandX

    // Combine over dispatch's tensors (as dispatch wrote them, when it ran) and its own x.
    call.mark_output(expand_x, false);
    call.mark_output(idx, false);
    call.mark_output(counts, false);
    call.mark_output(es, false);
    call.mark_output(nums, false);
    aclTensor* cw = w != nullptr ? w : call.make(in, "expertScales", {bs, top_k}, ACL_FLOAT, false);
    aclTensor* out = call.make(in, "x", {bs, hidden}, ACL_BF16, true);
    s = aclnnMoeDistributeCombineGetWorkspaceSize(expand_x,
                                                  ids,
                                                  idx,
                                                  counts,
                                                  cw,
                                                  nullptr,
                                                  nullptr,
                                                  nullptr,
                                                  nullptr,
                                                  nullptr,
                                                  nullptr,
                                                  g_group.c_str(),
                                                  1,
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
                                                  0,
                                                  out,
                                                  &workspace,
                                                  &exec);
    require_phase1(s, "combine");
    if (s == 0) {
        call.check_accepted("combine", {expand_x, ids, idx, counts, cw, out});
        require_op(aclnnMoeDistributeCombine(nullptr, 0, exec, nullptr),
                   "aclnnMoeDistributeCombine");
    }
    return 0;
}
