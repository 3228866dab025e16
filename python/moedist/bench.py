"""moedist vs the plain torch.distributed way, side by side on the same processes.

    PYTHONPATH=build/python /usr/bin/python3 -m moedist.bench [--ranks 8] [--tokens 8,128]

Per BS, each rank times (median of --reps, a barrier before each):
  moedist   Distributor.dispatch + combine into preallocated outputs (inputs and outputs in the
            shared arena, so peers read and write them in place)
  torch     what CPU MoE code does today: index_select packing by destination rank,
            all_to_all_single of the counts and of the rows over gloo, and the reverse for combine
            with a weighted index_add on the home rank
With --deep-ep: moedist.deep_ep's normal dispatch/combine (each token once per destination rank)
and low-latency dispatch/combine next to the V1 calls, each call timed alone, with the rows each
dispatch moves (summed over ranks).
Shape defaults: DeepSeek-like H 7168, K 8, E 256, bf16, uniform routing."""

import argparse
import json
import socket
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _inputs(rank, bs, hidden, experts, top_k):
    g = torch.Generator().manual_seed(1 + rank)
    x = torch.randn(bs, hidden, generator=g).to(torch.bfloat16)
    ids = torch.stack([torch.randperm(experts, generator=g)[:top_k] for _ in range(bs)]).to(torch.int32)
    weights = torch.rand(bs, top_k, generator=g)
    return x, ids, weights


def _time(fn, reps, warmup):
    samples = []
    for i in range(warmup + reps):
        dist.barrier()
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        if i >= warmup:
            samples.append(dt)
    return statistics.median(samples)


def _time_rounds(groups, reps, warmup):
    """Medians of each call of `groups` (a list of {name: callable}, e.g. a dispatch and its
    combine), each call timed alone but in rounds: one call of each per round, groups in an order
    that rotates from round to round, so that drift in the machine's load and what ran just before
    (a call that leaves the caches cold) hit every one alike."""
    samples = {name: [] for group in groups for name in group}
    for i in range(warmup + reps):
        for group in groups[i % len(groups):] + groups[:i % len(groups)]:
            for name, fn in group.items():
                dist.barrier()
                t0 = time.perf_counter()
                fn()
                dt = time.perf_counter() - t0
                if i >= warmup:
                    samples[name].append(dt)
    return {name: statistics.median(v) for name, v in samples.items()}


