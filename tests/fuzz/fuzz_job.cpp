// Whole jobs on random configurations: W, TP, shared ranks, experts, K, H, BS (uneven or zero),
// both dtypes, every quantization mode, routing, strides, larger outputs, the C or the C++ API,
// and sometimes one expert id outside [0, E) on one rank. A valid job must match the reference
// bit for bit on every rank; a bad id must fail every rank with 361001 and the same message.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "byte_reader.hpp"
#include "harness/job.hpp"

namespace {

using moedist::DType;
using moedist::fuzz::ByteReader;
using moedist::harness::JobSpec;
using moedist::harness::Routing;

struct Mode {
    int quant_mode;
    DType target;
    bool pre_quantized;
};

constexpr Mode kModes[] = {
    {0, DType::kInt8, false},
    {2, DType::kInt8, false},
    {1, DType::kInt8, false},
    {1, DType::kHiFloat8, false},
    {2, DType::kFp8E4M3, false},
    {2, DType::kFp8E5M2, false},
    {3, DType::kFp8E4M3, false},
    {3, DType::kFp8E5M2, false},
    {4, DType::kFp8E4M3, false},
    {4, DType::kFp8E5M2, false},
    {0, DType::kFp8E4M3, true},
    {0, DType::kFp8E5M2, true},
    {0, DType::kHiFloat8, true},
};

[[noreturn]] void fail(const JobSpec& spec, const std::string& why) {
    std::fprintf(stderr, "fuzz_job: %s\n  spec: %s\n", why.c_str(), spec.describe().c_str());
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    setenv("MOEDIST_TIMEOUT_MS", "10000", 1);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    ByteReader in(data, size);
    JobSpec spec;
    spec.ep_world_size = static_cast<int>(in.range(1, 6));
    spec.tp_size = static_cast<int>(in.range(1, 2));
    spec.shared_rank_num = static_cast<int>(in.range(0, spec.ep_world_size - 1));
    const int moe_ranks = spec.ep_world_size - spec.shared_rank_num;
    const int local = spec.tp_size == 2 ? 1 : static_cast<int>(in.range(1, 3));
    spec.moe_expert_num = moe_ranks * local;
    spec.top_k = static_cast<int>(in.range(1, spec.moe_expert_num < 6 ? spec.moe_expert_num : 6));
    spec.hidden = static_cast<int>(in.range(1, 300));
    spec.tokens = in.range(0, 12);
    spec.uneven_bs = in.flag();
    spec.global_bs_zero = in.flag();
    spec.dtype = in.flag() ? DType::kBFloat16 : DType::kFloat16;
    const Mode& mode = kModes[in.range(0, 12)];
    spec.quant_mode = mode.quant_mode;
    spec.target = mode.target;
    spec.pre_quantized = mode.pre_quantized;
    spec.static_scales = static_cast<int>(in.range(1, 3));
    spec.smooth_scales = in.flag();
    spec.special_rows = in.flag();
    spec.expand_scales = in.flag();
    spec.expert_token_nums_type = static_cast<int>(in.range(0, 1));
    spec.comm_quant_mode = in.flag() ? 2 : 0;
    spec.routing = static_cast<Routing>(in.range(0, 3));
    spec.strided_x = in.flag();
    spec.extra_rows = static_cast<int>(in.range(0, 2));
    spec.c_api = in.flag();
    spec.seed = in.u32();
    const bool inject = in.u8() >= 200;
    if (inject) {
        spec.bad_id_rank = static_cast<int>(in.range(0, spec.ep_world_size * spec.tp_size - 1));
        spec.bad_id_slot = in.u16();
        static constexpr int32_t kBad[] = {-1, INT32_MIN, INT32_MAX, 0};
        const int32_t pick = kBad[in.range(0, 3)];
        spec.bad_id_value = pick == 0 ? spec.moe_expert_num : pick;  // E itself: one past the end
    }
    if (!moedist::harness::spec_error(spec).empty()) return 0;  // outside the generic profile

    moedist::harness::Job job(spec);
    job.step();
    const auto statuses = job.statuses();
    // The bad id lands only when the rank has tokens: then every rank fails alike.
    bool landed = false;
    if (inject) {
        for (const auto& s : statuses) landed = landed || !s.ok();
    }
    if (landed) {
        for (const auto& s : statuses) {
            if (s.code() != moedist::Code::kRuntime)
                fail(spec, "bad id: a rank returned " + s.message());
            if (s.message() != statuses.front().message()) fail(spec, "bad id: messages differ");
        }
        return 0;
    }
    for (const auto& s : statuses)
        if (!s.ok()) fail(spec, "a valid job failed: " + s.message());
    const auto report = job.check(true);
    if (!report.ok) fail(spec, "mismatch: " + report.first_mismatch);
    return 0;
}
