#!/usr/bin/env bash
# Runs the seed's A2 sample as its users do: a rank table of 16 ranks on this host (two
# server_list entries of 8), RANK_TABLE_FILE and FIRST_RANK_ID=0; the sample forks 16 processes
# and each must print "execute successfully". Nothing may be left in /dev/shm.
set -uo pipefail
sample=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
table=$work/rank_table.json
{
  echo '{"version": "1.0", "server_count": "2", "status": "completed", "server_list": ['
  for s in 0 1; do
    echo "  {\"server_id\": \"127.0.0.1\", \"device\": ["
    for d in 0 1 2 3 4 5 6 7; do
      r=$((s * 8 + d)); sep=,; [ $d -eq 7 ] && sep=
      echo "    {\"device_id\": \"$d\", \"device_ip\": \"192.168.1.$r\", \"rank_id\": \"$r\"}$sep"
    done
    sep=,; [ $s -eq 1 ] && sep=
    echo "  ]}$sep"
  done
  echo ']}'
} > "$table"
shm_before=$(ls /dev/shm | sort)
out=$(RANK_TABLE_FILE=$table FIRST_RANK_ID=0 timeout 300 "$sample" 2>&1); rc=$?
echo "$out" | grep -E "execute successfully|ERROR|error|failed" | head -40
n=$(grep -o "aclnnMoeDistributeCombine execute successfully" <<<"$out" | wc -l)
echo "ranks whose combine executed successfully: $n of 16 (exit $rc)"
shm_after=$(ls /dev/shm | sort)
[ "$shm_before" = "$shm_after" ] || { echo "/dev/shm changed: $shm_after"; exit 1; }
[ "$rc" -eq 0 ] && [ "$n" -eq 16 ]
