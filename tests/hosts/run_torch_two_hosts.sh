#!/usr/bin/env bash
# A torch.distributed (gloo) job of 4 ranks spanning two network namespaces standing for hosts,
# 2 ranks on each, started on each host on its own (no launcher between them): moedist.torch's
# comm_name bootstraps over the gloo group and joins the hosts over UCX; the torch_npu-style
# dispatch and combine match the naive reference on every rank.
set -uo pipefail
python=$1 pythonpath=$2
. "$(dirname "$0")/netns.sh"
hosts_up 2
work=$(mktemp -d)
trap 'hosts_down; rm -rf "$work"' EXIT
export PYTHONPATH=$pythonpath PYTHONDONTWRITEBYTECODE=1 GLOO_SOCKET_IFNAME=md0 MOEDIST_TIMEOUT_MS=30000 MOEDIST_DEBUG=INFO
script=$(dirname "$0")/torch_host.py
on_host 1 timeout 180 "$python" "$script" 0 2 198.18.0.1 29517 > "$work/a.log" 2>&1 &
a=$!
on_host 2 timeout 180 "$python" "$script" 2 2 198.18.0.1 29517 > "$work/b.log" 2>&1 &
b=$!
wait $a; rc_a=$?
wait $b; rc_b=$?
cat "$work/a.log" "$work/b.log" | grep -E "across|Error|error|assert" | tail -30
n=$(cat "$work/a.log" "$work/b.log" | grep -c "torch across hosts OK")
joined=$(cat "$work/a.log" "$work/b.log" | grep -c "of 4 across 2 hosts")
echo "ranks OK: $n of 4, joined across 2 hosts: $joined of 4 (exits $rc_a, $rc_b)"
ok=0
[ "$rc_a" -eq 0 ] && [ "$rc_b" -eq 0 ] && [ "$n" -eq 4 ] && [ "$joined" -eq 4 ] && ok=1
if [ "$ok" -ne 1 ]; then  # the whole story of each host
  for h in a b; do echo "--- host $h:"; tail -40 "$work/$h.log"; done
  exit 1
fi
