"""torch_npu's V2 names on processes (docs/contract.md §10): npu_moe_distribute_dispatch_v2,
npu_moe_distribute_combine_v2 and npu_moe_distribute_combine_add_rms_norm over a gloo group,
checked bit for bit against moe_v2_reference (written from the contract): prefix and entry
masks, N = 2 shared experts on S = 2 and S = 4 ranks, zero / copy / const experts (both alpha
forms), unweighted combine, sharedExpertX, AddRmsNorm, performanceInfo; the errors of a bad
prefix mask and of elastic_info; a 16-process EP16 job called the way vllm-ascend calls them
(prefix masks, then a layer with entry masks, special experts and AddRmsNorm); and a 16-process
EP8 x TP2 job (global rank = ep_rank * 2 + tp_rank) with masks, shared and special experts and
AddRmsNorm, the TP add of §4.1 included."""

import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import moe_reference
import moe_v2_reference as ref
from moe_v2_reference import Job, bits, tensor

W = 6
CASES = [
    # 1-D prefix masks with uneven BS (one rank has none), N = 2 shared experts on S = 2 ranks
    # (R = 1), one zero, one copy and one const expert with (Q,) alphas, weighted, expandScales.
    Job(world=W, shared_ranks=2, shared_experts=2, experts=8, top_k=3, hidden=48, bs=[5, 3, 4, 0, 6, 2],
        zero=1, copy=1, const=1, mask="prefix", uneven=True, seed=1, token_nums_type=0,
        extra=dict(dispatch_scales=True)),
    # (BS, K) entry masks, N = 2 shared experts on S = 4 ranks (R = 2), const experts with (Q, H)
    # alphas, unweighted combine (expert_scales empty), AddRmsNorm on the same rows.
    Job(world=W, shared_ranks=4, shared_experts=2, experts=4, top_k=4, hidden=40, bs=[4] * W,
        zero=1, copy=1, const=2, mask="entries", weighted=False, alpha_matrix=True, seed=2,
        extra=dict(norm=True, comm_alg="fullmesh_v1")),
    # No shared ranks: sharedExpertX added by combine, zero experts, no mask, AddRmsNorm.
    Job(world=W, shared_ranks=0, shared_experts=1, experts=12, top_k=2, hidden=64, bs=[3] * W,
        zero=2, shared_x=True, seed=3, extra=dict(norm=True, norm_eps=1e-5)),
]


def run_ranks(body, nprocs):
    """`nprocs` processes running body(rank, port), forked from a server that imported torch once
    (16 spawned interpreters would each import it: tens of seconds on 2 cores)."""
    mp.get_context("forkserver").set_forkserver_preload(["torch", "torch.distributed", "numpy"])
    mp.start_processes(body, args=(moe_reference.free_port(),), nprocs=nprocs, join=True, start_method="forkserver")


def start(rank, port, world):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)


def attributes(job):
    return dict(shared_expert_num=job.shared_experts, shared_expert_rank_num=job.shared_ranks,
                global_bs=job.global_bs, zero_expert_num=job.zero, copy_expert_num=job.copy,
                const_expert_num=job.const, comm_alg=job.extra.get("comm_alg", ""))


