// Shared pieces of the aclnn C façade: aclTensor → TensorView, codes and messages out, the
// executors phase 1 returns and phase 2 runs.
#pragma once

#include <array>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "aclnn/acl_meta.h"
#include "api/boundary.hpp"
#include "core/ops.hpp"
#include "runtime/objects.hpp"

namespace moedist::api {

// A tensor an executor uses, by its aclnn name, and the block its memory lay in at phase 1 (not
// found: memory the runtime did not allocate).
struct TensorBinding {
    const char* name = "";
    runtime::BlockRef block;
};

// Every tensor one prepared call uses; no allocation. The largest call,
// aclnnMoeDistributeCombineAddRmsNormV2, binds 17 (V1 dispatch 11, DispatchV4 13, CombineV4 14);
// 18 holds every tensor field of the V2 combine arguments at once.
struct Bindings {
    static constexpr std::size_t kMax = 18;
    std::array<TensorBinding, kMax> items{};
    std::array<runtime::BlockRef, kMax> blocks{};  // items[i].block, contiguous for pinning
    std::size_t count = 0;
    void add(const char* name, const runtime::BlockRef& block);
};

}  // namespace moedist::api

// What phase 1 returns: the prepared operation (its own copy of every tensor view, so destroying
// the aclTensors afterwards changes nothing) and the blocks of those tensors, which phase 2 pins
// or finds freed.
struct aclOpExecutor {
    std::variant<moedist::core::DispatchOp, moedist::core::CombineOp> op;
    moedist::api::Bindings bindings;
    const char* made_by = "";  // the phase 1 that made it (e.g. aclnnMoeDistributeDispatchV4GetWorkspaceSize)
    // Set by the split operations (Setup/Teardown): what phase 2 runs instead of the whole call,
    // on `op` (which phase 2 may first disarm, as for any call).
    std::function<moedist::Status()> runner;
};

