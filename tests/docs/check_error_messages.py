#!/usr/bin/python3
"""Every error message docs/errors.md quotes is one the code prints.

The doc's messages are its inline code spans (and the lines of its ``` blocks) that read like a
message: they contain " must " and "got", or " must " in at least five words. Each must match, whole, at least one line the program
doc_errors printed ("MESSAGE <text>"), where in the doc
  <anything in angle brackets>   stands for any text (a value, a name, a path), and
  …                              for any text (an elided prefix, middle or end);
surrounding double quotes are not part of the message.

A quoted message the program cannot provoke simply is marked in the doc, right after its span,
with "(not checked: <the reason>)"; such spans are listed, not matched. Anything else that does
not match fails the test, and so does a doc with fewer than 30 checked messages (the doc lost its
quotes, or the parser broke).

Usage: check_error_messages.py ERRORS_MD DOC_ERRORS_PROGRAM
"""
import re
import subprocess
import sys

MIN_CHECKED = 30


def is_message(span):
    """A span reads like a message: "<who> must <what>, got <actual>", or a sentence of at least
    five words around " must "."""
    return " must " in span and ("got" in span or len(span.split()) >= 5)


def quoted_messages(doc):
    """(line number, message, unchecked reason or None) of every message the doc quotes."""
    found = []
    lines = doc.split("\n")
    prose = []  # the doc with its ``` blocks blanked (line numbers kept)
    in_block = False
    for n, line in enumerate(lines, 1):
        if line.startswith("```"):
            in_block = not in_block
            prose.append("")
            continue
        if in_block:
            text = line.strip()
            if is_message(text):
                found.append((n, text, None))
            prose.append("")
            continue
        prose.append(line)
    text = "\n".join(prose)
    # Spans may wrap across lines; a "(not checked: ...)" mark may too.
    for m in re.finditer(r"`([^`]+)`", text):
        span = " ".join(m.group(1).split())
        if not is_message(span):
            continue
        line = text.count("\n", 0, m.start()) + 1
        skip = re.match(r"\s*\(not checked:\s*([^)]*)\)", text[m.end():m.end() + 300])
        found.append((line, span, " ".join(skip.group(1).split()) if skip else None))
    return sorted(found)


def pattern_of(message):
    message = message.strip()
    if len(message) >= 2 and message[0] == '"' and message[-1] == '"':
        message = message[1:-1]
    parts = re.split(r"(<[^<>]+>|…)", message)
    regex = ""
    for part in parts:
        if part == "…" or (part.startswith("<") and part.endswith(">")):
            regex += ".*?"
        else:
            regex += re.escape(part)
    return re.compile(regex, re.S)


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    doc_path, program = sys.argv[1:3]
    doc = open(doc_path, encoding="utf-8").read()
    run = subprocess.run([program], capture_output=True, text=True, timeout=600)
    printed = [l[len("MESSAGE "):] for l in run.stdout.split("\n") if l.startswith("MESSAGE ")]
    for l in run.stdout.split("\n"):
        if l.startswith("NOTE"):
            print("program: " + l)
    if run.returncode != 0 or not printed:
        print(f"FAILED: {program} exited {run.returncode} with {len(printed)} messages\n{run.stderr[-4000:]}")
        return 1
    failures, checked, unchecked = 0, 0, []
    for line, message, skip in quoted_messages(doc):
        if skip is not None:
            unchecked.append((line, message, skip))
            continue
        checked += 1
        pattern = pattern_of(message)
        hit = next((p for p in printed if pattern.fullmatch(p)), None)
        if hit is None:
            failures += 1
            print(f"FAILED errors.md:{line}: no printed message matches\n    doc:  {message}")
            words = [w for w in re.split(r"<[^<>]+>|…|\W+", message) if len(w) > 3]
            near = sorted(printed, key=lambda p: -sum(w in p for w in words))[:2]
            for p in near:
                print(f"    near: {p}")
        else:
            print(f"ok     errors.md:{line}: {message}")
    for line, message, why in unchecked:
        print(f"not checked errors.md:{line}: {message} ({why})")
    print(f"{checked} messages checked against {len(printed)} printed, {failures} failed, "
          f"{len(unchecked)} marked not checked")
    if checked < MIN_CHECKED:
        print(f"FAILED: only {checked} messages found in {doc_path}, expected at least {MIN_CHECKED}")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
