"""torch_npu's MoE dispatch/combine names on CPU, over torch.distributed groups.

    import moedist.torch as torch_npu            # or: from moedist.torch import ...
    name = torch_npu.comm_name(group)            # every member, once: like get_hccl_comm_name
    expand_x, dynamic_scales, expand_idx, expert_token_nums, ep_recv_counts, tp_recv_counts, \
        expand_scales = torch_npu.npu_moe_distribute_dispatch(x, expert_ids, name, W, r, E, ...)
    x = torch_npu.npu_moe_distribute_combine(expert_out, expert_ids, expand_idx, ep_recv_counts,
                                             expert_scales, name, W, r, E, ...)

The V2 family (docs/contract.md §10) has torch_npu's names too: npu_moe_distribute_dispatch_v2
(returns assist_info_for_combine where V1 returns expand_idx), npu_moe_distribute_combine_v2 and
npu_moe_distribute_combine_add_rms_norm, with masks, N shared experts, zero/copy/const experts,
unweighted combine and performance_info.

Outputs are allocated per call with torch_npu's shapes (expand_x has max(tp_world_size, 1) * A
rows; rows past the real ones are left as allocated, as on the device, unless zero padding is
asked for with MOEDIST_ZERO_PADDING=1). torch 1.13 has no fp8 dtype: fp8 outputs are uint8 tensors
holding e4m3fn bytes. For no allocation per call use moedist.Distributor and moedist.dispatch /
moedist.combine with your own outputs.
"""

import os
import uuid
import weakref

import torch
import torch.distributed as dist

import moedist
from moedist import INNER_TILING, INVALID_PARAM, NULLPTR, error

__all__ = [
    "MoEPrepareAndFinalize",
    "comm_name",
    "destroy",
    "empty",
    "install_as_torch_npu",
    "npu_moe_distribute_combine",
    "npu_moe_distribute_combine_add_rms_norm",
    "npu_moe_distribute_combine_setup",
    "npu_moe_distribute_combine_teardown",
    "npu_moe_distribute_combine_v2",
    "npu_moe_distribute_dispatch",
    "npu_moe_distribute_dispatch_setup",
    "npu_moe_distribute_dispatch_teardown",
    "npu_moe_distribute_dispatch_v2",
]

_names = {}  # torch group -> moedist group name (one bootstrap per group)
_communicators = {}  # group name -> Communicator: keeps this process's endpoint alive
_distributors = {}  # (names, attributes) -> Distributor
_timeouts = {}  # group name -> timeout of its calls (None: MOEDIST_TIMEOUT_MS)


def comm_name(group=None, rank=None, timeout=None):
    """The moedist group name of a torch.distributed group (gloo), for group_ep / group_tp.

    Every member calls it once (later calls return the same name at no cost), like torch_npu's
    group._get_backend(device).get_hccl_comm_name(rank): the first call bootstraps a moedist
    process group over the torch group (two all-gathers of a few bytes; members on several hosts
    get shared memory within each host and UCX between them, over four all-gathers). `rank`,
    when given, is the caller's global rank, as torch_npu takes it; it must be this process's. `timeout` (seconds or a
    datetime.timedelta, as torch.distributed takes it) bounds every wait of this group's calls;
    None: MOEDIST_TIMEOUT_MS (30 s)."""
    group = group if group is not None else dist.group.WORLD
    if rank is not None and rank != dist.get_rank():
        raise error(INNER_TILING, f"comm_name rank must be this process's global rank {dist.get_rank()}, got {rank}")
    if group in _names:
        if timeout is not None:
            _timeouts[_names[group]] = timeout
        return _names[group]
    size = dist.get_world_size(group)
    me = dist.get_rank(group)
    proposal = [None] * size
    dist.all_gather_object(proposal, f"torch-{os.getpid()}-{uuid.uuid4().hex[:16]}", group=group)
    name = proposal[0]

    def all_gather(mine):
        parts = [None] * size
        dist.all_gather_object(parts, mine, group=group)
        return parts

    comm = moedist.join(me, size, name, all_gather)
    _communicators[comm.name] = comm
    _names[group] = comm.name
    _timeouts[comm.name] = timeout
    return comm.name


def destroy(group=None):
    """Forgets this process's moedist group of a torch.distributed group (HcclCommDestroy's
    counterpart), so a broken group can be made again: the next comm_name(group) bootstraps a new
    one over the same torch group. Every member calls it."""
    group = group if group is not None else dist.group.WORLD
    name = _names.pop(group, None)
    if name is None:
        return
    _communicators.pop(name, None)
    _timeouts.pop(name, None)
    for key in [k for k in _distributors if name in (k[0], k[3])]:
        del _distributors[key]


class _Backend:
    """What torch_npu's ProcessGroup._get_backend(device) gives model code: get_hccl_comm_name."""

    def __init__(self, group):
        self._group = group

    def get_hccl_comm_name(self, rank=None):
        return comm_name(self._group, rank)


