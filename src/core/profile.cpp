#include "core/profile.hpp"

#include <string>

#include "util/env.hpp"

namespace moedist::core {
namespace {

using Facts = ProfileFacts;

constexpr int64_t kMiB = int64_t{1} << 20;

std::string text(int64_t v) { return std::to_string(v); }

Status broke(Code code,
             const std::string& param,
             const std::string& expected,
             const std::string& actual) {
    return {code, param + " must be " + expected + ", got " + actual};
}

Status require(bool ok,
               const std::string& param,
               const std::string& expected,
               const std::string& actual,
               Code code = Code::kInnerTiling) {
    return ok ? Status::Ok() : broke(code, param, expected, actual);
}

int64_t local_moe(const Facts& f) { return f.config.local_moe_expert_num(); }
int64_t max_bs(const Facts& f) { return f.config.max_bs(f.num_tokens); }
int64_t min_local_k(const Facts& f) { return local_moe(f) < f.top_k ? local_moe(f) : f.top_k; }

int64_t ceil_mb(__int128 bytes) {
    const __int128 mb = (bytes + kMiB - 1) / kMiB;
    return mb > INT64_MAX ? INT64_MAX : static_cast<int64_t>(mb);
}

// Seed, HCCL_BUFFSIZE (A2): >= 2 * (BS * W * min(L, K) * H * sizeof(uint16) + 2 MB); with
// HCCL_INTRA_PCIE_ENABLE=1 and HCCL_INTRA_ROCE_ENABLE=0:
// >= E * BS * (H * sizeof(x) + 4 * ((K + 7) / 8 * 8) * sizeof(uint32)) + 4 MB + 100 MB.
int64_t a2_needed_mb(const Facts& f) {
    const __int128 bs = max_bs(f), h = f.hidden, k = f.top_k;
    if (f.hccl.intra_pcie) {
        const __int128 row =
            h * static_cast<__int128>(dtype_size(f.x_dtype)) + 4 * ((k + 7) / 8 * 8) * 4;
        return ceil_mb(static_cast<__int128>(f.config.moe_expert_num) * bs * row + 104 * kMiB);
    }
    return ceil_mb(2 * (bs * f.config.ep_world_size * min_local_k(f) * h * 2 + 2 * kMiB));
}

// Seed, HCCL_BUFFSIZE (A3): >= 2 and 1024^2 * (HCCL_BUFFSIZE - 2) / 2 >= BS * 2 * (H + 128) *
// (W * L + K + 1), L the MoE ranks' local expert count. It implies the A3 V1 tiling's window rule
// W * maxBs * H * 2 * 2 * L <= HCCL_BUFFSIZE (4 * maxBs * (H + 128) * (W * L + K + 1) is larger).
int64_t a3_needed_mb(const Facts& f) {
    const __int128 need =
        static_cast<__int128>(max_bs(f)) * 2 * (f.hidden + 128) *
        (static_cast<__int128>(f.config.ep_world_size) * local_moe(f) + f.top_k + 1);
    return 2 + ceil_mb(2 * need);
}

Status buffsize_at_least(const Facts& f, int64_t needed_mb, const std::string& formula) {
    if (f.hccl.buffsize_mb < 0) {
        return broke(Code::kInnerTiling,
                     "HCCL_BUFFSIZE",
                     "a positive whole number of MB",
                     "an unparsable value");
    }
    return require(f.hccl.buffsize_mb >= needed_mb,
                   "HCCL_BUFFSIZE",
                   ">= " + text(needed_mb) + " MB (" + formula + ")",
                   text(f.hccl.buffsize_mb) + " MB");
}

bool in_set(int64_t v, std::initializer_list<int64_t> set) {
    for (int64_t s : set)
        if (v == s) return true;
    return false;
}

// The table. Order: attributes, dtypes, shapes, buffers (the first failure is reported).
const ProfileRule kRules[] = {
    {"A2.epWorldSize",
     kA2Only,
     Code::kInnerTiling,
     "Ascend's V1 documentation (epWorldSize, A2): 取值支持16、32、64",
     "epWorldSize in {16, 32, 64}",
     [](const Facts& f) {
         return require(in_set(f.config.ep_world_size, {16, 32, 64}),
                        "epWorldSize",
                        "16, 32 or 64",
                        text(f.config.ep_world_size));
     }},
    {"A3.epWorldSize",
     kA3Only,
     Code::kInnerTiling,
     "Ascend's V1 documentation (epWorldSize, A3); A3 V1 tiling: W%8 == 0 and (256%W == 0 or "
     "W%144 == 0)",
     "epWorldSize in {8, 16, 32, 64, 128, 144, 256, 288}",
     [](const Facts& f) {
         return require(in_set(f.config.ep_world_size, {8, 16, 32, 64, 128, 144, 256, 288}),
                        "epWorldSize",
                        "one of 8, 16, 32, 64, 128, 144, 256, 288",
                        text(f.config.ep_world_size));
     }},
    {"moeExpertNum",
     kA2A3,
     Code::kInnerTiling,
     "Ascend's V1 documentation (moeExpertNum): 取值范围(0, 512]; A3 V1 tiling: E in (0, 512]",
     "moeExpertNum in [1, 512]",
     [](const Facts& f) {
         return require(f.config.moe_expert_num <= 512,
                        "moeExpertNum",
                        "in [1, 512]",
                        text(f.config.moe_expert_num));
     }},
    {"A2.localExpertNum",
     kA2Only,
     Code::kInnerTiling,
     "Ascend's V1 documentation (moeExpertNum, A2): moeExpertNum / (epWorldSize - "
     "sharedExpertRankNum) <= 24; the same documentation lifts it under HCCL_INTRA_PCIE_ENABLE",
     "moeExpertNum / (epWorldSize - sharedExpertRankNum) <= 24, unless HCCL_INTRA_PCIE_ENABLE=1 "
     "and "
     "HCCL_INTRA_ROCE_ENABLE=0",
     [](const Facts& f) {
         return require(f.hccl.intra_pcie || local_moe(f) <= 24,
                        "moeExpertNum / (epWorldSize - sharedExpertRankNum)",
                        "<= 24",
                        text(local_moe(f)));
     }},
    {"A2.tpWorldSize",
     kA2Only,
     Code::kInnerTiling,
     "Ascend's V1 documentation (tpWorldSize, A2): 当前版本不支持，传0即可",
     "tpWorldSize in {0, 1} (no TP domain)",
     [](const Facts& f) {
         return require(f.config.tp_world_size <= 1,
                        "tpWorldSize",
                        "0 (no TP domain)",
                        text(f.config.tp_world_size));
     }},
    {"A2.groupTp",
     kA2Only,
     Code::kNullptr,
     "op_api CheckNotNull (A2): groupTp must be \"\" (Ascend's A3 V1 tiling)",
     "groupTp = \"\"",
     [](const Facts& f) {
         return require(
             f.group_tp.empty(), "groupTp", "\"\"", "\"" + f.group_tp + "\"", Code::kNullptr);
     }},
    {"A2.sharedExpertNum",
     kA2Only,
     Code::kInnerTiling,
     "Ascend's V1 documentation (sharedExpertNum, A2): 当前版本不支持，传0即可",
     "sharedExpertNum = 0",
     [](const Facts& f) {
         return require(f.config.shared_expert_num == 0,
                        "sharedExpertNum",
                        "0",
                        text(f.config.shared_expert_num));
     }},
    {"A2.sharedExpertRankNum",
     kA2Only,
     Code::kInnerTiling,
     "Ascend's V1 documentation (sharedExpertRankNum, A2): 当前版本不支持，传0即可",
     "sharedExpertRankNum = 0",
     [](const Facts& f) {
         return require(f.config.shared_expert_rank_num == 0,
                        "sharedExpertRankNum",
                        "0",
                        text(f.config.shared_expert_rank_num));
     }},
    {"A3.sharedExpertNum",
     kA3Only,
     Code::kInnerTiling,
     "Ascend's V1 documentation (sharedExpertNum, A3): 当前版本仅支持传1; A3 V1 tiling: sharedExpertNum "
     "== 1",
     "sharedExpertNum = 1",
     [](const Facts& f) {
         return require(f.config.shared_expert_num == 1,
                        "sharedExpertNum",
                        "1",
                        text(f.config.shared_expert_num));
     }},
    {"A3.sharedExpertRankNum",
     kA3Only,
     Code::kInnerTiling,
     "A3 V1 tiling: S in [0, W), W % S == 0 if S > 0 (Ascend's A3 V1 tiling)",
     "epWorldSize % sharedExpertRankNum = 0 when sharedExpertRankNum > 0",
     [](const Facts& f) {
         const int64_t s = f.config.shared_expert_rank_num;
         return require(s == 0 || f.config.ep_world_size % s == 0,
                        "sharedExpertRankNum",
                        "a divisor of epWorldSize = " + text(f.config.ep_world_size),
                        text(s));
     }},
    {"quantMode",
     kA2A3,
     Code::kInnerTiling,
     "Ascend's V1 documentation (quantMode, A2/A3): 支持quantMode取值为0或2; A3 V1 tiling: quantMode "
     "in [0, 2], != "
     "1",
     "quantMode in {0, 2}",
     [](const Facts& f) {
         return require(f.combine || f.config.quant() == QuantMode::kNone ||
                            f.config.quant() == QuantMode::kPerToken,
                        "quantMode",
                        "0 or 2",
                        text(f.config.quant_mode));
     }},
    {"x.dtype",
     kA2A3,
     Code::kInvalidParam,
     "Ascend's V1 documentation (x, A2/A3): 数据类型支持FLOAT16、BFLOAT16",
     "x dtype fp16 or bf16 (no pre-quantized x)",
     [](const Facts& f) {
         const bool ok = f.x_dtype == DType::kFloat16 || f.x_dtype == DType::kBFloat16;
         return require(ok,
                        f.combine ? "expandX dtype" : "x dtype",
                        "float16 or bfloat16",
                        dtype_name(f.x_dtype),
                        Code::kInvalidParam);
     }},
    {"expandX.dtype",
     kA2A3,
     Code::kInvalidParam,
     "Ascend's V1 documentation (expandX, A2/A3): 数据类型支持FLOAT16、BFLOAT16、INT8",
     "expandX dtype fp16, bf16 or int8",
     [](const Facts& f) {
         const DType d = f.expand_x_dtype;
         const bool ok = d == DType::kFloat16 || d == DType::kBFloat16 || d == DType::kInt8;
         return require(
             ok, "expandX dtype", "float16, bfloat16 or int8", dtype_name(d), Code::kInvalidParam);
     }},
    {"globalBs",
     kA2A3,
     Code::kInnerTiling,
     "Ascend's V1 documentation (globalBs, A2/A3): 0, BS*epWorldSize or maxBs*epWorldSize (A2 also "
     "256*epWorldSize); A3 V1 tiling: 0, or >= BS*W and divisible by W",
     "globalBs = 0, or a multiple of epWorldSize >= BS * epWorldSize",
     [](const Facts& f) {
         const int64_t g = f.config.global_bs, w = f.config.ep_world_size;
         const bool ok = g == 0 || (g % w == 0 && g / w >= f.num_tokens);
         return require(ok,
                        "globalBs",
                        "0 or a multiple of epWorldSize = " + text(w) +
                            " that is >= BS * epWorldSize = " + text(f.num_tokens * w),
                        text(g));
     }},
    {"A2.H",
     kA2Only,
     Code::kInnerTiling,
     "Ascend's V1 documentation (H, A2): 取值范围(0, 7168]，且保证是32的整数倍",
     "H in [32, 7168] and a multiple of 32",
     [](const Facts& f) {
         return require(f.hidden <= 7168 && f.hidden % 32 == 0,
                        "H",
                        "a multiple of 32 in [32, 7168]",
                        text(f.hidden));
     }},
    {"A3.H",
     kA3Only,
     Code::kInnerTiling,
     "A3 V1 tiling, dispatch and combine: H == 7168 (Ascend's A3 V1 tiling)",
     "H = 7168",
     [](const Facts& f) { return require(f.hidden == 7168, "H", "7168", text(f.hidden)); }},
    {"A2.BS",
     kA2Only,
     Code::kInnerTiling,
     "Ascend's V1 documentation (BS, A2): 取值范围为0 < BS ≤ 256",
     "BS in [1, 256]",
     [](const Facts& f) {
         return require(
             f.num_tokens >= 1 && f.num_tokens <= 256, "BS", "in [1, 256]", text(f.num_tokens));
     }},
    {"A3.BS",
     kA3Only,
     Code::kInnerTiling,
     "A3 V1 tiling: x is 2D with BS in [1, 512] (Ascend's A3 V1 tiling)",
     "BS in [1, 512]",
     [](const Facts& f) {
         return require(
             f.num_tokens >= 1 && f.num_tokens <= 512, "BS", "in [1, 512]", text(f.num_tokens));
     }},
    {"A2.K",
     kA2Only,
     Code::kInnerTiling,
     "Ascend's V1 documentation (K, A2): 取值范围为0 < K ≤ 16",
     "K in [1, 16]",
     [](const Facts& f) { return require(f.top_k <= 16, "K", "in [1, 16]", text(f.top_k)); }},
    {"A3.K",
     kA3Only,
     Code::kInnerTiling,
     "A3 V1 tiling: K in (0, 8] (Ascend's A3 V1 tiling)",
     "K in [1, 8]",
     [](const Facts& f) { return require(f.top_k <= 8, "K", "in [1, 8]", text(f.top_k)); }},
    {"A2.scales.pcie",
     kA2Only,
     Code::kInnerTiling,
     "Ascend's V1 documentation (scales, A2): "
     "HCCL_INTRA_PCIE_ENABLE为1且HCCL_INTRA_ROCE_ENABLE为0时，要求传nullptr",
     "scales = nullptr when HCCL_INTRA_PCIE_ENABLE=1 and HCCL_INTRA_ROCE_ENABLE=0",
     [](const Facts& f) {
         return require(!(f.hccl.intra_pcie && f.has_scales),
                        "scales",
                        "nullptr with HCCL_INTRA_PCIE_ENABLE=1 and HCCL_INTRA_ROCE_ENABLE=0",
                        "a tensor");
     }},
    {"A3.xActiveMask",
     kA3Only,
     Code::kInnerTiling,
     "A3 V1 tiling: xActiveMask must be null (Ascend's A3 V1 tiling)",
     "xActiveMask = nullptr",
     [](const Facts& f) {
         return require(!f.has_x_active_mask, "xActiveMask", "nullptr", "a tensor");
     }},
    {"A3.expandIdx",
     kA3Only,
     Code::kInnerTiling,
     "A3 V1 tiling: combine's expandIdx is 1D (BS*K); the A2 tiling checks only its element "
     "count, so a (BS, K) tensor passes there",
     "combine's expandIdx 1-D",
     [](const Facts& f) {
         return require(!f.combine || f.expand_idx_ndim == 1,
                        "expandIdx dims",
                        "1 (BS*K)",
                        text(f.expand_idx_ndim));
     }},
    {"A3.tpCounts",
     kA3Only,
     Code::kInnerTiling,
     "A3 V1 tiling: tpRecvCounts is 1D with length == tp (Ascend's A3 V1 tiling)",
     "tpRecvCounts / tpSendCounts dim 0 = 2 when tpWorldSize = 2",
     [](const Facts& f) {
         return require(f.tp_counts_len < 0 || f.tp_counts_len == 2,
                        f.combine ? "tpSendCounts dim 0" : "tpRecvCounts dim 0",
                        "tpWorldSize = 2",
                        text(f.tp_counts_len));
     }},
    {"A2.HCCL_BUFFSIZE",
     kA2Only,
     Code::kInnerTiling,
     "Ascend's V1 documentation (HCCL_BUFFSIZE, A2; 200 MB default; HCCL_INTRA_PCIE_ENABLE)",
     "HCCL_BUFFSIZE MB >= 2 * (maxBs * W * min(L, K) * H * 2 + 2 MB); with "
     "HCCL_INTRA_PCIE_ENABLE=1 and "
     "HCCL_INTRA_ROCE_ENABLE=0: >= E * maxBs * (H * sizeof(x) + 16 * ceil8(K)) + 104 MB",
     [](const Facts& f) {
         return buffsize_at_least(f,
                                  a2_needed_mb(f),
                                  f.hccl.intra_pcie ? "E*maxBs*(H*sizeof(x)+16*ceil8(K)) + 104 MB"
                                                    : "2*(maxBs*W*min(L,K)*H*2 + 2 MB)");
     }},
    {"A3.HCCL_BUFFSIZE",
     kA3Only,
     Code::kInnerTiling,
     "Ascend's V1 documentation (HCCL_BUFFSIZE, A3); implies the A3 V1 tiling window rule "
     "W*maxBs*H*2*2*L <= HCCL_BUFFSIZE",
     "HCCL_BUFFSIZE >= 2 and 2^20 * (HCCL_BUFFSIZE - 2) / 2 >= maxBs * 2 * (H + 128) * (W * L + K "
     "+ 1)",
     [](const Facts& f) {
         return buffsize_at_least(f, a3_needed_mb(f), "2 + 2*maxBs*2*(H+128)*(W*L+K+1) bytes");
     }},
};

}  // namespace

std::span<const ProfileRule> profile_rules(Api api) {
    return api == Api::kV2 ? profile_rules_v2() : std::span<const ProfileRule>(kRules);
}

Status resolve_soc(const MoeConfig& config, Soc* soc) {
    if (config.soc) {
        *soc = *config.soc;
        return Status::Ok();
    }
    const util::SocSetting& setting = util::soc_setting();
    if (!setting.soc) {
        return {Code::kInnerTiling,
                "MOEDIST_SOC must be generic, A2 or A3, got '" + setting.text + "'"};
    }
    *soc = *setting.soc;
    return Status::Ok();
}

Status check_profile(Soc soc, const ProfileFacts& facts) {
    for (const ProfileRule& rule : profile_rules(facts.config.api)) {
        if ((rule.profiles & profile_bit(soc)) == 0) continue;
        if (Status s = rule.check(facts); !s.ok()) {
            return {s.code(),
                    s.message() + " (MOEDIST_SOC=" + soc_name(soc) + ", rule " + rule.id + ")"};
        }
    }
    return Status::Ok();
}

int64_t hccl_buffsize_needed_mb(Soc soc, const ProfileFacts& facts) {
    if (facts.config.v2()) return 0;  // the V2 family has no buffer rule of its own
    if (soc == Soc::kA2) return a2_needed_mb(facts);
    if (soc == Soc::kA3) return a3_needed_mb(facts);
    return 0;
}

}  // namespace moedist::core
