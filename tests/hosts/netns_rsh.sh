#!/usr/bin/env bash
# OpenMPI's launch agent for hosts that are network namespaces (netns.sh): "netns_rsh.sh HOST
# CMD..." runs CMD in the namespace whose md0 has address HOST (198.18.0.i -> ${MD_NS}i, the
# prefix in MD_NS_PREFIX). mpirun --mca plm_rsh_agent netns_rsh.sh starts its daemons with it.
host=$1
shift
i=${host##*.}
exec ip netns exec "${MD_NS_PREFIX}$i" env UCX_TLS=tcp UCX_NET_DEVICES=md0 bash -c "$*"