def install_as_torch_npu():
    """Makes `import torch_npu` give this module and adds ProcessGroup._get_backend(device)
    .get_hccl_comm_name(rank), so model code written for torch_npu runs unchanged on CPUs:

        import moedist.torch; moedist.torch.install_as_torch_npu()
        import torch_npu                                  # this module
        name = group._get_backend(torch.device("npu")).get_hccl_comm_name(rank)

    torch.device("npu") needs a torch that can name its private backend (2.1+); on older ones
    model code must pass any device (the argument is ignored). Every function of __all__ comes
    along, the V2 ones included, so hasattr(torch_npu, "npu_moe_distribute_dispatch_v2") (how
    vllm-ascend picks V2) is true. Returns this module."""
    import sys

    module = sys.modules[__name__]
    sys.modules["torch_npu"] = module
    if not hasattr(dist.ProcessGroup, "_get_backend"):
        dist.ProcessGroup._get_backend = lambda self, device=None: _Backend(self)
    rename = getattr(getattr(torch, "utils", None), "rename_privateuse1_backend", None)
    if rename is not None:
        try:
            rename("npu")
        except Exception:  # noqa: BLE001 - already renamed, or another backend owns the name
            pass
    return module


def _communicator(name, rank, world_size, what):
    if not name:
        raise error(NULLPTR, f"{what} must name a group, got an empty name")
    comm = _communicators.get(name)
    if comm is None or comm.rank != rank:
        comm = moedist.Communicator.find(name, rank)
    if comm.size != world_size:
        raise error(INNER_TILING, f"{what} world size must be the group's {comm.size}, got {world_size}")
    return comm


def _distributor(group_ep, ep_world_size, ep_rank_id, group_tp, tp_world_size, tp_rank_id, **attributes):
    key = (group_ep, ep_world_size, ep_rank_id, group_tp, tp_rank_id, tp_world_size, tuple(sorted(attributes.items())))
    moe = _distributors.get(key)
    if moe is None:
        ep = _communicator(group_ep, ep_rank_id, ep_world_size, "group_ep")
        tp = _communicator(group_tp, tp_rank_id, tp_world_size, "group_tp") if tp_world_size > 1 else None
        moe = moedist.Distributor(ep, tp=tp, timeout=_timeouts.get(group_ep), **attributes)
        _distributors[key] = moe
    return moe


def _attributes(call, **fixed):
    """The Distributor config keywords among a torch_npu call's arguments (`call` is the call's
    locals()), under their own names: moedist.Distributor.keywords is the module's one table of
    them. `fixed` adds or overrides (api=2)."""
    out = {name: call[name] for name in moedist.Distributor.keywords if name in call}
    out["moe_expert_num"] = call["moe_expert_num"]
    out.update(fixed)
    return out


