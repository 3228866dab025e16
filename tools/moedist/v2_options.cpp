#include "v2_options.hpp"

#include <fmt/core.h>

namespace moedist::cli {


void add_v2_options(CLI::App* app, V2Options* o, bool lists) {
    o->app = app;
    if (lists) {  // the bench sweeps --api and --mask as lists of its own
        add_v2_details(app, o);
        return;
    }
    auto* api = app->add_option("--api",
                                o->api,
                                std::string("operator family: v1 (aclnnMoeDistributeDispatch/Combine) "
                                            "or v2 (Dispatch/Combine V2-V4, torch_npu's *_v2)") +
                                    (lists ? " (list)" : ""));
    auto* mask = app->add_option("--mask",
                                 o->mask,
                                 std::string("V2 xActiveMask: none, prefix[:F] (the last F of each "
                                             "rank's tokens inactive: a (BS,) mask), random[:F] "
                                             "(each (token, k) entry inactive with probability F: "
                                             "a (BS, K) mask); F default: per rank at random") +
                                     (lists ? " (list)" : ""));
    api->check(CLI::IsMember({"v1", "v2"}));
    (void)mask;
    add_v2_details(app, o);
}

void add_v2_details(CLI::App* app, V2Options* o) {
    o->app = app;
    app->add_option("--shared-experts", o->shared_experts, "V2: shared experts N (S % N == 0)")
        ->check(CLI::Range(1, 4));
    app->add_option("--zero-experts", o->zero_experts, "V2: zero experts Z")->check(CLI::Range(0, 1024));
    app->add_option("--copy-experts", o->copy_experts, "V2: copy experts C")->check(CLI::Range(0, 1024));
    app->add_option("--const-experts", o->const_experts, "V2: const experts Q")
        ->check(CLI::Range(0, 1024));
    app->add_option("--const-alpha", o->const_alpha, "V2: const experts' alphas: scalar (Q,) or vector (Q, H)")
        ->check(CLI::IsMember({"scalar", "vector"}));
    app->add_flag("--unweighted", o->unweighted, "V2: combine with an empty expertScales (every weight 1)");
    app->add_flag("--shared-expert-x", o->shared_expert_x, "V2: combine adds sharedExpertX (S = 0)");
    app->add_flag("--add-rms-norm", o->add_rms_norm, "V2: CombineAddRmsNorm (residualX, gamma; x, y, rstd)");
    app->add_flag("--performance-info", o->performance_info, "V2: pass performanceInfo (V4)");
    app->add_option("--comm-alg", o->comm_alg, "V2: commAlg (every value gives the same results)")
        ->check(CLI::IsMember({"", "0", "fullmesh", "fullmesh_v1", "fullmesh_v2", "hierarchy"}));
}

bool v2_only_given(const V2Options& o) {
    for (const char* name : {"--shared-experts", "--zero-experts", "--copy-experts",
                             "--const-experts", "--const-alpha", "--unweighted",
                             "--shared-expert-x", "--add-rms-norm", "--performance-info",
                             "--comm-alg"}) {
        if (o.app != nullptr && o.app->count(name) > 0) return true;
    }
    return false;
}

std::string parse_mask(const std::string& text, int* kind, double* inactive) {
    const std::string bad = "--mask '" + text +
                            "' must be none, prefix, prefix:F, random or random:F with F (the "
                            "inactive fraction) in [0, 1]";
    const std::size_t colon = text.find(':');
    const std::string name = text.substr(0, colon);
    *inactive = -1;
    if (name == "none") {
        *kind = 0;
    } else if (name == "prefix") {
        *kind = 1;
    } else if (name == "random") {
        *kind = 2;
    } else {
        return bad;
    }
    if (colon == std::string::npos) return {};
    if (*kind == 0) return bad;
    try {
        std::size_t used = 0;
        *inactive = std::stod(text.substr(colon + 1), &used);
        if (used != text.size() - colon - 1 || !(*inactive >= 0 && *inactive <= 1)) return bad;
    } catch (...) {
        return bad;
    }
    return {};
}

std::string apply_v2_options(const V2Options& o,
                             const std::string& api,
                             const std::string& mask,
                             harness::JobSpec* s) {
    if (api != "v1" && api != "v2") return "--api '" + api + "' must be v1 or v2";
    s->v2 = api == "v2";
    int kind = 0;
    double inactive = -1;
    if (std::string why = parse_mask(mask, &kind, &inactive); !why.empty()) return why;
    if (!s->v2) {
        if (kind != 0) return "--mask " + mask + " needs --api v2 (V1 has no xActiveMask)";
        if (v2_only_given(o)) return "the V2 options (--shared-experts, --zero-experts, ...) need --api v2";
        return {};
    }
    s->mask = kind;
    s->mask_inactive = inactive;
    s->shared_expert_num = o.shared_experts;
    s->zero_experts = o.zero_experts;
    s->copy_experts = o.copy_experts;
    s->const_experts = o.const_experts;
    s->const_alpha_form = o.const_alpha == "vector" ? 2 : 1;
    s->unweighted = o.unweighted;
    s->shared_expert_x = o.shared_expert_x;
    s->add_rms_norm = o.add_rms_norm;
    s->performance_info = o.performance_info;
    s->comm_alg = o.comm_alg;
    if (s->shared_rank_num > 0 && s->shared_rank_num % s->shared_expert_num != 0) {
        return fmt::format("--shared-ranks {} must be a multiple of --shared-experts {}",
                           s->shared_rank_num,
                           s->shared_expert_num);
    }
    return {};
}

void apply_v2_options(const V2Options& o, MoeConfig* c) {
    if (o.api != "v2") return;
    c->api = Api::kV2;
    if (c->shared_expert_rank_num > 0) c->shared_expert_num = o.shared_experts;
    c->zero_expert_num = o.zero_experts;
    c->copy_expert_num = o.copy_experts;
    c->const_expert_num = o.const_experts;
    c->comm_alg = o.comm_alg;
}

}  // namespace moedist::cli
