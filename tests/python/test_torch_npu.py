"""torch_npu's names on processes: torch.multiprocessing ranks with a gloo group, the moedist group
bootstrapped by comm_name, npu_moe_distribute_dispatch / combine against the naive reference."""

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import moe_reference as ref

W, E, K, H = 4, 8, 3, 80
BS = [6, 2, 0, 5]


def start(rank, port):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=W)


def bf16(bits):
    return torch.from_numpy(bits.view(np.int16)).view(torch.bfloat16)


def bits(t):
    return t.view(torch.int16).numpy().view(np.uint16)


def dispatch_and_combine(rank, port):
    import moedist.torch as torch_npu

    start(rank, port)
    name = torch_npu.comm_name(dist.group.WORLD, dist.get_rank())
    assert torch_npu.comm_name() == name  # one bootstrap per group
    names = [None] * W
    dist.all_gather_object(names, name)
    assert len(set(names)) == 1

    data = [ref.inputs(r, BS[r], H, E, K) for r in range(W)]
    x_bits, ids, weights = data[rank]
    outs = torch_npu.npu_moe_distribute_dispatch(
        bf16(x_bits), torch.from_numpy(ids), name, W, rank, E, expert_scales=torch.from_numpy(weights),
        global_bs=max(BS) * W)
    expand_x, dynamic_scales, expand_idx, token_nums, recv, tp_recv, expand_scales = outs
    rows, counts, want_recv = ref.dispatch_layout([d[1] for d in data], rank, W, E)
    assert expand_x.dtype == torch.bfloat16 and expand_x.shape[1] == H
    np.testing.assert_array_equal(token_nums.numpy(), counts)  # expert_token_nums_type=1: counts
    np.testing.assert_array_equal(recv.numpy(), want_recv)
    np.testing.assert_array_equal(expand_idx.numpy(), ref.expand_idx(ids))
    for i, (src, t, _k) in enumerate(rows):
        np.testing.assert_array_equal(bits(expand_x[i]), data[src][0][t], err_msg=f"rank {rank} row {i}")
    assert dynamic_scales.numel() == 0 and tp_recv.numel() == 0
    own = sum(1 for (src, _t, _k) in rows if src == rank)
    assert expand_scales.shape[0] >= own

    local = E // W
    start_row = 0
    for j, n in enumerate(counts):
        for i in range(start_row, start_row + int(n)):
            expand_x[i] = bf16(ref.expert_transform(bits(expand_x[i]), rank * local + j))
        start_row += int(n)
    x = torch_npu.npu_moe_distribute_combine(
        expand_x, torch.from_numpy(ids), expand_idx, recv, torch.from_numpy(weights), name, W, rank, E,
        activation_scale=torch.ones(1), global_bs=max(BS) * W)
    assert x.shape == (BS[rank], H) and x.dtype == torch.bfloat16
    np.testing.assert_array_equal(bits(x), ref.combine(x_bits, ids, weights))
    dist.barrier()


def errors_reach_every_rank(rank, port):
    import moedist
    import moedist.torch as torch_npu

    start(rank, port)
    name = torch_npu.comm_name()
    x = torch.randn(3, 32).to(torch.bfloat16)
    ids = torch.tensor([[0, 1], [2, 3], [1, 40 if rank == 2 else 2]], dtype=torch.int32)
    with pytest.raises(moedist.Error) as info:
        torch_npu.npu_moe_distribute_dispatch(x, ids, name, W, rank, E)
    assert info.value.code == moedist.RUNTIME and "40" in info.value.message
    with pytest.raises(moedist.Error) as info:
        torch_npu.npu_moe_distribute_combine(torch.zeros(8, 32, dtype=torch.bfloat16), ids, ids.view(-1), ids.view(-1),
                                             torch.ones(3, 2), name, W, rank, E, shared_expert_x=x)
    assert "shared_expert_x" in info.value.message
    with pytest.raises(moedist.Error) as info:
        torch_npu.npu_moe_distribute_dispatch(x, ids, name, W + 1, rank, E)
    assert info.value.code == moedist.INNER_TILING
    dist.barrier()


def adapter_with_int8(rank, port):
    import moedist.torch as torch_npu

    start(rank, port)
    data = [ref.inputs(r, BS[r], H, E, K) for r in range(W)]
    x_bits, ids, weights = data[rank]
    moe = torch_npu.MoEPrepareAndFinalize(num_experts=E, max_num_tokens=max(BS))
    expert_x, scale, counts, handle = moe.prepare(bf16(x_bits), torch.from_numpy(ids), torch.from_numpy(weights), quant="int8")
    rows, want_counts, _ = ref.dispatch_layout([d[1] for d in data], rank, W, E)
    assert expert_x.dtype == torch.int8 and expert_x.shape == (len(rows), H) and scale.shape == (len(rows),)
    np.testing.assert_array_equal(counts.numpy(), want_counts)
    for i, (src, t, _k) in enumerate(rows):
        q, s = ref.quantize_int8(ref.bf16_to_f32(data[src][0][t]))
        np.testing.assert_array_equal(expert_x[i].numpy(), q)
        assert scale[i].item() == s
    y = moe.finalize((expert_x.float() * scale[:, None]).to(torch.bfloat16), handle)
    want = (bf16(x_bits).float() * torch.from_numpy(weights).sum(1, keepdim=True))
    bound = 0.01 * K * float(want.abs().max()) if want.numel() else 0.0  # int8 rounding, K rows
    assert (y.float() - want).abs().max() <= bound if want.numel() else y.shape == (0, H)
    dist.barrier()


@pytest.mark.parametrize("body", [dispatch_and_combine, errors_reach_every_rank, adapter_with_int8])
def test_on_four_processes(body):
    mp.spawn(body, args=(ref.free_port(),), nprocs=W, join=True)
