#!/usr/bin/env python3
"""Measures the probe-at-the-pull race (docs/physics.md, K9a): the server's cable pulled at the
wire around the moment its keepalive probe crosses the router, and which error the idle client
gets. Root only; run from the repository after `cargo build --release`.

    unshare -m --propagation private scripts/race-margins.py OUT OFFSETS... [--repeat N]
        [--base MS] [--delay MS] [--pool N]

OFFSETS are ms added to the pull's `at` (--base, 1000 ms by default: the server's first probe
is due 1 s after the connect; a later base lets the probes before it measure the answer's
time). Server keepalive 1s/1s/3, the client's 2s/1s/1 so that its own probes stay clear.
--delay adds `[wire] delay` (it holds every forwarded packet after its route lookup); --pool
opens N connections, whose server probes of one tick cross as one batch (a pool's schedule
counts from its last connection).

One lab at a time, each run traced in a tracefs instance of its own (`margins-<pid>`, removed
at the end, also on TERM or INT) on the monotonic clock: the router's route lookups
(fib:fib_table_lookup, with the lookup's error), notifier:notifier_run (rtnetlink_event opens
NETDEV_GOING_DOWN and, after the qdisc reset, NETDEV_DOWN, right after IFF_UP is cleared and
the RTM_NEWLINK that flatline stamps as `fault-injected` is sent; fib_netdev_event on
NETDEV_DOWN takes the routes), qdisc:qdisc_reset, the keepalive timers (timer:timer_start,
timer:timer_expire_entry), net:netif_rx (a packet's skb from device to device), icmp:icmp_send
and sock:inet_sock_set_state (which line the trace up with the record's stamps). Load is the
caller's business (busy loops, other labs started beside it). Prints one line per run and
appends it to OUT/runs.jsonl; each run's scenario, record and trace stay in OUT/.
"""

import json
import os
import re
import signal
import subprocess
import sys

import tracelib
from tracelib import TRACEFS, kallsyms, lines, option, teardown, write

SCENARIO = """name = "race-{tag}"
description = "server's cable pulled at the wire {off:+d} ms from its first keepalive probe's due time"
end = "{end}ms"
{wire}[server]
keepalive = {{ idle = "1s", interval = "1s", count = 3 }}
[client]
keepalive = {{ idle = "2s", interval = "1s", count = 1 }}{pool}
[[fault]]
id = "f"
kind = "cable-pull"
target = "server"
at = "{at}ms"
[[expect]]
side = "client"
fault = "f"
detects = "predicted"
"""

FIB = re.compile(
    r"table (?P<tb>\d+) oif -?\d+ iif (?P<iif>-?\d+) proto \d+ (?P<src>[\d.]+)/\d+"
    r" -> (?P<dst>[\d.]+)/\d+ .*==> dev (?P<dev>\S*) .* err (?P<err>-?\d+)"
)


def setup(inst):
    events = {
        "fib/fib_table_lookup": "tb_id == 254",
        "icmp/icmp_send": None,
        "sock/inet_sock_set_state": None,
        "notifier/notifier_run": " || ".join(
            f"cb == {kallsyms(n)}" for n in ["rtnetlink_event", "fib_netdev_event"]
        ),
        "qdisc/qdisc_reset": None,
        "timer/timer_expire_entry": f"function == {kallsyms('tcp_keepalive_timer')}",
        "timer/timer_start": f"function == {kallsyms('tcp_keepalive_timer')}",
        "net/netif_rx": None,
    }
    tracelib.setup(inst, events, buffer_kb=8192)


def parse(text):
    out = []
    for m, t in lines(text):
        e = dict(ts=t, k=m["what"], task=m["task"].strip(), pid=m["pid"], cpu=m["cpu"], flags=m["flags"], rest=m["rest"])
        if e["k"] in ("timer_start", "timer_expire_entry"):
            e["timer"] = re.search(r"timer=(\S+)", e["rest"])[1]
            t = re.search(r"timeout=(-?\d+)", e["rest"])
            e["timeout"] = int(t[1]) if t else None
        elif e["k"] == "netif_rx":
            n = re.search(r"dev=(\S+) skbaddr=(\S+)", e["rest"])
            e.update(dev=n[1], skb=n[2])
        if e["k"] == "fib_table_lookup":
            f = FIB.search(e["rest"])
            if not f:
                continue
            e.update(f.groupdict())
        elif e["k"] == "inet_sock_set_state":
            s = re.search(r"sport=(\d+) dport=(\d+) .*newstate=(\S+)", e["rest"])
            if not s:
                continue
            e.update(sport=s[1], dport=s[2], new=s[3])
        out.append(e)
    return out


