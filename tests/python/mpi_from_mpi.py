"""Under mpirun (not collected by pytest): moedist.from_mpi over mpi4py's COMM_WORLD, two
simulated nodes (MOEDIST_RANKS_PER_NODE=2), dispatch and combine against the naive reference."""

import sys

import numpy as np
from mpi4py import MPI

import moedist
import moe_reference as ref

comm = MPI.COMM_WORLD
W, E, K, H = comm.Get_size(), 2 * comm.Get_size(), 3, 72
BS = [4 + (r % 3) for r in range(W)]
r = comm.Get_rank()
ep = moedist.from_mpi(comm)
assert ep.rank == r and ep.size == W
data = [ref.inputs(s, BS[s], H, E, K) for s in range(W)]
x, ids, weights = data[r]
moe = moedist.Distributor(ep, moe_expert_num=E, global_bs=max(BS) * W)
shapes = moedist.output_shapes(moe, BS[r], K, H)
expand_x = np.empty(shapes["expand_x"], np.uint16)
expand_idx = np.empty(shapes["expand_idx"], np.int32)
token_nums = np.empty(shapes["expert_token_nums"], np.int64)
recv = np.empty(shapes["ep_recv_counts"], np.int32)
moe.dispatch((x, "bfloat16"), ids, (expand_x, "bfloat16"), expand_idx, token_nums, recv)
rows, counts, want_recv = ref.dispatch_layout([d[1] for d in data], r, W, E)
ok = np.array_equal(recv, want_recv) and all(np.array_equal(expand_x[i], data[s][0][t]) for i, (s, t, _) in enumerate(rows))
start = 0
for j, n in enumerate(np.diff(np.concatenate([[0], np.cumsum(counts)]))):
    for i in range(start, start + int(n)):
        expand_x[i] = ref.expert_transform(expand_x[i], r * (E // W) + j)
    start += int(n)
out = np.empty((BS[r], H), np.uint16)
moe.combine((expand_x, "bfloat16"), ids, expand_idx, recv, weights, (out, "bfloat16"))
ok = ok and np.array_equal(out, ref.combine(x, ids, weights))
total = comm.allreduce(1 if ok else 0)
if r == 0:
    print(f"from_mpi: {total} of {W} ranks OK")
sys.exit(0 if total == W else 1)
