"""What the Python module does with what it should not trust: inputs that are not tensors,
tensors that require grad or cannot export their data, read-only arrays, a tensor moved by
another thread during a call, Ctrl-C while a call waits, two threads on one Distributor."""

import os
import signal
import threading
import time

import numpy as np
import pytest
import torch

import moedist

E, K, H, BS = 2, 1, 16, 2


def one_rank_inputs():
    """A 1-rank job's tensors (every token to expert t % E)."""
    comm = moedist.local_group(1)[0]
    moe = moedist.Distributor(comm, moe_expert_num=E)
    x = torch.arange(BS * H, dtype=torch.float32).reshape(BS, H).to(torch.bfloat16)
    ids = torch.tensor([[t % E] for t in range(BS)], dtype=torch.int32)
    shapes = moedist.output_shapes(moe, BS, K, H)
    out = dict(
        expand_x=torch.empty(shapes["expand_x"], dtype=torch.bfloat16),
        expand_idx=torch.empty(shapes["expand_idx"], dtype=torch.int32),
        expert_token_nums=torch.empty(shapes["expert_token_nums"], dtype=torch.int64),
        ep_recv_counts=torch.empty(shapes["ep_recv_counts"], dtype=torch.int32),
    )
    return moe, x, ids, out


def call_dispatch(moe, x, ids, out):
    moedist.dispatch(moe, x, ids, out["expand_x"], out["expand_idx"], out["expert_token_nums"],
                     out["ep_recv_counts"])


@pytest.mark.parametrize("bad", [[1, 2, 3], 7, 2.5, "x", torch.empty(2, 16, device="meta")],
                         ids=["list", "int", "float", "str", "meta"])
def test_what_is_not_a_cpu_tensor_with_data_raises_moedist_error_naming_the_argument(bad):
    moe, _x, ids, out = one_rank_inputs()
    with pytest.raises(moedist.Error) as info:
        call_dispatch(moe, bad, ids, out)
    assert info.value.code == moedist.INVALID_PARAM
    assert "x must be" in info.value.message


def test_bool_tensors_are_refused_with_their_dtype():
    moe, x, _ids, out = one_rank_inputs()
    with pytest.raises(moedist.Error) as info:
        call_dispatch(moe, x, torch.zeros((BS, K), dtype=torch.bool), out)
    assert info.value.code == moedist.INVALID_PARAM
    assert "bool" in info.value.message


def test_a_tensor_that_requires_grad_raises_with_a_hint():
    moe, x, ids, out = one_rank_inputs()
    with pytest.raises(moedist.Error) as info:
        call_dispatch(moe, torch.ones((BS, H), dtype=torch.float32, requires_grad=True), ids, out)
    assert "detach()" in info.value.message


def test_read_only_numpy_inputs_are_accepted_and_read_only_outputs_refused():
    moe, x, ids, out = one_rank_inputs()
    x_ro = x.view(torch.int16).numpy().copy()
    ids_ro = ids.numpy().copy()
    x_ro.setflags(write=False)
    ids_ro.setflags(write=False)
    call_dispatch(moe, (x_ro, "bfloat16"), ids_ro, out)
    assert int(out["expert_token_nums"][-1]) == BS  # type 0: the running total ends at BS
    frozen = out["expand_idx"].numpy().copy()
    frozen.setflags(write=False)
    with pytest.raises(moedist.Error) as info:
        moedist.dispatch(moe, x, ids, out["expand_x"], frozen, out["expert_token_nums"], out["ep_recv_counts"])
    assert "expand_idx must be a writable tensor" in info.value.message


