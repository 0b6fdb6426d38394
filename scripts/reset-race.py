#!/usr/bin/env python3
"""Hunts K9's reset across the fault in the lab (docs/physics.md, K9; `reset_across_the_fault`
in harness/model.rs): behind a reject with TCP reset both ways, an idle server's own keepalive
probe that crossed the wire just before the rule took effect has its answer reset on the way
back (the RST goes to the client), so the probe stays unanswered and the server's next expiry,
V later, gives up with ETIMEDOUT (user timeout passed) instead of drawing an RST (ECONNRESET).
Root only; run from the repository after `cargo build --release`.

    unshare -m --propagation private scripts/reset-race.py OUT OFFSETS... [--repeat N]
        [--pool N] [--busy B] [--delay MS]

The reference simulation's cell: server keepalive 1s/2s/1 + TCP_USER_TIMEOUT 4 s, client
2s/2s/2; the server's probes are answered 1 s after each connection, then every 2 s (K2), so the
third comes 3 s after it. The reject's `at` is 3 s + OFFSET ms (the runner counts from the
pool's last connection); --pool opens N connections (default 300), whose server probes of one
timer-wheel tick (32 ms at this range) cross as one batch, so a rule that takes effect inside
the batch splits it. --delay adds `[wire] delay` each way: a probe and its answer are held
that long in the wire's queue (harness/delay.rs), which widens the race from the answer's tens
of microseconds to about the delay. One lab at a time, each run traced in a tracefs instance of its own
(`resetrace-<pid>`, removed at the end, also on TERM or INT) on the monotonic clock:
tcp:tcp_probe of the client sockets (a server probe's arrival), tcp:tcp_receive_reset (the
reject's RST to the client's answer, or to its own probe), sock:inet_sock_set_state (each
connection's ESTABLISHED, which lines the trace up with the record by the smallest stamp - event
over the pool), sock:inet_sk_error_report (each socket's error, the kernel's moment).

A hit is a server connection that ended ETIMEDOUT. For each, the client's last server probe
before its RST: `probe_before_stamp` = the record's fault-injected stamp - that probe's arrival
(positive: the probe crossed before the rule, as the rule predicts; good to the connect
stamps' lag, a millisecond or more in a pool), `rst_after_probe`, and
`give_up_after_probe` = the server's error - that probe (the rule says one interval, 2 s, plus
the timer's slack). Prints one line per run and appends it to OUT/runs.jsonl; each run's scenario, record and trace stay in OUT/.
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
SCENARIO = """name = "reset-race-{tag}"
description = "reject with TCP reset both ways {off:+d} ms from the server's third probe's due time"
end = "{end}ms"
{wire}
[server]
keepalive = {{ idle = "1s", interval = "2s", count = 1 }}
user_timeout = "4s"

[client]
keepalive = {{ idle = "2s", interval = "2s", count = 2 }}{pool}

[[fault]]
id = "f"
kind = "reject"
with = "tcp-reset"
at = "{at}ms"

[[expect]]
side = "server"
fault = "f"
detects = "predicted"

