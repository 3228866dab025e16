// The A2/A3 product rules of the V2 family (docs/contract.md §10.9, §10.10): Ascend's DispatchV4 /
// CombineV4 / CombineAddRmsNorm documentation and the V2 tilings. The generic profile applies none
// of them; check_profile picks this table for V2 calls.
#include <string>

#include "core/profile.hpp"

namespace moedist::core {
namespace {

using Facts = ProfileFacts;

std::string text(int64_t v) { return std::to_string(v); }

Status require(bool ok,
               const std::string& param,
               const std::string& expected,
               const std::string& actual,
               Code code = Code::kInnerTiling) {
    return ok ? Status::Ok() : Status{code, param + " must be " + expected + ", got " + actual};
}

bool hierarchy(const Facts& f) { return f.config.comm_alg == "hierarchy"; }
bool fullmesh_v2(const Facts& f) { return f.config.comm_alg == "fullmesh_v2"; }
int64_t specials(const Facts& f) { return f.config.special_expert_num(); }
int64_t capacity(const Facts& f) { return f.config.capacity_rows(f.num_tokens, f.top_k); }
std::string quoted(const std::string& s) { return "\"" + s + "\""; }

const ProfileRule kRules[] = {
    {"V2.A3.commAlg",
     kA3Only,
     Code::kInnerTiling,
     "DispatchV4/CombineV4 documentation (commAlg, A3)",
     "commAlg in {\"\", \"fullmesh_v1\", \"fullmesh_v2\", \"hierarchy\"}",
     [](const Facts& f) {
         const std::string& a = f.config.comm_alg;
         return require(a.empty() || a == "fullmesh_v1" || a == "fullmesh_v2" || a == "hierarchy",
                        "commAlg",
                        "\"\", \"fullmesh_v1\", \"fullmesh_v2\" or \"hierarchy\"",
                        quoted(a));
     }},
    {"V2.A2.commAlg",
     kA2Only,
     Code::kInnerTiling,
     "DispatchV4/CombineV4 documentation (commAlg, A2)",
     "commAlg in {\"\", \"0\", \"fullmesh\", \"hierarchy\"}",
     [](const Facts& f) {
         const std::string& a = f.config.comm_alg;
         return require(a.empty() || a == "0" || a == "fullmesh" || a == "hierarchy",
                        "commAlg",
                        "\"\", \"0\", \"fullmesh\" or \"hierarchy\"",
                        quoted(a));
     }},
    {"V2.A3.epWorldSize",
     kA3Only,
     Code::kInnerTiling,
     "A3 V2 tiling: epWorldSize in [2, 768]",
     "epWorldSize in [2, 768]",
     [](const Facts& f) {
         const int64_t w = f.config.ep_world_size;
         return require(w >= 2 && w <= 768, "epWorldSize", "in [2, 768]", text(w));
     }},
    {"V2.A2.epWorldSize",
     kA2Only,
     Code::kInnerTiling,
     "DispatchV4 documentation (epWorldSize, A2): a multiple of 8, at most 256 (hierarchy 64)",
     "epWorldSize % 8 = 0, <= 256 (hierarchy: <= 64)",
     [](const Facts& f) {
         const int64_t w = f.config.ep_world_size, most = hierarchy(f) ? 64 : 256;
         return require(w % 8 == 0 && w <= most,
                        "epWorldSize",
                        "a multiple of 8 and <= " + text(most),
                        text(w));
     }},
    {"V2.A3.tpWorldSize",
     kA3Only,
     Code::kInnerTiling,
     "A3 V2 tiling: tpWorldSize in {0, 1, 2}; DispatchV4/CombineV4: {0, 1}",
     "tpWorldSize in {0, 1, 2} (V2/V3 entry points), {0, 1} (V4, the C++ and Python APIs)",
     [](const Facts& f) {
         const int64_t most = f.op_version >= 4 ? 1 : 2;
         return require(f.config.tp_world_size <= most,
                        "tpWorldSize",
                        "<= " + text(most) + (f.op_version >= 4 ? " (V4)" : ""),
                        text(f.config.tp_world_size));
     }},
    {"V2.A3.tpCommQuant",
     kA3Only,
     Code::kInnerTiling,
     "A3 V2 tiling: tpWorldSize = 2 needs commQuantMode = 0",
     "commQuantMode = 0 when tpWorldSize = 2",
     [](const Facts& f) {
         return require(f.config.tp_world_size < 2 || f.config.comm_quant_mode == 0,
                        "commQuantMode",
                        "0 when tpWorldSize = 2",
                        text(f.config.comm_quant_mode));
     }},
    {"V2.A2.tpWorldSize",
     kA2Only,
     Code::kInnerTiling,
     "DispatchV4 documentation (tpWorldSize, A2): no TP domain",
     "tpWorldSize in {0, 1}",
     [](const Facts& f) {
         return require(f.config.tp_world_size <= 1, "tpWorldSize", "0 or 1", text(f.config.tp_world_size));
     }},
    {"V2.sharedExpertNum",
     kA2A3,
     Code::kInnerTiling,
     "DispatchV4 documentation (sharedExpertNum): 0 or 1 without shared ranks",
     "sharedExpertNum in {0, 1} when sharedExpertRankNum = 0",
     [](const Facts& f) {
         return require(f.config.shared_expert_rank_num > 0 || f.config.shared_expert_num <= 1,
                        "sharedExpertNum",
                        "0 or 1 when sharedExpertRankNum = 0",
                        text(f.config.shared_expert_num));
     }},
    {"V2.A2.sharedExpertRankNum",
     kA2Only,
     Code::kInnerTiling,
     "DispatchV4 documentation (sharedExpertRankNum, A2): 0",
     "sharedExpertRankNum = 0",
     [](const Facts& f) {
         return require(f.config.shared_expert_rank_num == 0,
                        "sharedExpertRankNum",
                        "0",
                        text(f.config.shared_expert_rank_num));
     }},
    {"V2.A3.moeExpertNum",
     kA3Only,
     Code::kInnerTiling,
     "A3 V2 tiling: moeExpertNum in (0, 1024], localMoeExpertNum * epWorldSize <= 2048",
     "moeExpertNum <= 1024 and L * epWorldSize <= 2048",
     [](const Facts& f) {
         const int64_t e = f.config.moe_expert_num;
         const int64_t lw = f.config.local_moe_expert_num() * f.config.ep_world_size;
         if (e > 1024) return require(false, "moeExpertNum", "in [1, 1024]", text(e));
         return require(lw <= 2048,
                        "moeExpertNum",
                        "such that L * epWorldSize <= 2048 (L = moeExpertNum / MoE ranks)",
                        "L * epWorldSize = " + text(lw));
     }},
    {"V2.A2.moeExpertNum",
     kA2Only,
     Code::kInnerTiling,
     "DispatchV4 documentation (moeExpertNum, A2): at most 512, a multiple of epWorldSize",
     "moeExpertNum <= 512",
     [](const Facts& f) {
         return require(f.config.moe_expert_num <= 512,
                        "moeExpertNum",
                        "in [1, 512]",
                        text(f.config.moe_expert_num));
     }},
    {"V2.A2.constExpertNum",
     kA2Only,
     Code::kInnerTiling,
     "DispatchV4 documentation (constExpertNum, A2): 0",
     "constExpertNum = 0",
     [](const Facts& f) {
         return require(f.config.const_expert_num == 0,
                        "constExpertNum",
                        "0",
                        text(f.config.const_expert_num));
     }},
    {"V2.quantMode",
     kA2A3,
     Code::kInnerTiling,
     "DispatchV4 documentation (quantMode, A2/A3): 0 or 2",
     "quantMode in {0, 2}",
     [](const Facts& f) {
         return require(f.combine || f.config.quant() == QuantMode::kNone ||
                            f.config.quant() == QuantMode::kPerToken,
                        "quantMode",
                        "0 or 2",
                        text(f.config.quant_mode));
     }},
    {"V2.A3.scales",
     kA3Only,
     Code::kInnerTiling,
     "A3 V2 tiling: scales is given exactly when quantMode != 0",
     "scales given <=> quantMode != 0",
     [](const Facts& f) {
         const bool want = f.config.quant() != QuantMode::kNone;
         return require(f.combine || f.has_scales == want,
                        "scales",
                        want ? "given when quantMode != 0" : "null when quantMode = 0",
                        f.has_scales ? "a tensor" : "nullptr");
     }},
    {"V2.A2.commQuantMode",
     kA2Only,
     Code::kInnerTiling,
     "CombineV4 documentation (commQuantMode, A2): 2 only with commAlg \"hierarchy\"",
     "commQuantMode = 0 unless commAlg = \"hierarchy\"",
     [](const Facts& f) {
         return require(f.config.comm_quant_mode == 0 || hierarchy(f),
                        "commQuantMode",
                        "0 unless commAlg = \"hierarchy\"",
                        text(f.config.comm_quant_mode));
     }},
    {"V2.globalBs",
     kA2A3,
     Code::kInnerTiling,
     "A3 V2 tiling: globalBs = 0, or >= BS * epWorldSize and a multiple of epWorldSize",
     "globalBs = 0 or (>= BS * epWorldSize and % epWorldSize = 0)",
     [](const Facts& f) {
         const int64_t g = f.config.global_bs, w = f.config.ep_world_size;
         return require(g == 0 || (g >= f.num_tokens * w && g % w == 0),
                        "globalBs",
                        "0, or >= BS * epWorldSize = " + text(f.num_tokens * w) +
                            " and a multiple of epWorldSize",
                        text(g));
     }},
    {"V2.A3.globalBsMask",
     kA3Only,
     Code::kInnerTiling,
     "A3 V2 tiling: a globalBs above BS * epWorldSize forbids xActiveMask",
     "no xActiveMask when globalBs > BS * epWorldSize",
     [](const Facts& f) {
         const bool above = f.config.global_bs > f.num_tokens * f.config.ep_world_size;
         return require(!above || f.mask_ndim == 0,
                        "xActiveMask",
                        "null when globalBs > BS * epWorldSize",
                        "a tensor");
     }},
    {"V2.A3.H",
     kA3Only,
     Code::kInnerTiling,
     "A3 V2 tiling: H in [1024, 8192]",
     "H in [1024, 8192]",
     [](const Facts& f) {
         return require(f.hidden >= 1024 && f.hidden <= 8192, "H", "in [1024, 8192]", text(f.hidden));
     }},
    {"V2.A2.H",
     kA2Only,
     Code::kInnerTiling,
     "DispatchV4 documentation (H, A2): a multiple of 32, at most 7168 (hierarchy 10240)",
     "H % 32 = 0, H <= 7168 (hierarchy: 10240)",
     [](const Facts& f) {
         const int64_t most = hierarchy(f) ? 10240 : 7168;
         return require(f.hidden % 32 == 0 && f.hidden <= most,
                        "H",
                        "a multiple of 32 and <= " + text(most),
                        text(f.hidden));
     }},
    {"V2.A3.BS",
     kA3Only,
     Code::kInnerTiling,
     "A3 V2 tiling: BS in [1, 512]",
     "BS in [1, 512]",
     [](const Facts& f) {
         return require(f.num_tokens >= 1 && f.num_tokens <= 512, "BS", "in [1, 512]", text(f.num_tokens));
     }},
    {"V2.A2.BS",
     kA2Only,
     Code::kInnerTiling,
     "DispatchV4 documentation (BS, A2): at most 256",
     "BS <= 256",
     [](const Facts& f) {
         return require(f.num_tokens <= 256, "BS", "<= 256", text(f.num_tokens));
     }},
    {"V2.K",
     kA2A3,
     Code::kInnerTiling,
     "A3 V2 tiling: K in [1, min(16, E')]; A2: K <= 16",
     "K <= 16",
     [](const Facts& f) { return require(f.top_k <= 16, "K", "<= 16", text(f.top_k)); }},
    {"V2.A3.assistInfo",
     kA3Only,
     Code::kInnerTiling,
     "CombineV4 documentation (assistInfoForCombine, A3): A * 128 entries",
     "combine: assistInfoForCombine dim 0 >= 128 * A",
     [](const Facts& f) {
         const int64_t least = 128 * capacity(f);
         return require(!f.combine || f.assist_len < 0 || f.assist_len >= least,
                        "assistInfoForCombine dim 0",
                        ">= 128 * A = " + text(least),
                        text(f.assist_len));
     }},
    {"V2.A3.expertScales",
     kA3Only,
     Code::kInnerTiling,
     "CombineV4 documentation (expertScales, A3): (BS, K); an empty one is A2/950's",
     "combine: expertScales (BS, K) (not empty)",
     [](const Facts& f) {
         return require(!f.combine || f.weighted, "expertScales", "(BS, K)", "an empty tensor");
     }},
    {"V2.tpRecvCounts",
     kA2A3,
     Code::kNullptr,
     "DispatchV4 documentation: tpRecvCountsOut is a required output",
     "dispatch: tpRecvCounts given",
     [](const Facts& f) {
         return require(f.combine || f.has_tp_counts,
                        "tpRecvCounts",
                        "non-null",
                        "nullptr",
                        Code::kNullptr);
     }},
    {"V2.A3.reserved",
     kA3Only,
     Code::kInnerTiling,
     "CombineV4 documentation (A3): activationScale, weightScale and groupList are reserved: null",
     "combine: activationScale, weightScale, groupList null",
     [](const Facts& f) {
         return require(!f.reserved_given,
                        "activationScale, weightScale and groupList",
                        "null",
                        "a tensor");
     }},
    {"V2.A3.addRmsNormDtype",
     kA3Only,
     Code::kInvalidParam,
     "CombineAddRmsNorm documentation (A3): bfloat16",
     "AddRmsNorm: bfloat16",
     [](const Facts& f) {
         return require(!f.add_rms_norm || f.x_dtype == DType::kBFloat16,
                        "expandX dtype",
                        "bfloat16 for CombineAddRmsNorm",
                        dtype_name(f.x_dtype),
                        Code::kInvalidParam);
     }},
    {"V2.fullmesh_v2",
     kA3Only,
     Code::kInnerTiling,
     "DispatchV4 documentation (commAlg \"fullmesh_v2\"): tpWorldSize <= 1, no 2-D mask, no special "
     "experts, equal BS, BS <= 256, K <= 12",
     "commAlg \"fullmesh_v2\": T <= 1, no (BS, K) mask, Z + C + Q = 0, globalBs = 0, BS <= 256, "
     "K <= 12",
     [](const Facts& f) {
         if (!fullmesh_v2(f)) return Status::Ok();
         const std::string why = " with commAlg \"fullmesh_v2\"";
         if (f.config.tp_world_size > 1)
             return require(false, "tpWorldSize", "<= 1" + why, text(f.config.tp_world_size));
         if (f.mask_ndim == 2) return require(false, "xActiveMask", "1-D" + why, "(BS, K)");
         if (specials(f) > 0)
             return require(false, "zeroExpertNum + copyExpertNum + constExpertNum", "0" + why, text(specials(f)));
         if (f.config.global_bs != 0)
             return require(false, "globalBs", "0 (equal BS)" + why, text(f.config.global_bs));
         if (f.num_tokens > 256) return require(false, "BS", "<= 256" + why, text(f.num_tokens));
         return require(f.top_k <= 12, "K", "<= 12" + why, text(f.top_k));
     }},
    {"V2.hierarchy",
     kA2A3,
     Code::kInnerTiling,
     "DispatchV4/CombineV4 documentation (commAlg \"hierarchy\"): expertScales and expandScales, "
     "no shared ranks, no TP, no mask, no special experts, no performanceInfo",
     "commAlg \"hierarchy\": expertScales and expandScales given, S = 0, T <= 1, no mask, "
     "Z + C + Q = 0, no performanceInfo",
     [](const Facts& f) {
         if (!hierarchy(f)) return Status::Ok();
         const std::string why = " with commAlg \"hierarchy\"";
         if (!f.combine && (!f.has_expert_scales || !f.has_expand_scales))
             return require(false, "expertScales and expandScales", "given" + why, "nullptr", Code::kNullptr);
         if (f.config.shared_expert_rank_num > 0)
             return require(false, "sharedExpertRankNum", "0" + why, text(f.config.shared_expert_rank_num));
         if (f.config.tp_world_size > 1)
             return require(false, "tpWorldSize", "<= 1" + why, text(f.config.tp_world_size));
         if (f.mask_ndim != 0) return require(false, "xActiveMask", "null" + why, "a tensor");
         if (specials(f) > 0)
             return require(false, "zeroExpertNum + copyExpertNum + constExpertNum", "0" + why, text(specials(f)));
         return require(!f.has_performance_info, "performanceInfo", "null" + why, "a tensor");
     }},
};

}  // namespace

std::span<const ProfileRule> profile_rules_v2() { return kRules; }

}  // namespace moedist::core
