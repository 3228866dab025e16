"""moedist.deep_ep's low-latency mode on 2, 4 and 8 processes (docs/contract.md §12), against a naive reference
written from the contract: get_dispatch_layout's counts and is_token_in_rank with −1 slots;
low_latency_dispatch's expert-major rows (source ascending, tokens ascending), recv_count,
src_info, layout_range and cumulative stats over ranks with different token counts; fp8 rows
bit for bit (plain scales, round_scale, UE8M0 packing) against an e4m3 table search; and
low_latency_combine's weighted sum in the pinned order, with zero_copy, out= and recv hooks."""

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import moe_reference
import moedist

T, H, E, K = 6, 512, 16, 3


def run_ranks(body, world, *args):
    mp.get_context("forkserver").set_forkserver_preload(["torch", "torch.distributed", "numpy"])
    mp.start_processes(body, args=(world, moe_reference.free_port()) + args, nprocs=world, join=True,
                       start_method="forkserver")


def inputs(rank, world, seed):
    """Rank `rank`'s tokens (fewer than T on odd ranks), ids with about a fifth −1, weights."""
    rng = np.random.default_rng(seed * 1000 + rank)
    n = T - (rank % 2)
    x = torch.from_numpy(rng.uniform(-3, 3, size=(n, H)).astype(np.float32)).to(torch.bfloat16)
    x[:, :8] *= 40  # one group per row with large values: scales differ per group
    ids = np.array([rng.permutation(E)[:K] for _ in range(n)], dtype=np.int64).reshape(n, K)
    ids[rng.random((n, K)) < 0.2] = -1
    weights = torch.from_numpy(rng.uniform(0.1, 1.0, size=(n, K)).astype(np.float32))
    return x, torch.from_numpy(ids), weights


# --- fp8 reference: nearest e4m3fn value by table search --------------------------------------

def _e4m3_table():
    values = []
    for byte in range(256):
        sign = -1.0 if byte & 0x80 else 1.0
        exp, man = (byte >> 3) & 0xF, byte & 7
        if exp == 0xF and man == 7:
            values.append(np.nan)
        elif exp == 0:
            values.append(sign * man * 2.0 ** -9)
        else:
            values.append(sign * (1 + man / 8) * 2.0 ** (exp - 7))
    return np.array(values)


E4M3 = _e4m3_table()


def e4m3_ref(values):
    """The bytes of the e4m3fn values nearest to fp32 `values`, ties to an even mantissa,
    saturating at ±448 (a search of the whole table, sign by sign)."""
    v = np.clip(np.asarray(values, dtype=np.float64), -448.0, 448.0)
    bytes_ = np.arange(256)
    finite = ~np.isnan(E4M3)
    negative = (bytes_ & 0x80) != 0
    out = np.empty(v.shape, dtype=np.uint8)
    for idx, value in enumerate(v):
        allowed = finite & (negative == np.signbit(value))
        d = np.where(allowed, np.abs(E4M3 - value), np.inf)
        ties = np.flatnonzero(d == d.min())
        even = ties[ties % 2 == 0]
        out[idx] = even[0] if len(even) else ties[0]
    return out