def empty(shape, dtype):
    """A torch tensor in moedist's shared-memory arena: in a process group peers read and write it
    in place, where other memory is staged once per call."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    count = 1
    for extent in shape:
        count *= int(extent)
    raw = torch.from_numpy(moedist._moedist._shared_array(count * itemsize))
    return raw.view(dtype).reshape(tuple(int(e) for e in shape))


_FP8 = getattr(torch, "float8_e4m3fn", None)


def _expand_outputs(shapes, quant_mode, x_dtype):
    """dispatch's expand_x and dynamic_scales for `quant_mode` (torch_npu's shapes): the tensors
    returned and the arguments moedist takes for them (8-bit formats named)."""
    if quant_mode == 0:
        expand_x = empty(shapes["expand_x"], x_dtype)
        expand_x_arg = expand_x
    elif quant_mode in (1, 2):
        expand_x = empty(shapes["expand_x"], torch.int8)
        expand_x_arg = expand_x
    elif quant_mode in (3, 4):
        expand_x = empty(shapes["expand_x"], _FP8 or torch.uint8)
        expand_x_arg = expand_x if _FP8 else (expand_x, "float8_e4m3fn")
    else:
        raise error(INNER_TILING, f"quant_mode must be in [0, 4], got {quant_mode}")
    if quant_mode == 2:
        dynamic_scales = empty(shapes["dynamic_scales"], torch.float32)
    elif quant_mode == 3:
        dynamic_scales = empty(shapes["dynamic_scales_per_group"], torch.float32)
    elif quant_mode == 4:
        dynamic_scales = empty(shapes["dynamic_scales_mx"], torch.uint8)
    else:
        dynamic_scales = torch.empty((0,), dtype=torch.float32)
    scales_arg = dynamic_scales if dynamic_scales.numel() else None
    if quant_mode == 4:
        scales_arg = (dynamic_scales, "float8_e8m0")
    return expand_x, expand_x_arg, dynamic_scales, scales_arg


def npu_moe_distribute_dispatch(x, expert_ids, group_ep, ep_world_size, ep_rank_id, moe_expert_num, *,
                                scales=None, x_active_mask=None, expert_scales=None, group_tp="",
                                tp_world_size=0, tp_rank_id=0, expert_shard_type=0, shared_expert_num=1,
                                shared_expert_rank_num=0, quant_mode=0, global_bs=0,
                                expert_token_nums_type=1):
    """torch_npu.npu_moe_distribute_dispatch on CPU. Returns (expand_x, dynamic_scales, expand_idx,
    expert_token_nums, ep_recv_counts, tp_recv_counts, expand_scales). x_active_mask is reserved
    (ignored), as in the aclnn contract."""
    if expert_shard_type != 0:
        raise error(INNER_TILING, f"expert_shard_type must be 0, got {expert_shard_type}")
    if x.dim() != 2 or expert_ids.dim() != 2:
        raise error(INNER_TILING, f"x and expert_ids must be 2-D, got {tuple(x.shape)} and {tuple(expert_ids.shape)}")
    moe = _distributor(group_ep, ep_world_size, ep_rank_id, group_tp, tp_world_size, tp_rank_id,
                       **_attributes(locals()))
    bs, hidden = x.shape
    top_k = expert_ids.shape[1]
    shapes = moedist.output_shapes(moe, bs, top_k, hidden)
    expand_x, expand_x_arg, dynamic_scales, scales_arg = _expand_outputs(shapes, quant_mode, x.dtype)
    expand_idx = torch.empty(shapes["expand_idx"], dtype=torch.int32)
    expert_token_nums = torch.empty(shapes["expert_token_nums"], dtype=torch.int64)
    ep_recv_counts = empty(shapes["ep_recv_counts"], torch.int32)
    tp_recv_counts = torch.zeros(shapes["tp_recv_counts"], dtype=torch.int32)
    if expert_scales is not None:
        expand_scales = empty(shapes["expand_scales"], torch.float32)
    else:
        expand_scales = torch.empty((0,), dtype=torch.float32)
    moe.dispatch(x, expert_ids, expand_x_arg, expand_idx, expert_token_nums, ep_recv_counts,
                 scales=scales, expert_scales=expert_scales, dynamic_scales=scales_arg,
                 tp_recv_counts=tp_recv_counts if tp_recv_counts.numel() else None,
                 expand_scales=expand_scales if expand_scales.numel() else None)
    return expand_x, dynamic_scales, expand_idx, expert_token_nums, ep_recv_counts, tp_recv_counts, expand_scales


def npu_moe_distribute_combine(expand_x, expert_ids, expand_idx, ep_send_counts, expert_scales, group_ep,
                               ep_world_size, ep_rank_id, moe_expert_num, *, tp_send_counts=None,
                               x_active_mask=None, activation_scale=None, weight_scale=None, group_list=None,
                               expand_scales=None, shared_expert_x=None, group_tp="", tp_world_size=0,
                               tp_rank_id=0, expert_shard_type=0, shared_expert_num=1,
                               shared_expert_rank_num=0, global_bs=0, out_dtype=0, comm_quant_mode=0,
                               group_list_type=0):
    """torch_npu.npu_moe_distribute_combine on CPU. Returns x (BS, H) in expand_x's dtype.

    x_active_mask, activation_scale, weight_scale, group_list and expand_scales are reserved by the
    aclnn contract (docs/contract.md §4): accepted and ignored, as the device does. shared_expert_x (a later
    torch_npu argument: shared-expert output added by combine) is not part of the contract and
    raises."""
    if shared_expert_x is not None:
        raise error(INVALID_PARAM, "shared_expert_x is not supported by moedist (not in the aclnn "
                                   "combine contract), got a tensor; add the shared expert's output to x instead")
    if out_dtype != 0:
        raise error(INNER_TILING, f"out_dtype must be 0, got {out_dtype}")
    if expert_shard_type != 0:
        raise error(INNER_TILING, f"expert_shard_type must be 0, got {expert_shard_type}")
    if group_list_type not in (0, 1):
        raise error(INNER_TILING, f"group_list_type must be 0 or 1, got {group_list_type}")
    moe = _distributor(group_ep, ep_world_size, ep_rank_id, group_tp, tp_world_size, tp_rank_id,
                       **_attributes(locals()))
    x = torch.empty((expert_ids.shape[0], expand_x.shape[1]), dtype=expand_x.dtype)
    moe.combine(expand_x, expert_ids, expand_idx, ep_send_counts, expert_scales, x,
                tp_send_counts=tp_send_counts if tp_world_size > 1 else None)
    return x


# --- The V2 family (docs/contract.md §10): what torch_npu's *_v2 functions reach ---------------


def _no_elastic_info(elastic_info):
    if elastic_info is not None:
        raise error(INNER_TILING, "elastic_info must be None (elastic rank exclusion is not supported, as "
                                  "Ascend's newest documentation says of its own ops), got a tensor")


def _check_2d(**tensors):
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor) or t.dim() != 2:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise error(INNER_TILING, f"{name} must be a 2-D tensor, got {got}")


def _token_rows(shape, dtype, x_active_mask):
    """A combine output. With a mask the rows of inactive tokens are left untouched
    (docs/contract.md §10.5): allocated zeroed, so they read 0."""
    return torch.zeros(shape, dtype=dtype) if x_active_mask is not None else torch.empty(shape, dtype=dtype)


def _weights(expert_scales, top_k):
    """expert_scales as the core takes it: (BS, K), or an empty tensor given as (0, K) (any empty
    tensor asks for the unweighted sum)."""
    if isinstance(expert_scales, torch.Tensor) and expert_scales.numel() == 0 and expert_scales.dim() != 2:
        return expert_scales.reshape(0, top_k)
    return expert_scales


def npu_moe_distribute_dispatch_v2(x, expert_ids, group_ep, ep_world_size, ep_rank_id, moe_expert_num, *,
                                   scales=None, x_active_mask=None, expert_scales=None, elastic_info=None,
                                   performance_info=None, group_tp="", tp_world_size=0, tp_rank_id=0,
                                   expert_shard_type=0, shared_expert_num=1, shared_expert_rank_num=0,
                                   quant_mode=0, global_bs=0, expert_token_nums_type=1, comm_alg="",
                                   zero_expert_num=0, copy_expert_num=0, const_expert_num=0):
    """torch_npu.npu_moe_distribute_dispatch_v2 on CPU (docs/contract.md §10). Returns (expand_x,
    dynamic_scales, assist_info_for_combine, expert_token_nums, ep_recv_counts, tp_recv_counts,
    expand_scales).

    x_active_mask: None, a (BS,) bool prefix (true tokens first) or a (BS, K) bool mask of entries.
    Ids in [E, E + zero + copy + const) are the special experts (never sent). shared_expert_num
    shared experts live on the shared_expert_rank_num first ranks. performance_info (W,) int64 is
    added to (microseconds waited per peer). elastic_info must be None (561002).
    assist_info_for_combine has torch_npu's shape (max(BS*K, 128*A),) int32 (the contract needs
    3*A; A = rows this rank can receive); only combine reads it."""
    _no_elastic_info(elastic_info)
    _check_2d(x=x, expert_ids=expert_ids)
    moe = _distributor(group_ep, ep_world_size, ep_rank_id, group_tp, tp_world_size, tp_rank_id,
                       **_attributes(locals(), api=2))
    bs, hidden = x.shape
    top_k = expert_ids.shape[1]
    shapes = moedist.output_shapes(moe, bs, top_k, hidden)
    expand_x, expand_x_arg, dynamic_scales, scales_arg = _expand_outputs(shapes, quant_mode, x.dtype)
    assist_info = torch.empty((max(bs * top_k, 128 * shapes["capacity"]),), dtype=torch.int32)
    expert_token_nums = torch.empty(shapes["expert_token_nums"], dtype=torch.int64)
    ep_recv_counts = empty(shapes["ep_recv_counts"], torch.int32)
    # torch_npu's (tp_world_size,): written only with TP = 2.
    tp_recv_counts = torch.zeros(shapes["tp_recv_counts"] if moe.tp_size == 2 else (min(max(tp_world_size, 0), 1),),
                                 dtype=torch.int32)
    if expert_scales is not None:
        expand_scales = empty(shapes["expand_scales"], torch.float32)
    else:
        expand_scales = torch.empty((0,), dtype=torch.float32)
    moe.dispatch(x, expert_ids, expand_x_arg, None, expert_token_nums, ep_recv_counts,
                 scales=scales, x_active_mask=x_active_mask, expert_scales=expert_scales,
                 dynamic_scales=scales_arg, tp_recv_counts=tp_recv_counts if moe.tp_size == 2 else None,
                 expand_scales=expand_scales if expand_scales.numel() else None, assist_info=assist_info,
                 performance_info=performance_info)
    return expand_x, dynamic_scales, assist_info, expert_token_nums, ep_recv_counts, tp_recv_counts, expand_scales


def _combine_v2(moe, expand_x, expert_ids, assist_info, ep_send_counts, expert_scales, x, tensors):
    """One V2 combine into x; `tensors` are the call's optional tensors by moedist's keyword
    names (the same as torch_npu's)."""
    if moe.tp_size != 2:
        tensors["tp_send_counts"] = None  # torch_npu passes a (1,) tensor at T = 1: not read
    moe.combine(expand_x, expert_ids, None, ep_send_counts, _weights(expert_scales, expert_ids.shape[1]), x,
                assist_info=assist_info, **{k: v for k, v in tensors.items() if v is not None})
    return x


def npu_moe_distribute_combine_v2(expand_x, expert_ids, assist_info_for_combine, ep_send_counts, expert_scales,
                                  group_ep, ep_world_size, ep_rank_id, moe_expert_num, *, tp_send_counts=None,
                                  x_active_mask=None, expand_scales=None, shared_expert_x=None, elastic_info=None,
                                  ori_x=None, const_expert_alpha_1=None, const_expert_alpha_2=None,
                                  const_expert_v=None, performance_info=None, group_tp="", tp_world_size=0,
                                  tp_rank_id=0, expert_shard_type=0, shared_expert_num=1, shared_expert_rank_num=0,
                                  global_bs=0, comm_quant_mode=0, comm_alg="", zero_expert_num=0,
                                  copy_expert_num=0, const_expert_num=0):
    """torch_npu.npu_moe_distribute_combine_v2 on CPU (docs/contract.md §10.5). Returns x (BS, H)
    in expand_x's dtype.

    Pass dispatch_v2's expert_ids, x_active_mask and outputs. An empty expert_scales (numel 0)
    sums the expert outputs unweighted. shared_expert_x (S = 0 only) is added with weight 1;
    ori_x feeds the copy and const experts; const_expert_alpha_1/2 are (Q,) or (Q, H) and
    const_expert_v (Q, H). expand_scales is reserved (ignored). With a mask, rows of inactive
    tokens come back zero. elastic_info must be None (561002)."""
    _no_elastic_info(elastic_info)
    _check_2d(expand_x=expand_x, expert_ids=expert_ids)
    moe = _distributor(group_ep, ep_world_size, ep_rank_id, group_tp, tp_world_size, tp_rank_id,
                       **_attributes(locals(), api=2))
    x = _token_rows((expert_ids.shape[0], expand_x.shape[1]), expand_x.dtype, x_active_mask)
    return _combine_v2(moe, expand_x, expert_ids, assist_info_for_combine, ep_send_counts, expert_scales, x, dict(
        tp_send_counts=tp_send_counts, x_active_mask=x_active_mask, shared_expert_x=shared_expert_x, ori_x=ori_x,
        const_expert_alpha_1=const_expert_alpha_1, const_expert_alpha_2=const_expert_alpha_2,
        const_expert_v=const_expert_v, performance_info=performance_info))


def npu_moe_distribute_combine_add_rms_norm(expand_x, expert_ids, expand_idx, ep_send_counts, expert_scales,
                                            residual_x, gamma, group_ep, ep_world_size, ep_rank_id, moe_expert_num,
                                            *, tp_send_counts=None, x_active_mask=None, activation_scale=None,
                                            weight_scale=None, group_list=None, expand_scales=None,
                                            shared_expert_x=None, elastic_info=None, ori_x=None,
                                            const_expert_alpha_1=None, const_expert_alpha_2=None,
                                            const_expert_v=None, group_tp="", tp_world_size=0, tp_rank_id=0,
                                            expert_shard_type=0, shared_expert_num=1, shared_expert_rank_num=0,
                                            global_bs=0, out_dtype=0, comm_quant_mode=0, group_list_type=0,
                                            comm_alg="", norm_eps=1e-6, zero_expert_num=0, copy_expert_num=0,
                                            const_expert_num=0):
    """torch_npu.npu_moe_distribute_combine_add_rms_norm on CPU (docs/contract.md §10.7): combine_v2,
    then x = combine + residual_x and y = RMSNorm(x) * gamma. expand_idx is dispatch_v2's
    assist_info_for_combine (torch_npu's name). residual_x (BS, 1, H) and gamma (H,) in expand_x's
    dtype. Returns (y (BS, 1, H), rstd (BS, 1, 1) float32, x (BS, 1, H)); with a mask, rows of
    inactive tokens come back zero. activation_scale, weight_scale, group_list and expand_scales
    are reserved (ignored); out_dtype must be 0; elastic_info must be None (561002)."""
    _no_elastic_info(elastic_info)
    _check_2d(expand_x=expand_x, expert_ids=expert_ids)
    if out_dtype != 0:
        raise error(INNER_TILING, f"out_dtype must be 0, got {out_dtype}")
    if group_list_type not in (0, 1):
        raise error(INNER_TILING, f"group_list_type must be 0 or 1, got {group_list_type}")
    moe = _distributor(group_ep, ep_world_size, ep_rank_id, group_tp, tp_world_size, tp_rank_id,
                       **_attributes(locals(), api=2))
    bs, hidden = expert_ids.shape[0], expand_x.shape[1]
    y = _token_rows((bs, 1, hidden), expand_x.dtype, x_active_mask)
    rstd = _token_rows((bs, 1, 1), torch.float32, x_active_mask)
    x = _token_rows((bs, 1, hidden), expand_x.dtype, x_active_mask)
    _combine_v2(moe, expand_x, expert_ids, expand_idx, ep_send_counts, expert_scales, x, dict(
        tp_send_counts=tp_send_counts, x_active_mask=x_active_mask, shared_expert_x=shared_expert_x, ori_x=ori_x,
        const_expert_alpha_1=const_expert_alpha_1, const_expert_alpha_2=const_expert_alpha_2,
        const_expert_v=const_expert_v, residual_x=residual_x, gamma=gamma, y_out=y, rstd_out=rstd,
        norm_eps=float(norm_eps)))
    return y, rstd, x


# --- Split calls (docs/contract.md §13): torch_npu's setup / teardown names ----------------------
#
# dispatch_setup runs the send half of a V2 dispatch (this rank's rows are published and the call
# returns); dispatch_teardown the receive half. torch_npu's combine_setup gets neither the
# weights nor the mask (only combine_teardown does), so moedist's combine_setup records its
# inputs and combine_teardown runs the whole combine. y, quant_expand_x and comm_cmd_info are
# allocated with torch_npu's shapes as moedist's scratch; comm_cmd_info's first int32 names the
# pending call.

_pending = {}  # comm_cmd_info token -> what teardown needs
_recv_counts = {}  # id(assist_info_for_combine) -> (dispatch's ep_recv_counts, tp counts)
_next_token = [1]


def _token(comm_cmd_info, what):
    if not isinstance(comm_cmd_info, torch.Tensor) or comm_cmd_info.numel() < 1:
        raise error(INVALID_PARAM, f"{what}: comm_cmd_info must be the tensor its setup returned")
    token = int(comm_cmd_info.view(-1)[0])
    if token not in _pending:
        raise error(INVALID_PARAM, f"{what}: comm_cmd_info must be the tensor a setup returned and no teardown "
                                   f"has consumed, got an unknown one ({token})")
    return token


def _comm_cmd_info(entries):
    info = torch.zeros((max(int(entries), 1),), dtype=torch.int32)
    token = _next_token[0]
    _next_token[0] += 1
    info[0] = token
    return info, token


def _expand_idx_of(expert_ids, x_active_mask):
    """V1's expandIdx over the active entries: for each entry, how many earlier active entries of
    this rank have its id (inactive entries get 0)."""
    ids = expert_ids.reshape(-1).long()
    if x_active_mask is None:
        active = torch.ones_like(ids, dtype=torch.bool)
    elif x_active_mask.dim() == 1:
        active = x_active_mask.bool().repeat_interleave(expert_ids.shape[1])
    else:
        active = x_active_mask.bool().reshape(-1)
    if ids.numel() == 0:
        return torch.zeros((0,), dtype=torch.int32)
    width = int(ids.max()) + 1 if ids.numel() else 1
    onehot = torch.zeros((ids.numel(), max(width, 1)), dtype=torch.int32)
    onehot[torch.arange(ids.numel()), ids.clamp(min=0)] = active.to(torch.int32)
    before = torch.cumsum(onehot, dim=0) - onehot
    out = before[torch.arange(ids.numel()), ids.clamp(min=0)]
    return torch.where(active, out, torch.zeros_like(out)).to(torch.int32)


def npu_moe_distribute_dispatch_setup(x, expert_ids, group_ep, ep_world_size, ep_rank_id, moe_expert_num, *,
                                      scales=None, x_active_mask=None, expert_shard_type=0, shared_expert_num=1,
                                      shared_expert_rank_num=0, quant_mode=0, global_bs=0, comm_type=0, comm_alg="",
                                      y_dtype=None):
    """torch_npu.npu_moe_distribute_dispatch_setup on CPU: the send half of a V2 dispatch (at most
    2 calls of a group in flight). Returns (y, expand_idx, comm_cmd_info); pass them, x and
    expert_ids untouched to npu_moe_distribute_dispatch_teardown (in call order)."""
    _check_2d(x=x, expert_ids=expert_ids)
    if expert_shard_type != 0:
        raise error(INNER_TILING, f"expert_shard_type must be 0, got {expert_shard_type}")
    moe = _distributor(group_ep, ep_world_size, ep_rank_id, "", 0, 0,
                       **_attributes(locals(), api=2, expert_token_nums_type=1))
    bs, hidden = x.shape
    top_k = expert_ids.shape[1]
    n = shared_expert_num if shared_expert_rank_num > 0 else 0
    shapes = moedist.output_shapes(moe, bs, top_k, hidden)
    expand_x, expand_x_arg, dynamic_scales, scales_arg = _expand_outputs(shapes, quant_mode, x.dtype)
    assist = torch.empty((max(bs * top_k, 128 * shapes["capacity"]),), dtype=torch.int32)
    token_nums = torch.empty(shapes["expert_token_nums"], dtype=torch.int64)
    recv = empty(shapes["ep_recv_counts"], torch.int32)
    pending = moe.dispatch_send(x, expert_ids, expand_x_arg, None, token_nums, recv, scales=scales,
                                x_active_mask=x_active_mask, dynamic_scales=scales_arg, assist_info=assist)
    message = -(-hidden // 256) * 256 if quant_mode == 0 else -(-(-(-hidden // 32) * 32 + 4) // 512) * 512
    y = torch.empty((bs * (top_k + n), message), dtype=y_dtype or (x.dtype if quant_mode == 0 else torch.int8))
    local = shapes["expert_token_nums"][0]
    info, token = _comm_cmd_info((bs * (top_k + n) + ep_world_size * local) * 16)
    _pending[token] = dict(pending=pending, expand_x=expand_x, dynamic_scales=dynamic_scales, assist=assist,
                           token_nums=token_nums, recv=recv)
    return y, _expand_idx_of(expert_ids, x_active_mask), info


def npu_moe_distribute_dispatch_teardown(x, y, expert_ids, comm_cmd_info, group_ep, ep_world_size, ep_rank_id,
                                         moe_expert_num, *, expert_shard_type=0, shared_expert_num=1,
                                         shared_expert_rank_num=0, quant_mode=0, global_bs=0,
                                         expert_token_nums_type=1, comm_type=0, comm_alg=""):
    """torch_npu.npu_moe_distribute_dispatch_teardown on CPU: the receive half. Returns (expand_x,
    dynamic_scales, assist_info_for_combine, expert_token_nums), bit for bit dispatch_v2's."""
    token = _token(comm_cmd_info, "npu_moe_distribute_dispatch_teardown")
    call = _pending[token]
    call["pending"].wait()  # raises (and the call stays pending) when an earlier one is not done
    del _pending[token]
    nums = call["token_nums"]
    if expert_token_nums_type == 0:
        nums = torch.cumsum(nums, 0)
    elif expert_token_nums_type != 1:
        raise error(INNER_TILING, f"expert_token_nums_type must be 0 or 1, got {expert_token_nums_type}")
    assist = call["assist"]
    _recv_counts[id(assist)] = call["recv"]
    weakref.finalize(assist, _recv_counts.pop, id(assist), None)
    return call["expand_x"], call["dynamic_scales"], assist, nums


def npu_moe_distribute_combine_setup(expand_x, expert_ids, assist_info_for_combine, group_ep, ep_world_size,
                                     ep_rank_id, moe_expert_num, *, expert_shard_type=0, shared_expert_num=1,
                                     shared_expert_rank_num=0, global_bs=0, comm_quant_mode=0, comm_type=0,
                                     comm_alg=""):
    """torch_npu.npu_moe_distribute_combine_setup on CPU. Returns (quant_expand_x, comm_cmd_info).
    Records the call: the weights and mask come with the teardown, which runs the combine."""
    _check_2d(expand_x=expand_x, expert_ids=expert_ids)
    recv = _recv_counts.get(id(assist_info_for_combine))
    if recv is None:
        raise error(INVALID_PARAM, "npu_moe_distribute_combine_setup: assist_info_for_combine must be the tensor "
                                   "npu_moe_distribute_dispatch_teardown returned")
    rows, hidden = expand_x.shape
    quant = torch.empty((rows, -(-(-(-hidden // 32) * 32 + -(-hidden // 8) * 8 // 8 * 4) // 512) * 512),
                        dtype=torch.int8)
    info, token = _comm_cmd_info((rows + ep_world_size) * 16)
    _pending[token] = dict(expand_x=expand_x, assist=assist_info_for_combine, recv=recv, kwargs=dict(
        shared_expert_num=shared_expert_num, shared_expert_rank_num=shared_expert_rank_num, global_bs=global_bs,
        comm_quant_mode=comm_quant_mode, comm_alg=comm_alg))
    return quant, info


def npu_moe_distribute_combine_teardown(expand_x, quant_expand_x, expert_ids, expand_idx, expert_scales,
                                        comm_cmd_info, group_ep, ep_world_size, ep_rank_id, moe_expert_num, *,
                                        x_active_mask=None, shared_expert_x=None, expert_shard_type=0,
                                        shared_expert_num=1, shared_expert_rank_num=0, global_bs=0,
                                        comm_quant_mode=0, comm_type=0, comm_alg=""):
    """torch_npu.npu_moe_distribute_combine_teardown on CPU: the combine (combine_v2's x, bit for
    bit). expand_idx is the setup's (not read: the rows are found through assist_info)."""
    token = _token(comm_cmd_info, "npu_moe_distribute_combine_teardown")
    call = _pending.pop(token)
    return npu_moe_distribute_combine_v2(
        call["expand_x"], expert_ids, call["assist"], call["recv"], expert_scales, group_ep, ep_world_size,
        ep_rank_id, moe_expert_num, x_active_mask=x_active_mask, shared_expert_x=shared_expert_x,
        expert_shard_type=expert_shard_type, **call["kwargs"])


class MoEPrepareAndFinalize:
    """The all-to-all of an expert-parallel MoE layer as vLLM's modular kernel splits it:

        [quantize + dispatch]   prepare(hidden_states, topk_ids, topk_weights)
        experts                 each local expert e runs on expert_x[offsets[e]:offsets[e+1]]
        [combine]               finalize(expert_outputs, handle)

    One object per rank and layer configuration; `group` is a torch.distributed group (default
    WORLD), whose rank r hosts experts [r*L, (r+1)*L) with L = num_experts / world size.
    quant: None (bf16/fp16 rows), "int8" (per-token dynamic int8, docs/contract.md §5 mode 2), "fp8" (per-group
    e4m3fn, mode 3) or "mxfp8" (MX e4m3fn, mode 4); scales come back as expert_x_scale.
    max_num_tokens: the most tokens any rank passes to one prepare (ranks may then pass different
    numbers, globalBs = max_num_tokens * world size); None: every rank passes the same number."""

    _QUANT_MODES = {None: 0, "int8": 2, "fp8": 3, "mxfp8": 4}

    def __init__(self, num_experts, group=None, quant=None, max_num_tokens=None):
        if quant not in self._QUANT_MODES:
            raise error(INVALID_PARAM, f"quant must be one of None, 'int8', 'fp8', 'mxfp8', got {quant!r}")
        self.group_name = comm_name(group)
        group = group if group is not None else dist.group.WORLD
        self.world_size = dist.get_world_size(group)
        self.rank = dist.get_rank(group)
        self.num_experts = num_experts
        self.quant_mode = self._QUANT_MODES[quant]
        self.global_bs = 0 if max_num_tokens is None else int(max_num_tokens) * self.world_size

    @property
    def num_local_experts(self):
        return self.num_experts // self.world_size

    def prepare(self, hidden_states, topk_ids, topk_weights, quant=...):
        """Dispatch: returns (expert_x, expert_x_scale, expert_num_tokens, handle). expert_x holds
        the rows this rank's experts must process, grouped by local expert (expert_num_tokens[e]
        rows each); expert_x_scale their scales (None without quant). `quant` overrides the
        constructor's for this call."""
        quant_mode = self.quant_mode
        if quant is not ...:
            if quant not in self._QUANT_MODES:
                raise error(INVALID_PARAM, f"quant must be one of None, 'int8', 'fp8', 'mxfp8', got {quant!r}")
            quant_mode = self._QUANT_MODES[quant]
        topk_ids = topk_ids.to(torch.int32).contiguous()
        topk_weights = topk_weights.to(torch.float32).contiguous()
        (expand_x, dynamic_scales, expand_idx, expert_token_nums, ep_recv_counts, _tp_recv_counts,
         _expand_scales) = npu_moe_distribute_dispatch(
            hidden_states.contiguous(), topk_ids, self.group_name, self.world_size, self.rank, self.num_experts,
            quant_mode=quant_mode, global_bs=self.global_bs, expert_token_nums_type=1)
        rows = int(expert_token_nums.sum())
        scale = dynamic_scales[:rows] if dynamic_scales.numel() else None
        handle = (topk_ids, topk_weights, expand_idx, ep_recv_counts, expand_x.shape[0], hidden_states.dtype,
                  self.group_name)
        return expand_x[:rows], scale, expert_token_nums, handle

    def finalize(self, expert_outputs, handle):
        """Combine: expert_outputs (the rows of prepare's expert_x, in its order, in the hidden
        states' dtype) weighted by topk_weights and summed per token (docs/contract.md §4). Returns (BS, H)."""
        topk_ids, topk_weights, expand_idx, ep_recv_counts, capacity_rows, dtype, group_name = handle
        if group_name != self.group_name:
            raise error(INNER_TILING, f"handle must come from a prepare on this layer's group '{self.group_name}', "
                                      f"got one from '{group_name}'")
        if expert_outputs.dtype != dtype:
            raise error(INVALID_PARAM, f"expert_outputs dtype must be the hidden states' {dtype}, got {expert_outputs.dtype}")
        rows = expert_outputs.shape[0]
        if rows < capacity_rows:
            full = torch.empty((capacity_rows, expert_outputs.shape[1]), dtype=dtype)
            full[:rows] = expert_outputs
            expert_outputs = full
        return npu_moe_distribute_combine(expert_outputs.contiguous(), topk_ids, expand_idx, ep_recv_counts,
                                          topk_weights, self.group_name, self.world_size, self.rank,
                                          self.num_experts, global_bs=self.global_bs)
