"""A rank killed before its call: the others raise moedist.Error 361001 naming it, within the
timeout, and nothing is left in /dev/shm."""

import multiprocessing
import os
import signal
import time

import torch
import torch.distributed as dist

import moe_reference as ref

W = 3


def rank_main(rank, port, results):
    os.environ["MOEDIST_TIMEOUT_MS"] = "4000"
    import moedist
    import moedist.torch as torch_npu

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=W)
    name = torch_npu.comm_name()
    dist.barrier()
    if rank == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    x = torch.randn(4, 32).to(torch.bfloat16)
    ids = torch.tensor([[0, 1], [1, 2], [2, 0], [1, 0]], dtype=torch.int32)
    t0 = time.monotonic()
    try:
        torch_npu.npu_moe_distribute_dispatch(x, ids, name, W, rank, 3)
        results.put((rank, "no error", 0.0))
    except moedist.Error as e:
        results.put((rank, f"{e.code} {e.message}", time.monotonic() - t0))


def test_a_killed_rank_fails_the_others_within_the_timeout():
    port = ref.free_port()
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=rank_main, args=(r, port, results)) for r in range(W)]
    for p in procs:
        p.start()
    got = [results.get(timeout=60) for _ in range(W - 1)]
    for p in procs:
        p.join(timeout=30)
    assert procs[2].exitcode == -signal.SIGKILL
    for rank, text, seconds in got:
        assert text.startswith("361001"), (rank, text)
        assert "2" in text, (rank, text)
        assert seconds < 4.0 + 2.0, (rank, seconds)
    leftovers = [f for f in os.listdir("/dev/shm") if "moedist" in f]
    assert not leftovers, leftovers
