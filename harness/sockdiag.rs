//! A network namespace's TCP sockets through sock_diag (what `ss -toi` shows), and which of a
//! program's processes holds which of them (/proc/PID/fd). Call from a thread that is inside
//! the namespace: the netlink socket belongs to the namespace it was opened in.
//!
//! netlink-packet-sock-diag (MIT) builds and parses the messages, netlink-sys (MIT) is the
//! socket: both from the rust-netlink project that rtnetlink uses, so we keep no hand-written
//! struct layouts.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::constants::{AF_INET, IPPROTO_TCP};
use netlink_packet_sock_diag::inet::nlas::Nla;
use netlink_packet_sock_diag::inet::{
    ExtensionFlags, InetRequest, InetResponse, SocketId, StateFlags, Timer,
};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr};

use crate::observer::{DiagSocket, SocketSettings, TcpState, Tuple};

/// A sock_diag socket of the calling thread's network namespace.
pub struct Diag {
    socket: Socket,
    buf: Vec<u8>,
}

impl Diag {
    pub fn open() -> std::io::Result<Diag> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Diag {
            socket,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Every IPv4 TCP socket of the namespace, with its timers and tcp_info.
    pub fn dump(&mut self) -> std::io::Result<Vec<DiagSocket>> {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let mut packet = NetlinkMessage::new(
            header,
            SockDiagMessage::InetRequest(InetRequest {
                family: AF_INET,
                protocol: IPPROTO_TCP,
                extensions: ExtensionFlags::INFO,
                states: StateFlags::all(),
                socket_id: SocketId::new_v4(),
            })
            .into(),
        );
        packet.finalize();
        let mut out = vec![0; packet.header.length as usize];
        packet.serialize(&mut out[..]);
        self.socket.send(&out, 0)?;
        let mut sockets = Vec::new();
        loop {
            let size = self.socket.recv(&mut &mut self.buf[..], 0)?;
            let mut offset = 0;
            while offset < size {
                let msg = NetlinkMessage::<SockDiagMessage>::deserialize(&self.buf[offset..size])
                    .map_err(|e| std::io::Error::other(format!("sock_diag reply: {e}")))?;
                let len = msg.header.length as usize;
                match msg.payload {
                    NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                        sockets.extend(socket(&r));
                    }
                    NetlinkPayload::Done(_) => return Ok(sockets),
                    NetlinkPayload::Error(e) => {
                        return Err(std::io::Error::other(format!("sock_diag: {e:?}")))
                    }
                    _ => {}
                }
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }
}

fn socket(r: &InetResponse) -> Option<DiagSocket> {
    let h = &r.header;
    let (IpAddr::V4(src), IpAddr::V4(dst)) =
        (h.socket_id.source_address, h.socket_id.destination_address)
    else {
        return None;
    };
    let info = r.nlas.iter().find_map(|n| match n {
        Nla::TcpInfo(i) => Some(i),
        _ => None,
    });
    Some(DiagSocket {
        tuple: Tuple {
            local: SocketAddrV4::new(src, h.socket_id.source_port),
            remote: SocketAddrV4::new(dst, h.socket_id.destination_port),
        },
        state: TcpState::from_number(h.state)?,
        inode: u64::from(h.inode),
        keepalive_in_ms: match h.timer {
            Some(Timer::KeepAlive(d)) => Some(d.as_millis() as u32),
            _ => None,
        },
        retransmit: match h.timer {
            Some(Timer::Retransmit(d, n)) => Some((d.as_millis() as u32, n)),
            _ => None,
        },
        probes: info.map_or(0, |i| i.probes),
        unacked: info.map_or(0, |i| i.unacked),
    })
}

/// Host PIDs of every process in process group `pgid` (host numbering, as /proc shows it).
pub fn group_pids(pgid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| pgrp_of(&stat))
                == Some(pgid)
        })
        .collect()
}

