// The harness's aclnn path: a rank's tensors as aclTensors (reserved inputs given junk tensors,
// which must be ignored) and the two-phase dispatch and combine calls: V1's, or for a V2 spec
// one of DispatchV2/V3/V4 and one of CombineV2/V3/V4 or CombineAddRmsNorm[V2].
#pragma once

#include <string>
#include <vector>

#include "aclnn/acl_meta.h"
#include "harness/inputs.hpp"
#include "moedist/moedist.hpp"

namespace moedist::harness {

// Destroyed with the rank.
struct AclTensors {
    std::vector<aclTensor*> owned;
    aclTensor *x = nullptr, *expert_ids = nullptr, *scales = nullptr, *expert_scales = nullptr;
    aclTensor *expand_x = nullptr, *dynamic_scales = nullptr, *expand_idx = nullptr,
              *expert_token_nums = nullptr;
    aclTensor *ep_recv_counts = nullptr, *tp_recv_counts = nullptr, *expand_scales = nullptr;
    aclTensor *expert_out = nullptr, *x_out = nullptr, *combine_scales = nullptr;
    aclTensor *junk_mask = nullptr, *junk_f32 = nullptr, *junk_i32 = nullptr;
    // V2: the mask, the assist triples, performanceInfo and combine's extras (null when the spec
    // has none); x_out is (BS, 1, H) and combine_scales (BS, 0) when the spec asks for it.
    aclTensor *mask = nullptr, *assist = nullptr, *performance = nullptr, *shared_x = nullptr;
    aclTensor *ori_x = nullptr, *alpha1 = nullptr, *alpha2 = nullptr, *const_v = nullptr;
    aclTensor *residual = nullptr, *gamma = nullptr, *y_out = nullptr, *rstd_out = nullptr;
    float norm_eps = 1e-6f;
    AclTensors() = default;
    AclTensors(const AclTensors&) = delete;
    AclTensors& operator=(const AclTensors&) = delete;
    ~AclTensors();
    // `storage` is where element offset 0 is; the view starts `offset` elements later.
    aclTensor* make(const TensorView& v,
                    const void* storage,
                    int64_t offset,
                    int64_t storage_elems);
    aclTensor* make(const TensorView& v) { return make(v, v.data, 0, v.numel()); }
};

// The names and ranks the aclnn calls take.
struct AclGroups {
    std::string ep_name;
    std::string tp_name;  // "" when T == 1
    int ep_rank = 0;
    int tp_rank = 0;
};

// V2 specs: which entry points a spec's ranks call (all ranks the same), chosen by the seed among
// those that can carry the spec (special experts need V3, performanceInfo V4; AddRmsNorm has no
// performanceInfo, so such a spec's combine adds none). acl_dispatch_version is 2, 3 or 4;
// acl_combine_entry names the combine (e.g. "aclnnMoeDistributeCombineAddRmsNormV2").
int acl_dispatch_version(const JobSpec& spec);
const char* acl_combine_entry(const JobSpec& spec);

Status acl_dispatch(const JobSpec& spec,
                    const Layout& lay,
                    const AclTensors& t,
                    const AclGroups& g);
Status acl_combine(const JobSpec& spec, const Layout& lay, const AclTensors& t, const AclGroups& g);

}  // namespace moedist::harness
