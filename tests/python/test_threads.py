"""moedist's Python module on the threads backend: ranks as Python threads (local_group), numpy
and torch tensors zero-copy, bit-exact against the naive reference, errors as moedist.Error."""

import threading

import numpy as np
import pytest
import torch

import moedist
import moe_reference as ref

W, E, K, H = 4, 8, 3, 96
BS = [5, 0, 7, 3]  # uneven, one rank with no tokens


def run_ranks(world, body):
    """body(rank) on `world` threads at once; re-raises the first failure. The ranks wait for each
    other inside the calls, so this finishes only if the calls release the GIL."""
    errors = [None] * world

    def main(r):
        try:
            body(r)
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            errors[r] = e

    threads = [threading.Thread(target=main, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "a rank did not finish"
    return errors


def all_inputs():
    return [ref.inputs(r, BS[r], H, E, K) for r in range(W)]


def test_dispatch_and_combine_match_the_reference_bit_for_bit_with_numpy_views():
    comms = moedist.local_group(W)
    data = all_inputs()
    all_ids = [d[1] for d in data]
    poison = np.uint16(0xABCD)

    def body(r):
        x, ids, weights = data[r]
        moe = moedist.Distributor(comms[r], moe_expert_num=E, global_bs=max(BS) * W, expert_token_nums_type=1)
        shapes = moedist.output_shapes(moe, BS[r], K, H)
        expand_x = np.full(shapes["expand_x"], poison, np.uint16)
        expand_idx = np.empty(shapes["expand_idx"], np.int32)
        token_nums = np.empty(shapes["expert_token_nums"], np.int64)
        recv = np.empty(shapes["ep_recv_counts"], np.int32)
        moedist.dispatch(moe, (x, "bfloat16"), ids, (expand_x, "bfloat16"), expand_idx, token_nums, recv)

        rows, counts, want_recv = ref.dispatch_layout(all_ids, r, W, E)
        np.testing.assert_array_equal(token_nums, counts)
        np.testing.assert_array_equal(recv, want_recv)
        np.testing.assert_array_equal(expand_idx, ref.expand_idx(ids))
        for i, (src, t, _k) in enumerate(rows):
            np.testing.assert_array_equal(expand_x[i], data[src][0][t], err_msg=f"rank {r} row {i}")
        assert (expand_x[len(rows):] == poison).all(), "tails must be left untouched by default"

        # Each local expert transforms its rows, combine brings them home.
        local = E // W
        start = 0
        for j, n in enumerate(counts):
            for i in range(start, start + int(n)):
                expand_x[i] = ref.expert_transform(expand_x[i], r * local + j)
            start += int(n)
        out = np.full((BS[r], H), poison, np.uint16)
        moedist.combine(moe, (expand_x, "bfloat16"), ids, expand_idx, recv, weights, (out, "bfloat16"))
        np.testing.assert_array_equal(out, ref.combine(x, ids, weights))

    errors = run_ranks(W, body)
    for e in errors:
        if e is not None:
            raise e


def test_torch_bf16_tensors_and_int8_quantization_match_the_reference():
    comms = moedist.local_group(W)
    data = all_inputs()
    all_ids = [d[1] for d in data]

    def body(r):
        x_bits, ids, _ = data[r]
        x = torch.from_numpy(x_bits.view(np.int16)).view(torch.bfloat16)
        moe = moedist.Distributor(comms[r], moe_expert_num=E, quant_mode=2, global_bs=max(BS) * W, zero_padding=True)
        shapes = moedist.output_shapes(moe, BS[r], K, H)
        expand_x = torch.full(shapes["expand_x"], 77, dtype=torch.int8)
        scales = torch.full(shapes["dynamic_scales"], 5.0)
        expand_idx = torch.empty(shapes["expand_idx"], dtype=torch.int32)
        token_nums = torch.empty(shapes["expert_token_nums"], dtype=torch.int64)
        recv = torch.empty(shapes["ep_recv_counts"], dtype=torch.int32)
        moe.dispatch(x, torch.from_numpy(ids), expand_x, expand_idx, token_nums, recv, dynamic_scales=scales)
        rows, _, _ = ref.dispatch_layout(all_ids, r, W, E)
        for i, (src, t, _k) in enumerate(rows):
            q, s = ref.quantize_int8(ref.bf16_to_f32(data[src][0][t]))
            np.testing.assert_array_equal(expand_x[i].numpy(), q, err_msg=f"rank {r} row {i}")
            assert scales[i].item() == s
        # zero_padding=True: every tail byte is zero.
        assert (expand_x[len(rows):] == 0).all() and (scales[len(rows):] == 0).all()

    errors = run_ranks(W, body)
    for e in errors:
        if e is not None:
            raise e


def test_a_bad_expert_id_on_one_rank_fails_every_rank_with_361001():
    comms = moedist.local_group(2)

    def body(r):
        moe = moedist.Distributor(comms[r], moe_expert_num=4)
        x = torch.randn(3, 32).to(torch.bfloat16)
        ids = torch.tensor([[0, 1], [2, 3], [1, 9 if r == 1 else 2]], dtype=torch.int32)
        shapes = moedist.output_shapes(moe, 3, 2, 32)
        with pytest.raises(moedist.Error) as info:
            moe.dispatch(x, ids, torch.empty(shapes["expand_x"], dtype=torch.bfloat16),
                         torch.empty(shapes["expand_idx"], dtype=torch.int32),
                         torch.empty(shapes["expert_token_nums"], dtype=torch.int64),
                         torch.empty(shapes["ep_recv_counts"], dtype=torch.int32))
        assert info.value.code == moedist.RUNTIME
        assert "9" in info.value.message

    errors = run_ranks(2, body)
    for e in errors:
        if e is not None:
            raise e


def test_bad_arguments_raise_moedist_error_with_the_code_and_name():
    comm = moedist.local_group(1)[0]
    with pytest.raises(moedist.Error) as info:
        moedist.Distributor(comm, moe_expert_num=0)
    assert info.value.code == moedist.INNER_TILING
    moe = moedist.Distributor(comm, moe_expert_num=2)
    x = np.zeros((2, 16), np.float64)
    with pytest.raises(moedist.Error) as info:
        moe.dispatch(x, np.zeros((2, 1), np.int32), x, x, x, x)
    assert "x" in info.value.message
    with pytest.raises(moedist.Error) as info:
        moe.dispatch((np.zeros((2, 16), np.uint16), "bfloat17"), np.zeros((2, 1), np.int32), x, x, x, x)
    assert "bfloat17" in info.value.message
    with pytest.raises(moedist.Error) as info:
        moe.dispatch(None, np.zeros((2, 1), np.int32), x, x, x, x)
    assert info.value.code == moedist.NULLPTR
    with pytest.raises(moedist.Error):
        moedist.Communicator.find("no such group", 0)


def test_the_shared_arena_gives_writable_arrays_that_dispatch_accepts():
    comms = moedist.local_group(1)
    moe = moedist.Distributor(comms[0], moe_expert_num=2)
    x_bits, ids, _ = ref.inputs(0, 4, 32, 2, 1)
    shapes = moedist.output_shapes(moe, 4, 1, 32)
    expand_x = moedist.empty(shapes["expand_x"], np.uint16)
    assert expand_x.flags.writeable and expand_x.shape == shapes["expand_x"]
    recv = moedist.empty(shapes["ep_recv_counts"], np.int32)
    moe.dispatch((x_bits, "bfloat16"), ids, (expand_x, "bfloat16"), np.empty(4, np.int32), np.empty(2, np.int64), recv)
    order = np.argsort(ids[:, 0], kind="stable")
    np.testing.assert_array_equal(expand_x[:4], x_bits[order])


def test_errors_leave_the_group_usable_and_strided_views_read_in_place():
    comms = moedist.local_group(1)
    moe = moedist.Distributor(comms[0], moe_expert_num=2)
    wide, ids, _ = ref.inputs(0, 4, 64, 2, 1)
    shapes = moedist.output_shapes(moe, 4, 1, 32)
    outs = [np.empty(shapes["expand_idx"], np.int32), np.empty(2, np.int64), np.empty(shapes["ep_recv_counts"], np.int32)]
    with pytest.raises(moedist.Error) as info:  # expandX of the wrong width
        moe.dispatch((wide[:, :32], "bfloat16"), ids, (np.empty((4, 31), np.uint16), "bfloat16"), *outs)
    assert "expand_x" in info.value.message  # Python's name for expandX
    strided = wide[:, ::2]  # every other column: a non-contiguous view, read in place
    assert not strided.flags.c_contiguous
    expand_x = np.empty(shapes["expand_x"], np.uint16)
    moe.dispatch((strided, "bfloat16"), ids, (expand_x, "bfloat16"), *outs)
    order = np.argsort(ids[:, 0], kind="stable")
    np.testing.assert_array_equal(expand_x[:4], strided[order])