def run_case(torch_npu, name, rank, job):
    all_inputs = [job.inputs(r) for r in range(job.world)]
    inp = all_inputs[rank]
    consts = job.constants()
    where = f"case seed {job.seed}, rank {rank}"
    mask = torch.from_numpy(inp["mask"]) if inp["mask"] is not None else None
    ids = torch.from_numpy(inp["ids"])
    weights = torch.from_numpy(inp["weights"])
    perf = torch.zeros(job.world, dtype=torch.int64)
    outs = torch_npu.npu_moe_distribute_dispatch_v2(
        tensor(inp["x"]), ids, name, job.world, rank, job.experts, x_active_mask=mask,
        expert_scales=weights if job.extra.get("dispatch_scales") else None, performance_info=perf,
        expert_token_nums_type=job.token_nums_type, **attributes(job))
    expand_x, dynamic_scales, assist, token_nums, recv, tp_recv, expand_scales = outs

    rows, want_recv, want_nums, want_scales = ref.dispatch(job, all_inputs, rank)
    a = job.capacity(rank)
    assert expand_x.dtype == torch.bfloat16 and tuple(expand_x.shape) == (a, job.hidden), where
    assert assist.dtype == torch.int32 and tuple(assist.shape) == (max(job.bs[rank] * job.top_k, 128 * a),), where
    assert dynamic_scales.numel() == 0 and tp_recv.numel() == 0, where
    np.testing.assert_array_equal(assist[:3 * len(rows)].numpy().reshape(-1, 3), np.array(rows).reshape(-1, 3),
                                  err_msg=where)
    np.testing.assert_array_equal(recv.numpy(), want_recv, err_msg=where)
    np.testing.assert_array_equal(token_nums.numpy(), want_nums, err_msg=where)
    for i, (src, t, _slot) in enumerate(rows):
        np.testing.assert_array_equal(bits(expand_x[i]), all_inputs[src]["x"][t], err_msg=f"{where} row {i}")
    if job.extra.get("dispatch_scales"):
        np.testing.assert_array_equal(expand_scales[:len(rows)].numpy(), want_scales, err_msg=where)

    for i, row in enumerate(ref.expert_rows(job, rows, all_inputs, rank)):  # the experts
        expand_x[i] = tensor(row)

    common = dict(x_active_mask=mask, **attributes(job))
    if job.copy + job.const:
        common["ori_x"] = tensor(inp["ori_x"])
    if job.const:
        common.update(const_expert_alpha_1=tensor(consts["alpha1"]), const_expert_alpha_2=tensor(consts["alpha2"]),
                      const_expert_v=tensor(consts["v"]))
    if job.shared_x:
        common["shared_expert_x"] = tensor(inp["shared_x"])
    scales = weights if job.weighted else torch.empty(0)
    x = torch_npu.npu_moe_distribute_combine_v2(expand_x, ids, assist, recv, scales, name, job.world, rank,
                                                job.experts, expand_scales=expand_scales, performance_info=perf,
                                                **common)
    assert x.dtype == torch.bfloat16 and tuple(x.shape) == (job.bs[rank], job.hidden), where
    np.testing.assert_array_equal(bits(x), ref.combine(job, inp, consts), err_msg=where)

    if job.extra.get("norm"):
        eps = job.extra.get("norm_eps", 1e-6)
        y, rstd, x_sum = torch_npu.npu_moe_distribute_combine_add_rms_norm(
            expand_x, ids, assist, recv, scales, tensor(inp["residual"]), tensor(consts["gamma"]), name, job.world,
            rank, job.experts, norm_eps=eps, **common)
        want_y, want_rstd, want_x = ref.add_rms_norm(job, inp, consts, eps)
        assert tuple(y.shape) == tuple(x_sum.shape) == (job.bs[rank], 1, job.hidden), where
        assert y.dtype == x_sum.dtype == torch.bfloat16 and rstd.dtype == torch.float32, where
        assert tuple(rstd.shape) == (job.bs[rank], 1, 1), where
        np.testing.assert_array_equal(bits(x_sum), want_x, err_msg=f"{where} add_rms_norm x")
        np.testing.assert_array_equal(rstd.numpy().view(np.uint32), want_rstd.view(np.uint32),
                                      err_msg=f"{where} add_rms_norm rstd")
        np.testing.assert_array_equal(bits(y), want_y, err_msg=f"{where} add_rms_norm y")
    assert int(perf.min()) >= 0, where  # microseconds waited, added to by every call


def v2_cases(rank, port):
    import moedist.torch as torch_npu

    start(rank, port, W)
    name = torch_npu.comm_name()
    for job in CASES:
        run_case(torch_npu, name, rank, job)
    dist.barrier()


