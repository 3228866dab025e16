"""A naive reference of SPEC §3-§5 for the Python tests, written from the SPEC alone (no moedist
code): the layout of one MoE rank's dispatch outputs (T = 1, S = 0), per-token int8 quantization,
and combine's fp32 accumulation order with bf16 / fp16 rounding."""

import socket

import numpy as np


def bf16_bits(f32):
    """Round-to-nearest-even binary32 -> bfloat16 bit patterns (finite inputs)."""
    bits = np.ascontiguousarray(f32, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_to_f32(bits):
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def inputs(rank, bs, hidden, num_experts, top_k):
    """Rank `rank`'s tokens: bf16 bits (BS, H) that differ per rank, token and column, distinct
    expert ids per token, fp32 routing weights."""
    rng = np.random.default_rng(1000 + rank)
    x = bf16_bits(rng.standard_normal((bs, hidden)).astype(np.float32) * np.float32(1 + rank))
    ids = np.array([rng.permutation(num_experts)[:top_k] for _ in range(bs)], np.int32).reshape(bs, top_k)
    weights = rng.uniform(0.1, 1.0, (bs, top_k)).astype(np.float32)
    return x, ids, weights


def dispatch_layout(all_ids, rank, world, num_experts):
    """For MoE rank `rank`: the received rows as (src, token, k) in expandX order, the per-expert
    counts and epRecvCounts (inclusive running total over e*W + src)."""
    local = num_experts // world
    rows, counts, recv = [], [], []
    total = 0
    for e in range(rank * local, (rank + 1) * local):
        n_e = 0
        for src in range(world):
            ids = all_ids[src]
            for t in range(ids.shape[0]):
                for k in range(ids.shape[1]):
                    if ids[t, k] == e:
                        rows.append((src, t, k))
                        n_e += 1
                        total += 1
            recv.append(total)
        counts.append(n_e)
    return rows, np.array(counts, np.int64), np.array(recv, np.int32)


def expand_idx(ids):
    """expandIdx: for each flattened entry, how many earlier entries went to the same expert."""
    seen = {}
    out = []
    for e in ids.reshape(-1):
        out.append(seen.get(int(e), 0))
        seen[int(e)] = seen.get(int(e), 0) + 1
    return np.array(out, np.int32)


def quantize_int8(row_f32):
    """Per-token dynamic int8 (SPEC §5 mode 2, no smooth scales): (q, scale)."""
    m = np.float32(np.max(np.abs(row_f32)))
    if m == 0:
        return np.zeros(row_f32.shape, np.int8), np.float32(0)
    ds = np.float32(127) / m
    q = np.clip(np.rint((row_f32 * ds).astype(np.float32)), -128, 127).astype(np.int8)
    return q, np.float32(np.float32(1) / ds)


def expert_transform(row_bits, expert):
    """The tests' stand-in for expert `expert`: bf16(x * (1 + expert / 8))."""
    return bf16_bits(bf16_to_f32(row_bits) * np.float32(1 + expert / 8))


def combine(x_bits, ids, weights):
    """x[t] = bf16(acc), acc = fl32(acc + fl32(f32(row(t,k)) * w[t,k])) for k in order, where
    row(t,k) is expert ids[t,k]'s output for token t (expert_transform)."""
    bs, top_k = ids.shape
    out = np.zeros(x_bits.shape, np.uint16)
    for t in range(bs):
        acc = np.zeros(x_bits.shape[1], np.float32)
        for k in range(top_k):
            row = bf16_to_f32(expert_transform(x_bits[t], int(ids[t, k])))
            acc = (acc + (row * weights[t, k]).astype(np.float32)).astype(np.float32)
        out[t] = bf16_bits(acc)
    return out


def free_port():
    """A TCP port free on 127.0.0.1 for a torch.distributed rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
