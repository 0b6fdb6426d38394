#!/usr/bin/env python3
"""Measures how late a fault takes effect after its `at` with many labs at once
(docs/physics.md, K9a, "the race's margins"; `INJECT_LATE_MS` in harness/model.rs). Root only;
run from the repository after `cargo build --release`.

    unshare -m --propagation private scripts/inject-late.py OUT --jobs N [--rounds R] [--busy B]

Each round writes N scenarios (idle keepalive 1s/1s/3 both sides, the fault at 1 s, healed at
2 s, end 3 s)
and runs them with `flatline run -j N`, beside B busy loops (ended with the script): one pulls
the server's cable at the wire (w1), one the client's (w0), the rest are firewall drops and
rejects with TCP reset in turn. From every record: late_record = fault-injected - (the client's
`connected` + at): the runner's own schedule, which counts from the client peer's stamp of its
connect; heal_late_record likewise for the heal (`fault-healed`). The peers' timers count from the kernel's connect, which the stamp can follow late on
a loaded CPU, so the two pulls of each round are also traced, in a tracefs instance of its own
(`injectlate-<pid>`, removed at the end, also on TERM or INT) on the monotonic clock: the
`ip` task's qdisc:qdisc_reset of w1 (w0) is the only one in the round, its next
notifier:notifier_run of rtnetlink_event is NETDEV_DOWN, which the record's `fault-injected`
stamps (within 0.1 ms, docs/physics.md "Where F comes from"), and that lines the record up with
the trace; sock:inet_sock_set_state gives the client's SYN_SENT -> ESTABLISHED by its port. So
for those: late = NETDEV_DOWN - (kernel connect + at), and connected_lag = the client's
`connected` stamp - the kernel's connect. Prints the distributions and writes every run to
OUT/runs.jsonl.
"""

import glob
import json
import os
import re
import signal
import subprocess
import sys

import tracelib
from tracelib import TRACEFS, kallsyms, lines, option, teardown, write

HEAL = 2000

FAULTS = {
    "pull-server": 'kind = "cable-pull"\ntarget = "server"',
    "pull-client": 'kind = "cable-pull"\ntarget = "client"',
    "firewall-drop": 'kind = "firewall-drop"',
    "reject-tcp-reset": 'kind = "reject"\nwith = "tcp-reset"',
}

SCENARIO = """name = "late-{tag}"
description = "how late a {kind} takes effect among {jobs} labs"
end = "3s"
expect = "none"

[server]
keepalive = {{ idle = "1s", interval = "1s", count = 3 }}

[client]
keepalive = {{ idle = "1s", interval = "1s", count = 3 }}

[[fault]]
{fault}
at = "{at}ms"
heal = "{heal}ms"
"""


def setup(inst):
    events = {
        "sock/inet_sock_set_state": "dport == 7000 && newstate == 1",
        "notifier/notifier_run": f"cb == {kallsyms('rtnetlink_event')}",
        "qdisc/qdisc_reset": None,
    }
    tracelib.setup(inst, events, buffer_kb=16384)


def parse(text):
    est, notes, resets = [], [], []
    for m, t in lines(text):
        if m["what"] == "inet_sock_set_state":
            s = re.search(r"sport=(\d+)", m["rest"])
            if s:
                est.append((t, s[1]))
        elif m["what"] == "notifier_run":
            notes.append((t, m["pid"]))
        elif m["what"] == "qdisc_reset" and m["task"].strip() == "ip":
            d = re.search(r"dev=(\S+)", m["rest"])
            if d:
                resets.append((t, m["pid"], d[1]))
    return est, notes, resets


