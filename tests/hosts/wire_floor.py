#!/usr/bin/env python3
"""The wire floor between two hosts: how long plain TCP sockets take to move a call's bytes across,
in the same pattern as the call (every process of this host sends an equal share to every
process of the other host while receiving its share from them, both directions at once). No
engine moving those bytes between these hosts can be faster than this by much; bench_two_hosts.sh
prints it next to the ucx engine's times.

    wire_floor.py HOST_INDEX MY_ADDR PEER_ADDR PROCESSES MB [MB ...] [--reps N] [--port P]

HOST_INDEX 0 or 1; MB: megabytes (1e6) this host sends across per call, one figure per case.
Prints one line per case: `wire MB median_ms` (the median over reps of the slowest process)."""
import argparse
import os
import selectors
import socket
import statistics
import struct
import sys
import time


def connect(addr, port, deadline):
    while True:
        try:
            return socket.create_connection((addr, port), timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def exact(sock, view):
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if n == 0:
            raise ConnectionError("peer closed")
        got += n


def move(outs, ins, data, sinks):
    """Every share out and in at once, from one thread: non-blocking sockets, each served as it
    is ready (as an engine's progress loop would)."""
    sel = selectors.DefaultSelector()
    sent = {s: 0 for s in outs}
    got = {s: 0 for s in ins}
    for s in outs:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_WRITE)
    for s, view in zip(ins, sinks):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, view)
    left = len(outs) + len(ins)
    while left:
        for key, _ in sel.select():
            s = key.fileobj
            if key.data is None:
                try:
                    sent[s] += s.send(data[sent[s]:])
                except BlockingIOError:
                    continue
                if sent[s] == len(data):
                    sel.unregister(s)
                    left -= 1
            else:
                try:
                    n = s.recv_into(key.data[got[s]:])
                except BlockingIOError:
                    continue
                if n == 0:
                    raise ConnectionError("peer closed")
                got[s] += n
                if got[s] == len(key.data):
                    sel.unregister(s)
                    left -= 1
    sel.close()
    for s in outs + ins:
        s.setblocking(True)


def process(index, args, results):
    """Process `index` of this host: one connection to each process of the other host (out), one
    from each (in); per rep a handshake byte both ways, then the share out and in at once."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.my_addr, args.port + index))
    listener.listen(args.processes)
    deadline = time.monotonic() + 30
    outs = [connect(args.peer_addr, args.port + j, deadline) for j in range(args.processes)]
    ins = [listener.accept()[0] for _ in range(args.processes)]
    for s in outs + ins:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = {}
    for mb in args.mb:
        share = max(1, int(mb * 1e6 / args.processes / args.processes))
        data = bytearray(os.urandom(1024)) * (share // 1024 + 1)
        data = memoryview(data)[:share]
        sinks = [memoryview(bytearray(share)) for _ in ins]
        samples = []
        for _ in range(args.reps):
            for s in outs:
                s.sendall(b"!")
            for s in ins:
                exact(s, memoryview(bytearray(1)))
            start = time.perf_counter()
            move(outs, ins, data, sinks)
            samples.append(time.perf_counter() - start)
        times[mb] = samples
    results.write(struct.pack(f"{len(args.mb) * args.reps}d", *[t for mb in args.mb for t in times[mb]]))
    results.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("host_index", type=int)
    parser.add_argument("my_addr")
    parser.add_argument("peer_addr")
    parser.add_argument("processes", type=int)
    parser.add_argument("mb", type=float, nargs="+")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--port", type=int, default=5700)
    args = parser.parse_args()
    pipes, pids = [], []
    for i in range(args.processes):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            with os.fdopen(write_end, "wb") as out:
                process(i, args, out)
            os._exit(0)
        os.close(write_end)
        pipes.append(read_end)
        pids.append(pid)
    count = len(args.mb) * args.reps
    per_process = []
    for fd in pipes:
        with os.fdopen(fd, "rb") as f:
            raw = f.read()
        if len(raw) != 8 * count:
            print("wire_floor: a process failed", file=sys.stderr)
            return 1
        per_process.append(struct.unpack(f"{count}d", raw))
    failed = any(os.waitpid(p, 0)[1] != 0 for p in pids)
    for c, mb in enumerate(args.mb):
        slowest = [max(p[c * args.reps + r] for p in per_process) for r in range(args.reps)]
        print(f"wire {mb:g} {statistics.median(slowest) * 1e3:.3f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
