#!/bin/sh
# Firewall faults in the router: drop, reject or randomly lose packets between client and server.
# Run inside the wire namespace (flatline does; by hand: ip netns exec wire sh firewall.sh ...).
#
#   firewall.sh inject ID CLIENT_ADDR SERVER_ADDR DIRECTION VERDICT [PERCENT]
#       DIRECTION: both | to-server | to-client
#       VERDICT:   drop               silently drop (a firewall or a dead path)
#                  tcp-reset          answer TCP with a reset (REJECT --reject-with tcp-reset)
#                  icmp-host          answer with ICMP host unreachable
#                  icmp-port          answer with ICMP port unreachable
#                  loss               drop PERCENT % of packets at random (no netem needed)
#   firewall.sh heal ID          prints the rules with their packet counters, then removes them
#
# Each fault gets its own table, flatline_ID, so heal removes exactly that rule set and nothing
# else. The rules sit in the forward hook: the endpoints' own stacks see no local error, as when
# a real middlebox between them misbehaves.
set -eu
action=$1
id=$2
table="flatline_$id"
case "$action" in
inject)
    client=$3
    server=$4
    direction=$5
    verdict=$6
    case "$verdict" in
    drop) stmt="counter drop" ;;
    tcp-reset) stmt="meta l4proto tcp counter reject with tcp reset" ;;
    icmp-host) stmt="counter reject with icmp type host-unreachable" ;;
    icmp-port) stmt="counter reject with icmp type port-unreachable" ;;
    loss) stmt="numgen random mod 100 < ${7:?loss needs a percentage} counter drop" ;;
    *) echo "unknown verdict '$verdict'" >&2; exit 2 ;;
    esac
    rules=""
    case "$direction" in
    both | to-server) rules="$rules
        ip saddr $client ip daddr $server $stmt" ;;
    esac
    case "$direction" in
    both | to-client) rules="$rules
        ip saddr $server ip daddr $client $stmt" ;;
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
    nft list table ip "$table"
    nft delete table ip "$table"
    ;;
*)
    echo "usage: $0 inject|heal ID ..." >&2
    exit 2
    ;;
esac
