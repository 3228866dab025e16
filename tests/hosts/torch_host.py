"""One host's share of a torch.distributed (gloo) job across hosts: ranks FIRST..FIRST+COUNT-1 of
test_torch_npu's job (W = 4), forked here, the group's store at MASTER:PORT. Each rank runs the
torch_npu-style dispatch and combine of tests/python/test_torch_npu.py against its naive
reference: comm_name bootstraps over the gloo group, finds the ranks on two hosts, and joins
them with shared memory inside each host and UCX between. Prints "rank R: torch across hosts OK".

    python3 torch_host.py FIRST COUNT MASTER PORT"""

import sys

import torch.distributed as dist
import torch.multiprocessing as mp

import test_torch_npu as job


def rank_main(local, first, master, port):
    def start(rank, _port):
        dist.init_process_group("gloo", init_method=f"tcp://{master}:{port}", rank=rank, world_size=job.W)

    job.start = start
    rank = first + local
    job.dispatch_and_combine(rank, port)
    print(f"rank {rank}: torch across hosts OK", flush=True)


if __name__ == "__main__":
    first, count, master, port = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    mp.start_processes(rank_main, args=(first, master, port), nprocs=count, join=True, start_method="fork")
