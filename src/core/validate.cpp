// The first phase: every check that needs no peer, read top to bottom like the constraint
// list of Ascend's documentation. Codes: 161001 null, 161002 dtype, 561002 shape or attribute
// (docs/contract.md §7). GCC 12 reports a false -Wrestrict inside std::string's operator+ (GCC PR
// 105329) for several messages built here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

#include <algorithm>
#include <climits>
#include <sstream>
#include <string>

#include "core/call_rounds.hpp"
#include "core/ops.hpp"
#include "core/profile.hpp"
#include "core/shapes.hpp"
#include "core/tensor_access.hpp"
#include "core/validate_parts.hpp"
#include "core/validate_util.hpp"
#include "transport/access.hpp"
#include "util/env.hpp"

namespace moedist::core {
namespace {
std::string int128_text(__int128 v) {
    if (v == 0) return "0";
    std::string digits;
    const bool negative = v < 0;
    for (; v != 0; v /= 10)
        digits.insert(digits.begin(), static_cast<char>('0' + (negative ? -(v % 10) : v % 10)));
    return negative ? "-" + digits : digits;
}

// A (docs/contract.md §1) with T·A inside int32, since row counts travel as int32 (epRecvCounts).
Status check_capacity(const MoeConfig& config, int64_t bs, int64_t top_k, int64_t* capacity) {
    MOEDIST_REQUIRE(bs >= 0 && bs <= MoeConfig::kMaxGlobalBs,
                    Code::kInnerTiling,
                    "BS",
                    "in [0, 2^31]",
                    std::to_string(bs));
    const __int128 a = capacity_rows(config, bs, top_k);
    MOEDIST_REQUIRE(a * config.tp_size() <= INT32_MAX,
                    Code::kInnerTiling,
                    "T*A (rows one rank can receive)",
                    "<= 2147483647",
                    int128_text(a * config.tp_size()));
    *capacity = static_cast<int64_t>(a);
    return Status::Ok();
}

// K in [1, E], BS <= maxBs (globalBs != 0), and A (T·A inside int32).
Status check_tokens(
    const MoeConfig& config, int64_t bs, int64_t top_k, const char* bs_name, int64_t* capacity) {
    // V2: K may reach E' = E + Z + C + Q (special experts count).
    const int64_t experts = config.moe_expert_num + (config.v2() ? config.special_expert_num() : 0);
    MOEDIST_REQUIRE(top_k >= 1 && top_k <= experts,
                    Code::kInnerTiling,
                    "K (expertIds dim 1)",
                    std::string("in [1, ") + (config.v2() ? "E'" : "moeExpertNum") + " = " +
                        std::to_string(experts) + "]",
                    std::to_string(top_k));
    if (config.global_bs != 0) {
        MOEDIST_REQUIRE(bs <= config.global_bs / config.ep_world_size,
                        Code::kInnerTiling,
                        bs_name,
                        "<= maxBs = globalBs / epWorldSize = " +
                            std::to_string(config.global_bs / config.ep_world_size),
                        std::to_string(bs));
    }
    // expandIdx is int32 and indexed by t*K + k.
    MOEDIST_REQUIRE(static_cast<__int128>(bs) * top_k <= INT32_MAX,
                    Code::kInnerTiling,
                    "BS*K (expandIdx entries)",
                    "<= 2147483647",
                    int128_text(static_cast<__int128>(bs) * top_k));
    return check_capacity(config, bs, top_k, capacity);
}

bool is_8bit_float(DType d) {
    return d == DType::kFp8E4M3 || d == DType::kFp8E5M2 || d == DType::kHiFloat8;
}

// docs/contract.md §5's table, dtypes: per quantMode the dtypes of x and expandX, and which of
// scales and dynamicScales the mode needs.
//   mode 0: expandX = x; x fp16/bf16 (scales null) or pre-quantized fp8/hifloat8 (scales (BS)
//           fp32 required, dynamicScales fp32)
//   mode 1: expandX int8 or hifloat8, scales required
//   mode 2: expandX int8/fp8, smooth scales optional, dynamicScales fp32
//   mode 3: expandX fp8, smooth scales optional, dynamicScales fp32
//   mode 4: expandX fp8, scales null, dynamicScales uint8/e8m0
Status check_quant_dtypes(const MoeConfig& config,
                          const DispatchInputs& in,
                          const DispatchOutputs& out) {
    const QuantMode mode = config.quant();
    const std::string when = "when quantMode = " + std::to_string(config.quant_mode);
    if (mode == QuantMode::kNone) {
        MOEDIST_TRY(check_dtype(in.x,
                                "x",
                                {DType::kFloat16,
                                 DType::kBFloat16,
                                 DType::kFp8E4M3,
                                 DType::kFp8E5M2,
                                 DType::kHiFloat8}));
        MOEDIST_TRY(check_dtype(out.expand_x, "expandX", {in.x.dtype}));
    } else {
        MOEDIST_TRY(check_dtype(in.x, "x", {DType::kFloat16, DType::kBFloat16}));
        if (mode == QuantMode::kStatic)
            MOEDIST_TRY(check_dtype(out.expand_x, "expandX", {DType::kInt8, DType::kHiFloat8}));
        if (mode == QuantMode::kPerToken) {
            MOEDIST_TRY(check_dtype(
                out.expand_x, "expandX", {DType::kInt8, DType::kFp8E4M3, DType::kFp8E5M2}));
        }
        if ((mode == QuantMode::kPerGroup || mode == QuantMode::kMx))
            MOEDIST_TRY(check_dtype(out.expand_x, "expandX", {DType::kFp8E4M3, DType::kFp8E5M2}));
    }
    const bool pre_quantized = mode == QuantMode::kNone && is_8bit_float(in.x.dtype);
    if (pre_quantized || mode == QuantMode::kStatic) {
        MOEDIST_REQUIRE(in.scales.has_value(),
                        Code::kNullptr,
                        "scales",
                        pre_quantized ? "non-null for an fp8/hifloat8 x (its per-token scales)"
                                      : "non-null " + when,
                        "nullptr");
    }
    if (in.scales) MOEDIST_TRY(check_dtype(*in.scales, "scales", {DType::kFloat32}));
    if (mode_makes_scales(mode, in.x.dtype)) {
        MOEDIST_REQUIRE(out.dynamic_scales.has_value(),
                        Code::kNullptr,
                        "dynamicScales",
                        "non-null " + when + (pre_quantized ? " with an fp8/hifloat8 x" : ""),
                        "nullptr");
        if (mode == QuantMode::kMx) {
            MOEDIST_TRY(
                check_dtype(*out.dynamic_scales, "dynamicScales", {DType::kUInt8, DType::kE8M0}));
        } else {
            MOEDIST_TRY(check_dtype(*out.dynamic_scales, "dynamicScales", {DType::kFloat32}));
        }
    }
    return Status::Ok();
}

// docs/contract.md §5's table, shapes of scales and dynamicScales (rows_needed = T·A).
Status check_quant_shapes(const MoeConfig& config,
                          const DispatchInputs& in,
                          const DispatchOutputs& out,
                          int64_t bs,
                          int64_t hidden,
                          int64_t rows_needed) {
    const QuantMode mode = config.quant();
    const bool pre_quantized = mode == QuantMode::kNone && is_8bit_float(in.x.dtype);
    // Per-expert scale rows: V1 E + (S > 0) (the shared expert first); V2 N + E.
    const int64_t expert_rows =
        config.v2() ? config.shared_experts() + config.moe_expert_num
                    : config.moe_expert_num + (config.shared_expert_rank_num > 0 ? 1 : 0);
    const std::string per_expert =
        "(" + std::to_string(expert_rows) + ", " + std::to_string(hidden) + ")";
    if (in.scales) {
        const TensorView& s = *in.scales;
        MOEDIST_REQUIRE(s.ndim >= 1 && s.ndim <= 2,
                        Code::kInnerTiling,
                        "scales dims",
                        "1 or 2",
                        std::to_string(s.ndim));
        MOEDIST_TRY(check_rank(s, "scales", s.ndim));
        if (mode == QuantMode::kNone && !pre_quantized) {
            return fail(Code::kInnerTiling,
                        "scales",
                        "nullptr when quantMode = 0 and x is fp16/bf16",
                        "a tensor");
        } else if (pre_quantized) {
            MOEDIST_REQUIRE(s.ndim == 1 && s.dim(0) == bs,
                            Code::kInnerTiling,
                            "scales shape",
                            "(BS,) = (" + std::to_string(bs) + ",)",
                            shape_of(s));
        } else if (mode == QuantMode::kStatic && out.expand_x.dtype == DType::kHiFloat8) {
            MOEDIST_REQUIRE(s.ndim == 1 && s.dim(0) == 1,
                            Code::kInnerTiling,
                            "scales shape",
                            "(1,) for a static hifloat8 expandX",
                            shape_of(s));
        } else if (mode == QuantMode::kStatic) {
            const bool ok = (s.ndim == 1 && (s.dim(0) == 1 || s.dim(0) == hidden)) ||
                            (s.ndim == 2 && s.dim(0) == expert_rows && s.dim(1) == hidden);
            MOEDIST_REQUIRE(ok,
                            Code::kInnerTiling,
                            "scales shape",
                            "(1,), (H,) = (" + std::to_string(hidden) + ",) or " + per_expert,
                            shape_of(s));
        } else if (mode == QuantMode::kMx) {
            return fail(Code::kInnerTiling, "scales", "nullptr when quantMode = 4", "a tensor");
        } else {
            MOEDIST_REQUIRE(s.ndim == 2 && s.dim(0) == expert_rows && s.dim(1) == hidden,
                            Code::kInnerTiling,
                            "scales shape",
                            per_expert,
                            shape_of(s));
        }
    }
    if (pre_quantized || mode == QuantMode::kPerToken) {
        MOEDIST_TRY(check_min_1d(*out.dynamic_scales, "dynamicScales", rows_needed, "T*A"));
        MOEDIST_TRY(check_no_overlap(*out.dynamic_scales, "dynamicScales"));
    } else if (mode == QuantMode::kPerGroup || mode == QuantMode::kMx) {
        const int64_t blocks = scale_columns(mode, hidden);
        MOEDIST_TRY(check_rank(*out.dynamic_scales, "dynamicScales", 2));
        MOEDIST_REQUIRE(
            out.dynamic_scales->dim(0) >= rows_needed && out.dynamic_scales->dim(1) == blocks,
            Code::kInnerTiling,
            "dynamicScales shape",
            "(>= T*A = " + std::to_string(rows_needed) + ", " + std::to_string(blocks) + ")",
            shape_of(*out.dynamic_scales));
        MOEDIST_TRY(check_no_overlap(*out.dynamic_scales, "dynamicScales"));
    }
    return Status::Ok();
}

Status check_communicators(const MoeConfig& config,
                           const Communicator& ep,
                           const std::optional<Communicator>& tp) {
    MOEDIST_REQUIRE(ep.valid(), Code::kNullptr, "groupEp", "a communicator", "none");
    MOEDIST_REQUIRE(ep.size() == config.ep_world_size,
                    Code::kInnerTiling,
                    "epWorldSize",
                    "the size of '" + ep.name() + "' = " + std::to_string(ep.size()),
                    std::to_string(config.ep_world_size));
    MOEDIST_REQUIRE(ep.rank() == config.ep_rank_id,
                    Code::kInnerTiling,
                    "epRankId",
                    "the rank in '" + ep.name() + "' = " + std::to_string(ep.rank()),
                    std::to_string(config.ep_rank_id));
    if (config.tp_size() == 2) {
        MOEDIST_REQUIRE(tp.has_value() && tp->valid(),
                        Code::kNullptr,
                        "groupTp",
                        "a communicator when tpWorldSize = 2",
                        "none");
        MOEDIST_REQUIRE(tp->size() == 2,
                        Code::kInnerTiling,
                        "the size of groupTp '" + tp->name() + "'",
                        "2",
                        std::to_string(tp->size()));
        MOEDIST_REQUIRE(tp->rank() == config.tp_rank_id,
                        Code::kInnerTiling,
                        "tpRankId",
                        "the rank in '" + tp->name() + "' = " + std::to_string(tp->rank()),
                        std::to_string(config.tp_rank_id));
        MOEDIST_REQUIRE(tp->name() != ep.name(),
                        Code::kInnerTiling,
                        "groupTp",
                        "different from groupEp",
                        tp->name());
        MOEDIST_TRY(tp_pair_on_one_node(*transport::Access::endpoint(*tp)));
    }
    return Status::Ok();
}

ProfileFacts facts_of(const MoeConfig& config, const CallExtras& extras, bool combine) {
    ProfileFacts facts;
    facts.config = config;
    facts.combine = combine;
    facts.group_tp = extras.group_tp;
    facts.has_x_active_mask = extras.x_active_mask;
    facts.hccl = extras.hccl ? *extras.hccl : util::hccl_buffer_env();
    facts.op_version = extras.op_version;
    facts.reserved_given = extras.reserved_given;
    return facts;
}

// extra (BS, S) and expandExtra (>= T·A, S) of one dtype, both or neither; S·elem ≤ 64 KiB.
Status check_extra(const DispatchInputs& in, const DispatchOutputs& out, int64_t bs, int64_t rows) {
    if (!in.extra && !out.expand_extra) return Status::Ok();
    MOEDIST_REQUIRE(
        in.extra.has_value() && out.expand_extra.has_value(),
        Code::kNullptr,
        in.extra ? "expandExtra" : "extra",
        in.extra ? "non-null when extra is given" : "non-null when expandExtra is given",
        "nullptr");
    MOEDIST_TRY(check_rank(*in.extra, "extra", 2));
    MOEDIST_TRY(check_rank(*out.expand_extra, "expandExtra", 2));
    MOEDIST_TRY(check_dtype(*out.expand_extra, "expandExtra", {in.extra->dtype}));
    const int64_t cols = in.extra->dim(1);
    MOEDIST_REQUIRE(in.extra->dim(0) == bs && cols >= 1 &&
                        cols * static_cast<int64_t>(dtype_size(in.extra->dtype)) <= kMaxExtraBytes,
                    Code::kInnerTiling,
                    "extra shape",
                    "(BS = " + std::to_string(bs) + ", S) with 1 <= S and S bytes <= 65536",
                    shape_of(*in.extra));
    MOEDIST_REQUIRE(out.expand_extra->dim(0) >= rows && out.expand_extra->dim(1) == cols,
                    Code::kInnerTiling,
                    "expandExtra shape",
                    "(>= T*A = " + std::to_string(rows) + ", S = " + std::to_string(cols) + ")",
                    shape_of(*out.expand_extra));
    return check_no_overlap(*out.expand_extra, "expandExtra");
}

}  // namespace

Status check_dispatch_call(const MoeConfig& config,
                           const DispatchInputs& in,
                           const DispatchOutputs& out,
                           const CallExtras& extras) {
    Soc soc = Soc::kGeneric;
    MOEDIST_TRY(resolve_soc(config, &soc));
    MOEDIST_TRY(config.validate());
    const int64_t T = config.tp_size();

    // dtypes (161002; a missing scales or dynamicScales the mode needs: 161001)
    MOEDIST_TRY(check_quant_dtypes(config, in, out));
    MOEDIST_TRY(check_dtype(in.expert_ids, "expertIds", {DType::kInt32}));
    if (in.expert_scales)
        MOEDIST_TRY(check_dtype(*in.expert_scales, "expertScales", {DType::kFloat32}));
    if (!config.v2()) MOEDIST_TRY(check_dtype(out.expand_idx, "expandIdx", {DType::kInt32}));
    MOEDIST_TRY(check_dtype(out.expert_token_nums, "expertTokenNums", {DType::kInt64}));
    MOEDIST_TRY(check_dtype(out.ep_recv_counts, "epRecvCounts", {DType::kInt32}));
    if (T == 2) {
        MOEDIST_REQUIRE(out.tp_recv_counts.has_value(),
                        Code::kNullptr,
                        "tpRecvCounts",
                        "non-null when tpWorldSize = 2",
                        "nullptr");
        MOEDIST_TRY(check_dtype(*out.tp_recv_counts, "tpRecvCounts", {DType::kInt32}));
    }
    if (out.expand_scales)
        MOEDIST_TRY(check_dtype(*out.expand_scales, "expandScales", {DType::kFloat32}));

    // shapes (561002)
    MOEDIST_TRY(check_rank(in.x, "x", 2));
    MOEDIST_TRY(check_rank(in.expert_ids, "expertIds", 2));
    const int64_t bs = in.x.dim(0);
    const int64_t hidden = in.x.dim(1);
    const int64_t top_k = in.expert_ids.dim(1);
    MOEDIST_REQUIRE(hidden >= 1 && hidden <= kMaxHidden,
                    Code::kInnerTiling,
                    "H (x dim 1)",
                    "in [1, 2^24]",
                    std::to_string(hidden));
    MOEDIST_REQUIRE(in.expert_ids.dim(0) == bs,
                    Code::kInnerTiling,
                    "expertIds dim 0",
                    "BS = " + std::to_string(bs),
                    std::to_string(in.expert_ids.dim(0)));
    int64_t capacity = 0;
    MOEDIST_TRY(check_tokens(config, bs, top_k, "BS (x dim 0)", &capacity));
    MOEDIST_TRY(check_quant_shapes(config, in, out, bs, hidden, T * capacity));
    if (in.expert_scales) {
        MOEDIST_TRY(check_rank(*in.expert_scales, "expertScales", 2));
        MOEDIST_REQUIRE(in.expert_scales->dim(0) == bs && in.expert_scales->dim(1) == top_k,
                        Code::kInnerTiling,
                        "expertScales shape",
                        "(BS, K) = (" + std::to_string(bs) + ", " + std::to_string(top_k) + ")",
                        shape_of(*in.expert_scales));
    }
    const OutputShapes need = output_shapes(config, bs, top_k, hidden, in.x.dtype);
    MOEDIST_TRY(check_rank(out.expand_x, "expandX", 2));
    MOEDIST_REQUIRE(
        out.expand_x.dim(0) >= T * capacity && out.expand_x.dim(1) == hidden,
        Code::kInnerTiling,
        "expandX shape",
        "(>= T*A = " + std::to_string(T * capacity) + ", H = " + std::to_string(hidden) + ")",
        shape_of(out.expand_x));
    MOEDIST_TRY(check_no_overlap(out.expand_x, "expandX"));
    if (config.v2()) {  // no expandIdx: the assist triples instead
        MOEDIST_TRY(check_dispatch_v2(config, in, out, bs, top_k, capacity));
    } else {
        MOEDIST_TRY(check_min_1d(
            out.expand_idx, "expandIdx", static_cast<int64_t>(need.expand_idx), "BS*K"));
        MOEDIST_TRY(check_no_overlap(out.expand_idx, "expandIdx"));
    }
    MOEDIST_TRY(check_min_1d(
        out.expert_token_nums, "expertTokenNums", need.expert_token_nums, "localExpertNum"));
    MOEDIST_TRY(check_no_overlap(out.expert_token_nums, "expertTokenNums"));
    MOEDIST_TRY(check_min_1d(
        out.ep_recv_counts, "epRecvCounts", need.ep_recv_counts, "T*epWorldSize*localExpertNum"));
    MOEDIST_TRY(check_no_overlap(out.ep_recv_counts, "epRecvCounts"));
    if (T == 2) {
        MOEDIST_TRY(
            check_min_1d(*out.tp_recv_counts, "tpRecvCounts", need.tp_recv_counts, "tpWorldSize"));
        MOEDIST_TRY(check_no_overlap(*out.tp_recv_counts, "tpRecvCounts"));
    }
    if (out.expand_scales && in.expert_scales) {
        MOEDIST_TRY(check_min_1d(*out.expand_scales, "expandScales", capacity, "A"));
        MOEDIST_TRY(check_no_overlap(*out.expand_scales, "expandScales"));
    }
    MOEDIST_TRY(check_extra(in, out, bs, T * capacity));

    ProfileFacts facts = facts_of(config, extras, false);
    facts.num_tokens = bs;
    facts.hidden = hidden;
    facts.top_k = top_k;
    facts.x_dtype = in.x.dtype;
    facts.expand_x_dtype = out.expand_x.dtype;
    facts.has_scales = in.scales.has_value();
    facts.has_x_active_mask = extras.x_active_mask || in.x_active_mask.has_value();
    if (T == 2) facts.tp_counts_len = out.tp_recv_counts->dim(0);
    facts.mask_ndim = in.x_active_mask ? in.x_active_mask->ndim : 0;
    facts.has_expert_scales = in.expert_scales.has_value();
    facts.has_expand_scales = out.expand_scales.has_value();
    facts.has_tp_counts = out.tp_recv_counts.has_value();
    facts.has_performance_info = out.performance_info.has_value();
    if (out.assist_info) facts.assist_len = out.assist_info->dim(0);
    return check_profile(soc, facts);
}

Status prepare_dispatch(const MoeConfig& config,
                        const Communicator& ep,
                        const std::optional<Communicator>& tp,
                        const DispatchInputs& in,
                        const DispatchOutputs& out,
                        const CallExtras& extras,
                        DispatchOp* op) {
    MOEDIST_TRY(config.validate());
    MOEDIST_TRY(check_communicators(config, ep, tp));
    MOEDIST_TRY(check_dispatch_call(config, in, out, extras));
    const int64_t bs = in.x.dim(0);
    const int64_t hidden = in.x.dim(1);
    const int64_t top_k = in.expert_ids.dim(1);
    const int64_t T = config.tp_size();

    op->config = config;
    op->ep = ep;
    op->tp = T == 2 ? tp : std::nullopt;
    op->in = in;
    op->out = out;
    op->num_tokens = bs;
    op->top_k = top_k;
    op->hidden = hidden;
    op->format = row_format(config, in.x.dtype, out.expand_x.dtype, in.scales, hidden);
    op->zero_padding = config.zero_padding.value_or(util::zero_padding());
    return Status::Ok();
}

Status check_combine_call(const MoeConfig& config,
                          const CombineInputs& in,
                          const TensorView& x_out,
                          const CallExtras& extras) {
    Soc soc = Soc::kGeneric;
    MOEDIST_TRY(resolve_soc(config, &soc));
    MOEDIST_TRY(config.validate());
    const int64_t T = config.tp_size();

    MOEDIST_TRY(check_dtype(in.expand_x, "expandX", {DType::kFloat16, DType::kBFloat16}));
    MOEDIST_TRY(check_dtype(in.expert_ids, "expertIds", {DType::kInt32}));
    if (!config.v2()) MOEDIST_TRY(check_dtype(in.expand_idx, "expandIdx", {DType::kInt32}));
    MOEDIST_TRY(check_dtype(in.ep_send_counts, "epSendCounts", {DType::kInt32}));
    MOEDIST_TRY(check_dtype(in.expert_scales, "expertScales", {DType::kFloat32}));
    if (T == 2) {
        MOEDIST_REQUIRE(in.tp_send_counts.has_value(),
                        Code::kNullptr,
                        "tpSendCounts",
                        "non-null when tpWorldSize = 2",
                        "nullptr");
        MOEDIST_TRY(check_dtype(*in.tp_send_counts, "tpSendCounts", {DType::kInt32}));
    }
    MOEDIST_TRY(check_dtype(x_out, "x", {in.expand_x.dtype}));

    MOEDIST_TRY(check_rank(in.expert_ids, "expertIds", 2));
    const int64_t bs = in.expert_ids.dim(0);
    const int64_t top_k = in.expert_ids.dim(1);
    MOEDIST_TRY(check_rank(in.expand_x, "expandX", 2));
    const int64_t hidden = in.expand_x.dim(1);
    MOEDIST_REQUIRE(hidden >= 1 && hidden <= kMaxHidden,
                    Code::kInnerTiling,
                    "H (expandX dim 1)",
                    "in [1, 2^24]",
                    std::to_string(hidden));
    int64_t capacity = 0;
    MOEDIST_TRY(check_tokens(config, bs, top_k, "BS (expertIds dim 0)", &capacity));
    MOEDIST_REQUIRE(in.expand_x.dim(0) >= T * capacity,
                    Code::kInnerTiling,
                    "expandX dim 0",
                    ">= T*A = " + std::to_string(T * capacity),
                    std::to_string(in.expand_x.dim(0)));
    const OutputShapes need = output_shapes(config, bs, top_k, hidden, in.expand_x.dtype);
    // expandIdx (V1): BS*K entries, 1-D, or a contiguous (BS, K) tensor (the A2 device checks
    // only the element count; the A3 profile wants 1-D).
    if (config.v2()) {
        // no expandIdx: the assist triples (check_combine_v2)
    } else if (in.expand_idx.ndim == 2) {
        MOEDIST_TRY(check_rank(in.expand_idx, "expandIdx", 2));
        MOEDIST_REQUIRE(in.expand_idx.dim(0) == bs && in.expand_idx.dim(1) == top_k &&
                            (bs <= 1 || in.expand_idx.stride(0) == top_k) &&
                            (top_k <= 1 || in.expand_idx.stride(1) == 1),
                        Code::kInnerTiling,
                        "expandIdx",
                        "BS*K entries: 1-D, or a contiguous (BS, K) = (" + std::to_string(bs) +
                            ", " + std::to_string(top_k) + ")",
                        shape_of(in.expand_idx));
    } else {
        MOEDIST_TRY(check_rank(in.expand_idx, "expandIdx", 1));
        MOEDIST_REQUIRE(static_cast<__int128>(in.expand_idx.dim(0)) == need.expand_idx,
                        Code::kInnerTiling,
                        "expandIdx dim 0",
                        "BS*K = " + int128_text(need.expand_idx) + " (dispatch's expandIdx)",
                        std::to_string(in.expand_idx.dim(0)));
    }
    MOEDIST_TRY(check_min_1d(
        in.ep_send_counts, "epSendCounts", need.ep_recv_counts, "T*epWorldSize*localExpertNum"));
    MOEDIST_TRY(check_rank(in.expert_scales, "expertScales", 2));
    // V2: an empty expertScales (a dim 0) asks for an unweighted sum.
    const bool unweighted = config.v2() && in.expert_scales.numel() == 0;
    MOEDIST_REQUIRE(
        unweighted || (in.expert_scales.dim(0) == bs && in.expert_scales.dim(1) == top_k),
        Code::kInnerTiling,
        "expertScales shape",
        "(BS, K) = (" + std::to_string(bs) + ", " + std::to_string(top_k) + ")",
        shape_of(in.expert_scales));
    if (T == 2) {
        MOEDIST_TRY(
            check_min_1d(*in.tp_send_counts, "tpSendCounts", need.tp_recv_counts, "tpWorldSize"));
    }
    if (config.v2()) {
        const int64_t blocks = need.ep_recv_counts / T;
        // The rows this rank received (its own): the last of its epSendCounts, within expandX.
        const int64_t own_rows =
            in.ep_send_counts.dim(0) >= blocks && blocks > 0
                ? std::clamp<int64_t>(
                      load1<int32_t>(in.ep_send_counts, blocks - 1), 0, in.expand_x.dim(0))
                : 0;
        MOEDIST_TRY(check_combine_v2(config, in, x_out, bs, top_k, hidden, own_rows));
    } else {
        MOEDIST_TRY(check_rank(x_out, "x", 2));
        // H comes from expandX; a mismatch names expandX against x, the caller's model width.
        MOEDIST_REQUIRE(x_out.dim(1) == hidden,
                        Code::kInnerTiling,
                        "expandX dim 1",
                        "H = x dim 1 = " + std::to_string(x_out.dim(1)),
                        std::to_string(hidden));
        MOEDIST_REQUIRE(x_out.dim(0) == bs && x_out.dim(1) == hidden,
                        Code::kInnerTiling,
                        "x shape",
                        "(BS, H) = (" + std::to_string(bs) + ", " + std::to_string(hidden) + ")",
                        shape_of(x_out));
        MOEDIST_TRY(check_no_overlap(x_out, "x"));
    }

    ProfileFacts facts = facts_of(config, extras, true);
    facts.num_tokens = bs;
    facts.hidden = hidden;
    facts.top_k = top_k;
    facts.x_dtype = in.expand_x.dtype;
    facts.expand_x_dtype = in.expand_x.dtype;
    if (T == 2) facts.tp_counts_len = in.tp_send_counts->dim(0);
    facts.expand_idx_ndim = in.expand_idx.ndim;
    facts.mask_ndim = in.x_active_mask ? in.x_active_mask->ndim : 0;
    facts.weighted = !config.v2() || in.expert_scales.numel() > 0;
    facts.has_performance_info = in.performance_info.has_value();
    facts.add_rms_norm = in.residual_x.has_value();
    if (in.assist_info) facts.assist_len = in.assist_info->dim(0);
    return check_profile(soc, facts);
}

Status prepare_combine(const MoeConfig& config,
                       const Communicator& ep,
                       const std::optional<Communicator>& tp,
                       const CombineInputs& in,
                       const TensorView& x_out,
                       const CallExtras& extras,
                       CombineOp* op) {
    MOEDIST_TRY(config.validate());
    MOEDIST_TRY(check_communicators(config, ep, tp));
    MOEDIST_TRY(check_combine_call(config, in, x_out, extras));
    const int64_t bs = in.expert_ids.dim(0);
    const int64_t top_k = in.expert_ids.dim(1);
    const int64_t hidden = in.expand_x.dim(1);
    const int64_t T = config.tp_size();

    op->config = config;
    op->ep = ep;
    op->tp = T == 2 ? tp : std::nullopt;
    op->in = in;
    if (in.expand_idx.ndim == 2)  // a contiguous (BS, K) expandIdx, read as its BS*K entries
        op->in.expand_idx = TensorView::contiguous(in.expand_idx.data, DType::kInt32, {bs * top_k});
    op->x_out = x_out;
    op->num_tokens = bs;
    op->top_k = top_k;
    op->hidden = hidden;
    if (config.v2()) {  // inactive tokens' rows: zeroed under zero padding
        op->zero_padding = config.zero_padding.value_or(util::zero_padding());
        prepare_combine_v2(in, x_out, op);
    }
    return Status::Ok();
}

}  // namespace moedist::core
