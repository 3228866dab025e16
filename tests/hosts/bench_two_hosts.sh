#!/usr/bin/env bash
# The ucx engine against the MPI engine and the MPI_Alltoallv baseline on the same layout: two
# network namespaces standing for hosts, 4 ranks each, TCP between them (UCX_TLS=tcp; OpenMPI's
# tcp BTL on md0), EP8 H7168 K8 E256 at BS 1 and 128 by default. Runs
#   moedist bench --backend ucx on both hosts at once (each host times its own ranks: the slower
#     host's medians are taken),
#   moedist bench --backend mpi --baseline alltoallv under one mpirun across both hosts (its
#     launch agent enters the namespaces: netns_rsh.sh),
#   moedist run --steps 1 per BS on both hosts for the bytes each host sends across, and
#   wire_floor.py: plain TCP sockets moving those bytes between the same 4 + 4 processes in the
#     call's pattern (both directions at once) - the wire floor no engine beats by much,
# and prints the medians side by side with the ratios. A benchmark, not a test: it fails only
# when a run fails.
#
#   bench_two_hosts.sh MOEDIST [--tokens 1,128] [--reps 30] [other moedist bench options]
# (30 reps by default: over 10, the medians moved more from one run to the next here)
set -uo pipefail
moedist=$1
shift
args=(--ranks 8 --hidden 7168 --topk 8 --experts 256 "$@")
# moedist bench takes --reps and --warmup once, and --tokens adds to a list: each default only
# when the user gave none
[[ " $* " == *" --tokens "* ]] || args+=(--tokens 1,128)
[[ " $* " == *" --reps "* ]] || args+=(--reps 30)
[[ " $* " == *" --warmup "* ]] || args+=(--warmup 3)
# The job's own options (the last of each wins), for the runs that count the bytes across.
declare -A shape=([--ranks]=8 [--hidden]=7168 [--topk]=8 [--experts]=256 [--tokens]=1,128)
for ((k = 0; k < ${#args[@]} - 1; k++)); do
  case "${args[k]}" in --ranks|--hidden|--topk|--experts|--tokens|--quant|--routing) shape[${args[k]}]=${args[k+1]} ;; esac
done
here=$(cd "$(dirname "$0")" && pwd)
. "$here/netns.sh"
hosts_up 2
work=$(mktemp -d)
trap 'hosts_down; rm -rf "$work"' EXIT
export MOEDIST_TIMEOUT_MS=60000
for i in 1 2; do
  on_host "$i" "$moedist" bench --backend ucx --hosts 198.18.0.1,198.18.0.2 --host-index $((i - 1)) \
    --baseline none "${args[@]}" --json "$work/ucx$i.json" > "$work/ucx$i.log" 2>&1 &
  pids[$i]=$!
done
wait "${pids[1]}" && wait "${pids[2]}" || { cat "$work"/ucx*.log; exit 1; }
on_host 1 env MD_NS_PREFIX="$MD_NS" mpirun --allow-run-as-root --oversubscribe --bind-to none \
  --mca plm_rsh_agent "$here/netns_rsh.sh" -x MD_NS_PREFIX --mca btl tcp,self \
  --mca btl_tcp_if_include md0 --mca oob_tcp_if_include md0 --host 198.18.0.1:4,198.18.0.2:4 -np 8 \
  "$moedist" bench --backend mpi --ranks-per-node 4 --baseline alltoallv "${args[@]}" \
  --json "$work/mpi.json" > "$work/mpi.log" 2>&1 || { cat "$work/mpi.log"; exit 1; }
# The bytes each host sends across per BS (moedist run prints them), then the wire floor.
IFS=, read -ra sizes <<< "${shape[--tokens]}"
job=()
for key in --ranks --hidden --topk --experts --quant --routing; do
  [ -n "${shape[$key]:-}" ] && job+=("$key" "${shape[$key]}")
done
for bs in "${sizes[@]}"; do
  for i in 1 2; do
    on_host "$i" "$moedist" run --backend ucx --hosts 198.18.0.1,198.18.0.2 --host-index $((i - 1)) \
      "${job[@]}" --tokens "$bs" --steps 1 > "$work/run$bs-$i.log" 2>&1 &
    pids[$i]=$!
  done
  wait "${pids[1]}" && wait "${pids[2]}" || { cat "$work"/run"$bs"-*.log; exit 1; }
done
per_host=$(( ${shape[--ranks]} / 2 ))
mbs=()
for bs in "${sizes[@]}"; do
  line=$(grep -h "^across hosts" "$work/run$bs-1.log")
  d=$(sed -E 's/.*dispatch [0-9]+ rows, ([0-9.]+) MB sent.*/\1/' <<< "$line")
  c=$(sed -E 's/.*combine [0-9]+ rows, ([0-9.]+) MB.*/\1/' <<< "$line")
  mbs+=("$d" "$c")
  echo "$bs $d $c" >> "$work/bytes.txt"
done
for i in 1 2; do
  peer=$((3 - i))
  on_host "$i" /usr/bin/python3 "$here/wire_floor.py" $((i - 1)) "198.18.0.$i" "198.18.0.$peer" "$per_host" \
    "${mbs[@]}" > "$work/wire$i.log" 2>&1 &
  pids[$i]=$!
done
wait "${pids[1]}" && wait "${pids[2]}" || { cat "$work"/wire*.log; exit 1; }

/usr/bin/python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
load = lambda f: json.load(open(f"{work}/{f}"))["points"]
u1, u2, mpi = load("ucx1.json"), load("ucx2.json"), load("mpi.json")
med = lambda p, k: p[k]["median"]
# bytes.txt: "BS dispatch_MB combine_MB" per BS; wire<i>.log: "wire MB ms" per figure, in that order
sent = {int(bs): (float(d), float(c)) for bs, d, c in (l.split() for l in open(f"{work}/bytes.txt"))}
wire_ms = [[float(l.split()[2]) for l in open(f"{work}/wire{i}.log") if l.startswith("wire ")] for i in (1, 2)]
wire = {bs: (max(wire_ms[0][2 * n], wire_ms[1][2 * n]), max(wire_ms[0][2 * n + 1], wire_ms[1][2 * n + 1]))
        for n, bs in enumerate(sent)}
print("two hosts (network namespaces, TCP), EP8 = 4 + 4 ranks; medians in ms; ucx: the slower host's;")
print("wire: plain TCP sockets moving the MB each host sends across (dispatch / combine) the same way")
print(f"{'point':<28} {'ucx d':>8} {'ucx c':>8} {'mpi d':>8} {'mpi c':>8} {'a2av d':>8} {'a2av c':>8}"
      f" {'a2av/ucx d':>10} {'c':>6} {'d+c':>6} {'ucx/mpi d+c':>12} {'MB d / c':>13} {'wire d':>7} {'wire c':>7}"
      f" {'ucx/wire d+c':>12}")
for a, b, m in zip(u1, u2, mpi):
    ud, uc = max(med(a, "dispatch_ms"), med(b, "dispatch_ms")), max(med(a, "combine_ms"), med(b, "combine_ms"))
    md, mc = med(m, "dispatch_ms"), med(m, "combine_ms")
    base = m.get("baseline", {})
    bd, bc = base.get("dispatch_ms", {}).get("median"), base.get("combine_ms", {}).get("median")
    point = f"BS{a['tokens']} H{a['hidden']} K{a['topk']} E{a['experts']}"
    (sd, sc), (wd, wc) = sent[a["tokens"]], wire[a["tokens"]]
    floor = f" {sd:6.2f} /{sc:6.2f} {wd:7.3f} {wc:7.3f} {(ud + uc) / (wd + wc):12.2f}"
    if bd is None:
        print(f"{point:<28} {ud:8.3f} {uc:8.3f} {md:8.3f} {mc:8.3f}   (no baseline: {base.get('error')}){floor}")
        continue
    print(f"{point:<28} {ud:8.3f} {uc:8.3f} {md:8.3f} {mc:8.3f} {bd:8.3f} {bc:8.3f}"
          f" {bd / ud:10.2f} {bc / uc:6.2f} {(bd + bc) / (ud + uc):6.2f} {(ud + uc) / (md + mc):12.2f}{floor}")
PY
grep -h "^across hosts" "$work"/run*-1.log
