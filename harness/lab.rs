//! The lab: three network namespaces (client, wire, server) joined by two veth pairs, held by
//! file descriptors only, so they vanish with the runner.
//!
//! ```text
//!  client netns                    wire netns                      server netns
//!  [client] c0 ──────────── w0 [router: nft, conntrack] w1 ──────────── s0 [server]
//!  198.18.1.2/24        198.18.1.1/24              198.18.2.1/24        198.18.2.2/24
//! ```
//!
//! A scenario with a failover adds a fourth, the standby host, behind the wire's `w2`
//! (198.18.3.0/24, [`Lab::add_standby`]).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sched::{unshare, CloneFlags};

/// The client's network, which a NAT in the wire masquerades.
pub const CLIENT_NET: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 0);
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
pub const WIRE_CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
pub const WIRE_SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 1);
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 2);
pub const SERVER_PORT: u16 = 7000;
/// The standby host (a scenario with a failover): its own network behind the wire, and the
/// server's address on its loopback, unreachable until an address-move failover routes it there.
pub const WIRE_STANDBY_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 3, 1);
pub const STANDBY_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 3, 2);

/// The link names, as a user sees them with `ip link` inside each namespace.
pub const CLIENT_LINK: &str = "c0";
pub const WIRE_CLIENT_LINK: &str = "w0";
pub const WIRE_SERVER_LINK: &str = "w1";
pub const SERVER_LINK: &str = "s0";
pub const WIRE_STANDBY_LINK: &str = "w2";
pub const STANDBY_LINK: &str = "b0";

/// One of the lab's network namespaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ns {
    Client,
    Wire,
    Server,
    /// The standby host a failover moves the service to.
    Standby,
}

