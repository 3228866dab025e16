"""torch_npu's dispatch and combine as torch.autograd Functions: train through expert parallelism.

    from moedist import autograd as moe
    expand_x, _, assist, _, recv, _, _ = moe.npu_moe_distribute_dispatch_v2(x, ids, name, W, r, E)
    y = experts(expand_x)                                     # any differentiable compute
    out = moe.npu_moe_distribute_combine_v2(y, ids, assist, recv, weights, name, W, r, E)
    loss(out).backward()                                      # every rank, the same graph

The functions take torch_npu's arguments and return what moedist.torch's do; they differentiate
dispatch's x, and combine's expand_x, expert_scales and shared_expert_x. The gradients are
exchanges themselves (docs/contract.md §11.3):

- dispatch's gradient is the combine of the gradients, unweighted: grad_x[t] = rne(Σ of the
  gradients of every row made from token t, accumulated in fp32 from +0, k ascending, then the
  shared rows), as the forward combine adds.
- combine's gradient is the dispatch of grad_out: grad_y[row] = rne(fl32(w · f32(g))) where w is
  the row's weight (1 for shared rows, 1 for every row when combine is unweighted); the weight
  gradient grad_w[t, k] = fl32(Σ_h f64(g[t, h]) · f64(y[row(t, k), h])) is summed where the row
  is (in fp64, rounded once) and travels back exactly (three bfloat16 pieces per value through
  an unweighted combine; values below 2^-110 in magnitude may lose their last bits);
  grad_shared_expert_x = grad_out.

Each backward is a collective: every rank of the group must run it, in the same order, as a
data-parallel loss.backward() does. Only what is differentiable is accepted: quant_mode 0,
comm_quant_mode 0, no scales, TP = 1, no zero/copy/const experts (a clear error otherwise). The V1
combine's weight gradient needs shared_expert_rank_num = 0 (V1's shared-rank rule is not V2's);
dispatch's expand_scales output carries no gradient.
"""

import torch

from moedist import INVALID_PARAM, error

__all__ = [
    "deep_ep_combine",
    "deep_ep_dispatch",
    "npu_moe_distribute_combine",
    "npu_moe_distribute_combine_v2",
    "npu_moe_distribute_dispatch",
    "npu_moe_distribute_dispatch_v2",
]

# The keywords the gradient's own calls repeat: the group's layout, nothing about the data.
_GROUP_KEYWORDS = ("group_tp", "tp_world_size", "tp_rank_id", "shared_expert_num", "shared_expert_rank_num",
                   "global_bs")


def _npu():
    import moedist.torch as npu  # noqa: PLC0415 - moedist.torch imports this module

    return npu


def _refuse_undifferentiable(kwargs, what):
    """The calls whose gradient is not an exchange of rows: quantized rows, TP, special experts."""
    reasons = [
        ("quant_mode", 0, "quantized rows have no gradient"),
        ("comm_quant_mode", 0, "quantized rows have no gradient"),
        ("zero_expert_num", 0, "special experts are not differentiated"),
        ("copy_expert_num", 0, "special experts are not differentiated"),
        ("const_expert_num", 0, "special experts are not differentiated"),
    ]
    for name, allowed, why in reasons:
        if kwargs.get(name, allowed) != allowed:
            raise error(INVALID_PARAM, f"{what}: {name} must be {allowed} under autograd ({why}), "
                                       f"got {kwargs[name]}")
    if kwargs.get("scales") is not None:
        raise error(INVALID_PARAM, f"{what}: scales must be None under autograd (quantization has no gradient)")
    if kwargs.get("tp_world_size", 0) > 1:
        raise error(INVALID_PARAM, f"{what}: tp_world_size must be 0 or 1 under autograd, got "
                                   f"{kwargs['tp_world_size']}")


