"""What a Python user meets first: the Distributor's signature and timeout, __version__, how
moedist.Error reads, Python's argument names in messages, hints, allocate_outputs, help texts,
install_as_torch_npu and destroy, and a torch_npu-default call under the A3 profile."""

import datetime
import os
import pydoc
import re
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import moedist
import moe_reference as ref


def test_version_and_the_error_class_read_as_moedist_s():
    assert re.fullmatch(r"\d+\.\d+\.\d+", moedist.__version__)
    assert repr(moedist.Error) == "<class 'moedist.Error'>"
    assert "local_group" in pydoc.render_doc(moedist)


def test_the_distributor_takes_tp_by_keyword_and_names_python_arguments_in_errors():
    comm = moedist.local_group(1)[0]
    with pytest.raises(TypeError):
        moedist.Distributor(comm, None, 4)  # tp is keyword-only
    with pytest.raises(moedist.Error) as info:
        moedist.Distributor(comm, 0)
    assert "moe_expert_num" in info.value.message and "moeExpertNum" not in info.value.message
    with pytest.raises(moedist.Error) as info:
        moedist.Distributor(comm, 4, global_bs=-5)
    assert "global_bs" in info.value.message


def test_sixteen_bit_integer_tensors_need_a_name_and_the_error_says_how():
    comm = moedist.local_group(1)[0]
    moe = moedist.Distributor(comm, 2)
    out = moedist.allocate_outputs(moe, 2, 1, 16)
    with pytest.raises(moedist.Error) as info:
        moedist.dispatch(moe, np.zeros((2, 16), np.uint16), np.zeros((2, 1), np.int32), **out)
    assert '(x, "bfloat16")' in info.value.message


@pytest.mark.parametrize("mode", [0, 2, 3, 4])
def test_allocate_outputs_fits_every_quant_mode(mode):
    comm = moedist.local_group(1)[0]
    moe = moedist.Distributor(comm, 2, quant_mode=mode)
    x_bits, ids, _ = ref.inputs(0, 4, 256, 2, 1)
    out = moedist.allocate_outputs(moe, 4, 1, 256)
    moedist.dispatch(moe, (x_bits, "bfloat16"), ids, **out)
    assert int(out["expert_token_nums"][-1]) == 4
    assert ("dynamic_scales" in out) == (mode != 0)


def test_a_distributor_timeout_bounds_the_wait_for_a_missing_peer():
    comms = moedist.local_group(2)  # rank 1 never calls
    moe = moedist.Distributor(comms[0], 2, timeout=datetime.timedelta(milliseconds=300))
    x_bits, ids, _ = ref.inputs(0, 2, 16, 2, 1)
    start = time.monotonic()
    with pytest.raises(moedist.Error) as info:
        moedist.dispatch(moe, (x_bits, "bfloat16"), ids, **moedist.allocate_outputs(moe, 2, 1, 16))
    assert time.monotonic() - start < 3.0
    assert "300 ms" in info.value.message and "rank 1" in info.value.message
    with pytest.raises(moedist.Error):
        moedist.Distributor(comms[0], 2, timeout=-1)


def test_the_bench_module_documents_its_options():
    env = dict(os.environ)
    result = subprocess.run([sys.executable, "-m", "moedist.bench", "--help"], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0
    assert "--tokens" in result.stdout and "default" in result.stdout


def _install_and_destroy(rank, port):
    import moedist.torch

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    moedist.torch.install_as_torch_npu()
    import torch_npu  # noqa: F401 - what model code imports

    assert torch_npu is moedist.torch
    name = dist.group.WORLD._get_backend(None).get_hccl_comm_name(rank)
    x_bits, ids, weights = ref.inputs(rank, 3, 32, 4, 2)
    x = torch.from_numpy(x_bits.view(np.int16)).view(torch.bfloat16)
    outs = torch_npu.npu_moe_distribute_dispatch(x, torch.from_numpy(ids), name, 2, rank, 4)
    np.testing.assert_array_equal(outs[2].numpy(), ref.expand_idx(ids))
    torch_npu.destroy()
    again = torch_npu.comm_name(dist.group.WORLD, rank)
    assert again != name  # a new group over the same torch group
    torch_npu.npu_moe_distribute_dispatch(x, torch.from_numpy(ids), again, 2, rank, 4)
    dist.barrier()


def test_install_as_torch_npu_runs_model_code_and_destroy_makes_a_new_group():
    mp.spawn(_install_and_destroy, args=(ref.free_port(),), nprocs=2, join=True)


def _a3_default_call(rank, port):
    import moedist.torch as torch_npu

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=8)
    name = torch_npu.comm_name()
    x_bits, ids, _ = ref.inputs(rank, 2, 7168, 16, 2)
    x = torch.from_numpy(x_bits.view(np.int16)).view(torch.bfloat16)
    # torch_npu's defaults, shared_expert_num=1 among them, as model code passes them.
    outs = torch_npu.npu_moe_distribute_dispatch(x, torch.from_numpy(ids), name, 8, rank, 16)
    assert outs[0].shape[1] == 7168
    dist.barrier()