def test_dispatch_v2_combine_v2_and_add_rms_norm_match_the_reference():
    run_ranks(v2_cases, W)


def v2_errors(rank, port):
    import moedist
    import moedist.torch as torch_npu

    world, experts = 4, 8
    start(rank, port, world)
    name = torch_npu.comm_name()
    x = torch.randn(3, 32).to(torch.bfloat16)
    ids = torch.tensor([[0, 1], [2, 3], [4, 7]], dtype=torch.int32)
    try:
        torch_npu.npu_moe_distribute_dispatch_v2(x, ids, name, world, rank, experts,
                                                 elastic_info=torch.zeros(4 + 2 * world, dtype=torch.int32))
        raise AssertionError("elastic_info was accepted")
    except moedist.Error as e:
        assert e.code == moedist.INNER_TILING and "elastic_info" in e.message, e.message
    try:
        torch_npu.npu_moe_distribute_combine_v2(torch.zeros(24, 32, dtype=torch.bfloat16), ids,
                                                torch.zeros(24 * 128, dtype=torch.int32),
                                                torch.zeros(8, dtype=torch.int32), torch.ones(3, 2), name, world,
                                                rank, experts, elastic_info=torch.zeros(12, dtype=torch.int32))
        raise AssertionError("elastic_info was accepted by combine")
    except moedist.Error as e:
        assert e.code == moedist.INNER_TILING and "elastic_info" in e.message, e.message
    # Rank 2's 1-D mask is not a prefix (token 1 false, token 2 true): every rank fails with
    # 361001 naming rank 2 and the token.
    mask = torch.tensor([True, rank != 2, True])
    try:
        torch_npu.npu_moe_distribute_dispatch_v2(x, ids, name, world, rank, experts, x_active_mask=mask)
        raise AssertionError("a mask that is not a prefix was accepted")
    except moedist.Error as e:
        assert e.code == moedist.RUNTIME, e.message
        assert "x_active_mask" in e.message and "rank 2" in e.message and "token 1" in e.message, e.message
    # The group still works afterwards.
    good = torch.tensor([True, True, False])
    outs = torch_npu.npu_moe_distribute_dispatch_v2(x, ids, name, world, rank, experts, x_active_mask=good)
    received = outs[3].sum().reshape(1)
    dist.all_reduce(received)
    assert int(received) == 4 * world  # tokens 0 and 1 of every rank, two entries each
    dist.barrier()


def test_a_mask_that_is_no_prefix_and_elastic_info_are_refused():
    run_ranks(v2_errors, 4)


# --- 16 processes, as vllm-ascend's TokenDispatcherWithMC2 calls torch_npu (A3 path) ----------
VLLM_W, VLLM_E, VLLM_K, VLLM_H, VLLM_BS = 16, 32, 8, 32, 4


def vllm_job(layer):
    # Layers 0 and 1: mc2_mask, the padded tail of each rank's batch inactive (a prefix);
    # global_bs = 0. Layer 2: a (BS, K) mask of entries and ids that reach the special experts
    # (one zero, one copy, two const with (Q,) alphas), then AddRmsNorm on the same rows.
    if layer < 2:
        return Job(world=VLLM_W, shared_ranks=0, shared_experts=1, experts=VLLM_E, top_k=VLLM_K, hidden=VLLM_H,
                   bs=[VLLM_BS] * VLLM_W, mask="prefix", seed=100 + layer, token_nums_type=1)
    return Job(world=VLLM_W, shared_ranks=0, shared_experts=1, experts=VLLM_E, top_k=VLLM_K, hidden=VLLM_H,
               bs=[VLLM_BS] * VLLM_W, zero=1, copy=1, const=2, mask="entries", seed=100 + layer,
               token_nums_type=1, extra=dict(norm=True))