def _group_kwargs(kwargs, v2):
    out = {k: kwargs[k] for k in _GROUP_KEYWORDS if k in kwargs}
    if v2:
        for k in ("x_active_mask", "comm_alg"):
            if k in kwargs:
                out[k] = kwargs[k]
    return out


def _detached(value):
    return value.detach() if isinstance(value, torch.Tensor) else value


def _combine_rows_back(grad_rows, expert_ids, assist_info, recv_counts, group, kwargs, bs, hidden, v2=True):
    """dispatch's gradient: the unweighted V2 combine of the rows' gradients (`kwargs` are a V2
    call's when `v2`, else a V1 call's: its masks are reserved and not passed on)."""
    if grad_rows is None:
        return None
    empty = torch.empty((0, expert_ids.shape[1]), dtype=torch.float32)
    out = _npu().npu_moe_distribute_combine_v2(grad_rows.contiguous(), expert_ids, assist_info, recv_counts, empty,
                                               *group, **_group_kwargs(kwargs, v2=v2))
    assert tuple(out.shape) == (bs, hidden)
    return out


class _DispatchV2(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, expert_ids, group, kwargs):
        outs = _npu().npu_moe_distribute_dispatch_v2(x.detach(), expert_ids, *group,
                                                     **{k: _detached(v) for k, v in kwargs.items()})
        _, dynamic_scales, assist, token_nums, recv, tp_recv, expand_scales = outs
        ctx.save_for_backward(expert_ids, assist, recv)
        ctx.group, ctx.kwargs, ctx.shape = group, kwargs, tuple(x.shape)
        ctx.mark_non_differentiable(dynamic_scales, assist, token_nums, recv, tp_recv, expand_scales)
        return outs

    @staticmethod
    def backward(ctx, grad_expand_x, *_):
        expert_ids, assist, recv = ctx.saved_tensors
        grad = _combine_rows_back(grad_expand_x, expert_ids, assist, recv, ctx.group, ctx.kwargs, *ctx.shape)
        return grad, None, None, None


class _DispatchV1(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, expert_ids, group, kwargs):
        outs = _npu().npu_moe_distribute_dispatch(x.detach(), expert_ids, *group,
                                                  **{k: _detached(v) for k, v in kwargs.items()})
        _, dynamic_scales, expand_idx, token_nums, recv, tp_recv, expand_scales = outs
        ctx.save_for_backward(expert_ids, expand_idx, recv)
        ctx.group, ctx.kwargs, ctx.shape = group, kwargs, tuple(x.shape)
        ctx.mark_non_differentiable(dynamic_scales, expand_idx, token_nums, recv, tp_recv, expand_scales)
        return outs

    @staticmethod
    def backward(ctx, grad_expand_x, *_):
        if grad_expand_x is None:
            return None, None, None, None
        expert_ids, expand_idx, recv = ctx.saved_tensors
        ones = torch.ones(tuple(expert_ids.shape), dtype=torch.float32)  # fl32(1·g) = g: the plain sum
        grad = _npu().npu_moe_distribute_combine(grad_expand_x.contiguous(), expert_ids, expand_idx, recv, ones,
                                                 *ctx.group, **_group_kwargs(ctx.kwargs, v2=False))
        return grad, None, None, None


def _split3(values):
    """fp32 values as three bfloat16 pieces whose fp32 sum (a + b) + c is the value exactly."""
    a = values.to(torch.bfloat16)
    rest = values - a.float()
    b = rest.to(torch.bfloat16)
    c = (rest - b.float()).to(torch.bfloat16)
    return a, b, c


