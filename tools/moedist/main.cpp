// moedist — the command line: `run` (run_command.hpp), `plan` (plan_command.hpp) and `bench`
// (bench_command.hpp). Here: the main help (defaults, exit codes, environment), --version,
// --help-env, and "did you mean" after a parse error.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "bench_command.hpp"
#include "cli_common.hpp"
#include "plan_command.hpp"
#include "run_command.hpp"
#if defined(MOEDIST_HAVE_MPI)
#include "run_mpi.hpp"
#endif

#ifndef MOEDIST_VERSION
#error "MOEDIST_VERSION must be defined (tools/moedist/CMakeLists.txt passes PROJECT_VERSION)"
#endif

namespace {

using namespace moedist::cli;

int parse_failed(const CLI::App& app, const CLI::ParseError& e, int argc, char** argv) {
    const std::vector<CLI::App*> parsed = app.get_subcommands();
    const std::string where = parsed.empty() ? "moedist" : "moedist " + parsed.front()->get_name();
    const std::vector<std::string> hints = suggestions(app, argc, argv);
    const std::string what = e.what();
    // "A subcommand is required" says less than the hint about the word that was given.
    if (hints.empty() || e.get_name() != "RequiredError" || !parsed.empty())
        fmt::print(stderr, "{}: {}\n", where, what);
    for (const std::string& hint : hints) fmt::print(stderr, "{}: {}\n", where, hint);
    if (hints.empty() && parsed.empty() && e.get_name() == "RequiredError")
        fmt::print(stderr, "moedist: the subcommand must be run, plan or bench\n");
    fmt::print(stderr, "(see {} --help)\n", where);
    return kExitUnusable;
}

int run_bench(const BenchOptions& options, int argc, char** argv) {
#if defined(MOEDIST_HAVE_MPI)
    if (options.backend == "mpi") {
        if (std::string why = mpi_launcher_missing(); !why.empty()) {
            fmt::print(stderr, "moedist bench: {}\n", why);
            return kExitUnusable;
        }
        return with_mpi(argc, argv, [&] { return bench_command(options); });
    }
#else
    (void)argc;
    (void)argv;
#endif
    return bench_command(options);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"moedist " MOEDIST_VERSION
                 ": MoE expert-parallel dispatch and combine on CPUs (Ascend's "
                 "aclnnMoeDistributeDispatch / Combine)"};
    app.option_defaults()->always_capture_default();
    app.require_subcommand(1);
    app.set_version_flag("--version", "moedist " MOEDIST_VERSION, "print the version and exit");
    app.add_flag_callback(
        "--help-env",
        [] {
            std::fputs(env_table().c_str(), stdout);
            throw CLI::Success();
        },
        "print the environment variables moedist reads (type, default, meaning) and exit");
    RunOptions run_options;
    auto* run = add_run_command(app, &run_options);
    PlanOptions plan_options;
    auto* plan = add_plan_command(app, &plan_options);
    BenchOptions bench_options;
    auto* bench = add_bench_command(app, &bench_options);
    app.footer(main_epilog());  // after the subcommands: theirs stay short
    try {
        app.parse(argc, argv);
    } catch (const CLI::Success& e) {  // --help, --version, --help-env
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        return parse_failed(app, e, argc, argv);
    }
    if (plan->parsed()) return plan_command(plan_options);
    if (bench->parsed()) return run_bench(bench_options, argc, argv);
    if (run->parsed()) return run_command(run_options, argc, argv);
    return kExitUnusable;
}
