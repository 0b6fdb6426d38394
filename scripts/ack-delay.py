#!/usr/bin/env python3
"""Measures how long a write stays unacknowledged in the lab (docs/physics.md, K9a,
`UNACKED_BEFORE_MS`): for every data segment a reader receives, the time until its ACK reaches
the writer, and what sent the ACK. Root only; run from the repository after `cargo build
--release`.

    unshare -m --propagation private scripts/ack-delay.py OUT [--jobs N] [--seconds S]
        [--delay MS] [--busy N] [--freeze] PATTERN...

PATTERN is `stream:MS` (the client writes a record every MS ms, the reference reader reads it)
or `heartbeat:MS` (the client PINGs every MS ms, the server answers PONG: both directions carry
data, so both ACK in ping-pong mode), optionally `:BYTES` (the record's size). Every pattern runs
--jobs labs at once (default 1) for --seconds (default 10) of traffic, all of them traced in
one tracefs instance of its own (`ackdelay-<pid>`, removed at the end, also on TERM or INT) on
the monotonic clock; --busy starts N busy loops for the run (ended with it); --delay adds
`[wire] delay` each way; --freeze freezes the server (SIGSTOP) 1 s in for the rest of a
`stream` run, so that its kernel alone ACKs the records it can no longer read: by the
delayed-ACK timer (tcp_send_delayed_ack: ato, which grows towards twice the records' interval
when they come closer than ato (tcp_event_data_recv), bounded by max(srtt, TCP_DELACK_MIN)).

Traced: tcp:tcp_probe on port 7000 (every segment a socket receives: data_len, snd_nxt, snd_una,
the socket), timer:timer_expire_entry of tcp_delack_timer (the delayed-ACK timer's expiry, per
CPU), sock:sock_recv_length (the reader's reads). A connection is the pair of sockets with
mirrored ports (a port two labs share at once is left out). For each ACK that a writer's socket
receives with data outstanding (snd_una != snd_nxt, and snd_una moved by the socket's next
segment: a pure ACK, or one carried by data, `+data`: a PONG), the data segment is the last one
its peer's socket received before it: delay = the ACK's arrival at the writer - the data's
arrival at the reader (the send is a few microseconds before the arrival without a delay, and
the ACK's way back is in the delay). Its sender: `quickack` (in the softirq that took the data,
within 50 us on that CPU, no read in between), `read` (the reader's read came between:
tcp_cleanup_rbuf), `timer` (a tcp_delack_timer expiry on the ACK's CPU within 50 us before it),
else `other` (a later segment's arrival, a keepalive). Prints the distribution per pattern and
sender and whose data it was, and writes every delay to OUT/delays.jsonl.
"""

import json
import os
import re
import signal
import subprocess
import sys

import tracelib
from tracelib import TRACEFS, kallsyms, lines, option, teardown, write

PORT = 7000

STREAM = """name = "ack-{tag}"
description = "ACK delay: a record every {ms} ms"
end = "{end}ms"
expect = "none"
{wire}
[traffic]
pattern = "stream"
interval = "{ms}ms"
{size}{freeze}"""

FREEZE = """
[[fault]]
kind = "freeze"
target = "server"
at = "1s"
"""

HEARTBEAT = """name = "ack-{tag}"
description = "ACK delay: a heartbeat every {ms} ms"
end = "{end}ms"
expect = "none"
{wire}
[heartbeat]
interval = "{ms}ms"
misses = 3
"""

PROBE = re.compile(
    r"src=[\d.]+:(?P<sport>\d+) dest=[\d.]+:(?P<dport>\d+) .*data_len=(?P<len>\d+) snd_nxt=(?P<nxt>\S+) "
    r"snd_una=(?P<una>\S+) .*sock_cookie=(?P<cookie>\S+) .*skaddr=(?P<sk>\S+)"
)


def setup(inst):
    events = {
        "tcp/tcp_probe": f"sport == {PORT} || dport == {PORT}",
        "timer/timer_expire_entry": f"function == {kallsyms('tcp_delack_timer')}",
        "sock/sock_recv_length": "ret > 0",
    }
    tracelib.setup(inst, events, buffer_kb=32768)


def parse(text):
    out = []
    for m, t in lines(text):
        e = dict(t=t, k=m["what"], task=m["task"].strip(), cpu=m["cpu"])
        if e["k"] == "tcp_probe":
            p = PROBE.search(m["rest"])
            if not p:
                continue
            e.update(p.groupdict())
            e["len"] = int(e["len"])
        elif e["k"] == "sock_recv_length":
            s = re.search(r"sk address = (\S+),", m["rest"])
            e["sk"] = s[1] if s else None
        out.append(e)
    return out