def _rows_forward(grad_out, expert_ids, weights, group, kwargs, dtype, use_v2, v2_kwargs):
    """combine's gradient, first half: grad_out dispatched with the forward's routing (the V2
    dispatch whenever its rows are the forward's: always for V2, for V1 when S = 0). Returns
    (rows, count, slots, row_weights, route): the rows' gradients before weighting, how many are
    real, each row's slot (k, or K + j for shared expert j; None from the V1 dispatch), each row's
    weight, and (assist_info, recv_counts) to send values back (None from the V1 dispatch)."""
    g = grad_out.to(dtype).contiguous()
    kw = dict(_group_kwargs(kwargs, v2=v2_kwargs), expert_scales=weights, expert_token_nums_type=1)
    if use_v2:
        rows, _, assist, token_nums, recv, _, expand_scales = _npu().npu_moe_distribute_dispatch_v2(
            g, expert_ids, *group, **kw)
        count = int(token_nums.sum())
        slots = assist[:3 * count].view(count, 3)[:, 2].long()
        return rows, count, slots, expand_scales, (assist, recv)
    rows, _, _, token_nums, _, _, expand_scales = _npu().npu_moe_distribute_dispatch(g, expert_ids, *group, **kw)
    return rows, int(token_nums.sum()), None, expand_scales, None


class _Combine(torch.autograd.Function):
    """Both combines: `v2` picks the name; expand_idx is V2's assist_info_for_combine there."""

    @staticmethod
    def forward(ctx, expand_x, expert_scales, shared_expert_x, expert_ids, expand_idx, send_counts, group, kwargs,
                v2):
        call = _npu().npu_moe_distribute_combine_v2 if v2 else _npu().npu_moe_distribute_combine
        extra = {k: _detached(v) for k, v in kwargs.items()}
        if shared_expert_x is not None:
            extra["shared_expert_x"] = shared_expert_x.detach()
        if expert_scales is None:
            expert_scales = torch.empty((0,), dtype=torch.float32)
        out = call(expand_x.detach(), expert_ids, expand_idx, send_counts, expert_scales.detach(), *group, **extra)
        ctx.save_for_backward(expand_x, expert_scales, expert_ids)
        ctx.group, ctx.kwargs, ctx.v2 = group, kwargs, v2
        ctx.has_shared_x = shared_expert_x is not None
        return out

    @staticmethod
    def backward(ctx, grad_out):
        expand_x, expert_scales, expert_ids = ctx.saved_tensors
        weighted = expert_scales.numel() > 0
        shared_ranks = ctx.kwargs.get("shared_expert_rank_num", 0)
        need_w = ctx.needs_input_grad[1] and weighted
        if need_w and not ctx.v2 and shared_ranks > 0:
            raise error(INVALID_PARAM, "npu_moe_distribute_combine: the weight gradient needs "
                                       "shared_expert_rank_num = 0 under autograd (V1's shared-rank rule); use "
                                       f"npu_moe_distribute_combine_v2, got {shared_ranks}")
        rows, count, slots, row_weights, route = _rows_forward(
            grad_out, expert_ids, expert_scales.detach() if weighted else None, ctx.group, ctx.kwargs,
            expand_x.dtype, ctx.v2 or shared_ranks == 0, ctx.v2)
        grad_y = torch.zeros_like(expand_x)
        if weighted:
            grad_y[:count] = (rows[:count].float() * row_weights[:count, None]).to(expand_x.dtype)
        else:
            grad_y[:count] = rows[:count]
        grad_w = _weight_gradient(rows, count, slots, expand_x, expert_ids, route, ctx) if need_w else None
        grad_shared = grad_out.to(expand_x.dtype) if ctx.has_shared_x else None
        return grad_y, grad_w, grad_shared, None, None, None, None, None, None


def _weight_gradient(rows, count, slots, expand_x, expert_ids, route, ctx):
    """grad_w[t, k] = Σ_h g·y summed where the row is, sent back through an unweighted combine."""
    top_k = expert_ids.shape[1]
    dots = (rows[:count].double() * expand_x[:count].double()).sum(dim=1).float()
    moe = slots < top_k
    pieces = torch.zeros((expand_x.shape[0], 3 * top_k), dtype=torch.bfloat16)
    index = torch.nonzero(moe).flatten()
    for j, piece in enumerate(_split3(dots[index])):
        pieces[index, 3 * slots[index] + j] = piece
    assist, recv = route
    back = _combine_rows_back(pieces, expert_ids, assist, recv, ctx.group, ctx.kwargs, expert_ids.shape[0],
                              3 * top_k, v2=ctx.v2).float().view(-1, top_k, 3)
    return (back[:, :, 0] + back[:, :, 1]) + back[:, :, 2]


