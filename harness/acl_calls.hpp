// The harness's aclnn path: a rank's tensors as aclTensors (reserved inputs given junk tensors,
// which must be ignored) and the two-phase dispatch and combine calls.
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

Status acl_dispatch(const JobSpec& spec,
                    const Layout& lay,
                    const AclTensors& t,
                    const AclGroups& g);
Status acl_combine(const JobSpec& spec, const Layout& lay, const AclTensors& t, const AclGroups& g);

}  // namespace moedist::harness
