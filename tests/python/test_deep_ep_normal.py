"""moedist.deep_ep's normal mode on 2, 4 and 8 processes (docs/contract.md §12.2), against a naive
reference written from the contract: dispatch sends each token once per destination rank (rows by
source rank ascending, each source's tokens ascending), recv_topk_idx / recv_topk_weights with
−1 and exact zeros, per-expert counts rounded up to expert_alignment, num_worst_tokens padding, a
cached handle, fp8 input with column-major scales; combine's fp32 sum over ranks ascending then
the two biases, and the weights' sum, bit for bit; ranks with different token counts."""

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import moe_reference

H, E, K = 256, 16, 4


def inputs(rank, seed):
    rng = np.random.default_rng(seed * 1000 + rank)
    n = 7 - rank % 3  # token counts differ per rank
    x = torch.from_numpy(rng.uniform(-2, 2, size=(n, H)).astype(np.float32)).to(torch.bfloat16)
    ids = np.array([rng.permutation(E)[:K] for _ in range(n)], dtype=np.int64).reshape(n, K)
    ids[rng.random((n, K)) < 0.25] = -1
    weights = torch.from_numpy(rng.uniform(0.1, 1.0, size=(n, K)).astype(np.float32))
    return x, torch.from_numpy(ids), weights


def body(rank, world, port, seed):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.set_default_dtype(torch.bfloat16)
    import moedist.deep_ep as deep_ep

    local = E // world
    buffer = deep_ep.Buffer(dist.group.WORLD, int(2e9), 0, low_latency_mode=False, num_qps_per_rank=1,
                            explicitly_destroy=True)
    all_inputs = [inputs(r, seed) for r in range(world)]
    x, ids, weights = all_inputs[rank]
    where = f"rank {rank} of {world}"
    per_rank, _, per_expert, in_rank, _ = buffer.get_dispatch_layout(ids, E)
    config = deep_ep.Buffer.get_dispatch_config(world)

    # Reference rows: (source, token) by source ascending, token ascending.
    expected = []
    for src in range(world):
        src_ids = all_inputs[src][1]
        for t in range(src_ids.shape[0]):
            if any(e >= 0 and e // local == rank for e in src_ids[t].tolist()):
                expected.append((src, t))
    recv_x, recv_idx, recv_w, counts, handle, event = buffer.dispatch(
        x, num_tokens_per_rank=per_rank, is_token_in_rank=in_rank, num_tokens_per_expert=per_expert,
        topk_idx=ids, topk_weights=weights, expert_alignment=4, config=config, async_finish=True)
    event.current_stream_wait()
    assert recv_x.shape[0] == len(expected) and recv_idx.dtype == torch.int64, where
    want_counts = [0] * local
    for i, (src, t) in enumerate(expected):
        sx, sids, sw = all_inputs[src]
        assert torch.equal(recv_x[i].view(torch.int16), sx[t].view(torch.int16)), f"{where}, row {i}"
        for k in range(K):
            e = int(sids[t, k])
            mine = e >= 0 and e // local == rank
            assert int(recv_idx[i, k]) == (e - rank * local if mine else -1), f"{where}, row {i}"
            assert float(recv_w[i, k]) == (float(sw[t, k]) if mine else 0.0), f"{where}, row {i}"
            if mine:
                want_counts[e - rank * local] += 1
    assert counts == [-(-c // 4) * 4 for c in want_counts], where
    assert handle[0][:, rank].tolist() == [sum(1 for s, _ in expected if s <= i) for i in range(world)], where
    assert handle[3].tolist() == [t for _, t in expected], where

    # Worst-case rows and a cached handle repeat the layout.
    worst = 7 * world  # N·R with the largest N
    w_x, w_idx, w_w, w_counts, _, _ = buffer.dispatch(
        x, num_tokens_per_rank=per_rank, is_token_in_rank=in_rank, num_tokens_per_expert=per_expert,
        topk_idx=ids, topk_weights=weights, num_worst_tokens=worst)
    m = len(expected)
    assert w_x.shape[0] == worst and w_counts == [] and bool((w_idx[m:] == -1).all()), where
    assert torch.equal(w_x[:m].view(torch.int16), recv_x.view(torch.int16)) and torch.equal(w_idx[:m], recv_idx)
    cached_x, none1, none2, none3, none4, _ = buffer.dispatch((x.float() * 3).to(torch.bfloat16), handle=handle)
    assert none1 is None and none4 is None and cached_x.shape[0] == m, where
    for i, (src, t) in enumerate(expected):
        want = (all_inputs[src][0][t].float() * 3).to(torch.bfloat16)
        assert torch.equal(cached_x[i].view(torch.int16), want.view(torch.int16)), where

    # fp8 input: bytes and (column-major) scales travel untouched.
    rng = np.random.default_rng(77 + rank)
    q = torch.from_numpy(rng.integers(0, 256, size=(x.shape[0], H), dtype=np.uint8))
    scales = torch.from_numpy(rng.uniform(0.01, 2, size=(x.shape[0], H // 128)).astype(np.float32)).T.contiguous().T
    fp8 = getattr(torch, "float8_e4m3fn", None)
    (r_q, r_s), *_ = buffer.dispatch((q.view(fp8) if fp8 else q, scales), num_tokens_per_rank=per_rank,
                                     is_token_in_rank=in_rank, num_tokens_per_expert=per_expert, topk_idx=ids,
                                     topk_weights=weights)
    all_q = [torch.from_numpy(np.random.default_rng(77 + r).integers(0, 256, size=(all_inputs[r][0].shape[0], H),
                                                                        dtype=np.uint8)) for r in range(world)]
    for i, (src, t) in enumerate(expected):
        assert torch.equal(r_q[i].view(torch.uint8), all_q[src][t]), where
        s_rng = np.random.default_rng(77 + src)
        s_rng.integers(0, 256, size=(all_inputs[src][0].shape[0], H), dtype=np.uint8)
        s_all = s_rng.uniform(0.01, 2, size=(all_inputs[src][0].shape[0], H // 128)).astype(np.float32)
        np.testing.assert_array_equal(r_s[i].numpy(), s_all[t], err_msg=where)

    # Combine: each rank returns its rows scaled by its own factor; weights random per row; two
    # biases. Reference: fp32 sum over the receiving ranks ascending, then b0, then b1.
    def returned(r, src, t):
        return (all_inputs[src][0][t].float() * (0.25 * (r + 1))).to(torch.bfloat16)

    def weight_rows(r):
        g = np.random.default_rng(500 + r)
        return g.uniform(0.1, 1, size=(64, K)).astype(np.float32)

    y = torch.stack([returned(rank, s, t) for s, t in expected]) if expected else torch.empty((0, H), dtype=torch.bfloat16)
    my_w = torch.from_numpy(weight_rows(rank)[:m].copy())
    # Magnitudes far apart, so that the order of the additions shows in the rounding.
    b_rng = np.random.default_rng(900 + rank)
    b0 = torch.from_numpy(b_rng.uniform(-500, 500, size=(x.shape[0], H)).astype(np.float32)).to(torch.bfloat16)
    b1 = torch.from_numpy(b_rng.uniform(-0.01, 0.01, size=(x.shape[0], H)).astype(np.float32)).to(torch.bfloat16)
    combined, combined_w, event = buffer.combine(y, handle, topk_weights=my_w, bias=(b0, b1),
                                                 config=deep_ep.Buffer.get_combine_config(world))
    for t in range(x.shape[0]):
        acc = np.zeros(H, dtype=np.float32)
        acc_w = np.zeros(K, dtype=np.float32)
        for r in range(world):
            rows_r = [i for i, (s, tt) in enumerate(_expected_at(all_inputs, r, world)) if s == rank and tt == t]
            if rows_r:
                acc = (acc + returned(r, rank, t).float().numpy()).astype(np.float32)
                acc_w = (acc_w + weight_rows(r)[rows_r[0]]).astype(np.float32)
        acc = (acc + b0[t].float().numpy()).astype(np.float32)
        acc = (acc + b1[t].float().numpy()).astype(np.float32)
        want = torch.from_numpy(acc).to(torch.bfloat16)
        assert torch.equal(combined[t].view(torch.int16), want.view(torch.int16)), f"{where}, token {t}"
        np.testing.assert_array_equal(combined_w[t].numpy(), acc_w, err_msg=f"{where}, token {t}")
    plain, none, _ = buffer.combine(y, handle)
    assert none is None, where

    # Every rank is sized for N <= 8 so far; now the last rank has 20 tokens: its larger size makes
    # the call fail on every rank, they agree on the new size and the call runs again.
    grown = [_tokens(r, 20 if r == world - 1 else 2, seed) for r in range(world)]
    g_x, g_ids = grown[rank]
    g_rank, _, g_expert, g_in, _ = buffer.get_dispatch_layout(g_ids, E)
    g_recv, g_idx, *_ = buffer.dispatch(g_x, num_tokens_per_rank=g_rank, is_token_in_rank=g_in,
                                        num_tokens_per_expert=g_expert, topk_idx=g_ids, topk_weights=torch.ones(g_ids.shape))
    g_expected = _expected_at(grown, rank, world)
    assert g_recv.shape[0] == len(g_expected), where
    for i, (src, t) in enumerate(g_expected):
        assert torch.equal(g_recv[i].view(torch.int16), grown[src][0][t].view(torch.int16)), f"{where}, grown row {i}"
    buffer.destroy()
    dist.barrier()


def _tokens(rank, n, seed):
    rng = np.random.default_rng(seed * 7919 + rank)
    x = torch.from_numpy(rng.uniform(-2, 2, size=(n, H)).astype(np.float32)).to(torch.bfloat16)
    ids = np.array([rng.permutation(E)[:K] for _ in range(n)], dtype=np.int64).reshape(n, K)
    return x, torch.from_numpy(ids)


def _expected_at(all_inputs, r, world):
    local = E // world
    return [(src, t) for src in range(world) for t in range(all_inputs[src][1].shape[0])
            if any(e >= 0 and e // local == r for e in all_inputs[src][1][t].tolist())]


@pytest.mark.parametrize("world", [2, 4, 8])
def test_normal_mode_matches_the_contract(world):
    mp.get_context("forkserver").set_forkserver_preload(["torch", "torch.distributed", "numpy"])
    mp.start_processes(body, args=(world, moe_reference.free_port(), 3 + world), nprocs=world, join=True,
                       start_method="forkserver")