def analyse(record, at, trace, delay):
    ev = record["events"]
    conn = next(e for e in ev if e["source"] == "client" and e["kind"] == "connected")
    port = conn["local"].split(":")[1]
    inj = next(e for e in ev if e["kind"] == "fault-injected")
    lost = next((e for e in ev if e["source"] == "client" and e["kind"] == "peer-lost"), None)
    # Record time = trace time + shift: the smallest (stamp - kernel event) over the pairs
    # both saw (a stamp always comes after its kernel event).
    pairs = []
    for e in trace:
        if e["k"] == "inet_sock_set_state" and e["sport"] == port:
            if e["new"] == "TCP_ESTABLISHED":
                pairs.append(conn["t_ms"] - e["ts"])
            if e["new"] == "TCP_CLOSE" and lost:
                pairs.append(lost["t_ms"] - e["ts"])
    if not pairs:
        return None
    shift = min(pairs)
    # The runner's schedule counts from the client's last connection (of a pool).
    at_abs = max(e["t_ms"] for e in ev if e["source"] == "client" and e["kind"] == "connected") + at
    for e in trace:
        e["t"] = e["ts"] + shift
    # The link-down: the `ip` whose qdisc reset of w1 came last before the stamp (other labs
    # run `ip` too); its NETDEV_GOING_DOWN (the rtnetlink_event before the reset), NETDEV_DOWN
    # (the next one, once IFF_UP went) and NETDEV_DOWN's fib_netdev_event.
    resets = [e for e in trace if e["k"] == "qdisc_reset" and e["task"] == "ip" and "dev=w1" in e["rest"] and e["t"] <= inj["t_ms"] + 0.5]
    reset_e = max(resets, key=lambda e: e["t"])
    reset, pid = reset_e["t"], reset_e["pid"]
    down = [e for e in trace if e["pid"] == pid and e["k"] == "notifier_run"]
    going = max(e["t"] for e in down if "rtnetlink_event" in e["rest"] and e["t"] <= reset)
    upclr = min(e["t"] for e in down if "rtnetlink_event" in e["rest"] and e["t"] >= reset)
    route = min(e["t"] for e in down if "fib_netdev_event" in e["rest"] and e["t"] >= reset)
    # Other labs on the machine use the same addresses and names, so this run's packets are
    # followed from its server's keepalive timer: the timer_start of a 1 s (250-jiffy)
    # tcp_keepalive_timer in process context near the connect (the server's TCP_KEEPIDLE on
    # the accepted socket; other labs' re-arms come from softirqs); each expiry's
    # probe enters w1 on that CPU (netif_rx, its skb), is routed by the router on that CPU
    # (fib lookup, in on w1, iif 3), reaches the client (netif_rx c0, the same skb, after any
    # delay); the client's answer enters w0 on that CPU (the next netif_rx w0: a new skb) and
    # is routed there (the next fib lookup in on w0, iif 2: out by w1, or no route, -101).
    conn_t = conn["t_ms"]
    starts = [
        e
        for e in trace
        if e["k"] == "timer_start" and e["timeout"] == 250 and "s" not in e["flags"] and -20 < e["t"] - conn_t < 50
    ]
    ptrs = {e["timer"] for e in starts}
    # Several: another lab connected within the same moment; its probes would pass for ours.
    mine = [e for e in trace if e["k"] == "timer_expire_entry" and len(ptrs) == 1 and e["timer"] in ptrs]

    def after(e0, pred, within):
        return next((e for e in trace if e["t"] > e0["t"] and e["t"] - e0["t"] < within and pred(e)), None)

    rtts = []
    for tm in mine:
        left = after(tm, lambda e: e["k"] == "netif_rx" and e["cpu"] == tm["cpu"] and e["dev"] == "w1", 1)
        if not left:
            continue
        routed = after(left, lambda e: e["k"] == "fib_table_lookup" and e["cpu"] == left["cpu"] and e["iif"] == "3", 2)
        arrived = after(left, lambda e: e["k"] == "netif_rx" and e["dev"] == "c0" and e["skb"] == left["skb"], 20 + 2 * delay)
        if not (routed and arrived):
            continue
        answer = after(arrived, lambda e: e["k"] == "netif_rx" and e["cpu"] == arrived["cpu"] and e["dev"] == "w0", 2)
        if not answer:
            continue
        answered = after(answer, lambda e: e["k"] == "fib_table_lookup" and e["cpu"] == answer["cpu"] and e["iif"] == "2" and e["src"] == "198.18.1.2", 20 + 2 * delay)
        if answered:
            rtts.append((routed["t"], answered["t"] - routed["t"], int(answered["err"])))
    last = [r for r in rtts if r[0] <= upclr]
    probe = last[-1] if last else None
    timers = [e["t"] - conn_t for e in mine]
    icmps = [e["t"] - route for e in trace if e["k"] == "icmp_send" and "code=0" in e["rest"] and e["t"] >= route]
    r3 = lambda x: None if x is None else round(x, 3)
    # A pool's burst: every router crossing of the server's packets (iif 3) and the client's
    # (iif 2) within 100 ms of the probes' due time, and each connection's error.
    due = conn_t + 1000 * round(at / 1000)
    burst = [e for e in trace if e["k"] == "fib_table_lookup" and e["iif"] in ("2", "3") and -5 < e["t"] - due < 100]
    probes_in = [e["t"] for e in burst if e["iif"] == "3" and e["src"] == "198.18.2.2"]
    answers = [(e["t"], int(e["err"])) for e in burst if e["iif"] == "2" and e["src"] == "198.18.1.2"]
    errors = {}
    for e in ev:
        if e["source"] == "client" and e["kind"] == "peer-lost":
            errors[e["error"]] = errors.get(e["error"], 0) + 1
    return dict(
        tag=record["scenario"]["name"],
        at=at,
        shift_pairs=len(pairs),
        going=r3(going - at_abs),
        upclr=r3(upclr - at_abs),
        route=r3(route - at_abs),
        stamp=r3(inj["t_ms"] - at_abs),
        stamp_vs_upclr=r3(inj["t_ms"] - upclr),
        timers=[r3(t) for t in timers],
        probe=r3(probe[0] - at_abs) if probe else None,
        probe_to_upclr=r3(upclr - probe[0]) if probe else None,
        answer_ms=round(probe[1], 4) if probe else None,
        answer_err=probe[2] if probe else None,
        rtts=[round(r[1], 4) for r in rtts],
        first_icmp_after_route=r3(icmps[0]) if icmps else None,
        server_timers_near_connect=len(ptrs),
        burst_probes_routed=len(probes_in),
        burst_first_probe=r3(min(probes_in) - at_abs) if probes_in else None,
        burst_last_answer=r3(max(t for t, _ in answers) - at_abs) if answers else None,
        burst_probes_before_upclr=sum(1 for t in probes_in if t < upclr),
        burst_answers_no_route=sum(1 for _, err in answers if err == -101),
        client_errors=errors,
        error=lost["error"] if lost else None,
        detect_ms=round(lost["t_ms"] - inj["t_ms"], 1) if lost else None,
    )


