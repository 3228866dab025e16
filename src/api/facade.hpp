// Shared pieces of the aclnn C façade: aclTensor → TensorView, codes and messages out.
#pragma once

#include <exception>
#include <optional>
#include <string>
#include <variant>

#include "aclnn/acl_meta.h"
#include "core/ops.hpp"
#include "runtime/objects.hpp"

// What phase 1 returns: the prepared operation, consumed by phase 2.
struct aclOpExecutor {
    std::variant<moedist::core::DispatchOp, moedist::core::CombineOp> op;
};

namespace moedist::api {

// Sets aclGetRecentErrMsg's message and returns the status's code.
aclnnStatus report(const Status& status);

// Fails with 161001 when a required tensor is null.
Status require_tensor(const aclTensor* tensor, const char* name);

// The view of a tensor; 161002 when its ACL dtype has no moedist equivalent.
Status view_of(const aclTensor* tensor, const char* name, TensorView* out);
// As view_of, for an optional tensor (null gives nullopt).
Status optional_view_of(const aclTensor* tensor, const char* name, std::optional<TensorView>* out);

// groupEp / groupTp: non-null, non-empty, shorter than 128 characters (161001 otherwise), then
// the communicator of `rank` in the group of that name.
Status find_group(const char* name, const char* param, int64_t rank, Communicator* out);

// The EP communicator and, when T == 2, the TP one named by the aclnn arguments.
// What the profile rules read beside tensors and attributes: the groupTp name given (null: "")
// and whether the reserved xActiveMask was given.
core::CallExtras call_extras(const char* group_tp, bool x_active_mask);

Status find_groups(const MoeConfig& config,
                   const char* group_ep,
                   const char* group_tp,
                   Communicator* ep,
                   std::optional<Communicator>* tp);

// Records an executor phase 1 made, so phase 2 can refuse unknown or already-run ones.
aclOpExecutor* register_executor(aclOpExecutor* executor);

// Phase 1's frame, shared by both operations: null outputs give 161001; `prepare(Op*)` validates
// and fills the op (exceptions become 561000); on success the workspace size is 0 (receivers and
// sources pull straight from peers' tensors: no staging) and the executor is registered.
template <class Op, class Prepare>
aclnnStatus phase_one(const char* op_name,
                      uint64_t* workspace_size,
                      aclOpExecutor** executor,
                      Prepare prepare) {
    if (workspace_size == nullptr || executor == nullptr) {
        return report({Code::kNullptr, "workspaceSize and executor must be non-null, got nullptr"});
    }
    try {
        Op op;
        if (Status status = prepare(&op); !status.ok()) return report(status);
        *workspace_size = 0;
        *executor = register_executor(new aclOpExecutor{std::move(op)});
        return report(Status::Ok());
    } catch (const std::exception& e) {
        return report({Code::kInternal, std::string(op_name) + " failed: " + e.what()});
    }
}

// Phase 2 of either operation: runs the executor, parks any error on the stream, frees it.
aclnnStatus run_executor(aclOpExecutor* executor, aclrtStream stream, const char* op_name);

}  // namespace moedist::api
