//! When the kernel commits a firewall fault: a netlink socket in the wire namespace, member
//! of nf_tables' multicast group (NFNLGRP_NFTABLES, what `nft monitor` listens to), receives
//! the NFT_MSG_NEWTABLE / NFT_MSG_DELTABLE that nf_tables_commit sends once the new rules are
//! live, and a real-time thread stamps it on the monotonic clock as it arrives. So a firewall
//! fault's `fault-injected` is the nftables commit, not the script's exit (which comes
//! ~0.2-0.5 ms later: nft and sh exiting, the runner reaping them). Where that socket cannot
//! be had (no CAP_NET_ADMIN over the wire's namespace), `nft monitor tables` runs there and
//! its lines are stamped as they are read: one process hop later (measured once 0.53 ms after
//! the reset a rule drew, with ten labs on two cores).

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::Arc;

use netlink_sys::protocols::NETLINK_NETFILTER;

use crate::clock;
use crate::fault::Mechanism;
use crate::lab::{Lab, Ns};
use crate::netlink::{Seen, Stop};

/// What reports nf_tables' table changes, and what it has reported, in `nft monitor`'s words:
/// (line, monotonic ns).
pub struct NftWatch {
    source: Source,
    seen: Arc<Seen<(String, u64)>>,
}

enum Source {
    /// Our netlink socket, read by a real-time thread until `stop`.
    Netlink {
        stop: Arc<Stop>,
        thread: Option<std::thread::JoinHandle<()>>,
    },
    /// A running `nft monitor tables` (ours: killed by its pid, then reaped).
    Monitor(Child),
}

/// nfnetlink's multicast group for nf_tables changes (include/uapi/linux/netfilter/nfnetlink.h).
const NFNLGRP_NFTABLES: u32 = 7;
/// Message types: NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWTABLE, NFT_MSG_DELTABLE.
const NFT_NEWTABLE: u16 = 10 << 8;
const NFT_DELTABLE: u16 = (10 << 8) | 2;
const NFTA_TABLE_NAME: u16 = 1;
const NFPROTO_IPV4: u8 = 2;

impl NftWatch {
    /// Starts listening in the wire namespace: our own netlink socket, else `nft monitor`;
    /// None if neither can (the exit of the script then stamps the fault, as before).
    pub fn start(lab: &Lab) -> Option<NftWatch> {
        NftWatch::listen(lab).or_else(|| NftWatch::monitor(lab))
    }

    fn listen(lab: &Lab) -> Option<NftWatch> {
        let socket =
            crate::netlink::open_in(lab.fd(Ns::Wire), NETLINK_NETFILTER, &[NFNLGRP_NFTABLES])?;
        let stop = Arc::new(Stop::new()?);
        let seen = Arc::new(Seen::default());
        let (flag, sink) = (Arc::clone(&stop), Arc::clone(&seen));
        let thread = std::thread::Builder::new()
            .name("nft-listen".into())
            .spawn(move || {
                crate::netlink::listen(&socket, &flag, |datagram, at| {
                    sink.push(parse(datagram).into_iter().map(|line| (line, at)));
                });
            })
            .ok()?;
        Some(NftWatch {
            source: Source::Netlink {
                stop,
                thread: Some(thread),
            },
            seen,
        })
    }

    fn monitor(lab: &Lab) -> Option<NftWatch> {
        let mut cmd = lab.command(Ns::Wire, "nft", &[]);
        cmd.args(["monitor", "tables"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().ok()?;
        let stdout = child.stdout.take()?;
        let seen = Arc::new(Seen::default());
        let sink = Arc::clone(&seen);
        std::thread::Builder::new()
            .name("nft-monitor".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let at = clock::now_ns();
                    sink.push([(line, at)]);
                }
            })
            .ok()?;
        Some(NftWatch {
            source: Source::Monitor(child),
            seen,
        })
    }

    /// Whether the kernel's messages are read by our own socket (not `nft monitor`).
    pub fn is_netlink(&self) -> bool {
        matches!(self.source, Source::Netlink { .. })
    }

    /// When the table a firewall script adds (inject) or deletes (heal) was committed, if the
    /// monitor saw it at or after `since_ns`: monotonic ns.
    pub async fn committed(&self, mechanism: &Mechanism, since_ns: u64) -> Option<u64> {
        let want = expected_line(mechanism)?;
        self.seen
            .first(|(line, at)| (*at >= since_ns && line.trim() == want).then_some(*at))
            .await
    }

