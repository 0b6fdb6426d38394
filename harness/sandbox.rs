//! The namespaces that make a run leave nothing behind: the runner becomes PID 1 of its own PID
//! namespace (inside a user namespace when not root), watched by the process the user started.
//!
//! When PID 1 of a PID namespace exits, the kernel kills every process in it; when the process
//! the user started dies (even by SIGKILL), PR_SET_PDEATHSIG kills that PID 1. Network
//! namespaces are held only by file descriptors and processes inside, so they, their links and
//! their nftables rules go with them. Nothing is pinned in /run/netns.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, getegid, geteuid, ForkResult, Pid};

/// How the run got the right to create namespaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privileges {
    Root,
    UserNamespace,
}

impl Privileges {
    pub fn as_str(self) -> &'static str {
        match self {
            Privileges::Root => "root",
            Privileges::UserNamespace => "user-namespace",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "cannot create a PID namespace as root: the process lacks CAP_SYS_ADMIN \
         (in a container, run it with --privileged or give it CAP_SYS_ADMIN and CAP_NET_ADMIN)"
    )]
    RootUnshare(#[source] nix::Error),
    #[error(
        "creating network namespaces needs root or unprivileged user namespaces: run as root, \
         or enable them (sysctl kernel.unprivileged_userns_clone=1, \
         sysctl kernel.apparmor_restrict_unprivileged_userns=0, user.max_user_namespaces > 0)"
    )]
    UserUnshare(#[source] nix::Error),
    #[error("cannot map uid/gid into the user namespace ({what})")]
    IdMap {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the runner process")]
    Fork(#[source] nix::Error),
}

/// The runner's PID, as seen by the watcher: where to forward SIGINT/SIGTERM/SIGHUP.
static RUNNER: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = RUNNER.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// The signals that end a run: forwarded by the watcher, handled by the runner.
pub const STOP_SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

fn stop_signals() -> SigSet {
    let mut set = SigSet::empty();
    for sig in STOP_SIGNALS {
        set.add(sig);
    }
    set
}

/// The stop signals this process was started with ignored (`nohup` ignores SIGHUP; a shell
/// script's `cmd &` ignores SIGINT): they stay ignored, as the caller asked, and are neither
/// forwarded nor handled. Read once, before any handler is installed (enter() reads it first).
pub fn ignored_at_start() -> &'static [Signal] {
    static IGNORED: std::sync::OnceLock<Vec<Signal>> = std::sync::OnceLock::new();
    IGNORED.get_or_init(|| {
        STOP_SIGNALS
            .into_iter()
            .filter(|&sig| {
                let mut old = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
                // SAFETY: a null new action only reads the current one into `old`.
                let rc = unsafe { libc::sigaction(sig as i32, std::ptr::null(), old.as_mut_ptr()) };
                // SAFETY: filled in by a successful sigaction.
                rc == 0 && unsafe { old.assume_init() }.sa_sigaction == libc::SIG_IGN
            })
            .collect()
    })
}

/// Delivers the stop signals again. The runner calls it once its handlers are installed: until
/// then they stay pending, because PID 1 of a PID namespace discards a signal it has no
/// handler for, and a Ctrl-C in that window would be lost.
pub fn unblock_stop_signals() {
    let _ = signal::pthread_sigmask(signal::SigmaskHow::SIG_UNBLOCK, Some(&stop_signals()), None);
}

/// The binary that is running, as a path that stays valid for the life of this process
/// (`/proc/self/fd/N` on an open /proc/self/exe): peers started from it run this very version,
/// even if the file is replaced or deleted mid-run (a `cargo build`). The descriptor is
/// close-on-exec: peers do not inherit it, but a forked child still sees it until it execs.
///
/// Opened on the first call (`main` makes it first thing, so the window in which a rebuild
/// could swap the file is the exec itself) and the same path returned after.
pub fn own_binary() -> std::io::Result<std::path::PathBuf> {
    static OWN: std::sync::OnceLock<Result<std::path::PathBuf, i32>> = std::sync::OnceLock::new();
    OWN.get_or_init(|| {
        let file = fs::File::open("/proc/self/exe").map_err(|e| e.raw_os_error().unwrap_or(0))?;
        let fd = OwnedFd::from(file);
        let path = std::path::PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        // Held open until the process exits.
        std::mem::forget(fd);
        Ok(path)
    })
    .clone()
    .map_err(std::io::Error::from_raw_os_error)
}

/// Enters the sandbox. Must be called while the process has a single thread.
///
/// Returns in the runner (PID 1 of the new PID namespace), with SIGINT, SIGTERM and SIGHUP
/// blocked: install handlers, then call [`unblock_stop_signals`]. The calling process becomes
/// the watcher: it forwards those signals, waits, and exits with the runner's status; it never
/// returns.
pub fn enter() -> Result<Privileges, SandboxError> {
    // Blocked from here on, in the watcher until it can forward them and in the runner until
    // it can handle them: a signal sent at any moment stays pending instead of being lost.
    let _ = signal::pthread_sigmask(signal::SigmaskHow::SIG_BLOCK, Some(&stop_signals()), None);
    ignored_at_start();
    let (euid, egid) = (geteuid(), getegid());
    let privileges = if euid.is_root() {
        unshare(CloneFlags::CLONE_NEWPID).map_err(SandboxError::RootUnshare)?;
        Privileges::Root
    } else {
        unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWPID)
            .map_err(SandboxError::UserUnshare)?;
        let write = |file: &str, text: String| {
            fs::write(format!("/proc/self/{file}"), &text).map_err(|source| SandboxError::IdMap {
                what: format!("/proc/self/{file} <- {}", text.trim()),
                source,
            })
        };
        write("setgroups", "deny".into())?;
        write("uid_map", format!("0 {euid} 1\n"))?;
        write("gid_map", format!("0 {egid} 1\n"))?;
        Privileges::UserNamespace
    };

    // The runner learns of the watcher's death through this pipe as well as PDEATHSIG: the
    // watcher may die between fork and prctl.
    let (alive_r, alive_w): (OwnedFd, OwnedFd) = nix::unistd::pipe().map_err(SandboxError::Fork)?;
    // SAFETY: single-threaded here (documented precondition), so fork is sound.
    match unsafe { fork() }.map_err(SandboxError::Fork)? {
        ForkResult::Parent { child } => {
            drop(alive_r);
            watch(child, alive_w)
        }
        ForkResult::Child => {
            drop(alive_w);
            // SAFETY: plain prctl.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
            let mut pfd = libc::pollfd {
                fd: alive_r.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&mut pfd, 1, 0) };
            if ready != 0 {
                // The watcher is already gone: nobody is there to report to.
                std::process::exit(137);
            }
            // Kept open for the runner's lifetime so the check above stays meaningful.
            std::mem::forget(alive_r);
            Ok(privileges)
        }
    }
}

fn watch(child: Pid, _alive: OwnedFd) -> ! {
    RUNNER.store(child.as_raw(), Ordering::Relaxed);
    let action = SigAction::new(
        SigHandler::Handler(forward),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in STOP_SIGNALS
        .into_iter()
        .filter(|s| !ignored_at_start().contains(s))
    {
        // SAFETY: the handler only calls kill().
        unsafe {
            let _ = signal::sigaction(sig, &action);
        }
    }
    // What arrived since enter() blocked them is forwarded now.
    unblock_stop_signals();
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => std::process::exit(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => std::process::exit(128 + sig as i32),
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(e) => {
                eprintln!("flatline: lost track of the runner: {e}");
                std::process::exit(2);
            }
        }
    }
}
