# Network namespaces standing for hosts, for the tests of jobs across hosts (sourced by them).
#
#   hosts_up N      makes N "hosts": namespaces ${MD_NS}1..N, each with lo and one interface md0
#                   at 198.18.0.i/24 (198.18.0.0/15 is reserved for such tests), all on a bridge
#                   of their own namespace; exits 77 (ctest: skipped) with the reason when this
#                   machine cannot (not root, no `ip`, no namespaces)
#   on_host I CMD   runs CMD inside host I
#   hosts_down      kills what still runs in them and removes them (installed as the EXIT trap)
#
# UCX is told to use TCP on md0 only (UCX_TLS=tcp, UCX_NET_DEVICES=md0), as between real hosts:
# the namespaces share this machine's memory, which UCX would otherwise use between them.
MD_NS="md$$h"
MD_BR="md$$br"
MD_HOSTS=0

hosts_down() {
  local i
  for i in $(seq 1 "$MD_HOSTS"); do
    ip netns pids "$MD_NS$i" 2>/dev/null | xargs -r kill -9 2>/dev/null
  done
  for i in $(seq 1 "$MD_HOSTS"); do ip netns del "$MD_NS$i" 2>/dev/null; done
  ip netns del "$MD_BR" 2>/dev/null
  return 0
}

hosts_skip() { echo "SKIPPED: $1"; exit 77; }

hosts_up() {
  local n=$1 i
  [ "$(id -u)" -eq 0 ] || hosts_skip "network namespaces need root (this test stands two hosts up as namespaces)"
  command -v ip >/dev/null || hosts_skip "no 'ip' command (iproute2)"
  trap hosts_down EXIT
  ip netns add "$MD_BR" 2>/dev/null || hosts_skip "'ip netns add' failed: no network namespaces here"
  ip -n "$MD_BR" link add br0 type bridge || hosts_skip "no bridge device in a namespace"
  ip -n "$MD_BR" link set br0 up
  for i in $(seq 1 "$n"); do
    MD_HOSTS=$i
    ip netns add "$MD_NS$i" || hosts_skip "'ip netns add' failed"
    ip link add "md$$a$i" type veth peer name "md$$b$i" || hosts_skip "no veth pairs here"
    ip link set "md$$a$i" netns "$MD_NS$i"
    ip link set "md$$b$i" netns "$MD_BR"
    ip -n "$MD_NS$i" link set "md$$a$i" name md0
    ip -n "$MD_NS$i" addr add "198.18.0.$i/24" dev md0
    ip -n "$MD_NS$i" link set md0 up
    ip -n "$MD_NS$i" link set lo up
    ip -n "$MD_BR" link set "md$$b$i" master br0
    ip -n "$MD_BR" link set "md$$b$i" up
  done
}

on_host() {
  local i=$1
  shift
  ip netns exec "$MD_NS$i" env UCX_TLS=tcp UCX_NET_DEVICES=md0 "$@"
}

# A rank table of `servers` hosts (198.18.0.1..) with `per` ranks each, into file $3.
hosts_table() {
  local servers=$1 per=$2 file=$3 s d r sep
  {
    echo "{\"version\": \"1.0\", \"server_count\": \"$servers\", \"status\": \"completed\", \"server_list\": ["
    for s in $(seq 0 $((servers - 1))); do
      echo "  {\"server_id\": \"198.18.0.$((s + 1))\", \"device\": ["
      for d in $(seq 0 $((per - 1))); do
        r=$((s * per + d)); sep=,; [ "$d" -eq $((per - 1)) ] && sep=
        echo "    {\"device_id\": \"$d\", \"device_ip\": \"192.168.1.$r\", \"rank_id\": \"$r\"}$sep"
      done
      sep=,; [ "$s" -eq $((servers - 1)) ] && sep=
      echo "  ]}$sep"
    done
    echo ']}'
  } > "$file"
}
