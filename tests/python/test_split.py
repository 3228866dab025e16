"""Split calls from Python (docs/contract.md §13): Distributor.dispatch_send / combine_send with
two calls in flight on threads, bit for bit the blocking calls', the misuse errors; and
torch_npu's npu_moe_distribute_{dispatch,combine}_{setup,teardown} on 4 processes, two
micro-batches in flight, equal to dispatch_v2 / combine_v2 (and the setup's expand_idx to V1's
expandIdx, checked against the naive reference)."""

import threading

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import moe_reference as ref
import moedist

W, E, K, H, BS = 4, 8, 3, 64, 5


def run_threads(body):
    errors = [None] * W

    def main(r):
        try:
            body(r)
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            errors[r] = e

    threads = [threading.Thread(target=main, args=(r,)) for r in range(W)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "a rank did not finish"
    for e in errors:
        if e is not None:
            raise e


def batch(rank, seed):
    x, ids, weights = ref.inputs(rank + 10 * seed, BS, H, E, K)
    return x, ids, weights


def outputs(moe):
    shapes = moedist.output_shapes(moe, BS, K, H)
    return dict(expand_x=np.full(shapes["expand_x"], 0x7FC1, np.uint16),
                expand_idx=np.full(shapes["expand_idx"], -7, np.int32),
                token_nums=np.full(shapes["expert_token_nums"], -7, np.int64),
                recv=np.full(shapes["ep_recv_counts"], -7, np.int32),
                x_out=np.full((BS, H), 0x7FC2, np.uint16))


def dispatch_args(x, ids, out):
    return ((x, "bfloat16"), ids, (out["expand_x"], "bfloat16"), out["expand_idx"], out["token_nums"], out["recv"])


def combine_args(ids, weights, out):
    return ((out["expand_x"], "bfloat16"), ids, out["expand_idx"], out["recv"], weights, (out["x_out"], "bfloat16"))


def test_two_calls_in_flight_on_threads_match_blocking_calls():
    blocking_group, split_group = moedist.local_group(W), moedist.local_group(W)

    def body(r):
        want = []
        moe = moedist.Distributor(blocking_group[r], moe_expert_num=E)
        for seed in (0, 1):
            x, ids, weights = batch(r, seed)
            out = outputs(moe)
            moe.dispatch(*dispatch_args(x, ids, out))
            moe.combine(*combine_args(ids, weights, out))
            want.append(out)

        moe = moedist.Distributor(split_group[r], moe_expert_num=E)
        data = [batch(r, seed) for seed in (0, 1)]
        outs = [outputs(moe) for _ in (0, 1)]
        sends = [moe.dispatch_send(*dispatch_args(x, ids, out)) for (x, ids, _), out in zip(data, outs)]
        assert all(p.pending for p in sends) and "pending" in repr(sends[0])
        with pytest.raises(moedist.Error, match="at most 1 call between its send and receive halves") as third:
            moe.dispatch_send(*dispatch_args(data[0][0], data[0][1], outputs(moe)))
        assert third.value.code == moedist.RUNTIME
        with pytest.raises(moedist.Error, match="must run receive halves in call order"):
            sends[1].wait()
        assert sends[1].pending
        sends[0].wait()
        sends[1].wait()
        combines = [moe.combine_send(*combine_args(ids, weights, out)) for (_, ids, weights), out in zip(data, outs)]
        for p in combines:
            p.wait()
        assert not any(p.pending for p in sends + combines)
        for got, exp in zip(outs, want):
            for key in exp:
                np.testing.assert_array_equal(got[key], exp[key], err_msg=f"rank {r}: {key}")

    run_threads(body)


# --- torch_npu's setup / teardown on processes -------------------------------------------------

def body_setup_teardown(rank, port):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=W)
    import moedist.torch as npu

    name = npu.comm_name()
    group = (name, W, rank, E)
    data = []
    for seed in (0, 1):
        x, ids, weights = batch(rank, seed)
        mask = torch.from_numpy(np.arange(BS) < (BS - seed * (rank % 2)))  # prefix masks on odd ranks
        data.append((torch.from_numpy(x.view(np.int16)).view(torch.bfloat16), torch.from_numpy(ids),
                     torch.from_numpy(weights), mask))
    # Reference: the blocking V2 calls, batch by batch.
    want = []
    for x, ids, weights, mask in data:
        expand_x, _, assist, nums, recv, _, _ = npu.npu_moe_distribute_dispatch_v2(x, ids, *group, x_active_mask=mask,
                                                                                  expert_token_nums_type=0)
        y = (expand_x.float() * 1.5).to(torch.bfloat16)
        out = npu.npu_moe_distribute_combine_v2(y, ids, assist, recv, weights, *group, x_active_mask=mask)
        want.append((expand_x.clone(), assist.clone(), nums.clone(), out))
    # Split: both dispatches in flight, then both combines.
    setups = [npu.npu_moe_distribute_dispatch_setup(x, ids, *group, x_active_mask=mask) for x, ids, _, mask in data]
    for (y, expand_idx, info), (x, ids, _, mask) in zip(setups, data):
        assert y.shape[0] == BS * K and info.dtype == torch.int32
        if mask is None or bool(mask.all()):
            np.testing.assert_array_equal(expand_idx.numpy(), ref.expand_idx(ids.numpy()))
    with pytest.raises(moedist.Error, match="comm_cmd_info must be the tensor a setup returned"):
        npu.npu_moe_distribute_dispatch_teardown(data[0][0], setups[0][0], data[0][1], torch.zeros(4, dtype=torch.int32),
                                                 *group)
    tears = []
    for (y, _, info), (x, ids, _, _) in zip(setups, data):
        tears.append(npu.npu_moe_distribute_dispatch_teardown(x, y, ids, info, *group, expert_token_nums_type=0))
    combines = []
    for (expand_x, _, assist, _), (x, ids, weights, mask) in zip(tears, data):
        y = (expand_x.float() * 1.5).to(torch.bfloat16)
        quant, info = npu.npu_moe_distribute_combine_setup(y, ids, assist, *group)
        combines.append((y, quant, info))
    outs = [npu.npu_moe_distribute_combine_teardown(y, quant, ids, idx, weights, info, *group, x_active_mask=mask)
            for (y, quant, info), (x, ids, weights, mask), (_, idx, _) in zip(combines, data, setups)]
    for b, ((expand_x, _, assist, nums), (w_x, w_assist, w_nums, w_out), out) in enumerate(zip(tears, want, outs)):
        rows = int(nums[-1])
        where = f"rank {rank}, batch {b}"
        assert torch.equal(expand_x[:rows].view(torch.int16), w_x[:rows].view(torch.int16)), where
        assert torch.equal(assist[:3 * rows], w_assist[:3 * rows]) and torch.equal(nums, w_nums), where
        assert torch.equal(out.view(torch.int16), w_out.view(torch.int16)), where
    dist.barrier()


def test_torch_npu_setup_and_teardown_match_the_v2_calls():
    mp.get_context("forkserver").set_forkserver_preload(["torch", "torch.distributed", "numpy"])
    mp.start_processes(body_setup_teardown, args=(ref.free_port(),), nprocs=W, join=True, start_method="forkserver")
