#!/usr/bin/env python3
"""Writes the fuzzers' seed corpus (tests/fuzz/corpus/) from the test suite's configurations.

The byte layouts mirror byte_reader.hpp and the field order of fuzz_job.cpp, fuzz_first_phase.cpp
and fuzz_views.cpp (fuzz_rank_table.cpp reads plain text); run this again after changing any of
them. Usage: make_corpus.py [out_dir]
"""
import os
import struct
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def rng(lo, hi, v):
    """ByteReader::range(lo, hi) reading v."""
    assert lo <= v <= hi
    return bytes([v - lo]) if hi - lo + 1 <= 256 else struct.pack("<H", v - lo)


def flag(b):
    return bytes([1 if b else 0])


# (W, T, S, L, K, H, BS, uneven, gbs0, bf16, mode, static_scales, smooth, special, expand_scales,
#  ett, comm_quant, routing, strided, extra_rows, c_api) — the shapes of tests/integration/job_test.cpp
JOBS = []
for W in (1, 2, 3, 4, 6):
    for S in (0, 1, 2):
        if S >= W:
            continue
        for L in (1, 2):
            K = min(2, (W - S) * L)
            JOBS.append((W, 1, S, L, K, 40, 5, W > 2, True, True, 0, 1, False, False, True, 0, 0, 0, False, 0, False))
for W in (2, 3, 4):
    for S in (0, 1):
        JOBS.append((W, 2, S, 1, 1, 33, 4, False, True, W % 2 == 0, 1, 1, False, False, True, 1, 2, 1, True, 1, True))
for mode in range(13):
    JOBS.append((4, 1, 1, 2, 3, 300, 5, False, True, mode % 2 == 0, mode, 1 + mode % 3, mode in (1, 4, 6), mode > 3,
                 True, 0, 0, 2, mode % 3 == 0, 0, mode % 4 == 0))
JOBS.append((3, 1, 0, 1, 2, 16, 0, False, True, True, 0, 1, False, False, True, 0, 0, 3, False, 0, False))


def job_bytes(j, bad=None):
    W, T, S, L, K, H, BS, uneven, gbs0, bf16, mode, ss, smooth, special, es, ett, cq, routing, strided, extra, capi = j
    E = (W - S) * L
    b = rng(1, 6, W) + rng(1, 2, T) + rng(0, W - 1, S)
    if T == 1:
        b += rng(1, 3, L)
    b += rng(1, min(E, 6), K) + rng(1, 300, H) + rng(0, 12, BS)
    b += flag(uneven) + flag(gbs0) + flag(bf16) + rng(0, 12, mode) + rng(1, 3, ss)
    b += flag(smooth) + flag(special) + flag(es) + rng(0, 1, ett) + flag(cq == 2) + rng(0, 3, routing)
    b += flag(strided) + rng(0, 2, extra) + flag(capi) + struct.pack("<I", 12345)
    if bad is None:
        b += bytes([0])
    else:
        rank, slot, kind = bad
        b += bytes([255]) + rng(0, W * T - 1, rank) + struct.pack("<H", slot) + rng(0, 3, kind)
    return b


# First phase: attribute() small values as (0, v); extent() as (0, v) or (210, u16).
def attr(v):
    return bytes([0, v]) if 0 <= v < 20 else bytes([200, [0, 1, 2, 3, 4, 7, 8, 16, 24, 32, 64, 128, 144, 256, 288, 512,
                                                          7168].index(v)])


def ext(v):
    return bytes([0, v]) if v < 40 else bytes([210]) + struct.pack("<H", v)


def view(shape):
    b = bytes([0, 0])  # usual dtype, usual rank
    for d in reversed(shape):
        b += ext(d) + bytes([0])  # contiguous stride
    return b + bytes([0])  # non-null data


def maybe(shape):
    return bytes([0]) if shape is None else bytes([200]) + view(shape)


