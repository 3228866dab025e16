// aclnnMoeDistributeDispatchSetup / Teardown and aclnnMoeDistributeCombineSetup / Teardown:
// Ascend's split operations over the core's split calls (docs/contract.md §13; generic profile,
// V2 semantics, TP = 1).
//
//   DispatchSetup     phase 1: a V2 dispatch prepared with placeholder outputs (address space
//                     only: the send half writes none of them); phase 2: its send half
//                     (core::start_dispatch), V1's expandIdx of the active entries into
//                     expandIdxOut, and the call's token into commCmdInfoOut[0]
//   DispatchTeardown  phase 1: the token's pending call, the real outputs checked by the same
//                     first phase (core::prepare_dispatch); phase 2: outputs bound, receive half,
//                     epRecvCounts kept under assistInfoForCombine's address for the combine
//   CombineSetup      records expandX, expertIds and assistInfoForCombine under a token
//   CombineTeardown   a V2 combine of what its Setup recorded, with the weights, mask and
//                     sharedExpertX Ascend gives only here
//
// Quant modes: 0 and 2 (expandX in x's dtype, or int8 with fp32 dynamicScales), the two Ascend's
// Setup header allows. The CalcOutputSize helpers give Ascend's sizes for the outputs.
#include <sys/mman.h>

#include <cstring>
#include <map>
#include <mutex>

#include "aclnnop/aclnn_moe_distribute_combine_setup.h"
#include "aclnnop/aclnn_moe_distribute_combine_teardown.h"
#include "aclnnop/aclnn_moe_distribute_dispatch_setup.h"
#include "aclnnop/aclnn_moe_distribute_dispatch_teardown.h"
#include "api/facade.hpp"
#include "core/pending.hpp"
#include "core/tensor_access.hpp"

