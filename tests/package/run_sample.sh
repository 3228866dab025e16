#!/usr/bin/env bash
# Runs the seed's sample and requires all 16 ranks to print "execute successfully".
set -uo pipefail
out=$("$1" 2>&1); rc=$?
echo "$out"
n=$(grep -o "execute successfully" <<<"$out" | wc -l)
echo "ranks that executed successfully: $n of 16 (exit $rc)"
[ "$rc" -eq 0 ] && [ "$n" -eq 16 ]
