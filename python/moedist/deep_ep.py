"""DeepEP's legacy `Buffer` on CPUs, over torch.distributed groups: `import moedist.deep_ep as deep_ep`.

Both modes of DeepEP's Buffer (docs/contract.md §12):

    buffer = deep_ep.Buffer(group, int(2e9), 0)                            # normal mode
    num_tokens_per_rank, _, num_tokens_per_expert, is_token_in_rank, _ = \
        buffer.get_dispatch_layout(topk_idx, E)
    recv_x, recv_topk_idx, recv_topk_weights, num_recv_tokens_per_expert_list, handle, event = \
        buffer.dispatch(x, num_tokens_per_rank=..., is_token_in_rank=..., num_tokens_per_expert=...,
                        topk_idx=topk_idx, topk_weights=topk_weights)
    combined_x, combined_topk_weights, event = buffer.combine(y, handle, topk_weights=w)

    buffer = deep_ep.Buffer(group, 0, deep_ep.Buffer.get_low_latency_rdma_size_hint(T, H, R, E),
                            low_latency_mode=True, num_qps_per_rank=E // R)
    recv_x, recv_count, handle, event, hook = buffer.low_latency_dispatch(
        x, topk_idx, T, E, use_fp8=False)                  # recv_x [L, R*T, H]
    combined_x, event, hook = buffer.low_latency_combine(y, topk_idx, topk_weights, handle)

plus `Config`, `get_dispatch_config` / `get_combine_config`, `get_low_latency_rdma_size_hint`,
`capture`, `destroy`, `get_next_low_latency_combine_buffer` (zero-copy combine), `out=`,
`cumulative_local_expert_recv_stats`, `dispatch_wait_recv_cost_stats` and fp8 rows with fp32 or
UE8M0 scales.

The rows travel through moedist's V2 dispatch and combine (`topk_idx` −1 entries are masked
out), so the arithmetic is the contract's: combined_x[t] = rne_bf16(acc), acc from +0 over
k ascending with topk_idx[t, k] ≥ 0, acc = fl32(acc + fl32(w[t, k] · f32(y))). With
`return_recv_hook=True` a call is split (docs/contract.md §13): it returns after its send half,
with its outputs allocated but not yet filled, and hook() is the receive half (two calls of a
group may be in flight; hooks run in call order). Without it a call is complete when it returns.
Events are always complete (`current_stream_wait()` returns at once). Byte counts are hints
(nothing GPU-sized is allocated). To make `import deep_ep` give this module:

    import sys, moedist.deep_ep; sys.modules["deep_ep"] = moedist.deep_ep
"""

import weakref

import numpy as np
import torch
import torch.distributed as dist

import moedist
import moedist.torch as _npu
from moedist import INNER_TILING, INVALID_PARAM, error

__all__ = ["Buffer", "Config", "EventOverlap", "topk_idx_t"]

topk_idx_t = torch.int64

_FP8 = getattr(torch, "float8_e4m3fn", None)
_GROUP = 128  # fp8 scale granularity: columns per scale
_E4M3_MAX = 448.0


class Config:
    """DeepEP's tuning knobs. Accepted and kept; moedist's results never depend on them."""

    def __init__(self, num_sms=20, num_max_nvl_chunked_send_tokens=6, num_max_nvl_chunked_recv_tokens=256,
                 num_max_rdma_chunked_send_tokens=6, num_max_rdma_chunked_recv_tokens=256):
        self.num_sms = num_sms
        self.num_max_nvl_chunked_send_tokens = num_max_nvl_chunked_send_tokens
        self.num_max_nvl_chunked_recv_tokens = num_max_nvl_chunked_recv_tokens
        self.num_max_rdma_chunked_send_tokens = num_max_rdma_chunked_send_tokens
        self.num_max_rdma_chunked_recv_tokens = num_max_rdma_chunked_recv_tokens

    def get_nvl_buffer_size_hint(self, hidden_bytes, num_ranks):
        return int(hidden_bytes) * int(num_ranks) * self.num_max_nvl_chunked_recv_tokens

    def get_rdma_buffer_size_hint(self, hidden_bytes, num_ranks):
        return int(hidden_bytes) * int(num_ranks) * self.num_max_rdma_chunked_recv_tokens


class EventOverlap:
    """DeepEP's event handle. moedist's calls are complete when they return: waiting is free."""

    def __init__(self, event=None, extra_tensors=None):
        self.event = event
        self.extra_tensors = extra_tensors

    def current_stream_wait(self):
        return None

    def __enter__(self):
        return self

    def __exit__(self, *_):
        return False


def _hook(pending, finish, route):
    """A recv hook (DeepEP's return_recv_hook): the call's receive half. The first call waits for
    the peers and fills the outputs the call returned; later calls do nothing."""

    def hook():
        if pending.pending:
            pending.wait()
            finish()
            route.pop("pending", None)

    return hook


class _NormalHandle(tuple):
    """DeepEP's intranode handle (rank_prefix_matrix, …, recv_src_idx, is_token_in_rank, …):
    [0] holds this rank's column of the rank prefix matrix, [3] each row's source token."""

    def __new__(cls, items, route):
        handle = super().__new__(cls, items)
        handle.route = route
        return handle


