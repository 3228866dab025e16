"""moedist.autograd on 4 processes (docs/contract.md §11.3): the gradients of dispatch and combine
against a naive reference written from the contract, bit for bit — dispatch's gradient is the
unweighted sum of its rows' gradients (k ascending, then the shared rows, in fp32 from +0),
combine's is rne(fl32(w·g)) per row, Σ_h g·y per (t, k) for the weights (fp64, rounded once) and
grad_out for shared_expert_x — with prefix and entry masks and shared ranks; the V1 names give
the V2 names' gradients; what is not differentiable is refused; and a small MoE layer trains
(its loss falls) with gradients that match a dense single-process fp32 model within bf16's
tolerance (2e-2 relative to the largest gradient)."""

import math

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import moe_reference
import moedist

W = 4


def run_ranks(body, *args):
    mp.get_context("forkserver").set_forkserver_preload(["torch", "torch.distributed", "numpy"])
    mp.start_processes(body, args=(moe_reference.free_port(),) + args, nprocs=W, join=True,
                       start_method="forkserver")


def start(rank, port):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=W)
    import moedist.torch as npu
    from moedist import autograd

    return npu, autograd, npu.comm_name()


def bf16(seed, shape):
    """Random bf16 values (never 0 or 1 only), a function of `seed` alone."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.uniform(-2, 2, size=shape).astype(np.float32)).to(torch.bfloat16)


def row_value(kind, src, t, slot, hidden):
    """The value the test gives the row of entry (src, t, slot), wherever it lands."""
    return bf16(1_000_003 * kind + 10_007 * src + 101 * t + slot, (hidden,))


class Case:
    def __init__(self, experts, top_k, hidden, bs, shared_ranks=0, mask=None, seed=0):
        self.experts, self.top_k, self.hidden, self.bs = experts, top_k, hidden, bs
        self.shared_ranks, self.mask, self.seed = shared_ranks, mask, seed

    def ids(self, rank):
        rng = np.random.default_rng(self.seed * 100 + rank)
        rows = [rng.permutation(self.experts)[:self.top_k] for _ in range(self.bs)]
        return torch.from_numpy(np.array(rows, dtype=np.int32).reshape(self.bs, self.top_k))

    def weights(self, rank):
        rng = np.random.default_rng(self.seed * 100 + 50 + rank)
        return torch.from_numpy(rng.uniform(0.1, 1.5, size=(self.bs, self.top_k)).astype(np.float32))

    def x(self, rank):
        return bf16(self.seed * 100 + 70 + rank, (self.bs, self.hidden))

    def active(self, rank):
        """(BS, K) bool: the entries that count."""
        if self.mask is None:
            return np.ones((self.bs, self.top_k), dtype=bool)
        if self.mask == "prefix":
            n = (rank * 2 + 1) % (self.bs + 1)
            return np.repeat((np.arange(self.bs) < n)[:, None], self.top_k, axis=1)
        rng = np.random.default_rng(self.seed * 100 + 90 + rank)
        return rng.random((self.bs, self.top_k)) < 0.6

    def mask_tensor(self, rank):
        if self.mask is None:
            return None
        active = self.active(rank)
        return torch.from_numpy(active[:, 0].copy() if self.mask == "prefix" else active)

    def kwargs(self, rank):
        kw = dict(shared_expert_rank_num=self.shared_ranks)
        if self.mask is not None:
            kw["x_active_mask"] = self.mask_tensor(rank)
        return kw

    def token_active(self, rank, t):
        return self.mask != "prefix" or bool(self.active(rank)[t, 0])


def reference_grad_x(case, rank):
    """Σ over the rows made from each token of their gradients (the row values of kind 1)."""
    out = torch.zeros((case.bs, case.hidden), dtype=torch.bfloat16)
    active = case.active(rank)
    for t in range(case.bs):
        if not case.token_active(rank, t):
            continue
        acc = np.zeros(case.hidden, dtype=np.float32)
        for k in range(case.top_k):
            if active[t, k]:
                acc = acc + row_value(1, rank, t, k, case.hidden).float().numpy()
        if case.shared_ranks:
            acc = acc + row_value(1, rank, t, case.top_k, case.hidden).float().numpy()
        out[t] = torch.from_numpy(acc).to(torch.bfloat16)
    return out


def reference_grad_w(case, rank, upstream):
    """grad_w[t, k] = fl32(Σ_h g·y) over the active entries, exactly rounded."""
    out = np.zeros((case.bs, case.top_k), dtype=np.float32)
    active = case.active(rank)
    g = upstream.float().numpy().astype(np.float64)
    for t in range(case.bs):
        for k in range(case.top_k):
            if active[t, k]:
                y = row_value(2, rank, t, k, case.hidden).float().numpy().astype(np.float64)
                out[t, k] = np.float32(math.fsum(g[t] * y))
    return torch.from_numpy(out)


def grads_of(npu, ag, name, rank, case, v1=False):
    """Runs dispatch then combine under autograd with labelled rows; returns what the test checks."""
    x = case.x(rank).requires_grad_(True)
    ids, kw = case.ids(rank), case.kwargs(rank)
    group = (name, W, rank, case.experts)
    if v1:
        expand_x, _, idx, token_nums, recv, _, _ = ag.npu_moe_distribute_dispatch(x, ids, *group, **kw)
        # V1 has no row labels: label rows through the V2 dispatch of the same inputs (same rows).
        _, _, assist, _, _, _, _ = npu.npu_moe_distribute_dispatch_v2(x.detach(), ids, *group, **kw)
    else:
        expand_x, _, assist, token_nums, recv, _, _ = ag.npu_moe_distribute_dispatch_v2(x, ids, *group, **kw)
        idx = assist
    rows = int(token_nums.sum())  # expert_token_nums_type 1: counts
    labels = assist[:3 * rows].view(rows, 3).tolist()
    # dispatch's upstream gradient: row value kind 1 of each row's entry.
    g_rows = torch.zeros(expand_x.shape, dtype=torch.bfloat16)
    y = torch.zeros(expand_x.shape, dtype=torch.bfloat16)
    for i, (src, t, slot) in enumerate(labels):
        g_rows[i] = row_value(1, src, t, slot, case.hidden)
        y[i] = row_value(2, src, t, slot, case.hidden)
    (expand_x.float() * g_rows.float()).sum().backward()
    y.requires_grad_(True)
    w = case.weights(rank).requires_grad_(True)
    upstream = bf16(case.seed * 100 + 30 + rank, (case.bs, case.hidden))
    if v1:
        out = ag.npu_moe_distribute_combine(y, ids, idx, recv, w, *group, **kw)
    else:
        out = ag.npu_moe_distribute_combine_v2(y, ids, idx, recv, w, *group, **kw)
    (out.float() * upstream.float()).sum().backward()
    return x.grad, y.grad, w.grad, labels, upstream


CASES = [
    Case(experts=8, top_k=3, hidden=40, bs=5, seed=1),
    Case(experts=6, top_k=2, hidden=33, bs=4, shared_ranks=1, mask="prefix", seed=2),
    Case(experts=8, top_k=4, hidden=24, bs=6, mask="entries", seed=3),
]


def body_gradients(rank, port):
    npu, ag, name = start(rank, port)
    for case in CASES:
        where = f"case seed {case.seed}, rank {rank}"
        grad_x, grad_y, grad_w, labels, upstream = grads_of(npu, ag, name, rank, case)
        assert torch.equal(grad_x.view(torch.int16), reference_grad_x(case, rank).view(torch.int16)), where
        assert torch.equal(grad_w, reference_grad_w(case, rank, upstream)), where
        # grad_y at the owner: rne(fl32(w·g)) of the entry's weight and its token's upstream row.
        all_w = [case.weights(r) for r in range(W)]
        all_up = [bf16(case.seed * 100 + 30 + r, (case.bs, case.hidden)) for r in range(W)]
        for i, (src, t, slot) in enumerate(labels):
            weight = all_w[src][t, slot] if slot < case.top_k else torch.tensor(1.0)
            want = (all_up[src][t].float() * weight).to(torch.bfloat16)
            assert torch.equal(grad_y[i].view(torch.int16), want.view(torch.int16)), f"{where}, row {i}"
        assert not grad_y[len(labels):].any(), f"{where}: rows past the real ones get no gradient"
        if case.shared_ranks == 0 and case.mask is None:
            v1 = grads_of(npu, ag, name, rank, case, v1=True)
            for a, b in zip((grad_x, grad_y, grad_w), v1[:3]):
                assert torch.equal(a.view(torch.int16) if a.dtype == torch.bfloat16 else a,
                                   b.view(torch.int16) if b.dtype == torch.bfloat16 else b), where
    # shared_expert_x's gradient is grad_out; refused inputs name what is not differentiable.
    case = CASES[0]
    sx = bf16(rank + 500, (case.bs, case.hidden)).requires_grad_(True)
    ids = case.ids(rank)
    expand_x, _, assist, _, recv, _, _ = npu.npu_moe_distribute_dispatch_v2(case.x(rank), ids, name, W, rank,
                                                                            case.experts)
    out = ag.npu_moe_distribute_combine_v2(expand_x, ids, assist, recv, case.weights(rank), name, W, rank,
                                           case.experts, shared_expert_x=sx)
    upstream = bf16(rank + 600, (case.bs, case.hidden))
    (out.float() * upstream.float()).sum().backward()
    assert torch.equal(sx.grad.view(torch.int16), upstream.view(torch.int16))
    with pytest.raises(moedist.Error, match="quant_mode must be 0 under autograd"):
        ag.npu_moe_distribute_dispatch_v2(case.x(rank), ids, name, W, rank, case.experts, quant_mode=2)
    with pytest.raises(moedist.Error, match="tp_world_size must be 0 or 1 under autograd"):
        ag.npu_moe_distribute_dispatch(case.x(rank), ids, name, W, rank, case.experts, tp_world_size=2)
    dist.barrier()


def test_gradients_match_the_contract_bit_for_bit():
    run_ranks(body_gradients)


# --- A small MoE layer trains ------------------------------------------------------------------

E, K, H, F, BS, STEPS = 8, 2, 16, 24, 6, 25


def layer_params():
    g = torch.Generator().manual_seed(7)
    return dict(router=torch.randn(H, E, generator=g) * 0.5, w1=torch.randn(E, H, F, generator=g) * 0.3,
                w2=torch.randn(E, F, H, generator=g) * 0.3)


def tokens(rank):
    g = torch.Generator().manual_seed(100 + rank)
    x = torch.randn(BS, H, generator=g)
    target = torch.tanh(x @ torch.randn(H, H, generator=torch.Generator().manual_seed(9)))
    return x, target


def route(x, router):
    logits = x @ router
    top = torch.topk(logits, K, dim=1)
    return top.indices.to(torch.int32), torch.softmax(top.values, dim=1)


def dense_loss(params, rank_range):
    """The same layer on one process in fp32, every rank's tokens: the reference gradients."""
    total = 0.0
    for r in rank_range:
        x, target = tokens(r)
        ids, weights = route(x, params["router"])
        out = torch.zeros(BS, H)
        for t in range(BS):
            for k in range(K):
                e = int(ids[t, k])
                out[t] = out[t] + weights[t, k] * (torch.relu(x[t] @ params["w1"][e]) @ params["w2"][e])
        total = total + ((out - target) ** 2).mean()
    return total / W


