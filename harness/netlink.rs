//! What the kernel-event watchers share ([`crate::linkwatch`], [`crate::nftwatch`],
//! [`crate::tracefs`]): a netlink socket opened inside a lab's namespace, a stop that wakes
//! their listening threads at once, the listen loop that stamps each datagram on the monotonic
//! clock as it arrives, readers of netlink's fixed headers and attributes, and the store of
//! stamped records that the runner's task waits on ([`Seen`]).

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use netlink_sys::Socket;

use crate::clock;

/// A netlink socket of `protocol`, member of `groups`, created inside the namespace `fd`
/// holds (on a throwaway thread, so no thread of ours changes namespace; a socket stays in the
/// namespace it was created in).
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

/// How long to wait for a watcher's record of a fault's change once its script has exited: it
/// normally arrives before the exit; if it does not, the exit stands.
const WAIT: Duration = Duration::from_millis(20);

/// What a watcher's thread has recorded, and a wake-up for a task waiting for a record.
pub(crate) struct Seen<T> {
    records: Mutex<Vec<T>>,
    added: tokio::sync::Notify,
}

impl<T> Default for Seen<T> {
    fn default() -> Self {
        Seen {
            records: Mutex::new(Vec::new()),
            added: tokio::sync::Notify::new(),
        }
    }
}

impl<T> Seen<T> {
    /// Records `items` (from the watcher's thread) and wakes whoever waits.
    pub(crate) fn push(&self, items: impl IntoIterator<Item = T>) {
        if let Ok(mut records) = self.records.lock() {
            records.extend(items);
        }
        self.added.notify_waiters();
    }

    /// The first record `pick` accepts, waiting up to 20 ms for the watcher's thread to
    /// record it. The wait is the runtime's, not the thread's: every other lab on the same
    /// runtime (`flatline run -j N`) goes on meanwhile. The stamp is the watcher's, taken
    /// when the record arrived, so how soon this task wakes does not move it.
    pub(crate) async fn first(&self, pick: impl Fn(&T) -> Option<u64>) -> Option<u64> {
        self.first_within(WAIT, pick).await
    }

    async fn first_within(&self, wait: Duration, pick: impl Fn(&T) -> Option<u64>) -> Option<u64> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Armed before looking, so a record pushed in between still wakes us.
            let added = self.added.notified();
            if let Some(at) = self
                .records
                .lock()
                .ok()
                .and_then(|r| r.iter().find_map(&pick))
            {
                return Some(at);
            }
            if tokio::time::timeout_at(deadline, added).await.is_err() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use netlink_sys::protocols::NETLINK_ROUTE;

    use super::*;

    /// A record that never comes gives None after the 20 ms wait, without holding up the
    /// runtime: a second task on the same single-threaded runtime keeps ticking meanwhile (a
    /// blocking sleep would leave it at 0). A record pushed from another thread while a task
    /// waits wakes it: found long before a 10 s wait would end.
    #[test]
    fn waiting_for_a_record_leaves_the_runtime_free() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let seen: Arc<Seen<u64>> = Arc::new(Seen::default());
            let ticks = Arc::new(std::sync::atomic::AtomicU32::new(0));
            let ticker = {
                let ticks = Arc::clone(&ticks);
                tokio::spawn(async move {
                    loop {
                        ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tokio::task::yield_now().await;
                    }
                })
            };
            let start = std::time::Instant::now();
            assert_eq!(seen.first(|&x| (x == 7).then_some(x)).await, None);
            assert!(start.elapsed() >= WAIT);
            // The other task ran while this one waited (a blocking sleep would starve it).
            assert!(ticks.load(std::sync::atomic::Ordering::Relaxed) > 0);
            let sink = Arc::clone(&seen);
            let pusher = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5));
                sink.push([3, 7]);
            });
            let start = std::time::Instant::now();
            let wait = Duration::from_secs(10);
            let found = seen.first_within(wait, |&x| (x == 7).then_some(x)).await;
            assert_eq!(found, Some(7));
            assert!(start.elapsed() < wait / 2, "{:?}", start.elapsed());
            pusher.join().unwrap();
            ticker.abort();
        });
    }

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
}