def quantize_ref(row, round_scale):
    """(bytes, fp32 scales) of one bf16 row per §12: groups of 128 columns."""
    f = row.float().numpy()
    q, scales = [], []
    for g in range(H // 128):
        part = f[g * 128:(g + 1) * 128]
        m = np.float32(max(np.float32(np.abs(part).max()), np.float32(1e-4)))
        if round_scale:
            e = int(np.ceil(np.log2(np.float64(np.float32(m / np.float32(448))))))
            factor, scale = np.float32(2.0 ** -e), np.float32(2.0 ** e)
        else:
            factor = np.float32(np.float32(448) / m)
            scale = np.float32(np.float32(1) / factor)
        q += list(e4m3_ref((part * factor).astype(np.float32)))
        scales.append(scale)
    return np.array(q, dtype=np.uint8), np.array(scales, dtype=np.float32)


# --- the bodies --------------------------------------------------------------------------------

def start(world, rank, port):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.set_default_dtype(torch.bfloat16)  # as DeepEP's tests set it: the module must pass dtypes
    import moedist.deep_ep as deep_ep

    return deep_ep


def expected_rows(world, me, seed):
    """Per local expert: the (source, token) of each row, in the contract's order."""
    local = E // world
    all_ids = [inputs(r, world, seed)[1] for r in range(world)]
    return [[(src, t) for src in range(world) for t in range(all_ids[src].shape[0])
             if me * local + i in all_ids[src][t].tolist()] for i in range(local)]


def body_low_latency(rank, world, port, seed, fp8):
    deep_ep = start(world, rank, port)
    local = E // world
    buffer = deep_ep.Buffer(dist.group.WORLD, 0, deep_ep.Buffer.get_low_latency_rdma_size_hint(T, H, world, E),
                            low_latency_mode=True, num_qps_per_rank=local, explicitly_destroy=True)
    x, ids, weights = inputs(rank, world, seed)
    where = f"rank {rank} of {world}, fp8 {fp8}"

    # get_dispatch_layout
    per_rank, rdma, per_expert, in_rank, event = buffer.get_dispatch_layout(ids, E)
    assert rdma is None and per_rank.dtype == torch.int32 and per_expert.dtype == torch.int32
    want_in = torch.zeros((ids.shape[0], world), dtype=torch.bool)
    for t in range(ids.shape[0]):
        for e in ids[t].tolist():
            if e >= 0:
                want_in[t, e // local] = True
    assert torch.equal(in_rank, want_in), where
    assert per_rank.tolist() == want_in.sum(0).tolist(), where
    assert per_expert.tolist() == [int((ids == e).sum()) for e in range(E)], where
    event.current_stream_wait()

    stats = torch.zeros(local, dtype=torch.int32)
    waits = torch.zeros(world, dtype=torch.int64)
    use_fp8, round_scale, ue8m0 = {None: (False, False, False), "plain": (True, False, False),
                                   "round": (True, True, False), "ue8m0": (True, True, True)}[fp8]
    for call in range(2):
        recv_x, recv_count, handle, event, hook = buffer.low_latency_dispatch(
            x, ids, T, E, cumulative_local_expert_recv_stats=stats, dispatch_wait_recv_cost_stats=waits,
            use_fp8=use_fp8, round_scale=round_scale,
            use_ue8m0=ue8m0, return_recv_hook=call == 1, async_finish=call == 0)
        if hook is not None:
            hook()
        event.current_stream_wait()
    rows = expected_rows(world, rank, seed)
    all_inputs = [inputs(r, world, seed) for r in range(world)]
    assert recv_count.dtype == torch.int32 and recv_count.tolist() == [len(r) for r in rows], where
    assert stats.tolist() == [2 * len(r) for r in rows], where
    assert bool((waits >= 0).all()), where  # microseconds waited per source, added to
    src_info, layout_range, t_, h_, e_ = handle
    assert (t_, h_, e_) == (T, H, E)
    for i, expert_rows in enumerate(rows):
        assert src_info[i, :len(expert_rows)].tolist() == [t for _, t in expert_rows], where
        begin = 0
        for src in range(world):
            count = sum(1 for s, _ in expert_rows if s == src)
            assert int(layout_range[i, src]) == (begin << 32) | count, f"{where}, expert {i}, source {src}"
            begin += count
        for j, (src, t) in enumerate(expert_rows):
            row = all_inputs[src][0][t]
            if not use_fp8:
                assert torch.equal(recv_x[i, j].view(torch.int16), row.view(torch.int16)), f"{where}, row {j}"
                continue
            q_ref, s_ref = quantize_ref(row, round_scale)
            q = recv_x[0][i, j].view(torch.uint8).numpy()
            np.testing.assert_array_equal(q, q_ref, err_msg=f"{where}, expert {i}, row {j}")
            if ue8m0:
                packed = recv_x[1][i, j].numpy().view(np.uint8)
                want = (np.log2(s_ref).astype(np.int64) + 127).astype(np.uint8)
                np.testing.assert_array_equal(packed, want, err_msg=where)
            else:
                np.testing.assert_array_equal(recv_x[1][i, j].numpy(), s_ref, err_msg=where)

    # combine: expert e's output is x · (e + 1) / 8 in bf16 (the dequantized rows under fp8)
    def expert_out(row, e):
        return (row.float() * ((e + 1) / 8)).to(torch.bfloat16)

    y = torch.full((local, world * T, H), float("nan"), dtype=torch.bfloat16)  # unread rows: NaN
    for i, expert_rows in enumerate(rows):
        for j, (src, t) in enumerate(expert_rows):
            y[i, j] = expert_out(all_inputs[src][0][t], rank * local + i)
    want = torch.zeros((x.shape[0], H), dtype=torch.bfloat16)
    for t in range(x.shape[0]):
        acc = np.zeros(H, dtype=np.float32)
        for k in range(K):
            e = int(ids[t, k])
            if e >= 0:
                acc = (acc + np.float32(weights[t, k]) * expert_out(x[t], e).float().numpy()).astype(np.float32)
        want[t] = torch.from_numpy(acc).to(torch.bfloat16)
    combined, event, hook = buffer.low_latency_combine(y, ids, weights, handle)
    assert hook is None and torch.equal(combined.view(torch.int16), want.view(torch.int16)), where
    buffer.get_next_low_latency_combine_buffer(handle)[:, :, :] = y
    out = torch.empty((x.shape[0], H), dtype=torch.bfloat16)
    combined, _, hook = buffer.low_latency_combine(None, ids, weights, handle, zero_copy=True, out=out,
                                                   return_recv_hook=True)
    hook()
    assert combined is out and torch.equal(out.view(torch.int16), want.view(torch.int16)), where

    # Hooks are real receive halves: two dispatches in flight, received in order, equal the above.
    kept = tuple(t.clone() for t in recv_x) if use_fp8 else recv_x.clone()
    recv_a, count_a, handle_a, _, hook_a = buffer.low_latency_dispatch(
        x, ids, T, E, use_fp8=use_fp8, round_scale=round_scale, use_ue8m0=ue8m0, return_recv_hook=True)
    x_b = (x.float() * 0.5).to(torch.bfloat16)
    recv_b, count_b, handle_b, _, hook_b = buffer.low_latency_dispatch(
        x_b, ids, T, E, use_fp8=False, return_recv_hook=True)
    with pytest.raises(moedist.Error, match="call order"):
        hook_b()
    hook_a()
    hook_b()
    assert torch.equal(count_a, recv_count) and torch.equal(count_b, recv_count), where
    first = recv_a[0] if use_fp8 else recv_a
    again = kept[0] if use_fp8 else kept  # recv_x's buffer is reused two calls later, as DeepEP's
    for i, expert_rows in enumerate(rows):
        n = len(expert_rows)
        assert torch.equal(first[i, :n].view(torch.uint8), again[i, :n].view(torch.uint8)), where
        for j, (src, t) in enumerate(expert_rows):
            want_b = (all_inputs[src][0][t].float() * 0.5).to(torch.bfloat16)
            assert torch.equal(recv_b[i, j].view(torch.int16), want_b.view(torch.int16)), where
    combined_a, _, hook_ca = buffer.low_latency_combine(y, ids, weights, handle_a, return_recv_hook=True)
    combined_b, _, hook_cb = buffer.low_latency_combine(y, ids, weights, handle_b, return_recv_hook=True)
    hook_ca()
    hook_cb()
    assert torch.equal(combined_a.view(torch.int16), want.view(torch.int16)), where
    assert torch.equal(combined_b.view(torch.int16), want.view(torch.int16)), where

    # Any layout of the ids: int32 as a transposed view; combine given an equal int64 tensor and
    # expert outputs that are not contiguous: the same rows and sum. Other ids are refused.
    ids_t = ids.to(torch.int32).t().contiguous().t()
    recv_c, count_c, handle_c, _, _ = buffer.low_latency_dispatch(x, ids_t, T, E, use_fp8=False)
    assert not ids_t.is_contiguous() and torch.equal(count_c, recv_count), where
    y_strided = y.permute(2, 1, 0).contiguous().permute(2, 1, 0)
    combined_c, _, _ = buffer.low_latency_combine(y_strided, ids, weights, handle_c)
    assert torch.equal(combined_c.view(torch.int16), want.view(torch.int16)), where
    if x.shape[0] > 0:
        other = ids.clone()
        other[0, 0] = (int(other[0, 0]) + 1) % E
        with pytest.raises(moedist.Error, match="must be the one low_latency_dispatch got"):
            buffer.low_latency_combine(y, other, weights, handle_c)

    with pytest.raises(moedist.Error, match="dispatch needs is_token_in_rank"):
        buffer.dispatch(x=x)
    with pytest.raises(moedist.Error, match=r"topk_idx\[0\]\[0\] must be -1 or in \[0, 16\)"):
        bad = ids.clone()
        bad[0, 0] = E
        buffer.low_latency_dispatch(x, bad, T, E, use_fp8=False)
    buffer.destroy()
    dist.barrier()


@pytest.mark.parametrize("world,fp8", [(2, None), (4, None), (8, None), (4, "plain"), (2, "round"), (4, "ue8m0")])
def test_low_latency_matches_the_contract(world, fp8):
    run_ranks(body_low_latency, world, 7 + world, fp8)


def test_static_surface():
    import moedist.deep_ep as deep_ep

    assert deep_ep.topk_idx_t is torch.int64 and deep_ep.Buffer.is_sm90_compiled()
    for r in (2, 4, 8, 16):
        assert isinstance(deep_ep.Buffer.get_dispatch_config(r), deep_ep.Config)
        assert isinstance(deep_ep.Buffer.get_combine_config(r), deep_ep.Config)
    hint = deep_ep.Buffer.get_low_latency_rdma_size_hint(128, 7168, 8, 256)
    assert isinstance(hint, int) and hint > 0
    deep_ep.Config(24, 6, 256)
    deep_ep.Config(24, 6, 256, 6, 128)
