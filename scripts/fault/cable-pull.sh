#!/bin/sh
# Cable pull: take a link down, as if its cable were unplugged; heal plugs it back in.
# Run inside the namespace that owns the link (flatline picks it: the wire's side of the
# server link, w1, by default; the peer's own link for a local pull).
#
#   cable-pull.sh inject DEV
#   cable-pull.sh heal   DEV [GATEWAY]
#
# Taking a link down deletes every route through it. The connected route comes back with the
# link; a default route does not, so heal re-adds it when GATEWAY is given.
set -eu
action=$1
dev=$2
case "$action" in
inject)
    ip link set dev "$dev" down
    ;;
heal)
    ip link set dev "$dev" up
    if [ -n "${3:-}" ]; then
        ip route replace default via "$3" dev "$dev"
    fi
    ;;
*)
    echo "usage: $0 inject|heal DEV [GATEWAY]" >&2
    exit 2
    ;;
esac
