#include "cli_common.hpp"

#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "util/env.hpp"

namespace moedist::cli {

CLI::Option* add_json_option(CLI::App* app, JsonTarget* target, const std::string& what) {
    target->option = app->add_option("--json",
                                     target->path,
                                     what +
                                         " as JSON: --json or --json - to stdout (then nothing "
                                         "else goes there), --json=FILE to a file")
                         ->expected(0, 1)
                         ->type_name("[=FILE|-]");
    return target->option;
}

std::string unwritable(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code error;
    const fs::path p(path);
    if (fs::is_directory(p, error)) return "it is a directory";
    const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
    if (!fs::is_directory(dir, error)) return "its directory '" + dir.string() + "' does not exist";
    if (fs::exists(p, error)) {
        if (access(path.c_str(), W_OK) != 0) return "it is not writable";
    } else if (access(dir.c_str(), W_OK) != 0) {
        return "its directory '" + dir.string() + "' is not writable";
    }
    return {};
}

bool emit_json(const JsonTarget& target, const nlohmann::json& doc, const std::string& command) {
    if (!target.wanted()) return true;
    const std::string text = doc.dump(2) + "\n";
    if (target.to_stdout()) {
        std::fputs(text.c_str(), stdout);
        std::fflush(stdout);
        return true;
    }
    std::ofstream out(target.path);
    out << text;
    out.close();
    if (!out) {
        warn(command, "--json=" + target.path + " could not be written");
        return false;
    }
    note(command, "wrote " + target.path);
    return true;
}

// Under mpirun only the first rank speaks.
void note(const std::string& command, const std::string& text) {
    if (launcher_rank() != 0) return;
    fmt::print(stderr, "moedist {}: {}\n", command, text);
}

void warn(const std::string& command, const std::string& text) {
    if (launcher_rank() != 0) return;
    fmt::print(stderr, "moedist {}: warning: {}\n", command, text);
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
    const std::size_t n = a.size(), m = b.size();
    std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1, 0));
    for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
    for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
    for (std::size_t i = 1; i <= n; ++i) {
        for (std::size_t j = 1; j <= m; ++j) {
            const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    }
    return d[n][m];
}

std::string nearest(const std::string& word, const std::vector<std::string>& names) {
    std::string best;
    std::size_t best_distance = ~std::size_t{0};
    for (const std::string& name : names) {
        const std::size_t dist = edit_distance(word, name);
        if (dist < best_distance) {
            best = name;
            best_distance = dist;
        }
    }
    // A typo: at most 2 edits, or a third of the name's length for long names.
    const std::size_t allowed = std::max<std::size_t>(2, word.size() / 3);
    const bool prefix = !word.empty() && best.rfind(word, 0) == 0;  // "--tok" for "--tokens"
    return (best_distance <= allowed || prefix) && best_distance > 0 ? best : std::string();
}

namespace {

std::vector<std::string> long_options(const CLI::App& app) {
    std::vector<std::string> names;
    for (const CLI::Option* opt : app.get_options()) {
        for (const std::string& l : opt->get_lnames()) names.push_back("--" + l);
    }
    return names;
}

bool numeric(const std::string& token) {
    char* end = nullptr;
    (void)std::strtod(token.c_str(), &end);
    return end != nullptr && *end == '\0' && !token.empty();
}

std::string subcommand_list(const std::vector<std::string>& names) {
    std::string out;
    for (std::size_t i = 0; i < names.size(); ++i)
        out += (i == 0 ? "" : (i + 1 == names.size() ? " or " : ", ")) + names[i];
    return out;
}

}  // namespace

std::vector<std::string> suggestions(const CLI::App& app, int argc, const char* const* argv) {
    std::vector<std::string> subs, lines;
    for (const CLI::App* sub : app.get_subcommands(std::function<bool(const CLI::App*)>{}))
        subs.push_back(sub->get_name());
    const std::vector<CLI::App*> parsed = app.get_subcommands();
    const CLI::App* active = parsed.empty() ? &app : parsed.front();
    std::vector<std::string> options = long_options(*active);
    if (active != &app) {
        for (const std::string& o : long_options(app)) options.push_back(o);
    }
    bool seen_positional = !parsed.empty();
    for (int i = 1; i < argc; ++i) {
        const std::string token = argv[i];
        if (token.rfind("--", 0) == 0 && token.size() > 2) {
            const std::string name = token.substr(0, token.find('='));
            if (std::find(options.begin(), options.end(), name) != options.end()) continue;
            const std::string near = nearest(name, options);
            const std::string where = active == &app ? "moedist" : "moedist " + active->get_name();
            lines.push_back(
                near.empty() ? fmt::format("unknown option '{}' (see {} --help)", name, where)
                             : fmt::format("unknown option '{}': did you mean '{}'?", name, near));
        } else if (!seen_positional && !token.empty() && token[0] != '-' && !numeric(token)) {
            seen_positional = true;
            if (std::find(subs.begin(), subs.end(), token) != subs.end()) continue;
            const std::string near = nearest(token, subs);
            lines.push_back(
                near.empty()
                    ? fmt::format(
                          "unknown subcommand '{}': it must be {}", token, subcommand_list(subs))
                    : fmt::format("unknown subcommand '{}': did you mean '{}'?", token, near));
        }
    }
    return lines;
}

std::string env_table() {
    std::string out = "Environment variables moedist reads (name, type, default: meaning):\n";
    for (const util::EnvParam& p : util::env_params()) {
        out += fmt::format(
            "  {:<24} {:<18} default {}\n      {}\n", p.name, p.type, p.default_value, p.meaning);
    }
    return out;
}

std::string main_epilog() {
    std::string out =
        "Exit codes:\n"
        "  0  ok\n"
        "  1  a result mismatch: an output differs from the naive reference (run)\n"
        "  2  a bad option, or a configuration that cannot run (a profile's rejection, an "
        "impossible\n"
        "     shape, --backend mpi outside mpirun, an output file that cannot be written)\n"
        "\n"
        "Environment (moedist --help-env prints types and meanings):\n";
    for (const util::EnvParam& p : util::env_params())
        out += fmt::format("  {:<24} default {}\n", p.name, p.default_value);
    return out;
}

namespace {

const char* const kLauncherSize[] = {
    "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "SLURM_PROCID"};
const char* const kLauncherRank[] = {
    "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"};

}  // namespace

std::string mpi_launcher_missing() {
    for (const char* name : kLauncherSize) {
        if (std::getenv(name) != nullptr) return {};
    }
    return "--backend mpi must run under mpirun (mpirun -np W*T moedist ... --backend mpi), got "
           "no MPI launcher (OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK and SLURM_PROCID are unset)";
}

int launcher_rank() {
    for (const char* name : kLauncherRank) {
        if (const char* text = std::getenv(name); text != nullptr) return std::atoi(text);
    }
    return 0;
}

std::string duration_text(double seconds) {
    if (!(seconds >= 0) || seconds > 1e7) return "?";
    const long total = std::lround(seconds);
    if (total < 60) return fmt::format("{}s", total);
    if (total < 3600) return fmt::format("{}m{:02}s", total / 60, total % 60);
    return fmt::format("{}h{:02}m", total / 3600, (total / 60) % 60);
}

std::string rate_text(double items, double seconds, const std::string& unit) {
    if (items <= 0 || seconds <= 0) return "-";
    const double per_second = items / seconds;
    if (per_second >= 1) return fmt::format("{:.1f} {}s/s", per_second, unit);
    return fmt::format("{:.1f} s/{}", seconds / items, unit);
}

}  // namespace moedist::cli
