#!/bin/sh
# NAT / load-balancer idle timeout: the router becomes a NAT that forgets idle flows.
# Run inside the wire namespace (flatline does; by hand: ip netns exec wire sh nat.sh ...).
#
#   nat.sh setup CLIENT_NET OUT_DEV drop|reset   masquerade CLIENT_NET out of OUT_DEV, strictly
#   nat.sh inject SECONDS     from now on, established flows idle this long are forgotten
#   nat.sh heal               back to Linux's default established timeout (432000 s)
#   nat.sh counters           what the strict rule matched (heal prints it too)
#
# flatline itself writes the timeout (inject, heal) from the runner, so that it knows the
# moment the kernel holds the new value, and runs `counters` before a heal's write.
#
# Strict conntrack (physics.md, harness caveats): with nf_conntrack_tcp_loose=1 (the default)
# conntrack would adopt a mid-stream packet as a new flow and masquerade would quietly create
# a new mapping. With loose=0 a packet of a forgotten flow has no conntrack entry ("invalid")
# and is dropped, or answered with a TCP reset as some cloud NATs do, before NAT sees it.
# The timeout is re-read by conntrack on every packet of a flow: a flow's idle timer restarts
# at its next packet after inject.
set -eu
action=$1
ct=/proc/sys/net/netfilter
case "$action" in
setup)
    net=$2
    dev=$3
    case "${4:-drop}" in
    drop) verdict="drop" ;;
    reset) verdict="reject with tcp reset" ;;
    *) echo "unknown verdict '$4': use drop or reset" >&2; exit 2 ;;
    esac
    nft -f - <<NFT
table ip flatline_nat {
    chain strict {
        type filter hook prerouting priority -150; policy accept;
        ct state invalid meta l4proto tcp counter $verdict
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "$dev" ip saddr $net masquerade
    }
}
NFT
    echo 0 > "$ct/nf_conntrack_tcp_loose"
    ;;
inject)
    echo "$2" > "$ct/nf_conntrack_tcp_timeout_established"
    ;;
heal)
    echo 432000 > "$ct/nf_conntrack_tcp_timeout_established"
    nft list chain ip flatline_nat strict
    ;;
counters)
    nft list chain ip flatline_nat strict
    ;;
*)
    echo "usage: $0 setup|inject|heal|counters ..." >&2
    exit 2
    ;;
esac