namespace moedist::api {

// Sets aclGetRecentErrMsg's message and returns the status's code.
aclnnStatus report(const Status& status) noexcept;

// Fails with 161001 when a required tensor is null or not a live aclTensor.
Status require_tensor(const aclTensor* tensor, const char* name);

// The view of a tensor: 161001 when not live, 161002 when its ACL dtype has no moedist
// equivalent; for a tensor made on runtime memory, 161001 when that block has been freed since
// and 561002 when the view does not end inside it. Records the tensor in `bindings`.
Status view_of(const aclTensor* tensor, const char* name, TensorView* out, Bindings* bindings);
// As view_of, for an optional tensor (null gives nullopt).
Status optional_view_of(const aclTensor* tensor,
                        const char* name,
                        std::optional<TensorView>* out,
                        Bindings* bindings);

// Group names are read up to this many bytes, never further: a name must end (NUL) before it.
constexpr std::size_t kGroupNameBytes = 128;

// groupEp / groupTp: non-null, non-empty, shorter than 128 characters (161001 otherwise), then
// the communicator of `rank` in the group of that name.
Status find_group(const char* name, const char* param, int64_t rank, Communicator* out);

// The EP communicator and, when T == 2, the TP one named by the aclnn arguments.
Status find_groups(const MoeConfig& config,
                   const char* group_ep,
                   const char* group_tp,
                   Communicator* ep,
                   std::optional<Communicator>* tp);

// A first phase that failed on this rank: when groupEp (and, with T == 2, groupTp) name live
// communicators of this rank, its peers' matching call fails at once with `cause`
// (core::abort_call); otherwise nothing.
void abort_peers(const MoeConfig& config,
                 const char* group_ep,
                 const char* group_tp,
                 const Status& cause);

// `check(a, op, bindings)`, the first phase of one entry point; when it fails, the peers'
// matching call fails too, at once (abort_peers on the groups `a` names).
template <class Args, class Op, class Check>
Status prepare_or_abort(const Args& a, Op* op, Bindings* bindings, Check check) {
    Status s = check(a, op, bindings);
    if (!s.ok()) {
        MoeConfig group;
        group.ep_world_size = a.ep_world_size;
        group.ep_rank_id = a.ep_rank_id;
        group.tp_world_size = a.tp_world_size;
        group.tp_rank_id = a.tp_rank_id;
        abort_peers(group, a.group_ep, a.group_tp, s);
    }
    return s;
}

// What the profile rules read beside tensors and attributes: the groupTp name given (null: "";
// at most 128 bytes read) and whether the reserved xActiveMask was given.
core::CallExtras call_extras(const char* group_tp, bool x_active_mask);

// V2 family: commAlg as a string (null: ""; read up to kGroupNameBytes bytes, never further; a
// longer value is kept cut there, which no accepted value matches).
std::string comm_alg_of(const char* comm_alg);

// V3+ elasticInfo: elastic scaling is not supported, so a non-null tensor is 561002.
Status refuse_elastic_info(const aclTensor* elastic_info);

// Records an executor phase 1 made, so phase 2 can refuse unknown, crossed or already-run ones.
aclOpExecutor* register_executor(aclOpExecutor* executor);

// Phase 1's frame, shared by both operations: null outputs give 161001; `prepare(Op*,
// Bindings*)` validates and fills the op (exceptions become 361001); on success the workspace
// size is 0 (receivers and sources pull straight from peers' tensors: no staging) and the
// executor is registered.
template <class Op, class Prepare>
aclnnStatus phase_one(const char* op_name,
                      uint64_t* workspace_size,
                      aclOpExecutor** executor,
                      Prepare prepare) noexcept {
    const Status status = guard(
        op_name,
        [] { return "its executor (" + std::to_string(sizeof(aclOpExecutor)) + " bytes)"; },
        [&]() -> Status {
            if (workspace_size == nullptr || executor == nullptr) {
                return {Code::kNullptr, "workspaceSize and executor must be non-null, got nullptr"};
            }
            auto made = std::make_unique<aclOpExecutor>();
            made->op.template emplace<Op>();
            made->made_by = op_name;
            if (Status s = prepare(&std::get<Op>(made->op), &made->bindings); !s.ok()) return s;
            *workspace_size = 0;
            *executor = register_executor(made.release());
            return Status::Ok();
        });
    return report(status);
}

// As phase_one, for the split operations: `prepare(Op*, Bindings*, aclOpExecutor*)` also sets the
// executor's runner.
template <class Op, class Prepare>
aclnnStatus split_phase_one(const char* op_name,
                            uint64_t* workspace_size,
                            aclOpExecutor** executor,
                            Prepare prepare) noexcept {
    const Status status = guard(
        op_name,
        [] { return "its executor (" + std::to_string(sizeof(aclOpExecutor)) + " bytes)"; },
        [&]() -> Status {
            if (workspace_size == nullptr || executor == nullptr) {
                return {Code::kNullptr, "workspaceSize and executor must be non-null, got nullptr"};
            }
            auto made = std::make_unique<aclOpExecutor>();
            made->op.template emplace<Op>();
            made->made_by = op_name;
            if (Status s = prepare(&std::get<Op>(made->op), &made->bindings, made.get()); !s.ok())
                return s;
            *workspace_size = 0;
            *executor = register_executor(made.release());
            return Status::Ok();
        });
    return report(status);
}

// Phase 2 of `Op`: refuses an executor that is not a live one of this operation (161001; a live
// executor of the other operation stays usable for it), then pins the tensors' blocks and runs
// it. Every phase 2 of an operation (V1, V2, V3, V4, AddRmsNorm[V2] for combine) runs any live
// executor of that operation: the executor holds the whole prepared call. A block freed since phase 1 fails the call on every rank of the group with 361001 naming
// the tensor and the rank; no rank reads it. Parks any error on the stream and frees the
// executor.
template <class Op>
aclnnStatus run_executor(aclOpExecutor* executor, aclrtStream stream, const char* op_name) noexcept;

}  // namespace moedist::api