def first_phase(W, rank, E, T, S, sen, quant, gbs, ett, soc, BS, H, K, bf16=True, scales=None):
    L = E // (W - S)
    shared = rank < S
    maxbs = gbs // W if gbs else BS
    A = -(-maxbs * W // S) if shared else maxbs * W * min(L, K)
    local = 1 if shared else L
    b = b"".join(attr(v) for v in (W, rank, E, T, 0)) + bytes([0])  # expertShardType 0
    b += b"".join(attr(v) for v in (sen, S, quant, gbs, ett, 0)) + bytes([soc])
    b += flag(False) + flag(T == 2) + flag(True) + flag(False) + flag(bf16)  # mask, groupTp, hccl 200, pcie
    Tn = max(T, 1)
    b += view([BS, H]) + view([BS, K]) + bytes([1]) + maybe(scales) + maybe(None) + maybe([BS, K])
    b += view([Tn * A, H]) + bytes([1]) + maybe([Tn * A] if quant == 2 else None)
    b += view([BS * K]) + view([local]) + view([Tn * W * local]) + maybe([2] if T == 2 else None) + maybe([A])
    b += flag(True) + flag(True) + flag(True)  # combine reuses expandX, expertScales... x
    return b


def rank_table(ids, key="server_list", child="device"):
    members = ",".join('{"device_id":"%d","device_ip":"192.168.1.%d","rank_id":%s}' % (i, i, r)
                       for i, r in enumerate(ids))
    return '{"version":"1.0","server_count":"1","%s":[{"server_id":"127.0.0.1","%s":[%s]}],"status":"completed"}' % (
        key, child, members)


RANK_TABLES = {
    "seed_a2_16": rank_table(['"%d"' % r for r in range(16)]),
    "integers": rank_table([str(r) for r in (2, 0, 1)]),
    "group_list": rank_table(['"0"', '"1"'], "group_list", "instance_list"),
    "two_servers": '{"server_list":[{"device":[{"rank_id":"0"}]},{"device":[{"rank_id":"1"}]}]}',
    "duplicate": rank_table(['"0"', '"0"']),
    "missing": rank_table(['"0"', '"2"']),
    "odd_ids": rank_table(['"-1"', '1.5', 'true', 'null', '[]', '{}', '"0x1"']),
    "no_rank_id": '{"server_list":[{"device":[{"device_id":"0"}]}]}',
    "empty": '{"server_list":[]}',
    "deep": '{"x":' + "[" * 40 + "]" * 40 + ',"server_list":[{"device":[{"rank_id":"0"}]}]}',
    "deep_rank_id": '{"server_list":[{"device":[{"rank_id":' + "[" * 40 + "]" * 40 + '}]}]}',
    "dup_keys": '{"server_list":[{"device":[{"rank_id":"0","rank_id":"0"}]}],"server_list":[]}',
}


# fuzz_views: E, K, BS, H, quant, weights, expandScales, zero padding, then per tensor a byte
# (< 128: canonical) and its perturbation; zero bytes are the canonical valid call.
def views_bytes(e=0, k=0, bs=0, h=0, quant=False, weights=True, expand_scales=True, padding=False,
                perturb=None):
    b = bytes([e, k, bs, h, 3 if quant else 0, 0 if weights else 1, 0 if expand_scales else 1,
               1 if padding else 0])
    tensors = [bytes([0])] * 12
    if perturb is not None:
        index, how = perturb
        tensors[index] = bytes([200]) + how
    return b + b"".join(tensors) + bytes(64)


VIEWS = {
    "canonical": views_bytes(),
    "e4_k2": views_bytes(e=2, k=1, bs=3, h=20),
    "e8_k8": views_bytes(e=3, k=7, bs=6, h=60),
    "per_token_int8": views_bytes(quant=True),
    "zero_padding": views_bytes(padding=True),
    "no_weights": views_bytes(weights=False, expand_scales=False),
    # x on a block one byte short, x's storage inside the padding, a zero-stride expandX
    "x_short": views_bytes(perturb=(0, bytes([1, 7, 0, 0, 0, 0, 0]))),
    "x_in_padding": views_bytes(perturb=(0, bytes([0, 0, 40, 0, 0, 0, 0, 0]))),
    "expand_x_zero_stride": views_bytes(perturb=(3, bytes([0, 1, 0, 0, 1, 0]))),
}


def main():
    for sub in ("job", "first_phase", "rank_table", "views"):
        os.makedirs(os.path.join(OUT, sub), exist_ok=True)
    n = 0
    for i, j in enumerate(JOBS):
        with open(os.path.join(OUT, "job", f"seed_{i:03d}"), "wb") as f:
            f.write(job_bytes(j))
        n += 1
    for i, j in enumerate(JOBS[:6]):
        with open(os.path.join(OUT, "job", f"bad_id_{i:03d}"), "wb") as f:
            f.write(job_bytes(j, bad=(0, 3, 3 if i % 2 else 0)))
        n += 1
    scenes = [
        # the seed sample's A3 scene (every rank role) and A2 scene, and the default `moedist run`
        (8, 0, 7, 2, 1, 1, 0, 64, 1, 2, 8, 7168, 3),
        (8, 3, 7, 2, 1, 1, 0, 64, 1, 2, 8, 7168, 3),
        (16, 5, 16, 0, 0, 0, 0, 128, 0, 1, 8, 7168, 8),
        (8, 2, 64, 0, 0, 0, 0, 0, 0, 0, 32, 7168, 8),
        (8, 2, 64, 0, 0, 0, 2, 0, 0, 0, 32, 7168, 8),
        (4, 1, 6, 0, 1, 1, 0, 0, 0, 0, 5, 300, 3),
    ]
    for i, s in enumerate(scenes):
        with open(os.path.join(OUT, "first_phase", f"scene_{i:03d}"), "wb") as f:
            f.write(first_phase(*s))
        n += 1
    for name, text in RANK_TABLES.items():
        with open(os.path.join(OUT, "rank_table", name + ".json"), "w") as f:
            f.write(text)
        n += 1
    for name, data in VIEWS.items():
        with open(os.path.join(OUT, "views", name), "wb") as f:
            f.write(data)
        n += 1
    print(f"wrote {n} seed inputs under {OUT}")


if __name__ == "__main__":
    main()
