#!/usr/bin/env bash
# Runs a command and checks its exit code and what it printed.
# Usage: expect.sh RC [CHECK...] -- command [args...]
#   CHECK: out:REGEX (stdout must match), err:REGEX (stderr must match), !out:REGEX and
#   !err:REGEX (must not match); REGEX is grep -E.
set -uo pipefail
want=$1; shift
checks=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do checks+=("$1"); shift; done
[ $# -gt 1 ] || { echo "usage: expect.sh RC [CHECK...] -- command [args...]"; exit 2; }
shift
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
"$@" >"$out" 2>"$err"
rc=$?
fail=0
if [ "$rc" -ne "$want" ]; then
  echo "FAIL: exit code $rc, expected $want"
  fail=1
fi
for check in "${checks[@]}"; do
  negate=0
  if [ "${check:0:1}" = "!" ]; then negate=1; check=${check:1}; fi
  stream=${check%%:*} regex=${check#*:}
  file=$out
  [ "$stream" = err ] && file=$err
  if grep -Eq -- "$regex" "$file"; then found=1; else found=0; fi
  if [ "$found" -eq "$negate" ]; then
    echo "FAIL: $stream $([ $negate -eq 1 ] && echo "must not match" || echo "must match") /$regex/"
    fail=1
  fi
done
if [ "$fail" -ne 0 ]; then
  echo "--- command: $*"; echo "--- stdout:"; head -c 4000 "$out"; echo "--- stderr:"; head -c 4000 "$err"
  exit 1
fi
echo "ok: exit $rc, ${#checks[@]} output checks: $*"
