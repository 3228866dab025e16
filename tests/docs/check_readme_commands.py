#!/usr/bin/python3
"""Every shell command in README.md's ```sh blocks runs and succeeds, with the build already done.

Commands run with bash in a scratch directory that mirrors the source tree (a symlink to each of
its top-level entries) and whose `build` is a symlink to the build tree, so README's relative
paths work and whatever a command writes stays in the scratch directory (or the build tree).

A command is run as README writes it unless a rule below maps it; the rules make commands that
build, install or take long run on the finished build, short:

  bash scripts/run.sh ARGS   -> bash -n scripts/run.sh (it parses), then
                                build/bin/moedist run --steps 1 --tokens 4 --hidden 256 ARGS
                                (each of those options only when ARGS do not give it)
  bash scripts/test.sh ARGS  -> bash -n scripts/test.sh, then ctest on this build tree for one
                                short test (moedist_plan_seed_A3): the suite itself is what runs
                                this script
  build/bin/moedist run ...  -> with --steps 1 and short sizes as above
  build/bin/moedist bench .. -> with --tokens 1 --hidden 256 --reps 1 --warmup 0 (replacing a
                                --tokens list; each only when not given otherwise)
  mpirun ... PROGRAM ARGS    -> mpirun with the flags tests/mpi/run_mpi.sh uses on a small VM
                                (--oversubscribe --bind-to none, no CMA, --allow-run-as-root as
                                root), PROGRAM ARGS mapped by the rules above; skipped (reported)
                                when the build has no MPI
  /usr/bin/python3 -m venv --system-site-packages DIR && DIR/bin/pip install ... .
                             -> the venv is made; instead of building the package again (minutes)
                                the venv's python imports moedist from build/python next to
                                torch (which --system-site-packages must provide)
  g++ ... getting_started.cpp ...
                             -> README's C++ program (the ```cpp block with main()) is written to
                                getting_started.cpp first, then the command runs as written

Only commands of the shapes KNOWN lists are run (mapped or as written); any other command fails
the test, so a new README command cannot go untested: teach this script how to run it.

Usage: check_readme_commands.py SOURCE_DIR BUILD_DIR
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

TIMEOUT = 600

# What a README command may start with (after VAR=value assignments), and whether it is run as
# written ("as is") or through a mapping.
KNOWN = [
    (r"^bash scripts/run\.sh\b", "mapped: moedist run, short"),
    (r"^bash scripts/test\.sh\b", "mapped: one ctest test"),
    (r"^build/bin/moedist (run|bench)\b", "mapped: short sizes"),
    (r"^build/bin/moedist\b", "as is"),
    (r"^mpirun\b", "mapped: small-VM flags"),
    (r"^/usr/bin/python3 -m venv --system-site-packages (\S+) && \1/bin/pip install\b", "mapped: venv, no rebuild"),
    (r"^(PYTHONPATH=\S+ )?/usr/bin/python3 \S+\.py\b", "as is"),
    (r"^g\+\+ .*getting_started\.cpp", "as is, after writing README's C++ program"),
]


def sh_commands(readme):
    """(line number, command) of every command line in ```sh blocks (comments dropped,
    backslash continuations joined)."""
    commands = []
    lines = readme.split("\n")
    inside = False
    pending, pending_line = "", 0
    for n, line in enumerate(lines, 1):
        if re.match(r"^```", line):
            inside = (not inside) and line.strip() == "```sh"
            continue
        if not inside:
            continue
        text = re.sub(r"(^|\s)#.*$", "", line).rstrip()
        if not text.strip():
            continue
        if not pending:
            pending_line = n
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        commands.append((pending_line, (pending + text).strip()))
        pending = ""
    return commands


def has_option(args, name):
    return any(a == name or a.startswith(name + "=") for a in args)


def short_moedist(args, moedist):
    """A `moedist run|bench ARGS` argv made short."""
    sub, rest = args[0], list(args[1:])
    if sub == "run":
        extra = []
        for opt, value in (("--steps", "1"), ("--tokens", "4"), ("--hidden", "256")):
            if not has_option(rest, opt):
                extra += [opt, value]
        return [moedist, "run"] + extra + rest
    if sub == "bench":
        out = []
        i = 0
        while i < len(rest):
            if rest[i] == "--tokens" and i + 1 < len(rest):
                out += ["--tokens", "1"]
                i += 2
                continue
            out.append(rest[i])
            i += 1
        for opt, value in (("--tokens", "1"), ("--hidden", "256"), ("--reps", "1"), ("--warmup", "0")):
            if not has_option(out, opt):
                out += [opt, value]
        return [moedist, "bench"] + out
    return [moedist] + list(args)


def map_program(argv, build):
    """A program's argv under mpirun, mapped like a top-level command."""
    if argv and argv[0] in ("build/bin/moedist", os.path.join(build, "bin", "moedist")):
        return short_moedist(argv[1:], argv[0])
    return argv


