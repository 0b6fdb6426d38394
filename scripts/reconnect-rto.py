#!/usr/bin/env python3
"""Measures the RTO a reconnect leaves when its handshake waited in a neighbour queue
(docs/physics.md, K9a, "A reconnect that waited in a neighbour queue"; `rto_after_reconnect`
in harness/model.rs). Root only; run from the repository after `cargo build --release`.

    unshare -m --propagation private scripts/reconnect-rto.py OUT [--file SCENARIO]
        [--heal MS] [--again MS] [--copies N]

Without --file the scenario is the client's own cable pulled at the wire twice (OWN_LINK_TWICE
below: a client streaming 64 B every 100 ms with UT 3 s, reconnect 200 ms, connect timeout
500 ms; the first pull at 2 s, healed at --heal, default 6500; the second at --again, default
7800). Runs N copies of it (default 1; its `name` gets `-PID-J` appended) in one `flatline run -j N`,
all traced in one tracefs instance of its own (`reconnectrto-<pid>`, removed at the end, also
on TERM or INT) on the monotonic clock: tcp:tcp_probe (every segment a socket on port 7000
receives: its srtt before the segment), tcp:tcp_retransmit_skb (every retransmission attempt
and its err: -16 is -EBUSY, the copy still in a neighbour queue), sock:inet_sock_set_state and
sock:inet_sk_error_report of port 7000, neigh:neigh_create and neigh:neigh_update (every
namespace's; the client's own entry for its gateway is on dev c0).

The trace lines up with each record by its first connection: record time = trace time + (the
client's `connected` stamp - its socket's ESTABLISHED), the stamp always a little after. For
each client connection that the record shows (by its local port) it prints: when it went
SYN_SENT and ESTABLISHED (the wait), the srtt the first segment after the handshake saw (the
handshake's RTT sample), the srtt at each later segment and the RTT samples they imply
(m = srtt + 8 (next srtt - srtt)), the RTO Linux's estimator gives from those samples
(tcp_rtt_estimator, __tcp_set_rto, as `rto_after_samples_ms`), every retransmission attempt
relative to the latest fault's stamp with its err, and the error the socket reported. Writes
each copy's trace and one JSON line per connection to OUT/runs.jsonl.
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
OWN_LINK_TWICE = """name = "own-link-wire-twice"
description = "the client's own cable pulled at the wire, healed at {heal} ms, pulled again at {again} ms"
end = "{end}ms"
expect = "none"

[server]
keepalive = {{ idle = "1s", interval = "1s", count = 3 }}

[client]
user_timeout = "3s"
reconnect_interval = "200ms"
connect_timeout = "500ms"

[traffic]
pattern = "stream"
interval = "100ms"

[[fault]]
id = "first"
kind = "cable-pull"
target = "client"
end = "wire"
at = "2s"
heal = "{heal}ms"

