//! A tracefs instance of our own (root only): the TCP tracepoints the observer needs, stamped
//! by the kernel on the monotonic clock, read line by line on a dedicated thread.
//!
//! The instance is named `flatline-<host pid>-<n>` and removed when the session stops; one
//! left by a runner that was killed is removed by the next run's [`sweep`]. tracefs is
//! mounted, when the host has not, in a mount namespace private to the reading thread, so
//! the host's mount table never changes.

use std::fs;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::netlink::Stop;
use crate::observer::{parse_trace_line, TraceRecord, FILTERED_TRACEPOINTS, TRACEPOINTS};

/// Where tracefs lives when mounted.
pub const TRACEFS: &str = "/sys/kernel/tracing";
const PREFIX: &str = "flatline-";

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("tracing needs root (CAP_SYS_ADMIN in the host's namespaces)")]
    NotRoot,
    #[error("cannot {what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TraceError {
    let what = what.into();
    move |source| TraceError::Io { what, source }
}

/// Our PID as the host numbers it (/proc is the host's): instance names must be checkable by
/// any other run.
pub fn host_pid() -> Option<i32> {
    fs::read_link("/proc/self").ok()?.to_str()?.parse().ok()
}

/// The PID in an instance name `flatline-<pid>-<n>`.
pub fn owner_of(instance: &str) -> Option<i32> {
    instance
        .strip_prefix(PREFIX)?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// Removes instances under `instances` whose owning process is gone (`alive` decides).
/// Returns the names removed.
pub fn sweep(instances: &Path, alive: impl Fn(i32) -> bool) -> Vec<String> {
    let Ok(dir) = fs::read_dir(instances) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if owner_of(&name).is_some_and(|pid| !alive(pid)) {
            // Stop it first (tracefs refuses to remove a busy instance); never create files.
            if let Ok(mut on) = fs::OpenOptions::new()
                .write(true)
                .open(entry.path().join("tracing_on"))
            {
                let _ = std::io::Write::write_all(&mut on, b"0");
            }
            if fs::remove_dir(entry.path()).is_ok() {
                removed.push(name);
            }
        }
    }
    removed
}

/// Whether a process runs: a zombie (its run killed, not yet reaped) does not.
fn pid_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after = stat.get(stat.rfind(')')? + 1..)?;
            after
                .split_ascii_whitespace()
                .next()
                .map(|s| s != "Z" && s != "X")
        })
        .unwrap_or(false)
}

/// A running trace: records arrive on `records` until [`TraceSession::stop`].
pub struct TraceSession {
    pub name: String,
    stop: Arc<Stop>,
    thread: Option<std::thread::JoinHandle<()>>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Makes the thread's own mount namespace, with tracefs mounted if the host has not.
fn private_tracefs() -> Result<PathBuf, TraceError> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| io("unshare a mount namespace for tracefs")(e.into()))?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| io("make the tracing thread's mounts private")(e.into()))?;
    let root = PathBuf::from(TRACEFS);
    if !root.join("instances").is_dir() {
        nix::mount::mount(
            Some("nodev"),
            &root,
            Some("tracefs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| io(format!("mount tracefs on {TRACEFS}"))(e.into()))?;
    }
    Ok(root)
}

/// Which tracepoints a session enables: plain ones, and ones with an in-kernel filter.
#[derive(Clone, Copy, Debug)]
pub struct Tracepoints {
    pub plain: &'static [&'static str],
    pub filtered: &'static [(&'static str, &'static str)],
}

/// The observer's tracepoints.
pub const OBSERVER: Tracepoints = Tracepoints {
    plain: TRACEPOINTS,
    filtered: FILTERED_TRACEPOINTS,
};