def moe_loss(ag, name, rank, params):
    """The layer over moedist: each rank holds experts [2r, 2r + 2), rows travel as bf16."""
    x, target = tokens(rank)
    ids, weights = route(x, params["router"])
    local = E // W
    expand_x, _, assist, token_nums, recv, _, _ = ag.npu_moe_distribute_dispatch_v2(
        x.to(torch.bfloat16), ids, name, W, rank, E, expert_token_nums_type=1)
    pieces, begin = [], 0
    for le in range(local):
        n = int(token_nums[le])
        e = rank * local + le
        rows = expand_x[begin:begin + n].float()
        pieces.append(torch.relu(rows @ params["w1"][e]) @ params["w2"][e])
        begin += n
    pieces.append(torch.zeros(expand_x.shape[0] - begin, H))
    y = torch.cat(pieces).to(torch.bfloat16)
    out = ag.npu_moe_distribute_combine_v2(y, ids, assist, recv, weights, name, W, rank, E)
    return ((out.float() - target) ** 2).mean() / W


def body_training(rank, port):
    _, ag, name = start(rank, port)
    params = {k: v.clone().requires_grad_(True) for k, v in layer_params().items()}
    reference = {k: v.clone().requires_grad_(True) for k, v in layer_params().items()}
    dense_loss(reference, range(W)).backward()
    losses = []
    for step in range(STEPS):
        for p in params.values():
            p.grad = None
        loss = moe_loss(ag, name, rank, params)
        loss.backward()
        for p in params.values():  # data parallel: the gradient of the sum over ranks' losses
            dist.all_reduce(p.grad)
        total = loss.detach().clone()
        dist.all_reduce(total)
        losses.append(float(total))
        if step == 0:
            for key in params:
                got, want = params[key].grad, reference[key].grad
                err = float((got - want).abs().max() / want.abs().max())
                assert err < 2e-2, f"rank {rank}: {key} gradient off the dense fp32 model by {err:.3g}"
        with torch.no_grad():
            for p in params.values():
                p -= 0.5 * p.grad
    assert losses[-1] < 0.6 * losses[0], f"the loss did not fall: {losses[0]:.4f} -> {losses[-1]:.4f}"
    dist.barrier()


def test_a_moe_layer_trains_and_its_gradients_match_a_dense_model():
    run_ranks(body_training)
