//! When the kernel applied a cable pull: an rtnetlink socket in each namespace a cable-pull
//! fault touches, subscribed to link events (RTNLGRP_LINK) and IPv4 route events
//! (RTNLGRP_IPV4_ROUTE), stamps each event on the monotonic clock as it arrives. A pull is in
//! effect at the RTM_NEWLINK that reports its link without IFF_UP (dev_close has run: the
//! qdisc is deactivated, routes through it are gone); a plug-in at the RTM_NEWLINK with IFF_UP,
//! or, when heal re-adds a default route, at that route's RTM_NEWROUTE. Not at the script's
//! exit, which comes later (`ip` and `sh` exiting, the runner reaping them).
//!
//! The messages are parsed by hand: only the fixed headers (`nlmsghdr`, `ifinfomsg`, `rtmsg`,
//! include/uapi/linux/{netlink,rtnetlink,if_link}.h) and one attribute (IFLA_IFNAME) are read,
//! which is less than pulling in netlink-packet-route for.

use std::sync::Arc;

use netlink_sys::protocols::NETLINK_ROUTE;

use crate::fault::Mechanism;
use crate::lab::{Lab, Ns};
use crate::netlink::{listen, open_in, string_attr, u16_at, u32_at, Seen, Stop};

/// What the kernel reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// RTM_NEWLINK for `name`: whether IFF_UP is set.
    Link { name: String, up: bool },
    /// RTM_NEWROUTE (added) or RTM_DELROUTE for a default IPv4 route (dst_len 0).
    DefaultRoute { added: bool },
}

/// What a cable-pull step waits for in its namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub ns: Ns,
    pub change: Change,
}

/// rtnetlink sockets in some lab namespaces and what they reported: (ns, change, monotonic ns).
pub struct LinkWatch {
    stop: Arc<Stop>,
    threads: Vec<std::thread::JoinHandle<()>>,
    seen: Arc<Seen<(Ns, Change, u64)>>,
}

const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_IPV4_ROUTE: u32 = 7;
const RTM_NEWLINK: u16 = 16;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const IFLA_IFNAME: u16 = 3;
const IFF_UP: u32 = 1;
const RT_TABLE_MAIN: u8 = 254;

impl LinkWatch {
    /// Subscribes in each of `namespaces`; None if a socket cannot be opened there (the
    /// script's exit then stamps the fault, as before).
    pub fn start(lab: &Lab, namespaces: &[Ns]) -> Option<LinkWatch> {
        let stop = Arc::new(Stop::new()?);
        let seen = Arc::new(Seen::default());
        let mut threads = Vec::new();
        for &ns in namespaces {
            let socket = open_in(
                lab.fd(ns),
                NETLINK_ROUTE,
                &[RTNLGRP_LINK, RTNLGRP_IPV4_ROUTE],
            )?;
            let (stop, sink) = (Arc::clone(&stop), Arc::clone(&seen));
            threads.push(
                std::thread::Builder::new()
                    .name(format!("linkwatch-{ns}"))
                    .spawn(move || {
                        listen(&socket, &stop, |datagram, at| {
                            sink.push(parse(datagram).into_iter().map(|c| (ns, c, at)));
                        });
                    })
                    .ok()?,
            );
        }
        Some(LinkWatch {
            stop,
            threads,
            seen,
        })
    }

    /// When the change `mechanism` makes was applied, if it was seen at or after `since_ns`.
    /// Waits up to 20 ms for the event without holding up the runtime.
    pub async fn applied(&self, mechanism: &Mechanism, since_ns: u64) -> Option<u64> {
        let want = expected(mechanism)?;
        self.seen
            .first(|(ns, change, at)| {
                (*at >= since_ns && *ns == want.ns && *change == want.change).then_some(*at)
            })
            .await
    }

    /// Ends the listening threads (woken at once by the stop pipe).
    pub fn stop(mut self) {
        self.end();
    }