fn setup(root: &Path, name: &str, points: Tracepoints) -> Result<(PathBuf, fs::File), TraceError> {
    let instances = root.join("instances");
    for gone in sweep(&instances, pid_alive) {
        eprintln!("flatline: removed tracefs instance {gone} left by a run that died");
    }
    let dir = instances.join(name);
    fs::create_dir(&dir).map_err(io(format!("create {}", dir.display())))?;
    let write = |file: &str, value: &str| {
        fs::write(dir.join(file), value).map_err(io(format!("write {value} to {file} in {name}")))
    };
    let result = (|| {
        write("trace_clock", "mono")?;
        write("buffer_size_kb", "1024")?;
        for tp in points.plain {
            write(&format!("events/{tp}/enable"), "1")?;
        }
        for (tp, filter) in points.filtered {
            write(&format!("events/{tp}/filter"), filter)?;
            write(&format!("events/{tp}/enable"), "1")?;
        }
        write("tracing_on", "1")?;
        let pipe = fs::OpenOptions::new()
            .read(true)
            .custom_flags_nonblock()
            .open(dir.join("trace_pipe"))
            .map_err(io(format!("open {name}/trace_pipe")))?;
        Ok(pipe)
    })();
    match result {
        Ok(pipe) => Ok((dir, pipe)),
        Err(e) => {
            let _ = fs::write(dir.join("tracing_on"), "0");
            let _ = fs::remove_dir(&dir);
            Err(e)
        }
    }
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NONBLOCK)
    }
}

impl TraceSession {
    /// Creates the instance, enables the tracepoints and starts reading. Every record goes to
    /// each of `sinks`. Fails (and leaves nothing) without root.
    ///
    /// The setup (a mount namespace, tracefs, the instance's ring buffers, the tracepoints)
    /// runs on the tracing thread and can take a while on a loaded machine; the caller's task
    /// awaits it, so other labs on the same runtime (`flatline run -j N`) go on meanwhile.
    pub async fn start(sinks: Vec<mpsc::Sender<TraceRecord>>) -> Result<TraceSession, TraceError> {
        Self::start_with(OBSERVER, sinks).await
    }