def special_tensors(job, inp, consts):
    """combine's tensors for the copy / const experts of `job` (§10.5, §10.6): ori_x, alphas, v."""
    kwargs = {}
    if job.copy + job.const:
        kwargs["ori_x"] = tensor(inp["ori_x"])
    if job.const:
        kwargs.update(const_expert_alpha_1=tensor(consts["alpha1"]), const_expert_alpha_2=tensor(consts["alpha2"]),
                      const_expert_v=tensor(consts["v"]))
    return kwargs


def check_add_rms_norm(torch_npu, job, inp, consts, where, tp_rank=0, **kwargs):
    """npu_moe_distribute_combine_add_rms_norm on combine_v2's keywords (`kwargs`, with expand_idx
    for assist_info_for_combine) against the reference, bit for bit (§10.7)."""
    eps = job.extra.get("norm_eps", 1e-6)
    y, rstd, x_sum = torch_npu.npu_moe_distribute_combine_add_rms_norm(
        residual_x=tensor(inp["residual"]), gamma=tensor(consts["gamma"]), norm_eps=eps, **kwargs)
    want_y, want_rstd, want_x = ref.add_rms_norm(job, inp, consts, eps, tp_rank)
    bs = inp["ids"].shape[0]
    assert tuple(y.shape) == tuple(x_sum.shape) == (bs, 1, job.hidden), where
    assert y.dtype == x_sum.dtype == torch.bfloat16 and rstd.dtype == torch.float32, where
    assert tuple(rstd.shape) == (bs, 1, 1), where
    np.testing.assert_array_equal(bits(x_sum), want_x, err_msg=f"{where} add_rms_norm x")
    np.testing.assert_array_equal(rstd.numpy().view(np.uint32), want_rstd.view(np.uint32),
                                  err_msg=f"{where} add_rms_norm rstd")
    np.testing.assert_array_equal(bits(y), want_y, err_msg=f"{where} add_rms_norm y")


def vllm_rank(rank, port):
    import moedist.torch

    moedist.torch.install_as_torch_npu()
    import torch_npu

    start(rank, port, VLLM_W)
    assert hasattr(torch_npu, "npu_moe_distribute_dispatch_v2")  # how vllm-ascend picks V2
    group = dist.group.WORLD
    name = group._get_backend(None).get_hccl_comm_name(rank)
    for layer in range(3):
        job = vllm_job(layer)
        where = f"rank {rank} layer {layer}"
        all_inputs = [job.inputs(r) for r in range(VLLM_W)]
        inp = all_inputs[rank]
        consts = job.constants()
        mc2_mask = torch.from_numpy(inp["mask"])
        topk_ids = torch.from_numpy(inp["ids"])
        topk_weights = torch.from_numpy(inp["weights"])
        special = {"zero_expert_num": job.zero, "copy_expert_num": job.copy, "const_expert_num": job.const}
        kwargs_mc2 = {
            "x": tensor(inp["x"]), "expert_ids": topk_ids, "expert_shard_type": 0, "shared_expert_rank_num": 0,
            "moe_expert_num": VLLM_E, "global_bs": 0, "expert_token_nums_type": 1, "elastic_info": None,
            "x_active_mask": mc2_mask, "scales": None, "quant_mode": 0, "group_ep": name,
            "ep_world_size": VLLM_W, "ep_rank_id": rank, "group_tp": name, "tp_world_size": 1, "tp_rank_id": 0,
            **special,
        }
        (expand_x, _dynamic_scale, assist_info_for_combine, expert_token_nums, ep_recv_counts, tp_recv_counts,
         expand_scales) = torch_npu.npu_moe_distribute_dispatch_v2(**kwargs_mc2)[0:7]
        rows, want_recv, want_nums, _ = ref.dispatch(job, all_inputs, rank)
        np.testing.assert_array_equal(expert_token_nums.numpy(), want_nums, err_msg=where)
        np.testing.assert_array_equal(ep_recv_counts.numpy(), want_recv, err_msg=where)
        np.testing.assert_array_equal(assist_info_for_combine[:3 * len(rows)].numpy().reshape(-1, 3),
                                      np.array(rows, np.int32).reshape(-1, 3), err_msg=where)
        for i, (src, t, _slot) in enumerate(rows):
            np.testing.assert_array_equal(bits(expand_x[i]), all_inputs[src]["x"][t], err_msg=f"{where} row {i}")
        hidden_states = expand_x.clone()  # the experts (grouped matmul over expert_token_nums)
        for i, row in enumerate(ref.expert_rows(job, rows, all_inputs, rank)):
            hidden_states[i] = tensor(row)
        kwargs_mc2 = {
            "expand_x": hidden_states, "expert_ids": topk_ids, "expert_scales": topk_weights.to(torch.float32),
            "expert_shard_type": 0, "shared_expert_rank_num": 0, "moe_expert_num": VLLM_E, "global_bs": 0,
            "elastic_info": None, "x_active_mask": mc2_mask, "ep_send_counts": ep_recv_counts, "group_ep": name,
            "ep_world_size": VLLM_W, "ep_rank_id": rank, "expand_scales": expand_scales, "comm_quant_mode": 0,
            "assist_info_for_combine": assist_info_for_combine, "tp_send_counts": tp_recv_counts,
            "group_tp": name, "tp_world_size": 1, "tp_rank_id": 0, **special, **special_tensors(job, inp, consts),
        }
        out = torch_npu.npu_moe_distribute_combine_v2(**kwargs_mc2)
        np.testing.assert_array_equal(bits(out), ref.combine(job, inp, consts), err_msg=where)
        if job.extra.get("norm"):
            kwargs_mc2["expand_idx"] = kwargs_mc2.pop("assist_info_for_combine")  # torch_npu's name there
            check_add_rms_norm(torch_npu, job, inp, consts, where, **kwargs_mc2)
    dist.barrier()