def test_an_output_replaced_by_another_thread_during_the_call_is_reported():
    """Rank 0 waits for rank 1 inside dispatch; meanwhile another thread gives rank 0's output
    new storage (the old one kept alive here, so nothing is written to freed memory). The call
    must not return as if its results were in the tensor."""
    comms = moedist.local_group(2)
    moes = [moedist.Distributor(c, moe_expert_num=E) for c in comms]
    x = torch.ones((BS, H), dtype=torch.bfloat16)
    ids = torch.tensor([[t % E] for t in range(BS)], dtype=torch.int32)
    shapes = moedist.output_shapes(moes[0], BS, K, H)
    outs = [dict(expand_x=torch.empty(shapes["expand_x"], dtype=torch.bfloat16),
                 expand_idx=torch.empty(shapes["expand_idx"], dtype=torch.int32),
                 expert_token_nums=torch.empty(shapes["expert_token_nums"], dtype=torch.int64),
                 ep_recv_counts=torch.empty(shapes["ep_recv_counts"], dtype=torch.int32)) for _ in range(2)]
    errors = [None, None]

    def rank(r, delay):
        time.sleep(delay)
        try:
            call_dispatch(moes[r], x, ids, outs[r])
        except moedist.Error as e:
            errors[r] = e

    t0 = threading.Thread(target=rank, args=(0, 0.0))
    t1 = threading.Thread(target=rank, args=(1, 0.4))
    t0.start()
    t1.start()
    time.sleep(0.15)
    kept = outs[0]["expand_x"].storage()  # noqa: F841 - the old memory stays valid
    outs[0]["expand_x"].set_(torch.empty(shapes["expand_x"], dtype=torch.bfloat16))
    t0.join(30)
    t1.join(30)
    assert errors[0] is not None, "rank 0 must learn its output moved during the call"
    assert errors[0].code == moedist.RUNTIME
    assert "expand_x must keep its memory" in errors[0].message
    assert errors[1] is None


def test_ctrl_c_while_a_call_waits_raises_keyboard_interrupt_promptly_and_breaks_the_group():
    comms = moedist.local_group(2)  # rank 1 never calls
    moe = moedist.Distributor(comms[0], moe_expert_num=E)
    x = torch.ones((BS, H), dtype=torch.bfloat16)
    ids = torch.tensor([[t % E] for t in range(BS)], dtype=torch.int32)
    shapes = moedist.output_shapes(moe, BS, K, H)
    out = dict(expand_x=torch.empty(shapes["expand_x"], dtype=torch.bfloat16),
               expand_idx=torch.empty(shapes["expand_idx"], dtype=torch.int32),
               expert_token_nums=torch.empty(shapes["expert_token_nums"], dtype=torch.int64),
               ep_recv_counts=torch.empty(shapes["ep_recv_counts"], dtype=torch.int32))
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    start = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        call_dispatch(moe, x, ids, out)
    elapsed = time.monotonic() - start
    timer.join()
    assert elapsed < 3.0, f"Ctrl-C must stop the wait within seconds, took {elapsed:.1f} s"
    with pytest.raises(moedist.Error) as info:
        call_dispatch(moe, x, ids, out)
    assert "interrupted" in info.value.message


def test_two_threads_on_one_distributor_the_second_fails_at_once():
    comms = moedist.local_group(2)
    moes = [moedist.Distributor(c, moe_expert_num=E) for c in comms]
    x = torch.ones((BS, H), dtype=torch.bfloat16)
    ids = torch.tensor([[t % E] for t in range(BS)], dtype=torch.int32)
    shapes = moedist.output_shapes(moes[0], BS, K, H)

    def outputs():
        return dict(expand_x=torch.empty(shapes["expand_x"], dtype=torch.bfloat16),
                    expand_idx=torch.empty(shapes["expand_idx"], dtype=torch.int32),
                    expert_token_nums=torch.empty(shapes["expert_token_nums"], dtype=torch.int64),
                    ep_recv_counts=torch.empty(shapes["ep_recv_counts"], dtype=torch.int32))

    results = {}

    def run(name, moe, delay):
        time.sleep(delay)
        start = time.monotonic()
        try:
            call_dispatch(moe, x, ids, outputs())
            results[name] = ("ok", time.monotonic() - start)
        except moedist.Error as e:
            results[name] = (e.message, time.monotonic() - start)

    threads = [threading.Thread(target=run, args=("first", moes[0], 0.0)),
               threading.Thread(target=run, args=("second", moes[0], 0.1)),
               threading.Thread(target=run, args=("peer", moes[1], 0.5))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results["first"][0] == "ok"
    assert results["peer"][0] == "ok"
    assert "one call at a time" in results["second"][0]
    assert results["second"][1] < 0.3
