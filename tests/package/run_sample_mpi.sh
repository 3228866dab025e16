#!/usr/bin/env bash
# The seed's A2 program under mpirun -np 16 (mpi_cluster_main.cpp): a rank table of two servers
# (this host and another address: a cluster), two simulated nodes of 8 ranks; every rank must
# print "execute successfully".
set -uo pipefail
program=$1 runner=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
table=$work/rank_table.json
{
  echo '{"version": "1.0", "server_count": "2", "status": "completed", "server_list": ['
  for s in 0 1; do
    server=127.0.0.1; [ $s -eq 1 ] && server=10.20.30.40
    echo "  {\"server_id\": \"$server\", \"device\": ["
    for d in 0 1 2 3 4 5 6 7; do
      r=$((s * 8 + d)); sep=,; [ $d -eq 7 ] && sep=
      echo "    {\"device_id\": \"$d\", \"device_ip\": \"192.168.1.$r\", \"rank_id\": \"$r\"}$sep"
    done
    sep=,; [ $s -eq 1 ] && sep=
    echo "  ]}$sep"
  done
  echo ']}'
} > "$table"
export RANK_TABLE_FILE=$table FIRST_RANK_ID=0
out=$("$runner" 16 8 default default -x RANK_TABLE_FILE -x FIRST_RANK_ID "$program" 2>&1); rc=$?
echo "$out" | grep -E "execute successfully|ERROR|error|failed" | head -40
n=$(grep -o "aclnnMoeDistributeCombine execute successfully" <<<"$out" | wc -l)
echo "MPI ranks whose combine executed successfully: $n of 16 (exit $rc)"
[ "$rc" -eq 0 ] && [ "$n" -eq 16 ]
