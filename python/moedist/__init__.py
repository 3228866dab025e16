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

The V2 family (docs/contract.md §10: masks, assist triples, N shared experts, zero/copy/const
experts, unweighted combine, AddRmsNorm) is the same calls on Distributor(..., api=2), whose
extra tensors are keywords: dispatch(..., assist_info=, x_active_mask=, performance_info=) with
expand_idx None, combine(..., assist_info=, x_active_mask=, ori_x=, ...). Distributor.keywords
lists the config keywords; each is also a property.

Tensors are numpy arrays or torch CPU tensors, zero-copy; masks are bool. bf16 is torch.bfloat16 or a 16-bit
integer view named as a pair (array, "bfloat16"); the 8-bit formats are uint8 views named the
same way: (t, "float8_e4m3fn"), (t, "float8_e5m2"), (t, "hifloat8"), (t, "float8_e8m0").
Every failure raises moedist.Error with .code (the aclnn code) and .message.
"""

from ._moedist import (  # noqa: F401
    Communicator,
    Distributor,
    Error,
    __version__,
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
    "allocate_outputs",
    "combine",
    "dispatch",
    "empty",
    "from_mpi",
    "from_rank_table",
    "join",
    "local_group",
    "output_shapes",
]

# aclnn error codes (docs/contract.md §7).
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
    """Dispatch into caller-provided outputs (docs/contract.md §3); see Distributor.dispatch."""
    moe.dispatch(x, expert_ids, expand_x, expand_idx, expert_token_nums, ep_recv_counts, **optional)


def combine(moe, expand_x, expert_ids, expand_idx, ep_send_counts, expert_scales, x, **optional):
    """Combine into the caller's x (BS, H) (docs/contract.md §4); see Distributor.combine."""
    moe.combine(expand_x, expert_ids, expand_idx, ep_send_counts, expert_scales, x, **optional)


def output_shapes(moe, num_tokens, top_k, hidden):
    """The shapes of dispatch's outputs for `moe` (torch_npu's allocation): a dict of name ->
    tuple, from the config's own shapes (Distributor.shapes), with A = capacity rows and
    T = max(tp_world_size, 1). V1 has expand_idx (BS*K,) and no assist_info; V2 (api=2) has
    assist_info (3*A,) and an empty expand_idx."""
    s = moe.shapes(num_tokens, top_k, hidden)
    rows = s["expand_x_rows"]
    group = -(-hidden // 128)
    blocks = -(-hidden // 32)
    mx = 2 * (-(-blocks // 2))
    return {
        "capacity": s["capacity"],
        "expand_x": (rows, hidden),
        "dynamic_scales": (rows,),
        "dynamic_scales_per_group": (rows, group),
        "dynamic_scales_mx": (rows, mx),
        "expand_idx": (s["expand_idx"],),
        "assist_info": (s["assist_info"],),
        "expert_token_nums": (s["expert_token_nums"],),
        "ep_recv_counts": (s["ep_recv_counts"],),
        "tp_recv_counts": (s["tp_recv_counts"],),
        "expand_scales": (s["expand_scales"],),
    }


# What dispatch writes into expandX and dynamicScales for each quant mode (docs/quantization.md):
# (expandX's element, dynamicScales' shape key and element); None: no scales.
_QUANT_OUTPUTS = {
    0: (None, None, None),
    1: ("int8", None, None),
    2: ("int8", "dynamic_scales", "float32"),
    3: ("float8_e4m3fn", "dynamic_scales_per_group", "float32"),
    4: ("float8_e4m3fn", "dynamic_scales_mx", "float8_e8m0"),
}


def allocate_outputs(moe, num_tokens, top_k, hidden, x_dtype="bfloat16", target=None):
    """Every output dispatch writes, allocated in the shared arena with the right shape and element
    type for `moe`'s quant mode: a dict name -> argument, ready for moedist.dispatch(**...). For a
    V2 distributor (api=2) expand_idx is None and assist_info (3*A,) is there.

    Arrays are numpy; 16-bit and 8-bit formats come as (array, "dtype name") pairs, as dispatch
    takes them. x_dtype is "bfloat16" or "float16" (expandX's type without quantization);
    target overrides expandX's 8-bit format ("int8", "float8_e4m3fn", "float8_e5m2",
    "hifloat8")."""
    import numpy as np

    shapes = output_shapes(moe, num_tokens, top_k, hidden)
    element, scale_key, scale_element = _QUANT_OUTPUTS[moe.quant_mode]
    element = target or element or x_dtype
    numpy_of = {"bfloat16": np.uint16, "float16": np.float16, "int8": np.int8, "float32": np.float32}
    expand_x = empty(shapes["expand_x"], numpy_of.get(element, np.uint8))
    out = {
        "expand_x": (expand_x, element) if element not in ("int8", "float16") else expand_x,
        "expand_idx": empty(shapes["expand_idx"], np.int32) if moe.api == 1 else None,
        "expert_token_nums": empty(shapes["expert_token_nums"], np.int64),
        "ep_recv_counts": empty(shapes["ep_recv_counts"], np.int32),
    }
    if scale_key is not None:
        scales = empty(shapes[scale_key], np.float32 if scale_element == "float32" else np.uint8)
        out["dynamic_scales"] = scales if scale_element == "float32" else (scales, scale_element)
    if moe.tp_size == 2:
        out["tp_recv_counts"] = empty(shapes["tp_recv_counts"], np.int32)
    if moe.api == 2:
        out["assist_info"] = empty(shapes["assist_info"], np.int32)
    return out


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