namespace moedist::api {
namespace {

// Address space that is never touched: the placeholder outputs of a dispatch Setup.
struct Reserved {
    void* base = nullptr;
    std::size_t bytes = 0;
    explicit Reserved(std::size_t n) : bytes(n > 0 ? n : 1) {
        base = mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (base == MAP_FAILED) base = nullptr;
    }
    ~Reserved() {
        if (base != nullptr) munmap(base, bytes);
    }
    Reserved(const Reserved&) = delete;
    Reserved& operator=(const Reserved&) = delete;
};

struct PendingDispatch {
    std::unique_ptr<core::PendingCall> call;
    core::DispatchOp op;  // the Setup's (inputs and attributes)
    std::unique_ptr<Reserved> placeholder;
    std::vector<int64_t> token_nums;
    std::vector<int32_t> assist;
    std::vector<int32_t> recv_counts;  // epRecvCounts: Ascend's Teardown has no such output
};

struct RecordedCombine {
    TensorView expand_x, expert_ids, assist;
    MoeConfig config;
};

std::mutex split_mutex;
int32_t next_token = 1;
std::map<int32_t, PendingDispatch>& pending_dispatches() {
    static std::map<int32_t, PendingDispatch> m;
    return m;
}
std::map<int32_t, RecordedCombine>& recorded_combines() {
    static std::map<int32_t, RecordedCombine> m;
    return m;
}
// epRecvCounts of completed Teardowns, by their assistInfoForCombine's address (the newest 64).
std::map<const void*, std::shared_ptr<std::vector<int32_t>>>& counts_by_assist() {
    static std::map<const void*, std::shared_ptr<std::vector<int32_t>>> m;
    return m;
}
std::vector<const void*>& counts_order() {
    static std::vector<const void*> v;
    return v;
}

Status unsupported_quant(int64_t quant_mode) {
    if (quant_mode == 0 || quant_mode == 2) return Status::Ok();
    return {Code::kInnerTiling,
            "quantMode of the Setup/Teardown operations must be 0 or 2 in moedist, got " +
                std::to_string(quant_mode)};
}

MoeConfig split_config(const char* comm_alg,
                       int64_t ep_world_size,
                       int64_t ep_rank_id,
                       int64_t moe_expert_num,
                       int64_t expert_shard_type,
                       int64_t shared_expert_num,
                       int64_t shared_expert_rank_num,
                       int64_t global_bs) {
    MoeConfig config;
    config.api = Api::kV2;
    config.ep_world_size = ep_world_size;
    config.ep_rank_id = ep_rank_id;
    config.moe_expert_num = moe_expert_num;
    config.expert_shard_type = expert_shard_type;
    config.shared_expert_num = shared_expert_num;
    config.shared_expert_rank_num = shared_expert_rank_num;
    config.global_bs = global_bs;
    config.comm_alg = comm_alg_of(comm_alg);
    return config;
}

// The token a Setup wrote into commCmdInfo[0].
Status token_of(const aclTensor* comm_cmd_info,
                const char* what,
                Bindings* bindings,
                int32_t* token) {
    TensorView info;
    if (Status s = view_of(comm_cmd_info, "commCmdInfo", &info, bindings); !s.ok()) return s;
    if (info.dtype != DType::kInt32 || info.numel() < 1) {
        return {Code::kInvalidParam,
                std::string(what) + ": commCmdInfo must be int32 with at least 1 entry"};
    }
    std::memcpy(token, info.data, sizeof(int32_t));
    return Status::Ok();
}

Status write_token(const TensorView& info, int32_t token) {
    if (info.dtype != DType::kInt32 || info.numel() < 1)
        return {Code::kInvalidParam, "commCmdInfoOut must be int32 with at least 1 entry"};
    std::memcpy(info.data, &token, sizeof(token));
    return Status::Ok();
}

// V1's expandIdx over the active entries (0 for inactive ones), from this rank's ids and mask.
void write_expand_idx(const core::DispatchOp& op, const TensorView& out) {
    std::map<int32_t, int32_t> seen;
    const int64_t bs = op.num_tokens, k = op.top_k;
    for (int64_t t = 0; t < bs; ++t) {
        for (int64_t j = 0; j < k; ++j) {
            bool active = true;
            if (op.in.x_active_mask) {
                const TensorView& m = *op.in.x_active_mask;
                active = m.ndim == 1 ? core::load1<uint8_t>(m, t) != 0
                                     : core::load2<uint8_t>(m, t, j) != 0;
            }
            const int32_t id = core::load2<int32_t>(op.in.expert_ids, t, j);
            const int32_t value = active ? seen[id]++ : 0;
            std::memcpy(static_cast<char*>(out.data) + (t * k + j) * out.stride(0) * 4, &value, 4);
        }
    }
}

constexpr uint64_t align_up(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }

// Ascend's CalcOutputSize helpers, from the tensors' shapes and the attributes alone.
struct SetupSizes {
    uint64_t token_msg = 0, expand_idx = 0, assist = 0, comm_cmd_info = 0;
};

Status dispatch_setup_sizes(const aclTensor* x,
                            const aclTensor* expert_ids,
                            const MoeConfig& config,
                            SetupSizes* sizes) {
    Bindings bindings;
    TensorView xv, ids;
    if (Status s = view_of(x, "x", &xv, &bindings); !s.ok()) return s;
    if (Status s = view_of(expert_ids, "expertIds", &ids, &bindings); !s.ok()) return s;
    if (xv.ndim != 2 || ids.ndim != 2) return {Code::kInvalidParam, "x and expertIds must be 2-D"};
    if (Status s = unsupported_quant(config.quant_mode); !s.ok()) return s;
    if (Status s = config.validate(); !s.ok()) return s;
    const auto bs = static_cast<uint64_t>(xv.dim(0)), h = static_cast<uint64_t>(xv.dim(1)),
               k = static_cast<uint64_t>(ids.dim(1));
    const DispatchShapes shapes = config.shapes(xv.dim(0), ids.dim(1), xv.dim(1), xv.dtype);
    sizes->token_msg =
        config.quant_mode == 0 ? align_up(h, 256) : align_up(align_up(h, 32) + 4, 512);
    sizes->expand_idx = bs * k;
    sizes->assist = 128 * static_cast<uint64_t>(shapes.capacity);
    sizes->comm_cmd_info =
        (bs * (k + static_cast<uint64_t>(config.shared_expert_num)) +
         static_cast<uint64_t>(config.ep_world_size * config.local_expert_num())) *
        16;
    return Status::Ok();
}

Status combine_setup_sizes(const aclTensor* expand_x, int64_t ep_world_size, SetupSizes* sizes) {
    Bindings bindings;
    TensorView xv;
    if (Status s = view_of(expand_x, "expandX", &xv, &bindings); !s.ok()) return s;
    if (xv.ndim != 2 || xv.dim(0) <= 0 || xv.dim(1) <= 0)
        return {Code::kInvalidParam, "expandX must be 2-D and not empty"};
    if (ep_world_size < 1)
        return {Code::kInvalidParam,
                "epWorldSize must be positive, got " + std::to_string(ep_world_size)};
    const auto a = static_cast<uint64_t>(xv.dim(0)), h = static_cast<uint64_t>(xv.dim(1));
    sizes->token_msg = align_up(align_up(h, 32) + align_up(h, 8) / 8 * 4, 512);
    sizes->comm_cmd_info = (a + static_cast<uint64_t>(ep_world_size)) * 16;
    return Status::Ok();
}

}  // namespace
}  // namespace moedist::api

