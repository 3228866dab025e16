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
    return jobs;
}

}  // namespace moedist::test_specs
