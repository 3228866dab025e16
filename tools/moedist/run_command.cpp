#include "run_command.hpp"

#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <vector>

#if defined(MOEDIST_HAVE_MPI)
#include "run_mpi.hpp"
#endif
#include "plan_command.hpp"
#include "quant_choices.hpp"
#include "util/env.hpp"

namespace moedist::cli {
namespace {

using harness::JobReport;
using harness::JobSpec;
using harness::Routing;
using nlohmann::json;

const std::string kRunCmd = "run";

std::string routing_name(const JobSpec& s) {
    switch (s.routing) {
        case Routing::kZipf:
            return fmt::format("zipf:{}", s.zipf_alpha);
        case Routing::kHot:
            return "hot";
        case Routing::kDuplicates:
            return "duplicates";
        default:
            return "uniform";
    }
}

bool given(const RunOptions& o, const std::string& name) { return o.app->count(name) > 0; }

// E: --experts, else one expert per MoE rank with --tp 2, else 64; said when derived.
void derive_experts(const RunOptions& o, JobSpec* s) {
    if (o.experts > 0) {
        s->moe_expert_num = o.experts;
    } else if (s->tp_size == 2) {
        s->moe_expert_num = s->ep_world_size - s->shared_rank_num;
        note(kRunCmd,
             fmt::format("E = {} from --tp 2 (one expert per MoE rank: --ranks {} - "
                         "--shared-ranks {})",
                         s->moe_expert_num,
                         s->ep_world_size,
                         s->shared_rank_num));
    } else {
        s->moe_expert_num = 64;
    }
}

void warn_ignored(const RunOptions& o, const QuantChoice& q) {
    if (given(o, "--ranks-per-node") && o.backend != "mpi") {
        warn(kRunCmd,
             fmt::format("--ranks-per-node {} is ignored: it applies to --backend mpi only, got "
                         "--backend {}",
                         o.ranks_per_node,
                         o.backend));
    }
    if (o.smooth && q.mode != QuantMode::kPerToken && q.mode != QuantMode::kPerGroup) {
        warn(kRunCmd,
             fmt::format("--smooth is ignored with --quant {}: smooth scales apply to the "
                         "per-token (int8, fp8-*) and per-group (group-*) modes only",
                         o.quant));
    }
    if (o.load && o.json.to_stdout()) {
        warn(kRunCmd,
             "--load is ignored with --json to stdout: the JSON lists every expert's rows");
    }
}

// The spec of the options, or an error naming the values it judged.
std::string build_spec(const RunOptions& o, JobSpec* s) {
    *s = o.spec;
    if (std::string why = parse_routing(o.routing, s); !why.empty()) return why;
    if (o.routing == "zipf") {
        note(kRunCmd,
             fmt::format("--routing zipf: alpha = {} (the default; zipf:ALPHA sets it)",
                         s->zipf_alpha));
    }
    derive_experts(o, s);
    const QuantChoice& q = quant_choice(o.quant);
    s->quant_mode = static_cast<int>(q.mode);
    s->target = q.target;
    s->pre_quantized = q.pre_quantized;
    s->smooth_scales = o.smooth;
    s->comm_quant_mode = o.comm_quant;
    s->zero_padding = o.zero_padding;
    s->dtype = o.dtype == "fp16" ? DType::kFloat16 : DType::kBFloat16;
    s->backend = o.backend == "processes" ? harness::Backend::kProcesses
                 : o.backend == "ucx"     ? harness::Backend::kHosts
                                          : harness::Backend::kThreads;
    if (o.backend == "ucx") {
        if (o.hosts.size() < 2 || o.host_index < 0 ||
            o.host_index >= static_cast<int>(o.hosts.size()))
            return "--backend ucx must be given --hosts ADDR,ADDR[,...] (every host, in the same "
                   "order everywhere) and --host-index i (this host's position), got " +
                   std::to_string(o.hosts.size()) + " hosts and index " +
                   std::to_string(o.host_index);
        if ((s->ep_world_size * s->tp_size) % static_cast<int>(o.hosts.size()) != 0)
            return "--backend ucx must split --ranks evenly over --hosts, got " +
                   std::to_string(s->ep_world_size) + " ranks on " +
                   std::to_string(o.hosts.size()) + " hosts";
        s->hosts = o.hosts;
        s->host_index = o.host_index;
    }
    if (std::string why = apply_v2_options(o.v2, o.v2.api, o.v2.mask, s); !why.empty()) return why;
    if (std::string why = shape_problem(*s); !why.empty()) return why;
    if (std::string why = profile_problem(*s, o.quant, o.dtype, o.v2); !why.empty()) return why;
    warn_ignored(o, q);
    if (s->tokens == 0) {
        note(kRunCmd,
             "--tokens 0: no rank has tokens, so dispatch and combine move no rows; the times "
             "are the calls' fixed cost");
    }
    return {};
}

// The outcome of running: the report, or why the configuration could not run.
struct Outcome {
    JobReport report;
    std::string could_not_run;
};

Outcome run_local(const JobSpec& spec, int steps, bool check, bool human) {
    JobSpec s = spec;
    s.checked = check;
    const bool bar = human && isatty(STDERR_FILENO) && steps >= 20;
    harness::Job job(s);
    std::vector<harness::PhaseTimes> times;
    for (int step = 0; step < steps; ++step) {
        times.push_back(job.step());
        if (Status st = job.status(); !st.ok()) return {{}, st.message()};
        if (!bar) continue;
        const int width = 40, filled = (step + 1) * width / steps;
        fmt::print(stderr,
                   "\r[{}{}] {}/{}{}",
                   std::string(static_cast<std::size_t>(filled), '#'),
                   std::string(static_cast<std::size_t>(width - filled), ' '),
                   step + 1,
                   steps,
                   step + 1 == steps ? "\n" : "");
    }
    Outcome out{job.check(check), {}};
    out.report.steps = std::move(times);
    job.add_cross_host_traffic(&out.report);
    if (human && s.backend == harness::Backend::kHosts) {
        const auto& r = out.report;
        const int64_t row_bytes = static_cast<int64_t>(s.hidden) *
                                  static_cast<int64_t>(dtype_size(harness::expand_dtype(s)));
        fmt::print(
            "across hosts (this host's {} ranks of {}, {} hosts): dispatch {} rows, {:.2f} MB "
            "sent (hierarchical, each token once per host) vs {} rows, {:.2f} MB for a flat "
            "all-to-all; combine {} rows, {:.2f} MB\n",
            s.ep_world_size * s.tp_size / static_cast<int>(s.hosts.size()),
            s.ep_world_size * s.tp_size,
            s.hosts.size(),
            r.cross_dispatch_rows,
            static_cast<double>(r.cross_dispatch_bytes) / 1e6,
            r.cross_dispatch_flat_rows,
            static_cast<double>(r.cross_dispatch_flat_rows * row_bytes) / 1e6,
            r.cross_combine_rows,
            static_cast<double>(r.cross_combine_bytes) / 1e6);
    }
    return out;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

struct PhaseStats {
    double median = 0, min = 0, gbps = 0;
    std::vector<double> all;
};

PhaseStats phase_stats(const JobReport& r, bool dispatch) {
    PhaseStats p;
    for (const auto& s : r.steps) p.all.push_back(dispatch ? s.dispatch_ms : s.combine_ms);
    p.median = median(p.all);
    p.min = p.all.empty() ? 0.0 : *std::min_element(p.all.begin(), p.all.end());
    const double bytes = static_cast<double>(dispatch ? r.dispatch_bytes : r.combine_bytes);
    p.gbps = p.median > 0 ? bytes / (p.median * 1e6) : 0.0;
    return p;
}

struct LoadSummary {
    int64_t min = 0, median = 0, max = 0;
    int min_expert = 0, max_expert = 0;
    std::vector<int> top;  // up to 5 experts, most rows first
};

LoadSummary load_summary(const std::vector<int64_t>& rows, int experts) {
    LoadSummary l;
    const int n = std::min(experts, static_cast<int>(rows.size()));
    if (n == 0) return l;
    std::vector<int> order(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    auto at = [&](int e) { return rows[static_cast<std::size_t>(e)]; };
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return at(a) > at(b); });
    l.max_expert = order.front();
    l.min_expert = order.back();
    l.max = at(l.max_expert);
    l.min = at(l.min_expert);
    l.median = at(order[static_cast<std::size_t>(n / 2)]);
    l.top.assign(order.begin(), order.begin() + std::min(n, 5));
    return l;
}

std::string check_result(const JobReport& r, bool check) {
    return !check ? "skipped" : (r.ok ? "ok" : "mismatch");
}

// The V2 part of a job in words: "2 shared experts, mask prefix:0.5, 1 zero / 1 copy / 1 const
// experts, unweighted, AddRmsNorm".
std::string v2_summary(const JobSpec& s, const V2Options& v) {
    std::string out = fmt::format("{} shared expert{}, mask {}",
                                  s.shared_rank_num > 0 ? s.shared_expert_num : 0,
                                  s.shared_rank_num > 0 && s.shared_expert_num == 1 ? "" : "s",
                                  v.mask);
    if (s.zero_experts + s.copy_experts + s.const_experts > 0)
        out += fmt::format(", {} zero / {} copy / {} const experts ({} alphas)",
                           s.zero_experts,
                           s.copy_experts,
                           s.const_experts,
                           v.const_alpha);
    if (s.unweighted) out += ", unweighted";
    if (s.shared_expert_x) out += ", sharedExpertX";
    if (s.add_rms_norm) out += ", AddRmsNorm";
    if (s.performance_info) out += ", performanceInfo";
    if (!s.comm_alg.empty()) out += ", commAlg " + s.comm_alg;
    return out;
}

void print_header(const JobSpec& spec, const RunOptions& o) {
    const QuantChoice& q = quant_choice(o.quant);
    fmt::print(
        "moedist run: {}, {} ranks (tp {}, shared {}), experts {}, tokens {}, hidden {}, "
        "topk {}, {} {}, routing {}, steps {}{}\n",
        o.backend,
        spec.ep_world_size,
        spec.tp_size,
        spec.shared_rank_num,
        spec.moe_expert_num,
        spec.tokens,
        spec.hidden,
        spec.top_k,
        dtype_name(spec.dtype),
        q.mode == QuantMode::kNone && !q.pre_quantized
            ? std::string("no quant")
            : fmt::format("quant {} (mode {})", o.quant, static_cast<int>(q.mode)),
        routing_name(spec),
        o.steps,
        spec.zero_padding ? ", zero padding" : "");
    if (spec.v2) fmt::print("  V2: {}\n", v2_summary(spec, o.v2));
}

void print_load(const JobReport& r, const JobSpec& spec, bool all) {
    const auto& rows = r.rows_per_expert;
    if (all) {
        fmt::print("expert load (rows received, EP group 0):\n");
        const int64_t max_rows = rows.empty() ? 0 : *std::max_element(rows.begin(), rows.end());
        for (std::size_t i = 0; i < rows.size(); ++i) {
            const bool shared = static_cast<int>(i) >= spec.moe_expert_num;
            const int bar = max_rows > 0 ? static_cast<int>(rows[i] * 30 / max_rows) : 0;
            fmt::print("  {:>9} {:>4} {:>7}  {}\n",
                       shared ? "shared@" : "expert",
                       shared ? static_cast<int>(i) - spec.moe_expert_num : static_cast<int>(i),
                       rows[i],
                       std::string(static_cast<std::size_t>(bar), '*'));
        }
        return;
    }
    const LoadSummary l = load_summary(rows, spec.moe_expert_num);
    std::string top;
    for (int e : l.top)
        top +=
            fmt::format("{}{} ({})", top.empty() ? "" : ", ", e, rows[static_cast<std::size_t>(e)]);
    fmt::print(
        "expert load (rows received per expert, EP group 0, {} experts): min {} (expert {}), "
        "median {}, max {} (expert {}); top {}: {}\n",
        spec.moe_expert_num,
        l.min,
        l.min_expert,
        l.median,
        l.max,
        l.max_expert,
        l.top.size(),
        top);
    for (std::size_t i = static_cast<std::size_t>(spec.moe_expert_num); i < rows.size(); ++i) {
        fmt::print("  shared-expert rank {}: {} rows\n",
                   static_cast<int>(i) - spec.moe_expert_num,
                   rows[i]);
    }
    fmt::print("  (--load prints every expert)\n");
}

void print_human(const JobReport& r, const JobSpec& spec, const RunOptions& o) {
    const PhaseStats d = phase_stats(r, true), c = phase_stats(r, false);
    const char* whose =
        spec.backend == harness::Backend::kHosts ? "this host's ranks" : "all ranks";
    fmt::print(
        "dispatch: median {:.3f} ms, min {:.3f} ms (wall, {}), {:.2f} MB written, {:.2f} "
        "GB/s\n",
        d.median,
        d.min,
        whose,
        static_cast<double>(r.dispatch_bytes) / 1e6,
        d.gbps);
    fmt::print(
        "combine:  median {:.3f} ms, min {:.3f} ms (wall, {}), {:.2f} MB read, {:.2f} "
        "GB/s\n",
        c.median,
        c.min,
        whose,
        static_cast<double>(r.combine_bytes) / 1e6,
        c.gbps);
    if (!r.rows_per_expert.empty()) print_load(r, spec, o.load);
    const std::string result = check_result(r, !o.no_check);
    if (result == "skipped") {
        fmt::print("check: skipped (--no-check)\n");
    } else if (result == "ok") {
        fmt::print("check: OK — every output of {} equals the reference bit for bit\n",
                   spec.backend == harness::Backend::kHosts ? "this host's ranks" : "every rank");
    } else {
        fmt::print("check: FAILED: {}\n", r.first_mismatch);
    }
}

json phase_json(const PhaseStats& p, int64_t bytes) {
    return {{"median_ms", p.median},
            {"min_ms", p.min},
            {"steps_ms", p.all},
            {"bytes", bytes},
            {"gb_per_s", p.gbps}};
}

json report_json(const JobReport& r, const JobSpec& spec, const RunOptions& o) {
    json j;
    j["command"] = "run";
    j["config"] = {{"backend", o.backend},
                   {"ranks", spec.ep_world_size},
                   {"tp", spec.tp_size},
                   {"shared_ranks", spec.shared_rank_num},
                   {"experts", spec.moe_expert_num},
                   {"tokens", spec.tokens},
                   {"hidden", spec.hidden},
                   {"topk", spec.top_k},
                   {"dtype", dtype_name(spec.dtype)},
                   {"quant", o.quant},
                   {"quant_mode", spec.quant_mode},
                   {"comm_quant", spec.comm_quant_mode},
                   {"smooth", spec.smooth_scales},
                   {"zero_padding", spec.zero_padding},
                   {"api", spec.v2 ? "v2" : "v1"},
                   {"v2", spec.v2 ? v2_summary(spec, o.v2) : ""},
                   {"routing", routing_name(spec)},
                   {"steps", o.steps},
                   {"seed", spec.seed},
                   {"soc", util::soc_setting().text}};
    j["dispatch"] = phase_json(phase_stats(r, true), r.dispatch_bytes);
    j["combine"] = phase_json(phase_stats(r, false), r.combine_bytes);
    const auto& rows = r.rows_per_expert;
    const LoadSummary l = load_summary(rows, spec.moe_expert_num);
    json top = json::array();
    for (int e : l.top) top.push_back({{"expert", e}, {"rows", rows[static_cast<std::size_t>(e)]}});
    const auto split =
        rows.begin() +
        std::min<std::ptrdiff_t>(spec.moe_expert_num, static_cast<std::ptrdiff_t>(rows.size()));
    j["load"] = {{"min", l.min},
                 {"median", l.median},
                 {"max", l.max},
                 {"top", top},
                 {"rows_per_expert", std::vector<int64_t>(rows.begin(), split)},
                 {"rows_per_shared_rank", std::vector<int64_t>(split, rows.end())}};
    j["check"] = {{"result", check_result(r, !o.no_check)}};
    if (!r.ok) j["check"]["first_mismatch"] = r.first_mismatch;
    return j;
}

int report(const Outcome& out, const JobSpec& spec, const RunOptions& o) {
    if (!out.could_not_run.empty()) {
        fmt::print(stderr, "moedist run: the configuration could not run: {}\n", out.could_not_run);
        return kExitUnusable;
    }
    if (!o.json.to_stdout()) print_human(out.report, spec, o);
    if (!emit_json(o.json, report_json(out.report, spec, o), kRunCmd)) return kExitUnusable;
    if (!o.no_check && !out.report.ok) return kExitMismatch;
    return kExitOk;
}

#if defined(MOEDIST_HAVE_MPI)
Outcome run_on_mpi(const JobSpec& spec, const RunOptions& o, bool human) {
    harness::MpiTraffic traffic;
    Outcome out{run_mpi(spec, o.steps, !o.no_check, &traffic), {}};
    // A rank's call failed (the job stopped before the check counted any byte), as opposed to
    // outputs that differ from the reference.
    if (!out.report.ok && (out.report.steps.empty() ||
                           (out.report.dispatch_bytes == 0 && out.report.combine_bytes == 0))) {
        out.could_not_run = out.report.first_mismatch;
        return out;
    }
    if (human && traffic.nodes > 1) {
        fmt::print(
            "across nodes ({} nodes, MOEDIST_RANKS_PER_NODE): dispatch {} rows, {:.2f} MB sent "
            "(hierarchical, each token once per node) vs {} rows, {:.2f} MB for a flat "
            "all-to-all; combine {} rows, {:.2f} MB\n",
            traffic.nodes,
            traffic.dispatch_rows,
            static_cast<double>(traffic.dispatch_bytes) / 1e6,
            traffic.dispatch_flat_rows,
            static_cast<double>(traffic.dispatch_flat_rows * traffic.row_bytes) / 1e6,
            traffic.combine_rows,
            static_cast<double>(traffic.combine_bytes) / 1e6);
    }
    return out;
}

int run_mpi_body(const JobSpec& spec, const RunOptions& o) {
    const bool root = mpi_rank() == 0;
    if (!root && std::freopen("/dev/null", "w", stdout) == nullptr) return kExitUnusable;
    const int want = spec.ep_world_size * spec.tp_size;
    if (mpi_world_size() != want) {
        if (root) {
            fmt::print(stderr,
                       "moedist run: mpirun -np must be --ranks {} x --tp {} = {}, got {}\n",
                       spec.ep_world_size,
                       spec.tp_size,
                       want,
                       mpi_world_size());
        }
        return kExitUnusable;
    }
    const bool human = !o.json.to_stdout();
    if (human) print_header(spec, o);
    const Outcome out = run_on_mpi(spec, o, human);
    if (!root) return out.could_not_run.empty() ? kExitOk : kExitUnusable;
    return report(out, spec, o);
}
#endif

}  // namespace

std::string parse_routing(const std::string& text, JobSpec* spec) {
    const std::string bad =
        "--routing '" + text + "' must be uniform, zipf, zipf:ALPHA (ALPHA > 0), hot or duplicates";
    if (text == "uniform") {
        spec->routing = Routing::kUniform;
    } else if (text == "hot") {
        spec->routing = Routing::kHot;
    } else if (text == "duplicates") {
        spec->routing = Routing::kDuplicates;
    } else if (text == "zipf") {
        spec->routing = Routing::kZipf;
    } else if (text.rfind("zipf:", 0) == 0) {
        spec->routing = Routing::kZipf;
        try {
            std::size_t used = 0;
            spec->zipf_alpha = std::stod(text.substr(5), &used);
            if (used != text.size() - 5 || !(spec->zipf_alpha > 0)) return bad;
        } catch (...) {
            return bad;
        }
    } else {
        return bad;
    }
    return {};
}

std::string shape_problem(const JobSpec& s) {
    const int moe_ranks = s.ep_world_size - s.shared_rank_num;
    if (s.shared_rank_num >= s.ep_world_size) {
        return fmt::format("--shared-ranks {} must be < --ranks {} (at least one MoE rank)",
                           s.shared_rank_num,
                           s.ep_world_size);
    }
    if (s.tp_size == 2 && s.moe_expert_num != moe_ranks) {
        return fmt::format(
            "--tp 2 needs one expert per MoE rank: --experts must be {} (--ranks {} - "
            "--shared-ranks {}), got {}",
            moe_ranks,
            s.ep_world_size,
            s.shared_rank_num,
            s.moe_expert_num);
    }
    if (s.moe_expert_num % moe_ranks != 0) {
        return fmt::format(
            "--experts {} must be a multiple of the {} MoE ranks (--ranks {} - --shared-ranks "
            "{})",
            s.moe_expert_num,
            moe_ranks,
            s.ep_world_size,
            s.shared_rank_num);
    }
    const int specials = s.v2 ? s.zero_experts + s.copy_experts + s.const_experts : 0;
    if (s.top_k > s.moe_expert_num + specials) {
        return fmt::format("--topk {} must be <= the {} experts{}",
                           s.top_k,
                           s.moe_expert_num + specials,
                           specials > 0 ? " (special experts included)" : "");
    }
    return harness::spec_error(s);
}

std::string profile_problem(const JobSpec& s,
                            const std::string& quant,
                            const std::string& dtype,
                            const V2Options& v2) {
    const util::SocSetting& setting = util::soc_setting();
    if (!setting.soc) {
        return fmt::format("MOEDIST_SOC='{}' must be generic, A2 or A3", setting.text);
    }
    PlanOptions p;
    p.ranks = s.ep_world_size;
    p.tp = s.tp_size == 2 ? 2 : 0;
    p.shared_ranks = s.shared_rank_num;
    p.shared_expert_num = -1;  // each profile's own default, as the harness passes it
    p.experts = s.moe_expert_num;
    p.tokens = s.tokens;
    p.hidden = s.hidden;
    p.top_k = s.top_k;
    p.quant = quant;
    p.dtype = dtype;
    p.comm_quant = s.comm_quant_mode;
    p.v2 = v2;
    p.v2.api = s.v2 ? "v2" : "v1";
    p.mask_ndim = s.mask == 0 ? 0 : (s.mask == 1 ? 1 : 2);
    const ProfileVerdict v = judge_profile(p, *setting.soc);
    if (v.accepted) return {};
    return fmt::format(
        "the {} profile (MOEDIST_SOC) rejects this configuration ({} of a {} rank, "
        "{}): {}",
        soc_name(*setting.soc),
        v.operation,
        v.role,
        v.code,
        v.message);
}

CLI::App* add_run_command(CLI::App& app, RunOptions* o) {
    auto* run = app.add_subcommand("run",
                                   "dispatch -> expert -> combine on threads, processes or MPI "
                                   "ranks, checked against the reference");
    o->app = run;
    JobSpec& s = o->spec;
    s.ep_world_size = 8;
    s.tokens = 32;
    s.hidden = 7168;
    s.top_k = 8;
    run->add_option("--ranks", s.ep_world_size, "EP ranks W")->check(CLI::Range(1, 1024));
    run->add_option("--tp", s.tp_size, "TP size: 1 or 2")->check(CLI::IsMember({1, 2}));
    run->add_option("--shared-ranks", s.shared_rank_num, "shared-expert ranks S")
        ->check(CLI::Range(0, 1023));
    run->add_option("--tokens", s.tokens, "tokens per rank BS")->check(CLI::Range(0, 1 << 20));
    run->add_option("--hidden", s.hidden, "hidden size H")->check(CLI::Range(1, 1 << 20));
    run->add_option("--topk", s.top_k, "experts per token K")->check(CLI::Range(1, 1024));
    run->add_option("--experts",
                    o->experts,
                    "MoE experts E (with --tp 2 and no --experts: ranks - shared-ranks)")
        ->check(CLI::Range(1, 1 << 16))
        ->default_str("64");
    run->add_option("--quant", o->quant, "token quantization (docs/quantization.md)")
        ->check(CLI::IsMember(quant_names()));
    run->add_option("--dtype", o->dtype, "bf16|fp16")->check(CLI::IsMember({"bf16", "fp16"}));
    run->add_option("--routing", o->routing, "uniform|zipf[:alpha]|hot|duplicates");
    run->add_option("--steps", o->steps, "steps to run")->check(CLI::Range(1, 1000000));
    run->add_option("--seed", s.seed, "input seed");
    run->add_flag("--smooth", o->smooth, "per-token/per-group modes: pass smooth scales");
    run->add_option("--comm-quant", o->comm_quant, "combine commQuantMode: 0 or 2")
        ->check(CLI::IsMember({0, 2}));
    run->add_flag("--zero-padding",
                  o->zero_padding,
                  "zero the tails of expandX, dynamicScales and expandScales (MoeConfig::"
                  "zero_padding; the check then expects zeros there)");
    run->add_flag("--no-check", o->no_check, "skip the reference check (timing only)");
    run->add_flag("--load", o->load, "print every expert's rows instead of a summary");
    run->add_option("--backend",
                    o->backend,
                    "threads, processes (forks one process per rank), mpi (under mpirun -np "
                    "W*T: one rank per MPI process) or ucx (this host's ranks as processes, "
                    "joined with the other hosts' over UCX: --hosts, --host-index)")
        ->check(CLI::IsMember({"threads", "processes", "mpi", "ucx"}));
    run->add_option("--hosts",
                    o->hosts,
                    "--backend ucx: every host's address, in the same order on every host (rank "
                    "r runs on host r / (W*T / hosts)); the first one's is the hub's")
        ->delimiter(',');
    run->add_option("--host-index", o->host_index, "--backend ucx: this host's position in --hosts")
        ->check(CLI::Range(0, 4095));
    run->add_option("--ranks-per-node",
                    o->ranks_per_node,
                    "mpi backend: simulated nodes of n consecutive ranks (sets "
                    "MOEDIST_RANKS_PER_NODE; default: unset, one node)")
        ->check(CLI::Range(1, 65536))
        ->default_str("");
    add_v2_options(run, &o->v2, false);
    add_json_option(run, &o->json, "the configuration, per-phase times, bytes, load and check");
    return run;
}

int run_command(RunOptions& o, int argc, char** argv) {
    JobSpec spec;
    if (std::string why = build_spec(o, &spec); !why.empty()) {
        fmt::print(stderr, "moedist run: {}\n", why);
        return kExitUnusable;
    }
    if (o.json.wanted() && !o.json.to_stdout()) {
        if (std::string why = unwritable(o.json.path); !why.empty()) {
            fmt::print(stderr, "moedist run: --json={}: {}\n", o.json.path, why);
            return kExitUnusable;
        }
    }
    if (o.backend == "mpi") {
#if defined(MOEDIST_HAVE_MPI)
        if (std::string why = mpi_launcher_missing(); !why.empty()) {
            fmt::print(stderr, "moedist run: {}\n", why);
            return kExitUnusable;
        }
        if (o.ranks_per_node > 0)
            ::setenv("MOEDIST_RANKS_PER_NODE", std::to_string(o.ranks_per_node).c_str(), 1);
        return with_mpi(argc, argv, [&] { return run_mpi_body(spec, o); });
#else
        (void)argc;
        (void)argv;
        fmt::print(stderr, "moedist run: --backend mpi needs a build with MPI (OpenMPI)\n");
        return kExitUnusable;
#endif
    }
    (void)argc;
    (void)argv;
    const bool human = !o.json.to_stdout();
    if (human) print_header(spec, o);
    return report(run_local(spec, o.steps, !o.no_check, human), spec, o);
}

}  // namespace moedist::cli