/// The process group in a /proc/PID/stat line (its 5th field, after the command in parens).
pub fn pgrp_of(stat: &str) -> Option<i32> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_ascii_whitespace().nth(2)?.parse().ok()
}

/// A process's PID in the innermost PID namespace it lives in (the NSpid line of its status).
pub fn inner_pid(host_pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{host_pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))?
        .split_ascii_whitespace()
        .last()?
        .parse()
        .ok()
}

/// Socket inodes the processes hold: inode -> (host PID, descriptor).
pub fn socket_owners(pids: &[i32]) -> BTreeMap<u64, (i32, i32)> {
    let mut owners = BTreeMap::new();
    for &pid in pids {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for entry in dir.flatten() {
            let Ok(target) = std::fs::read_link(entry.path()) else {
                continue;
            };
            let inode = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok());
            let fd = entry.file_name().to_str().and_then(|f| f.parse().ok());
            if let (Some(inode), Some(fd)) = (inode, fd) {
                owners.entry(inode).or_insert((pid, fd));
            }
        }
    }
    owners
}

/// The keepalive and user-timeout options a program set on its socket, read from a duplicate
/// of its descriptor (pidfd_getfd: root, or the owner of the program's user namespace).
/// `pid` is in the caller's PID namespace.
pub fn socket_settings(pid: i32, fd: i32) -> std::io::Result<SocketSettings> {
    // SAFETY: plain syscalls; the returned descriptors are owned below.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pidfd_open returned a new descriptor.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    // SAFETY: as above.
    let dup = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if dup < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pidfd_getfd returned a new descriptor; closing it leaves the program's alone.
    let sock = unsafe { OwnedFd::from_raw_fd(dup as i32) };
    let get = |level: libc::c_int, name: libc::c_int| -> std::io::Result<u32> {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: value and len are valid for the call.
        let rc = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                level,
                name,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(value as u32)
    };
    Ok(SocketSettings {
        keepalive: get(libc::SOL_SOCKET, libc::SO_KEEPALIVE)? != 0,
        idle_s: get(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE)?,
        interval_s: get(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL)?,
        count: get(libc::IPPROTO_TCP, libc::TCP_KEEPCNT)?,
        user_timeout_ms: get(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_process_group_past_odd_command_names() {
        let stat = "4242 (my (odd) prog) S 1 4240 4240 0 -1 4194560 100 0 0 0";
        assert_eq!(pgrp_of(stat), Some(4240));
        assert_eq!(pgrp_of("garbage"), None);
    }

    #[test]
    fn dumps_this_namespace_and_finds_our_own_socket_and_settings() {
        // A listener of our own, with keepalive options, in the test's namespace.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        client.set_keepalive(true).unwrap();
        client
            .set_tcp_keepalive(
                &socket2::TcpKeepalive::new()
                    .with_time(std::time::Duration::from_secs(7))
                    .with_interval(std::time::Duration::from_secs(2)),
            )
            .unwrap();
        client
            .connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
            .unwrap();
        let local = match client.local_addr().unwrap().as_socket().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        let sockets = Diag::open().unwrap().dump().unwrap();
        let ours = sockets
            .iter()
            .find(|s| s.tuple.local == local)
            .expect("the dump shows our connection");
        assert_eq!(ours.state, TcpState::Established);
        assert_eq!(ours.tuple.remote.port(), port);
        assert!(ours.keepalive_in_ms.is_some_and(|ms| ms <= 7000));
        let me = std::process::id() as i32;
        let host_me: i32 = std::fs::read_link("/proc/self")
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let owners = socket_owners(&[host_me]);
        let (pid, fd) = owners[&ours.inode];
        assert_eq!((pid, fd), (host_me, client.as_raw_fd()));
        let settings = socket_settings(me, fd).unwrap();
        assert_eq!(
            (settings.keepalive, settings.idle_s, settings.interval_s),
            (true, 7, 2)
        );
    }
}