def analyse(record, kind, trace, at):
    est, notes, resets = trace
    ev = record["events"]
    conn = next(e for e in ev if e["source"] == "client" and e["kind"] == "connected")
    inj = next(e for e in ev if e["kind"] == "fault-injected")
    row = dict(late_record=round(inj["t_ms"] - conn["t_ms"] - at, 3), took_ms=inj.get("took_ms"))
    healed = next((e for e in ev if e["kind"] == "fault-healed"), None)
    if healed:
        row["heal_late_record"] = round(healed["t_ms"] - conn["t_ms"] - HEAL, 3)
    dev = {"pull-server": "w1", "pull-client": "w0"}.get(kind)
    if not dev:
        return row
    # One `ip` resets the link's qdisc twice (its queue, then the device's), a microsecond apart.
    pids = {r[1] for r in resets if r[2] == dev}
    if len(pids) != 1:
        row["failed"] = f"{len(pids)} ip tasks reset {dev}'s qdisc"
        return row
    pid = pids.pop()
    t_reset = max(r[0] for r in resets if r[1] == pid)
    down = min((t for t, p in notes if p == pid and t >= t_reset), default=None)
    port = conn["local"].split(":")[1]
    # Record time = trace time + shift, from the stamp of the link-down.
    shift = inj["t_ms"] - down
    cands = [t for t, p in est if p == port and t + shift <= conn["t_ms"] + 0.01]
    if down is None or not cands:
        row["failed"] = "no link-down or connect traced"
        return row
    kconn = max(cands)
    row.update(
        late=round(down - kconn - at, 3),
        connected_lag=round(conn["t_ms"] - (kconn + shift), 3),
    )
    return row


def quant(v):
    v = sorted(v)
    q = lambda p: v[min(len(v) - 1, int(p * len(v)))]
    return f"n={len(v)} min={v[0]:.1f} median={q(0.5):.1f} p90={q(0.9):.1f} p99={q(0.99):.1f} max={v[-1]:.1f} ms"


def main():
    args = sys.argv[1:]
    jobs = option(args, "--jobs", 1)
    rounds = option(args, "--rounds", 1)
    busy = option(args, "--busy", 0)
    out = args[0]
    os.makedirs(out, exist_ok=True)
    flatline = os.path.abspath("target/release/flatline")
    inst = f"{TRACEFS}/instances/injectlate-{os.getpid()}"
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(130))
    at = 1000
    loops = []
    setup(inst)
    rows = []
    try:
        loops = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(busy)]
        with open(out + "/runs.jsonl", "a") as log:
            for r in range(rounds):
                d = f"{out}/j{jobs}-b{busy}-{os.getpid()}-{r}"
                os.makedirs(d, exist_ok=True)
                kinds = ["pull-server", "pull-client"] + [("firewall-drop", "reject-tcp-reset")[j % 2] for j in range(jobs - 2)]
                for j in range(jobs):
                    kind = kinds[j]
                    write(
                        f"{d}/late-{j}.toml",
                        SCENARIO.format(tag=f"{r}-{j}", kind=kind, jobs=jobs, fault=FAULTS[kind], at=at, heal=HEAL),
                    )
                write(inst + "/trace", "")
                subprocess.run(
                    [flatline, "run", "--out", d, "-j", str(jobs), *sorted(glob.glob(f"{d}/*.toml"))],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                with open(inst + "/trace") as f:
                    text = f.read()
                write(f"{d}/trace", text)
                trace = parse(text)
                for j in range(jobs):
                    kind = kinds[j]
                    try:
                        with open(f"{d}/late-{r}-{j}.json") as f:
                            row = analyse(json.load(f), kind, trace, at)
                    except (OSError, StopIteration, KeyError, ValueError) as e:
                        row = dict(failed=repr(e))
                    row.update(kind=kind, jobs=jobs, busy=busy, round=r)
                    rows.append(row)
                    log.write(json.dumps(row) + "\n")
                print(f"round {r + 1}/{rounds} done", flush=True)
    finally:
        for p in loops:
            p.kill()
            p.wait()
        teardown(inst)
    rec = [x for x in rows if "late_record" in x]
    print(f"jobs={jobs} busy={busy}: {len(rec)} of {len(rows)} runs with a fault-injected stamp")
    for kind in ["pull-server", "pull-client", "firewall-drop", "reject-tcp-reset"]:
        v = [x["late_record"] for x in rec if x["kind"] == kind]
        if v:
            print(f"  {kind}: late_record {quant(v)}")
    if rec:
        print(f"  all: late_record {quant([x['late_record'] for x in rec])}")
        print(f"  script took: {quant([x['took_ms'] for x in rec if x.get('took_ms') is not None])}")
        for kind in ["pull-server", "pull-client", "firewall-drop", "reject-tcp-reset"]:
            v = [x["heal_late_record"] for x in rec if x["kind"] == kind and "heal_late_record" in x]
            if v:
                print(f"  {kind}: heal_late_record {quant(v)}")
    ex = [x for x in rows if "late" in x]
    if ex:
        print(f"  traced pulls: late {quant([x['late'] for x in ex])}")
        print(f"  traced pulls: connected_lag {quant([x['connected_lag'] for x in ex])}")


if __name__ == "__main__":
    main()