impl fmt::Display for Ns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ns::Client => "client",
            Ns::Wire => "wire",
            Ns::Server => "server",
            Ns::Standby => "standby",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("failed to create the {ns} network namespace")]
    Create {
        ns: Ns,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set {key} = {value} in the {ns} namespace (does this kernel have it, and is the value in range?)")]
    Sysctl {
        ns: Ns,
        key: String,
        value: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to run `{program}` in namespace {ns}: is it installed? (apt-get install iproute2 nftables)")]
    Spawn {
        ns: Ns,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{what}` failed in namespace {ns}: {stderr}")]
    Command {
        ns: Ns,
        what: String,
        stderr: String,
    },
}

impl LabError {
    /// The same error, naming the command `what` instead of its program and arguments.
    pub fn naming(self, what: String) -> LabError {
        match self {
            LabError::Spawn { ns, source, .. } => LabError::Spawn {
                ns,
                program: what,
                source,
            },
            LabError::Command { ns, stderr, .. } => LabError::Command { ns, what, stderr },
            other => other,
        }
    }
}

/// net.ipv4.tcp_retries2 of a new network namespace (the kernel's default).
pub const DEFAULT_TCP_RETRIES2: u8 = 15;
/// net.ipv4.tcp_rmem the peers' namespaces get unless a scenario sets it: the kernel's own
/// default (tcp_init_mem: 4 KiB, 128 KiB, 6 MiB), not whatever the host was tuned to.
pub const TCP_RMEM_DEFAULT: &str = "4096 131072 6291456";

/// Settings of the lab's namespaces.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
pub struct LabConfig {
    /// net.ipv4.tcp_retries2 in the client and server namespaces (default 15): how many
    /// retransmissions before a connection with unacknowledged data is aborted.
    pub tcp_retries2: Option<u8>,
}

/// The three namespaces; dropping the lab releases them.
#[derive(Debug)]
pub struct Lab {
    client: OwnedFd,
    wire: OwnedFd,
    server: OwnedFd,
    /// The standby host, if the scenario has a failover ([`Lab::add_standby`]).
    standby: Option<OwnedFd>,
    /// How long building it took.
    pub setup: Duration,
}

/// Creates a network namespace on a throwaway thread, so no thread of ours changes namespace,
/// and returns a descriptor that holds it. `sysctls` are written inside it.
fn new_netns(ns: Ns, sysctls: Vec<(String, String)>) -> Result<OwnedFd, LabError> {
    let create = move || -> Result<OwnedFd, LabError> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| LabError::Create {
            ns,
            source: e.into(),
        })?;
        for (key, value) in sysctls {
            std::fs::write(format!("/proc/sys/{}", key.replace('.', "/")), &value).map_err(
                |source| LabError::Sysctl {
                    ns,
                    key: key.clone(),
                    value: value.clone(),
                    source,
                },
            )?;
        }
        let file = std::fs::File::open("/proc/thread-self/ns/net")
            .map_err(|source| LabError::Create { ns, source })?;
        Ok(OwnedFd::from(file))
    };
    std::thread::spawn(create)
        .join()
        .expect("namespace thread does not panic")
}

impl Lab {
    /// Builds the lab: namespaces, veth pairs, addresses, routes, forwarding in the wire.
    pub fn up(config: &LabConfig) -> Result<Lab, LabError> {
        Lab::up_with(config, &BTreeMap::new(), &BTreeMap::new())
    }

    /// Builds the lab with sysctls of the client's and the server's namespaces on top.
    pub fn up_with(
        config: &LabConfig,
        client: &BTreeMap<String, String>,
        server: &BTreeMap<String, String>,
    ) -> Result<Lab, LabError> {
        let start = Instant::now();
        // A new namespace copies tcp_rmem from the host's (this VM: a 32 MiB maximum), so
        // the peers get Linux's own default unless the scenario sets it: how far a receive
        // buffer may grow is then the same on every machine (docs/physics.md, K6).
        let host = |own: &BTreeMap<String, String>| Lab::peer_sysctls(config, own);
        let mut lab = Lab {
            client: new_netns(Ns::Client, host(client))?,
            wire: new_netns(Ns::Wire, vec![("net.ipv4.ip_forward".into(), "1".into())])?,
            server: new_netns(Ns::Server, host(server))?,
            standby: None,
            setup: Duration::ZERO,
        };
        let wire_fd = lab.wire.as_raw_fd();
        let server_fd = lab.server.as_raw_fd();
        lab.ip_batch(
            Ns::Client,
            &format!(
                "link set lo up\n\
                 link add {CLIENT_LINK} type veth peer name {WIRE_CLIENT_LINK} netns /proc/self/fd/{wire_fd}\n\
                 addr add {CLIENT_ADDR}/24 dev {CLIENT_LINK}\n\
                 link set {CLIENT_LINK} up\n\
                 route add default via {WIRE_CLIENT_ADDR}\n"
            ),
            &[wire_fd],
        )?;
        lab.ip_batch(
            Ns::Wire,
            &format!(
                "link set lo up\n\
                 addr add {WIRE_CLIENT_ADDR}/24 dev {WIRE_CLIENT_LINK}\n\
                 link set {WIRE_CLIENT_LINK} up\n\
                 link add {WIRE_SERVER_LINK} type veth peer name {SERVER_LINK} netns /proc/self/fd/{server_fd}\n\
                 addr add {WIRE_SERVER_ADDR}/24 dev {WIRE_SERVER_LINK}\n\
                 link set {WIRE_SERVER_LINK} up\n"
            ),
            &[server_fd],
        )?;
        lab.ip_batch(
            Ns::Server,
            &format!(
                "link set lo up\n\
                 addr add {SERVER_ADDR}/24 dev {SERVER_LINK}\n\
                 link set {SERVER_LINK} up\n\
                 route add default via {WIRE_SERVER_ADDR}\n"
            ),
            &[],
        )?;
        lab.setup = start.elapsed();
        Ok(lab)
    }

    /// Adds the standby host: a fourth namespace behind the wire (198.18.3.2 on its link
    /// `b0`, the wire's `w2` at 198.18.3.1), with the server's sysctls (`sysctls`, as the
    /// server's namespace got them) and the server's address on its loopback.
    pub fn add_standby(&mut self, sysctls: Vec<(String, String)>) -> Result<(), LabError> {
        let start = Instant::now();
        let standby = new_netns(Ns::Standby, sysctls)?;
        let standby_fd = standby.as_raw_fd();
        self.standby = Some(standby);
        self.ip_batch(
            Ns::Wire,
            &format!(
                "link add {WIRE_STANDBY_LINK} type veth peer name {STANDBY_LINK} netns /proc/self/fd/{standby_fd}\n\
                 addr add {WIRE_STANDBY_ADDR}/24 dev {WIRE_STANDBY_LINK}\n\
                 link set {WIRE_STANDBY_LINK} up\n"
            ),
            &[standby_fd],
        )?;
        self.ip_batch(
            Ns::Standby,
            &format!(
                "link set lo up\n\
                 addr add {SERVER_ADDR}/32 dev lo\n\
                 addr add {STANDBY_ADDR}/24 dev {STANDBY_LINK}\n\
                 link set {STANDBY_LINK} up\n\
                 route add default via {WIRE_STANDBY_ADDR}\n"
            ),
            &[],
        )?;
        self.setup += start.elapsed();
        Ok(())
    }

    /// The sysctls a peer's namespace gets: Linux's tcp_rmem, the lab's tcp_retries2, then
    /// the side's own.
    pub fn peer_sysctls(
        config: &LabConfig,
        own: &BTreeMap<String, String>,
    ) -> Vec<(String, String)> {
        std::iter::once(("net.ipv4.tcp_rmem".to_owned(), TCP_RMEM_DEFAULT.to_owned()))
            .chain(
                config
                    .tcp_retries2
                    .map(|n| ("net.ipv4.tcp_retries2".to_owned(), n.to_string())),
            )
            .chain(own.iter().map(|(k, v)| (k.clone(), v.clone())))
            .collect()
    }

    /// The descriptor holding `ns`, for a thread that enters it (observers).
    pub fn fd(&self, ns: Ns) -> RawFd {
        match ns {
            Ns::Client => self.client.as_raw_fd(),
            Ns::Wire => self.wire.as_raw_fd(),
            Ns::Server => self.server.as_raw_fd(),
            Ns::Standby => self
                .standby
                .as_ref()
                .expect("the standby namespace exists when a failover uses it")
                .as_raw_fd(),
        }
    }

    /// Reads a file of `/proc/thread-self/` (e.g. `net/netstat`) as seen inside `ns`, on a
    /// throwaway thread so that no thread of ours stays in another namespace.
    pub fn read_proc(&self, ns: Ns, file: &str) -> std::io::Result<String> {
        let path = format!("/proc/thread-self/{file}");
        self.in_ns(ns, move || std::fs::read_to_string(path))
            .join()
            .expect("the reading thread does not panic")
    }

    /// [`Lab::read_proc`] without holding the caller's runtime: the thread's result is
    /// awaited, not joined.
    pub async fn read_proc_async(&self, ns: Ns, file: &str) -> std::io::Result<String> {
        let path = format!("/proc/thread-self/{file}");
        self.in_ns_async(ns, move || std::fs::read_to_string(path))
            .await
    }

    /// Runs `f` on a throwaway thread that has entered `ns` (no thread of ours, and never a
    /// runtime's pooled thread, stays in another namespace). The lab outlives the thread: the
    /// callers wait for it.
    fn in_ns<T: Send + 'static>(
        &self,
        ns: Ns,
        f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> std::thread::JoinHandle<std::io::Result<T>> {
        let fd = self.fd(ns);
        std::thread::spawn(move || {
            // SAFETY: setns on this short-lived thread only; the fd outlives it.
            if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            f()
        })
    }

    /// [`Lab::in_ns`], its result awaited: the runner's one thread serves the other labs
    /// meanwhile.
    async fn in_ns_async<T: Send + 'static>(
        &self,
        ns: Ns,
        f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _thread = self.in_ns(ns, move || {
            let _ = tx.send(f());
            Ok(())
        });
        rx.await
            .unwrap_or_else(|_| Err(std::io::Error::other("the namespace thread ended")))
    }

    /// Writes a sysctl (`net.netfilter.nf_conntrack_tcp_timeout_established`) inside `ns`, on a
    /// throwaway thread, and returns the monotonic ns just after write(2) returned: the moment
    /// the kernel holds the new value (/proc/sys/net resolves to the writer's namespace).
    pub fn write_sysctl(&self, ns: Ns, key: &str, value: &str) -> Result<u64, LabError> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let text = value.to_owned();
        self.in_ns(ns, move || {
            std::fs::write(path, text)?;
            Ok(crate::clock::now_ns())
        })
        .join()
        .expect("the writing thread does not panic")
        .map_err(|source| sysctl_error(ns, key, value, source))
    }

    /// [`Lab::write_sysctl`] without holding the caller's runtime. The stamp is taken on the
    /// writing thread, so awaiting its result changes nothing of it.
    pub async fn write_sysctl_async(
        &self,
        ns: Ns,
        key: &str,
        value: &str,
    ) -> Result<u64, LabError> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let text = value.to_owned();
        self.in_ns_async(ns, move || {
            std::fs::write(path, text)?;
            Ok(crate::clock::now_ns())
        })
        .await
        .map_err(|source| sysctl_error(ns, key, value, source))
    }

    /// A command that runs inside `ns`. `inherit` are descriptors the program may open as
    /// /proc/self/fd/N (e.g. another namespace to move a link into).
    pub fn command(&self, ns: Ns, program: &str, inherit: &[RawFd]) -> Command {
        let fd = self.fd(ns);
        let inherit = inherit.to_vec();
        let mut cmd = Command::new(program);
        // SAFETY: only async-signal-safe syscalls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                for &keep in &inherit {
                    if libc::fcntl(keep, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    /// Runs a command to completion inside `ns`, feeding it `stdin`; returns its stdout.
    pub fn run(&self, ns: Ns, cmd: Command, stdin: &str) -> Result<String, LabError> {
        run_to_end(ns, cmd, stdin)
    }

    /// [`Lab::run`] on a blocking thread: the fork, the exec and the wait for the exit (a
    /// fault's script: 4 ms alone, 50 ms under load) leave the runner's one thread free for
    /// the other labs. The command is one of [`Lab::command`]'s, for this lab, which the
    /// caller holds until the call ends.
    pub async fn run_async(&self, ns: Ns, cmd: Command, stdin: &str) -> Result<String, LabError> {
        run_to_end_async(ns, cmd, stdin.to_owned()).await
    }

    fn ip_batch(&self, ns: Ns, batch: &str, inherit: &[RawFd]) -> Result<(), LabError> {
        let mut cmd = self.command(ns, "ip", inherit);
        cmd.args(["-batch", "-"]);
        self.run(ns, cmd, batch).map(drop)
    }

    /// Releases the namespaces. Processes still inside keep theirs alive until they exit.
    pub fn teardown(self) {
        drop(self);
    }
}

/// Runs `cmd` (a command for `ns`) to completion, feeding it `stdin`; returns its stdout.
fn run_to_end(ns: Ns, mut cmd: Command, stdin: &str) -> Result<String, LabError> {
    let what = format!("{:?}", cmd.get_program())
        .trim_matches('"')
        .to_owned()
        + &cmd
            .get_args()
            .map(|a| format!(" {}", a.to_string_lossy()))
            .collect::<String>();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| LabError::Spawn {
            ns,
            program: what.clone(),
            source,
        })?;
    if let Some(mut input) = child.stdin.take() {
        // A program that exits without reading is reported by its status below.
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().map_err(|source| LabError::Spawn {
        ns,
        program: what.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(LabError::Command {
            ns,
            what,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned()
                + String::from_utf8_lossy(&out.stdout).trim(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn sysctl_error(ns: Ns, key: &str, value: &str, source: std::io::Error) -> LabError {
    LabError::Sysctl {
        ns,
        key: key.to_owned(),
        value: value.to_owned(),
        source,
    }
}

/// [`run_to_end`] on the blocking pool, awaited.
async fn run_to_end_async(ns: Ns, cmd: Command, stdin: String) -> Result<String, LabError> {
    off_runtime(move || run_to_end(ns, cmd, &stdin)).await
}

/// Runs `f` (a stop that joins a thread, a lab's setup or teardown, a command run to its end)
/// on the blocking pool and awaits it: the runner's one thread goes on serving the other labs
/// of `run -j N` meanwhile. A panic in `f` goes on in the caller.
pub async fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Tests that something leaves a single-threaded runtime free: runs `body` on one, beside a
/// task that counts its turns, and hands it the count.
#[cfg(test)]
pub fn beside_a_ticker<F: std::future::Future>(
    body: impl FnOnce(std::sync::Arc<std::sync::atomic::AtomicU32>) -> F,
) -> F::Output {
    use std::sync::atomic::Ordering;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let ticker = {
            let ticks = std::sync::Arc::clone(&ticks);
            tokio::spawn(async move {
                loop {
                    ticks.fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            })
        };
        let out = body(ticks).await;
        ticker.abort();
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    /// A fault's script runs and is reaped off the runner's runtime: a second task on the same
    /// single-threaded runtime keeps running while a 200 ms command runs (the blocking
    /// `Lab::run` leaves it at 0 ticks), and the command's output still comes back.
    #[test]
    fn a_command_run_to_its_end_leaves_the_runtime_free() {
        beside_a_ticker(|ticks| async move {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", "sleep 0.2; echo done"]);
            let out = run_to_end_async(Ns::Wire, cmd, String::new()).await;
            assert_eq!(out.unwrap().trim(), "done");
            assert!(ticks.load(Ordering::Relaxed) > 0);
            let mut failing = Command::new("sh");
            failing.args(["-c", "echo nope >&2; exit 3"]);
            let err = run_to_end_async(Ns::Wire, failing, String::new())
                .await
                .unwrap_err();
            assert!(err.to_string().contains("sh"), "{err}");
        });
    }
}