[[fault]]
id = "second"
kind = "cable-pull"
target = "client"
end = "wire"
at = "{again}ms"
"""
RTO_MIN_US = 200_000
JIFFY_US = 4_000


def setup(inst):
    ports = f"sport == {PORT} || dport == {PORT}"
    events = {
        "tcp/tcp_probe": ports,
        "tcp/tcp_retransmit_skb": ports,
        "sock/inet_sock_set_state": ports,
        "sock/inet_sk_error_report": ports,
        "neigh/neigh_create": None,
        "neigh/neigh_update": None,
    }
    tracelib.setup(inst, events, buffer_kb=32768)


def parse(text):
    out = []
    for m, t in lines(text):
        e = dict(t=t, k=m["what"], rest=m["rest"])
        if e["k"] == "tcp_probe":
            p = re.search(r"src=[\d.]+:(\d+) dest=[\d.]+:(\d+) .*data_len=(\d+) .*srtt=(\d+)", m["rest"])
            if not p:
                continue
            e.update(sport=p[1], dport=p[2], len=int(p[3]), srtt=int(p[4]))
        elif e["k"].startswith("neigh_"):
            dev = re.search(r"dev (\S+)", m["rest"])
            key = re.search(r"(?:primary_key4|addr) (\d+\.\d+\.\d+\.\d+)", m["rest"])
            new = re.search(r"new_state (\S+)", m["rest"])
            e.update(dev=dev[1] if dev else "", key=key[1] if key else "", new=new[1] if new else "")
        else:
            p = re.search(r"sport=(\d+) dport=(\d+)", m["rest"])
            if not p:
                continue
            e.update(sport=p[1], dport=p[2])
            if e["k"] == "inet_sock_set_state":
                e["new"] = re.search(r"newstate=(\S+)", m["rest"])[1]
            elif e["k"] == "inet_sk_error_report":
                e["error"] = int(re.search(r"error=(-?\d+)", m["rest"])[1])
            elif e["k"] == "tcp_retransmit_skb":
                e["err"] = int(re.search(r"err=(-?\d+)", m["rest"])[1])
        out.append(e)
    return out


def rto_us(samples):
    """Linux's RTO after these RTT samples (µs), as tcp_rtt_estimator and __tcp_set_rto keep
    it: srtt 8 times over, mdev 4 times over, one sample an RTT window."""
    first, *later = samples
    srtt, mdev = first << 3, first << 1
    rttvar = max(mdev, RTO_MIN_US)
    start = rttvar
    for s in later:
        m = s - (srtt >> 3)
        srtt += m
        if m < 0:
            m = -m - (mdev >> 2)
            if m > 0:
                m >>= 3
        else:
            m -= mdev >> 2
        mdev += m
        top = max(mdev, start)
        if top > rttvar:
            rttvar = top
        else:
            rttvar -= (rttvar - top) >> 2
        start = RTO_MIN_US
    rto = (srtt >> 3) + rttvar
    return -(-rto // JIFFY_US) * JIFFY_US


def analyse(record, trace):
    ev = record["events"]
    conns = [e for e in ev if e["source"] == "client" and e["kind"] in ("connected", "reconnected")]
    if not conns:
        return []
    ports = [e["local"].split(":")[1] for e in conns]
    est = {
        e["sport"]: e["t"]
        for e in trace
        if e["k"] == "inet_sock_set_state" and e["dport"] == str(PORT) and e["new"] == "TCP_ESTABLISHED"
    }
    if ports[0] not in est:
        return []
    shift = conns[0]["t_ms"] - est[ports[0]]
    for e in trace:
        e["r"] = e["t"] + shift
    faults = [e for e in ev if e["kind"] == "fault-injected"]
    heals = [e for e in ev if e["kind"] == "fault-healed"]
    lost = {e["local"].split(":")[1]: e for e in ev if e["source"] == "client" and e["kind"] == "peer-lost" and e.get("local")}
    rows = []
    for c, port in zip(conns, ports):
        mine = [e for e in trace if e.get("sport") == port and e.get("dport") == str(PORT) and e["k"] != "tcp_probe"]
        mine += [e for e in trace if e["k"] == "tcp_probe" and e["sport"] == port and e["dport"] == str(PORT)]
        mine.sort(key=lambda e: e["t"])
        syn = next((e["r"] for e in mine if e["k"] == "inet_sock_set_state" and e["new"] == "TCP_SYN_SENT"), None)
        established = est.get(port)
        srtts = [e["srtt"] for e in mine if e["k"] == "tcp_probe" and e["t"] >= (established or 0)]
        # srtt as printed is srtt_us >> 3; the samples it implies, the first the handshake's.
        samples = srtts[:1] + [srtts[i] + 8 * (srtts[i + 1] - srtts[i]) for i in range(len(srtts) - 1)]
        samples = [max(1, s) for s in samples]
        lost_e = lost.get(port)
        fault = max((f for f in faults if f["t_ms"] <= (lost_e or {}).get("t_ms", float("inf"))), key=lambda f: f["t_ms"], default=None)
        rel = lambda t: None if t is None or fault is None else round(t - fault["t_ms"], 1)
        retrans = [(rel(e["r"]), e["err"]) for e in mine if e["k"] == "tcp_retransmit_skb" and fault and e["r"] >= fault["t_ms"] - 1]
        # connect() is called at the attempt's stamp (the SYN_SENT state change carries no
        # port yet); its SYN leaves then, or waits in the neighbour queue.
        attempt = max((e["t_ms"] for e in ev if e["source"] == "client" and e["kind"] == "reconnect-attempt" and e["t_ms"] < c["t_ms"]), default=None)
        syn = syn if syn is not None else attempt
        info = (lost_e or {}).get("tcp_info") or {}
        gaps = [round(b[0] - a[0], 1) for a, b in zip(retrans, retrans[1:])]
        rows.append(
            dict(
                port=port,
                connected_ms=round(c["t_ms"], 1),
                syn_ms=None if syn is None else round(syn, 1),
                wait_ms=None if syn is None or c["kind"] != "reconnected" else round(c["t_ms"] - syn, 1),
                srtt_at_loss_ms=None if "rtt_us" not in info else info["rtt_us"] / 1000,
                retrans_gaps_ms=gaps,
                srtt_ms=[round(s / 1000, 1) for s in srtts[:8]],
                # With no segment received after the handshake, tcp_info's srtt at the loss is
                # the handshake's own sample.
                rto_ms=rto_us(samples) / 1000 if samples else rto_us([info["rtt_us"]]) / 1000 if info.get("rtt_us") else None,
                rto_at_fault_ms=rto_at(samples, srtts, mine, fault, info.get("rtt_us")),
                fault=None if fault is None else fault.get("fault"),
                retrans=retrans[:12],
                error=None if lost_e is None else lost_e.get("error"),
                detect_ms=None if lost_e is None or fault is None else round(lost_e["t_ms"] - fault["t_ms"], 1),
            )
        )
    c0 = [
        (round(e["r"], 1), e["k"][6:], e["new"])
        for e in trace
        if e["k"].startswith("neigh_") and e["dev"] == "c0" and e["key"] == "198.18.1.1" and "r" in e
    ]
    return rows, c0, [round(f["t_ms"], 1) for f in faults], [round(h["t_ms"], 1) for h in heals]


def rto_at(samples, srtts, mine, fault, srtt_at_loss):
    """The estimator's RTO from the samples taken before the fault's stamp. A segment's srtt
    is the state before it: the last segment's own sample comes from tcp_info's srtt at the
    loss, where no segment came after the stamp (nothing is ACKed behind the pull)."""
    if fault is None or not samples:
        return None
    probes = [e for e in mine if e["k"] == "tcp_probe"]
    before = sum(1 for e in probes if e["r"] < fault["t_ms"])
    n = min(len(samples), before)
    if n == 0:
        return None
    taken = samples[:n]
    if n == len(srtts) and srtt_at_loss:
        taken.append(max(1, srtts[-1] + 8 * (srtt_at_loss - srtts[-1])))
    return rto_us(taken) / 1000


def main():
    args = sys.argv[1:]
    copies = option(args, "--copies", 1)
    scenario = option(args, "--file", None, str)
    heal = option(args, "--heal", 6500)
    again = option(args, "--again", 7800)
    (out,) = args
    os.makedirs(out, exist_ok=True)
    flatline = os.path.abspath("target/release/flatline")
    inst = f"{TRACEFS}/instances/reconnectrto-{os.getpid()}"
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(130))
    if scenario:
        with open(scenario) as f:
            text = f.read()
    else:
        text = OWN_LINK_TWICE.format(heal=heal, again=again, end=again + 5000)
    name = re.search(r'^name\s*=\s*"([^"]+)"', text, re.M)[1]
    paths, names = [], []
    for j in range(copies):
        n = f"{name}-{os.getpid()}-{j}"
        path = f"{out}/{n}.toml"
        write(path, re.sub(r'^name\s*=\s*"[^"]+"', f'name = "{n}"', text, count=1, flags=re.M))
        paths.append(path)
        names.append(n)
    setup(inst)
    try:
        write(inst + "/trace", "")
        subprocess.run([flatline, "run", "--out", out, "-j", str(copies), *paths], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(inst + "/trace") as f:
            text = f.read()
    finally:
        teardown(inst)
    write(f"{out}/{name}-{os.getpid()}.trace", text)
    trace = parse(text)
    with open(out + "/runs.jsonl", "a") as log:
        for n in names:
            try:
                with open(f"{out}/{n}.json") as f:
                    record = json.load(f)
            except (OSError, ValueError) as e:
                print(f"{n}: no record ({e!r})")
                continue
            got = analyse(record, [dict(e) for e in trace])
            if not got:
                print(f"{n}: nothing lined up")
                continue
            rows, c0, faults, heals = got
            # The neighbour events carry no namespace: every lab's c0 is named c0.
            c0 = c0 if len(names) == 1 else "(several labs: not told apart)"
            print(f"{n}: faults at {faults}, heals at {heals}; c0's entry for the gateway: {c0}")
            for r in rows:
                r["run"] = n
                log.write(json.dumps(r) + "\n")
                print("   ", json.dumps({k: v for k, v in r.items() if k != "run"}), flush=True)


if __name__ == "__main__":
    main()