def _torch_way(x, ids, weights, world, experts):
    """Dispatch by all_to_all_single (counts, then rows), identity experts, combine back."""
    local = experts // world
    flat = ids.reshape(-1).long()
    dest = flat // local
    order = torch.argsort(dest, stable=True)
    send_rows = x.index_select(0, order // ids.shape[1])
    send_counts = torch.bincount(dest, minlength=world)
    recv_counts = torch.empty_like(send_counts)
    dist.all_to_all_single(recv_counts, send_counts)
    # gloo has no bf16 (nor int16): the rows travel as their bytes.
    recv = torch.empty((int(recv_counts.sum()), 2 * x.shape[1]), dtype=torch.uint8)
    dist.all_to_all_single(recv, send_rows.view(torch.uint8), recv_counts.tolist(), send_counts.tolist())
    back = torch.empty_like(send_rows).view(torch.uint8)
    dist.all_to_all_single(back, recv, send_counts.tolist(), recv_counts.tolist())
    back = back.view(x.dtype)
    out = torch.zeros(x.shape, dtype=torch.float32)
    out.index_add_(0, order // ids.shape[1], back.float() * weights.reshape(-1)[order, None])
    return out.to(x.dtype)


def _rank(rank, port, args, results):
    import moedist
    import moedist.torch as md

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=args.ranks)
    ep = moedist.Communicator.find(md.comm_name(), rank)
    rows = []
    for bs in args.tokens:
        x0, ids0, w0 = _inputs(rank, bs, args.hidden, args.experts, args.topk)
        x = md.empty(x0.shape, torch.bfloat16)
        x.copy_(x0)
        ids, weights = md.empty(ids0.shape, torch.int32), md.empty(w0.shape, torch.float32)
        ids.copy_(ids0)
        weights.copy_(w0)
        moe = moedist.Distributor(ep, moe_expert_num=args.experts)
        shapes = moedist.output_shapes(moe, bs, args.topk, args.hidden)
        expand_x = md.empty(shapes["expand_x"], torch.bfloat16)
        expand_idx = md.empty(shapes["expand_idx"], torch.int32)
        token_nums = md.empty(shapes["expert_token_nums"], torch.int64)
        recv = md.empty(shapes["ep_recv_counts"], torch.int32)
        out = md.empty((bs, args.hidden), torch.bfloat16)

        def moedist_way():
            moe.dispatch(x, ids, expand_x, expand_idx, token_nums, recv)
            moe.combine(expand_x, ids, expand_idx, recv, weights, out)

        t_moedist = _time(moedist_way, args.reps, args.warmup)
        t_torch = _time(lambda: _torch_way(x0, ids0, w0, args.ranks, args.experts), args.reps, args.warmup)
        rows.append({"ranks": args.ranks, "bs": bs, "hidden": args.hidden, "topk": args.topk,
                     "experts": args.experts, "moedist_ms": t_moedist * 1e3, "torch_ms": t_torch * 1e3})
    if rank == 0:
        results.put(rows)
    dist.barrier()


def _deep_ep_rank(rank, port, args, results):
    """DeepEP's normal and low-latency modes next to the V1 dispatch and combine, each call timed
    alone, and the rows (bytes) each dispatch moves."""
    import moedist
    import moedist.deep_ep as deep_ep
    import moedist.torch as md

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=args.ranks)
    ep = moedist.Communicator.find(md.comm_name(), rank)
    buffer = deep_ep.Buffer(dist.group.WORLD, int(2e9), 0)
    rows = []
    for bs in args.tokens:
        x0, ids0, w0 = _inputs(rank, bs, args.hidden, args.experts, args.topk)
        x = md.empty(x0.shape, torch.bfloat16)
        x.copy_(x0)
        ids = md.empty(ids0.shape, torch.int32)
        ids.copy_(ids0)
        weights = md.empty(w0.shape, torch.float32)
        weights.copy_(w0)
        ids64 = ids0.long()
        moe = moedist.Distributor(ep, moe_expert_num=args.experts, expert_token_nums_type=1)
        shapes = moedist.output_shapes(moe, bs, args.topk, args.hidden)
        expand_x = md.empty(shapes["expand_x"], torch.bfloat16)
        expand_idx = md.empty(shapes["expand_idx"], torch.int32)
        token_nums = md.empty(shapes["expert_token_nums"], torch.int64)
        recv = md.empty(shapes["ep_recv_counts"], torch.int32)
        out = md.empty((bs, args.hidden), torch.bfloat16)
        layout = buffer.get_dispatch_layout(ids64, args.experts)
        per_rank, _, per_expert, in_rank, _ = layout
        state = {}

        def normal_dispatch():
            state["normal"] = buffer.dispatch(x, num_tokens_per_rank=per_rank, is_token_in_rank=in_rank,
                                              num_tokens_per_expert=per_expert, topk_idx=ids64, topk_weights=w0)

        def normal_combine():
            recv_x, _, recv_w, _, handle, _ = state["normal"]
            buffer.combine(recv_x, handle, topk_weights=recv_w)

        def ll_dispatch():
            state["ll"] = buffer.low_latency_dispatch(x, ids64, bs, args.experts, use_fp8=False)

        def ll_combine():
            ll_x, _, ll_handle, _, _ = state["ll"]
            buffer.low_latency_combine(ll_x, ids64, w0, ll_handle)

        t = _time_rounds([
            {"v1_dispatch": lambda: moe.dispatch(x, ids, expand_x, expand_idx, token_nums, recv),
             "v1_combine": lambda: moe.combine(expand_x, ids, expand_idx, recv, weights, out)},
            {"normal_dispatch": normal_dispatch, "normal_combine": normal_combine},
            {"ll_dispatch": ll_dispatch, "ll_combine": ll_combine}], args.reps, args.warmup)
        v1_rows = int(token_nums.sum())
        normal_rows = state["normal"][0].shape[0]
        counts = torch.tensor([v1_rows, normal_rows], dtype=torch.int64)
        dist.all_reduce(counts)
        rows.append(dict({k: v * 1e3 for k, v in t.items()}, ranks=args.ranks, bs=bs, hidden=args.hidden,
                         topk=args.topk, experts=args.experts, v1_rows=int(counts[0]), normal_rows=int(counts[1])))
    if rank == 0:
        results.put(rows)
    buffer.destroy()
    dist.barrier()


