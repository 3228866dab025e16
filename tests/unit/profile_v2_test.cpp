// The V2 family's product rules (src/core/profile_v2.cpp), one case per rule: accepted at the
// boundary, rejected past it with the rule's code and a message naming the parameter and the
// rule; the generic profile takes every rejected case.
#include "core/profile.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

namespace {

using moedist::Api;
using moedist::Code;
using moedist::DType;
using moedist::Soc;
using moedist::core::ProfileFacts;

// An A3 V2 scene: W 16 with two shared ranks holding two shared experts (R = 1), E 14 (L = 1),
// BS 8, H 7168, K 8, torch_npu's V4 call. A MoE rank: A = 8·16·1 = 128.
ProfileFacts a3_base() {
    ProfileFacts f;
    f.config.api = Api::kV2;
    f.config.ep_world_size = 16;
    f.config.ep_rank_id = 2;
    f.config.shared_expert_rank_num = 2;
    f.config.shared_expert_num = 2;
    f.config.moe_expert_num = 14;
    f.num_tokens = 8;
    f.hidden = 7168;
    f.top_k = 8;
    f.assist_len = 128 * 128;
    return f;
}

// An A2 V2 scene: W 16, E 16, no shared ranks, BS 8, H 7168, K 8.
ProfileFacts a2_base() {
    ProfileFacts f;
    f.config.api = Api::kV2;
    f.config.ep_world_size = 16;
    f.config.moe_expert_num = 16;
    f.config.shared_expert_num = 1;
    f.num_tokens = 8;
    f.hidden = 7168;
    f.top_k = 8;
    return f;
}

using Mutation = std::function<void(ProfileFacts&)>;

struct RuleCase {
    const char* rule;
    Soc soc;
    Code code;
    const char* param;
    std::vector<Mutation> accepted;
    std::vector<Mutation> rejected;
};

std::vector<RuleCase> cases() {
    return {
        {"V2.A3.commAlg", Soc::kA3, Code::kInnerTiling, "commAlg",
         {[](auto& f) { f.config.comm_alg = "fullmesh_v1"; },
          [](auto& f) { f.config.comm_alg = "fullmesh_v2"; }},
         {[](auto& f) { f.config.comm_alg = "fullmesh"; }, [](auto& f) { f.config.comm_alg = "0"; }}},
        {"V2.A2.commAlg", Soc::kA2, Code::kInnerTiling, "commAlg",
         {[](auto& f) { f.config.comm_alg = "0"; }, [](auto& f) { f.config.comm_alg = "fullmesh"; }},
         {[](auto& f) { f.config.comm_alg = "fullmesh_v1"; }}},
        {"V2.A3.epWorldSize", Soc::kA3, Code::kInnerTiling, "epWorldSize",
         {[](auto& f) { f.config.ep_world_size = 768, f.config.moe_expert_num = 766; }},
         {[](auto& f) { f.config.ep_world_size = 770, f.config.moe_expert_num = 768; }}},
        {"V2.A2.epWorldSize", Soc::kA2, Code::kInnerTiling, "epWorldSize",
         {[](auto& f) { f.config.ep_world_size = 256, f.config.moe_expert_num = 256; },
          [](auto& f) {
              f.config.ep_world_size = 64, f.config.moe_expert_num = 64,
              f.config.comm_alg = "hierarchy", f.has_expert_scales = f.has_expand_scales = true;
          }},
         {[](auto& f) { f.config.ep_world_size = 12, f.config.moe_expert_num = 12; },
          [](auto& f) {
              f.config.ep_world_size = 128, f.config.moe_expert_num = 128,
              f.config.comm_alg = "hierarchy", f.has_expert_scales = f.has_expand_scales = true;
          }}},
        {"V2.A3.tpWorldSize", Soc::kA3, Code::kInnerTiling, "tpWorldSize",
         {[](auto& f) { f.config.tp_world_size = 2, f.op_version = 3; },
          [](auto& f) { f.config.tp_world_size = 1; }},
         {[](auto& f) { f.config.tp_world_size = 2; }}},
        {"V2.A3.tpCommQuant", Soc::kA3, Code::kInnerTiling, "commQuantMode",
         {[](auto& f) { f.config.tp_world_size = 2, f.op_version = 2; },
          [](auto& f) { f.config.comm_quant_mode = 2; }},
         {[](auto& f) { f.config.tp_world_size = 2, f.op_version = 2, f.config.comm_quant_mode = 2; }}},
        {"V2.A2.tpWorldSize", Soc::kA2, Code::kInnerTiling, "tpWorldSize",
         {[](auto& f) { f.config.tp_world_size = 1; }},
         {[](auto& f) { f.config.tp_world_size = 2, f.op_version = 2; }}},
        {"V2.sharedExpertNum", Soc::kA2, Code::kInnerTiling, "sharedExpertNum",
         {[](auto& f) { f.config.shared_expert_num = 0; }},
         {[](auto& f) { f.config.shared_expert_num = 2; }}},
        {"V2.A2.sharedExpertRankNum", Soc::kA2, Code::kInnerTiling, "sharedExpertRankNum",
         {[](auto& f) { f.config.shared_expert_rank_num = 0; }},
         {[](auto& f) {
             f.config.shared_expert_rank_num = 8, f.config.moe_expert_num = 8;
         }}},
        {"V2.A3.moeExpertNum", Soc::kA3, Code::kInnerTiling, "moeExpertNum",
         {[](auto& f) { f.config.moe_expert_num = 14 * 73; }},  // L 73: 73 * 16 = 1168
         {[](auto& f) { f.config.moe_expert_num = 14 * 74; },   // 1036 > 1024
          [](auto& f) {  // 16 MoE ranks of W 256 with L 9: L·W = 2304
              f.config.ep_world_size = 256, f.config.shared_expert_rank_num = 240,
              f.config.moe_expert_num = 16 * 9;  // L 9 · 256 = 2304
          }}},
        {"V2.A2.moeExpertNum", Soc::kA2, Code::kInnerTiling, "moeExpertNum",
         {[](auto& f) { f.config.moe_expert_num = 512; }},
         {[](auto& f) { f.config.moe_expert_num = 528; }}},
        {"V2.A2.constExpertNum", Soc::kA2, Code::kInnerTiling, "constExpertNum",
         {[](auto& f) { f.config.zero_expert_num = 2, f.config.copy_expert_num = 1; }},
         {[](auto& f) { f.config.const_expert_num = 1; }}},
        {"V2.quantMode", Soc::kA3, Code::kInnerTiling, "quantMode",
         {[](auto& f) { f.config.quant_mode = 2, f.has_scales = true; }},
         {[](auto& f) { f.config.quant_mode = 3, f.has_scales = true; },
          [](auto& f) { f.config.quant_mode = 1, f.has_scales = true; }}},
        {"V2.A3.scales", Soc::kA3, Code::kInnerTiling, "scales",
         {[](auto& f) { f.combine = true, f.has_scales = true; }},
         {[](auto& f) { f.has_scales = true; }, [](auto& f) { f.config.quant_mode = 2; }}},
        {"V2.A2.commQuantMode", Soc::kA2, Code::kInnerTiling, "commQuantMode",
         {[](auto& f) {
             f.config.comm_quant_mode = 2, f.config.comm_alg = "hierarchy",
             f.has_expert_scales = f.has_expand_scales = true;
         }},
         {[](auto& f) { f.config.comm_quant_mode = 2; }}},
        {"V2.globalBs", Soc::kA3, Code::kInnerTiling, "globalBs",
         {[](auto& f) { f.config.global_bs = 8 * 16; }, [](auto& f) { f.config.global_bs = 32 * 16; }},
         {[](auto& f) { f.config.global_bs = 8 * 16 - 16; }, [](auto& f) { f.config.global_bs = 8 * 16 + 1; }}},
        {"V2.A3.globalBsMask", Soc::kA3, Code::kInnerTiling, "xActiveMask",
         {[](auto& f) { f.config.global_bs = 8 * 16, f.mask_ndim = 2; }},
         {[](auto& f) { f.config.global_bs = 9 * 16, f.mask_ndim = 1; }}},
        {"V2.A3.H", Soc::kA3, Code::kInnerTiling, "H",
         {[](auto& f) { f.hidden = 1024; }, [](auto& f) { f.hidden = 8192; }},
         {[](auto& f) { f.hidden = 1023; }, [](auto& f) { f.hidden = 8193; }}},
        {"V2.A2.H", Soc::kA2, Code::kInnerTiling, "H",
         {[](auto& f) { f.hidden = 7168; },
          [](auto& f) {
              f.hidden = 10240, f.config.comm_alg = "hierarchy",
              f.has_expert_scales = f.has_expand_scales = true;
          }},
         {[](auto& f) { f.hidden = 7200; }, [](auto& f) { f.hidden = 1000; }}},
        {"V2.A3.BS", Soc::kA3, Code::kInnerTiling, "BS",
         {[](auto& f) { f.num_tokens = 512; }, [](auto& f) { f.num_tokens = 1; }},
         {[](auto& f) { f.num_tokens = 513; }, [](auto& f) { f.num_tokens = 0; }}},
        {"V2.A2.BS", Soc::kA2, Code::kInnerTiling, "BS",
         {[](auto& f) { f.num_tokens = 256; }},
         {[](auto& f) { f.num_tokens = 257; }}},
        {"V2.K", Soc::kA3, Code::kInnerTiling, "K",
         {[](auto& f) { f.top_k = 14; }},
         {[](auto& f) { f.top_k = 17; }}},
        {"V2.A3.assistInfo", Soc::kA3, Code::kInnerTiling, "assistInfoForCombine dim 0",
         {[](auto& f) { f.combine = true, f.assist_len = 128 * 128; },
          [](auto& f) { f.assist_len = 3 * 128; }},  // dispatch: 3·A is enough
         {[](auto& f) { f.combine = true, f.assist_len = 128 * 128 - 1; }}},
        {"V2.A3.expertScales", Soc::kA3, Code::kInnerTiling, "expertScales",
         {[](auto& f) { f.combine = true; }},
         {[](auto& f) { f.combine = true, f.weighted = false; }}},
        {"V2.tpRecvCounts", Soc::kA2, Code::kNullptr, "tpRecvCounts",
         {[](auto& f) { f.combine = true, f.has_tp_counts = false; }},
         {[](auto& f) { f.has_tp_counts = false; }}},
        {"V2.A3.reserved", Soc::kA3, Code::kInnerTiling, "activationScale, weightScale and groupList",
         {[](auto& f) { f.reserved_given = false; }},
         {[](auto& f) { f.combine = true, f.reserved_given = true; }}},
        {"V2.A3.addRmsNormDtype", Soc::kA3, Code::kInvalidParam, "expandX dtype",
         {[](auto& f) { f.add_rms_norm = true, f.x_dtype = DType::kBFloat16; },
          [](auto& f) { f.x_dtype = DType::kFloat16; }},
         {[](auto& f) { f.add_rms_norm = true, f.x_dtype = DType::kFloat16; }}},
        {"V2.fullmesh_v2", Soc::kA3, Code::kInnerTiling, "",
         {[](auto& f) { f.config.comm_alg = "fullmesh_v2", f.mask_ndim = 1, f.num_tokens = 256; }},
         {[](auto& f) { f.config.comm_alg = "fullmesh_v2", f.mask_ndim = 2; },
          [](auto& f) { f.config.comm_alg = "fullmesh_v2", f.config.zero_expert_num = 1; },
          [](auto& f) { f.config.comm_alg = "fullmesh_v2", f.config.global_bs = 8 * 16; },
          [](auto& f) { f.config.comm_alg = "fullmesh_v2", f.num_tokens = 257; },
          [](auto& f) { f.config.comm_alg = "fullmesh_v2", f.top_k = 13; },
          [](auto& f) { f.config.comm_alg = "fullmesh_v2", f.config.tp_world_size = 2, f.op_version = 2; }}},
        {"V2.hierarchy", Soc::kA2, Code::kInnerTiling, "",
         {[](auto& f) {
             f.config.comm_alg = "hierarchy", f.has_expert_scales = f.has_expand_scales = true;
         }},
         {[](auto& f) {
              f.config.comm_alg = "hierarchy", f.has_expert_scales = f.has_expand_scales = true,
              f.mask_ndim = 1;
          },
          [](auto& f) {
              f.config.comm_alg = "hierarchy", f.has_expert_scales = f.has_expand_scales = true,
              f.has_performance_info = true;
          },
          [](auto& f) {
              f.config.comm_alg = "hierarchy", f.has_expert_scales = f.has_expand_scales = true,
              f.config.zero_expert_num = 1;
          }}},
    };
}

ProfileFacts base_of(Soc soc) { return soc == Soc::kA2 ? a2_base() : a3_base(); }

TEST(ProfilesV2, TheBaseScenesPass) {
    EXPECT_TRUE(check_profile(Soc::kA3, a3_base()).ok()) << check_profile(Soc::kA3, a3_base()).message();
    EXPECT_TRUE(check_profile(Soc::kA2, a2_base()).ok()) << check_profile(Soc::kA2, a2_base()).message();
    EXPECT_TRUE(check_profile(Soc::kGeneric, a3_base()).ok());
}

TEST(ProfilesV2, EveryRuleAcceptsAtItsBoundaryAndRejectsPastIt) {
    std::set<std::string> covered;
    for (const RuleCase& c : cases()) {
        SCOPED_TRACE(c.rule);
        covered.insert(c.rule);
        for (std::size_t i = 0; i < c.accepted.size(); ++i) {
            ProfileFacts f = base_of(c.soc);
            c.accepted[i](f);
            const moedist::Status s = check_profile(c.soc, f);
            EXPECT_TRUE(s.ok()) << "accepted case " << i << ": " << s.message();
        }
        for (std::size_t i = 0; i < c.rejected.size(); ++i) {
            ProfileFacts f = base_of(c.soc);
            c.rejected[i](f);
            const moedist::Status s = check_profile(c.soc, f);
            EXPECT_EQ(s.code(), c.code) << "rejected case " << i << ": " << s.message();
            EXPECT_NE(s.message().find(std::string(c.param) + (*c.param ? " must be" : "")),
                      std::string::npos)
                << s.message();
            EXPECT_NE(s.message().find(std::string("rule ") + c.rule + ")"), std::string::npos)
                << "rejected case " << i << ": " << s.message();
            EXPECT_TRUE(check_profile(Soc::kGeneric, f).ok());
        }
    }
    for (const auto& rule : moedist::core::profile_rules_v2())
        EXPECT_EQ(covered.count(rule.id), 1u) << rule.id;
}

TEST(ProfilesV2, V1RulesDoNotApplyToV2CallsNorTheOtherWay) {
    // sharedExpertNum 2 breaks V1's A3 rule (exactly 1) but is V2's normal case.
    ProfileFacts f = a3_base();
    EXPECT_TRUE(check_profile(Soc::kA3, f).ok());
    f.config.api = Api::kV1;
    EXPECT_FALSE(check_profile(Soc::kA3, f).ok());
    EXPECT_EQ(moedist::core::hccl_buffsize_needed_mb(Soc::kA3, a3_base()), 0);
}

}  // namespace