def test_sixteen_processes_called_as_vllm_ascend_calls_torch_npu():
    begin = time.monotonic()
    run_ranks(vllm_rank, VLLM_W)
    assert time.monotonic() - begin < 60


# --- 16 processes as EP8 x TP2: global rank g = ep_rank * 2 + tp_rank (the A3 sample's layout) ---
# Two EP groups of 8 (one per tp_rank, each with its own tokens) and eight TP pairs (2e, 2e + 1),
# each a torch.distributed.new_group named by comm_name. T = 2 needs L = 1 (§3).
TP_EP, TP_T = 8, 2
TP_JOBS = [
    # S = 0, E = 8 (L = 1): 1-D prefix masks with uneven BS (one rank has none, globalBs =
    # maxBs * W), a zero, a copy and a const expert ((Q,) alphas), expandScales, AddRmsNorm.
    Job(world=TP_EP, shared_ranks=0, shared_experts=1, experts=8, top_k=3, hidden=32,
        bs=[4, 3, 4, 0, 2, 4, 1, 4], zero=1, copy=1, const=1, mask="prefix", uneven=True, seed=300,
        token_nums_type=0, tp=TP_T, extra=dict(norm=True)),
    # S = 2 shared ranks holding N = 2 shared experts (R = 1), E = 6 (L = 1): (BS, K) entry
    # masks, one zero, one copy and two const experts ((Q,) alphas), AddRmsNorm.
    Job(world=TP_EP, shared_ranks=2, shared_experts=2, experts=6, top_k=2, hidden=24, bs=[3] * TP_EP,
        zero=1, copy=1, const=2, mask="entries", seed=301, tp=TP_T, extra=dict(norm=True, norm_eps=1e-5)),
]


