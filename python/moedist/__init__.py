"""moedist: MoE expert-parallel dispatch and combine (the aclnnMoeDistributeDispatch /
aclnnMoeDistributeCombine contract) on CPUs, bit-faithful.

Groups:
    local_group(n)            n communicators whose ranks are threads of this process
    from_rank_table(path, r)  rank r of an HCCL rank table (processes of this host)
    join(r, n, name, gather)  rank r of n processes bootstrapped over any all-gather of bytes
    from_mpi(comm)            every rank of an mpi4py communicator (the mpi backend)
    moedist.torch.comm_name(group)   a torch.distributed group (torch_npu's get_hccl_comm_name)

Calls (caller-provided outputs, no allocation, the GIL released while they run):
    moe = Distributor(comm, moe_expert_num=E, quant_mode=0, ...)
    dispatch(moe, x, expert_ids, expand_x, expand_idx, expert_token_nums, ep_recv_counts, ...)
    combine(moe, expand_x, expert_ids, expand_idx, ep_send_counts, expert_scales, x)

Tensors are numpy arrays or torch CPU tensors, zero-copy. bf16 is torch.bfloat16 or a 16-bit
integer view named as a pair (array, "bfloat16"); the 8-bit formats are uint8 views named the
same way: (t, "float8_e4m3fn"), (t, "float8_e5m2"), (t, "hifloat8"), (t, "float8_e8m0").
Every failure raises moedist.Error with .code (the aclnn code) and .message.
"""

from ._moedist import (  # noqa: F401
    Communicator,
    Distributor,
    Error,
    from_rank_table,
    has_mpi,
    join,
    local_group,
)
from . import _moedist

__all__ = [
    "Communicator",
    "Distributor",
    "Error",
    "combine",
    "dispatch",
    "empty",
    "from_mpi",
    "from_rank_table",
    "join",
    "local_group",
    "output_shapes",
]

# aclnn error codes (SPEC §7).
NULLPTR = 161001
INVALID_PARAM = 161002
RUNTIME = 361001
INNER_TILING = 561002


def error(code, message):
    """A moedist.Error with `code` and `message`, as the library raises them."""
    e = Error(message)
    e.code = code
    e.message = message
    return e


def from_mpi(comm):
    """Every rank of the mpi4py communicator `comm` calls this: its rank of a moedist group on the
    mpi backend (node-local ranks share memory; MOEDIST_RANKS_PER_NODE simulates nodes)."""
    if not has_mpi:
        raise error(INVALID_PARAM, "from_mpi needs moedist built with MPI, got a build without it")
    return _moedist._from_mpi_fortran(comm.py2f())


def dispatch(moe, x, expert_ids, expand_x, expand_idx, expert_token_nums, ep_recv_counts, **optional):
    """Dispatch into caller-provided outputs (SPEC §3); see Distributor.dispatch."""
    moe.dispatch(x, expert_ids, expand_x, expand_idx, expert_token_nums, ep_recv_counts, **optional)


def combine(moe, expand_x, expert_ids, expand_idx, ep_send_counts, expert_scales, x, **optional):
    """Combine into the caller's x (BS, H) (SPEC §4); see Distributor.combine."""
    moe.combine(expand_x, expert_ids, expand_idx, ep_send_counts, expert_scales, x, **optional)


def output_shapes(moe, num_tokens, top_k, hidden):
    """The shapes of dispatch's outputs for `moe` (torch_npu's allocation): a dict of name ->
    tuple, with A = capacity rows and T = max(tp_world_size, 1)."""
    a = moe.capacity_rows(num_tokens, top_k)
    t = moe.tp_size
    group = -(-hidden // 128)
    blocks = -(-hidden // 32)
    mx = 2 * (-(-blocks // 2))
    return {
        "expand_x": (t * a, hidden),
        "dynamic_scales": (t * a,),
        "dynamic_scales_per_group": (t * a, group),
        "dynamic_scales_mx": (t * a, mx),
        "expand_idx": (num_tokens * top_k,),
        "expert_token_nums": (moe.local_expert_num,),
        "ep_recv_counts": (t * moe.ep_world_size * moe.local_expert_num,),
        "tp_recv_counts": (2,) if t == 2 else (0,),
        "expand_scales": (a,),
    }


def empty(shape, dtype="uint8"):
    """A numpy array of `shape` in moedist's shared-memory arena (aclrtMalloc): in a process group
    peers read and write it in place, where other memory is staged once per call. `dtype` is a
    numpy dtype; bf16 and the 8-bit formats are uint16 / uint8 arrays named by pairs."""
    import numpy as np

    dt = np.dtype(dtype)
    count = 1
    for extent in shape:
        count *= int(extent)
    raw = _moedist._shared_array(count * dt.itemsize)
    return raw.view(dt).reshape(tuple(int(e) for e in shape))
