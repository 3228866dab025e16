#include "api/facade.hpp"

#include <cstring>
#include <exception>
#include <mutex>
#include <unordered_set>

#include "runtime/stream.hpp"
#include "runtime/tensor_registry.hpp"

namespace moedist::api {

aclnnStatus report(const Status& status) {
    runtime::set_recent_error(status.ok() ? std::string() : status.message());
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
}  // namespace

core::CallExtras call_extras(const char* group_tp, bool x_active_mask) {
    core::CallExtras extras;
    extras.group_tp = group_tp != nullptr ? group_tp : "";
    extras.x_active_mask = x_active_mask;
    return extras;
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

aclOpExecutor* register_executor(aclOpExecutor* executor) {
    std::lock_guard<std::mutex> lock(executors_mutex);
    live_executors().insert(executor);
    return executor;
}

Status view_of(const aclTensor* tensor, const char* name, TensorView* out) {
    if (Status s = require_tensor(tensor, name); !s.ok()) return s;
    if (!tensor->dtype_known) {
        return {Code::kInvalidParam,
                std::string(name) + " dtype must be one moedist supports, got aclDataType " +
                    std::to_string(static_cast<int>(tensor->acl_dtype))};
    }
    *out = tensor->view;
    return Status::Ok();
}

Status optional_view_of(const aclTensor* tensor, const char* name, std::optional<TensorView>* out) {
    out->reset();
    if (tensor == nullptr) return Status::Ok();
    TensorView view;
    if (Status s = view_of(tensor, name, &view); !s.ok()) return s;
    *out = view;
    return Status::Ok();
}

Status find_group(const char* name, const char* param, int64_t rank, Communicator* out) {
    if (name == nullptr)
        return {Code::kNullptr, std::string(param) + " must be non-null, got nullptr"};
    const std::size_t length = std::strlen(name);
    if (length == 0 || length >= 128) {
        return {Code::kNullptr,
                std::string(param) + " length must be in [1, 128), got " + std::to_string(length)};
    }
    if (rank < 0 || rank > INT32_MAX) {
        return {Code::kInnerTiling,
                std::string(param) + " rank must be >= 0, got " + std::to_string(rank)};
    }
    return Communicator::find(name, static_cast<int>(rank), out);
}

aclnnStatus run_executor(aclOpExecutor* executor, aclrtStream stream, const char* op_name) {
    {
        std::lock_guard<std::mutex> lock(executors_mutex);
        if (executor == nullptr || live_executors().erase(executor) == 0) {
            return report({Code::kNullptr,
                           std::string(op_name) +
                               " executor must be one phase 1 returned and not yet run, got " +
                               (executor == nullptr ? "nullptr" : "an unknown or used one")});
        }
    }
    Status status;
    try {
        if (auto* dispatch = std::get_if<core::DispatchOp>(&executor->op)) {
            status = core::run_dispatch(*dispatch);
        } else {
            status = core::run_combine(std::get<core::CombineOp>(executor->op));
        }
    } catch (const std::exception& e) {
        status = {Code::kInternal, std::string(op_name) + " failed: " + e.what()};
    } catch (...) {
        status = {Code::kInternal, std::string(op_name) + " failed with an unknown exception"};
    }
    delete executor;
    runtime::stream_record_error(stream, status.raw_code());
    return report(status);
}

}  // namespace moedist::api