def run_tp_case(torch_npu, group_ep, group_tp, g, job):
    ep_rank, tp_rank = g // TP_T, g % TP_T
    where = f"TP case seed {job.seed}, rank {g} (ep {ep_rank}, tp {tp_rank})"
    inputs_by_tp = [[job.inputs(r, t) for r in range(job.world)] for t in range(TP_T)]
    inp = inputs_by_tp[tp_rank][ep_rank]
    consts = job.constants()
    mask = torch.from_numpy(inp["mask"]) if inp["mask"] is not None else None
    ids = torch.from_numpy(inp["ids"])
    weights = torch.from_numpy(inp["weights"])
    groups = {"group_ep": group_ep, "ep_world_size": job.world, "ep_rank_id": ep_rank, "group_tp": group_tp,
              "tp_world_size": TP_T, "tp_rank_id": tp_rank, "moe_expert_num": job.experts, "expert_shard_type": 0,
              "shared_expert_num": job.shared_experts, "shared_expert_rank_num": job.shared_ranks,
              "global_bs": job.global_bs, "zero_expert_num": job.zero, "copy_expert_num": job.copy,
              "const_expert_num": job.const}
    (expand_x, dynamic_scales, assist, token_nums, recv, tp_recv, expand_scales) = \
        torch_npu.npu_moe_distribute_dispatch_v2(
            x=tensor(inp["x"]), expert_ids=ids, x_active_mask=mask, expert_scales=weights, scales=None, quant_mode=0,
            expert_token_nums_type=job.token_nums_type, elastic_info=None, **groups)

    want = ref.dispatch_tp(job, inputs_by_tp, ep_rank, tp_rank)
    own = len(want["assist"])
    a = job.capacity(ep_rank)
    assert expand_x.dtype == torch.bfloat16 and tuple(expand_x.shape) == (TP_T * a, job.hidden), where
    assert dynamic_scales.numel() == 0, where
    assert tp_recv.dtype == torch.int32 and tuple(tp_recv.shape) == (TP_T,), where
    np.testing.assert_array_equal(tp_recv.numpy(), want["tp_recv"], err_msg=f"{where} tp_recv_counts")
    assert recv.shape[0] >= len(want["recv"]), where
    np.testing.assert_array_equal(recv[:len(want["recv"])].numpy(), want["recv"], err_msg=f"{where} ep_recv_counts")
    np.testing.assert_array_equal(token_nums.numpy(), want["nums"], err_msg=f"{where} expert_token_nums")
    np.testing.assert_array_equal(assist[:3 * own].numpy().reshape(-1, 3), np.array(want["assist"]).reshape(-1, 3),
                                  err_msg=f"{where} assist_info_for_combine")
    for i, (group, src, t, _slot) in enumerate(want["rows"]):
        np.testing.assert_array_equal(bits(expand_x[i]), inputs_by_tp[group][src]["x"][t],
                                      err_msg=f"{where} expand_x row {i} ({'own' if i < own else 'peer'})")
    np.testing.assert_array_equal(expand_scales[:own].numpy(), want["scales"], err_msg=f"{where} expand_scales")

    hidden_states = expand_x.clone()  # this rank's half of each expert, own and peer rows alike
    for i, row in enumerate(ref.expert_rows_tp(job, want["rows"], inputs_by_tp, tp_rank)):
        hidden_states[i] = tensor(row)
    kwargs = dict(expand_x=hidden_states, expert_ids=ids, assist_info_for_combine=assist, ep_send_counts=recv,
                  expert_scales=weights, tp_send_counts=tp_recv, x_active_mask=mask, expand_scales=expand_scales,
                  comm_quant_mode=0, elastic_info=None, **groups, **special_tensors(job, inp, consts))
    x = torch_npu.npu_moe_distribute_combine_v2(**kwargs)
    assert x.dtype == torch.bfloat16 and tuple(x.shape) == (job.bs[ep_rank], job.hidden), where
    np.testing.assert_array_equal(bits(x), ref.combine(job, inp, consts, tp_rank), err_msg=f"{where} combine_v2")
    if job.extra.get("norm"):
        kwargs["expand_idx"] = kwargs.pop("assist_info_for_combine")
        check_add_rms_norm(torch_npu, job, inp, consts, where, tp_rank, **kwargs)


