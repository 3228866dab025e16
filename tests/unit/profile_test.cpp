// The product-profile rules (src/core/profile.cpp), one case per rule: accepted at the boundary,
// rejected one past it with the rule's code and a message naming the parameter and the rule.
#include "core/profile.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

namespace {

using moedist::Code;
using moedist::DType;
using moedist::Soc;
using moedist::core::ProfileFacts;

// The seed sample's A2 scene: W 16, E 16, BS 8, H 7168, K 8, no TP, no shared experts.
ProfileFacts a2_base() {
    ProfileFacts f;
    f.config.ep_world_size = 16;
    f.config.moe_expert_num = 16;
    f.config.global_bs = 8 * 16;
    f.num_tokens = 8;
    f.hidden = 7168;
    f.top_k = 8;
    return f;
}

// The seed sample's A3 scene: W 8, TP 2, one shared-expert rank, E 7, BS 8, H 7168, K 3.
ProfileFacts a3_base() {
    ProfileFacts f;
    f.config.ep_world_size = 8;
    f.config.tp_world_size = 2;
    f.config.shared_expert_num = 1;
    f.config.shared_expert_rank_num = 1;
    f.config.ep_rank_id = 1;
    f.config.moe_expert_num = 7;
    f.config.global_bs = 8 * 8;
    f.config.expert_token_nums_type = 1;
    f.num_tokens = 8;
    f.hidden = 7168;
    f.top_k = 3;
    f.tp_counts_len = 2;
    f.group_tp = "tp_group";
    return f;
}

using Mutation = std::function<void(ProfileFacts&)>;

struct RuleCase {
    const char* rule;
    Soc soc;
    Code code;
    const char* param;               // the message must name it
    std::vector<Mutation> accepted;  // each, applied to the base alone, stays accepted
    std::vector<Mutation> rejected;  // each, applied to the base alone, fails this rule
};

ProfileFacts base_of(Soc soc) { return soc == Soc::kA2 ? a2_base() : a3_base(); }

std::vector<RuleCase> cases() {
    return {
        {"A2.epWorldSize",
         Soc::kA2,
         Code::kInnerTiling,
         "epWorldSize",
         {[](auto& f) {
              f.config.ep_world_size = 64, f.config.moe_expert_num = 64,
              f.config.global_bs = 8 * 64;
          },
          [](auto& f) {
              f.config.ep_world_size = 32, f.config.moe_expert_num = 32,
              f.config.global_bs = 8 * 32;
          }},
         {[](auto& f) {
              f.config.ep_world_size = 8, f.config.moe_expert_num = 8, f.config.global_bs = 64;
          },
          [](auto& f) {
              f.config.ep_world_size = 128, f.config.moe_expert_num = 128,
              f.config.global_bs = 8 * 128;
          }}},
        {"A3.epWorldSize",
         Soc::kA3,
         Code::kInnerTiling,
         "epWorldSize",
         {[](auto& f) {
              f.config.ep_world_size = 288, f.config.moe_expert_num = 287,
              f.config.global_bs = 8 * 288;
          },
          [](auto& f) {
              f.config.ep_world_size = 144, f.config.moe_expert_num = 143,
              f.config.global_bs = 8 * 144;
          }},
         {[](auto& f) {
              f.config.ep_world_size = 24, f.config.moe_expert_num = 23,
              f.config.global_bs = 8 * 24;
          },
          [](auto& f) {
              f.config.ep_world_size = 4, f.config.moe_expert_num = 3, f.config.global_bs = 8 * 4;
          }}},
        {"moeExpertNum",
         Soc::kA3,
         Code::kInnerTiling,
         "moeExpertNum",
         {[](auto& f) {
             f.config.tp_world_size = 0, f.tp_counts_len = -1, f.config.shared_expert_rank_num = 0,
             f.config.moe_expert_num = 512;
         }},
         {[](auto& f) {
             f.config.tp_world_size = 0, f.tp_counts_len = -1, f.config.shared_expert_rank_num = 0,
             f.config.moe_expert_num = 520;
         }}},
        {"A2.localExpertNum",
         Soc::kA2,
         Code::kInnerTiling,
         "moeExpertNum / (epWorldSize - sharedExpertRankNum)",
         {[](auto& f) { f.config.moe_expert_num = 24 * 16; },
          [](auto& f) { f.config.moe_expert_num = 25 * 16, f.hccl.intra_pcie = true; }},
         {[](auto& f) { f.config.moe_expert_num = 25 * 16; }}},
        {"A2.tpWorldSize",
         Soc::kA2,
         Code::kInnerTiling,
         "tpWorldSize",
         {[](auto& f) { f.config.tp_world_size = 1; }},
         {[](auto& f) { f.config.tp_world_size = 2, f.tp_counts_len = 2; }}},
        {"A2.groupTp",
         Soc::kA2,
         Code::kNullptr,
         "groupTp",
         {[](auto& f) { f.group_tp = ""; }},
         {[](auto& f) { f.group_tp = "x"; }}},
        {"A2.sharedExpertNum",
         Soc::kA2,
         Code::kInnerTiling,
         "sharedExpertNum",
         {[](auto& f) { f.config.shared_expert_num = 0; }},
         {[](auto& f) { f.config.shared_expert_num = 1; }}},
        {"A2.sharedExpertRankNum",
         Soc::kA2,
         Code::kInnerTiling,
         "sharedExpertRankNum",
         {[](auto& f) { f.config.shared_expert_rank_num = 0; }},
         {[](auto& f) { f.config.shared_expert_rank_num = 1, f.config.moe_expert_num = 15; }}},
        {"A3.sharedExpertNum",
         Soc::kA3,
         Code::kInnerTiling,
         "sharedExpertNum",
         {[](auto& f) { f.config.shared_expert_num = 1; }},
         {[](auto& f) { f.config.shared_expert_num = 0; },
          [](auto& f) { f.config.shared_expert_num = 2; }}},
        {"A3.sharedExpertRankNum",
         Soc::kA3,
         Code::kInnerTiling,
         "sharedExpertRankNum",
         {[](auto& f) { f.config.shared_expert_rank_num = 2, f.config.moe_expert_num = 6; },
          [](auto& f) { f.config.shared_expert_rank_num = 4, f.config.moe_expert_num = 4; }},
         {[](auto& f) { f.config.shared_expert_rank_num = 3, f.config.moe_expert_num = 5; }}},
        {"quantMode",
         Soc::kA2,
         Code::kInnerTiling,
         "quantMode",
         {[](auto& f) { f.config.quant_mode = 2, f.expand_x_dtype = DType::kInt8; }},
         {[](auto& f) { f.config.quant_mode = 1, f.expand_x_dtype = DType::kInt8; },
          [](auto& f) { f.config.quant_mode = 3, f.expand_x_dtype = DType::kInt8; }}},
        {"x.dtype",
         Soc::kA3,
         Code::kInvalidParam,
         "x dtype",
         {[](auto& f) { f.x_dtype = f.expand_x_dtype = DType::kFloat16; }},
         {[](auto& f) { f.x_dtype = f.expand_x_dtype = DType::kFp8E4M3; }}},
        {"expandX.dtype",
         Soc::kA2,
         Code::kInvalidParam,
         "expandX dtype",
         {[](auto& f) { f.config.quant_mode = 2, f.expand_x_dtype = DType::kInt8; }},
         {[](auto& f) { f.config.quant_mode = 2, f.expand_x_dtype = DType::kFp8E4M3; }}},
        {"globalBs",
         Soc::kA2,
         Code::kInnerTiling,
         "globalBs",
         {[](auto& f) { f.config.global_bs = 0; }, [](auto& f) { f.config.global_bs = 256 * 16; }},
         {[](auto& f) { f.config.global_bs = 8 * 16 - 1; },
          [](auto& f) { f.config.global_bs = 7 * 16; }}},
        {"A2.H",
         Soc::kA2,
         Code::kInnerTiling,
         "H",
         {[](auto& f) { f.hidden = 32; }, [](auto& f) { f.hidden = 7168; }},
         {[](auto& f) { f.hidden = 7200; },
          [](auto& f) { f.hidden = 7167; },
          [](auto& f) { f.hidden = 16; }}},
        {"A3.H",
         Soc::kA3,
         Code::kInnerTiling,
         "H",
         {[](auto& f) { f.hidden = 7168; }},
         {[](auto& f) { f.hidden = 7136; }, [](auto& f) { f.hidden = 7169; }}},
        {"A2.BS",
         Soc::kA2,
         Code::kInnerTiling,
         "BS",
         {[](auto& f) { f.num_tokens = 256, f.config.global_bs = 256 * 16; },
          [](auto& f) { f.num_tokens = 1; }},
         {[](auto& f) { f.num_tokens = 257, f.config.global_bs = 257 * 16; },
          [](auto& f) { f.num_tokens = 0; }}},
        {"A3.BS",
         Soc::kA3,
         Code::kInnerTiling,
         "BS",
         {[](auto& f) { f.num_tokens = 512, f.config.global_bs = 512 * 8; },
          [](auto& f) { f.num_tokens = 1; }},
         {[](auto& f) { f.num_tokens = 513, f.config.global_bs = 513 * 8; },
          [](auto& f) { f.num_tokens = 0; }}},
        {"A2.K", Soc::kA2, Code::kInnerTiling, "K", {[](auto& f) { f.top_k = 16; }}, {[](auto& f) {
             f.top_k = 17;
         }}},
        {"A3.K", Soc::kA3, Code::kInnerTiling, "K", {[](auto& f) { f.top_k = 8; }}, {[](auto& f) {
             f.top_k = 9;
         }}},
        {"A2.scales.pcie",
         Soc::kA2,
         Code::kInnerTiling,
         "scales",
         {[](auto& f) { f.hccl.intra_pcie = true; }, [](auto& f) { f.has_scales = true; }},
         {[](auto& f) { f.hccl.intra_pcie = true, f.has_scales = true; }}},
        {"A3.xActiveMask",
         Soc::kA3,
         Code::kInnerTiling,
         "xActiveMask",
         {[](auto& f) { f.has_x_active_mask = false; }},
         {[](auto& f) { f.has_x_active_mask = true; }}},
        {"A3.expandIdx",
         Soc::kA3,
         Code::kInnerTiling,
         "expandIdx dims",
         {[](auto& f) { f.combine = true, f.expand_idx_ndim = 1; },
          [](auto& f) { f.combine = false, f.expand_idx_ndim = 2; }},
         {[](auto& f) { f.combine = true, f.expand_idx_ndim = 2; }}},
        {"A3.tpCounts",
         Soc::kA3,
         Code::kInnerTiling,
         "tpRecvCounts dim 0",
         {[](auto& f) { f.tp_counts_len = 2; }},
         {[](auto& f) { f.tp_counts_len = 4; }, [](auto& f) { f.tp_counts_len = 1; }}},
        // 2 * (8 * 16 * 1 * 7168 * 2 + 2 MiB) = 7.5 MiB -> 8; with PCIe: 16 * 8 * (14336 + 128) B
        // + 104 MiB -> 106.
        {"A2.HCCL_BUFFSIZE",
         Soc::kA2,
         Code::kInnerTiling,
         "HCCL_BUFFSIZE",
         {[](auto& f) { f.hccl.buffsize_mb = 8; },
          [](auto& f) { f.hccl.buffsize_mb = 106, f.hccl.intra_pcie = true; }},
         {[](auto& f) { f.hccl.buffsize_mb = 7; },
          [](auto& f) { f.hccl.buffsize_mb = 105, f.hccl.intra_pcie = true; },
          [](auto& f) { f.hccl.buffsize_mb = -1; }}},
        // 2 + 2 * 8 * 2 * (7168 + 128) * (8 * 1 + 3 + 1) B = 2 + 2.67 MiB -> 5.
        {"A3.HCCL_BUFFSIZE",
         Soc::kA3,
         Code::kInnerTiling,
         "HCCL_BUFFSIZE",
         {[](auto& f) { f.hccl.buffsize_mb = 5; }},
         {[](auto& f) { f.hccl.buffsize_mb = 4; }, [](auto& f) { f.hccl.buffsize_mb = -1; }}},
    };
}

TEST(Profiles, TheSeedSampleScenesPass) {
    EXPECT_TRUE(check_profile(Soc::kA2, a2_base()).ok())
        << check_profile(Soc::kA2, a2_base()).message();
    EXPECT_TRUE(check_profile(Soc::kA3, a3_base()).ok())
        << check_profile(Soc::kA3, a3_base()).message();
    // The A3 scene is no A2 configuration (W 8, TP, shared experts), and generic takes both.
    EXPECT_FALSE(check_profile(Soc::kA2, a3_base()).ok());
    EXPECT_TRUE(check_profile(Soc::kGeneric, a2_base()).ok());
    EXPECT_TRUE(check_profile(Soc::kGeneric, a3_base()).ok());
}

TEST(Profiles, EveryRuleAcceptsAtItsBoundaryAndRejectsPastIt) {
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
            EXPECT_NE(s.message().find(std::string(c.param) + " must be"), std::string::npos)
                << s.message();
            EXPECT_NE(s.message().find(std::string("rule ") + c.rule + ")"), std::string::npos)
                << s.message();
            // The same facts pass the generic profile: the limit is the product's, not moedist's.
            EXPECT_TRUE(check_profile(Soc::kGeneric, f).ok());
        }
    }
    for (const auto& rule : moedist::core::profile_rules())
        EXPECT_EQ(covered.count(rule.id), 1u) << rule.id;
}

