"""A naive reference of the V2 family (docs/contract.md §10) for the Python tests, written from
the contract alone (no moedist code): active entries (prefix and entry masks), routing to MoE
experts and to N shared experts placed by the replica rule, the dispatch outputs of one rank
(expandX rows, assist triples, epRecvCounts, expertTokenNums, expandScales), and combine's fp32
accumulation in the contract's order with zero / copy / const experts, sharedExpertX, unweighted
sums and AddRmsNorm; and TP = 2 (§3 "T = 2", §4.1): two EP groups of the same shape, one per
tp_rank, each rank's expandX holding its own rows then its TP peer's, and combine's TP add. bf16
rounding is torch's .to(torch.bfloat16) (round to nearest even); every other step is one numpy
float32 operation, so each product and sum is rounded once."""

import math
from dataclasses import dataclass, field

import numpy as np
import torch

F32 = np.float32


def to_bf16(f32):
    """rne_bf16 of a float32 array: bf16 bit patterns (uint16)."""
    t = torch.from_numpy(np.ascontiguousarray(f32, dtype=np.float32)).to(torch.bfloat16)
    return t.view(torch.int16).numpy().view(np.uint16)


def from_bf16(bits):
    b = np.asarray(bits, dtype=np.uint16)
    return (b.reshape(-1).astype(np.uint32) << 16).view(np.float32).reshape(b.shape)


def tensor(bits):
    """bf16 bit patterns as a torch.bfloat16 tensor."""
    return torch.from_numpy(np.ascontiguousarray(bits).view(np.int16)).view(torch.bfloat16)


def bits(t):
    return t.contiguous().view(torch.int16).numpy().view(np.uint16)