def ep8_tp2_rank(g, port):
    import moedist.torch as torch_npu

    start(g, port, TP_EP * TP_T)
    ep_rank, tp_rank = g // TP_T, g % TP_T
    ep_groups = [dist.new_group([r for r in range(TP_EP * TP_T) if r % TP_T == t]) for t in range(TP_T)]
    tp_groups = [dist.new_group([e * TP_T + t for t in range(TP_T)]) for e in range(TP_EP)]
    assert dist.get_rank(ep_groups[tp_rank]) == ep_rank and dist.get_rank(tp_groups[ep_rank]) == tp_rank
    group_ep = torch_npu.comm_name(ep_groups[tp_rank], g)
    group_tp = torch_npu.comm_name(tp_groups[ep_rank], g)
    for job in TP_JOBS:
        run_tp_case(torch_npu, group_ep, group_tp, g, job)
    dist.barrier()


def test_sixteen_processes_ep8_by_tp2_dispatch_combine_and_add_rms_norm():
    begin = time.monotonic()
    run_ranks(ep8_tp2_rank, TP_EP * TP_T)
    assert time.monotonic() - begin < 60


# torch_npu's schemas (op-plugin's op_plugin_functions.yaml; dispatch_v2 and combine_v2 with the
# performance_info of torch_npu 2.9), keyword names and defaults as Python sees them.
SCHEMAS = {
    "npu_moe_distribute_dispatch_v2": (
        "x, expert_ids, group_ep, ep_world_size, ep_rank_id, moe_expert_num, *, scales=None, x_active_mask=None, "
        "expert_scales=None, elastic_info=None, performance_info=None, group_tp='', tp_world_size=0, tp_rank_id=0, "
        "expert_shard_type=0, shared_expert_num=1, shared_expert_rank_num=0, quant_mode=0, global_bs=0, "
        "expert_token_nums_type=1, comm_alg='', zero_expert_num=0, copy_expert_num=0, const_expert_num=0"),
    "npu_moe_distribute_combine_v2": (
        "expand_x, expert_ids, assist_info_for_combine, ep_send_counts, expert_scales, group_ep, ep_world_size, "
        "ep_rank_id, moe_expert_num, *, tp_send_counts=None, x_active_mask=None, expand_scales=None, "
        "shared_expert_x=None, elastic_info=None, ori_x=None, const_expert_alpha_1=None, const_expert_alpha_2=None, "
        "const_expert_v=None, performance_info=None, group_tp='', tp_world_size=0, tp_rank_id=0, "
        "expert_shard_type=0, shared_expert_num=1, shared_expert_rank_num=0, global_bs=0, comm_quant_mode=0, "
        "comm_alg='', zero_expert_num=0, copy_expert_num=0, const_expert_num=0"),
    "npu_moe_distribute_combine_add_rms_norm": (
        "expand_x, expert_ids, expand_idx, ep_send_counts, expert_scales, residual_x, gamma, group_ep, "
        "ep_world_size, ep_rank_id, moe_expert_num, *, tp_send_counts=None, x_active_mask=None, "
        "activation_scale=None, weight_scale=None, group_list=None, expand_scales=None, shared_expert_x=None, "
        "elastic_info=None, ori_x=None, const_expert_alpha_1=None, const_expert_alpha_2=None, const_expert_v=None, "
        "group_tp='', tp_world_size=0, tp_rank_id=0, expert_shard_type=0, shared_expert_num=1, "
        "shared_expert_rank_num=0, global_bs=0, out_dtype=0, comm_quant_mode=0, group_list_type=0, comm_alg='', "
        "norm_eps=1e-06, zero_expert_num=0, copy_expert_num=0, const_expert_num=0"),
}


def test_the_v2_functions_have_torch_npu_s_signatures():
    import inspect

    import moedist.torch as torch_npu

    for name, schema in SCHEMAS.items():
        assert name in torch_npu.__all__
        assert str(inspect.signature(getattr(torch_npu, name))) == f"({schema})", name
