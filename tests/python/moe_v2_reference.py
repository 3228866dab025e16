"""A naive reference of the V2 family (docs/contract.md §10) for the Python tests, written from
the contract alone (no moedist code): active entries (prefix and entry masks), routing to MoE
experts and to N shared experts placed by the replica rule, the dispatch outputs of one rank
(expandX rows, assist triples, epRecvCounts, expertTokenNums, expandScales), and combine's fp32
accumulation in the contract's order with zero / copy / const experts, sharedExpertX, unweighted
sums and AddRmsNorm. bf16 rounding is torch's .to(torch.bfloat16) (round to nearest even); every
other step is one numpy float32 operation, so each product and sum is rounded once."""

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

    def inputs(self, rank):
        """Rank `rank`'s inputs (the same in every process): x bits (BS, H), ids (BS, K) int32,
        the mask (None, (BS,) or (BS, K) bool), weights (BS, K) f32, oriX bits, sharedExpertX
        bits, residualX bits (BS, 1, H). Inactive entries get ids no expert has."""
        rng = np.random.default_rng(7919 * self.seed + rank)
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


def expert_rows(job, rows, all_inputs, dst):
    """Rank dst's expert outputs for its rows (bf16 bits, in row order)."""
    out = []
    for src, t, slot in rows:
        x = from_bf16(all_inputs[src]["x"][t])
        if slot < job.top_k:
            factor = moe_factor(int(all_inputs[src]["ids"][t, slot]))
        else:
            factor = shared_factor(slot - job.top_k)
        out.append(to_bf16(x * factor))
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


def combine_acc(job, inp, consts, t):
    """acc of token t (§10.5) before its rounding: float32 (H,)."""
    acc = np.zeros(job.hidden, F32)
    e, z, c = job.experts, job.zero, job.copy
    x = from_bf16(inp["x"][t])
    for k in range(job.top_k):
        if not inp["active"][t, k]:
            continue
        s = inp["weights"][t, k] if job.weighted else F32(1)
        ident = int(inp["ids"][t, k])
        if ident < e:
            u = from_bf16(to_bf16(x * moe_factor(ident)))
        elif ident < e + z:
            continue
        elif ident < e + z + c:
            u = from_bf16(inp["ori_x"][t])
        else:
            u = const_row(job, consts, ident - (e + z + c), inp["ori_x"][t])
        acc = acc + u * s
    for j in range(job.n):
        acc = acc + from_bf16(to_bf16(x * shared_factor(j)))
    if job.shared_x:
        acc = acc + from_bf16(inp["shared_x"][t])
    return acc


def combine(job, inp, consts):
    """x (BS, H) bf16 bits; rows of inactive tokens 0 (the tests allocate x zeroed)."""
    out = np.zeros((inp["ids"].shape[0], job.hidden), np.uint16)
    for t in active_tokens(inp):
        out[t] = to_bf16(combine_acc(job, inp, consts, t))
    return out


def add_rms_norm(job, inp, consts, norm_eps):
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
        s = combine_acc(job, inp, consts, t) + from_bf16(inp["residual"][t, 0])
        x_out[t, 0] = to_bf16(s)
        ms = F32(0)
        for v in s:  # in h order from +0
            ms = F32(ms + F32(F32(v * v) * inv))
        rstd = F32(F32(1) / F32(np.sqrt(F32(ms + eps))))
        rstd_out[t, 0, 0] = rstd
        y[t, 0] = to_bf16(from_bf16(to_bf16(s * rstd)) * gamma)
    return y, rstd_out, x_out
