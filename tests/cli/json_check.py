"""Checks the JSON that `moedist run|plan|bench --json` printed on stdin (or in a file).

Usage: json_check.py run|plan|plan-A3|bench|bench-goals|bench-overlap [FILE]
"""
import json
import sys


def check_run(d):
    assert d["command"] == "run", d
    c = d["config"]
    assert c["ranks"] == 4 and c["experts"] == 8 and c["topk"] == 2, c
    for phase in ("dispatch", "combine"):
        p = d[phase]
        assert len(p["steps_ms"]) == c["steps"], p
        assert p["median_ms"] > 0 and p["bytes"] > 0, p
    load = d["load"]
    rows = load["rows_per_expert"]
    assert len(rows) == 8, load
    # EP group 0 receives every token's K rows: 4 ranks x 4 tokens x 2.
    assert sum(rows) == 4 * 4 * 2, load
    assert load["max"] == max(rows) and load["min"] == min(rows), load
    assert len(load["top"]) == 5 and load["top"][0]["rows"] == max(rows), load
    assert d["check"]["result"] == "ok", d["check"]


def check_plan(d, soc=None):
    assert d["command"] == "plan", d
    profiles = d["profiles"]
    if soc:
        assert list(profiles) == [soc], profiles
        assert profiles[soc]["accepted"], profiles[soc]
        assert profiles[soc]["shared_expert_num"] == 1, profiles[soc]
    else:
        assert set(profiles) == {"generic", "A2", "A3"}, profiles
    assert d["ranks"] and d["ranks"][0]["tensors"], d["ranks"]


def check_bench(d, goals=False):
    assert d["command"] == "bench", d
    assert len(d["points"]) == 1, d["points"]
    p = d["points"][0]
    assert "error" not in p, p
    assert p["dispatch_ms"]["median"] > 0 and p["combine_ms"]["median"] > 0, p
    assert p["floors_ms"]["write"]["median"] > 0, p
    assert d["machine"]["cores"] >= 1 and d["machine"]["cpu"], d["machine"]
    assert "EP 2" in d["title"] and "H 64" in d["title"], d["title"]
    assert ("goals" in d) == goals, list(d)


def check_overlap(d):
    assert d["command"] == "bench --overlap", d
    assert len(d["points"]) == 2, d["points"]  # --tokens 1,4
    for p in d["points"]:
        assert "error" not in p, p
        seq, ovl = p["sequential_ms"]["median"], p["overlapped_ms"]["median"]
        assert seq > 0 and ovl > 0, p
        assert abs(p["overlapped_over_sequential"] - ovl / seq) < 1e-9, p


def main():
    kind = sys.argv[1]
    text = open(sys.argv[2]).read() if len(sys.argv) > 2 else sys.stdin.read()
    d = json.loads(text)  # stdout holds nothing but the JSON
    {
        "run": check_run,
        "plan": check_plan,
        "plan-A3": lambda d: check_plan(d, "A3"),
        "bench": check_bench,
        "bench-goals": lambda d: check_bench(d, True),
        "bench-overlap": check_overlap,
    }[kind](d)
    print("ok: %s JSON" % kind)


main()
