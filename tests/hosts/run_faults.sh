#!/usr/bin/env bash
# Faults across hosts (two network namespaces, 4 ranks each, MOEDIST_TIMEOUT_MS = 3000), with
# hosts_probe as the job. In every case each surviving rank must return 361001 naming a rank of
# the other host (or the hub) well within the timeout's reach, its next call must fail at once
# (the group is broken), it must then form a new group on its own host and run there, and
# nothing may be left in /dev/shm:
#   1. a host that never starts
#   2. a host whose processes are all killed mid-job
#   3. the link of a host taken down mid-job (both hosts are survivors)
#   4. a stranger (another job's table, garbage) at the hub does not disturb the job
set -uo pipefail
probe=$1
. "$(dirname "$0")/netns.sh"
hosts_up 2
work=$(mktemp -d)
trap 'hosts_down; rm -rf "$work"' EXIT
hosts_table 2 4 "$work/table.json"
for h in 1 2; do  # each host's fallback: a table of its own 4 ranks
  sed "s/198.18.0.1/198.18.0.$h/" <<<'{"version": "1.0", "server_count": "1", "status": "completed", "server_list": [{"server_id": "198.18.0.1", "device": [{"device_id": "0", "rank_id": "0"}, {"device_id": "1", "rank_id": "1"}, {"device_id": "2", "rank_id": "2"}, {"device_id": "3", "rank_id": "3"}]}]}' > "$work/own$h.json"
done
export MOEDIST_TIMEOUT_MS=3000
shm_before=$(ls /dev/shm | sort)
failed=0
fail() { echo "FAIL: $*"; failed=1; }

# expect LOG RANKS PATTERN: every rank of RANKS failed with 361001 matching PATTERN, its next call
# failed at once, and it then ran in a new group.
expect() {
  local log=$1 ranks=$2 pattern=$3 r
  for r in $ranks; do
    grep -qE "^rank $r: call [0-9]+ failed with 361001 after [0-9]+ ms: .*$pattern" "$log" ||
      fail "rank $r must fail with 361001 matching '$pattern': $(grep "^rank $r:" "$log" | head -3)"
    local ms
    ms=$(grep -m1 -oE "^rank $r: call [0-9]+ failed with 361001 after [0-9]+ ms" "$log" | grep -oE '[0-9]+ ms' | grep -oE '[0-9]+')
    # a wait is bounded by the timeout, the node round after the exchange by twice that, and a
    # call whose wait failed waits no more
    [ -z "$ms" ] || [ "$ms" -le $((2 * MOEDIST_TIMEOUT_MS + 1000)) ] ||
      fail "rank $r's failing call must end within twice the timeout, took $ms ms"
    grep -q "^rank $r: next call 361001" "$log" || fail "rank $r's next call must fail at once"
    grep -q "^rank $r: new group ok" "$log" || fail "rank $r must run in a new group afterwards"
  done
}

start() {  # start HOST FIRST CALLS PAUSE LOG
  on_host "$1" env HOSTS_PROBE_REJOIN="$work/own$1.json" timeout 60 "$probe" "$work/table.json" "$2" 4 "$3" "$4" > "$5" 2>&1 &
}

echo "1. a host that never starts"
t0=$(date +%s)
start 1 0 1 0 "$work/never.log"; wait $!
t1=$(date +%s)
expect "$work/never.log" "0 1 2 3" "rank 4 of the rank table must reach the hub of rank 0 at 198.18.0.1"
[ $((t1 - t0)) -le 12 ] || fail "the ranks must give up within the timeout's reach, took $((t1 - t0)) s"

echo "2. a host killed mid-job"
start 1 0 400 20 "$work/kill1.log"; a=$!
start 2 4 400 20 "$work/kill2.log"
sleep 3
grep -q "failed" "$work/kill1.log" && fail "the job must run before the kill: $(cat "$work/kill1.log")"
ip netns pids "${MD_NS}2" | xargs -r kill -9
t0=$(date +%s); wait $a; t1=$(date +%s)
expect "$work/kill1.log" "0 1 2 3" "rank [4-7] of '.*' \\(node 1\\)"
[ $((t1 - t0)) -le 12 ] || fail "the survivors must give up within the timeout's reach, took $((t1 - t0)) s"

echo "3. a link taken down mid-job"
start 1 0 400 20 "$work/link1.log"; a=$!
start 2 4 400 20 "$work/link2.log"; b=$!
sleep 3
ip -n "${MD_NS}2" link set md0 down
t0=$(date +%s); wait $a; wait $b; t1=$(date +%s)
expect "$work/link1.log" "0 1 2 3" "rank [4-7] of '.*' \\(node 1\\)"
expect "$work/link2.log" "4 5 6 7" "rank [0-3] of '.*' \\(node 0\\)"
[ $((t1 - t0)) -le 15 ] || fail "both sides must give up within the timeout's reach, took $((t1 - t0)) s"
ip -n "${MD_NS}2" link set md0 up

echo "4. strangers at the hub"
start 1 0 3 300 "$work/calm1.log"; a=$!
start 2 4 3 300 "$work/calm2.log"; b=$!
# Garbage and silence at every port the hub could use, from the other host, while the job joins.
on_host 2 bash -c 'for p in $(seq 60000 64095); do (exec 3<>/dev/tcp/198.18.0.1/$p && printf "garbage%.0s" {1..40} >&3) 2>/dev/null & done; wait' &
wait $a; wait $b
for r in 0 1 2 3; do grep -q "^rank $r: ok 3 calls" "$work/calm1.log" || fail "rank $r must run despite strangers: $(grep "^rank $r" "$work/calm1.log")"; done
for r in 4 5 6 7; do grep -q "^rank $r: ok 3 calls" "$work/calm2.log" || fail "rank $r must run despite strangers: $(grep "^rank $r" "$work/calm2.log")"; done
# moedist's UCX defaults (512 KiB TCP segments, ...) are taken as given: UCX warns of options it
# refuses (it did for "TCP_TX_SEG_SIZE", which UCX 1.13 takes only as "TX_SEG_SIZE")
grep -h "UCX  WARN" "$work/calm1.log" "$work/calm2.log" && fail "UCX must run the job without a warning"

if [ "$failed" = 0 ]; then cat "$work"/*.log | sed 's/^/  /' | head -60
else for f in "$work"/*.log; do echo "== $f"; sed 's/^/  /' "$f"; done; fi
shm_after=$(ls /dev/shm | sort)
[ "$shm_before" = "$shm_after" ] || fail "/dev/shm changed: $shm_after"
exit $failed
