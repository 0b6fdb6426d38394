#!/usr/bin/env python3
"""Traces the router's neighbour entry for the server across a heal of the server's own end
(docs/physics.md, K9a, "A reconnect that waited in a neighbour queue"; `rto_after_reconnect`
in harness/model.rs): which entry is live when the reconnect's SYN joins it, when it resolves
and why. Root only; run from the repository after `cargo build --release`.

    unshare -m --propagation private scripts/neigh-heal.py OUT [--file SCENARIO] [--runs N]

SCENARIO (default scenarios/busy-writer-peer-end-twice.toml) runs N times (default 4), one lab
at a time (the neighbour events carry no namespace, only the device: w1 is the router's end
towards the server in every lab), each in a tracefs instance of its own (`neighheal-<pid>`,
removed at the end, also on TERM or INT) on the monotonic clock: neigh:* on dev w1 for
198.18.2.2 (create; __neigh_event_send's state after a packet, neigh_event_send_done; the
timer's, neigh_timer_handler; neigh_update: "reachable" is the answer to the router's own
solicit, "stale" the server's ARP request, neigh_event_ns), and sock:inet_sock_set_state,
sock:inet_sk_error_report, tcp:tcp_retransmit_skb of port 7000. Lined up with the record by
the first connection's ESTABLISHED. For each run it prints, in ms after the first fault's
stamp F1: the entry's events, the client's loss and its reconnect's SYN, the heal, the
server's give-up, when the entry resolved and how, and the SYN's wait; and the second fault's
detection. One JSON line per run to OUT/runs.jsonl.
"""

import json
import os
import re
import signal
import subprocess
import sys

import tracelib
from tracelib import TRACEFS, lines, option, teardown, write

PORT = 7000
SERVER = "198.18.2.2"


def setup(inst):
    ports = f"sport == {PORT} || dport == {PORT}"
    events = {
        "sock/inet_sock_set_state": ports,
        "sock/inet_sk_error_report": ports,
        "tcp/tcp_retransmit_skb": ports,
    }
    for ev in ("neigh_create", "neigh_update", "neigh_event_send_done", "neigh_timer_handler"):
        events[f"neigh/{ev}"] = 'dev == "w1"'
    tracelib.setup(inst, events, buffer_kb=8192)


def analyse(record, text):
    ev = record["events"]
    conns = [e for e in ev if e["source"] == "client" and e["kind"] in ("connected", "reconnected")]
    faults = [e["t_ms"] for e in ev if e["kind"] == "fault-injected"]
    heals = [e["t_ms"] for e in ev if e["kind"] == "fault-healed"]
    if not conns or not faults:
        return None
    trace = []
    for m, t in lines(text):
        trace.append((t, m["what"], m["rest"]))
    est = next(
        (t for t, w, r in trace if w == "inet_sock_set_state" and f"dport={PORT}" in r and "newstate=TCP_ESTABLISHED" in r),
        None,
    )
    if est is None:
        return None
    f1 = faults[0]
    shift = conns[0]["t_ms"] - est
    rel = lambda t: round(t + shift - f1, 1)
    entry = []
    for t, w, r in trace:
        if not w.startswith("neigh_") or SERVER not in r:
            continue
        # neigh_update prints the state before (nud_state) and after (new_state).
        state = re.search(r"new_state (\S+)", r) or re.search(r"nud_state (\S+)", r)
        entry.append((rel(t), w[6:], state[1] if state else ""))
    syns = [rel(t) for t, w, r in trace if w == "inet_sock_set_state" and "newstate=TCP_SYN_SENT" in r and f"dport={PORT}" in r]
    lost = [(round(e["t_ms"] - f1, 1), e["source"], e.get("error")) for e in ev if e["kind"] == "peer-lost"]
    reconnected = [round(e["t_ms"] - f1, 1) for e in ev if e["kind"] == "reconnected"]
    # The first resolution after the heal: the server's ARP request (stale) or its answer to
    # a solicit (reachable).
    heal = heals[0] - f1 if heals else None
    resolved = next(((t, s) for t, k, s in entry if k == "update" and s in ("stale", "reachable") and heal is not None and t > heal), None)
    syn = max((s for s in syns if resolved and s < resolved[0]), default=None)
    second = [x for x in lost if len(faults) > 1 and x[0] > faults[1] - f1]
    return dict(
        entry=entry,
        lost=lost,
        syn=syn,
        heal=None if heal is None else round(heal, 1),
        resolved=resolved,
        wait=None if syn is None or resolved is None else round(resolved[0] - syn, 1),
        reconnected=reconnected,
        second_fault=None if len(faults) < 2 else round(faults[1] - f1, 1),
        second=[(round(t - (faults[1] - f1), 1), s, e) for t, s, e in second],
    )


def main():
    args = sys.argv[1:]
    runs = option(args, "--runs", 4)
    scenario = option(args, "--file", "scenarios/busy-writer-peer-end-twice.toml", str)
    (out,) = args
    os.makedirs(out, exist_ok=True)
    flatline = os.path.abspath("target/release/flatline")
    inst = f"{TRACEFS}/instances/neighheal-{os.getpid()}"
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(130))
    with open(scenario) as f:
        text = f.read()
    name = re.search(r'^name\s*=\s*"([^"]+)"', text, re.M)[1]
    setup(inst)
    try:
        for j in range(runs):
            n = f"{name}-{os.getpid()}-{j}"
            path = f"{out}/{n}.toml"
            write(path, re.sub(r'^name\s*=\s*"[^"]+"', f'name = "{n}"', text, count=1, flags=re.M))
            write(inst + "/trace", "")
            subprocess.run([flatline, "run", "--out", out, path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with open(inst + "/trace") as f:
                trace = f.read()
            write(f"{out}/{n}.trace", trace)
            try:
                with open(f"{out}/{n}.json") as f:
                    record = json.load(f)
            except (OSError, ValueError) as e:
                print(f"{n}: no record ({e!r})")
                continue
            got = analyse(record, trace)
            if got is None:
                print(f"{n}: nothing lined up")
                continue
            got["run"] = n
            with open(out + "/runs.jsonl", "a") as log:
                log.write(json.dumps(got) + "\n")
            print(n)
            for k, v in got.items():
                if k != "run":
                    print(f"    {k}: {v}", flush=True)
    finally:
        teardown(inst)


if __name__ == "__main__":
    main()
