#!/usr/bin/python3
"""Every ```cpp and ```c block of README.md and the usage sketch at the top of the public headers
compiles (g++ -std=c++20 / gcc -std=c11, -fsyntax-only, against include/).

A block that defines main() is compiled as it is. Any other block is a fragment: its #include
lines go to file scope and the rest becomes the body of a function, after a small per-block
prelude that declares what the fragment uses but does not define (PRELUDES below: the first
entry whose key occurs in the block applies; keep them small and explicit). A block no prelude
fits is compiled with none, so a new fragment must compile as written or get an entry here.

The header sketches are the `//   ` lines of a header's leading comment. SKETCH_HEADERS lists the
headers that have one; NOT_CODE those whose indented comment lines are not code. A header in
include/moedist/ with indented lines in its leading comment that is in neither list fails the
test, so a new sketch cannot go unchecked.

Usage: check_code_blocks.py SOURCE_DIR CXX CC [MPI_INCLUDE_DIR ...]
"""
import os
import re
import subprocess
import sys
import tempfile

SKETCH_HEADERS = ["moedist.hpp", "communicator.hpp", "mpi.hpp", "convert.hpp"]
NOT_CODE = {"status.hpp": "a table of the aclnn codes", "profile.hpp": "a list of the profiles"}

# key (a substring of the block) -> (file-scope lines, function-scope lines)
PRELUDES = [
    # README, C API: the tensors, the rank and the stream a rank's thread has.
    ("aclnnMoeDistributeDispatchGetWorkspaceSize(x, expertIds",
     ([], ["int rank = 0;", "aclrtStream stream = NULL;",
           "aclTensor *x = NULL, *expertIds = NULL, *expertScales = NULL, *expandX = NULL,",
           "    *dynamicScales = NULL, *expandIdx = NULL, *expertTokenNums = NULL,",
           "    *epRecvCounts = NULL, *tpRecvCounts = NULL, *expandScales = NULL;"])),
    # README, C++ API: a rank id and the tensors of one call.
    ("moedist::MoeConfig config{.ep_world_size = 8",
     ([], ["int r = 0;", "moedist::DispatchInputs inputs;", "moedist::DispatchOutputs outputs;",
           "moedist::TensorView expert_out, expert_scales, x_out;"])),
    # README, the V2 family: the same.
    ("moedist::MoeConfig config{.ep_world_size = 8, .ep_rank_id = r, .moe_expert_num = 48",
     ([], ["int r = 0;", "moedist::DispatchInputs inputs;", "moedist::DispatchOutputs outputs;",
           "moedist::TensorView expert_out, expert_scales, x_out;"])),
    # README, split calls: a distributor and two micro-batches' tensors.
    ("moe.try_dispatch_send(inputs_a, outputs_a, &first)",
     (["#include <moedist/moedist.hpp>"],
      ["moedist::MoeDistributor& moe = *static_cast<moedist::MoeDistributor*>(nullptr);",
       "moedist::DispatchInputs inputs_a, inputs_b;", "moedist::DispatchOutputs outputs_a, outputs_b;"])),
    # moedist.hpp: the same, with a config.
    ("moedist::MoeDistributor moe(ep[r], std::nullopt, config);       // config validated once",
     (["#include <moedist/moedist.hpp>"],
      ["int r = 0;", "moedist::MoeConfig config;", "moedist::DispatchInputs inputs;",
       "moedist::DispatchOutputs outputs;", "moedist::TensorView expert_out, expert_scales, x_out;"])),
    # mpi.hpp: main's arguments and a config.
    ("moedist::from_mpi(MPI_COMM_WORLD",
     (["#include <moedist/moedist.hpp>", "#include <moedist/mpi.hpp>"],
      ["int argc = 0;", "char** argv = nullptr;", "int provided = 0;", "moedist::MoeConfig config;"])),
    # communicator.hpp: this process's rank, the group size, an all-gather, a size.
    ("moedist::Communicator::join_processes(rank, size",
     (["#include <moedist/communicator.hpp>"],
      ["int rank = 0, size = 2;", "std::size_t bytes = 64;",
       "moedist::Communicator::AllGather all_gather;"])),
    # convert.hpp: sizes, values to convert and an output to read.
    ("moedist::bf16_from_float(values[i])",
     (["#include <cstddef>", "#include <cstdint>", "#include <vector>", "#include <moedist/convert.hpp>"],
      ["std::size_t bs = 1, hidden = 1, i = 0;", "std::vector<float> values(1);",
       "std::vector<uint16_t> x_out(1);"])),
]


