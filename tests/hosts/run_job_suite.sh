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
# TP 2 across hosts is refused before anything runs, saying so.
out=$("$moedist" run --backend ucx --hosts 198.18.0.1,198.18.0.2 --host-index 0 --ranks 8 --tp 2 \
  --experts 7 --shared-ranks 1 --topk 3 2>&1); rc=$?
if [ $rc -eq 2 ] && grep -q "runs --tp 1" <<<"$out"; then
  echo "ok    --tp 2 across hosts refused: $(tail -1 <<<"$out")"
else
  echo "FAIL  --tp 2 across hosts must be refused with exit 2, got $rc: $out"; failed=1
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
