#!/usr/bin/python3
"""What users read names no document they do not have: README.md, docs/*.md, the public headers,
the Python package and module sources and the CLI's sources must not cite the project's internal
specification, its seed document, its issue numbers, its machine or files outside the
repository. Users' terms instead: docs/contract.md §n, Ascend's V1 documentation, the A3 V1
kernel.

Usage: check_no_internal_refs.py SOURCE_DIR
"""
import glob
import os
import re
import sys

FORBIDDEN = [
    (re.compile(r"\bSPEC\b"), "the internal specification (cite docs/contract.md)"),
    (re.compile(r"\bthe seed(?:'s)?\b(?! corpus)", re.I), "the seed document (say Ascend's V1 documentation)"),
    (re.compile(r"\bseed L\d+", re.I), "a line of the seed document"),
    (re.compile(r"\bissues? \d+", re.I), "an internal issue number"),
    (re.compile(r"project machine", re.I), "the project's machine"),
    (re.compile(r"\.\./shared\b|\bshared/seed\b"), "a path outside the repository"),
    (re.compile(r"\breference/[\w.-]+\.md\b"), "an internal reference page"),
]

FILES = ["README.md", "docs/*.md", "include/**/*.h", "include/**/*.hpp", "python/moedist/*.py",
         "python/src/*.cpp", "python/src/*.hpp", "tools/moedist/*.cpp", "tools/moedist/*.hpp"]


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    source = sys.argv[1]
    files = sorted({f for pattern in FILES for f in glob.glob(os.path.join(source, pattern), recursive=True)})
    if len(files) < 20:
        print(f"FAILED: only {len(files)} files found under {source}")
        return 1
    hits = 0
    for path in files:
        for n, line in enumerate(open(path, encoding="utf-8"), 1):
            for pattern, what in FORBIDDEN:
                if pattern.search(line):
                    hits += 1
                    print(f"{os.path.relpath(path, source)}:{n}: {what}: {line.strip()}")
    print(f"{len(files)} files read, {hits} internal references")
    return 1 if hits else 0


if __name__ == "__main__":
    sys.exit(main())