def _split_group(args, names):
    if len(args) != len(names):
        raise error(INVALID_PARAM, f"expected the positional arguments {', '.join(names)}, got {len(args)} of them")
    return tuple(args)


_GROUP = ("group_ep", "ep_world_size", "ep_rank_id", "moe_expert_num")


def npu_moe_distribute_dispatch_v2(x, expert_ids, *group, **kwargs):
    """moedist.torch.npu_moe_distribute_dispatch_v2, differentiable in x. Same arguments and
    outputs; the gradient of expand_x reaches x through an unweighted combine."""
    _refuse_undifferentiable(kwargs, "npu_moe_distribute_dispatch_v2")
    return _DispatchV2.apply(x, expert_ids, _split_group(group, _GROUP), kwargs)


def npu_moe_distribute_dispatch(x, expert_ids, *group, **kwargs):
    """moedist.torch.npu_moe_distribute_dispatch, differentiable in x."""
    _refuse_undifferentiable(kwargs, "npu_moe_distribute_dispatch")
    return _DispatchV1.apply(x, expert_ids, _split_group(group, _GROUP), kwargs)


def npu_moe_distribute_combine_v2(expand_x, expert_ids, assist_info_for_combine, ep_send_counts, expert_scales,
                                  *group, shared_expert_x=None, **kwargs):
    """moedist.torch.npu_moe_distribute_combine_v2, differentiable in expand_x, expert_scales (when
    not empty) and shared_expert_x."""
    _refuse_undifferentiable(kwargs, "npu_moe_distribute_combine_v2")
    for name in ("ori_x", "const_expert_alpha_1", "const_expert_alpha_2", "const_expert_v"):
        if kwargs.get(name) is not None:
            raise error(INVALID_PARAM, f"npu_moe_distribute_combine_v2: {name} must be None under autograd "
                                       "(special experts are not differentiated)")
    return _Combine.apply(expand_x, expert_scales, shared_expert_x, expert_ids, assist_info_for_combine,
                          ep_send_counts, _split_group(group, _GROUP), kwargs, True)


def npu_moe_distribute_combine(expand_x, expert_ids, expand_idx, ep_send_counts, expert_scales, *group, **kwargs):
    """moedist.torch.npu_moe_distribute_combine, differentiable in expand_x and expert_scales (the
    weight gradient with shared_expert_rank_num = 0)."""
    _refuse_undifferentiable(kwargs, "npu_moe_distribute_combine")
    return _Combine.apply(expand_x, expert_scales, None, expert_ids, expand_idx, ep_send_counts,
                          _split_group(group, _GROUP), kwargs, False)


# --- DeepEP's normal form (docs/contract.md §11) ------------------------------------------------