def delays(trace):
    """(delay ms, sender, the client's port, whose data was ACKed) for every ACK of outstanding
    data a socket received."""
    probes = [e for e in trace if e["k"] == "tcp_probe"]
    # Sockets by cookie; a client socket (dport 7000) and a server socket (sport 7000) with the
    # client's port are a connection, unless two labs used the port at once.
    socks = {}
    for e in probes:
        socks.setdefault(e["cookie"], dict(sport=e["sport"], dport=e["dport"], sk=e["sk"]))
    by_port = {}
    for c, s in socks.items():
        port = s["dport"] if s["sport"] == str(PORT) else s["sport"]
        by_port.setdefault(port, []).append(c)
    peer = {}
    for port, cs in by_port.items():
        if len(cs) == 2:
            peer[cs[0]], peer[cs[1]] = cs[1], cs[0]
    reads = {}
    for e in trace:
        if e["k"] == "sock_recv_length":
            reads.setdefault(e["sk"], []).append(e["t"])
    timers = {}
    for e in trace:
        if e["k"] == "timer_expire_entry":
            timers.setdefault(e["cpu"], []).append(e["t"])
    # A segment acknowledged data if the socket's snd_una moved by its next segment (tcp_probe
    # reports it before the ACK is processed): a pure ACK or data carrying one (a PONG).
    nxt_una = {}
    for e in reversed(probes):
        e["una_after"] = nxt_una.get(e["cookie"])
        nxt_una[e["cookie"]] = e["una"]
    last_data = {}
    out = []
    for e in probes:
        c = e["cookie"]
        acks = e["nxt"] != e["una"] and (e["una_after"] != e["una"] if e["una_after"] else e["len"] == 0)
        if e["len"] > 0:
            last_data[c] = e
        if not acks or c not in peer:
            continue
        data = last_data.get(peer[c])
        if not data or data["t"] > e["t"]:
            continue
        d = e["t"] - data["t"]
        reader_sk = socks[peer[c]]["sk"]
        read_between = any(data["t"] <= r <= e["t"] for r in reads.get(reader_sk, []))
        timer = any(0 <= e["t"] - t <= 0.05 for t in timers.get(e["cpu"], []))
        if timer:
            how = "timer"
        elif read_between:
            how = "read"
        elif d <= 0.05 and e["cpu"] == data["cpu"]:
            how = "quickack"
        else:
            how = "other"
        if e["len"] > 0:
            how += "+data"
        client = socks[c]["dport"] == str(PORT)
        out.append((d, how, socks[c]["sport"] if client else socks[c]["dport"], "client" if client else "server"))
        # One ACK per data segment: a later ACK of the same data is not a fresh delay.
        last_data.pop(peer[c], None)
    return out


def summary(ds):
    if not ds:
        return "none"
    ds = sorted(ds)
    q = lambda p: ds[min(len(ds) - 1, int(p * len(ds)))]
    return f"n={len(ds)} median={q(0.5):.3f} p99={q(0.99):.3f} max={ds[-1]:.3f} ms"


def main():
    args = sys.argv[1:]
    jobs = option(args, "--jobs", 1)
    seconds = option(args, "--seconds", 10)
    delay = option(args, "--delay", 0)
    busy = option(args, "--busy", 0)
    freeze = "--freeze" in args
    if freeze:
        args.remove("--freeze")
    out, patterns = args[0], args[1:]
    os.makedirs(out, exist_ok=True)
    flatline = os.path.abspath("target/release/flatline")
    inst = f"{TRACEFS}/instances/ackdelay-{os.getpid()}"
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(130))
    wire = f'\n[wire]\ndelay = "{delay}ms"\n' if delay else ""
    loops = []
    setup(inst)
    try:
        loops = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(busy)]
        with open(out + "/delays.jsonl", "a") as log:
            for pat in patterns:
                kind, ms, *size = pat.split(":")
                paths = []
                for j in range(jobs):
                    tag = f"{os.getpid()}-{kind}-{ms}-{j}"
                    text = (STREAM if kind == "stream" else HEARTBEAT).format(
                        tag=tag,
                        ms=ms,
                        end=seconds * 1000,
                        wire=wire,
                        size=f"record_bytes = {size[0]}\n" if size else "",
                        freeze=FREEZE if freeze else "",
                    )
                    path = f"{out}/ack-{tag}.toml"
                    write(path, text)
                    paths.append(path)
                write(inst + "/trace", "")
                subprocess.run(
                    [flatline, "run", "--out", out, "-j", str(jobs), *paths],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                with open(inst + "/trace") as f:
                    text = f.read()
                write(f"{out}/{pat.replace(':', '-')}-j{jobs}-b{busy}-d{delay}{'-frozen' if freeze else ''}.trace", text)
                ds = delays(parse(text))
                by = {}
                for d, how, port, side in ds:
                    by.setdefault(f"{side}'s data, {how}", []).append(d)
                    log.write(json.dumps(dict(pattern=pat, jobs=jobs, busy=busy, delay=delay, freeze=freeze, ms=round(d, 4), how=how, port=port, side=side)) + "\n")
                print(f"{pat} jobs={jobs} busy={busy} delay={delay} freeze={freeze}: all {summary([d[0] for d in ds])}", flush=True)
                for how, v in sorted(by.items()):
                    print(f"    {how}: {summary(v)}", flush=True)
    finally:
        for p in loops:
            p.kill()
            p.wait()
        teardown(inst)


if __name__ == "__main__":
    main()
