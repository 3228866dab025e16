"""torch_npu's MoE dispatch/combine example, on CPU: only the import and the group name change.

    PYTHONPATH=build/python /usr/bin/python3 examples/python/torch_npu_style.py

On an NPU this script would `import torch_npu` and take the group name from
`group._get_backend(torch.device("npu")).get_hccl_comm_name(rank)`; here moedist.torch provides
the same calls and comm_name(group, rank) the name."""

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import moedist.torch as torch_npu

EP_WORLD_SIZE, MOE_EXPERT_NUM, BS, H, K = 8, 16, 8, 7168, 8


def run(rank, port):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=EP_WORLD_SIZE)
    ep_group = dist.new_group(list(range(EP_WORLD_SIZE)))
    group_ep = torch_npu.comm_name(ep_group, rank)  # NPU: ep_group._get_backend(...).get_hccl_comm_name(rank)

    torch.manual_seed(rank)
    x = torch.randn(BS, H, dtype=torch.bfloat16)
    expert_ids = torch.stack([torch.randperm(MOE_EXPERT_NUM)[:K] for _ in range(BS)]).to(torch.int32)
    expert_scales = torch.softmax(torch.randn(BS, K), dim=-1)

    (expand_x, dynamic_scales, expand_idx, expert_token_nums, ep_recv_counts, tp_recv_counts,
     expand_scales) = torch_npu.npu_moe_distribute_dispatch(
        x=x, expert_ids=expert_ids, group_ep=group_ep, ep_world_size=EP_WORLD_SIZE, ep_rank_id=rank,
        moe_expert_num=MOE_EXPERT_NUM, expert_scales=expert_scales, quant_mode=2, global_bs=BS * EP_WORLD_SIZE)
    rows = int(expert_token_nums.sum())
    # The experts would run here on the int8 rows; dequantize them as a stand-in.
    expert_out = (expand_x.float() * dynamic_scales[:, None]).to(torch.bfloat16)

    y = torch_npu.npu_moe_distribute_combine(
        expand_x=expert_out, expert_ids=expert_ids, expand_idx=expand_idx, ep_send_counts=ep_recv_counts,
        expert_scales=expert_scales, group_ep=group_ep, ep_world_size=EP_WORLD_SIZE, ep_rank_id=rank,
        moe_expert_num=MOE_EXPERT_NUM, global_bs=BS * EP_WORLD_SIZE)
    # With the identity expert, combine gives back x (up to int8 quantization error).
    err = (y.float() - x.float()).abs().max().item() / x.float().abs().max().item()
    dist.barrier()
    line = (f"rank {rank}: received {rows} rows, relative error after int8 round trip {err:.4f}"
            + (" execute successfully" if err < 0.02 else " FAILED"))
    os.write(1, (line + "\n").encode())  # one write: the 8 ranks share stdout and must not interleave
    assert err < 0.02


if __name__ == "__main__":
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(run, args=(port,), nprocs=EP_WORLD_SIZE, join=True)
