#!/usr/bin/env bash
# The seed's A2 program as its document runs it on two servers: one rank table naming both, the
# program started on each host on its own (FIRST_RANK_ID=0 on the first, 8 on the second), each
# launch forking 8 processes, no launcher between them. The hosts are network namespaces; the
# ranks of a host meet through shared memory, the hosts through the hub and UCX over TCP. All 16
# ranks must print "execute successfully"; nothing may be left in /dev/shm.
set -uo pipefail
sample=$1
. "$(dirname "$0")/netns.sh"
hosts_up 2
work=$(mktemp -d)
trap 'hosts_down; rm -rf "$work"' EXIT
hosts_table 2 8 "$work/rank_table.json"
shm_before=$(ls /dev/shm | sort)
export RANK_TABLE_FILE=$work/rank_table.json MOEDIST_TIMEOUT_MS=60000
on_host 1 env FIRST_RANK_ID=0 timeout 240 "$sample" > "$work/a.log" 2>&1 &
a=$!
on_host 2 env FIRST_RANK_ID=8 timeout 240 "$sample" > "$work/b.log" 2>&1 &
b=$!
wait $a; rc_a=$?
wait $b; rc_b=$?
cat "$work/a.log" "$work/b.log" | grep -E "execute successfully|ERROR|error|failed" | head -40
n=$(cat "$work/a.log" "$work/b.log" | grep -o "aclnnMoeDistributeCombine execute successfully" | wc -l)
echo "ranks whose combine executed successfully: $n of 16 (exits $rc_a, $rc_b)"
shm_after=$(ls /dev/shm | sort)
[ "$shm_before" = "$shm_after" ] || { echo "/dev/shm changed: $shm_after"; exit 1; }
[ "$rc_a" -eq 0 ] && [ "$rc_b" -eq 0 ] && [ "$n" -eq 16 ]