@dataclass
class Job:
    """One V2 job: W ranks, S shared ranks holding N shared experts, E MoE experts, Z/C/Q
    zero/copy/const experts, top-k K, hidden H, BS per rank. mask: None, "prefix" or "entries"."""

    world: int
    shared_ranks: int
    shared_experts: int
    experts: int
    top_k: int
    hidden: int
    bs: list
    zero: int = 0
    copy: int = 0
    const: int = 0
    mask: str = None
    weighted: bool = True
    alpha_matrix: bool = False  # const experts' alphas (Q, H) instead of (Q,)
    shared_x: bool = False      # sharedExpertX given to combine (S = 0 only)
    uneven: bool = False        # globalBs = maxBs * W (else 0: every BS equal)
    seed: int = 0
    token_nums_type: int = 1
    tp: int = 1                 # T: 2 = two EP groups (one per tp_rank) paired rank by rank
    extra: dict = field(default_factory=dict)

    @property
    def n(self):  # N after the fix-up
        return self.shared_experts if self.shared_ranks > 0 else 0

    @property
    def replicas(self):  # R = S / N
        return self.shared_ranks // self.n if self.n else 0

    @property
    def local(self):  # L
        return self.experts // (self.world - self.shared_ranks)

    @property
    def all_experts(self):  # E'
        return self.experts + self.zero + self.copy + self.const

    @property
    def global_bs(self):
        return max(self.bs) * self.world if self.uneven else 0

    def capacity(self, rank):
        max_bs = max(self.bs)
        if rank < self.shared_ranks:
            return max_bs * (-(-self.world // self.replicas))
        return max_bs * self.world * min(self.local, self.top_k)

    def inputs(self, rank, tp_rank=0):
        """Rank `rank`'s inputs (the same in every process): x bits (BS, H), ids (BS, K) int32,
        the mask (None, (BS,) or (BS, K) bool), weights (BS, K) f32, oriX bits, sharedExpertX
        bits, residualX bits (BS, 1, H). Inactive entries get ids no expert has. With T = 2,
        `rank` is the EP rank inside the EP group of `tp_rank` (each group has its own tokens)."""
        rng = np.random.default_rng(7919 * self.seed + rank + 1_000_003 * tp_rank)
        bs, k, h = self.bs[rank], self.top_k, self.hidden
        x = to_bf16(rng.standard_normal((bs, h)).astype(F32) * F32(1 + rank % 3))
        ids = rng.integers(0, self.all_experts, (bs, k)).astype(np.int32)  # duplicates allowed
        if self.mask == "prefix":
            n = int(rng.integers(0, bs + 1)) if bs else 0
            mask = np.arange(bs) < n
            active = np.repeat(mask[:, None], k, axis=1)
        elif self.mask == "entries":
            mask = rng.random((bs, k)) < 0.6
            active = mask
        else:
            mask = None
            active = np.ones((bs, k), bool)
        ids[~active] = np.int32(1 << 30)  # never read
        weights = rng.uniform(0.1, 1.0, (bs, k)).astype(F32)
        ori_x = to_bf16(rng.standard_normal((bs, h)).astype(F32))
        # sharedExpertX partly cancels the large routed rows (moe_factor): added in another
        # place than last, it would change the bf16 results.
        shared_x = to_bf16(from_bf16(x) * F32(-3000) + rng.standard_normal((bs, h)).astype(F32))
        residual = to_bf16(rng.standard_normal((bs, 1, h)).astype(F32))
        return dict(x=x, ids=ids, mask=mask, active=active, weights=weights, ori_x=ori_x, shared_x=shared_x,
                    residual=residual)

    def constants(self):
        """const experts' alpha1, alpha2 ((Q,) or (Q, H)) and v (Q, H), bf16 bits; gamma (H,)."""
        rng = np.random.default_rng(104729 + self.seed)
        q, h = self.const, self.hidden
        shape = (q, h) if self.alpha_matrix else (q,)
        scale = F32(0.2) if self.alpha_matrix else F32(1)
        return dict(alpha1=to_bf16(rng.uniform(-1, 1, shape).astype(F32) * scale),
                    alpha2=to_bf16(rng.uniform(-1, 1, shape).astype(F32) * scale),
                    v=to_bf16(rng.standard_normal((q, h)).astype(F32)),
                    gamma=to_bf16(rng.uniform(0.5, 1.5, (h,)).astype(F32)))


def active_tokens(inp):
    return [t for t in range(inp["ids"].shape[0]) if inp["active"][t].any()]


def dispatch(job, all_inputs, dst):
    """Rank dst's dispatch (§10.3, §10.4): rows as (src, t, slot), epRecvCounts, expertTokenNums,
    and for each row its expandScales value."""
    w, k = job.world, job.top_k
    rows, recv, scales = [], [], []
    if dst >= job.shared_ranks:
        counts = []
        for le in range(job.local):
            e = (dst - job.shared_ranks) * job.local + le
            n_e = 0
            for src in range(w):
                inp = all_inputs[src]
                for t in range(inp["ids"].shape[0]):
                    for kk in range(k):
                        if inp["active"][t, kk] and inp["ids"][t, kk] == e:
                            rows.append((src, t, kk))
                            scales.append(inp["weights"][t, kk])
                            n_e += 1
                recv.append(len(rows))
            counts.append(n_e)
        nums = np.cumsum(counts) if job.token_nums_type == 0 else np.array(counts)
        if job.local == 1:
            nums = np.array([len(rows)])
    else:
        j = dst // job.replicas
        for src in range(w):
            if src % job.replicas == dst % job.replicas:
                for t in active_tokens(all_inputs[src]):
                    rows.append((src, t, k + j))
                    scales.append(F32(1))
            recv.append(len(rows))
        nums = np.array([len(rows)])
    return rows, np.array(recv, np.int32), nums.astype(np.int64), np.array(scales, F32)


def moe_factor(expert):
    """The tests' stand-in experts: row -> bf16(row * factor). Large factors of both signs make
    partial cancellations, so a different summation order shows in the bf16 results."""
    big = {1: 4096, 3: -4096}.get(expert % 4, 1)
    return F32((1 + (expert % 7) / 8) * big)


def shared_factor(j):
    """Shared experts 0 and 1 cancel exactly: routed terms added before them lose their low bits
    (as the contract's order says), added after them they would not."""
    return F32({0: 65536, 1: -65536}.get(j, 0.25 + j / 2))


def tp_half(tp_rank):
    """With T = 2 each TP half of an expert gives its own partial result (as a tensor-parallel
    expert does): half t scales the row by this. Not powers of two, so each half's bf16 rounding
    and the rounding of their sum show in the results."""
    return {0: F32(0.7), 1: F32(0.3)}[tp_rank]


def expert_out(job, x, factor, tp_rank=0):
    """The stand-in expert's output (bf16 bits) for a row x (f32) on a rank of TP rank tp_rank."""
    if job.tp == 1:
        return to_bf16(x * factor)
    return to_bf16((x * factor) * tp_half(tp_rank))


def row_factor(job, inp, t, slot):
    if slot < job.top_k:
        return moe_factor(int(inp["ids"][t, slot]))
    return shared_factor(slot - job.top_k)


def expert_rows(job, rows, all_inputs, dst, tp_rank=0):
    """Rank dst's expert outputs for its rows (bf16 bits, in row order)."""
    out = []
    for src, t, slot in rows:
        x = from_bf16(all_inputs[src]["x"][t])
        out.append(expert_out(job, x, row_factor(job, all_inputs[src], t, slot), tp_rank))
    return out


def returned_row(job, x, factor, tp_rank=0):
    """What combine weights for an own row whose token is x (f32) and expert factor `factor`:
    with T = 1 the expert output; with T = 2 (§4.1) rne_bf16(fl32(f32(mine) + f32(peer))), mine
    from this rank's half, peer the same row as the TP peer's half computed it (the peer got it
    as one of its peer rows)."""
    mine = from_bf16(expert_out(job, x, factor, tp_rank))
    if job.tp == 1:
        return mine
    peer = from_bf16(expert_out(job, x, factor, 1 - tp_rank))
    return from_bf16(to_bf16(mine + peer))


# --- TP = 2 (§3 "T = 2", §4.1) ------------------------------------------------------------------
# Global rank g = ep_rank * 2 + tp_rank; EP group t = the 8 (W) ranks of tp_rank t, each with its
# own inputs; TP pair e = (2e, 2e + 1). Needs L == 1 (or a shared rank).


def dispatch_tp(job, inputs_by_tp, ep_rank, tp_rank):
    """Rank (ep_rank, tp_rank)'s dispatch with T = 2. inputs_by_tp[t][r] = inputs of EP rank r of
    EP group t. Returns a dict: rows = [(group, src, t, slot)] for expandX rows [0, own + peer)
    (own rows: group tp_rank, as T = 1 in that group; then the peer's own rows in the peer's
    order: group 1 - tp_rank); assist = the own rows' (src, t, slot); recv = epRecvCounts (own
    array, then the peer's verbatim); nums = expertTokenNums (L == 1 or shared: all rows, peer
    rows included); tp_recv = [own, peer] indexed by tp_rank; scales = expandScales of own rows."""
    assert job.tp == 2 and (ep_rank < job.shared_ranks or job.local == 1)
    own_rows, own_recv, _, own_scales = dispatch(job, inputs_by_tp[tp_rank], ep_rank)
    peer_rows, peer_recv, _, _ = dispatch(job, inputs_by_tp[1 - tp_rank], ep_rank)
    tp_recv = np.zeros(2, np.int32)
    tp_recv[tp_rank] = len(own_rows)
    tp_recv[1 - tp_rank] = len(peer_rows)
    return dict(rows=[(tp_rank,) + r for r in own_rows] + [(1 - tp_rank,) + r for r in peer_rows],
                assist=own_rows, recv=np.concatenate([own_recv, peer_recv]).astype(np.int32),
                nums=np.array([len(own_rows) + len(peer_rows)], np.int64), tp_recv=tp_recv, scales=own_scales)


def expert_rows_tp(job, rows, inputs_by_tp, tp_rank):
    """Rank (_, tp_rank)'s expert outputs for dispatch_tp's rows (bf16 bits, in row order): this
    rank's half of each row's expert, own and peer rows alike."""
    out = []
    for group, src, t, slot in rows:
        inp = inputs_by_tp[group][src]
        out.append(expert_out(job, from_bf16(inp["x"][t]), row_factor(job, inp, t, slot), tp_rank))
    return out


def const_row(job, consts, c, ori):
    """u of const expert c for a token whose oriX is `ori` (§10.6)."""
    x = from_bf16(ori)
    v = from_bf16(consts["v"][c])
    if not job.alpha_matrix:
        a1 = from_bf16(consts["alpha1"][c])
        a2 = from_bf16(consts["alpha2"][c])
        return (x * a1) + (v * a2)
    a1 = from_bf16(consts["alpha1"][c])
    a2 = from_bf16(consts["alpha2"][c])
    l1, l2 = F32(0), F32(0)
    for h in range(job.hidden):  # in h order from +0
        l1 = F32(l1 + F32(a1[h] * x[h]))
        l2 = F32(l2 + F32(a2[h] * x[h]))
    m = max(l1, l2)
    e1 = F32(math.exp(float(F32(l1 - m))))  # exp of a float32 argument, rounded once to float32
    e2 = F32(math.exp(float(F32(l2 - m))))
    sigma = F32(e1 + e2)
    p1, p2 = F32(e1 / sigma), F32(e2 / sigma)
    return (x * p1) + (v * p2)


def combine_acc(job, inp, consts, t, tp_rank=0):
    """acc of token t (§10.5) before its rounding: float32 (H,). tp_rank: the combining rank's
    (T = 2: routed and shared rows after §4.1's TP add)."""
    acc = np.zeros(job.hidden, F32)
    e, z, c = job.experts, job.zero, job.copy
    x = from_bf16(inp["x"][t])
    for k in range(job.top_k):
        if not inp["active"][t, k]:
            continue
        s = inp["weights"][t, k] if job.weighted else F32(1)
        ident = int(inp["ids"][t, k])
        if ident < e:
            u = returned_row(job, x, moe_factor(ident), tp_rank)
        elif ident < e + z:
            continue
        elif ident < e + z + c:
            u = from_bf16(inp["ori_x"][t])
        else:
            u = const_row(job, consts, ident - (e + z + c), inp["ori_x"][t])
        acc = acc + u * s
    for j in range(job.n):
        acc = acc + returned_row(job, x, shared_factor(j), tp_rank)
    if job.shared_x:
        acc = acc + from_bf16(inp["shared_x"][t])
    return acc


def combine(job, inp, consts, tp_rank=0):
    """x (BS, H) bf16 bits; rows of inactive tokens 0 (the tests allocate x zeroed)."""
    out = np.zeros((inp["ids"].shape[0], job.hidden), np.uint16)
    for t in active_tokens(inp):
        out[t] = to_bf16(combine_acc(job, inp, consts, t, tp_rank))
    return out


def add_rms_norm(job, inp, consts, norm_eps, tp_rank=0):
    """(y (BS, 1, H) bits, rstd (BS, 1, 1) f32, x (BS, 1, H) bits) of CombineAddRmsNorm (§10.7);
    rows of inactive tokens 0."""
    bs, h = inp["ids"].shape[0], job.hidden
    y = np.zeros((bs, 1, h), np.uint16)
    rstd_out = np.zeros((bs, 1, 1), F32)
    x_out = np.zeros((bs, 1, h), np.uint16)
    inv = F32(F32(1) / F32(h))
    eps = F32(norm_eps)
    gamma = from_bf16(consts["gamma"])
    for t in active_tokens(inp):
        s = combine_acc(job, inp, consts, t, tp_rank) + from_bf16(inp["residual"][t, 0])
        x_out[t, 0] = to_bf16(s)
        ms = F32(0)
        for v in s:  # in h order from +0
            ms = F32(ms + F32(F32(v * v) * inv))
        rstd = F32(F32(1) / F32(np.sqrt(F32(ms + eps))))
        rstd_out[t, 0, 0] = rstd
        y[t, 0] = to_bf16(from_bf16(to_bf16(s * rstd)) * gamma)
    return y, rstd_out, x_out