    /// As [`TraceSession::start`], with only `points` enabled (fewer records, less cost to the
    /// traced).
    pub async fn start_with(
        points: Tracepoints,
        sinks: Vec<mpsc::Sender<TraceRecord>>,
    ) -> Result<TraceSession, TraceError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(TraceError::NotRoot);
        }
        let name = format!(
            "{PREFIX}{}-{}",
            host_pid().unwrap_or(0),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let stop = Arc::new(Stop::new().ok_or_else(|| TraceError::Io {
            what: "make the tracing thread's stop pipe".into(),
            source: std::io::Error::last_os_error(),
        })?);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let thread = {
            let name = name.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("tracefs".into())
                .spawn(move || {
                    let setup = private_tracefs().and_then(|root| setup(&root, &name, points));
                    let (dir, pipe) = match setup {
                        Ok(ok) => {
                            if ready_tx.send(Ok(())).is_err() {
                                // Nobody waits any more (the run was dropped): clean up.
                                let _ = fs::write(ok.0.join("tracing_on"), "0");
                                let _ = fs::remove_dir(&ok.0);
                                return;
                            }
                            ok
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    read(pipe, &stop, &sinks);
                    let _ = fs::write(dir.join("tracing_on"), "0");
                    if let Err(e) = fs::remove_dir(&dir) {
                        eprintln!("flatline: cannot remove tracefs instance {name}: {e}");
                    }
                })
                .map_err(io("start the tracing thread"))?
        };
        match ready_rx.await {
            Ok(Ok(())) => Ok(TraceSession {
                name,
                stop,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                // The thread returns right after sending its error.
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
                Err(e)
            }
            Err(_) => Err(TraceError::Io {
                what: "start the tracing thread".into(),
                source: std::io::Error::other("it ended early"),
            }),
        }
    }

    /// As [`TraceSession::stop`], but the caller's task waits for the reader to end and the
    /// instance to be removed (tens of ms: its ring buffers are freed) off the runtime, so
    /// other labs on it go on meanwhile.
    pub async fn finish(mut self) {
        self.stop.signal();
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }

    /// Stops reading and removes the instance. Idempotent.
    pub fn stop(&mut self) {
        self.stop.signal();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TraceSession {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads whole lines from the pipe until `stop`, which wakes the poll at once.
fn read(mut pipe: fs::File, stop: &Stop, sinks: &[mpsc::Sender<TraceRecord>]) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut partial = String::new();
    while !stop.stopped() {
        let mut fds = [
            libc::pollfd {
                fd: pipe.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop.fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfds. The 20 ms timeout only re-polls trace_pipe; a stop
        // wakes the poll at once.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, 20) };
        if ready <= 0 || fds[1].revents != 0 || fds[0].revents == 0 {
            continue;
        }
        match pipe.read(&mut buf) {
            Ok(0) => std::thread::sleep(Duration::from_millis(1)),
            Ok(n) => {
                partial.push_str(&String::from_utf8_lossy(&buf[..n]));
                while let Some(end) = partial.find('\n') {
                    let line: String = partial.drain(..=end).collect();
                    if let Some(record) = parse_trace_line(&line) {
                        for sink in sinks {
                            let _ = sink.send(record.clone());
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_only_instances_of_dead_runs() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "flatline-100-0",
            "flatline-200-3",
            "other-100",
            "flatline-x",
        ] {
            fs::create_dir(dir.path().join(name)).unwrap();
        }
        let mut removed = sweep(dir.path(), |pid| pid == 200);
        removed.sort();
        assert_eq!(removed, ["flatline-100-0"]);
        assert!(dir.path().join("flatline-200-3").exists());
        assert!(dir.path().join("other-100").exists());
        assert_eq!(owner_of("flatline-42-7"), Some(42));
        assert!(pid_alive(std::process::id() as i32));
        assert!(!pid_alive(i32::MAX));
        assert_eq!(owner_of("flatline-"), None);
    }
}

#[cfg(test)]
mod live {
    use super::*;
    use crate::observer::{TcpState, TraceKind};

    /// As root: our own loopback handshake arrives with the kernel's stamp, before we could
    /// stamp it ourselves after connect() returned, and the instance is gone after stop.
    /// Without root: start refuses, saying why, and creates nothing.
    #[test]
    fn traces_a_handshake_and_leaves_nothing() {
        let (tx, rx) = mpsc::channel();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Another task on the same single-threaded runtime keeps running while the tracefs
        // setup goes on (it used to block the runtime: every other lab of `run -j N` stalled).
        let ticks = Arc::new(AtomicU32::new(0));
        let session = rt.block_on(async {
            let ticker = {
                let ticks = Arc::clone(&ticks);
                tokio::spawn(async move {
                    loop {
                        ticks.fetch_add(1, Ordering::Relaxed);
                        tokio::task::yield_now().await;
                    }
                })
            };
            let started = std::time::Instant::now();
            let session = TraceSession::start(vec![tx]).await;
            ticker.abort();
            (session, started.elapsed())
        });
        let (session, setup) = session;
        eprintln!("tracefs setup: {setup:?}");
        if !nix::unistd::geteuid().is_root() {
            assert!(matches!(session, Err(TraceError::NotRoot)));
            return;
        }
        let mut session = session.expect("tracing starts as root");
        // A setup that finished before its first poll needs no wait; one that took longer
        // must have let the other task run.
        assert!(
            ticks.load(Ordering::Relaxed) > 0 || setup < Duration::from_millis(20),
            "the runtime was held during the {setup:?} setup"
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let before = crate::clock::now_ns();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let after = crate::clock::now_ns();
        let local = match stream.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let (established, received) = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let r = rx
                .recv_timeout(left)
                .expect("the handshake is traced within 5 s");
            let received = crate::clock::now_ns();
            if r.tuple.local == local
                && r.kind
                    == (TraceKind::SetState {
                        from: TcpState::SynSent,
                        to: TcpState::Established,
                    })
            {
                break (r, received);
            }
        };
        // How late the record reached us (the stamp itself is the kernel's): trace_pipe wakes
        // its reader at once; 50 ms bounds a loaded machine's scheduling.
        let delivery_us = (received - established.t_ns) / 1000;
        eprintln!("trace delivery: {delivery_us} us after the kernel's stamp");
        assert!(delivery_us < 50_000, "delivered {delivery_us} us late");
        // The kernel's stamp lies between our readings around connect(): same clock.
        assert!(
            (before..=after).contains(&established.t_ns),
            "{before} <= {} <= {after}",
            established.t_ns
        );
        let name = session.name.clone();
        let stopping = std::time::Instant::now();
        session.stop();
        // The reader wakes at once; the rest is removing the instance.
        eprintln!("tracefs stop: {:?}", stopping.elapsed());
        // Instances are global: check the host's view, through a private mount if needed.
        let gone = std::thread::spawn(move || {
            let root = private_tracefs().unwrap();
            !root.join("instances").join(name).exists()
        })
        .join()
        .unwrap();
        assert!(gone, "the instance is removed at stop");
    }
}