def mpirun_flags():
    flags = ["--oversubscribe", "--bind-to", "none", "--mca", "btl_vader_single_copy_mechanism", "none"]
    if os.geteuid() == 0:
        flags.append("--allow-run-as-root")
    return flags


def map_command(command, build, readme):
    """The shell text to run for a README command, a reason to skip it, or an error."""
    for pattern, how in KNOWN:
        if re.search(pattern, command):
            break
    else:
        return None, None, "no rule knows how to run this command (add one to " + __file__ + ")"

    words = shlex.split(command)
    if re.search(r"^bash scripts/run\.sh\b", command):
        return ("bash -n scripts/run.sh && " + shlex.join(short_moedist(["run"] + words[2:], "build/bin/moedist")),
                None, None)
    if re.search(r"^bash scripts/test\.sh\b", command):
        return ("bash -n scripts/test.sh && ctest --test-dir build --output-on-failure --no-tests=error "
                "-R '^moedist_plan_seed_A3$'", None, None)
    if re.search(r"^build/bin/moedist (run|bench)\b", command):
        return shlex.join(short_moedist(words[1:], words[0])), None, None
    if words[0] == "mpirun":
        if shutil.which("mpirun") is None or not os.path.exists(os.path.join(build, "bin", "moedist-alltoallv-baseline")):
            return None, "the build has no MPI", None
        i = 1
        options = []
        while i < len(words) and words[i].startswith("-"):
            takes_value = words[i] in ("-np", "-n", "-x", "--mca", "--bind-to", "--map-by", "-H", "--host")
            options += words[i:i + (2 if takes_value else 1)] if words[i] != "--mca" else words[i:i + 3]
            i += 3 if words[i] == "--mca" else (2 if takes_value else 1)
        program = map_program(words[i:], build)
        options = [o for o in options if o not in ("--oversubscribe", "--allow-run-as-root")]
        return shlex.join(["timeout", str(TIMEOUT), "mpirun"] + mpirun_flags() + options + program), None, None
    m = re.search(r"^/usr/bin/python3 -m venv --system-site-packages (\S+) && \1/bin/pip install\b", command)
    if m:
        venv = m.group(1)
        return (f"/usr/bin/python3 -m venv --system-site-packages {venv} && {venv}/bin/pip --version && "
                f"PYTHONPATH=build/python {venv}/bin/python -c 'import torch, moedist; print(\"moedist\", "
                f"moedist.__version__, \"with torch\", torch.__version__)'", None, None)
    if "getting_started.cpp" in command:
        programs = [code for lang, code in fenced(readme, "cpp") if re.search(r"\bint\s+main\s*\(", code)]
        if len(programs) != 1:
            return None, None, f"README.md must have exactly one ```cpp block with main(), has {len(programs)}"
        with open("getting_started.cpp", "w") as f:
            f.write(programs[0] + "\n")
        return command, None, None
    return command, None, None


def fenced(text, language):
    out = []
    for m in re.finditer(r"^```(\w+)\n(.*?)^```", text, re.S | re.M):
        if m.group(1) == language:
            out.append((language, m.group(2)))
    return out


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    source, build = (os.path.abspath(p) for p in sys.argv[1:3])
    readme = open(os.path.join(source, "README.md"), encoding="utf-8").read()
    commands = sh_commands(readme)
    if len(commands) < 3:
        print(f"FAILED: expected README.md to have shell commands, found {len(commands)}")
        return 1
    failures = 0
    with tempfile.TemporaryDirectory(prefix="moedist_readme_") as scratch:
        for entry in os.listdir(source):
            if entry not in ("build", ".git"):
                os.symlink(os.path.join(source, entry), os.path.join(scratch, entry))
        os.symlink(build, os.path.join(scratch, "build"))
        os.chdir(scratch)
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        for line, command in commands:
            print(f"== README.md:{line}: {command}", flush=True)
            text, skip, error = map_command(command, build, readme)
            if error:
                print(f"FAILED: {error}")
                failures += 1
                continue
            if skip:
                print(f"skipped: {skip}")
                continue
            if text != command:
                print(f"   runs: {text}", flush=True)
            try:
                result = subprocess.run(["bash", "-o", "pipefail", "-c", text], env=env, timeout=TIMEOUT,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            except subprocess.TimeoutExpired:
                print(f"FAILED: still running after {TIMEOUT} s")
                failures += 1
                continue
            output = result.stdout.rstrip().split("\n")
            shown = output if result.returncode != 0 else output[-12:]
            print("\n".join("   | " + l for l in shown))
            if result.returncode != 0:
                print(f"FAILED: exit code {result.returncode}")
                failures += 1
            else:
                print("ok")
    print(f"{len(commands)} README commands, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
