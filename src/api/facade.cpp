#include "api/facade.hpp"

#include "core/call_rounds.hpp"

#include <cstring>
#include <mutex>
#include <unordered_set>

#include "runtime/memory_registry.hpp"
#include "runtime/stream.hpp"
#include "runtime/tensor_registry.hpp"

namespace moedist::api {

void Bindings::add(const char* name, const runtime::BlockRef& block) {
    if (count == kMax) return;  // never: an operation has fewer tensors
    items[count] = {name, block};
    blocks[count] = block;
    ++count;
}

aclnnStatus report(const Status& status) noexcept {
    static const std::string kNone;
    runtime::set_recent_error(status.ok() ? kNone : status.message());
    return status.raw_code();
}

Status require_tensor(const aclTensor* tensor, const char* name) {
    if (tensor == nullptr)
        return {Code::kNullptr, std::string(name) + " must be non-null, got nullptr"};
    if (!runtime::tensor_is_live(tensor)) {
        return {Code::kNullptr,
                std::string(name) +
                    " must be a live aclTensor from aclCreateTensor, got a destroyed or foreign "
                    "pointer"};
    }
    return Status::Ok();
}

namespace {
// Executors made by phase 1 and not yet run: phase 2 refuses anything else (double runs too).
std::mutex executors_mutex;
std::unordered_set<const aclOpExecutor*>& live_executors() {
    static auto* set = new std::unordered_set<const aclOpExecutor*>();
    return *set;
}

// Bytes from the view's first element to the end of its last one (0 for an empty view). The
// runtime made the view with non-negative extents and strides whose last element offset fits
// int64.
unsigned __int128 view_bytes(const TensorView& v) {
    if (v.numel() == 0) return 0;
    unsigned __int128 last = 0;
    for (int32_t d = 0; d < v.ndim; ++d)
        last += static_cast<unsigned __int128>(v.dim(d) - 1) * static_cast<uint64_t>(v.stride(d));
    return (last + 1) * dtype_size(v.dtype);
}

std::string u128_text(unsigned __int128 v) {
    if (v == 0) return "0";
    std::string digits;
    for (; v != 0; v /= 10) digits.insert(digits.begin(), static_cast<char>('0' + v % 10));
    return digits;
}

// The view of a tensor made on runtime memory must end inside the block it lies in, and that
// block must not have been freed since aclCreateTensor.
Status check_block(const aclTensor* tensor, const char* name) {
    const runtime::BlockRef& block = tensor->block;
    if (!block.found()) return Status::Ok();
    if (!runtime::block_is_live(block)) {
        return {Code::kNullptr,
                std::string(name) +
                    " memory must be a live aclrtMalloc block, got one freed after "
                    "aclCreateTensor"};
    }
    const auto start = reinterpret_cast<uintptr_t>(tensor->view.data);
    const unsigned __int128 bytes = view_bytes(tensor->view);
    const bool inside = start >= block.base && start - block.base <= block.size &&
                        bytes <= static_cast<unsigned __int128>(block.size - (start - block.base));
    if (!inside) {
        const std::string at = start >= block.base
                                   ? "byte " + std::to_string(start - block.base)
                                   : std::to_string(block.base - start) + " bytes before the start";
        return {Code::kInnerTiling,
                std::string(name) + " view must end inside its aclrtMalloc block (" +
                    std::to_string(block.size) + " bytes), got a view of " + u128_text(bytes) +
                    " bytes starting at " + at + " of it"};
    }
    return Status::Ok();
}
}  // namespace

core::CallExtras call_extras(const char* group_tp, bool x_active_mask) {
    core::CallExtras extras;
    if (group_tp != nullptr) extras.group_tp.assign(group_tp, strnlen(group_tp, kGroupNameBytes));
    extras.x_active_mask = x_active_mask;
    return extras;
}

std::string comm_alg_of(const char* comm_alg) {
    if (comm_alg == nullptr) return {};
    return std::string(comm_alg, strnlen(comm_alg, kGroupNameBytes));
}

Status refuse_elastic_info(const aclTensor* elastic_info) {
    if (elastic_info == nullptr) return Status::Ok();
    return {Code::kInnerTiling,
            "elasticInfo must be nullptr (elastic scaling is not supported), got a tensor"};
}

Status find_groups(const MoeConfig& config,
                   const char* group_ep,
                   const char* group_tp,
                   Communicator* ep,
                   std::optional<Communicator>* tp) {
    if (Status s = find_group(group_ep, "groupEp", config.ep_rank_id, ep); !s.ok()) return s;
    tp->reset();
    if (config.tp_size() == 2) {
        Communicator tp_comm;
        if (Status s = find_group(group_tp, "groupTp", config.tp_rank_id, &tp_comm); !s.ok())
            return s;
        *tp = tp_comm;
    }
    return Status::Ok();
}

void abort_peers(const MoeConfig& config,
                 const char* group_ep,
                 const char* group_tp,
                 const Status& cause) {
    if (config.ep_world_size < 1 || config.ep_rank_id < 0 ||
        config.ep_rank_id >= config.ep_world_size)
        return;
    Communicator ep;
    std::optional<Communicator> tp;
    if (!find_groups(config, group_ep, group_tp, &ep, &tp).ok()) return;
    core::abort_call(ep, tp, cause);
}

aclOpExecutor* register_executor(aclOpExecutor* executor) {
    std::lock_guard<std::mutex> lock(executors_mutex);
    live_executors().insert(executor);
    return executor;
}

Status view_of(const aclTensor* tensor, const char* name, TensorView* out, Bindings* bindings) {
    if (Status s = require_tensor(tensor, name); !s.ok()) return s;
    if (!tensor->dtype_known) {
        return {Code::kInvalidParam,
                std::string(name) + " dtype must be one moedist supports, got aclDataType " +
                    std::to_string(static_cast<int>(tensor->acl_dtype))};
    }
    if (Status s = check_block(tensor, name); !s.ok()) return s;
    *out = tensor->view;
    bindings->add(name, tensor->block);
    return Status::Ok();
}

Status optional_view_of(const aclTensor* tensor,
                        const char* name,
                        std::optional<TensorView>* out,
                        Bindings* bindings) {
    out->reset();
    if (tensor == nullptr) return Status::Ok();
    TensorView view;
    if (Status s = view_of(tensor, name, &view, bindings); !s.ok()) return s;
    *out = view;
    return Status::Ok();
}

Status find_group(const char* name, const char* param, int64_t rank, Communicator* out) {
    if (name == nullptr)
        return {Code::kNullptr, std::string(param) + " must be non-null, got nullptr"};
    const std::size_t length = strnlen(name, kGroupNameBytes);
    if (length == 0 || length >= kGroupNameBytes) {
        return {Code::kNullptr,
                std::string(param) + " length must be in [1, 128), got " +
                    (length == 0 ? "0" : "128 or more")};
    }
    if (rank < 0 || rank > INT32_MAX) {
        return {Code::kInnerTiling,
                std::string(param) + " rank must be >= 0, got " + std::to_string(rank)};
    }
    return Communicator::find(std::string(name, length), static_cast<int>(rank), out);
}

namespace {

// A call that must fail without touching any tensor: every data pointer null and no tokens, so
// nothing before the exchange round reads memory and the record published carries no address.
void disarm(core::DispatchOp* op) {
    op->num_tokens = 0;
    for (TensorView* v : {&op->in.x,
                          &op->in.expert_ids,
                          &op->out.expand_x,
                          &op->out.expand_idx,
                          &op->out.expert_token_nums,
                          &op->out.ep_recv_counts}) {
        v->data = nullptr;
    }
    for (std::optional<TensorView>* v : {&op->in.scales,
                                         &op->in.x_active_mask,
                                         &op->in.expert_scales,
                                         &op->out.dynamic_scales,
                                         &op->out.tp_recv_counts,
                                         &op->out.expand_scales,
                                         &op->out.assist_info,
                                         &op->out.performance_info}) {
        if (*v) (*v)->data = nullptr;
    }
}

void disarm(core::CombineOp* op) {
    op->num_tokens = 0;
    for (TensorView* v : {&op->in.expand_x,
                          &op->in.expert_ids,
                          &op->in.expand_idx,
                          &op->in.ep_send_counts,
                          &op->in.expert_scales,
                          &op->x_out,
                          &op->shared_x,
                          &op->residual,
                          &op->gamma,
                          &op->y_out,
                          &op->rstd_out}) {
        v->data = nullptr;
    }
    for (std::optional<TensorView>* v : {&op->in.tp_send_counts,
                                         &op->in.assist_info,
                                         &op->in.x_active_mask,
                                         &op->in.shared_expert_x,
                                         &op->in.ori_x,
                                         &op->in.const_alpha1,
                                         &op->in.const_alpha2,
                                         &op->in.const_v,
                                         &op->in.performance_info,
                                         &op->in.residual_x,
                                         &op->in.gamma,
                                         &op->in.y_out,
                                         &op->in.rstd_out}) {
        if (*v) (*v)->data = nullptr;
    }
}

Status run_op(const core::DispatchOp& op) { return core::run_dispatch(op); }
Status run_op(const core::CombineOp& op) { return core::run_combine(op); }

}  // namespace

template <class Op>
aclnnStatus run_executor(aclOpExecutor* executor,
                         aclrtStream stream,
                         const char* op_name) noexcept {
    std::unique_ptr<aclOpExecutor> owned;
    const Status refused = guard(
        op_name,
        [] { return std::string("checking its executor"); },
        [&]() -> Status {
            std::lock_guard<std::mutex> lock(executors_mutex);
            if (executor == nullptr || live_executors().count(executor) == 0) {
                return {Code::kNullptr,
                        std::string(op_name) +
                            " executor must be one phase 1 returned and not yet run, got " +
                            (executor == nullptr ? "nullptr" : "an unknown or used one")};
            }
            if (!std::holds_alternative<Op>(executor->op)) {
                return {Code::kNullptr,
                        std::string(op_name) + " executor must be one " + op_name +
                            "GetWorkspaceSize returned, got one of " + executor->made_by +
                            " (left for its own operation)"};
            }
            live_executors().erase(executor);
            owned.reset(executor);
            return Status::Ok();
        });
    if (!refused.ok()) return report(refused);  // reported, not parked on the stream

    Op& op = std::get<Op>(owned->op);
    const Bindings& bindings = owned->bindings;
    const Status status = guard(
        op_name,
        [&] { return scratch_text(op); },
        [&]() -> Status {
            const std::size_t dead = runtime::pin_blocks(bindings.blocks.data(), bindings.count);
            if (dead < bindings.count) {
                op.pre_error = runtime_failure([&] {
                    return std::string(bindings.items[dead].name) + " memory of rank " +
                           std::to_string(op.config.ep_rank_id) + " of '" + op.ep.name() +
                           "' must stay allocated until " + op_name +
                           ", got its aclrtMalloc block freed after " + owned->made_by;
                });
                disarm(&op);
                return owned->runner ? owned->runner() : run_op(op);
            }
            struct Unpin {
                const Bindings& b;
                ~Unpin() { runtime::unpin_blocks(b.blocks.data(), b.count); }
            } unpin{bindings};
            return owned->runner ? owned->runner() : run_op(op);
        });
    const Status parked = guard(
        op_name,
        [] { return std::string("parking its error"); },
        [&] {
            runtime::stream_record_error(stream, status.raw_code());
            return Status::Ok();
        });
    return report(parked.ok() ? status : parked);
}

template aclnnStatus run_executor<core::DispatchOp>(aclOpExecutor*,
                                                    aclrtStream,
                                                    const char*) noexcept;
template aclnnStatus run_executor<core::CombineOp>(aclOpExecutor*,
                                                   aclrtStream,
                                                   const char*) noexcept;

}  // namespace moedist::api
