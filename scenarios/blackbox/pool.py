"""A client with a pool of connections, as connection pools in real services hold them.

One thread, non-blocking sockets and a selector: POOL connections to the server flatline
names (FLATLINE_SERVER_ADDR, FLATLINE_SERVER_PORT), each with keepalive 1 s / 1 s / 3. A
connection that fails (EOF, or an error such as ETIMEDOUT from its keepalive) is closed at
once and connected again RETRY seconds later; an attempt that is not connected within
CONNECT_TIMEOUT is abandoned and retried the same way. Prints one line per loss and per return.
"""

import errno
import os
import selectors
import socket
import sys
import time

POOL = int(sys.argv[1]) if len(sys.argv) > 1 else 50
RETRY = 0.5
CONNECT_TIMEOUT = 0.8
ADDR = (os.environ["FLATLINE_SERVER_ADDR"], int(os.environ["FLATLINE_SERVER_PORT"]))

sel = selectors.DefaultSelector()
due = {slot: 0.0 for slot in range(POOL)}  # slot -> when to connect next
deadline = {}  # slot -> when its connect attempt is given up
ever = set()  # slots connected at least once


def say(text):
    print(text, flush=True)


def connect(slot):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
    s.setblocking(False)
    err = s.connect_ex(ADDR)
    if err not in (0, errno.EINPROGRESS):
        s.close()
        retry(slot)
        return
    sel.register(s, selectors.EVENT_WRITE, slot)
    deadline[slot] = time.monotonic() + CONNECT_TIMEOUT


def retry(slot):
    due[slot] = time.monotonic() + RETRY


def drop(s, slot, why):
    sel.unregister(s)
    s.close()
    if why is not None:
        say(f"connection {slot} lost: {why}")
    retry(slot)


def ready(key, mask):
    s, slot = key.fileobj, key.data
    if slot in deadline:
        del deadline[slot]
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            drop(s, slot, None)
            return
        sel.modify(s, selectors.EVENT_READ, slot)
        say(f"connection {slot} {'back' if slot in ever else 'up'}")
        ever.add(slot)
        return
    try:
        data = s.recv(4096)
    except OSError as e:
        drop(s, slot, errno.errorcode.get(e.errno, str(e.errno)))
        return
    if not data:
        drop(s, slot, "EOF")


while True:
    now = time.monotonic()
    for slot, when in list(due.items()):
        if when <= now:
            del due[slot]
            connect(slot)
    for key in list(sel.get_map().values()):
        slot = key.data
        if slot in deadline and deadline[slot] <= now:
            del deadline[slot]
            drop(key.fileobj, slot, None)
    wake = list(due.values()) + list(deadline.values())
    timeout = max(0.0, min(wake) - now) if wake else None
    for key, mask in sel.select(timeout):
        ready(key, mask)
