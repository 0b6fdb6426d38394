"""What the measurement scripts share (ack-delay.py, inject-late.py, race-margins.py,
reset-race.py): a tracefs instance of their own with filtered events on the monotonic clock,
the trace's line format, and their option parsing. Imported from the scripts' directory."""

import os
import re
import subprocess

TRACEFS = "/sys/kernel/tracing"

# One event of a trace: task-pid [cpu] flags seconds: event: fields.
LINE = re.compile(
    r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+(?P<flags>\S+)\s+(?P<ts>\d+\.\d+):\s+(?P<what>[a-z_]+):\s(?P<rest>.*)$"
)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def kallsyms(name):
    """The address of a kernel symbol, as an event filter on a function pointer takes it."""
    with open("/proc/kallsyms") as f:
        for line in f:
            addr, _, sym = line.split()[:3]
            if sym == name:
                return "0x" + addr
    raise SystemExit(f"{name} not in /proc/kallsyms")


def setup(inst, events, buffer_kb):
    """Creates the instance `inst` (tracefs mounted first if it is not: run the scripts under
    `unshare -m --propagation private` so the mount goes with them), on the monotonic clock,
    with each of `events` ("system/event": filter, or None for every one) enabled."""
    if not os.path.exists(TRACEFS + "/events"):
        subprocess.run(["mount", "-t", "tracefs", "nodev", TRACEFS], check=True)
    os.mkdir(inst)
    write(inst + "/buffer_size_kb", str(buffer_kb))
    write(inst + "/trace_clock", "mono")
    for ev, flt in events.items():
        if flt:
            write(f"{inst}/events/{ev}/filter", flt)
        write(f"{inst}/events/{ev}/enable", "1")
    write(inst + "/tracing_on", "1")


def teardown(inst):
    """Stops the instance and removes it."""
    try:
        write(inst + "/tracing_on", "0")
        write(inst + "/events/enable", "0")
    finally:
        os.rmdir(inst)


def lines(text):
    """The events of a trace's text, as LINE matches, with the time in ms as "t"."""
    for line in text.splitlines():
        m = LINE.match(line)
        if m:
            yield m, float(m["ts"]) * 1000.0


def option(args, name, default, conv=int):
    """Takes `name VALUE` out of `args`; `default` when it is not there."""
    if name not in args:
        return default
    i = args.index(name)
    value = conv(args[i + 1])
    del args[i : i + 2]
    return value