class _DeepEPDispatch(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, topk_weights, buffer, layout, topk_idx, kwargs):
        num_tokens_per_rank, is_token_in_rank, num_tokens_per_expert = layout
        recv_x, recv_idx, recv_w, counts, handle, _ = buffer.dispatch(
            x.detach(), num_tokens_per_rank=num_tokens_per_rank, is_token_in_rank=is_token_in_rank,
            num_tokens_per_expert=num_tokens_per_expert, topk_idx=topk_idx, topk_weights=topk_weights.detach(),
            **kwargs)
        ctx.buffer, ctx.handle = buffer, handle
        ctx.save_for_backward(recv_idx)
        ctx.mark_non_differentiable(recv_idx)
        return recv_x, recv_idx, recv_w, _Counts(counts), handle

    @staticmethod
    def backward(ctx, grad_recv_x, _grad_idx, grad_recv_w, _grad_counts, _grad_handle):
        (recv_idx,) = ctx.saved_tensors
        m = recv_idx.shape[0]
        hidden = ctx.handle.route["hidden"]
        rows = grad_recv_x if grad_recv_x is not None else torch.zeros((m, hidden), dtype=torch.bfloat16)
        weights = None
        if grad_recv_w is not None:  # only the local slots carry the weight
            weights = torch.where(recv_idx >= 0, grad_recv_w.float(), torch.zeros_like(grad_recv_w, dtype=torch.float32))
        grad_x, grad_w, _ = ctx.buffer.combine(rows.to(torch.bfloat16).contiguous(), ctx.handle, topk_weights=weights)
        return grad_x.contiguous(), grad_w, None, None, None, None


class _Counts(list):
    """The per-expert counts list (not a tensor: no gradient)."""


class _DeepEPCombine(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, topk_weights, buffer, handle):
        combined, combined_w, _ = buffer.combine(x.detach(), handle,
                                                 topk_weights=None if topk_weights is None else topk_weights.detach())
        ctx.buffer, ctx.handle = buffer, handle
        ctx.top_k = None if topk_weights is None else topk_weights.shape[1]
        return combined, combined_w

    @staticmethod
    def backward(ctx, grad_combined, grad_combined_w):
        route = ctx.handle.route
        n, hidden = route["num_tokens"], route["hidden"]
        g = grad_combined if grad_combined is not None else torch.zeros((n, hidden), dtype=torch.bfloat16)
        parts = [g.to(torch.bfloat16).contiguous()]
        if ctx.top_k:  # the weights' gradient rides in the row, as bytes
            gw = grad_combined_w if grad_combined_w is not None else torch.zeros((n, ctx.top_k))
            parts.append(gw.to(torch.float32).contiguous().view(torch.bfloat16).view(n, 2 * ctx.top_k))
        rows, *_ = ctx.buffer.dispatch(torch.cat(parts, dim=1), handle=ctx.handle)
        grad_x = rows[:, :hidden].contiguous()
        grad_w = rows[:, hidden:].contiguous().view(torch.float32) if ctx.top_k else None
        return grad_x, grad_w, None, None


def deep_ep_dispatch(buffer, x, topk_idx, topk_weights, num_tokens_per_rank, is_token_in_rank,
                     num_tokens_per_expert, **kwargs):
    """moedist.deep_ep.Buffer.dispatch (normal mode, top-k form, bf16 x) as an autograd
    Function: returns (recv_x, recv_topk_idx, recv_topk_weights, num_recv_tokens_per_expert_list,
    handle), differentiable in x and topk_weights. The gradient is the normal combine of the
    gradients: grad_x[t] = rne_bf16(Σ over the ranks that received t, ascending, of the rows'
    gradients), grad_topk_weights the same sum in fp32 of the local slots' gradients."""
    if isinstance(x, tuple):
        raise error(INVALID_PARAM, "deep_ep_dispatch: x must be bf16 under autograd (fp8 rows have no gradient)")
    return _DeepEPDispatch.apply(x, topk_weights, buffer, (num_tokens_per_rank, is_token_in_rank,
                                                          num_tokens_per_expert), topk_idx, kwargs)


def deep_ep_combine(buffer, x, handle, topk_weights=None):
    """moedist.deep_ep.Buffer.combine (normal mode, no bias) as an autograd Function: returns
    (combined_x, combined_topk_weights), differentiable in x and topk_weights. The gradient of
    each received row is its token's grad_combined_x (a cached dispatch along the handle), and of
    each row's weights its token's grad_combined_topk_weights, exactly."""
    return _DeepEPCombine.apply(x, topk_weights, buffer, handle)
