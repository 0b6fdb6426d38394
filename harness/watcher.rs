//! The observer's thin shell: one thread per user program, inside the program's network
//! namespace (entered on that thread only, never on a tokio worker), that dumps the
//! namespace's TCP sockets, feeds them and the trace records to an [`observer::Tracker`], and
//! reports what it saw.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::clock;
use crate::observer::{
    self, Observation, SocketSettings, TcpState, TraceKind, TraceRecord, Tracker,
};
use crate::sockdiag::{self, Diag};

/// Time between two dumps: the delay of what only a dump sees (without tracing). With
/// tracing the dumps run as often, so the dump-only view measured alongside is the one a
/// rootless run gets.
pub const POLL: Duration = Duration::from_millis(2);
/// How often the options of live connections are read again.
const OPTIONS_REFRESH: Duration = Duration::from_millis(200);

/// A live connection of the program's whose options are read again.
struct Watched {
    conn: u32,
    pid: i32,
    fd: i32,
    options: Option<SocketSettings>,
}

/// How often the program's process list is refreshed when nothing asks for it.
const PIDS_REFRESH: Duration = Duration::from_millis(500);

/// What a watcher reports.
#[derive(Debug)]
pub enum Report {
    Observed {
        obs: Observation,
        /// The options the program set on the socket, when they could be read.
        options: Option<SocketSettings>,
        /// The holder's PID in the lab's PID namespace.
        pid: i32,
    },
    /// As root: what a dump-only observer saw, to measure how late it would have been.
    Shadow(Observation, crate::observer::Tuple),
    /// A connection's options changed since it was first seen (set after connect/accept).
    Options {
        conn: u32,
        options: Option<SocketSettings>,
        keepalive_in_ms: Option<u32>,
    },
    /// Something listens on the watched port.
    Listening { addr: String, t_ns: u64 },
    /// The watcher stopped on an error.
    Failed(String),
}

/// What to watch.
pub struct Spec {
    /// A descriptor of the program's network namespace (the watcher keeps its own copy).
    pub netns: OwnedFd,
    /// The side's address: trace records of other addresses are not the program's.
    pub local_ip: Ipv4Addr,
    /// Report when something listens on this port.
    pub listen_port: Option<u16>,
    /// The program's process group, as the host numbers it (0: none yet). The runner
    /// updates it when it restarts the program.
    pub pgid: Arc<AtomicI32>,
}