def test_a_torch_npu_default_call_passes_the_a3_profile():
    os.environ["MOEDIST_SOC"] = "A3"
    try:
        mp.spawn(_a3_default_call, args=(ref.free_port(),), nprocs=8, join=True)
    finally:
        del os.environ["MOEDIST_SOC"]


def test_every_config_keyword_is_a_property_and_an_unknown_keyword_is_a_type_error():
    comm = moedist.local_group(1)[0]
    moe = moedist.Distributor(comm, 4, api=2, zero_expert_num=1, copy_expert_num=2, comm_alg="fullmesh_v2",
                              timeout=2, soc="generic")
    assert (moe.api, moe.zero_expert_num, moe.copy_expert_num, moe.const_expert_num) == (2, 1, 2, 0)
    assert moe.comm_alg == "fullmesh_v2" and moe.timeout == 2.0 and moe.soc == "generic"
    assert moe.shared_expert_num == 0 and moe.moe_expert_num == 4 and moe.ep_world_size == 1
    doc = moedist.Distributor.__init__.__doc__
    for name in moedist.Distributor.keywords:
        getattr(moe, name)
        assert f"{name}=" in doc
    with pytest.raises(TypeError, match="unexpected keyword argument 'zero_experts'"):
        moedist.Distributor(comm, 4, zero_experts=1)
    with pytest.raises(TypeError, match="quant_mode must be an int"):
        moedist.Distributor(comm, 4, quant_mode="2")
    with pytest.raises(moedist.Error) as info:
        moedist.Distributor(comm, 4, api=3)
    assert info.value.code == moedist.INNER_TILING and "api" in info.value.message


def test_a_v2_distributor_takes_masks_and_v2_tensors_as_keywords():
    comm = moedist.local_group(1)[0]
    moe = moedist.Distributor(comm, 2, api=2, zero_expert_num=1, copy_expert_num=1)
    bs, k, h = 4, 2, 16
    x_bits, _, _ = ref.inputs(0, bs, h, 2, 1)
    ids = np.array([[0, 2], [1, 3], [3, 3], [0, 0]], np.int32)  # 2: zero expert, 3: copy expert
    mask = np.array([True, True, True, False])                  # numpy bool, a prefix
    out = moedist.allocate_outputs(moe, bs, k, h)
    assert out["expand_idx"] is None and out["assist_info"].shape == (3 * moe.shapes(bs, k, h)["capacity"],)
    moedist.dispatch(moe, (x_bits, "bfloat16"), ids, x_active_mask=mask, **out)
    np.testing.assert_array_equal(out["expert_token_nums"], [1, 2])  # type 0: prefix sums
    np.testing.assert_array_equal(out["assist_info"][:6], [0, 0, 0, 0, 1, 0])
    x = torch.zeros((bs, h), dtype=torch.bfloat16)
    perf = torch.zeros(1, dtype=torch.int64)
    ori = torch.ones((bs, h), dtype=torch.bfloat16)
    expand_x = out["expand_x"][0].view(np.int16)
    moedist.combine(moe, (expand_x, "bfloat16"), ids, None, out["ep_recv_counts"], np.zeros((0, k), np.float32),
                    x, assist_info=out["assist_info"], x_active_mask=torch.from_numpy(mask), ori_x=ori,
                    performance_info=perf)
    xs = torch.from_numpy(x_bits.view(np.int16)).view(torch.bfloat16)
    assert torch.equal(x[0], xs[0]) and torch.equal(x[1], (xs[1].float() + 1).to(torch.bfloat16))
    assert torch.equal(x[2], torch.full((h,), 2.0, dtype=torch.bfloat16)) and not x[3].any()
    with pytest.raises(TypeError, match="unexpected keyword argument 'assist'"):
        moedist.dispatch(moe, (x_bits, "bfloat16"), ids, assist=None, **out)
    v1 = moedist.Distributor(comm, 2)
    with pytest.raises(moedist.Error) as info:  # V1 still needs expand_idx
        moedist.dispatch(v1, (x_bits, "bfloat16"), ids, out["expand_x"], None, out["expert_token_nums"],
                         out["ep_recv_counts"])
    assert info.value.code == moedist.NULLPTR and "expand_idx" in info.value.message
