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

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use netlink_sys::{protocols::NETLINK_ROUTE, Socket};

use crate::clock;
use crate::fault::Mechanism;
use crate::lab::{Lab, Ns};
use crate::nftwatch::Seen;

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

/// A netlink socket of `protocol`, member of `groups`, created inside the namespace `fd`
/// holds (on a throwaway thread, so no thread of ours changes namespace; a socket stays in the
/// namespace it was created in). Shared by the link and nft watchers.
pub(crate) fn open_in(fd: std::os::fd::RawFd, protocol: isize, groups: &[u32]) -> Option<Socket> {
    let groups = groups.to_vec();
    std::thread::spawn(move || -> Option<Socket> {
        // SAFETY: setns on this short-lived thread only; fd is a namespace descriptor the lab
        // holds open for its whole life.
        if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
            return None;
        }
        let mut socket = Socket::new(protocol).ok()?;
        socket.bind_auto().ok()?;
        for group in groups {
            socket.add_membership(group).ok()?;
        }
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 50_000,
        };
        // SAFETY: a valid socket and a timeval of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        (rc == 0).then_some(socket)
    })
    .join()
    .ok()
    .flatten()
}

/// Tells listening threads to end, and wakes them at once: each polls the pipe's read end
/// beside its socket, so ending a watcher takes no receive timeout (the runner's task waits
/// for the join, and other labs with it).
pub(crate) struct Stop {
    flag: AtomicBool,
    read: std::os::fd::OwnedFd,
    write: std::os::fd::OwnedFd,
}

impl Stop {
    pub(crate) fn new() -> Option<Stop> {
        let (read, write) = nix::unistd::pipe().ok()?;
        Some(Stop {
            flag: AtomicBool::new(false),
            read,
            write,
        })
    }

    pub(crate) fn signal(&self) {
        self.flag.store(true, Ordering::Relaxed);
        let _ = nix::unistd::write(&self.write, &[1]);
    }

    pub(crate) fn stopped(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// The descriptor to poll beside one's own: readable once stopped.
    pub(crate) fn fd(&self) -> std::os::fd::RawFd {
        self.read.as_raw_fd()
    }
}

/// Receives datagrams until `stop`, handing each to `on` with the monotonic ns it arrived at.
pub(crate) fn listen(socket: &Socket, stop: &Stop, mut on: impl FnMut(&[u8], u64)) {
    // The stamp is taken when this thread wakes, so it must wake at once even on a loaded
    // machine: as root it runs SCHED_FIFO (it only stamps and parses a few bytes per event);
    // without the privilege it stays an ordinary thread, and a late wake loses to the
    // script's exit (the runner keeps the earlier of the two).
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: sets this thread's own policy; the parameter is a valid sched_param.
    let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.stopped() {
        let mut fds = [
            libc::pollfd {
                fd: socket.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop.fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfds; no timeout: the stop pipe wakes us.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if ready <= 0 || fds[1].revents != 0 {
            continue;
        }
        let n = match socket.recv(&mut &mut buf[..], libc::MSG_DONTWAIT) {
            Ok(n) => n,
            Err(e) => {
                // Nothing after all: poll again. Anything else (ENOBUFS after an overflow):
                // pause, so a real-time thread never spins.
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                continue;
            }
        };
        let at = clock::now_ns();
        on(&buf[..n.min(buf.len())], at);
    }
}

pub(crate) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
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

/// The string attribute of type `kind` among the netlink attributes that start at `at` in a
/// message's body (type compared without its top flag bits, NLA_F_NESTED and
/// NLA_F_NET_BYTEORDER).
pub(crate) fn string_attr(body: &[u8], mut at: usize, kind: u16) -> Option<String> {
    while let (Some(len), Some(k)) = (u16_at(body, at), u16_at(body, at + 2)) {
        let len = len as usize;
        if len < 4 || at + len > body.len() {
            return None;
        }
        if k & 0x3fff == kind {
            let value = &body[at + 4..at + len];
            let end = value.iter().position(|&c| c == 0).unwrap_or(value.len());
            return Some(String::from_utf8_lossy(&value[..end]).into_owned());
        }
        at += (len + 3) & !3;
    }
    None
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

    /// A listener with nothing arriving (a socket without a receive timeout, so a plain
    /// blocking recv would never return) ends as soon as it is told: the runner's task waits
    /// for that join, and with it every other lab of `run -j N`.
    #[test]
    fn a_listener_ends_at_once_when_told() {
        let mut socket = Socket::new(NETLINK_ROUTE).unwrap();
        socket.bind_auto().unwrap();
        let stop = Arc::new(Stop::new().unwrap());
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || listen(&socket, &flag, |_, _| {}));
        std::thread::sleep(Duration::from_millis(20));
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let asked = std::time::Instant::now();
        stop.signal();
        std::thread::spawn(move || {
            let _ = thread.join();
            let _ = done_tx.send(asked.elapsed());
        });
        let took = done_rx
            .recv_timeout(Duration::from_secs(2))
            .expect("the listener ended");
        eprintln!("listener ended {took:?} after the stop");
        assert!(took < Duration::from_millis(500), "{took:?}");
    }

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