/// A running watcher thread.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    pub fn start(
        spec: Spec,
        traces: Option<mpsc::Receiver<TraceRecord>>,
        report: impl Fn(Report) + Send + 'static,
    ) -> std::io::Result<Watcher> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("watcher".into())
            .spawn(move || {
                // SAFETY: setns on this thread only; the descriptor is valid.
                if unsafe { libc::setns(spec.netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    let e = std::io::Error::last_os_error();
                    report(Report::Failed(format!("cannot enter the namespace: {e}")));
                    return;
                }
                if let Err(e) = watch(&spec, traces, &flag, &report) {
                    report(Report::Failed(format!("sock_diag: {e}")));
                }
            })?;
        Ok(Watcher {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread; nothing is reported after this returns. Idempotent.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Which of the program's processes hold which sockets, refreshed on demand.
struct Owners {
    pgid: i32,
    pids: Vec<i32>,
    pids_at: Instant,
    map: BTreeMap<u64, (i32, i32)>,
}

impl Owners {
    fn refresh(&mut self, pgid: i32, with_pids: bool) {
        if with_pids || pgid != self.pgid || self.pids_at.elapsed() > PIDS_REFRESH {
            self.pgid = pgid;
            self.pids = if pgid > 0 {
                sockdiag::group_pids(pgid)
            } else {
                Vec::new()
            };
            self.pids_at = Instant::now();
        }
        self.map = sockdiag::socket_owners(&self.pids);
    }
}

fn watch(
    spec: &Spec,
    traces: Option<mpsc::Receiver<TraceRecord>>,
    stop: &AtomicBool,
    report: &dyn Fn(Report),
) -> std::io::Result<()> {
    let mut diag = Diag::open()?;
    let tracing = traces.is_some();
    let mut tracker = Tracker::new(spec.local_ip, tracing);
    // With the trace, a dump-only tracker runs alongside on the same dumps: its stamps
    // measure the rootless mechanism against the kernel's.
    let mut shadow = tracing.then(|| Tracker::new(spec.local_ip, false));
    let mut owners = Owners {
        pgid: 0,
        pids: Vec::new(),
        pids_at: Instant::now(),
        map: BTreeMap::new(),
    };
    let mut listening_for = 0;
    // The program's connections, live or still held, and sockets nobody of it holds.
    let mut tracked: std::collections::BTreeSet<u64> = std::collections::BTreeSet::new();
    let mut unowned: std::collections::BTreeSet<u64> = std::collections::BTreeSet::new();
    let poll = POLL;
    // Live connections whose options are read again while they live: programs often set
    // them right after connect() or accept(), after a dump first saw the connection.
    let mut watched: BTreeMap<u64, Watched> = BTreeMap::new();
    let mut options_at = Instant::now();
    let emit = |obs: Vec<Observation>, owners: &Owners, watched: &mut BTreeMap<u64, Watched>| {
        for obs in obs {
            let (options, pid) = match &obs {
                Observation::Established {
                    conn,
                    inode,
                    host_pid,
                    ..
                } => {
                    let pid = sockdiag::inner_pid(*host_pid).unwrap_or(*host_pid);
                    let fd = owners.map.get(inode).map(|o| o.1);
                    let options = fd.and_then(|fd| sockdiag::socket_settings(pid, fd).ok());
                    if let Some(fd) = fd {
                        watched.insert(
                            *inode,
                            Watched {
                                conn: *conn,
                                pid,
                                fd,
                                options,
                            },
                        );
                    }
                    (options, pid)
                }
                _ => (None, 0),
            };
            report(Report::Observed { obs, options, pid });
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let pgid = spec.pgid.load(Ordering::Relaxed);
        match &traces {
            Some(rx) => {
                let deadline = Instant::now() + poll;
                while let Ok(r) =
                    rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                {
                    if owners.pgid != pgid {
                        owners.refresh(pgid, true);
                        tracker.set_pids(owners.pids.clone());
                    }
                    // A process the list does not know yet (forked since, like socat's
                    // per-connection child): is it in the program's group?
                    let by_pid = matches!(
                        r.kind,
                        TraceKind::RecvError { .. }
                            | TraceKind::SetState {
                                from: TcpState::Close,
                                to: TcpState::SynSent
                            }
                    );
                    if by_pid && r.host_pid > 0 && pgid > 0 && !owners.pids.contains(&r.host_pid) {
                        let stat = std::fs::read_to_string(format!("/proc/{}/stat", r.host_pid));
                        if stat.ok().and_then(|s| sockdiag::pgrp_of(&s)) == Some(pgid) {
                            owners.pids.push(r.host_pid);
                            tracker.set_pids(owners.pids.clone());
                        }
                    }
                    let obs = tracker.trace(r);
                    emit(obs, &owners, &mut watched);
                }
            }
            None => std::thread::sleep(poll),
        }
        let timeouts_before = aborts_on_timeout();
        let started_ns = clock::now_ns();
        let sockets = diag.dump()?;
        let t_ns = clock::now_ns();
        // Losses the trace drew for the program's tuples, now judged by its own sockets.
        let confirmed = tracker.confirm(started_ns, &sockets);
        emit(confirmed, &owners, &mut watched);
        if let Some(port) = spec.listen_port {
            if listening_for != pgid && pgid > 0 {
                if let Some(s) = sockets
                    .iter()
                    .find(|s| s.state == TcpState::Listen && s.tuple.local.port() == port)
                {
                    listening_for = pgid;
                    report(Report::Listening {
                        addr: s.tuple.local.to_string(),
                        t_ns,
                    });
                }
            }
        }
        // Look the owners up again when a connection appears that no known process holds, or
        // a known socket leaves the dump (closed, or aborted and maybe still held).
        let live: Vec<u64> = sockets
            .iter()
            .filter(|s| matches!(s.state, TcpState::Established | TcpState::CloseWait))
            .map(|s| s.inode)
            .filter(|&i| i != 0)
            .collect();
        // (Once a full look finds nobody of the program holding a socket, it is not looked
        // for again; listening and non-TCP sockets of the program never count as vanished.)
        let connecting: Vec<u64> = sockets
            .iter()
            .filter(|s| s.state == TcpState::SynSent && s.inode != 0 && !tracing)
            .map(|s| s.inode)
            .collect();
        let unknown = live
            .iter()
            .chain(&connecting)
            .any(|i| !owners.map.contains_key(i) && !unowned.contains(i));
        // A connection of the program's that left the dump: closed, or aborted and maybe still
        // held; looked up until nobody holds it, so the close is seen.
        let vanished = tracked
            .iter()
            .any(|i| !live.contains(i) && owners.map.contains_key(i));
        // Processes come and go (a server forking per connection): the list is refreshed
        // twice a second, so a child's failing read or connect is known as the program's.
        let stale = owners.pids_at.elapsed() > PIDS_REFRESH;
        if unknown || vanished || stale || owners.pgid != pgid {
            owners.refresh(pgid, unknown || stale);
            tracker.set_pids(owners.pids.clone());
            if unknown {
                unowned.extend(
                    live.iter()
                        .chain(&connecting)
                        .filter(|i| !owners.map.contains_key(i)),
                );
            }
        }
        if let (Some(before), Some(after)) = (timeouts_before, aborts_on_timeout()) {
            tracker.set_aborts_on_timeout(before, after);
            if let Some(s) = shadow.as_mut() {
                s.set_aborts_on_timeout(before, after);
            }
        }
        tracked.extend(live.iter().filter(|i| owners.map.contains_key(i)));
        tracked.retain(|i| live.contains(i) || owners.map.contains_key(i));
        let map = &owners.map;
        if let Some(s) = shadow.as_mut() {
            for obs in s.dump(t_ns, &sockets, |inode| map.get(&inode).map(|o| o.0)) {
                let conn = match &obs {
                    Observation::KernelGaveUp { conn, .. }
                    | Observation::PeerClosed { conn, .. }
                    | Observation::ProgramClosed { conn, .. } => *conn,
                    _ => continue,
                };
                if let Some(tuple) = s.tuple_of(conn) {
                    report(Report::Shadow(obs, tuple));
                }
            }
        }
        let obs = tracker.dump(t_ns, &sockets, |inode| map.get(&inode).map(|o| o.0));
        emit(obs, &owners, &mut watched);
        watched.retain(|inode, _| live.contains(inode));
        if options_at.elapsed() >= OPTIONS_REFRESH {
            options_at = Instant::now();
            for (inode, w) in watched.iter_mut() {
                // Whoever holds it now: a forking server's parent lets go after the fork.
                if let Some(&(host, fd)) = owners.map.get(inode) {
                    w.pid = sockdiag::inner_pid(host).unwrap_or(host);
                    w.fd = fd;
                }
                let now = sockdiag::socket_settings(w.pid, w.fd).ok();
                if now.is_some() && now != w.options {
                    w.options = now;
                    let s = sockets.iter().find(|s| s.inode == *inode);
                    report(Report::Options {
                        conn: w.conn,
                        options: now,
                        keepalive_in_ms: s.and_then(|s| s.keepalive_in_ms),
                    });
                }
            }
        }
    }
    Ok(())
}

/// The TcpExt TCPAbortOnTimeout counter of the calling thread's network namespace.
fn aborts_on_timeout() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/net/netstat").ok()?;
    observer::netstat_value(&text, "TcpExt", "TCPAbortOnTimeout")
}

/// The host's PID of a process we started, whose PID in our namespace is `inner`.
pub fn host_pid_of(inner: i32) -> Option<i32> {
    let ours = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let dir = std::fs::read_dir("/proc").ok()?;
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|&pid| {
            observer_pid_matches(pid, inner)
                && std::fs::read_link(format!("/proc/{pid}/ns/pid"))
                    .ok()
                    .as_ref()
                    == Some(&ours)
        })
}

fn observer_pid_matches(host: i32, inner: i32) -> bool {
    sockdiag::inner_pid(host) == Some(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_our_own_host_pid() {
        let me = std::process::id() as i32;
        let host: i32 = std::fs::read_link("/proc/self")
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(host_pid_of(me), Some(host));
    }
}