def _print_deep_ep(rows):
    print(f"{'ranks':>5} {'BS':>5} | {'V1 d':>8} {'V1 c':>8} | {'normal d':>9} {'normal c':>9} {'nd/V1d':>7} "
          f"{'rows normal/V1':>15} | {'LL d':>8} {'LL c':>8} {'LLd/V1d':>8} {'LLc/V1c':>8}   (ms)")
    for r in rows:
        print(f"{r['ranks']:>5} {r['bs']:>5} | {r['v1_dispatch']:>8.3f} {r['v1_combine']:>8.3f} | "
              f"{r['normal_dispatch']:>9.3f} {r['normal_combine']:>9.3f} "
              f"{r['normal_dispatch'] / r['v1_dispatch']:>7.2f} "
              f"{r['normal_rows']:>7}/{r['v1_rows']:<7} | {r['ll_dispatch']:>8.3f} {r['ll_combine']:>8.3f} "
              f"{r['ll_dispatch'] / r['v1_dispatch']:>8.2f} {r['ll_combine'] / r['v1_combine']:>8.2f}")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m moedist.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ranks", type=int, default=8, help="processes (EP world size) (default: %(default)s)")
    p.add_argument("--tokens", type=lambda s: [int(v) for v in s.split(",")], default=[8, 128],
                   help="BS per rank, comma-separated (default: 8,128)")
    p.add_argument("--hidden", type=int, default=7168, help="H (default: %(default)s)")
    p.add_argument("--topk", type=int, default=8, help="K (default: %(default)s)")
    p.add_argument("--experts", type=int, default=256, help="E (default: %(default)s)")
    p.add_argument("--reps", type=int, default=10, help="timed repetitions per point; the median is shown "
                                                        "(default: %(default)s)")
    p.add_argument("--warmup", type=int, default=3, help="untimed repetitions first (default: %(default)s)")
    p.add_argument("--json", metavar="FILE", help="also write the points to FILE as JSON")
    p.add_argument("--deep-ep", action="store_true",
                   help="time moedist.deep_ep's normal and low-latency modes next to the V1 calls, and count "
                        "the rows each dispatch moves")
    args = p.parse_args(argv)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.get_context("spawn").Queue()
    mp.spawn(_deep_ep_rank if args.deep_ep else _rank, args=(port, args, results), nprocs=args.ranks, join=True)
    rows = results.get()
    if args.deep_ep:
        _print_deep_ep(rows)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"points": rows}, f, indent=1)
        return 0
    print(f"{'ranks':>5} {'BS':>5} {'H':>6} {'K':>3} {'E':>4} {'moedist d+c ms':>15} {'torch a2a ms':>13} {'speedup':>8}")
    for r in rows:
        print(f"{r['ranks']:>5} {r['bs']:>5} {r['hidden']:>6} {r['topk']:>3} {r['experts']:>4} "
              f"{r['moedist_ms']:>15.3f} {r['torch_ms']:>13.3f} {r['torch_ms'] / r['moedist_ms']:>7.1f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"points": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
