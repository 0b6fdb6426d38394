#!/bin/sh
# Failover by address move: the server's host is cut off (the wire's side of its link goes
# down, as if its switch port died) and its address is routed to the standby host, which has
# held that address on its loopback since the lab came up, unreachable until now. The standby
# has no state for the old connections: their next packet draws its RST. Run in the wire.
#
#   failover.sh move OLD_DEV ADDRESS STANDBY
#
# One `ip -batch`, so the address is unrouted only between two netlink requests.
set -eu
case "${1:-}" in
move)
    printf 'link set dev %s down\nroute replace %s/32 via %s\n' "$2" "$3" "$4" | ip -batch -
    ;;
*)
    echo "usage: $0 move OLD_DEV ADDRESS STANDBY" >&2
    exit 2
    ;;
esac