def fenced_blocks(text, languages):
    """(language, first line number, code) of every fenced block in one of `languages`."""
    blocks = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\w+)\s*$", lines[i])
        if m:
            start = i + 1
            j = start
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            if m.group(1) in languages:
                blocks.append((m.group(1), start + 1, "\n".join(lines[start:j])))
            i = j + 1
            continue
        i += 1
    return blocks


def leading_comment(text):
    out = []
    for line in text.split("\n"):
        if not line.startswith("//"):
            break
        out.append(line)
    return out


def header_sketch(text):
    """The `//   ` lines of the leading comment, de-commented."""
    return [line[5:] for line in leading_comment(text) if line.startswith("//   ")]


def prelude_for(code):
    for key, prelude in PRELUDES:
        if key in code:
            return key, prelude
    return None, ([], [])


def source_of(code, language):
    if re.search(r"\bint\s+main\s*\(", code):
        return code + "\n", "(a whole program)"
    key, (globals_, locals_) = prelude_for(code)
    includes = [l for l in code.split("\n") if l.lstrip().startswith("#include")]
    body = [l for l in code.split("\n") if not l.lstrip().startswith("#include")]
    function = "void doc_block(void)" if language == "c" else "void doc_block()"
    text = "\n".join(globals_ + includes + [function + " {"] + ["    " + l for l in locals_] + body + ["}", ""])
    return text, ("prelude for %r" % key[:50]) if key else "no prelude"


def compile_block(name, code, language, compilers, include_dirs, scratch):
    source, how = source_of(code, language)
    suffix = ".c" if language == "c" else ".cpp"
    path = os.path.join(scratch, re.sub(r"[^A-Za-z0-9]+", "_", name) + suffix)
    with open(path, "w") as f:
        f.write(source)
    if language == "c":
        cmd = [compilers["c"], "-std=c11", "-x", "c"]
    else:
        cmd = [compilers["cpp"], "-std=c++20", "-x", "c++"]
    cmd += ["-fsyntax-only", "-Wall"] + ["-I" + d for d in include_dirs] + [path]
    result = subprocess.run(cmd, capture_output=True, text=True)
    status = "ok" if result.returncode == 0 else "FAILED"
    print(f"{status:6} {name} ({language}, {how})")
    if result.returncode != 0:
        print("----- source -----")
        for n, line in enumerate(source.split("\n"), 1):
            print(f"{n:4} {line}")
        print("----- compiler -----")
        print(result.stderr)
    return result.returncode == 0


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    source_dir, cxx, cc = sys.argv[1:4]
    mpi_dirs = [d for d in sys.argv[4:] if d]
    include = os.path.join(source_dir, "include")
    compilers = {"cpp": cxx, "c": cc}
    failures = 0
    checked = 0
    with tempfile.TemporaryDirectory(prefix="moedist_doc_blocks_") as scratch:
        readme = open(os.path.join(source_dir, "README.md"), encoding="utf-8").read()
        blocks = fenced_blocks(readme, ("cpp", "c"))
        if len(blocks) < 3:
            print(f"FAILED README.md: expected at least 3 C/C++ blocks, found {len(blocks)}")
            failures += 1
        for language, line, code in blocks:
            checked += 1
            if not compile_block(f"README.md:{line}", code, language, compilers, [include], scratch):
                failures += 1

        headers_dir = os.path.join(include, "moedist")
        for header in sorted(os.listdir(headers_dir)):
            text = open(os.path.join(headers_dir, header), encoding="utf-8").read()
            sketch = header_sketch(text)
            if header in SKETCH_HEADERS:
                if not sketch:
                    print(f"FAILED include/moedist/{header}: listed as having a usage sketch, has none")
                    failures += 1
                    continue
                code = "\n".join(sketch)
                dirs = [include]
                if header == "mpi.hpp":
                    if not mpi_dirs:
                        print(f"skip   include/moedist/{header} (no MPI headers in this build)")
                        continue
                    dirs += mpi_dirs
                checked += 1
                if not compile_block(f"include/moedist/{header}", code, "cpp", compilers, dirs, scratch):
                    failures += 1
            elif sketch and header not in NOT_CODE:
                print(f"FAILED include/moedist/{header}: its leading comment has indented lines; add the "
                      f"header to SKETCH_HEADERS (code, compiled) or NOT_CODE (with the reason) in {__file__}")
                failures += 1
    print(f"{checked} blocks compiled, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