def main():
    args = sys.argv[1:]
    repeat = option(args, "--repeat", 1)
    base = option(args, "--base", 1000)
    delay = option(args, "--delay", 0)
    pool = option(args, "--pool", 0)
    wire = f'[wire]\ndelay = "{delay}ms"\n' if delay else ""
    out, offsets = args[0], [int(a) for a in args[1:]]
    os.makedirs(out, exist_ok=True)
    flatline = os.path.abspath("target/release/flatline")
    inst = f"{TRACEFS}/instances/margins-{os.getpid()}"
    # TERM or INT (also when started in the background, where INT is ignored) ends the run
    # after removing the instance.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(130))
    setup(inst)
    n = 0
    try:
        with open(out + "/runs.jsonl", "a") as log:
            for r in range(repeat):
                for off in offsets:
                    n += 1
                    tag = f"{os.getpid()}-{n}"
                    path = f"{out}/race-{tag}.toml"
                    write(path, SCENARIO.format(tag=tag, off=off, at=base + off, end=base + 5000, wire=wire, pool=f"\nconnections = {pool}" if pool else ""))
                    write(inst + "/trace", "")
                    subprocess.run(
                        [flatline, "run", "--out", out, path],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                    with open(inst + "/trace") as f:
                        text = f.read()
                    try:
                        with open(f"{out}/race-{tag}.json") as f:
                            record = json.load(f)
                        row = analyse(record, base + off, parse(text), delay) or dict(failed="no trace pairs")
                    except (OSError, StopIteration, KeyError, ValueError) as e:
                        row = dict(failed=repr(e))
                        try:
                            lost = [e["error"] for e in record["events"] if e["source"] == "client" and e["kind"] == "peer-lost"]
                            row["client_errors"] = {x: lost.count(x) for x in set(lost)}
                        except (NameError, KeyError):
                            pass
                    write(f"{out}/race-{tag}.trace", text)
                    row.update(tag=tag, offset=off, base=base, delay=delay)
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                    print(json.dumps({k: v for k, v in row.items() if k != "rtts"}), flush=True)
    finally:
        teardown(inst)


if __name__ == "__main__":
    main()