    fn end(&mut self) {
        self.stop.signal();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for LinkWatch {
    fn drop(&mut self) {
        self.end();
    }
}

/// The link and default-route changes in one datagram of rtnetlink messages.
pub fn parse(datagram: &[u8]) -> Vec<Change> {
    let mut out = Vec::new();
    let mut at = 0;
    while let (Some(len), Some(kind)) = (u32_at(datagram, at), u16_at(datagram, at + 4)) {
        let len = len as usize;
        if len < 16 || at + len > datagram.len() {
            break;
        }
        let body = &datagram[at + 16..at + len];
        match kind {
            RTM_NEWLINK => {
                if let (Some(flags), Some(name)) = (u32_at(body, 8), ifname(body)) {
                    out.push(Change::Link {
                        name,
                        up: flags & IFF_UP != 0,
                    });
                }
            }
            RTM_NEWROUTE | RTM_DELROUTE => {
                // rtmsg: family, dst_len, src_len, tos, table, ...
                let default = body.get(1) == Some(&0) && body.get(4) == Some(&RT_TABLE_MAIN);
                if body.first() == Some(&(libc::AF_INET as u8)) && default {
                    out.push(Change::DefaultRoute {
                        added: kind == RTM_NEWROUTE,
                    });
                }
            }
            _ => {}
        }
        at += (len + 3) & !3;
    }
    out
}

/// IFLA_IFNAME from the attributes after a 16-byte ifinfomsg.
fn ifname(body: &[u8]) -> Option<String> {
    string_attr(body, 16, IFLA_IFNAME)
}

/// What the kernel reports when a cable-pull script's change is applied: `inject DEV` takes
/// DEV down; `heal DEV` brings it up; `heal DEV GATEWAY` is in effect once the default route
/// is back.
pub fn expected(mechanism: &Mechanism) -> Option<Expected> {
    let Mechanism::Script { ns, name, args, .. } = mechanism else {
        return None;
    };
    if *name != "cable-pull" {
        return None;
    }
    let dev = args.get(1)?.clone();
    let change = match (args.first().map(String::as_str), args.get(2)) {
        (Some("inject"), _) => Change::Link {
            name: dev,
            up: false,
        },
        (Some("heal"), Some(_)) => Change::DefaultRoute { added: true },
        (Some("heal"), None) => Change::Link {
            name: dev,
            up: true,
        },
        _ => return None,
    };
    Some(Expected { ns: *ns, change })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend(((16 + body.len()) as u32).to_ne_bytes());
        m.extend(kind.to_ne_bytes());
        m.extend([0u8; 10]);
        m.extend(body);
        while !m.len().is_multiple_of(4) {
            m.push(0);
        }
        m
    }

    fn newlink(name: &str, flags: u32) -> Vec<u8> {
        let mut body = vec![0u8; 8];
        body.extend(flags.to_ne_bytes());
        body.extend([0u8; 4]);
        let mut value = name.as_bytes().to_vec();
        value.push(0);
        body.extend(((4 + value.len()) as u16).to_ne_bytes());
        body.extend(IFLA_IFNAME.to_ne_bytes());
        body.extend(&value);
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        message(RTM_NEWLINK, &body)
    }

    #[test]
    fn parses_link_and_default_route_messages() {
        let mut datagram = newlink("w1", 0x1002);
        datagram.extend(newlink("eth0", 0x1003));
        let route = [
            libc::AF_INET as u8,
            0,
            0,
            0,
            RT_TABLE_MAIN,
            3,
            0,
            1,
            0,
            0,
            0,
            0,
        ];
        datagram.extend(message(RTM_NEWROUTE, &route));
        let mut host = route;
        host[1] = 24;
        datagram.extend(message(RTM_DELROUTE, &host));
        assert_eq!(
            parse(&datagram),
            vec![
                Change::Link {
                    name: "w1".into(),
                    up: false
                },
                Change::Link {
                    name: "eth0".into(),
                    up: true
                },
                Change::DefaultRoute { added: true },
            ]
        );
        // Truncated input yields what was whole, never a panic.
        for cut in 0..datagram.len() {
            let _ = parse(&datagram[..cut]);
        }
    }

    #[test]
    fn cable_pull_scripts_map_to_their_kernel_events() {
        let m = |ns, args: &[&str]| Mechanism::Script {
            ns,
            name: "cable-pull",
            script: "",
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        assert_eq!(
            expected(&m(Ns::Wire, &["inject", "w1"])),
            Some(Expected {
                ns: Ns::Wire,
                change: Change::Link {
                    name: "w1".into(),
                    up: false
                }
            })
        );
        assert_eq!(
            expected(&m(Ns::Client, &["heal", "eth0", "198.18.1.1"])),
            Some(Expected {
                ns: Ns::Client,
                change: Change::DefaultRoute { added: true }
            })
        );
        assert_eq!(
            expected(&m(Ns::Wire, &["heal", "w1"])).map(|e| e.change),
            Some(Change::Link {
                name: "w1".into(),
                up: true
            })
        );
        assert_eq!(
            expected(&Mechanism::Restart(crate::scenario::Side::Server)),
            None
        );
    }
}