def _numel(shape):
    n = 1
    for v in shape:
        n *= int(v)
    return n


def _pad_rows(recv_x, rows, m):
    """recv_x with `rows` rows (rows past m left as allocated); unchanged when rows is 0."""
    if not rows:
        return recv_x
    if isinstance(recv_x, tuple):
        return tuple(_pad_rows(t, rows, m) for t in recv_x)
    out = torch.empty((rows,) + tuple(recv_x.shape[1:]), dtype=recv_x.dtype)
    out[:m] = recv_x
    return out


def _split3(values):
    """fp32 values as three bfloat16 pieces whose fp32 sum (a + b) + c is the value exactly."""
    a = values.to(torch.bfloat16)
    rest = values - a.float()
    b = rest.to(torch.bfloat16)
    c = (rest - b.float()).to(torch.bfloat16)
    return a, b, c


class _OutputPool:
    """Memory for the tensors a call returns, reused once torch has freed them, as GPU caching
    allocators do: fresh pages cost more than the exchange on a CPU (each first touch faults).

    A block is a numpy array kept here; a call gets a tensor over a view of it, and the view's
    finalizer (it runs when torch drops the tensor's storage, every alias included) puts the block
    back. Blocks are kept per byte size, at most `keep` free ones each."""

    def __init__(self, keep=4):
        self._free = {}  # bytes -> [numpy blocks]
        self._keep = keep

    def empty(self, shape, dtype):
        shape = tuple(int(v) for v in shape)
        used = _numel(shape) * torch.empty((), dtype=dtype).element_size()
        nbytes = max(used, 1)
        free = self._free.setdefault(nbytes, [])
        block = free.pop() if free else np.empty(nbytes, dtype=np.uint8)
        view = block[:]
        weakref.finalize(view, self._give_back, nbytes, block)
        return torch.from_numpy(view)[:used].view(dtype).view(shape)

    def _give_back(self, nbytes, block):
        free = self._free.setdefault(nbytes, [])
        if len(free) < self._keep:
            free.append(block)

    def clear(self):
        self._free.clear()


class _LowLatencyHandle(tuple):
    """DeepEP's (src_info, layout_range, T, H, E), carrying what combine needs besides."""

    def __new__(cls, items, route):
        handle = super().__new__(cls, items)
        handle.route = route
        return handle


