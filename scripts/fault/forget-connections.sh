#!/bin/sh
# Forget every TCP connection of this network namespace, as a host does when it reboots:
# the sockets are destroyed without a word to their peers (ss -K, CONFIG_INET_DIAG_DESTROY).
# flatline runs it in the rebooting peer's namespace while the wire drops that host's
# traffic, so whatever the destroyed sockets send on their way out never arrives.
#
#   forget-connections.sh
set -eu
ss -K -t -a >/dev/null