[[expect]]
side = "client"
fault = "f"
detects = "predicted"
"""


def setup(inst):
    events = {
        "tcp/tcp_probe": f"dport == {PORT} && data_len == 0",
        "tcp/tcp_receive_reset": f"sport == {PORT} || dport == {PORT}",
        "sock/inet_sock_set_state": f"sport == {PORT} || dport == {PORT}",
        "sock/inet_sk_error_report": f"sport == {PORT} || dport == {PORT}",
    }
    tracelib.setup(inst, events, buffer_kb=16384)


def parse(text):
    out = []
    for m, t in lines(text):
        e = dict(ts=t, k=m["what"], rest=m["rest"])
        if e["k"] == "tcp_probe":
            p = re.search(r"src=[\d.]+:(\d+) dest=[\d.]+:(\d+)", m["rest"])
            if not p:
                continue
            e.update(sport=p[1], dport=p[2])
        else:
            p = re.search(r"sport=(\d+) dport=(\d+)", m["rest"])
            if not p:
                continue
            e.update(sport=p[1], dport=p[2])
            if e["k"] == "inet_sock_set_state":
                e["new"] = re.search(r"newstate=(\S+)", m["rest"])[1]
            elif e["k"] == "inet_sk_error_report":
                e["error"] = int(re.search(r"error=(-?\d+)", m["rest"])[1])
        out.append(e)
    return out


def analyse(record, at, trace):
    ev = record["events"]
    conns = [e for e in ev if e["source"] == "client" and e["kind"] == "connected"]
    ports = {e["local"].split(":")[1]: e["t_ms"] for e in conns}
    inj = next(e for e in ev if e["kind"] == "fault-injected")
    # Record time = trace time + shift: the smallest (connected stamp - the client socket's
    # ESTABLISHED) over the pool (a stamp always comes after its kernel event).
    pairs = [
        ports[e["sport"]] - e["ts"]
        for e in trace
        if e["k"] == "inet_sock_set_state" and e["dport"] == str(PORT) and e["new"] == "TCP_ESTABLISHED" and e["sport"] in ports
    ]
    if not pairs:
        return None
    # Another lab's socket with the same port can pair too: the smallest value that at least
    # a few pairs (a tenth of the pool) follow within 0.5 ms.
    pairs.sort()
    need = max(1, min(5, len(ports) // 10))
    shift = next((v for i, v in enumerate(pairs) if sum(1 for w in pairs[i:] if w - v <= 0.5) >= need), pairs[0])
    for e in trace:
        e["t"] = e["ts"] + shift
    at_abs = max(ports.values()) + at
    lost = {}
    for e in ev:
        if e["source"] in ("client", "server") and e["kind"] == "peer-lost" and e.get("conn") is not None:
            port = (e["local"] if e["source"] == "client" else e["peer"]).split(":")[1]
            lost.setdefault((e["source"], port), e)
    errors = {}
    for (src, _), e in lost.items():
        key = f"{src} {e['error']}"
        errors[key] = errors.get(key, 0) + 1
    hits = []
    for (src, port), e in sorted(lost.items()):
        if src != "server" or e["error"] != "ETIMEDOUT" or port not in ports:
            continue
        probes = [x["t"] for x in trace if x["k"] == "tcp_probe" and x["sport"] == port]
        rsts = [x["t"] for x in trace if x["k"] == "tcp_receive_reset" and x["sport"] == port]
        gave_up = [x["t"] for x in trace if x["k"] == "inet_sk_error_report" and x["sport"] == str(PORT) and x["dport"] == port]
        h = dict(port=port, detect_ms=round(e["t_ms"] - inj["t_ms"], 2))
        if rsts:
            # The RST passes tcp_probe too, a few microseconds before tcp_receive_reset.
            before = [p for p in probes if p < rsts[0] - 0.02]
            if before:
                h.update(
                    probe_before_stamp=round(inj["t_ms"] - before[-1], 4),
                    rst_after_probe=round(rsts[0] - before[-1], 4),
                )
                if gave_up:
                    h["give_up_after_probe"] = round(gave_up[0] - before[-1], 2)
        hits.append(h)
    # The batch: server probes reaching the clients within 100 ms of the stamp.
    near = sorted(x["t"] - inj["t_ms"] for x in trace if x["k"] == "tcp_probe" and x["sport"] in ports and abs(x["t"] - inj["t_ms"]) < 100)
    r3 = lambda x: None if x is None else round(x, 3)
    return dict(
        stamp_late=r3(inj["t_ms"] - at_abs),
        shift_pairs=len(pairs),
        probes_near=len(near),
        first_probe_vs_stamp=r3(near[0]) if near else None,
        last_probe_vs_stamp=r3(near[-1]) if near else None,
        errors=errors,
        hits=hits,
        passed=record.get("verdict", {}).get("passed"),
    )


def main():
    args = sys.argv[1:]
    repeat = option(args, "--repeat", 1)
    pool = option(args, "--pool", 300)
    busy = option(args, "--busy", 0)
    delay = option(args, "--delay", 0)
    wire = f'\n[wire]\ndelay = "{delay}ms"\n' if delay else ""
    base = 3000
    out, offsets = args[0], [int(a) for a in args[1:]]
    os.makedirs(out, exist_ok=True)
    flatline = os.path.abspath("target/release/flatline")
    inst = f"{TRACEFS}/instances/resetrace-{os.getpid()}"
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(130))
    loops = []
    setup(inst)
    n = 0
    try:
        loops = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(busy)]
        with open(out + "/runs.jsonl", "a") as log:
            for _ in range(repeat):
                for off in offsets:
                    n += 1
                    tag = f"{os.getpid()}-{n}"
                    path = f"{out}/reset-race-{tag}.toml"
                    write(path, SCENARIO.format(tag=tag, off=off, at=base + off, end=base + 5000, wire=wire, pool=f"\nconnections = {pool}" if pool > 1 else ""))
                    write(inst + "/trace", "")
                    subprocess.run([flatline, "run", "--out", out, path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    with open(inst + "/trace") as f:
                        text = f.read()
                    try:
                        with open(f"{out}/reset-race-{tag}.json") as f:
                            record = json.load(f)
                        row = analyse(record, base + off, parse(text)) or dict(failed="no trace pairs")
                    except (OSError, StopIteration, KeyError, ValueError) as e:
                        row = dict(failed=repr(e))
                    write(f"{out}/reset-race-{tag}.trace", text)
                    row.update(tag=tag, offset=off, pool=pool, busy=busy, delay=delay)
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                    print(json.dumps({k: v for k, v in row.items() if k != "hits"} | dict(hits=len(row.get("hits", [])))), flush=True)
    finally:
        for p in loops:
            p.kill()
            p.wait()
        teardown(inst)


if __name__ == "__main__":
    main()
