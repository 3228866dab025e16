// Records as a peer process publishes them (core/records.hpp): any bytes as a DispatchRecord or a
// CombineRecord, and any int32s as a sender's plan, against bounds taken from the input too.
// Invariants, checked here: no input crashes; a record that passes has every field the core
// reads in range (its tensors' extents inside their regions, BS, K, E as this rank's, counts in
// range); a plan that passes has offsets rising from 0 within BS·K and every entry below BS·K.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "byte_reader.hpp"
#include "core/records.hpp"

namespace {

namespace core = moedist::core;

[[noreturn]] void fail(const std::string& why) {
    std::fprintf(stderr, "fuzz_records: %s\n", why.c_str());
    std::abort();
}

__int128 extent(const core::TensorRef& t) {
    __int128 last = 0;
    for (int d = 0; d < t.ndim; ++d) {
        if (t.shape[d] == 0) return 0;
        last += static_cast<__int128>(t.shape[d] - 1) * t.strides[d];
    }
    return (last + 1) * static_cast<__int128>(moedist::dtype_size(t.dtype));
}

void check_inside(const core::TensorRef& t, const char* what) {
    if (!t.present() || t.region.empty()) return;
    if (extent(t) > static_cast<__int128>(t.region.bytes)) fail(std::string("accepted ") + what + " past its region");
}

core::TensorRef well_formed(moedist::DType dtype, int64_t rows, int64_t cols) {
    core::TensorRef t;
    t.dtype = dtype;
    t.ndim = cols > 0 ? 2 : 1;
    t.shape[0] = rows;
    t.shape[1] = cols > 0 ? cols : 0;
    t.strides[0] = cols > 0 ? cols : 1;
    t.strides[1] = 1;
    t.region.bytes = static_cast<uint64_t>(rows * std::max<int64_t>(cols, 1)) * moedist::dtype_size(dtype);
    return t;
}

// The rest of the input as (offset, byte) edits of `object`: a well-formed record, then forged.
template <class T>
void forge(T* object, moedist::fuzz::ByteReader& in, std::size_t edits) {
    auto* bytes = reinterpret_cast<unsigned char*>(object);
    for (std::size_t i = 0; i < edits; ++i) {
        const std::size_t at = in.u16() % sizeof(T);
        bytes[at] = in.u8();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    moedist::fuzz::ByteReader in(data, size);
    core::RecordBounds b;
    b.world = in.range(1, 70);
    b.experts = in.range(1, 300);
    b.top_k = in.range(1, 16);
    b.hidden = in.range(1, 9000);
    b.nodes = in.range(1, 16);
    b.x_dtype = in.flag() ? moedist::DType::kBFloat16 : moedist::DType::kFloat16;
    b.expand_dtype = in.flag() ? b.x_dtype : moedist::DType::kInt8;
    b.local_blocks_moe = b.world * in.range(1, 8);
    b.tp = in.flag();
    const int kind = static_cast<int>(in.range(0, 2));
    const int64_t rank = in.range(0, 69);
    const std::size_t header = 13;
    const uint8_t* body = size > header ? data + header : data + size;
    const std::size_t body_size = size > header ? size - header : 0;
    const bool from_valid = in.flag();  // a well-formed record with edits, or raw bytes
    const int64_t bs = in.range(0, 40);
    b.v2 = in.flag();
    b.scale_rows = b.v2 ? in.range(0, 4) + b.experts : b.experts + 1;
    if (kind == 0) {
        core::DispatchRecord rec;
        if (from_valid) {
            rec.ep_rank = rank;
            rec.num_tokens = bs;
            rec.top_k = b.top_k;
            rec.num_experts = b.experts;
            rec.num_active = b.v2 ? in.range(0, bs) : bs;
            rec.active_listed = b.v2 && in.flag() ? 1 : 0;
            rec.plan.bytes = static_cast<uint64_t>(b.experts + 1 + bs * b.top_k +
                                                   (rec.active_listed ? rec.num_active : 0)) *
                             4;
            rec.x = well_formed(b.x_dtype, bs, b.hidden);
            if (in.flag()) rec.expert_scales = well_formed(moedist::DType::kFloat32, bs, b.top_k);
            if (in.flag()) rec.staged_rows = well_formed(b.expand_dtype, bs, b.hidden);
            forge(&rec, in, static_cast<std::size_t>(in.range(0, 8)));
        } else {
            std::memcpy(&rec, body, std::min(body_size, sizeof(rec)));
        }
        if (core::check_dispatch_record(rec, rank, b).empty()) {
            if (rec.ep_rank != rank || rec.top_k != b.top_k || rec.num_experts != b.experts) fail("accepted foreign attributes");
            if (rec.num_tokens < 0 || rec.num_tokens * b.top_k > INT32_MAX) fail("accepted BS out of range");
            if (rec.x.shape[0] != rec.num_tokens || rec.x.shape[1] != b.hidden) fail("accepted x of another shape");
            if (rec.num_active < 0 || rec.num_active > rec.num_tokens) fail("accepted active tokens past BS");
            if (!b.v2 && (rec.num_active != rec.num_tokens || rec.active_listed != 0)) fail("accepted a V1 mask");
            check_inside(rec.x, "x");
            check_inside(rec.scales, "scales");
            check_inside(rec.expert_scales, "expertScales");
            check_inside(rec.staged_rows, "staged rows");
            check_inside(rec.staged_scales, "staged scales");
            for (int64_t n = 0; n < std::min<int64_t>(b.nodes, core::DispatchRecord::kMaxNodes); ++n)
                if (rec.tokens_to_node[n] < 0 || rec.tokens_to_node[n] > rec.num_tokens) fail("accepted a token count past BS");
        }
    } else if (kind == 1) {
        core::CombineRecord rec;
        if (from_valid) {
            rec.ep_rank = rank;
            rec.num_tokens = bs;
            rec.expand_x = well_formed(b.expand_dtype, bs * b.top_k, b.hidden);
            rec.ep_send_counts = well_formed(moedist::DType::kInt32, b.local_blocks_moe, 0);
            if (b.tp) rec.tp_send_counts = well_formed(moedist::DType::kInt32, 2, 0);
            if (b.v2) rec.assist = well_formed(moedist::DType::kInt32, 3 * bs * b.top_k, 0);
            forge(&rec, in, static_cast<std::size_t>(in.range(0, 8)));
        } else {
            std::memcpy(&rec, body, std::min(body_size, sizeof(rec)));
        }
        if (core::check_combine_record(rec, rank, b).empty()) {
            if (rec.ep_rank != rank || (rec.tp_rank != 0 && rec.tp_rank != 1)) fail("accepted foreign attributes");
            if (rec.expand_x.shape[1] != b.hidden) fail("accepted expandX of another width");
            check_inside(rec.expand_x, "expandX");
            check_inside(rec.ep_send_counts, "epSendCounts");
            check_inside(rec.tp_send_counts, "tpSendCounts");
            check_inside(rec.assist, "assistInfo");
            if (b.v2 != rec.assist.present()) fail("accepted assistInfo of the other family");
        }
    } else {
        const int64_t experts = b.experts, tokens = in.range(0, 64), top_k = b.top_k;
        const int64_t active = in.range(0, tokens);
        const bool listed = in.flag();
        std::vector<int32_t> plan(
            static_cast<std::size_t>(experts + 1 + tokens * top_k + (listed ? active : 0)), 0);
        std::memcpy(plan.data(), body, std::min(body_size, plan.size() * sizeof(int32_t)));
        if (core::check_plan_arrays(plan.data(), experts, tokens, top_k, active, listed).empty()) {
            for (int64_t i = 0; listed && i < active; ++i) {
                const int32_t t = plan[static_cast<std::size_t>(experts + 1 + tokens * top_k + i)];
                const int32_t before =
                    i == 0 ? -1 : plan[static_cast<std::size_t>(experts + tokens * top_k + i)];
                if (t < 0 || t >= tokens || t <= before) fail("accepted an active list out of order");
            }
            if (plan[0] != 0) fail("accepted a plan not starting at 0");
            for (int64_t e = 0; e < experts; ++e)
                if (plan[static_cast<std::size_t>(e + 1)] < plan[static_cast<std::size_t>(e)] ||
                    plan[static_cast<std::size_t>(e + 1)] > tokens * top_k)
                    fail("accepted falling or excessive offsets");
            for (int64_t i = 0; i < plan[static_cast<std::size_t>(experts)]; ++i) {
                const int32_t entry = plan[static_cast<std::size_t>(experts + 1 + i)];
                if (entry < 0 || entry >= tokens * top_k) fail("accepted an entry past BS·K");
            }
        }
    }
    return 0;
}
