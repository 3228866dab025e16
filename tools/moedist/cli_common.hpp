// Habits shared by `moedist run`, `plan` and `bench`: the exit codes, the `--json[=FILE]`
// convention, "did you mean" suggestions for mistyped names, the environment table of
// `moedist --help-env` (src/util/env.hpp), notes and warnings on stderr, and the checks made
// before anything runs (a launcher for --backend mpi, writable output files).
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace moedist::cli {

// The exit codes of every subcommand.
constexpr int kExitOk = 0;
constexpr int kExitMismatch = 1;  // a result differs from the reference
constexpr int kExitUnusable = 2;  // a bad option, or a configuration that cannot run

// `--json[=FILE]`: absent, `--json` / `--json -` (stdout) or `--json=FILE` / `--json FILE`.
struct JsonTarget {
    CLI::Option* option = nullptr;
    std::string path;
    bool wanted() const { return option != nullptr && option->count() > 0; }
    bool to_stdout() const { return wanted() && (path.empty() || path == "-"); }
};

CLI::Option* add_json_option(CLI::App* app, JsonTarget* target, const std::string& what);

// Writes `doc` where the target says; false (with a message on stderr) when the file cannot be
// written. `command` names the subcommand in messages.
bool emit_json(const JsonTarget& target, const nlohmann::json& doc, const std::string& command);

// Empty when `path` can be created or overwritten; else why not.
std::string unwritable(const std::string& path);

// "moedist <command>: <text>" on stderr; warn() prefixes "warning: ".
void note(const std::string& command, const std::string& text);
void warn(const std::string& command, const std::string& text);

// Optimal string alignment distance (a transposition costs 1).
std::size_t edit_distance(const std::string& a, const std::string& b);
// The nearest of `names` to `word` when it is close enough to be a typo; "" otherwise.
std::string nearest(const std::string& word, const std::vector<std::string>& names);

// After a parse error: one "did you mean" line per mistyped subcommand or option in argv.
std::vector<std::string> suggestions(const CLI::App& app, int argc, const char* const* argv);

// The table of src/util/env.cpp as `moedist --help-env` prints it, and the short form of the
// main help's epilog (with the exit codes).
std::string env_table();
std::string main_epilog();

// --backend mpi: empty when this process was started by mpirun (OpenMPI, MPICH/Hydra, PMIx or
// Slurm's launcher variables are set), else why it must be.
std::string mpi_launcher_missing();
// This process's rank as the launcher's variables say (0 when there are none).
int launcher_rank();

// "12.3 points/s" or "4.5 s/point"; "1m05s".
std::string rate_text(double items, double seconds, const std::string& unit);
std::string duration_text(double seconds);

}  // namespace moedist::cli
