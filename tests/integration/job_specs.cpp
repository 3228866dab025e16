#include "job_specs.hpp"

#include <algorithm>

namespace moedist::test_specs {
namespace {

using moedist::DType;
using moedist::harness::JobSpec;
using moedist::harness::Routing;

JobSpec base(int W, int S, int E, int K, int H, int64_t bs) {
    JobSpec s;
    s.ep_world_size = W;
    s.shared_rank_num = S;
    s.moe_expert_num = E;
    s.top_k = K;
    s.hidden = H;
    s.tokens = bs;
    s.seed = static_cast<uint64_t>(W * 1000 + S * 100 + E + K * 7 + H);
    return s;
}

}  // namespace

std::vector<JobSpec> valid_jobs() {
    std::vector<JobSpec> jobs;
    // World sizes, shared ranks, both dtypes, both quant modes (with/without smooth), comm quant.
    int variant = 0;
    for (int W : {1, 2, 3, 4, 7, 8, 16}) {
        for (int S : {0, 1, 2}) {
            if (S >= W) continue;
            const int moe_ranks = W - S;
            const int L = (variant % 3 == 0) ? 1 : (variant % 3 == 1 ? 2 : 3);
            const int E = moe_ranks * L;
            const int K = std::min(E, 1 + variant % 4);
            JobSpec s = base(W, S, E, K, 64 + 8 * (variant % 5) + (variant % 2), 3 + variant % 6);
            s.dtype = variant % 2 ? DType::kFloat16 : DType::kBFloat16;
            s.quant_mode = (variant % 4 >= 2) ? 2 : 0;
            s.smooth_scales = variant % 4 == 3;
            s.comm_quant_mode = (variant % 5 == 1) ? 2 : 0;
            s.expert_token_nums_type = variant % 2;
            s.uneven_bs = variant % 3 == 2;
            s.global_bs_zero = variant % 4 != 1;
            s.strided_x = variant % 5 == 4;
            s.extra_rows = variant % 3;
            s.zero_padding = variant % 2 == 0;
            jobs.push_back(s);
            ++variant;
        }
    }
    // TP = 2 (L == 1), with and without shared ranks, quant and comm quant.
    for (int W : {2, 3, 4, 8}) {
        for (int S : {0, 1}) {
            if (S >= W) continue;
            JobSpec s = base(W, S, W - S, std::min(W - S, 2), 48, 5);
            s.tp_size = 2;
            s.dtype = W % 2 ? DType::kFloat16 : DType::kBFloat16;
            s.quant_mode = (W + S) % 2 ? 2 : 0;
            s.smooth_scales = S == 1;
            s.comm_quant_mode = W == 4 ? 2 : 0;
            s.uneven_bs = W == 8;
            s.zero_padding = S == 0;
            jobs.push_back(s);
        }
    }
    // Skewed routing: a single hot expert, zipf, duplicate ids.
    JobSpec hot = base(4, 0, 8, 3, 96, 16);
    hot.routing = Routing::kHot;
    jobs.push_back(hot);
    JobSpec zipf = base(8, 1, 14, 4, 40, 12);
    zipf.routing = Routing::kZipf;
    zipf.quant_mode = 2;
    jobs.push_back(zipf);
    JobSpec dup = base(3, 0, 12, 4, 33, 9);
    dup.routing = Routing::kDuplicates;
    jobs.push_back(dup);
    JobSpec dup_shared = base(4, 1, 9, 6, 24, 7);
    dup_shared.routing = Routing::kDuplicates;
    dup_shared.quant_mode = 2;
    dup_shared.smooth_scales = true;
    dup_shared.comm_quant_mode = 2;
    jobs.push_back(dup_shared);
    // A DeepSeek-like row width, strided.
    JobSpec wide = base(4, 1, 6, 3, 7168, 4);
    wide.strided_x = true;
    wide.quant_mode = 2;
    wide.smooth_scales = true;
    jobs.push_back(wide);
    // Every quantization mode of SPEC §5: both dtypes, TP 1 and 2, shared ranks, smooth scales,
    // static scale shapes, H with tail groups/blocks (H = 300: 128-groups 128+128+44, 32-blocks
    // 9 full + 12; the pad byte is in the H = 200 special-row jobs below).
    struct Mode {
        int quant_mode;
        DType target;
        bool pre;
        int static_scales;
    };
    const Mode modes[] = {
        {0, DType::kFp8E4M3, true, 1},
        {0, DType::kFp8E5M2, true, 1},
        {0, DType::kHiFloat8, true, 1},
        {1, DType::kInt8, false, 1},
        {1, DType::kInt8, false, 2},
        {1, DType::kInt8, false, 3},
        {1, DType::kHiFloat8, false, 1},
        {2, DType::kFp8E4M3, false, 1},
        {2, DType::kFp8E5M2, false, 1},
        {3, DType::kFp8E4M3, false, 1},
        {3, DType::kFp8E5M2, false, 1},
        {4, DType::kFp8E4M3, false, 1},
        {4, DType::kFp8E5M2, false, 1},
    };
    int m = 0;
    for (const Mode& mode : modes) {
        for (int layout = 0; layout < 2; ++layout, ++m) {
            // layout 0: W 4, S 1, L 2, T 1; layout 1: W 3, S 1, T 2 (L 1)
            JobSpec q = layout == 0 ? base(4, 1, 6, 3, 300, 5) : base(3, 1, 2, 2, 300, 4);
            q.tp_size = layout == 0 ? 1 : 2;
            q.quant_mode = mode.quant_mode;
            q.target = mode.target;
            q.pre_quantized = mode.pre;
            q.static_scales = mode.static_scales;
            q.smooth_scales = m % 3 != 0;
            q.dtype = m % 2 ? DType::kFloat16 : DType::kBFloat16;
            q.uneven_bs = m % 4 == 3;
            q.strided_x = m % 5 == 2;
            q.extra_rows = m % 3;
            q.zero_padding = (m / 2) % 2 == 1;  // every mode both ways (layout alternates)
            q.seed = static_cast<uint64_t>(500 + m);
            jobs.push_back(q);
        }
    }
    // The same machinery through the aclnn C API (junk in every reserved input).
    for (std::size_t i : {0u, 7u, 11u, 14u, 19u, 23u, 25u}) {
        JobSpec c = jobs[i];
        c.c_api = true;
        c.seed += 17;
        jobs.push_back(c);
    }
    JobSpec c_strided = base(3, 1, 4, 2, 40, 6);
    c_strided.c_api = true;
    c_strided.strided_x = true;
    jobs.push_back(c_strided);
    // All-zero rows, a row with one huge element and a row with a NaN, through every kind of mode.
    const Mode special_modes[] = {{0, DType::kInt8, false, 1},
                                  {2, DType::kInt8, false, 1},
                                  {2, DType::kFp8E4M3, false, 1},
                                  {3, DType::kFp8E5M2, false, 1},
                                  {4, DType::kFp8E4M3, false, 1},
                                  {1, DType::kInt8, false, 2},
                                  {1, DType::kHiFloat8, false, 1},
                                  {0, DType::kFp8E4M3, true, 1}};
    for (const Mode& mode : special_modes) {
        JobSpec q = base(3, 1, 4, 2, 200, 4);
        q.quant_mode = mode.quant_mode;
        q.target = mode.target;
        q.pre_quantized = mode.pre;
        q.static_scales = mode.static_scales;
        q.special_rows = true;
        q.comm_quant_mode = mode.quant_mode == 2 ? 2 : 0;
        q.dtype = mode.quant_mode % 2 ? DType::kFloat16 : DType::kBFloat16;
        q.seed = static_cast<uint64_t>(900 + mode.quant_mode * 10 + static_cast<int>(mode.target));
        jobs.push_back(q);
    }
    // Quantized modes through the C API too.
    for (std::size_t i : {std::size_t{33}, std::size_t{45}, std::size_t{53}}) {
        JobSpec c = jobs[i];
        c.c_api = true;
        jobs.push_back(c);
    }
    // Every rank with BS = 0 but one, and all BS = 0.
    JobSpec empty = base(4, 1, 3, 2, 16, 0);
    jobs.push_back(empty);
    // Split calls (send half + wait): plain, shared ranks with quantization, TP = 2, uneven BS.
    for (std::size_t i : {1u, 6u, 14u, 19u, 23u, 25u}) {
        JobSpec q = jobs[i];
        q.split = true;
        q.seed += 29;
        jobs.push_back(q);
    }
    return jobs;
}

std::vector<JobSpec> v2_jobs() {
    std::vector<JobSpec> jobs;
    auto v2 = [](int W, int S, int N, int E, int K, int H, int64_t bs) {
        JobSpec s = base(W, S, E, K, H, bs);
        s.v2 = true;
        s.shared_expert_num = N;
        s.seed += 7;
        return s;
    };
    jobs.push_back(v2(4, 0, 1, 8, 3, 64, 6));                   // like V1 without shared ranks
    JobSpec n2 = v2(6, 4, 2, 4, 3, 72, 5);                       // R = 2: two shared experts
    n2.quant_mode = 2;
    n2.smooth_scales = true;                                     // N + E smooth rows
    jobs.push_back(n2);
    jobs.push_back(v2(5, 2, 1, 6, 2, 40, 7));                    // R = 2, W odd: ⌈W/R⌉ = 3
    JobSpec prefix = v2(4, 1, 1, 6, 3, 48, 9);
    prefix.mask = 1;
    prefix.zero_padding = true;
    jobs.push_back(prefix);
    JobSpec entries = v2(5, 2, 2, 6, 3, 56, 8);                  // R = 1
    entries.mask = 2;
    entries.uneven_bs = true;
    jobs.push_back(entries);
    JobSpec special = v2(3, 0, 1, 6, 4, 64, 6);
    special.zero_experts = 1;
    special.copy_experts = 1;
    special.const_experts = 1;
    special.shared_expert_x = true;
    jobs.push_back(special);
    JobSpec gate = v2(4, 1, 1, 6, 4, 96, 6);
    gate.const_experts = 2;
    gate.copy_experts = 1;
    gate.const_alpha_form = 2;
    gate.mask = 2;
    gate.dtype = DType::kFloat16;
    jobs.push_back(gate);
    JobSpec unweighted = v2(5, 2, 1, 9, 3, 40, 5);
    unweighted.unweighted = true;
    unweighted.comm_quant_mode = 2;
    unweighted.expand_scales = false;
    jobs.push_back(unweighted);
    JobSpec norm = v2(4, 0, 1, 8, 2, 128, 7);
    norm.add_rms_norm = true;
    norm.mask = 1;
    jobs.push_back(norm);
    JobSpec norm_special = v2(4, 2, 2, 4, 3, 64, 5);
    norm_special.add_rms_norm = true;
    norm_special.zero_experts = 2;
    norm_special.const_experts = 1;
    norm_special.dtype = DType::kFloat16;
    norm_special.mask = 2;
    norm_special.zero_padding = true;
    jobs.push_back(norm_special);
    JobSpec tp = v2(3, 1, 1, 2, 2, 48, 6);                        // T = 2 (L = 1)
    tp.tp_size = 2;
    tp.mask = 1;
    tp.quant_mode = 2;
    tp.smooth_scales = true;
    jobs.push_back(tp);
    JobSpec group = v2(6, 4, 2, 4, 2, 300, 4);                    // per-group fp8, N = 2
    group.quant_mode = 3;
    group.target = DType::kFp8E4M3;
    group.smooth_scales = true;
    group.mask = 2;
    jobs.push_back(group);
    JobSpec mx = v2(6, 2, 2, 8, 3, 200, 4);
    mx.quant_mode = 4;
    mx.target = DType::kFp8E5M2;
    jobs.push_back(mx);
    JobSpec per_expert = v2(6, 4, 2, 4, 2, 64, 4);                 // static (N + E, H) scales
    per_expert.quant_mode = 1;
    per_expert.static_scales = 3;
    jobs.push_back(per_expert);
    JobSpec perf = v2(4, 1, 1, 3, 2, 32, 4);
    perf.performance_info = true;
    jobs.push_back(perf);
    JobSpec wide = v2(16, 4, 4, 12, 4, 24, 3);                   // R = 1, four shared experts
    wide.mask = 2;
    wide.routing = Routing::kDuplicates;
    wide.zero_experts = 1;
    jobs.push_back(wide);
    JobSpec strided = v2(3, 1, 1, 4, 2, 40, 6);
    strided.strided_x = true;
    strided.extra_rows = 2;
    strided.mask = 1;
    strided.copy_experts = 2;
    jobs.push_back(strided);
    JobSpec empty = v2(4, 2, 1, 2, 2, 16, 0);                     // BS = 0 everywhere
    empty.mask = 2;
    jobs.push_back(empty);
    JobSpec three = v2(8, 3, 3, 10, 3, 48, 5);                    // N = 3, R = 1
    three.mask = 1;
    three.comm_quant_mode = 2;
    jobs.push_back(three);
    JobSpec none_active = v2(4, 2, 2, 4, 2, 32, 6);               // n = 0: a mask of no token
    none_active.mask = 1;
    none_active.mask_inactive = 1.0;
    none_active.zero_padding = true;
    jobs.push_back(none_active);
    JobSpec pre = v2(4, 2, 1, 4, 2, 64, 5);                       // pre-quantized fp8 x
    pre.pre_quantized = true;
    pre.target = DType::kFp8E4M3;
    pre.mask = 2;
    pre.uneven_bs = true;
    jobs.push_back(pre);
    JobSpec w8 = v2(8, 2, 2, 12, 3, 64, 5);                       // 2 and 4 nodes under mpirun
    w8.mask = 2;
    w8.zero_experts = 1;
    w8.copy_experts = 1;
    w8.const_experts = 1;
    w8.const_alpha_form = 2;
    w8.quant_mode = 2;
    w8.smooth_scales = true;
    jobs.push_back(w8);
    // The same machinery through the aclnn V2 entry points (junk in every reserved input): quant
    // mode 2 with N = 2, entry masks with uneven BS, special experts with sharedExpertX,
    // unweighted with commQuantMode 2, AddRmsNorm (prefix mask; special experts), TP = 2 and
    // performanceInfo. The seeds pick DispatchV2/V3/V4, CombineV2/V3/V4, CombineAddRmsNorm and
    // its V2 among them (capi_v2_test checks that all eight are used).
    for (std::size_t i : {1u, 4u, 5u, 7u, 8u, 9u, 10u, 14u}) {
        JobSpec c = jobs[i];
        c.c_api = true;
        c.seed += 17;
        jobs.push_back(c);
    }
    // Split calls (send half + wait) of V2 jobs: masks, special and shared experts, TP = 2.
    for (std::size_t i : {1u, 5u, 8u, 10u, 14u}) {
        JobSpec q = jobs[i];
        q.split = true;
        q.seed += 31;
        jobs.push_back(q);
    }
    return jobs;
}

}  // namespace moedist::test_specs