class Buffer:
    """DeepEP's Buffer over a torch.distributed group (gloo; every rank on this host or reachable
    by moedist's backends). Byte counts are hints."""

    num_sms = 20

    def __init__(self, group, num_nvl_bytes=0, num_rdma_bytes=0, low_latency_mode=False, num_qps_per_rank=24,
                 allow_nvlink_for_low_latency_mode=True, allow_mnnvl=False, explicitly_destroy=False,
                 enable_shrink=False, comm=None):
        self.group = group if group is not None else dist.group.WORLD
        self.rank = dist.get_rank(self.group)
        self.group_size = dist.get_world_size(self.group)
        self.num_nvl_bytes = int(num_nvl_bytes)
        self.num_rdma_bytes = int(num_rdma_bytes)
        self.low_latency_mode = bool(low_latency_mode)
        self.explicitly_destroy = bool(explicitly_destroy)
        self._name = _npu.comm_name(self.group)
        self._distributors = {}  # (E, T) -> moedist.Distributor
        self._outputs = {}  # (E, T, K, hidden) -> preallocated dispatch outputs
        self._combine_buffers = {}  # (L, R*T, H) -> zero-copy combine input
        self._calls = 0  # low-latency calls so far: two in flight use alternate outputs
        self._normal_cap = None  # tokens per rank the normal mode is sized for (agreed; grows)
        self._pool = _OutputPool()  # the memory of returned tensors, reused once they are freed
        self._destroyed = False

    # --- static helpers -----------------------------------------------------------------------

    @staticmethod
    def is_sm90_compiled():
        return True

    @classmethod
    def set_num_sms(cls, new_num_sms):
        if new_num_sms % 2 != 0:
            raise error(INVALID_PARAM, f"num_sms must be even, got {new_num_sms}")
        cls.num_sms = new_num_sms

    @staticmethod
    def get_dispatch_config(num_ranks):
        return Config(Buffer.num_sms, 24, 256, 6, 128)

    @staticmethod
    def get_combine_config(num_ranks):
        return Config(Buffer.num_sms, 10, 256, 6, 128)

    @staticmethod
    def get_low_latency_rdma_size_hint(num_max_dispatch_tokens_per_rank, hidden, num_ranks, num_experts):
        """DeepEP's size (two buffers of send and receive rows): a hint, never allocated."""
        per_row = hidden * 2 + hidden // _GROUP * 4 + 16
        rows = num_max_dispatch_tokens_per_rank * max(num_experts, num_ranks)
        return int(2 * 2 * rows * per_row)

    def capture(self):
        return EventOverlap()

    def destroy(self):
        """Releases this buffer's outputs (DeepEP: explicitly_destroy). The group stays."""
        self._check_alive()
        self._distributors.clear()
        self._outputs.clear()
        self._combine_buffers.clear()
        self._pool.clear()
        self._destroyed = True

    def _scratch(self, key, shape, dtype, shared=False):
        """A tensor kept across calls under `key` (grown when a call needs more): the staging of
        rows peers read (shared: in moedist's arena, read in place) and the low-latency buffers,
        which DeepEP also reuses from call to call."""
        shape = tuple(int(v) for v in shape)
        held = self._outputs.get(("scratch",) + key)
        if held is None or held.dtype != dtype or held.numel() < _numel(shape):
            size = max(_numel(shape), 1)
            held = _npu.empty((size,), dtype) if shared else torch.empty((size,), dtype=dtype)
            self._outputs[("scratch",) + key] = held
        return held[:_numel(shape)].view(shape)

    def _check_alive(self):
        if self._destroyed:
            raise error(INVALID_PARAM, "the Buffer was destroyed: make a new one")

    # --- layout ------------------------------------------------------------------------------

    def get_dispatch_layout(self, topk_idx, num_experts, previous_event=None, async_finish=False,
                            allocate_on_comm_stream=False):
        """(num_tokens_per_rank [R] int32, None, num_tokens_per_expert [E] int32,
        is_token_in_rank [N, R] bool, event) for int64 topk_idx with −1 = no expert."""
        self._check_alive()
        ranks = self.group_size
        if num_experts % ranks != 0:
            raise error(INVALID_PARAM, f"num_experts must be a multiple of the group size {ranks}, got {num_experts}")
        ids = _check_topk_idx(topk_idx, num_experts)
        valid = ids >= 0
        per_expert = torch.bincount(ids[valid], minlength=num_experts).to(torch.int32)
        dest = torch.where(valid, ids // (num_experts // ranks), torch.full_like(ids, ranks))
        in_rank = torch.zeros((ids.shape[0], ranks + 1), dtype=torch.bool)
        in_rank.scatter_(1, dest, True)
        is_token_in_rank = in_rank[:, :ranks].contiguous()
        per_rank = is_token_in_rank.sum(dim=0, dtype=torch.int32)
        return per_rank, None, per_expert, is_token_in_rank, EventOverlap()

    # --- normal mode ---------------------------------------------------------------------------
    #
    # Each token travels once to each rank that holds at least one of its experts: a V2 dispatch
    # over R "rank experts" (expert r lives on rank r) with is_token_in_rank as its entry mask,
    # so rows arrive by source rank ascending, each source's tokens ascending. A token's row
    # carries its topk_idx and topk_weights (bytes after H). One more entry per token, a copy
    # expert (never sent), lets combine add bias b0 in the same fp32 sum; b1 is the shared
    # expert x. combined_topk_weights travel as exact bfloat16 pieces, one column block per rank.

    def _normal_distributor(self, max_tokens):
        ranks = self.group_size
        key = ("normal", max_tokens)
        moe = self._distributors.get(key)
        if moe is None:
            comm = _npu._communicator(self._name, self.rank, ranks, "group")
            moe = moedist.Distributor(comm, moe_expert_num=ranks, api=2, global_bs=max_tokens * ranks,
                                      expert_token_nums_type=1, shared_expert_num=0, copy_expert_num=1,
                                      timeout=_npu._timeouts.get(self._name))
            self._distributors[key] = moe
        return moe

    def _max_tokens(self, num_tokens):
        """The tokens per rank every rank's normal calls are sized for: agreed once over the group
        (a gloo all-reduce), then kept; a rank with more tokens proposes more and the call's
        globalBs check fails on every rank, which then agree again (_exchange)."""
        if self._normal_cap is None or num_tokens > self._normal_cap:
            if self._normal_cap is None:
                self._normal_cap = self._agree_max_tokens(num_tokens)
            else:  # propose; the others learn it from the failed call
                return 1 << max(int(num_tokens) - 1, 0).bit_length()
        return self._normal_cap

    def _agree_max_tokens(self, num_tokens):
        n = torch.tensor([num_tokens], dtype=torch.int64)
        dist.all_reduce(n, op=dist.ReduceOp.MAX, group=self.group)
        return 1 << max(int(n) - 1, 0).bit_length()  # a power of two: rarely grown again

    def _exchange(self, max_tokens, num_tokens, payload, out):
        """The normal mode's dispatch of `payload` over the rank experts into `out`. When ranks were
        sized for different token counts (globalBs disagrees on every rank), they agree on the
        maximum and run it again. Returns the size it ran with."""
        for attempt in (0, 1):
            side = {} if "extra" not in out else dict(extra=out["extra"], expand_extra=out["expand_extra"])
            try:
                self._normal_distributor(max_tokens).dispatch(
                    payload, out["ids"], out["rows"], None, out["nums"], out["recv"], x_active_mask=out["mask"],
                    assist_info=out["assist"], **side)
                return max_tokens
            except moedist.Error as failure:
                if attempt or "global_bs must agree" not in str(failure):  # (Python names the attribute)
                    raise
            self._normal_cap = max_tokens = self._agree_max_tokens(num_tokens)
            out.update(self._normal_outputs(max_tokens, num_tokens, out["rows"].shape[1], out["ids"], out["mask"],
                                            out.get("extra")))
        return max_tokens

    def _normal_outputs(self, max_tokens, num_tokens, columns, ids, mask, extra=None):
        """Fresh outputs of one normal-mode dispatch (the caller keeps recv_x: its rows are a view of
        these, written in place by the receivers), and expand_extra for `extra` [N, S] uint8."""
        moe = self._normal_distributor(max_tokens)
        shapes = moedist.output_shapes(moe, num_tokens, self.group_size + 1, columns)
        out = dict(ids=ids, mask=mask, rows=self._pool.empty(shapes["expand_x"], torch.bfloat16),
                   assist=torch.empty(shapes["assist_info"], dtype=torch.int32),
                   nums=torch.empty(shapes["expert_token_nums"], dtype=torch.int64),
                   recv=torch.empty(shapes["ep_recv_counts"], dtype=torch.int32))
        if extra is not None:
            out["extra"] = extra
            out["expand_extra"] = self._pool.empty((shapes["expand_x"][0], extra.shape[1]), torch.uint8)
        return out

    def dispatch(self, x, handle=None, num_tokens_per_rank=None, num_tokens_per_rdma_rank=None,
                 is_token_in_rank=None, num_tokens_per_expert=None, topk_idx=None, topk_weights=None,
                 expert_alignment=1, num_worst_tokens=0, config=None, previous_event=None, async_finish=False,
                 allocate_on_comm_stream=False):
        """DeepEP's normal dispatch: (recv_x, recv_topk_idx, recv_topk_weights,
        num_recv_tokens_per_expert_list, handle, event); with a cached handle (recv_x, None, None,
        None, None, event). x is bf16 [N, H] or (fp8 [N, H], fp32 scales [N, H/128]).

        One exchange: x's rows, written by the receivers straight into recv_x, each with its
        token's side bytes (fp8 scales, topk_idx, weights) beside it (the core's extra)."""
        self._check_alive()
        ranks, me = self.group_size, self.rank
        fp8 = isinstance(x, tuple)
        data = x[0] if fp8 else x
        if data.dim() != 2 or (not fp8 and data.dtype != torch.bfloat16):
            raise error(INVALID_PARAM, f"x must be bf16 [N, H] or (fp8 [N, H], scales), got {data.dtype} "
                                       f"{tuple(data.shape)}")
        num_tokens, hidden = data.shape
        if fp8 and hidden % 2:
            raise error(INVALID_PARAM, f"fp8 x must have an even H, got {hidden}")
        if handle is not None:
            if not isinstance(handle, _NormalHandle):
                raise error(INVALID_PARAM, "handle must be one this Buffer's dispatch returned")
            route = handle.route
            in_rank, max_tokens, top_k, num_experts = (route["in_rank"], route["max_tokens"], 0,
                                                       route["num_experts"])
        else:
            if is_token_in_rank is None:
                raise error(INVALID_PARAM, "dispatch needs is_token_in_rank (from get_dispatch_layout) or a handle")
            in_rank = is_token_in_rank.to(torch.bool)
            max_tokens = self._max_tokens(num_tokens)
            num_experts = int(num_tokens_per_expert.numel()) if num_tokens_per_expert is not None else None
            top_k = 0 if topk_idx is None else int(topk_idx.shape[1])
        if tuple(in_rank.shape) != (num_tokens, ranks):
            raise error(INVALID_PARAM, f"is_token_in_rank must be [{num_tokens}, {ranks}], got {tuple(in_rank.shape)}")
        side = []  # bytes per token beside the rows: fp8 scales, then topk_idx and weights
        if fp8:
            side.append(x[1].to(torch.float32).contiguous().view(torch.uint8).view(num_tokens, -1))
        if top_k:
            if num_experts is None:
                raise error(INVALID_PARAM, "dispatch with topk_idx needs num_tokens_per_expert")
            ids = _check_topk_idx(topk_idx, num_experts)
            side += [ids.contiguous().view(torch.uint8).view(num_tokens, -1),
                     topk_weights.to(torch.float32).contiguous().view(torch.uint8).view(num_tokens, -1)]
        rows_payload = data.contiguous().view(torch.uint8).view(num_tokens, -1).view(torch.bfloat16)
        ids_prime = torch.arange(ranks + 1, dtype=torch.int32).expand(num_tokens, ranks + 1)  # + the copy expert
        mask = torch.cat([in_rank, torch.ones((num_tokens, 1), dtype=torch.bool)], dim=1)
        extra = None
        if side:  # travels beside each row (the core's extra), one exchange for both
            extra = torch.cat(side, dim=1) if len(side) > 1 else side[0].contiguous()
        out = self._normal_outputs(max_tokens, num_tokens, rows_payload.shape[1], ids_prime, mask, extra)
        max_tokens = self._exchange(max_tokens, num_tokens, rows_payload, out)
        m = int(out["nums"][0])
        capacity = out["rows"].shape[0]
        rows = out["rows"].view(torch.uint8)
        if num_worst_tokens and handle is None and num_worst_tokens < m:
            raise error(INVALID_PARAM, f"num_worst_tokens must be >= the {m} rows received, got {num_worst_tokens}")
        keep = max(m, int(num_worst_tokens)) if num_worst_tokens else m
        recv_x = rows[:keep] if keep <= capacity else _pad_rows(rows[:m], keep, m)
        if not (fp8 and _FP8 is None):
            recv_x = recv_x.view(data.dtype)
        raw = out["expand_extra"][:m] if side else None
        offset = 0
        if fp8:
            groups = x[1].shape[1]
            recv_scales = _pad_rows(raw[:, :4 * groups].contiguous().view(torch.float32), keep if num_worst_tokens else 0, m)
            offset = 4 * groups
            recv_x = (recv_x, recv_scales)
        route = dict(in_rank=in_rank, ids=ids_prime, mask=mask, assist=out["assist"], recv=out["recv"],
                     max_tokens=max_tokens, num_recv=m, num_tokens=num_tokens, hidden=hidden,
                     num_experts=num_experts, capacity=capacity)
        rank_prefix = torch.zeros((ranks, ranks), dtype=torch.int32)
        rank_prefix[:, me] = out["recv"][:ranks]  # rows received from sources 0..i (this rank's column)
        src_idx = out["assist"][:3 * m].view(-1, 3)[:, 1]
        new_handle = _NormalHandle((rank_prefix, None, None, src_idx, in_rank, None), route)
        if handle is not None:
            return recv_x, None, None, None, None, EventOverlap()
        local = num_experts // ranks
        got_ids = raw[:, offset:offset + 8 * top_k].contiguous().view(torch.int64).view(m, top_k)
        got_w = raw[:, offset + 8 * top_k:offset + 12 * top_k].contiguous().view(torch.float32).view(m, top_k)
        mine = (got_ids >= me * local) & (got_ids < (me + 1) * local)
        recv_topk_idx = torch.where(mine, got_ids - me * local, torch.full_like(got_ids, -1))
        recv_topk_weights = torch.where(mine, got_w, torch.zeros_like(got_w))
        if num_worst_tokens:
            recv_topk_idx = torch.cat([recv_topk_idx, torch.full((keep - m, top_k), -1, dtype=torch.int64)])
            recv_topk_weights = torch.cat([recv_topk_weights, torch.zeros((keep - m, top_k))])
            per_expert = []
        else:
            counts = torch.bincount(recv_topk_idx[recv_topk_idx >= 0], minlength=local).tolist()
            align = max(int(expert_alignment), 1)
            per_expert = [-(-c // align) * align for c in counts]
        return recv_x, recv_topk_idx, recv_topk_weights, per_expert, new_handle, EventOverlap()

    def combine(self, x, handle, topk_weights=None, bias=None, config=None, previous_event=None,
                async_finish=False, allocate_on_comm_stream=False):
        """DeepEP's normal combine: (combined_x [N, H] bf16, combined_topk_weights [N, K] or None,
        event). combined_x[t] = rne_bf16(Σ over the ranks that received t, ascending, of
        f32(x_j[row]), then + f32(b0), then + f32(b1)); the weights the same sum in fp32."""
        self._check_alive()
        if not isinstance(handle, _NormalHandle):
            raise error(INVALID_PARAM, "handle must be one this Buffer's dispatch returned")
        route = handle.route
        ranks, me, m, n = self.group_size, self.rank, route["num_recv"], route["num_tokens"]
        hidden = route["hidden"]
        if x.dtype != torch.bfloat16 or x.dim() != 2 or x.shape[1] != hidden or x.shape[0] < m:
            raise error(INVALID_PARAM, f"x must be bf16 [>= {m}, {hidden}], got {x.dtype} {tuple(x.shape)}")
        top_k = 0 if topk_weights is None else int(topk_weights.shape[1])
        width = hidden + 3 * top_k * ranks
        width += width % 2
        self._calls += 1
        rows = self._scratch(("normal-combine", self._calls % 2), (route["capacity"], width), torch.bfloat16,
                             shared=True)
        rows[:m, :hidden] = x[:m]
        if top_k:
            rows[:m, hidden:] = 0
            pieces = _split3(topk_weights[:m].to(torch.float32))
            block = hidden + 3 * top_k * me
            for j, piece in enumerate(pieces):
                rows[:m, block + j:block + 3 * top_k:3] = piece
        b0, b1 = bias if isinstance(bias, (tuple, list)) else (bias, None)
        if b0 is not None:
            ori = torch.zeros((n, width), dtype=torch.bfloat16)
            ori[:, :hidden] = b0
        else:  # the copy expert adds +0: zeros kept from call to call (only read)
            ori = self._outputs.get(("zeros", n, width))
            if ori is None:
                ori = self._outputs[("zeros", n, width)] = torch.zeros((n, width), dtype=torch.bfloat16)
        extra = {}
        if b1 is not None:
            shared = torch.zeros((n, width), dtype=torch.bfloat16)
            shared[:, :hidden] = b1
            extra["shared_expert_x"] = shared
        out = self._pool.empty((n, width), torch.bfloat16)  # every row written (the copy expert is active)
        moe = self._normal_distributor(route["max_tokens"])
        empty_weights = torch.empty((0, ranks + 1), dtype=torch.float32)
        moe.combine(rows, route["ids"], None, route["recv"], empty_weights, out, x_active_mask=route["mask"],
                    assist_info=route["assist"], ori_x=ori, **extra)
        combined_w = None
        if top_k:
            back = out[:, hidden:hidden + 3 * top_k * ranks].float().view(n, ranks, top_k, 3)
            values = (back[..., 0] + back[..., 1]) + back[..., 2]
            combined_w = torch.zeros((n, top_k), dtype=torch.float32)
            for r in range(ranks):  # ascending, only the ranks that received the token
                combined_w = torch.where(route["in_rank"][:, r:r + 1], combined_w + values[:, r], combined_w)
        return out[:, :hidden], combined_w, EventOverlap()

    # --- low-latency mode ---------------------------------------------------------------------

    def _distributor(self, num_experts, max_tokens):
        """The low-latency calls' distributor: V2 over the group with DeepEP's expert-padded rows
        (local expert i's rows from row i·R·T, docs/contract.md §12.3)."""
        key = (num_experts, max_tokens)
        moe = self._distributors.get(key)
        if moe is None:
            comm = _npu._communicator(self._name, self.rank, self.group_size, "group")
            moe = moedist.Distributor(comm, moe_expert_num=num_experts, api=2, global_bs=max_tokens * self.group_size,
                                      expert_token_nums_type=1, shared_expert_num=0, row_layout=1,
                                      timeout=_npu._timeouts.get(self._name))
            self._distributors[key] = moe
        return moe

    def _low_latency_plan(self, moe, key, max_tokens, top_k, columns):
        """The tensors of one parity of low-latency calls (two calls in flight alternate), reused
        from call to call as DeepEP reuses its buffer, and the C++ calls over them: recv_x's
        expert-padded rows ([L·R·T, columns], peers read them in place), the assist triples,
        counts, and topk_idx as the core takes it (int32 ids, an entry mask for −1 slots)."""
        plan = self._outputs.get(key)
        if plan is None:
            shapes = moedist.output_shapes(moe, 1, top_k, columns)
            rows = _npu.empty(shapes["expand_x"], torch.bfloat16)
            assist = torch.empty(shapes["assist_info"], dtype=torch.int32)
            ids32 = torch.empty((max_tokens, top_k), dtype=torch.int32)
            plan = moedist._moedist._LowLatency(
                moe, self.group_size, rows, assist, torch.empty(shapes["expert_token_nums"], dtype=torch.int64),
                torch.empty(shapes["ep_recv_counts"], dtype=torch.int32), ids32,
                torch.empty((max_tokens, top_k), dtype=torch.bool))
            plan.rows, plan.assist, plan.ids32 = rows, assist, ids32
            local, recv_rows, columns = key[0] // self.group_size, self.group_size * max_tokens, key[3]
            plan.packed = rows.view(local, recv_rows, columns)  # the core writes DeepEP's layout
            plan.src_info = assist.view(local, recv_rows, 3)[:, :, 1]  # each row's source token
            self._outputs[key] = plan
        return plan

    def low_latency_dispatch(self, x, topk_idx, num_max_dispatch_tokens_per_rank, num_experts,
                             cumulative_local_expert_recv_stats=None, dispatch_wait_recv_cost_stats=None,
                             use_fp8=True, round_scale=False, use_ue8m0=False, async_finish=False,
                             return_recv_hook=False):
        """(recv_x, recv_count, handle, event, hook). recv_x is bf16 [L, R*T, H], or with use_fp8
        (fp8 [L, R*T, H], scales): fp32 [L, R*T, H/128], or with use_ue8m0 (needs round_scale)
        int32 [L, R*T, H/512] of packed exponent bytes. Rows of local expert i: [0, recv_count[i]),
        from source rank ascending, each source's tokens ascending; later rows are untouched."""
        self._check_alive()
        ranks, max_tokens = self.group_size, int(num_max_dispatch_tokens_per_rank)
        if x.dim() != 2 or x.dtype != torch.bfloat16:
            raise error(INVALID_PARAM, f"x must be a 2-D bfloat16 tensor, got {x.dtype} {tuple(x.shape)}")
        num_tokens, hidden = x.shape
        if num_tokens > max_tokens:
            raise error(INVALID_PARAM, f"x has {num_tokens} tokens, more than num_max_dispatch_tokens_per_rank "
                                       f"{max_tokens}")
        if num_experts % ranks != 0:
            raise error(INVALID_PARAM, f"num_experts must be a multiple of the group size {ranks}, got {num_experts}")
        if use_ue8m0 and not (use_fp8 and round_scale):
            raise error(INVALID_PARAM, "use_ue8m0 needs use_fp8 and round_scale")
        if use_fp8 and hidden % (4 * _GROUP if use_ue8m0 else _GROUP) != 0:
            raise error(INVALID_PARAM, f"hidden must be a multiple of {4 * _GROUP if use_ue8m0 else _GROUP} "
                                       f"for fp8 rows, got {hidden}")
        _check_ids_tensor(topk_idx)
        top_k = topk_idx.shape[1]
        local = num_experts // ranks
        if use_fp8:
            q, scales = _quantize_fp8(x, round_scale)
            payload = torch.cat([q, scales.contiguous().view(torch.uint8).view(num_tokens, -1)], dim=1)
            payload = payload.view(torch.bfloat16)  # bytes travel untouched
        else:
            payload = x
        columns = payload.shape[1]
        moe = self._distributor(num_experts, max_tokens)
        self._calls += 1  # two calls may be in flight: their tensors alternate
        plan = self._low_latency_plan(moe, (num_experts, max_tokens, top_k, columns, self._calls % 2), max_tokens,
                                      top_k, columns)
        packed, src_info = plan.packed, plan.src_info
        recv_x = _fp8_outputs(local, ranks * max_tokens, hidden, use_ue8m0) if use_fp8 else packed
        # counts, layout_range and the stats come from the call (filled once the rows arrived)
        counts, layout_range, pending = plan.dispatch(payload, topk_idx, num_experts, return_recv_hook,
                                                      cumulative_local_expert_recv_stats,
                                                      dispatch_wait_recv_cost_stats)
        counts, layout_range = torch.from_numpy(counts), torch.from_numpy(layout_range)
        route = dict(plan=plan, num_tokens=num_tokens, topk_idx=topk_idx, received=pending is None,
                     recv_shape=(local, ranks * max_tokens, hidden))
        handle = _LowLatencyHandle((src_info, layout_range, max_tokens, hidden, num_experts), route)
        if not return_recv_hook:
            if use_fp8:
                _fill_fp8(recv_x, packed, hidden, use_ue8m0)
            return recv_x, counts, handle, EventOverlap(), None

        def finish():
            """After the rows arrived: the handle's tables (the rows are in place)."""
            plan.finish(counts, layout_range, cumulative_local_expert_recv_stats)
            if use_fp8:
                _fill_fp8(recv_x, packed, hidden, use_ue8m0)
            # DeepEP's contract: a handle is good until its buffer's next-but-one dispatch.
            route["received"] = True

        route["pending"] = pending
        return recv_x, counts, handle, EventOverlap(), _hook(pending, finish, route)

    def get_next_low_latency_combine_buffer(self, handle):
        """A bf16 [L, R*T, H] tensor to write the expert outputs into for combine(zero_copy=True)."""
        self._check_alive()
        src_info, _, max_tokens, hidden, num_experts = handle
        key = (src_info.shape[0], self.group_size * max_tokens, hidden)
        buf = self._combine_buffers.get(key)
        if buf is None:  # in moedist's arena: peers read the rows in place
            buf = _npu.empty(key, torch.bfloat16)
            self._combine_buffers[key] = buf
        return buf

    def low_latency_combine(self, x, topk_idx, topk_weights, handle, use_logfmt=False, zero_copy=False,
                            async_finish=False, return_recv_hook=False, out=None,
                            combine_wait_recv_cost_stats=None):
        """(combined_x [N, H] bf16, event, hook): Σ_k topk_weights[t, k] · y over k with
        topk_idx[t, k] ≥ 0, in the contract's order. x is bf16 [L, R*T, H] (only rows
        [0, recv_count[i]) of expert i are read); zero_copy reads the buffer
        get_next_low_latency_combine_buffer gave. use_logfmt changes nothing (bf16 rows travel)."""
        self._check_alive()
        if not isinstance(handle, _LowLatencyHandle):
            raise error(INVALID_PARAM, "handle must be the one low_latency_dispatch returned")
        route = handle.route
        if zero_copy:
            x = self.get_next_low_latency_combine_buffer(handle)
        if x.dtype != torch.bfloat16 or x.shape != route["recv_shape"]:
            raise error(INVALID_PARAM, f"x must be bfloat16 {route['recv_shape']}, got {x.dtype} {tuple(x.shape)}")
        plan = route["plan"]
        if topk_idx is not route["topk_idx"]:  # another tensor: it must hold the same ids
            ids = _check_topk_idx(topk_idx, handle[4])
            if not torch.equal(ids.to(torch.int32), plan.ids32[:route["num_tokens"]]):
                raise error(INVALID_PARAM, "topk_idx must be the one low_latency_dispatch got with this handle")
        if not route["received"]:
            raise error(INVALID_PARAM, "handle's dispatch must be received first: call its recv hook")
        self._calls += 1
        # a token whose every slot is −1 gets no row: its output is zeros
        result = (torch.zeros if plan.masked else torch.empty)((route["num_tokens"], handle[3]), dtype=torch.bfloat16)
        weights = topk_weights if topk_weights.dtype == torch.float32 else topk_weights.to(torch.float32)
        # x's expert-padded rows are read where they are
        pending = plan.combine(x if x.is_contiguous() else x.contiguous(), weights, result, return_recv_hook, combine_wait_recv_cost_stats)
        if not return_recv_hook:
            if out is None:
                return result, EventOverlap(), None
            out.copy_(result)
            return out, EventOverlap(), None

        def finish():
            if out is not None:
                out.copy_(result)

        return (result if out is None else out), EventOverlap(), _hook(pending, finish, {})

    def clean_low_latency_buffer(self, num_max_dispatch_tokens_per_rank, hidden, num_experts):
        """Nothing to clean: moedist's calls leave no state between them."""
        self._check_alive()


def _check_ids_tensor(topk_idx):
    """topk_idx is 2-D int64 (or int32)."""
    if topk_idx.dim() != 2 or topk_idx.dtype not in (torch.int64, torch.int32):
        raise error(INVALID_PARAM, f"topk_idx must be a 2-D int64 tensor, got {topk_idx.dtype} {tuple(topk_idx.shape)}")


def _check_topk_idx(topk_idx, num_experts):
    """topk_idx as int64 after checking every id is −1 or in [0, num_experts)."""
    _check_ids_tensor(topk_idx)
    ids = topk_idx.to(torch.int64)
    if ids.numel() == 0:
        return ids
    low, high = (int(v) for v in torch.aminmax(ids))
    if low < -1 or high >= num_experts:
        bad = (ids < -1) | (ids >= num_experts)
        t, k = (int(v) for v in torch.nonzero(bad)[0])
        raise error(INVALID_PARAM, f"topk_idx[{t}][{k}] must be -1 or in [0, {num_experts}), got {int(ids[t, k])}")
    return ids


# --- fp8 rows (docs/contract.md §12.4) -------------------------------------------------------------


def _e4m3_bytes(v):
    """fp32 values as float8_e4m3fn bytes: round to nearest even, saturating at ±448."""
    sign = torch.signbit(v).to(torch.uint8) << 7
    a = v.abs().clamp(max=_E4M3_MAX)
    mantissa, exponent = torch.frexp(a)  # a = mantissa · 2^exponent, mantissa in [0.5, 1)
    e = exponent.to(torch.int32) - 1  # a = (2·mantissa) · 2^e, 2·mantissa in [1, 2)
    q = torch.round((mantissa * 2 - 1) * 8).to(torch.int32)  # 3 bits, half to even
    e = torch.where(q == 8, e + 1, e)
    q = torch.where(q == 8, torch.zeros_like(q), q)
    normal = ((e + 7) << 3) | q
    subnormal = torch.round(a * 512).to(torch.int32)  # multiples of 2^-9; 8 is 2^-6 = byte 0x08
    byte = torch.where(a >= 2.0 ** -6, normal, subnormal).to(torch.uint8)
    return byte | sign


def _quantize_fp8(x, round_scale):
    """Per token and 128 columns, m = max(max|x|, 1e-4): (e4m3 bytes [N, H], fp32 scales
    [N, H/128]). Plain: ds = fl32(448/m), q = e4m3(fl32(x·ds)), scale = fl32(1/ds). round_scale:
    e = ⌈log2(fl32(m/448))⌉, scale = 2^e, q = e4m3(fl32(x·2^−e))."""
    n, hidden = x.shape
    groups = x.float().view(n, hidden // _GROUP, _GROUP)
    m = groups.abs().amax(dim=2).clamp(min=1e-4)
    if round_scale:
        mant, exp = torch.frexp(m / torch.full_like(m, _E4M3_MAX))  # tensor / tensor: a true division
        e = torch.where(mant == 0.5, exp - 1, exp)  # exactly ⌈log2⌉: a power of two keeps its exponent
        scale = torch.ldexp(torch.ones_like(m), e)
        q = _e4m3_bytes(groups * torch.ldexp(torch.ones_like(m), -e)[:, :, None]).view(n, hidden)
        return q, scale
    ds = torch.full_like(m, _E4M3_MAX) / m  # (a scalar over a tensor would multiply by a reciprocal)
    q = _e4m3_bytes(groups * ds[:, :, None]).view(n, hidden)
    return q, torch.ones_like(ds) / ds


def _fp8_outputs(local, rows, hidden, use_ue8m0):
    """recv_x for fp8 rows, allocated before the rows arrive: (e4m3 [L, rows, H], scales)."""
    q = torch.empty((local, rows, hidden), dtype=torch.uint8)
    if _FP8 is not None:
        q = q.view(_FP8)
    groups = hidden // _GROUP
    if use_ue8m0:
        return q, torch.empty((local, rows, groups // 4), dtype=torch.int32)
    return q, torch.empty((local, rows, groups), dtype=torch.float32)


def _fill_fp8(recv_x, packed, hidden, use_ue8m0):
    """[L, rows, bytes] rows of (e4m3 bytes, fp32 scales) into recv_x (_fp8_outputs)."""
    local, rows, _ = packed.shape
    raw = packed.view(torch.uint8).view(local, rows, -1)
    groups = hidden // _GROUP
    recv_x[0].view(torch.uint8).copy_(raw[:, :, :hidden])
    tail = raw[:, :, hidden:hidden + 4 * groups].contiguous()
    if use_ue8m0:  # scales are powers of two: their fp32 exponent field is e + 127
        biased = ((tail.view(torch.int32) >> 23) & 0xFF).to(torch.uint8)
        recv_x[1].copy_(biased.view(local, rows, groups // 4, 4).view(torch.int32).view(local, rows, groups // 4))
    else:
        recv_x[1].copy_(tail.view(torch.float32).view(local, rows, groups))
