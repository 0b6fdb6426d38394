#!/bin/sh
# Firewall drop: the router silently drops packets between client and server.
# Run inside the wire namespace (flatline does; by hand: ip netns exec wire sh firewall-drop.sh ...).
#
#   firewall-drop.sh inject ID CLIENT_ADDR SERVER_ADDR [both|to-server|to-client]
#   firewall-drop.sh heal   ID
#
# Each fault gets its own table, flatline_drop_ID, so heal removes exactly that rule set and
# nothing else. The rules sit in the forward hook: the endpoints' own stacks never see an
# error, as when a real firewall between them starts dropping.
set -eu
action=$1
id=$2
table="flatline_drop_$id"
case "$action" in
inject)
    client=$3
    server=$4
    direction=${5:-both}
    rules=""
    case "$direction" in
    both | to-server) rules="$rules
        ip saddr $client ip daddr $server drop" ;;
    esac
    case "$direction" in
    both | to-client) rules="$rules
        ip saddr $server ip daddr $client drop" ;;
    esac
    [ -n "$rules" ] || { echo "unknown direction '$direction': use both, to-server or to-client" >&2; exit 2; }
    # One nft transaction: the table and its rules appear atomically.
    nft -f - <<NFT
table ip $table {
    chain forward {
        type filter hook forward priority filter; policy accept;$rules
    }
}
NFT
    ;;
heal)
    nft delete table ip "$table"
    ;;
*)
    echo "usage: $0 inject|heal ID ..." >&2
    exit 2
    ;;
esac
