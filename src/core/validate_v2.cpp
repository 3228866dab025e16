// The first phase's V2 checks (docs/contract.md §10.10, generic profile): the tensors the V2
// family adds to dispatch and combine. validate.cpp calls these after the checks both families
// share; the A2/A3 profile rules follow in profile.cpp.
// GCC 12 reports a false -Wrestrict inside std::string's operator+ (GCC PR 105329).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

#include <string>

#include "core/validate_parts.hpp"
#include "core/validate_util.hpp"

namespace moedist::core {
namespace {

std::string text(int64_t v) { return std::to_string(v); }

// xActiveMask: bool, (BS,) or (BS, K).
Status check_mask(const TensorView& mask, int64_t bs, int64_t top_k) {
    MOEDIST_TRY(check_dtype(mask, "xActiveMask", {DType::kBool}));
    MOEDIST_REQUIRE(mask.ndim == 1 || mask.ndim == 2,
                    Code::kInnerTiling,
                    "xActiveMask dims",
                    "1 (BS,) or 2 (BS, K)",
                    text(mask.ndim));
    MOEDIST_TRY(check_rank(mask, "xActiveMask", mask.ndim));
    const bool ok = mask.dim(0) == bs && (mask.ndim == 1 || mask.dim(1) == top_k);
    MOEDIST_REQUIRE(ok,
                    Code::kInnerTiling,
                    "xActiveMask shape",
                    "(BS,) = (" + text(bs) + ",) or (BS, K) = (" + text(bs) + ", " + text(top_k) +
                        ")",
                    shape_of(mask));
    return Status::Ok();
}

// performanceInfo: int64 (>= W), added to.
Status check_performance_info(const TensorView& info, int64_t world) {
    MOEDIST_TRY(check_dtype(info, "performanceInfo", {DType::kInt64}));
    MOEDIST_TRY(check_min_1d(info, "performanceInfo", world, "epWorldSize"));
    return check_no_overlap(info, "performanceInfo");
}

// assistInfo: int32, 1-D, at least `least` entries.
Status check_assist(const std::optional<TensorView>& assist,
                    int64_t least,
                    const std::string& what,
                    bool written) {
    MOEDIST_REQUIRE(assist.has_value(), Code::kNullptr, "assistInfo", "non-null (V2)", "nullptr");
    MOEDIST_TRY(check_dtype(*assist, "assistInfo", {DType::kInt32}));
    MOEDIST_TRY(check_min_1d(*assist, "assistInfo", least, what));
    if (written) MOEDIST_TRY(check_no_overlap(*assist, "assistInfo"));
    return Status::Ok();
}

// A (rows, H) tensor in `dtype`.
Status check_rows(const TensorView& t, const char* name, int64_t rows, int64_t hidden, DType dtype) {
    MOEDIST_TRY(check_dtype(t, name, {dtype}));
    MOEDIST_TRY(check_rank(t, name, 2));
    MOEDIST_REQUIRE(t.dim(0) == rows && t.dim(1) == hidden,
                    Code::kInnerTiling,
                    std::string(name) + " shape",
                    "(" + text(rows) + ", " + text(hidden) + ")",
                    shape_of(t));
    return Status::Ok();
}

// A (BS, 1, H) tensor (AddRmsNorm's residualX, x, y) in `dtype`.
Status check_token_rows(const TensorView& t, const char* name, int64_t bs, int64_t hidden, DType dtype) {
    MOEDIST_TRY(check_dtype(t, name, {dtype}));
    MOEDIST_TRY(check_rank(t, name, 3));
    MOEDIST_REQUIRE(t.dim(0) == bs && t.dim(1) == 1 && t.dim(2) == hidden,
                    Code::kInnerTiling,
                    std::string(name) + " shape",
                    "(BS, 1, H) = (" + text(bs) + ", 1, " + text(hidden) + ")",
                    shape_of(t));
    return Status::Ok();
}

// Const experts' tensors: alpha1, alpha2 (Q,) or (Q, H), one form for both; v (Q, H).
Status check_const_experts(const CombineInputs& in, int64_t q, int64_t hidden, DType dtype) {
    const char* names[2] = {"constExpertAlpha1", "constExpertAlpha2"};
    const std::optional<TensorView>* alphas[2] = {&in.const_alpha1, &in.const_alpha2};
    for (int i = 0; i < 2; ++i) {
        MOEDIST_REQUIRE(alphas[i]->has_value(),
                        Code::kNullptr,
                        names[i],
                        "non-null when constExpertNum > 0",
                        "nullptr");
        const TensorView& a = **alphas[i];
        MOEDIST_TRY(check_dtype(a, names[i], {dtype}));
        MOEDIST_REQUIRE(a.ndim == in.const_alpha1->ndim && (a.ndim == 1 || a.ndim == 2),
                        Code::kInnerTiling,
                        std::string(names[i]) + " dims",
                        "1 (Q,) or 2 (Q, H), the same for both alphas",
                        text(a.ndim));
        MOEDIST_TRY(check_rank(a, names[i], a.ndim));
        MOEDIST_REQUIRE(a.dim(0) == q && (a.ndim == 1 || a.dim(1) == hidden),
                        Code::kInnerTiling,
                        std::string(names[i]) + " shape",
                        "(Q,) or (Q, H) with Q = " + text(q) + ", H = " + text(hidden),
                        shape_of(a));
    }
    MOEDIST_REQUIRE(in.const_v.has_value(),
                    Code::kNullptr,
                    "constExpertV",
                    "non-null when constExpertNum > 0",
                    "nullptr");
    return check_rows(*in.const_v, "constExpertV", q, hidden, dtype);
}

// sharedExpertX: (BS, H), or (a, b, H) with a·b = BS whose rows are evenly spaced.
Status check_shared_x(const MoeConfig& config, const TensorView& sx, int64_t bs, int64_t hidden, DType dtype) {
    MOEDIST_REQUIRE(config.shared_expert_rank_num == 0,
                    Code::kInnerTiling,
                    "sharedExpertX",
                    "absent when sharedExpertRankNum > 0",
                    "a tensor");
    MOEDIST_TRY(check_dtype(sx, "sharedExpertX", {dtype}));
    MOEDIST_REQUIRE(sx.ndim == 2 || sx.ndim == 3,
                    Code::kInnerTiling,
                    "sharedExpertX dims",
                    "2 (BS, H) or 3 (a, b, H)",
                    text(sx.ndim));
    MOEDIST_TRY(check_rank(sx, "sharedExpertX", sx.ndim));
    if (sx.ndim == 2) {
        MOEDIST_REQUIRE(sx.dim(0) == bs && sx.dim(1) == hidden,
                        Code::kInnerTiling,
                        "sharedExpertX shape",
                        "(BS, H) = (" + text(bs) + ", " + text(hidden) + ")",
                        shape_of(sx));
        return Status::Ok();
    }
    MOEDIST_REQUIRE(sx.dim(0) * sx.dim(1) == bs && sx.dim(2) == hidden,
                    Code::kInnerTiling,
                    "sharedExpertX shape",
                    "(a, b, H) with a*b = BS = " + text(bs) + ", H = " + text(hidden),
                    shape_of(sx));
    MOEDIST_REQUIRE(sx.dim(0) <= 1 || sx.dim(1) <= 1 || sx.stride(0) == sx.dim(1) * sx.stride(1),
                    Code::kInnerTiling,
                    "sharedExpertX strides",
                    "rows evenly spaced (stride 0 = b * stride 1)",
                    strides_of(sx));
    return Status::Ok();
}

// An (a, b, H) or (BS, 1, H) tensor read as (a·b, H) rows (the caller checked the spacing).
TensorView as_rows(const TensorView& t) {
    if (t.ndim != 3) return t;
    TensorView v = t;
    v.ndim = 2;
    v.shape[0] = t.dim(0) * t.dim(1);
    v.shape[1] = t.dim(2);
    v.strides[0] = t.dim(1) == 1 ? t.stride(0) : t.stride(1);
    v.strides[1] = t.stride(2);
    return v;
}

}  // namespace

Status check_dispatch_v2(const MoeConfig& config,
                         const DispatchInputs& in,
                         const DispatchOutputs& out,
                         int64_t bs,
                         int64_t top_k,
                         int64_t capacity) {
    MOEDIST_TRY(check_assist(out.assist_info, 3 * capacity, "3*A", true));
    if (in.x_active_mask) MOEDIST_TRY(check_mask(*in.x_active_mask, bs, top_k));
    if (out.performance_info)
        MOEDIST_TRY(check_performance_info(*out.performance_info, config.ep_world_size));
    return Status::Ok();
}

Status check_combine_v2(const MoeConfig& config,
                        const CombineInputs& in,
                        const TensorView& x_out,
                        int64_t bs,
                        int64_t top_k,
                        int64_t hidden,
                        int64_t own_rows) {
    const DType dtype = in.expand_x.dtype;
    MOEDIST_TRY(check_assist(in.assist_info, 3 * own_rows, "3 * rows received (epSendCounts)", false));
    if (in.x_active_mask) MOEDIST_TRY(check_mask(*in.x_active_mask, bs, top_k));
    if (in.performance_info)
        MOEDIST_TRY(check_performance_info(*in.performance_info, config.ep_world_size));
    if (in.shared_expert_x) MOEDIST_TRY(check_shared_x(config, *in.shared_expert_x, bs, hidden, dtype));
    if (config.copy_expert_num + config.const_expert_num > 0) {
        MOEDIST_REQUIRE(in.ori_x.has_value(),
                        Code::kNullptr,
                        "oriX",
                        "non-null when copyExpertNum + constExpertNum > 0",
                        "nullptr");
        MOEDIST_TRY(check_rows(*in.ori_x, "oriX", bs, hidden, dtype));
    }
    if (config.const_expert_num > 0)
        MOEDIST_TRY(check_const_experts(in, config.const_expert_num, hidden, dtype));
    const bool norm = in.residual_x.has_value() || in.gamma.has_value();
    if (!norm) {
        MOEDIST_TRY(check_rank(x_out, "x", 2));
        MOEDIST_REQUIRE(x_out.dim(0) == bs && x_out.dim(1) == hidden,
                        Code::kInnerTiling,
                        "x shape",
                        "(BS, H) = (" + text(bs) + ", " + text(hidden) + ")",
                        shape_of(x_out));
        return check_no_overlap(x_out, "x");
    }
    MOEDIST_REQUIRE(in.residual_x.has_value(), Code::kNullptr, "residualX", "non-null with gamma", "nullptr");
    MOEDIST_REQUIRE(in.gamma.has_value(), Code::kNullptr, "gamma", "non-null with residualX", "nullptr");
    MOEDIST_REQUIRE(in.y_out.has_value(), Code::kNullptr, "yOut", "non-null for AddRmsNorm", "nullptr");
    MOEDIST_REQUIRE(in.rstd_out.has_value(), Code::kNullptr, "rstdOut", "non-null for AddRmsNorm", "nullptr");
    MOEDIST_TRY(check_token_rows(*in.residual_x, "residualX", bs, hidden, dtype));
    MOEDIST_TRY(check_token_rows(x_out, "xOut", bs, hidden, dtype));
    MOEDIST_TRY(check_token_rows(*in.y_out, "yOut", bs, hidden, dtype));
    MOEDIST_TRY(check_dtype(*in.gamma, "gamma", {dtype}));
    MOEDIST_TRY(check_min_1d(*in.gamma, "gamma", hidden, "H"));
    MOEDIST_REQUIRE(in.gamma->dim(0) == hidden, Code::kInnerTiling, "gamma shape", "(H,) = (" + text(hidden) + ",)", shape_of(*in.gamma));
    const TensorView& rstd = *in.rstd_out;
    MOEDIST_TRY(check_dtype(rstd, "rstdOut", {DType::kFloat32}));
    MOEDIST_TRY(check_rank(rstd, "rstdOut", 3));
    MOEDIST_REQUIRE(rstd.dim(0) == bs && rstd.dim(1) == 1 && rstd.dim(2) == 1,
                    Code::kInnerTiling,
                    "rstdOut shape",
                    "(BS, 1, 1) = (" + text(bs) + ", 1, 1)",
                    shape_of(rstd));
    MOEDIST_TRY(check_no_overlap(as_rows(x_out), "xOut"));
    MOEDIST_TRY(check_no_overlap(as_rows(*in.y_out), "yOut"));
    return check_no_overlap(rstd, "rstdOut");
}

void prepare_combine_v2(const CombineInputs& in, const TensorView& x_out, CombineOp* op) {
    op->weighted = in.expert_scales.numel() > 0;
    if (in.shared_expert_x) op->shared_x = as_rows(*in.shared_expert_x);
    op->add_rms_norm = in.residual_x.has_value();
    if (!op->add_rms_norm) return;
    op->x_out = as_rows(x_out);
    op->residual = as_rows(*in.residual_x);
    op->y_out = as_rows(*in.y_out);
    op->gamma = *in.gamma;
    TensorView rstd = *in.rstd_out;
    rstd.ndim = 1;
    op->rstd_out = rstd;
}

}  // namespace moedist::core
