"""moedist.autograd's DeepEP normal form on 4 processes (docs/contract.md §11): dispatch then
combine under autograd, gradients bit for bit against a naive reference — grad_x[t] is the fp32
sum over the ranks that received t, ascending, of each rank's row gradient rne(U[t]·s_rank), and
grad_topk_weights[t, k] is V[t, k] for a valid slot (one rank holds its expert), 0 for −1."""

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import moe_reference

W, H, E, K = 4, 64, 8, 3


def inputs(rank):
    rng = np.random.default_rng(40 + rank)
    n = 5 + rank % 2
    x = torch.from_numpy(rng.uniform(-2, 2, size=(n, H)).astype(np.float32)).to(torch.bfloat16)
    ids = np.array([rng.permutation(E)[:K] for _ in range(n)], dtype=np.int64).reshape(n, K)
    ids[rng.random((n, K)) < 0.25] = -1
    w = torch.from_numpy(rng.uniform(0.1, 1, size=(n, K)).astype(np.float32))
    u = torch.from_numpy(rng.uniform(-1, 1, size=(n, H)).astype(np.float32)).to(torch.bfloat16)
    v = torch.from_numpy(rng.uniform(-1, 1, size=(n, K)).astype(np.float32))
    return x, torch.from_numpy(ids), w, u, v


def scale(rank):
    return 0.25 * (rank + 1) + 0.1


def body(rank, port):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=W)
    import moedist.deep_ep as deep_ep
    from moedist import autograd

    buffer = deep_ep.Buffer(dist.group.WORLD, int(2e9), 0)
    x0, ids, w0, u, v = inputs(rank)
    x, w = x0.clone().requires_grad_(True), w0.clone().requires_grad_(True)
    per_rank, _, per_expert, in_rank, _ = buffer.get_dispatch_layout(ids, E)
    recv_x, recv_idx, recv_w, counts, handle = autograd.deep_ep_dispatch(buffer, x, ids, w, per_rank, in_rank,
                                                                          per_expert)
    y = (recv_x.float() * scale(rank)).to(torch.bfloat16)  # this rank's "experts"
    combined, combined_w = autograd.deep_ep_combine(buffer, y, handle, recv_w)
    ((combined.float() * u.float()).sum() + (combined_w * v).sum()).backward()

    local = E // W
    want_x = torch.zeros_like(x0)
    for t in range(x0.shape[0]):
        acc = np.zeros(H, dtype=np.float32)
        for r in range(W):  # ranks that hold one of t's experts, ascending
            if any(e >= 0 and e // local == r for e in ids[t].tolist()):
                row_grad = (u[t].float() * scale(r)).to(torch.bfloat16).float().numpy()
                acc = (acc + row_grad).astype(np.float32)
        want_x[t] = torch.from_numpy(acc).to(torch.bfloat16)
    want_w = torch.where(ids >= 0, v, torch.zeros_like(v))
    where = f"rank {rank}"
    assert torch.equal(x.grad.view(torch.int16), want_x.view(torch.int16)), where
    assert torch.equal(w.grad, want_w), where
    dist.barrier()


def test_deep_ep_normal_form_gradients_match_the_contract():
    mp.get_context("forkserver").set_forkserver_preload(["torch", "torch.distributed", "numpy"])
    mp.start_processes(body, args=(moe_reference.free_port(),), nprocs=W, join=True, start_method="forkserver")