using namespace moedist;
using namespace moedist::api;

extern "C" {

aclnnStatus aclnnMoeDistributeDispatchSetupGetWorkspaceSize(const aclTensor* x,
                                                            const aclTensor* expertIds,
                                                            const aclTensor* scalesOptional,
                                                            const aclTensor* xActiveMaskOptional,
                                                            const char* groupEp,
                                                            int64_t epWorldSize,
                                                            int64_t epRankId,
                                                            int64_t moeExpertNum,
                                                            int64_t expertShardType,
                                                            int64_t sharedExpertNum,
                                                            int64_t sharedExpertRankNum,
                                                            int64_t quantMode,
                                                            int64_t globalBs,
                                                            int64_t commType,
                                                            const char* commAlg,
                                                            aclTensor* yOut,
                                                            aclTensor* expandIdxOut,
                                                            aclTensor* commCmdInfoOut,
                                                            uint64_t* workspaceSize,
                                                            aclOpExecutor** executor) {
    (void)commType;
    return split_phase_one<core::DispatchOp>(
        "aclnnMoeDistributeDispatchSetupGetWorkspaceSize",
        workspaceSize,
        executor,
        [&](core::DispatchOp* op, Bindings* bindings, aclOpExecutor* made) -> Status {
            MoeConfig config = split_config(commAlg,
                                            epWorldSize,
                                            epRankId,
                                            moeExpertNum,
                                            expertShardType,
                                            sharedExpertNum,
                                            sharedExpertRankNum,
                                            globalBs);
            config.quant_mode = quantMode;
            config.expert_token_nums_type =
                1;  // counts; a Teardown asking for prefix sums gets them
            if (Status s = unsupported_quant(quantMode); !s.ok()) return s;
            DispatchInputs in;
            if (Status s = view_of(x, "x", &in.x, bindings); !s.ok()) return s;
            if (Status s = view_of(expertIds, "expertIds", &in.expert_ids, bindings); !s.ok())
                return s;
            if (Status s = optional_view_of(scalesOptional, "scales", &in.scales, bindings);
                !s.ok())
                return s;
            if (Status s = optional_view_of(
                    xActiveMaskOptional, "xActiveMask", &in.x_active_mask, bindings);
                !s.ok())
                return s;
            TensorView y, expand_idx, info;
            if (Status s = view_of(yOut, "yOut", &y, bindings); !s.ok()) return s;
            if (Status s = view_of(expandIdxOut, "expandIdxOut", &expand_idx, bindings); !s.ok())
                return s;
            if (Status s = view_of(commCmdInfoOut, "commCmdInfoOut", &info, bindings); !s.ok())
                return s;
            if (in.x.ndim != 2 || in.expert_ids.ndim != 2)
                return {Code::kInnerTiling, "x and expertIds must be 2-D"};
            if (expand_idx.dtype != DType::kInt32 || expand_idx.ndim != 1 ||
                expand_idx.numel() < in.expert_ids.numel())
                return {Code::kInnerTiling, "expandIdxOut must be int32 (>= BS*K)"};
            if (Status s = config.validate(); !s.ok()) return s;
            Communicator ep;
            std::optional<Communicator> tp;
            if (Status s = find_groups(config, groupEp, "", &ep, &tp); !s.ok()) return s;
            // Placeholder outputs: the shapes the first phase checks, in untouched address space.
            const int64_t bs = in.x.dim(0), k = in.expert_ids.dim(1), h = in.x.dim(1);
            const DispatchShapes shapes = config.shapes(bs, k, h, in.x.dtype);
            const DType expand_dtype = quantMode == 2 ? DType::kInt8 : in.x.dtype;
            auto pending = std::make_shared<PendingDispatch>();
            const auto rows = static_cast<std::size_t>(shapes.expand_x_rows);
            pending->placeholder =
                std::make_unique<Reserved>(rows * static_cast<std::size_t>(h) * 2 + rows * 4);
            if (pending->placeholder->base == nullptr)
                return {Code::kRuntime,
                        "DispatchSetup must reserve address space for its outputs, got none"};
            auto* base = static_cast<std::byte*>(pending->placeholder->base);
            DispatchOutputs out;
            out.expand_x = TensorView::contiguous(base, expand_dtype, {shapes.expand_x_rows, h});
            if (shapes.makes_scales)
                out.dynamic_scales =
                    TensorView::contiguous(base + rows * static_cast<std::size_t>(h) * 2,
                                           DType::kFloat32,
                                           {shapes.expand_x_rows});
            pending->token_nums.assign(static_cast<std::size_t>(shapes.expert_token_nums), 0);
            pending->assist.assign(static_cast<std::size_t>(shapes.assist_info), 0);
            pending->recv_counts.assign(static_cast<std::size_t>(shapes.ep_recv_counts), 0);
            out.expert_token_nums = TensorView::contiguous(
                pending->token_nums.data(), DType::kInt64, {shapes.expert_token_nums});
            out.assist_info =
                TensorView::contiguous(pending->assist.data(), DType::kInt32, {shapes.assist_info});
            out.ep_recv_counts = TensorView::contiguous(
                pending->recv_counts.data(), DType::kInt32, {shapes.ep_recv_counts});
            core::CallExtras extras = call_extras("", xActiveMaskOptional != nullptr);
            if (Status s = core::prepare_dispatch(config, ep, tp, in, out, extras, op); !s.ok())
                return s;
            made->runner = [op, pending, expand_idx, info]() -> Status {
                std::lock_guard<std::mutex> lock(split_mutex);
                pending->op = *op;
                if (Status s = core::start_dispatch(*op, &pending->call); !s.ok()) return s;
                write_expand_idx(*op, expand_idx);
                const int32_t token = next_token++;
                pending_dispatches()[token] = std::move(*pending);
                return write_token(info, token);
            };
            return Status::Ok();
        });
}

aclnnStatus aclnnMoeDistributeDispatchSetup(void* workspace,
                                            uint64_t workspaceSize,
                                            aclOpExecutor* executor,
                                            aclrtStream stream) {
    (void)workspace;
    (void)workspaceSize;
    return run_executor<core::DispatchOp>(executor, stream, "aclnnMoeDistributeDispatchSetup");
}

aclnnStatus aclnnMoeDistributeDispatchTeardownGetWorkspaceSize(const aclTensor* x,
                                                               const aclTensor* y,
                                                               const aclTensor* expertIds,
                                                               const aclTensor* commCmdInfo,
                                                               const char* groupEp,
                                                               int64_t epWorldSize,
                                                               int64_t epRankId,
                                                               int64_t moeExpertNum,
                                                               int64_t expertShardType,
                                                               int64_t sharedExpertNum,
                                                               int64_t sharedExpertRankNum,
                                                               int64_t quantMode,
                                                               int64_t globalBs,
                                                               int64_t expertTokenNumsType,
                                                               int64_t commType,
                                                               const char* commAlg,
                                                               aclTensor* expandXOut,
                                                               aclTensor* dynamicScalesOut,
                                                               aclTensor* assistInfoForCombineOut,
                                                               aclTensor* expertTokenNumsOut,
                                                               uint64_t* workspaceSize,
                                                               aclOpExecutor** executor) {
    (void)x;
    (void)y;
    (void)expertIds;
    (void)commType;
    (void)epWorldSize;
    (void)moeExpertNum;
    (void)expertShardType;
    (void)sharedExpertNum;
    (void)sharedExpertRankNum;
    (void)quantMode;
    (void)globalBs;
    (void)commAlg;
    return split_phase_one<core::DispatchOp>(
        "aclnnMoeDistributeDispatchTeardownGetWorkspaceSize",
        workspaceSize,
        executor,
        [&](core::DispatchOp* op, Bindings* bindings, aclOpExecutor* made) -> Status {
            int32_t token = 0;
            if (Status s = token_of(commCmdInfo, "DispatchTeardown", bindings, &token); !s.ok())
                return s;
            if (expertTokenNumsType != 0 && expertTokenNumsType != 1)
                return {Code::kInnerTiling,
                        "expertTokenNumsType must be 0 or 1, got " +
                            std::to_string(expertTokenNumsType)};
            std::lock_guard<std::mutex> lock(split_mutex);
            auto found = pending_dispatches().find(token);
            if (found == pending_dispatches().end() ||
                found->second.op.config.ep_rank_id != epRankId) {
                return {Code::kInvalidParam,
                        "DispatchTeardown: commCmdInfo must name a pending DispatchSetup of this "
                        "rank, got " +
                            std::to_string(token)};
            }
            const core::DispatchOp& setup = found->second.op;
            if (groupEp == nullptr ||
                setup.ep.name() != std::string(groupEp, strnlen(groupEp, kGroupNameBytes))) {
                return {Code::kInvalidParam,
                        "DispatchTeardown: groupEp must be its Setup's '" + setup.ep.name() + "'"};
            }
            DispatchOutputs out;
            if (Status s = view_of(expandXOut, "expandX", &out.expand_x, bindings); !s.ok())
                return s;
            TensorView assist;
            if (Status s =
                    view_of(assistInfoForCombineOut, "assistInfoForCombine", &assist, bindings);
                !s.ok())
                return s;
            out.assist_info = assist;
            if (Status s = view_of(
                    expertTokenNumsOut, "expertTokenNums", &out.expert_token_nums, bindings);
                !s.ok())
                return s;
            if (setup.format.makes_scales()) {
                if (Status s = optional_view_of(
                        dynamicScalesOut, "dynamicScales", &out.dynamic_scales, bindings);
                    !s.ok())
                    return s;
            }
            PendingDispatch& p = found->second;
            out.ep_recv_counts = TensorView::contiguous(
                p.recv_counts.data(), DType::kInt32, {static_cast<int64_t>(p.recv_counts.size())});
            // The same first phase the Setup passed, with the real outputs.
            if (Status s =
                    core::prepare_dispatch(setup.config,
                                           setup.ep,
                                           setup.tp,
                                           setup.in,
                                           out,
                                           call_extras("", setup.in.x_active_mask.has_value()),
                                           op);
                !s.ok())
                return s;
            if (op->out.expand_x.dtype != setup.out.expand_x.dtype) {
                return {
                    Code::kInvalidParam,
                    "DispatchTeardown: expandX must have the dtype its Setup's quantMode gives (" +
                        std::string(dtype_name(setup.out.expand_x.dtype)) + "), got " +
                        dtype_name(op->out.expand_x.dtype)};
            }
            made->runner = [token, op, expertTokenNumsType]() -> Status {
                std::unique_lock<std::mutex> held(split_mutex);
                auto it = pending_dispatches().find(token);
                if (it == pending_dispatches().end())
                    return {Code::kInvalidParam,
                            "DispatchTeardown: its Setup's call is gone (torn down twice?)"};
                core::PendingCall& call = *it->second.call;
                held.unlock();  // the receive half waits for peers: other ranks' calls go on
                if (Status s = call.rebind_outputs(op->out); !s.ok()) return s;
                Status result = call.complete();
                if (!result.ok() && !call.completed())
                    return result;  // out of order: still pending
                held.lock();
                std::vector<int32_t> counts = std::move(it->second.recv_counts);
                pending_dispatches().erase(it);
                if (result.ok() && expertTokenNumsType == 0) {  // prefix sums
                    int64_t running = 0;
                    for (int64_t e = 0; e < op->out.expert_token_nums.numel(); ++e) {
                        auto* at = static_cast<char*>(op->out.expert_token_nums.data) +
                                   e * op->out.expert_token_nums.stride(0) * 8;
                        int64_t v = 0;
                        std::memcpy(&v, at, 8);
                        running += v;
                        std::memcpy(at, &running, 8);
                    }
                }
                const void* key = op->out.assist_info->data;
                counts_by_assist()[key] = std::make_shared<std::vector<int32_t>>(std::move(counts));
                counts_order().push_back(key);
                if (counts_order().size() > 64) {
                    counts_by_assist().erase(counts_order().front());
                    counts_order().erase(counts_order().begin());
                }
                return result;
            };
            return Status::Ok();
        });
}

aclnnStatus aclnnMoeDistributeDispatchTeardown(void* workspace,
                                               uint64_t workspaceSize,
                                               aclOpExecutor* executor,
                                               aclrtStream stream) {
    (void)workspace;
    (void)workspaceSize;
    return run_executor<core::DispatchOp>(executor, stream, "aclnnMoeDistributeDispatchTeardown");
}

aclnnStatus aclnnMoeDistributeCombineSetupGetWorkspaceSize(const aclTensor* expandX,
                                                           const aclTensor* expertIds,
                                                           const aclTensor* assistInfoForCombine,
                                                           const char* groupEp,
                                                           int64_t epWorldSize,
                                                           int64_t epRankId,
                                                           int64_t moeExpertNum,
                                                           int64_t expertShardType,
                                                           int64_t sharedExpertNum,
                                                           int64_t sharedExpertRankNum,
                                                           int64_t globalBs,
                                                           int64_t commQuantMode,
                                                           int64_t commType,
                                                           const char* commAlg,
                                                           aclTensor* quantExpandXOut,
                                                           aclTensor* commCmdInfoOut,
                                                           uint64_t* workspaceSize,
                                                           aclOpExecutor** executor) {
    (void)commType;
    (void)quantExpandXOut;
    return split_phase_one<core::DispatchOp>(
        "aclnnMoeDistributeCombineSetupGetWorkspaceSize",
        workspaceSize,
        executor,
        [&](core::DispatchOp* op, Bindings* bindings, aclOpExecutor* made) -> Status {
            RecordedCombine rec;
            if (Status s = view_of(expandX, "expandX", &rec.expand_x, bindings); !s.ok()) return s;
            if (Status s = view_of(expertIds, "expertIds", &rec.expert_ids, bindings); !s.ok())
                return s;
            if (Status s =
                    view_of(assistInfoForCombine, "assistInfoForCombine", &rec.assist, bindings);
                !s.ok())
                return s;
            TensorView info;
            if (Status s = view_of(commCmdInfoOut, "commCmdInfoOut", &info, bindings); !s.ok())
                return s;
            rec.config = split_config(commAlg,
                                      epWorldSize,
                                      epRankId,
                                      moeExpertNum,
                                      expertShardType,
                                      sharedExpertNum,
                                      sharedExpertRankNum,
                                      globalBs);
            rec.config.comm_quant_mode = commQuantMode;
            if (Status s = rec.config.validate(); !s.ok()) return s;
            Communicator ep;
            std::optional<Communicator> tp;
            if (Status s = find_groups(rec.config, groupEp, "", &ep, &tp); !s.ok()) return s;
            made->runner = [rec, info, op]() -> Status {
                if (!op->pre_error.ok()) return op->pre_error;  // a tensor freed since phase 1
                std::lock_guard<std::mutex> lock(split_mutex);
                const int32_t token = next_token++;
                recorded_combines()[token] = rec;
                return write_token(info, token);
            };
            return Status::Ok();
        });
}

aclnnStatus aclnnMoeDistributeCombineSetup(void* workspace,
                                           uint64_t workspaceSize,
                                           aclOpExecutor* executor,
                                           aclrtStream stream) {
    (void)workspace;
    (void)workspaceSize;
    return run_executor<core::DispatchOp>(executor, stream, "aclnnMoeDistributeCombineSetup");
}

aclnnStatus aclnnMoeDistributeCombineTeardownGetWorkspaceSize(
    const aclTensor* expandX,
    const aclTensor* quantExpandX,
    const aclTensor* expertIds,
    const aclTensor* expandIdx,
    const aclTensor* expertScales,
    const aclTensor* commCmdInfo,
    const aclTensor* xActiveMaskOptional,
    const aclTensor* sharedExpertXOptional,
    const char* groupEp,
    int64_t epWorldSize,
    int64_t epRankId,
    int64_t moeExpertNum,
    int64_t expertShardType,
    int64_t sharedExpertNum,
    int64_t sharedExpertRankNum,
    int64_t globalBs,
    int64_t commQuantMode,
    int64_t commType,
    const char* commAlg,
    aclTensor* xOut,
    uint64_t* workspaceSize,
    aclOpExecutor** executor) {
    (void)expandX;
    (void)quantExpandX;
    (void)expandIdx;
    (void)commType;
    (void)epWorldSize;
    (void)moeExpertNum;
    (void)expertShardType;
    (void)sharedExpertNum;
    (void)sharedExpertRankNum;
    (void)globalBs;
    (void)commQuantMode;
    (void)commAlg;
    return split_phase_one<core::CombineOp>(
        "aclnnMoeDistributeCombineTeardownGetWorkspaceSize",
        workspaceSize,
        executor,
        [&](core::CombineOp* op, Bindings* bindings, aclOpExecutor* made) -> Status {
            int32_t token = 0;
            if (Status s = token_of(commCmdInfo, "CombineTeardown", bindings, &token); !s.ok())
                return s;
            RecordedCombine rec;
            std::shared_ptr<std::vector<int32_t>> counts;
            {
                std::lock_guard<std::mutex> lock(split_mutex);
                auto found = recorded_combines().find(token);
                if (found == recorded_combines().end() ||
                    found->second.config.ep_rank_id != epRankId) {
                    return {
                        Code::kInvalidParam,
                        "CombineTeardown: commCmdInfo must name a CombineSetup of this rank, got " +
                            std::to_string(token)};
                }
                rec = found->second;
                recorded_combines().erase(found);
                auto c = counts_by_assist().find(rec.assist.data);
                if (c == counts_by_assist().end()) {
                    return {Code::kInvalidParam,
                            "CombineTeardown: assistInfoForCombine must be a DispatchTeardown's "
                            "output"};
                }
                counts = c->second;  // held by the executor until the combine has run
            }
            CombineInputs in;
            in.expand_x = rec.expand_x;
            if (Status s = view_of(expertIds, "expertIds", &in.expert_ids, bindings); !s.ok())
                return s;
            in.assist_info = rec.assist;
            in.ep_send_counts = TensorView::contiguous(
                counts->data(), DType::kInt32, {static_cast<int64_t>(counts->size())});
            if (Status s = view_of(expertScales, "expertScales", &in.expert_scales, bindings);
                !s.ok())
                return s;
            if (Status s = optional_view_of(
                    xActiveMaskOptional, "xActiveMask", &in.x_active_mask, bindings);
                !s.ok())
                return s;
            if (Status s = optional_view_of(
                    sharedExpertXOptional, "sharedExpertX", &in.shared_expert_x, bindings);
                !s.ok())
                return s;
            TensorView x_out;
            if (Status s = view_of(xOut, "xOut", &x_out, bindings); !s.ok()) return s;
            Communicator ep;
            std::optional<Communicator> tp;
            if (Status s = find_groups(rec.config, groupEp, "", &ep, &tp); !s.ok()) return s;
            if (Status s = core::prepare_combine(rec.config,
                                                 ep,
                                                 tp,
                                                 in,
                                                 x_out,
                                                 call_extras("", xActiveMaskOptional != nullptr),
                                                 op);
                !s.ok())
                return s;
            made->runner = [op, counts]() { return core::run_combine(*op); };
            return Status::Ok();
        });
}

aclnnStatus aclnnMoeDistributeCombineTeardown(void* workspace,
                                              uint64_t workspaceSize,
                                              aclOpExecutor* executor,
                                              aclrtStream stream) {
    (void)workspace;
    (void)workspaceSize;
    return run_executor<core::CombineOp>(executor, stream, "aclnnMoeDistributeCombineTeardown");
}

aclnnStatus aclnnMoeDistributeDispatchSetupTeardownCalcOutputSize(
    const aclTensor* x,
    const aclTensor* expertIds,
    const aclTensor* scalesOptional,
    const aclTensor* xActiveMaskOptional,
    const char* groupEp,
    int64_t epWorldSize,
    int64_t epRankId,
    int64_t moeExpertNum,
    int64_t expertShardType,
    int64_t sharedExpertNum,
    int64_t sharedExpertRankNum,
    int64_t quantMode,
    int64_t globalBs,
    int64_t expertTokenNumsType,
    int64_t commType,
    const char* commAlg,
    uint64_t& tokenMsgSize,
    uint64_t& expandIdxOutSize,
    uint64_t& assistInfoForCombineOutSize,
    uint64_t& commCmdInfoOutSize) {
    (void)scalesOptional;
    (void)xActiveMaskOptional;
    (void)groupEp;
    (void)expertTokenNumsType;
    (void)commType;
    try {
        MoeConfig config = split_config(commAlg,
                                        epWorldSize,
                                        epRankId,
                                        moeExpertNum,
                                        expertShardType,
                                        sharedExpertNum,
                                        sharedExpertRankNum,
                                        globalBs);
        config.quant_mode = quantMode;
        SetupSizes sizes;
        if (Status s = dispatch_setup_sizes(x, expertIds, config, &sizes); !s.ok())
            return report(s);
        tokenMsgSize = sizes.token_msg;
        expandIdxOutSize = sizes.expand_idx;
        assistInfoForCombineOutSize = sizes.assist;
        commCmdInfoOutSize = sizes.comm_cmd_info;
        return report(Status::Ok());
    } catch (...) {
        return report({Code::kRuntime, "DispatchSetupTeardownCalcOutputSize ran out of memory"});
    }
}

aclnnStatus aclnnMoeDistributeCombineSetupTeardownCalcOutputSize(
    const aclTensor* expandX,
    const aclTensor* expertIds,
    const aclTensor* assistInfoForCombine,
    const char* groupEp,
    int64_t epWorldSize,
    int64_t epRankId,
    int64_t moeExpertNum,
    int64_t expertShardType,
    int64_t sharedExpertNum,
    int64_t sharedExpertRankNum,
    int64_t globalBs,
    int64_t commQuantMode,
    int64_t commType,
    const char* commAlg,
    uint64_t& tokenMsgSize,
    uint64_t& commCmdInfoOutSize) {
    (void)expertIds;
    (void)assistInfoForCombine;
    (void)groupEp;
    (void)epRankId;
    (void)moeExpertNum;
    (void)expertShardType;
    (void)sharedExpertNum;
    (void)sharedExpertRankNum;
    (void)globalBs;
    (void)commQuantMode;
    (void)commType;
    (void)commAlg;
    try {
        SetupSizes sizes;
        if (Status s = combine_setup_sizes(expandX, epWorldSize, &sizes); !s.ok()) return report(s);
        tokenMsgSize = sizes.token_msg;
        commCmdInfoOutSize = sizes.comm_cmd_info;
        return report(Status::Ok());
    } catch (...) {
        return report({Code::kRuntime, "CombineSetupTeardownCalcOutputSize ran out of memory"});
    }
}

}  // extern "C"
