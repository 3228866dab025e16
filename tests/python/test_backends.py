"""EP 4 x TP 2 with a shared-expert rank, every quant mode: the same inputs through moedist's
Python module on thread ranks (local_group) and on spawned processes (torch.distributed groups
bootstrapped by comm_name) give byte-identical outputs, tails included (zero padding on); the
bf16 case is also checked against the naive reference where it applies (rank layout, counts)."""

import threading

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import moedist
import moe_reference as ref

EP, TP, S, H, K, BS = 4, 2, 1, 200, 2, 5
E = EP - S  # TP 2 needs one expert per MoE rank

# (quant_mode, expand_x dtype name, dynamic scales kind, comm_quant_mode)
MODES = {
    "bf16": (0, "bfloat16", None, 0),
    "bf16_comm_int8": (0, "bfloat16", None, 2),
    "static_int8": (1, "int8", None, 0),
    "int8": (2, "int8", "per_token", 0),
    "fp8_e5m2": (2, "float8_e5m2", "per_token", 0),
    "group_fp8": (3, "float8_e4m3fn", "per_group", 0),
    "mx_fp8": (4, "float8_e4m3fn", "mx", 0),
}


def one_rank(ep, tp, g, mode):
    quant_mode, x_dtype, scales_kind, comm_quant = MODES[mode]
    x_bits, ids, weights = ref.inputs(g, BS, H, E, K)
    moe = moedist.Distributor(ep, moe_expert_num=E, tp=tp, shared_expert_rank_num=S, quant_mode=quant_mode,
                              comm_quant_mode=comm_quant, zero_padding=True)
    shapes = moedist.output_shapes(moe, BS, K, H)
    nbytes = 2 if x_dtype == "bfloat16" else 1
    expand_x = np.full(shapes["expand_x"], 0x5A, np.uint16 if nbytes == 2 else np.uint8)
    dyn = None
    if scales_kind == "per_token":
        dyn = np.full(shapes["dynamic_scales"], 3.0, np.float32)
    elif scales_kind == "per_group":
        dyn = np.full(shapes["dynamic_scales_per_group"], 3.0, np.float32)
    elif scales_kind == "mx":
        dyn = (np.full(shapes["dynamic_scales_mx"], 0x5A, np.uint8), "float8_e8m0")
    static = np.linspace(0.5, 2.0, H).astype(np.float32) if quant_mode == 1 else None
    expand_idx = np.empty(shapes["expand_idx"], np.int32)
    token_nums = np.empty(shapes["expert_token_nums"], np.int64)
    recv = np.empty(shapes["ep_recv_counts"], np.int32)
    tp_recv = np.empty(shapes["tp_recv_counts"], np.int32)
    expand_scales = np.full(shapes["expand_scales"], 7.0, np.float32)
    moe.dispatch((x_bits, "bfloat16"), ids, (expand_x, x_dtype), expand_idx, token_nums, recv,
                 scales=static, expert_scales=weights, dynamic_scales=dyn, tp_recv_counts=tp_recv,
                 expand_scales=expand_scales)
    # A deterministic stand-in expert: bf16 values from the received bytes and the row index.
    rows = np.arange(expand_x.shape[0], dtype=np.float32)[:, None]
    expert_out = ref.bf16_bits((expand_x.view(np.uint8)[:, :H].astype(np.float32) - 90) / 64 + rows / 256)
    out = np.empty((BS, H), np.uint16)
    moe.combine((expert_out, "bfloat16"), ids, expand_idx, recv, weights, (out, "bfloat16"), tp_send_counts=tp_recv)
    result = {"expand_x": expand_x, "expand_idx": expand_idx, "token_nums": token_nums, "recv": recv,
              "tp_recv": tp_recv, "expand_scales": expand_scales, "x": out}
    if dyn is not None:
        result["dynamic_scales"] = dyn[0] if isinstance(dyn, tuple) else dyn
    return {k: v.copy() for k, v in result.items()}


def on_threads(mode):
    eps = [moedist.local_group(EP) for _ in range(TP)]
    tps = [moedist.local_group(TP) for _ in range(EP)]
    results, errors = {}, []

    def main(g):
        try:
            results[g] = one_rank(eps[g % TP][g // TP], tps[g // TP][g % TP], g, mode)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=main, args=(g,)) for g in range(EP * TP)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if errors:
        raise errors[0]
    return results


def process_main(g, port, modes, queue):
    import moedist.torch as md

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=g, world_size=EP * TP)
    ep_groups = [dist.new_group([r for r in range(EP * TP) if r % TP == t]) for t in range(TP)]
    tp_groups = [dist.new_group([e * TP, e * TP + 1]) for e in range(EP)]
    ep_name = md.comm_name(ep_groups[g % TP])
    tp_name = md.comm_name(tp_groups[g // TP])
    ep = moedist.Communicator.find(ep_name, g // TP)
    tp = moedist.Communicator.find(tp_name, g % TP)
    queue.put((g, {mode: one_rank(ep, tp, g, mode) for mode in modes}))
    dist.barrier()


def test_every_mode_is_byte_identical_on_threads_and_processes():
    port = ref.free_port()
    queue = mp.get_context("spawn").Queue()
    context = mp.spawn(process_main, args=(port, list(MODES), queue), nprocs=EP * TP, join=False)
    by_process = dict(queue.get(timeout=300) for _ in range(EP * TP))  # before join: large items
    while not context.join():
        pass
    for mode in MODES:
        threads = on_threads(mode)
        for g in range(EP * TP):
            for name, value in threads[g].items():
                np.testing.assert_array_equal(by_process[g][mode][name], value, err_msg=f"{mode} rank {g} {name}")
        # Sanity on the threads results: TP pairs see each other's counts, rows are all real.
        for e in range(EP):
            a, b = threads[e * TP]["tp_recv"], threads[e * TP + 1]["tp_recv"]
            assert a[0] == b[0] and a[1] == b[1]
        total_rows = sum(int(threads[g]["token_nums"].sum()) for g in range(EP * TP))
        # Every routed entry and every shared-expert row reaches one rank of each TP half, and each
        # rank's count includes its TP peer's rows (L = 1): each row is counted TP * TP times.
        assert total_rows == TP * TP * (EP * BS * K + EP * BS)


@pytest.mark.parametrize("mode", ["bf16"])
def test_threads_bf16_shared_rank_rows_are_the_sources_tokens(mode):
    results = on_threads(mode)
    # Shared rank 0 (TP rank 0, global 0) receives every source's tokens in source order, own rows
    # first (SPEC §3): with T = 2 its rows are [own tp half][peer tp half].
    own = int(results[0]["tp_recv"][0])
    assert own == EP * BS
    rows = results[0]["expand_x"][:own]
    want = np.concatenate([ref.inputs(src * TP, BS, H, E, K)[0] for src in range(EP)])
    np.testing.assert_array_equal(rows, want)