    /// Ends the listening thread (woken at once) or the monitor.
    pub fn stop(mut self) {
        self.end();
    }

    fn end(&mut self) {
        match &mut self.source {
            Source::Netlink { stop, thread } => {
                stop.signal();
                if let Some(t) = thread.take() {
                    let _ = t.join();
                }
            }
            Source::Monitor(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for NftWatch {
    fn drop(&mut self) {
        self.end();
    }
}

/// The tables added and deleted in one datagram of nfnetlink messages, as `nft monitor
/// tables` would print them ("add table ip NAME"); only IPv4 tables (ours).
pub fn parse(datagram: &[u8]) -> Vec<String> {
    use crate::netlink::{u16_at, u32_at};
    let mut out = Vec::new();
    let mut at = 0;
    while let (Some(len), Some(kind)) = (u32_at(datagram, at), u16_at(datagram, at + 4)) {
        let len = len as usize;
        if len < 16 || at + len > datagram.len() {
            break;
        }
        // nlmsghdr (16 bytes), nfgenmsg (family, version, res_id: 4 bytes), attributes.
        let body = &datagram[at + 16..at + len];
        let verb = match kind {
            NFT_NEWTABLE => Some("add"),
            NFT_DELTABLE => Some("delete"),
            _ => None,
        };
        if let (Some(verb), Some(&NFPROTO_IPV4)) = (verb, body.first()) {
            if let Some(name) = table_name(body) {
                out.push(format!("{verb} table ip {name}"));
            }
        }
        at += (len + 3) & !3;
    }
    out
}

/// NFTA_TABLE_NAME from the attributes after the 4-byte nfgenmsg.
fn table_name(body: &[u8]) -> Option<String> {
    crate::netlink::string_attr(body, 4, NFTA_TABLE_NAME)
}

/// The line `nft monitor tables` prints when a firewall script's table is committed.
pub fn expected_line(mechanism: &Mechanism) -> Option<String> {
    let Mechanism::Script { name, args, .. } = mechanism else {
        return None;
    };
    if *name != "firewall" {
        return None;
    }
    let verb = match args.first().map(String::as_str) {
        Some("inject") => "add",
        Some("heal") => "delete",
        _ => return None,
    };
    Some(format!("{verb} table ip flatline_{}", args.get(1)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One nfnetlink message: header, nfgenmsg for `family`, a name attribute.
    fn message(kind: u16, family: u8, name: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        let value = format!("{name}\0");
        attr.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        attr.extend_from_slice(&NFTA_TABLE_NAME.to_ne_bytes());
        attr.extend_from_slice(value.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let len = 16 + 4 + attr.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&[family, 0, 0, 0]);
        m.extend(attr);
        m
    }

    #[test]
    fn parses_table_messages_as_nft_monitor_prints_them() {
        let mut datagram = message(NFT_NEWTABLE, NFPROTO_IPV4, "flatline_f");
        // Another family's table, a chain message (NFT_MSG_NEWCHAIN) and a deletion.
        datagram.extend(message(NFT_NEWTABLE, 10, "flatline_v6"));
        datagram.extend(message((10 << 8) | 3, NFPROTO_IPV4, "flatline_f"));
        datagram.extend(message(NFT_DELTABLE, NFPROTO_IPV4, "flatline_drop_1"));
        assert_eq!(
            parse(&datagram),
            ["add table ip flatline_f", "delete table ip flatline_drop_1"]
        );
        // A truncated datagram yields what was whole.
        assert_eq!(parse(&datagram[..datagram.len() - 3]).len(), 1);
        assert!(parse(&[1, 2, 3]).is_empty());
    }

    #[test]
    fn firewall_scripts_map_to_their_tables() {
        let m = |args: &[&str]| Mechanism::Script {
            ns: Ns::Wire,
            name: "firewall",
            script: "",
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        assert_eq!(
            expected_line(&m(&["inject", "drop_1", "a", "b", "both", "drop"])).as_deref(),
            Some("add table ip flatline_drop_1")
        );
        assert_eq!(
            expected_line(&m(&["heal", "drop_1"])).as_deref(),
            Some("delete table ip flatline_drop_1")
        );
        assert_eq!(
            expected_line(&Mechanism::Restart(crate::scenario::Side::Server)),
            None
        );
    }
}
