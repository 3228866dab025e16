#!/usr/bin/env bash
# The whole-job suite across hosts: `moedist run --backend ucx` started on each of 2 and 4
# network namespaces standing for hosts (each host forks its share of the ranks; they join over
# the hub and UCX), on every quantization mode, shared ranks and the V2 family; every host must
# find every output of its ranks equal to the reference bit for bit (the same check as threads).
set -uo pipefail
moedist=$1
. "$(dirname "$0")/netns.sh"
hosts_up 4
work=$(mktemp -d)
trap 'hosts_down; rm -rf "$work"' EXIT
export MOEDIST_TIMEOUT_MS=30000
failed=0

# run_on HOSTS ARGS...: the job on hosts 1..HOSTS; fails unless every host checks OK.
run_on() {
  local hosts=$1 i list="" pids=()
  shift
  for i in $(seq 1 "$hosts"); do list="$list${list:+,}198.18.0.$i"; done
  for i in $(seq 1 "$hosts"); do
    on_host "$i" timeout 120 "$moedist" run --backend ucx --hosts "$list" --host-index $((i - 1)) \
      "$@" > "$work/host$i.log" 2>&1 &
    pids+=($!)
  done
  local ok=1
  for i in $(seq 1 "$hosts"); do
    wait "${pids[$((i - 1))]}" || ok=0
    grep -q "^check: OK" "$work/host$i.log" || ok=0
  done
  if [ $ok -eq 1 ]; then
    echo "ok    $hosts hosts: $*"
  else
    echo "FAIL  $hosts hosts: $*"
    for i in $(seq 1 "$hosts"); do sed "s/^/  host $i: /" "$work/host$i.log" | head -20; done
    failed=1
  fi
}

small="--tokens 6 --hidden 256 --topk 4"
for q in none int8 static-int8 static-hif8 fp8-e4m3 fp8-e5m2 group-e4m3 group-e5m2 mx-e4m3 \
         mx-e5m2 pre-e4m3 pre-e5m2 pre-hif8; do
  run_on 2 --ranks 8 --experts 16 $small --quant "$q"
done
run_on 2 --ranks 8 --experts 12 $small --routing zipf --quant int8 --shared-ranks 2
run_on 2 --ranks 16 --experts 32 $small --routing duplicates
run_on 2 --ranks 8 --experts 16 $small --api v2 --mask random --quant group-e4m3
run_on 2 --ranks 8 --experts 16 --tokens 0 --hidden 256 --topk 4
run_on 4 --ranks 8 --experts 16 $small --quant int8
run_on 4 --ranks 16 --experts 28 $small --shared-ranks 2 --quant fp8-e4m3
run_on 4 --ranks 16 --experts 14 $small --api v2 --shared-ranks 2 --zero-experts 2 --copy-experts 1 \
  --const-experts 1 --mask prefix
run_on 4 --ranks 16 --experts 64 --tokens 32 --hidden 1024 --topk 8 --quant mx-e4m3
# TP 2 with EP groups across hosts (each TP pair on one host: the pair relays its rows).
run_on 2 --ranks 8 --tp 2 --experts 7 --shared-ranks 1 --topk 3 --tokens 6 --hidden 256
run_on 2 --ranks 8 --tp 2 --experts 8 --tokens 6 --hidden 256 --topk 4 --quant int8 --comm-quant 2 \
  --zero-padding
run_on 4 --ranks 8 --tp 2 --experts 6 --shared-ranks 2 --tokens 6 --hidden 256 --topk 3 \
  --quant mx-e4m3
run_on 2 --ranks 8 --tp 2 --experts 8 --tokens 6 --hidden 256 --topk 4 --api v2 --mask random
# W = 16 with TP 2: 32 processes, 8 per host (4 TP pairs each), EP groups over 4 hosts.
run_on 4 --ranks 16 --tp 2 --experts 14 --shared-ranks 2 --tokens 4 --hidden 256 --topk 4 --quant int8
# A TP pair split across hosts (3 of 6 processes per host: the pair of EP rank 1 straddles them) is
# refused in the first phase with 561002, saying how to lay ranks out; every other rank fails
# with that message at once (the refusing ranks' calls abort theirs).
for i in 1 2; do
  on_host "$i" timeout 120 "$moedist" run --backend ucx --hosts 198.18.0.1,198.18.0.2 --host-index $((i - 1)) \
    --ranks 3 --tp 2 --experts 3 --tokens 6 --hidden 256 --topk 2 > "$work/split$i.log" 2>&1 &
  pids[$i]=$!
done
for i in 1 2; do
  wait "${pids[$i]}"
  if grep -q "tpWorldSize = 2 needs both ranks of the TP group" "$work/split$i.log"; then
    echo "ok    host $i: a TP pair split across hosts is refused: $(grep -o '[0-9]*: [^:]*needs both ranks' "$work/split$i.log" | head -1)"
  else
    echo "FAIL  host $i: a TP pair split across hosts must be refused, saying how to lay ranks out, got:"
    sed "s/^/  host $i: /" "$work/split$i.log" | head -20; failed=1
  fi
done
if ! cat "$work/split1.log" "$work/split2.log" | grep -q "561002: tpWorldSize = 2 needs both ranks"; then
  echo "FAIL  a rank of the split TP pair must fail with 561002"; failed=1
fi

# moedist bench --backend ucx on both hosts: each prints its table (this host's ranks' times)
# and its JSON.
for i in 1 2; do
  on_host "$i" timeout 120 "$moedist" bench --backend ucx --hosts 198.18.0.1,198.18.0.2 --host-index $((i - 1)) \
    --ranks 8 --experts 16 --tokens 1,8 --hidden 256 --topk 4 --reps 2 --warmup 1 --baseline none \
    --json "$work/bench$i.json" > "$work/bench$i.log" 2>&1 &
  pids[$i]=$!
done
for i in 1 2; do
  if wait "${pids[$i]}" && [ "$(grep -c '^W8 BS' "$work/bench$i.log")" -eq 2 ] &&
     /usr/bin/python3 -c "import json,sys; p=json.load(open(sys.argv[1]))['points']; assert len(p) == 2 and all(x['dispatch_ms']['median'] > 0 for x in p)" "$work/bench$i.json"; then
    echo "ok    2 hosts: moedist bench --backend ucx (host $i)"
  else
    echo "FAIL  2 hosts: moedist bench --backend ucx (host $i)"; sed 's/^/  /' "$work/bench$i.log" | head -20; failed=1
  fi
done
exit $failed
