#include "plan_command.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "core/ops.hpp"
#include "core/profile.hpp"
#include "core/shapes.hpp"
#include "quant_choices.hpp"
#include "util/env.hpp"

namespace moedist::cli {
namespace {

using nlohmann::json;

// Shapes alone: the first phase never reads tensor memory, it only needs a non-null address.
alignas(64) char fake_storage[64];  // aligned for every element type
void* const kFake = fake_storage;

TensorView shaped(DType dtype, std::initializer_list<int64_t> shape) {
    return TensorView::contiguous(kFake, dtype, shape);
}

struct NamedTensor {
    std::string name;
    TensorView view;
};

// Both first phases of one rank, on tensors of the minimum sizes the contract asks for.
struct RankCall {
    std::string role;  // "shared" or "moe"
    int64_t rank_id = 0;
    MoeConfig config;
    int64_t capacity = 0;  // A
    DispatchInputs din;
    DispatchOutputs dout;
    CombineInputs cin;
    TensorView x_out;
    std::vector<NamedTensor> tensors;
};

int64_t clamp_rows(__int128 v) {
    return v > (int64_t{1} << 40) ? (int64_t{1} << 40) : static_cast<int64_t>(v);
}

// Combine's V2 tensors (dispatch's assist and mask come in through the handle's views).
void add_v2_combine(const PlanOptions& o, const MoeConfig& c, DType x_dtype, RankCall* call) {
    const int64_t bs = o.tokens, h = o.hidden, q = c.const_expert_num;
    CombineInputs& cin = call->cin;
    cin.assist_info = call->dout.assist_info;
    cin.x_active_mask = call->din.x_active_mask;
    cin.performance_info = call->dout.performance_info;
    if (o.v2.unweighted) cin.expert_scales = shaped(DType::kFloat32, {bs, 0});
    if (o.v2.shared_expert_x) cin.shared_expert_x = shaped(x_dtype, {bs, h});
    if (c.copy_expert_num + q > 0) cin.ori_x = shaped(x_dtype, {bs, h});
    if (q > 0) {
        const bool vector = o.v2.const_alpha == "vector";
        cin.const_alpha1 = vector ? shaped(x_dtype, {q, h}) : shaped(x_dtype, {q});
        cin.const_alpha2 = cin.const_alpha1;
        cin.const_v = shaped(x_dtype, {q, h});
    }
    if (o.v2.add_rms_norm) {
        cin.residual_x = shaped(x_dtype, {bs, 1, h});
        cin.gamma = shaped(x_dtype, {h});
        cin.y_out = shaped(x_dtype, {bs, 1, h});
        cin.rstd_out = shaped(DType::kFloat32, {bs, 1, 1});
        call->x_out = shaped(x_dtype, {bs, 1, h});
    }
}

RankCall make_call(
    const PlanOptions& o, const QuantChoice& q, DType x_dtype, int64_t rank_id, Soc soc) {
    RankCall call;
    MoeConfig& c = call.config;
    c.ep_world_size = o.ranks;
    c.ep_rank_id = rank_id;
    c.moe_expert_num = o.experts;
    c.tp_world_size = o.tp;
    c.tp_rank_id = 0;
    c.shared_expert_rank_num = o.shared_ranks;
    c.shared_expert_num = shared_expert_num_for(o, soc);
    c.quant_mode = static_cast<int64_t>(q.mode);
    c.global_bs = o.global_bs;
    c.expert_token_nums_type = 0;
    c.comm_quant_mode = o.comm_quant;
    c.soc = soc;
    apply_v2_options(o.v2, &c);
    call.role = rank_id < o.shared_ranks ? "shared" : "moe";
    call.rank_id = rank_id;

    const int64_t bs = o.tokens, h = o.hidden, k = o.top_k;
    const DType in_dtype = q.pre_quantized ? q.target : x_dtype;
    const DType out_dtype = q.mode == QuantMode::kNone ? in_dtype : q.target;
    // The shapes the first phase asks for (the first phase rejects T*A > INT32_MAX itself; rows
    // are clamped for display only).
    core::OutputShapes need;  // an invalid configuration: placeholders the first phase rejects
    need.expand_idx = static_cast<__int128>(bs) * k;
    need.ep_recv_counts = c.tp_size() * o.ranks;
    if (c.validate().ok() && bs >= 0 && k >= 1) need = core::output_shapes(c, bs, k, h, in_dtype);
    call.capacity = clamp_rows(need.capacity);
    const int64_t rows = clamp_rows(need.rows);

    DispatchInputs& din = call.din;
    DispatchOutputs& dout = call.dout;
    din.x = shaped(in_dtype, {bs, h});
    din.expert_ids = shaped(DType::kInt32, {bs, k});
    if (q.pre_quantized) din.scales = shaped(DType::kFloat32, {bs});
    if (q.mode == QuantMode::kStatic) din.scales = shaped(DType::kFloat32, {1});
    din.expert_scales = shaped(DType::kFloat32, {bs, k});
    dout.expand_x = shaped(out_dtype, {rows, h});
    if (need.makes_scales) {
        const DType scale_dtype = q.mode == QuantMode::kMx ? DType::kE8M0 : DType::kFloat32;
        dout.dynamic_scales = need.scale_columns == 0
                                  ? shaped(scale_dtype, {rows})
                                  : shaped(scale_dtype, {rows, need.scale_columns});
    }
    dout.expand_idx = shaped(DType::kInt32, {clamp_rows(need.expand_idx)});
    if (c.v2()) {  // Ascend documents A·128 assist entries (the A3 combine's minimum)
        const int64_t per_row = soc == Soc::kA3 ? 128 : 3;
        dout.assist_info = shaped(DType::kInt32, {clamp_rows(per_row * need.capacity)});
        if (o.mask_ndim == 1) din.x_active_mask = shaped(DType::kBool, {bs});
        if (o.mask_ndim == 2) din.x_active_mask = shaped(DType::kBool, {bs, k});
        if (o.v2.performance_info) dout.performance_info = shaped(DType::kInt64, {o.ranks});
        // tpRecvCounts is a required output of the V2 family on A2/A3, T or not.
        if (!dout.tp_recv_counts)
            dout.tp_recv_counts = shaped(DType::kInt32, {std::max<int64_t>(c.tp_size(), 1)});
    }
    dout.expert_token_nums = shaped(DType::kInt64, {need.expert_token_nums});
    dout.ep_recv_counts = shaped(DType::kInt32, {need.ep_recv_counts});
    if (need.tp_recv_counts > 0) dout.tp_recv_counts = shaped(DType::kInt32, {need.tp_recv_counts});
    dout.expand_scales = shaped(DType::kFloat32, {clamp_rows(need.expand_scales)});

    CombineInputs& cin = call.cin;
    cin.expand_x = shaped(x_dtype, {rows, h});
    cin.expert_ids = din.expert_ids;
    cin.expand_idx = dout.expand_idx;
    cin.ep_send_counts = dout.ep_recv_counts;
    cin.expert_scales = *din.expert_scales;
    cin.tp_send_counts = dout.tp_recv_counts;
    call.x_out = shaped(x_dtype, {bs, h});
    if (c.v2()) add_v2_combine(o, c, x_dtype, &call);

    auto add = [&](const std::string& name, const std::optional<TensorView>& v) {
        if (v) call.tensors.push_back({name, *v});
    };
    add("dispatch.x", din.x);
    add("dispatch.expertIds", din.expert_ids);
    add("dispatch.scales", din.scales);
    add("dispatch.expertScales", din.expert_scales);
    add("dispatch.expandX", dout.expand_x);
    add("dispatch.dynamicScales", dout.dynamic_scales);
    add("dispatch.expandIdx", dout.expand_idx);
    add("dispatch.expertTokenNums", dout.expert_token_nums);
    add("dispatch.epRecvCounts", dout.ep_recv_counts);
    add("dispatch.tpRecvCounts", dout.tp_recv_counts);
    add("dispatch.expandScales", dout.expand_scales);
    add("dispatch.xActiveMask", din.x_active_mask);
    add("dispatch.assistInfoForCombine", dout.assist_info);
    add("dispatch.performanceInfo", dout.performance_info);
    add("combine.expandX", cin.expand_x);
    add("combine.expertScales", cin.expert_scales);
    add("combine.sharedExpertX", cin.shared_expert_x);
    add("combine.oriX", cin.ori_x);
    add("combine.constExpertAlpha1", cin.const_alpha1);
    add("combine.constExpertAlpha2", cin.const_alpha2);
    add("combine.constExpertV", cin.const_v);
    add("combine.residualX", cin.residual_x);
    add("combine.gamma", cin.gamma);
    add(cin.residual_x ? "combine.xOut" : "combine.x", call.x_out);
    add("combine.yOut", cin.y_out);
    add("combine.rstdOut", cin.rstd_out);
    return call;
}

std::vector<int64_t> rank_ids_of(const PlanOptions& o) {
    std::vector<int64_t> ids;
    if (o.shared_ranks > 0) ids.push_back(0);
    if (o.shared_ranks < o.ranks) ids.push_back(o.shared_ranks);
    return ids;
}

core::CallExtras extras_of(const PlanOptions& o) {
    core::CallExtras extras;
    extras.group_tp = o.tp == 2 ? "moedist_plan_tp" : "";
    HcclBufferEnv hccl = util::hccl_buffer_env();
    if (o.hccl_buffsize_mb != -2) hccl.buffsize_mb = o.hccl_buffsize_mb;
    if (o.intra_pcie) hccl.intra_pcie = true;
    extras.hccl = hccl;
    return extras;
}

DType x_dtype_of(const PlanOptions& o) {
    return o.dtype == "fp16" ? DType::kFloat16 : DType::kBFloat16;
}

// Expected rows per step under uniform routing (every expert equally likely).
struct Traffic {
    double dispatch_send_rows = 0, dispatch_recv_rows = 0;
};

Traffic traffic_of(const PlanOptions& o, const RankCall& call) {
    Traffic t;
    const double bs = static_cast<double>(o.tokens), w = static_cast<double>(o.ranks);
    const double s = static_cast<double>(o.shared_ranks), k = static_cast<double>(o.top_k);
    const double tp = static_cast<double>(call.config.tp_size());
    const bool v2 = call.config.v2();
    const double n = static_cast<double>(call.config.shared_experts());
    t.dispatch_send_rows = bs * k + (o.shared_ranks > 0 ? (v2 ? n : 1.0) * bs : 0.0);
    // V2: a shared rank gets every token of the ranks ≡ it (mod R = S / N).
    const double shared_recv = v2 ? w / (s / std::max(n, 1.0)) * bs : w * bs / s;
    const double ep_recv = call.role == "shared" ? shared_recv : w * bs * k / (w - s);
    t.dispatch_recv_rows = tp * ep_recv;  // with TP the peer's rows arrive too
    return t;
}

double row_bytes_dispatch(const PlanOptions& o, const QuantChoice& q, DType x_dtype) {
    const DType out =
        q.mode == QuantMode::kNone ? (q.pre_quantized ? q.target : x_dtype) : q.target;
    double bytes = static_cast<double>(o.hidden) * static_cast<double>(dtype_size(out));
    if (q.pre_quantized || q.mode == QuantMode::kPerToken) bytes += 4;
    if (q.mode == QuantMode::kPerGroup || q.mode == QuantMode::kMx)
        bytes += static_cast<double>(core::scale_columns(q.mode, o.hidden)) *
                 (q.mode == QuantMode::kMx ? 1.0 : 4.0);
    return bytes;
}

}  // namespace

int64_t shared_expert_num_for(const PlanOptions& o, Soc soc) {
    if (o.shared_expert_num >= 0) return o.shared_expert_num;
    if (o.v2.api == "v2" && o.shared_ranks > 0) return o.v2.shared_experts;
    switch (soc) {
        case Soc::kA2:
            return 0;
        case Soc::kA3:
            return 1;
        default:
            return o.shared_ranks > 0 ? 1 : 0;
    }
}

ProfileVerdict judge_profile(const PlanOptions& o, Soc soc) {
    const QuantChoice& q = quant_choice(o.quant);
    const core::CallExtras extras = extras_of(o);
    for (int64_t r : rank_ids_of(o)) {
        const RankCall call = make_call(o, q, x_dtype_of(o), r, soc);
        Status s = core::check_dispatch_call(call.config, call.din, call.dout, extras);
        const char* op = "dispatch";
        if (s.ok()) {
            s = core::check_combine_call(call.config, call.cin, call.x_out, extras);
            op = "combine";
        }
        if (!s.ok()) return {false, op, call.role, s.message(), s.raw_code()};
    }
    return {};
}

CLI::App* add_plan_command(CLI::App& app, PlanOptions* o) {
    auto* plan = app.add_subcommand(
        "plan", "validate a configuration per product profile; print A, tensors, buffers, traffic");
    o->app = plan;
    plan->add_option("--soc", o->soc, "generic|A2|A3|all")
        ->check(CLI::IsMember({"generic", "A2", "A3", "all"}, CLI::ignore_case));
    plan->add_option("--ranks", o->ranks, "EP ranks W")
        ->check(CLI::Range(int64_t{1}, int64_t{1} << 16));
    plan->add_option("--tp", o->tp, "tpWorldSize: 0, 1 or 2")->check(CLI::IsMember({0, 1, 2}));
    plan->add_option("--shared-ranks", o->shared_ranks, "sharedExpertRankNum S")
        ->check(CLI::Range(int64_t{0}, int64_t{1} << 16));
    plan->add_option("--shared-expert-num",
                     o->shared_expert_num,
                     "sharedExpertNum for every profile (default: each profile's own: A2 0, A3 "
                     "1 as torch_npu, generic 1 with --shared-ranks > 0, else 0)")
        ->check(CLI::Range(int64_t{0}, int64_t{4}))
        ->default_str("per profile");
    plan->add_option("--experts", o->experts, "moeExpertNum E")
        ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
    plan->add_option("--tokens", o->tokens, "BS per rank")
        ->check(CLI::Range(int64_t{0}, int64_t{1} << 31));
    plan->add_option("--global-bs", o->global_bs, "globalBs (0: every rank has BS tokens)")
        ->check(CLI::Range(int64_t{0}, int64_t{1} << 31));
    plan->add_option("--hidden", o->hidden, "H")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
    plan->add_option("--topk", o->top_k, "K")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
    plan->add_option("--quant", o->quant, "a `moedist run --quant` name")
        ->check(CLI::IsMember(quant_names()));
    plan->add_option("--dtype", o->dtype, "bf16|fp16")->check(CLI::IsMember({"bf16", "fp16"}));
    plan->add_option("--comm-quant", o->comm_quant, "combine commQuantMode: 0 or 2")
        ->check(CLI::IsMember({0, 2}));
    plan->add_option("--hccl-buffsize",
                     o->hccl_buffsize_mb,
                     "HCCL_BUFFSIZE in MB (default: the environment's HCCL_BUFFSIZE, else 200)")
        ->check(CLI::Range(int64_t{1}, int64_t{1} << 40))
        ->default_str("env");
    plan->add_flag(
        "--intra-pcie", o->intra_pcie, "as HCCL_INTRA_PCIE_ENABLE=1 HCCL_INTRA_ROCE_ENABLE=0 (A2)");
    add_v2_options(plan, &o->v2, false);
    add_json_option(plan, &o->json, "the verdicts, tensors and traffic");
    plan->add_flag("--rules", o->rules, "print the profile rule table (markdown) and exit");
    return plan;
}

namespace {

const std::string kPlanCmd = "plan";

int print_rules(const PlanOptions& o) {
    for (const CLI::Option* opt : o.app->get_options()) {
        if (opt->count() > 0 && opt->get_name() != "--rules") {
            warn(kPlanCmd,
                 opt->get_name() + " is ignored with --rules (the table does not depend on it)");
        }
    }
    for (Api api : {Api::kV1, Api::kV2}) {
        fmt::print("{}| rule | profiles | code | requires | source |\n|---|---|---|---|---|\n",
                   api == Api::kV1 ? "V1 (aclnnMoeDistributeDispatch / Combine):\n\n"
                                   : "\nThe V2 family (Dispatch V2-V4, Combine V2-V4, "
                                     "CombineAddRmsNorm):\n\n");
        for (const core::ProfileRule& r : core::profile_rules(api)) {
            const std::string profiles =
                r.profiles == core::kA2A3 ? "A2, A3" : (r.profiles == core::kA2Only ? "A2" : "A3");
            fmt::print("| `{}` | {} | {} | {} | {} |\n",
                       r.id,
                       profiles,
                       static_cast<int>(r.code),
                       r.requirement,
                       r.source);
        }
    }
    return kExitOk;
}

// Says what plan derives on its own, and which options the chosen profiles ignore.
void explain(const PlanOptions& o, const std::vector<Soc>& socs, const HcclBufferEnv& hccl) {
    const bool given_sen = o.app->count("--shared-expert-num") > 0;
    std::string sen;
    for (Soc soc : socs)
        sen += fmt::format(
            "{}{} {}", sen.empty() ? "" : ", ", soc_name(soc), shared_expert_num_for(o, soc));
    note(kPlanCmd,
         given_sen ? fmt::format("sharedExpertNum = {} for every profile (--shared-expert-num)",
                                 o.shared_expert_num)
                   : fmt::format("sharedExpertNum per profile's default with --shared-ranks {}: {} "
                                 "(--shared-expert-num N sets one value for all)",
                                 o.shared_ranks,
                                 sen));
    const bool buffer_rules =
        std::any_of(socs.begin(), socs.end(), [](Soc s) { return s != Soc::kGeneric; });
    if (buffer_rules) {
        note(kPlanCmd,
             fmt::format("HCCL_BUFFSIZE = {} MB ({})",
                         hccl.buffsize_mb,
                         o.hccl_buffsize_mb != -2 ? "--hccl-buffsize"
                         : util::env_text(util::Env::kHcclBuffsize)
                             ? "the environment's HCCL_BUFFSIZE"
                             : "the default"));
    } else if (o.app->count("--hccl-buffsize") > 0 || o.intra_pcie) {
        warn(kPlanCmd,
             "--hccl-buffsize and --intra-pcie are ignored with --soc generic (it has no buffer "
             "rules)");
    }
    if (o.intra_pcie && std::find(socs.begin(), socs.end(), Soc::kA2) == socs.end() && buffer_rules)
        warn(kPlanCmd, "--intra-pcie is ignored with --soc " + o.soc + " (an A2 setting)");
    if (o.tokens == 0)
        note(kPlanCmd, "--tokens 0: ranks without tokens send no rows; A and the traffic follow");
    if (o.tp == 1) note(kPlanCmd, "--tp 1: tpWorldSize 1 is no TP domain, as 0");
}

json profile_json(const PlanOptions& o, Soc soc, const HcclBufferEnv& hccl) {
    const ProfileVerdict v = judge_profile(o, soc);
    json p = {{"accepted", v.accepted}, {"shared_expert_num", shared_expert_num_for(o, soc)}};
    if (!v.accepted) {
        p["operation"] = v.operation;
        p["rank_role"] = v.role;
        p["code"] = v.code;
        p["message"] = v.message;
    }
    const std::vector<int64_t> ids = rank_ids_of(o);
    if (soc != Soc::kGeneric && !ids.empty()) {
        core::ProfileFacts facts;
        facts.config = make_call(o, quant_choice(o.quant), x_dtype_of(o), ids.back(), soc).config;
        facts.num_tokens = o.tokens;
        facts.hidden = o.hidden;
        facts.top_k = o.top_k;
        facts.x_dtype = x_dtype_of(o);
        facts.hccl = hccl;
        p["hccl_buffsize_needed_mb"] = core::hccl_buffsize_needed_mb(soc, facts);
    }
    return p;
}

json rank_json(const PlanOptions& o, int64_t r) {
    const QuantChoice& q = quant_choice(o.quant);
    const RankCall call = make_call(o, q, x_dtype_of(o), r, Soc::kGeneric);
    const Traffic t = traffic_of(o, call);
    const double dispatch_row = row_bytes_dispatch(o, q, x_dtype_of(o));
    const double combine_row = static_cast<double>(o.hidden) * (o.comm_quant == 2 ? 1.0 : 2.0) +
                               (o.comm_quant == 2 ? 4.0 : 0.0);
    json rank = {
        {"role", call.role},
        {"ep_rank_ids",
         call.role == "shared" ? json::array({0, o.shared_ranks - 1})
                               : json::array({o.shared_ranks, o.ranks - 1})},
        {"A", call.capacity},
        {"local_experts", call.config.validate().ok() ? call.config.local_expert_num() : 0}};
    for (const NamedTensor& nt : call.tensors) {
        std::vector<int64_t> shape;
        for (int32_t d = 0; d < nt.view.ndim; ++d) shape.push_back(nt.view.dim(d));
        rank["tensors"].push_back(
            {{"name", nt.name}, {"shape", shape}, {"dtype", dtype_name(nt.view.dtype)}});
    }
    rank["per_step_uniform"] = {
        {"dispatch_send_rows", t.dispatch_send_rows},
        {"dispatch_recv_rows", t.dispatch_recv_rows},
        {"dispatch_send_bytes", t.dispatch_send_rows * dispatch_row},
        {"dispatch_recv_bytes", t.dispatch_recv_rows * dispatch_row},
        {"combine_send_bytes", t.dispatch_recv_rows * combine_row},
        {"combine_recv_bytes", t.dispatch_send_rows * combine_row},
    };
    return rank;
}

json plan_json(const PlanOptions& o, const std::vector<Soc>& socs, const HcclBufferEnv& hccl) {
    json out;
    out["command"] = "plan";
    out["config"] = {{"ranks", o.ranks},
                     {"tp", o.tp},
                     {"shared_ranks", o.shared_ranks},
                     {"experts", o.experts},
                     {"tokens", o.tokens},
                     {"global_bs", o.global_bs},
                     {"hidden", o.hidden},
                     {"topk", o.top_k},
                     {"quant", o.quant},
                     {"dtype", o.dtype},
                     {"comm_quant", o.comm_quant},
                     {"hccl_buffsize_mb", hccl.buffsize_mb},
                     {"intra_pcie", hccl.intra_pcie}};
    if (o.shared_expert_num >= 0) out["config"]["shared_expert_num"] = o.shared_expert_num;
    for (Soc soc : socs) out["profiles"][soc_name(soc)] = profile_json(o, soc, hccl);
    for (int64_t r : rank_ids_of(o)) out["ranks"].push_back(rank_json(o, r));
    out["workspace_bytes"] = 0;
    return out;
}

void print_profiles(const std::vector<Soc>& socs, const json& out, const HcclBufferEnv& hccl) {
    fmt::print("profiles:\n");
    for (Soc soc : socs) {
        const json& p = out["profiles"][soc_name(soc)];
        std::string buffer;
        if (p.contains("hccl_buffsize_needed_mb") &&
            p["hccl_buffsize_needed_mb"].get<int64_t>() > 0) {
            buffer = fmt::format("  [HCCL_BUFFSIZE needs >= {} MB, have {}]",
                                 p["hccl_buffsize_needed_mb"].get<int64_t>(),
                                 hccl.buffsize_mb);
        }
        const std::string sen =
            fmt::format(" (sharedExpertNum {})", p["shared_expert_num"].get<int64_t>());
        if (p["accepted"].get<bool>()) {
            fmt::print("  {:<8} accepts{}{}\n", soc_name(soc), sen, buffer);
        } else {
            fmt::print("  {:<8} rejects{} ({} of a {} rank, {}): {}{}\n",
                       soc_name(soc),
                       sen,
                       p["operation"].get<std::string>(),
                       p["rank_role"].get<std::string>(),
                       p["code"].get<int>(),
                       p["message"].get<std::string>(),
                       buffer);
        }
    }
}

void print_rank(const json& rank) {
    fmt::print("{} ranks {}..{}: A = {} rows, {} local expert(s)\n",
               rank["role"].get<std::string>() == "shared" ? "shared-expert" : "MoE",
               rank["ep_rank_ids"][0].get<int64_t>(),
               rank["ep_rank_ids"][1].get<int64_t>(),
               rank["A"].get<int64_t>(),
               rank["local_experts"].get<int64_t>());
    for (const json& t : rank["tensors"]) {
        std::string shape = "(";
        for (std::size_t d = 0; d < t["shape"].size(); ++d)
            shape += (d ? ", " : "") + std::to_string(t["shape"][d].get<int64_t>());
        shape += t["shape"].size() == 1 ? ",)" : ")";
        fmt::print("  {:<32} {:<18} {}\n",
                   t["name"].get<std::string>(),
                   shape,
                   t["dtype"].get<std::string>());
    }
    const json& tr = rank["per_step_uniform"];
    fmt::print(
        "  per step, uniform routing: dispatch sends {:.0f} rows ({:.2f} MB), receives {:.0f} "
        "rows ({:.2f} MB); combine sends {:.2f} MB, receives {:.2f} MB\n",
        tr["dispatch_send_rows"].get<double>(),
        tr["dispatch_send_bytes"].get<double>() / 1e6,
        tr["dispatch_recv_rows"].get<double>(),
        tr["dispatch_recv_bytes"].get<double>() / 1e6,
        tr["combine_send_bytes"].get<double>() / 1e6,
        tr["combine_recv_bytes"].get<double>() / 1e6);
}

void print_plan(const PlanOptions& o,
                const std::vector<Soc>& socs,
                const json& out,
                const HcclBufferEnv& hccl) {
    fmt::print(
        "moedist plan: W {} (tp {}, shared ranks {}), E {}, BS {}{}, H {}, K {}, quant {}, {}\n",
        o.ranks,
        o.tp,
        o.shared_ranks,
        o.experts,
        o.tokens,
        o.global_bs ? fmt::format(" (globalBs {})", o.global_bs) : std::string(" (globalBs 0)"),
        o.hidden,
        o.top_k,
        o.quant,
        o.dtype);
    print_profiles(socs, out, hccl);
    for (const json& rank : out["ranks"]) print_rank(rank);
    fmt::print("workspace: 0 bytes (moedist copies straight between the ranks' tensors)\n");
}

}  // namespace

int plan_command(const PlanOptions& given) {
    if (given.rules) return print_rules(given);
    PlanOptions o = given;
    double inactive = -1;
    if (std::string why = parse_mask(o.v2.mask, &o.mask_ndim, &inactive); !why.empty()) {
        fmt::print(stderr, "moedist plan: {}\n", why);
        return kExitUnusable;
    }
    if (o.v2.api != "v2" && (o.mask_ndim != 0 || v2_only_given(o.v2))) {
        fmt::print(stderr, "moedist plan: --mask and the V2 options need --api v2\n");
        return kExitUnusable;
    }
    if (o.shared_ranks >= o.ranks) {
        fmt::print(stderr,
                   "moedist plan: --shared-ranks {} must be < --ranks {} (at least one MoE rank)\n",
                   o.shared_ranks,
                   o.ranks);
        return kExitUnusable;
    }
    if (o.json.wanted() && !o.json.to_stdout()) {
        if (std::string why = unwritable(o.json.path); !why.empty()) {
            fmt::print(stderr, "moedist plan: --json={}: {}\n", o.json.path, why);
            return kExitUnusable;
        }
    }
    const HcclBufferEnv hccl = *extras_of(o).hccl;
    std::vector<Soc> socs;
    for (Soc s : {Soc::kGeneric, Soc::kA2, Soc::kA3})
        if (o.soc == "all" || parse_soc(o.soc) == s) socs.push_back(s);
    explain(o, socs, hccl);
    const json out = plan_json(o, socs, hccl);
    bool any_accepted = false;
    for (Soc soc : socs)
        any_accepted = any_accepted || out["profiles"][soc_name(soc)]["accepted"].get<bool>();
    if (!o.json.to_stdout()) print_plan(o, socs, out, hccl);
    if (!emit_json(o.json, out, kPlanCmd)) return kExitUnusable;
    if (!any_accepted) {
        fmt::print(
            stderr, "moedist plan: no profile of --soc {} accepts this configuration\n", o.soc);
        return kExitUnusable;
    }
    return kExitOk;
}

}  // namespace moedist::cli