TEST(Profiles, RulesOfOneProductDoNotApplyToTheOther) {
    // H = 7200 breaks A2 (multiple of 32, <= 7168) and A3 (7168); H = 4096 only A3.
    ProfileFacts f = a2_base();
    f.hidden = 4096;
    EXPECT_TRUE(check_profile(Soc::kA2, f).ok());
    ProfileFacts g = a3_base();
    g.hidden = 4096;
    EXPECT_EQ(check_profile(Soc::kA3, g).code(), Code::kInnerTiling);
    // K = 12 passes A2 (<= 16), fails A3 (<= 8).
    f = a2_base();
    f.top_k = 12;
    EXPECT_TRUE(check_profile(Soc::kA2, f).ok());
    g = a3_base();
    g.top_k = 12;
    EXPECT_FALSE(check_profile(Soc::kA3, g).ok());
}

TEST(Profiles, BufferSizeNeededMatchesTheSeedFormulas) {
    EXPECT_EQ(hccl_buffsize_needed_mb(Soc::kA2, a2_base()), 8);
    EXPECT_EQ(hccl_buffsize_needed_mb(Soc::kA3, a3_base()), 5);
    EXPECT_EQ(hccl_buffsize_needed_mb(Soc::kGeneric, a3_base()), 0);
    ProfileFacts f = a2_base();
    f.hccl.intra_pcie = true;
    EXPECT_EQ(hccl_buffsize_needed_mb(Soc::kA2, f), 106);
}

TEST(Profiles, SocNamesParse) {
    EXPECT_EQ(moedist::parse_soc("a3"), Soc::kA3);
    EXPECT_EQ(moedist::parse_soc("A2"), Soc::kA2);
    EXPECT_EQ(moedist::parse_soc("Generic"), Soc::kGeneric);
    EXPECT_FALSE(moedist::parse_soc("A5").has_value());
    EXPECT_FALSE(moedist::parse_soc("").has_value());
}

}  // namespace
