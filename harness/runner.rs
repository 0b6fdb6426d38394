//! The one event loop: builds the lab, starts the peers, injects and heals faults on schedule,
//! and alone appends events to the record.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};

use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use crate::blackbox::{self, SideView};
use crate::clock;
use crate::fault::{self, Action, Mechanism};
use crate::lab::{self, off_runtime, Lab, LabError, Ns};
use crate::observer::TraceRecord;
use crate::plan::Plan;
use crate::program::{self, Addresses, Output};
use crate::record::{
    Connections, Environment, Event, FaultStep, Kind, PeerReport, Record, RunStatus, Source,
};
use crate::sandbox::Privileges;
use crate::scenario::{Scenario, Side};
use crate::tracefs::TraceSession;
use crate::verdict::{self, Status};
use crate::watcher::{self, Report, Watcher};

/// How long a peer may take to start listening or to connect for the first time.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Once every expectation is decided, keep listening this long for trailing events (the
/// server's accept of a reconnect lands just after the client's connect).
const SETTLE_GRACE: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error("failed to start the {side} peer ({exe})")]
    Spawn {
        side: Side,
        exe: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the {side} did not {what} within {}s (last events: {last})", STARTUP_TIMEOUT.as_secs())]
    Startup {
        side: Side,
        what: &'static str,
        last: String,
    },
    #[error("failed to {action} fault `{fault}`")]
    Fault {
        fault: String,
        action: &'static str,
        #[source]
        source: Box<RunError>,
    },
    #[error("interrupted by {}", .0.as_str())]
    Interrupted(Signal),
    #[error("the {side} peer (pid {pid}) died: {status}")]
    PeerDied {
        side: Side,
        pid: i32,
        status: String,
    },
    #[error("the {side} program {what}; what it printed:\n{output}")]
    Program {
        side: Side,
        what: String,
        output: String,
    },
    #[error("{0}")]
    Setup(String),
    #[error("{0}")]
    MissingTools(String),
    #[error("cannot write {path}")]
    Output {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The signal that stopped the runner, if one did: SIGINT, SIGTERM or SIGHUP, handled from
/// before the first lab comes up until the process exits.
#[derive(Clone, Debug)]
pub struct Stop(watch::Receiver<Option<Signal>>);

impl Stop {
    /// Installs the handlers; call inside the runtime, before unblocking the signals
    /// ([`crate::sandbox::unblock_stop_signals`]).
    pub fn install() -> std::io::Result<Stop> {
        // A signal ignored when flatline started (nohup, `cmd &` in a script) stays ignored.
        let listen = |sig: Signal, kind: SignalKind| -> std::io::Result<_> {
            if crate::sandbox::ignored_at_start().contains(&sig) {
                Ok(None)
            } else {
                signal(kind).map(Some)
            }
        };
        let mut int = listen(Signal::SIGINT, SignalKind::interrupt())?;
        let mut term = listen(Signal::SIGTERM, SignalKind::terminate())?;
        let mut hup = listen(Signal::SIGHUP, SignalKind::hangup())?;
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            let sig = tokio::select! {
                _ = recv(&mut int) => Signal::SIGINT,
                _ = recv(&mut term) => Signal::SIGTERM,
                _ = recv(&mut hup) => Signal::SIGHUP,
            };
            let _ = tx.send(Some(sig));
            // Later signals change nothing: the first one says why the run ended.
            std::future::pending::<()>().await;
        });
        Ok(Stop(rx))
    }

    /// For a library caller that handles signals itself: never stops a run.
    pub fn never() -> Stop {
        Stop(watch::channel(None).1)
    }

    /// The signal received so far, if any.
    pub fn received(&self) -> Option<Signal> {
        *self.0.borrow()
    }

    /// Waits for a signal.
    pub async fn wait(&mut self) -> Signal {
        match self.0.wait_for(Option::is_some).await {
            Ok(sig) => sig.expect("waited for Some"),
            Err(_) => std::future::pending().await,
        }
    }
}

/// What the runner needs besides the scenario.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The flatline binary, started again as `flatline peer ...` inside the lab.
    pub exe: PathBuf,
    pub privileges: Privileges,
    pub stop: Stop,
    /// Where each lab reports faults and detections as they happen, for the terminal.
    pub progress: Option<crate::progress::Feed>,
}

/// The exit code of a run stopped by `sig`: 128 + its number (130 for SIGINT, 143 for
/// SIGTERM, 129 for SIGHUP), as a shell reports it.
pub fn exit_code(sig: Signal) -> u8 {
    128 + sig as u8
}

/// An error and its causes on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text += &format!(": {s}");
        source = s.source();
    }
    text
}

enum Msg {
    Line {
        side: Side,
        line: String,
    },
    Exited {
        side: Side,
        pid: Pid,
        status: String,
    },
    /// A line a user program printed, stamped when read.
    ProgramLine {
        side: Side,
        stream: &'static str,
        line: String,
        t_ns: u64,
    },
    /// What a user program's watcher saw.
    Watch {
        side: Side,
        report: Report,
    },
    /// A line the standby host's server reported.
    StandbyLine {
        line: String,
    },
    /// The standby host's server ended.
    StandbyExited {
        pid: Pid,
        status: String,
    },
}

/// A user program the run started (black box).
struct ProgramRun {
    output: Output,
    view: SideView,
    /// Its process group as the host numbers it, for the watcher.
    pgid: Arc<AtomicI32>,
}

/// How long a user program may take to end after SIGTERM before its group gets SIGKILL.
const END_GRACE: Duration = Duration::from_secs(1);

struct Run<'a> {
    plan: &'a Plan,
    scenario: &'a Scenario,
    opts: &'a RunOptions,
    lab: Lab,
    /// The wire's delay line (`[wire]`), stopped before the lab goes down.
    delayer: Option<crate::delay::Delayer>,
    /// Monotonic nanoseconds when the lab came up: t_ms = 0.
    origin_ns: u64,
    events: Vec<Event>,
    conns: Connections,
    pids: BTreeMap<Side, Pid>,
    /// Peers the schedule signalled: their exit is the fault, not a failure.
    signalled: BTreeSet<Pid>,
    /// A peer that exited on its own: the run cannot go on.
    died: Option<RunError>,
    tx: mpsc::UnboundedSender<Msg>,
    programs: BTreeMap<Side, ProgramRun>,
    watchers: Vec<Watcher>,
    trace: Option<TraceSession>,
    /// The run is ending: programs' lines no longer count as their notices.
    ending: bool,
    /// What dump-only observers saw alongside the trace: (side, kind, ends, when).
    shadows: Vec<(Side, &'static str, crate::record::Ends, u64)>,
    /// When the kernel committed each firewall fault, if a scenario has one.
    nft: Option<crate::nftwatch::NftWatch>,
    /// When the kernel applied each cable pull, if a scenario has one.
    links: Option<crate::linkwatch::LinkWatch>,
    /// When the last sysctl mechanism's write returned (monotonic ns).
    sysctl_written: Option<u64>,
    /// The standby host's server, once started (a scenario with a failover).
    standby: Option<Pid>,
    /// The hosts file a dns failover rewrites.
    hosts: Option<crate::failover::HostsFile>,
    /// This lab's line on the terminal; dropped when the run ends.
    progress: Option<crate::progress::LabFeed>,
}

fn ns_of(side: Side) -> Ns {
    match side {
        Side::Client => Ns::Client,
        Side::Server => Ns::Server,
    }
}

/// The port clients connect to: the server program's, or the reference server's.
fn server_port(scenario: &Scenario) -> u16 {
    scenario
        .server
        .program
        .as_ref()
        .and_then(|p| p.port)
        .unwrap_or(lab::SERVER_PORT)
}

impl Run<'_> {
    fn now_ms(&self) -> f64 {
        clock::ms_since(self.origin_ns, clock::now_ns())
    }

    /// A pool (or a client program, which may hold one): records the server namespace's
    /// listen queue counters.
    async fn listen_counters(&mut self) {
        if self.scenario.client.connections.unwrap_or(1) < 2
            && self.scenario.client.program.is_none()
        {
            return;
        }
        let read = self.lab.read_proc_async(Ns::Server, "net/netstat").await;
        if let Some((listen_overflows, listen_drops)) =
            read.ok().as_deref().and_then(crate::pool::listen_counters)
        {
            let t = self.now_ms();
            self.record(Event::new(
                t,
                Source::Runner,
                Kind::ListenCounters {
                    listen_overflows,
                    listen_drops,
                },
            ));
        }
    }

    fn record(&mut self, event: Event) -> &Event {
        if let Some(p) = &self.progress {
            p.saw(&event.kind);
        }
        self.events.push(event);
        self.events.last().expect("just pushed")
    }

    /// Starts a peer process inside its namespace, with a task that forwards its reports.
    async fn spawn_peer(&mut self, side: Side) -> Result<Pid, RunError> {
        if self.programs.contains_key(&side) {
            return self.spawn_program(side).await;
        }
        let server_addr = format!("{}:{}", lab::SERVER_ADDR, server_port(self.scenario));
        let ns = match side {
            Side::Client => Ns::Client,
            Side::Server => Ns::Server,
        };
        let exe = self.opts.exe.to_string_lossy().into_owned();
        // The client inherits the hosts file of a dns failover (and nothing else does).
        let inherit: Vec<i32> = match (side, &self.hosts) {
            (Side::Client, Some(h)) => vec![h.fd()],
            _ => vec![],
        };
        let mut cmd = self.lab.command(ns, &exe, &inherit);
        let mut plan = self.plan.peer(side);
        if side == Side::Client {
            plan.targets = self.targets();
        }
        let peer = serde_json::to_string(&plan).expect("a peer plan serializes");
        cmd.args(["peer", "--address", &server_addr, "--plan", &peer]);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let pid = self
            .spawn_reference(
                cmd,
                side,
                exe,
                move |line| Msg::Line { side, line },
                move |pid, status| Msg::Exited { side, pid, status },
            )
            .await?;
        self.started(side, pid);
        Ok(pid)
    }

    /// Notes a side's process as started: its PID for the signals and the reaping, and the
    /// record's `process-started`.
    fn started(&mut self, side: Side, pid: Pid) {
        self.pids.insert(side, pid);
        let t = self.now_ms();
        self.record(Event::new(
            t,
            Source::Runner,
            Kind::ProcessStarted {
                side,
                pid: pid.as_raw(),
            },
        ));
    }

    /// Spawns a reference peer (`cmd`, stdout piped) with a task that forwards each line of
    /// its reports as `line(..)` and then its exit as `exited(..)`.
    async fn spawn_reference(
        &self,
        cmd: std::process::Command,
        side: Side,
        exe: String,
        line: impl Fn(String) -> Msg + Send + 'static,
        exited: impl FnOnce(Pid, String) -> Msg + Send + 'static,
    ) -> Result<Pid, RunError> {
        let mut child = spawn(cmd)
            .await
            .map_err(|source| RunError::Spawn { side, exe, source })?;
        let pid = Pid::from_raw(child.id().expect("a running child has a pid") as i32);
        let stdout = child.stdout.take().expect("stdout is piped");
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let _ = tx.send(line(l));
            }
            let status = match child.wait().await {
                Ok(s) => s.to_string(),
                Err(e) => e.to_string(),
            };
            let _ = tx.send(exited(pid, status));
        });
        Ok(pid)
    }

    /// Where a dns failover's client connects: the list, or the name in the run's hosts file.
    fn targets(&self) -> Option<crate::failover::Targets> {
        use crate::failover::Targets;
        let port = server_port(self.scenario);
        match self.scenario.failover()?.resolver()? {
            crate::scenario::Resolve::List => Some(Targets::List {
                addrs: [lab::SERVER_ADDR, lab::STANDBY_ADDR]
                    .map(|a| std::net::SocketAddr::from((a, port)))
                    .to_vec(),
            }),
            crate::scenario::Resolve::HostsFile => Some(Targets::HostsFile {
                path: self.hosts.as_ref()?.path(),
                name: crate::failover::SERVER_NAME.into(),
                port,
            }),
        }
    }

    /// Starts the standby host's server: the reference server as planned for the server, in
    /// the standby's namespace, listening on every address it has (its own, and the server's
    /// that an address move brings it). Its reports are the record's `standby` events.
    async fn spawn_standby(&mut self) -> Result<Pid, RunError> {
        let side = Side::Server;
        let listen = format!("0.0.0.0:{}", server_port(self.scenario));
        let exe = self.opts.exe.to_string_lossy().into_owned();
        let mut cmd = self.lab.command(Ns::Standby, &exe, &[]);
        let peer = serde_json::to_string(&self.plan.peer(side)).expect("a peer plan serializes");
        cmd.args(["peer", "--address", &listen, "--plan", &peer]);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let pid = self
            .spawn_reference(
                cmd,
                side,
                exe,
                |line| Msg::StandbyLine { line },
                |pid, status| Msg::StandbyExited { pid, status },
            )
            .await?;
        self.standby = Some(pid);
        let t = self.now_ms();
        self.record(Event::new(
            t,
            Source::Standby,
            Kind::PeerOutput {
                line: format!("the standby host's server started (pid {pid})"),
            },
        ));
        Ok(pid)
    }

    /// Starts a user program inside its side's namespace, in a process group of its own,
    /// with tasks that forward its output and its exit.
    async fn spawn_program(&mut self, side: Side) -> Result<Pid, RunError> {
        let program = self
            .scenario
            .settings(side)
            .program
            .as_ref()
            .expect("a program side has a program");
        let at = Addresses {
            server: lab::SERVER_ADDR,
            client: lab::CLIENT_ADDR,
            port: server_port(self.scenario),
        };
        let dir = self
            .scenario
            .file
            .parent()
            .unwrap_or(std::path::Path::new(""));
        let mut argv = program.argv(at, dir);
        let mut env = program::Program::env(side, at);
        // A dns failover's client finds the server through a list or the run's hosts file.
        if let Some(targets) = self.targets().filter(|_| side == Side::Client) {
            argv = argv.iter().map(|a| targets.substitute(a)).collect();
            env.extend(targets.env());
        }
        let inherit: Vec<i32> = match (side, &self.hosts) {
            (Side::Client, Some(h)) => vec![h.fd()],
            _ => vec![],
        };
        let mut cmd = self.lab.command(ns_of(side), &argv[0], &inherit);
        cmd.args(&argv[1..])
            .envs(env)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn(cmd).await.map_err(|e| RunError::Program {
            side,
            what: format!(
                "`{}` could not start ({e}{})",
                argv.join(" "),
                if e.kind() == std::io::ErrorKind::NotFound {
                    ": is it installed and on PATH?"
                } else {
                    ""
                }
            ),
            output: "(nothing)".into(),
        })?;
        let pid = Pid::from_raw(child.id().expect("a running child has a pid") as i32);
        if let Some(run) = self.programs.get_mut(&side) {
            let host = watcher::host_pid_of(pid.as_raw()).unwrap_or(0);
            run.pgid.store(host, Ordering::Relaxed);
            run.view.set_dying(false);
        }
        let forward =
            |stream: &'static str, pipe: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>| {
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let Some(pipe) = pipe else { return };
                    let mut lines = BufReader::new(pipe).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let t_ns = clock::now_ns();
                        let _ = tx.send(Msg::ProgramLine {
                            side,
                            stream,
                            line,
                            t_ns,
                        });
                    }
                })
            };
        let out = forward("stdout", child.stdout.take().map(|p| Box::new(p) as _));
        let err = forward("stderr", child.stderr.take().map(|p| Box::new(p) as _));
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(s) => s.to_string(),
                Err(e) => e.to_string(),
            };
            // Its last lines first.
            let _ = tokio::time::timeout(Duration::from_millis(200), async {
                let _ = out.await;
                let _ = err.await;
            })
            .await;
            let _ = tx.send(Msg::Exited { side, pid, status });
        });
        self.started(side, pid);
        Ok(pid)
    }

    /// Starts tracing (as root) and one watcher per user program.
    async fn start_observers(&mut self) -> Result<(), RunError> {
        let sides: Vec<Side> = self.programs.keys().copied().collect();
        if sides.is_empty() {
            return Ok(());
        }
        let mut sinks = Vec::new();
        let mut receivers: Vec<std::sync::mpsc::Receiver<TraceRecord>> = Vec::new();
        for _ in &sides {
            let (tx, rx) = std::sync::mpsc::channel();
            sinks.push(tx);
            receivers.push(rx);
        }
        let traced = match self.opts.privileges {
            Privileges::Root => TraceSession::start(sinks)
                .await
                .map_err(|e| error_chain(&e)),
            Privileges::UserNamespace => Err("tracing needs root on the host".to_owned()),
        };
        let (mut receivers, note) = match traced {
            Ok(session) => {
                self.trace = Some(session);
                (receivers.into_iter().map(Some).collect::<Vec<_>>(), None)
            }
            Err(e) => (sides.iter().map(|_| None).collect(), Some(e)),
        };
        for (i, &side) in sides.iter().enumerate() {
            let netns = nix::unistd::dup(self.lab.fd(ns_of(side)))
                .map_err(|e| RunError::Setup(format!("cannot hold the {side} namespace: {e}")))?;
            // SAFETY: dup returned a new descriptor we own.
            let netns = unsafe { std::os::fd::FromRawFd::from_raw_fd(netns) };
            let spec = watcher::Spec {
                netns,
                local_ip: match side {
                    Side::Client => lab::CLIENT_ADDR,
                    Side::Server => lab::SERVER_ADDR,
                },
                listen_port: (side == Side::Server).then(|| server_port(self.scenario)),
                pgid: self.programs[&side].pgid.clone(),
            };
            let traces = receivers[i].take();
            let via = if traces.is_some() { "trace" } else { "dump" };
            let tx = self.tx.clone();
            let w = Watcher::start(spec, traces, move |report| {
                let _ = tx.send(Msg::Watch { side, report });
            })
            .map_err(|e| RunError::Setup(format!("cannot start the {side} observer: {e}")))?;
            self.watchers.push(w);
            let t = self.now_ms();
            self.record(Event::new(
                t,
                Source::Observer,
                Kind::ObserverUp {
                    side,
                    via: via.into(),
                    note: note.clone(),
                },
            ));
        }
        Ok(())
    }

    /// Notes on each traced observer event how much later a dump alone saw it.
    fn apply_shadows(&mut self) {
        for (side, kind, ends, t_ns) in std::mem::take(&mut self.shadows) {
            let t_ms = clock::ms_since(self.origin_ns, t_ns);
            let event = self.events.iter_mut().find(|e| {
                e.source == side.into() && e.kind.name() == kind && e.kind.ends() == Some(&ends)
            });
            if let Some(e) = event {
                let lag = ((t_ms - e.t_ms) * 1000.0).round() / 1000.0;
                if let Some(slot @ None) = e.kind.dump_lag_ms() {
                    *slot = Some(lag);
                }
            }
        }
    }

    /// Stops the watchers and the trace: nothing is observed after this.
    async fn stop_observers(&mut self) {
        // Each stop joins its thread (up to a 2 ms poll and a dump late).
        let watchers = std::mem::take(&mut self.watchers);
        off_runtime(move || watchers.into_iter().for_each(|mut w| w.stop())).await;
        if let Some(t) = self.trace.take() {
            t.finish().await;
        }
    }

    fn program_event(&mut self, side: Side, t_ns: u64, kind: Kind) {
        let conn = self.conns.number(side.into(), &kind);
        let mut e = Event::new(clock::ms_since(self.origin_ns, t_ns), side.into(), kind);
        e.conn = conn;
        self.record(e);
    }

    /// Turns a peer's report into an event of the record, stamped with the peer's own clock reading.
    fn absorb(&mut self, msg: Msg) {
        match msg {
            Msg::ProgramLine {
                side,
                stream,
                line,
                t_ns,
            } => {
                let run = self
                    .programs
                    .get_mut(&side)
                    .expect("lines come from programs");
                let matched = self
                    .scenario
                    .settings(side)
                    .program
                    .as_ref()
                    .and_then(|p| p.matches(&line));
                let keep = run.output.push(stream, &line, matched.is_some());
                let lost = if self.ending {
                    None
                } else {
                    run.view.line(t_ns, matched)
                };
                if keep {
                    let kind = Kind::ProgramOutput {
                        stream: stream.into(),
                        line,
                        matched: matched.map(str::to_owned),
                    };
                    self.program_event(side, t_ns, kind);
                }
                if let Some((t, kind)) = lost {
                    self.program_event(side, t, kind);
                }
            }
            Msg::Watch { side, report } => match report {
                Report::Listening { addr, t_ns } => {
                    self.program_event(side, t_ns, Kind::Listening { addr });
                }
                Report::Failed(why) => {
                    let t = self.now_ms();
                    self.record(Event::new(
                        t,
                        Source::Observer,
                        Kind::PeerOutput {
                            line: format!("the {side} observer stopped: {why}"),
                        },
                    ));
                }
                Report::Options {
                    conn,
                    options: Some(options),
                    keepalive_in_ms,
                } => {
                    let run = self
                        .programs
                        .get_mut(&side)
                        .expect("watchers watch programs");
                    if let Some(ends) = run.view.options_changed(conn, options) {
                        // The connection's record says what its socket carries, as set.
                        let seen = self.events.iter_mut().find_map(|e| match &mut e.kind {
                            Kind::ConnectionObserved(c)
                                if e.source == side.into() && c.ends == ends =>
                            {
                                Some(c)
                            }
                            _ => None,
                        });
                        if let Some(c) = seen {
                            c.options = Some(options);
                            c.keepalive_armed = options.keepalive;
                            c.keepalive_in_ms = keepalive_in_ms;
                        }
                    }
                }
                Report::Options { options: None, .. } => {}
                Report::Shadow(obs, tuple) => {
                    if let Some((kind, ends, t_ns)) = SideView::shadow(&obs, &tuple) {
                        self.shadows.push((side, kind, ends, t_ns));
                    }
                }
                Report::Observed { obs, options, pid } => {
                    let run = self
                        .programs
                        .get_mut(&side)
                        .expect("watchers watch programs");
                    let events = run.view.observe(obs, options, pid);
                    let corrections = run.view.take_corrections();
                    for (t_ns, kind) in events {
                        self.program_event(side, t_ns, kind);
                    }
                    for c in corrections {
                        c.apply(&mut self.events, side.into());
                    }
                }
            },
            Msg::Line { side, line } => {
                let event = match serde_json::from_str::<PeerReport>(&line) {
                    Ok(report) => Event {
                        t_ms: clock::ms_since(self.origin_ns, report.mono_ns),
                        source: side.into(),
                        conn: self.conns.number(side.into(), &report.kind),
                        kind: report.kind,
                    },
                    Err(_) => Event::new(self.now_ms(), side.into(), Kind::PeerOutput { line }),
                };
                self.record(event);
            }
            Msg::StandbyLine { line } => {
                let event = match serde_json::from_str::<PeerReport>(&line) {
                    Ok(report) => Event {
                        t_ms: clock::ms_since(self.origin_ns, report.mono_ns),
                        source: Source::Standby,
                        // Numbered by the client's port, apart from the old server's
                        // connections at the same port.
                        conn: self.conns.number(Source::Standby, &report.kind),
                        kind: report.kind,
                    },
                    Err(_) => Event::new(self.now_ms(), Source::Standby, Kind::PeerOutput { line }),
                };
                self.record(event);
            }
            Msg::StandbyExited { pid, status } => {
                if self.standby == Some(pid) && self.died.is_none() {
                    self.died = Some(RunError::PeerDied {
                        side: Side::Server,
                        pid: pid.as_raw(),
                        status: format!("{status} (the standby host's server)"),
                    });
                }
                self.standby = None;
                let t = self.now_ms();
                let line = format!("the standby host's server (pid {pid}) exited: {status}");
                self.record(Event::new(t, Source::Standby, Kind::PeerOutput { line }));
            }
            Msg::Exited { side, pid, status } => {
                if self.pids.get(&side) == Some(&pid) {
                    self.pids.remove(&side);
                    // A user program may end on its own (socat after an error): that is
                    // an observation, not a broken run.
                    let program = self.programs.contains_key(&side);
                    if !program && !self.signalled.contains(&pid) && self.died.is_none() {
                        self.died = Some(RunError::PeerDied {
                            side,
                            pid: pid.as_raw(),
                            status: status.clone(),
                        });
                    }
                }
                let t = self.now_ms();
                self.record(Event::new(t, Source::Runner, exited(side, pid, status)));
            }
        }
    }

    /// What a user program printed last, for error messages.
    fn output_of(&self, side: Side) -> String {
        match self.programs.get(&side).map(|p| p.output.tail()) {
            Some("") => "(nothing)".into(),
            Some(tail) => tail.to_owned(),
            None => String::new(),
        }
    }

    /// Receives events until `want` returns true for one, or the startup timeout.
    async fn wait_for(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<Msg>,
        side: Side,
        what: &'static str,
        want: impl Fn(&Event) -> bool,
    ) -> Result<f64, RunError> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut stop = self.opts.stop.clone();
        let program = self.programs.contains_key(&side);
        loop {
            let msg = tokio::select! {
                biased;
                sig = stop.wait() => return Err(RunError::Interrupted(sig)),
                msg = tokio::time::timeout_at(deadline, rx.recv()) => msg,
            };
            match msg {
                Ok(Some(msg)) => {
                    let before = self.events.len();
                    self.absorb(msg);
                    if let Some(e) = self.events[before..].iter().find(|e| want(e)) {
                        return Ok(e.t_ms);
                    }
                    if let Some(died) = self.died.take() {
                        return Err(died);
                    }
                    let exited = self.events[before..].iter().find_map(|e| match &e.kind {
                        Kind::ProcessExited {
                            side: s, status, ..
                        } if *s == side => Some(status.clone()),
                        _ => None,
                    });
                    if let (true, Some(status)) = (program, exited) {
                        // Its last lines may still be on their way.
                        let _ = tokio::time::timeout(Duration::from_millis(100), async {
                            while let Some(msg) = rx.recv().await {
                                self.absorb(msg);
                            }
                        })
                        .await;
                        return Err(RunError::Program {
                            side,
                            what: format!("exited ({status}) before it could {what}"),
                            output: self.output_of(side),
                        });
                    }
                }
                Ok(None) | Err(_) if program => {
                    return Err(RunError::Program {
                        side,
                        what: format!("did not {what} within {}s", STARTUP_TIMEOUT.as_secs()),
                        output: self.output_of(side),
                    });
                }
                Ok(None) | Err(_) => {
                    let last = self
                        .events
                        .iter()
                        .rev()
                        .take(4)
                        .map(|e| serde_json::to_string(e).unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(RunError::Startup { side, what, last });
                }
            }
        }
    }

    /// Carries out one mechanism; returns what a script printed.
    async fn perform(&mut self, mechanism: &Mechanism) -> Result<String, RunError> {
        match mechanism {
            Mechanism::Script { .. } => fault::run_script_async(&self.lab, mechanism)
                .await
                .map(|out| out.unwrap_or_default())
                .map_err(RunError::from),
            Mechanism::Sysctl { ns, key, value } => {
                let at = self.lab.write_sysctl_async(*ns, key, value).await?;
                self.sysctl_written = Some(at);
                Ok(String::new())
            }
            Mechanism::Signal(side, sig) => {
                if let Some(&pid) = self.pids.get(side) {
                    self.signalled.insert(pid);
                    // The process stays ours until its reaper task sees it exit. A user
                    // program is its whole process group.
                    if let Some(run) = self.programs.get_mut(side) {
                        if matches!(sig, Signal::SIGKILL | Signal::SIGTERM) {
                            run.view.set_dying(true);
                        }
                        let _ = nix::sys::signal::killpg(pid, *sig);
                    } else {
                        let _ = kill(pid, *sig);
                    }
                }
                Ok(String::new())
            }
            Mechanism::Restart(side) => self.spawn_peer(*side).await.map(|_| String::new()),
            Mechanism::Hosts { to } => {
                let hosts = self.hosts.as_ref().ok_or_else(|| {
                    RunError::Setup("a dns failover's hosts file was not made".into())
                })?;
                hosts
                    .point(*to)
                    .map_err(|e| RunError::Setup(format!("cannot rewrite the hosts file: {e}")))?;
                Ok(String::new())
            }
        }
    }

    /// Carries out one step of a fault and stamps it when it is in effect: when its last
    /// mechanism took effect, and not before a restarted server listens again (no client can
    /// come back before that).
    async fn step(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<Msg>,
        index: usize,
        action: Action,
    ) -> Result<(), RunError> {
        let fault = &self.scenario.faults[index];
        let mechanisms = fault::mechanism(fault, action);
        let started_ms = self.now_ms();
        let mut output = String::new();
        // Each mechanism's moment of effect; the step is in effect at the latest of them.
        let mut effect_ms = started_ms;
        let failed = |source: RunError| RunError::Fault {
            fault: self.scenario.faults[index].id.clone(),
            action: action.as_str(),
            source: Box::new(source),
        };
        for m in &mechanisms {
            let before_ms = self.now_ms();
            output += &self.perform(m).await.map_err(failed)?;
            let at_ms = if *m == Mechanism::Restart(Side::Server) {
                // Not when the spawn returns: under load the new server may listen (and the
                // client reconnect) before the runner runs again.
                let listening = self
                    .wait_for(rx, Side::Server, "listen again", |e| {
                        e.source == Source::Server && matches!(e.kind, Kind::Listening { .. })
                    })
                    .await
                    .map_err(failed)?;
                // A program's listen is seen by a sock_diag poll, up to a poll late: a
                // connection made since the restart proves it listened by then.
                while let Ok(msg) = rx.try_recv() {
                    self.absorb(msg);
                }
                self.events
                    .iter()
                    .filter(|e| {
                        e.t_ms >= before_ms
                            && matches!(e.kind, Kind::Connected(_) | Kind::Reconnected(_))
                    })
                    .map(|e| e.t_ms)
                    .fold(listening, f64::min)
            } else if m.acts_during_call() {
                before_ms
            } else if let (Mechanism::Sysctl { .. }, Some(at)) = (m, self.sysctl_written.take()) {
                // A sysctl (a NAT timeout) holds its new value once write(2) returns.
                clock::ms_since(self.origin_ns, at)
            } else if let Some(committed) = match &self.nft {
                Some(w) => {
                    w.committed(m, self.origin_ns + (before_ms * 1e6) as u64)
                        .await
                }
                None => None,
            } {
                // A firewall script's table is in effect when nftables commits it. The
                // monitor's line arrives after the commit; if it came after the script's exit
                // (a starved reader), the exit is the nearer bound.
                clock::ms_since(self.origin_ns, committed).min(self.now_ms())
            } else if let Some(applied) = match &self.links {
                Some(w) => {
                    w.applied(m, self.origin_ns + (before_ms * 1e6) as u64)
                        .await
                }
                None => None,
            } {
                // A cable pull is in effect when rtnetlink reports the link (or route) change
                // (stamped when our listener wakes; if it woke after the script's exit, the
                // exit is the nearer bound).
                clock::ms_since(self.origin_ns, applied).min(self.now_ms())
            } else {
                self.now_ms()
            };
            effect_ms = effect_ms.max(at_ms);
        }
        let fault = &self.scenario.faults[index];
        let step = FaultStep {
            fault: fault.id.clone(),
            fault_kind: fault.kind(),
            mechanism: fault::describe(&mechanisms),
            took_ms: ((effect_ms - started_ms) * 1000.0).round() / 1000.0,
            // Evidence that the fault touched traffic: what its rules matched while in force.
            packets_matched: fault::packets_matched(&output),
        };
        let kind = match action {
            Action::Inject => Kind::FaultInjected(step),
            Action::Heal => Kind::FaultHealed(step),
        };
        self.record(Event::new(effect_ms, Source::Runner, kind));
        Ok(())
    }
}

fn exited(side: Side, pid: Pid, status: String) -> Kind {
    Kind::ProcessExited {
        side,
        pid: pid.as_raw(),
        status,
    }
}

/// Where and when this run happens.
fn environment(privileges: Privileges, run_date: std::time::SystemTime) -> Environment {
    Environment {
        kernel: nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        flatline_version: env!("CARGO_PKG_VERSION").into(),
        run_date: humantime::format_rfc3339_seconds(run_date).to_string(),
        privileges: privileges.as_str().into(),
    }
}

/// Checks that every program the scenario's lab and faults run is installed, before any lab
/// starts (a missing `nft` must not surface only when the fault is due).
pub fn check_tools(scenario: &Scenario) -> Result<(), RunError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut tools = fault::tools(&scenario.faults);
    if !scenario.wire.is_off() {
        tools.entry(fault::IPTABLES).or_default();
    }
    match fault::missing_tools(&tools, &path) {
        None => Ok(()),
        Some(msg) => Err(RunError::MissingTools(msg)),
    }
}

/// Runs one scenario in a fresh lab and returns its record. Once the lab is up there is always
/// a record: its `status` says whether the run completed, was interrupted or failed.
pub async fn run(plan: &Plan, opts: &RunOptions) -> Result<Record, RunError> {
    let scenario = &plan.scenario;
    if let Some(sig) = opts.stop.received() {
        return Err(RunError::Interrupted(sig));
    }
    check_tools(scenario)?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let run_date = std::time::SystemTime::now();
    // Namespaces, links and addresses: three `ip -batch` runs, 10-130 ms under load.
    let (config, client, server) = (
        scenario.lab,
        scenario.client.sysctl.clone(),
        scenario.server.sysctl.clone(),
    );
    let standby = scenario.failover().is_some();
    let lab = off_runtime(move || {
        let mut lab = Lab::up_with(&config, &client, &server)?;
        if standby {
            lab.add_standby(Lab::peer_sysctls(&config, &server))?;
        }
        Ok::<_, lab::LabError>(lab)
    })
    .await?;
    let mut hosts = None;
    if let Some(fo) = scenario.failover() {
        if fo.resolver() == Some(crate::scenario::Resolve::HostsFile) {
            let file = crate::failover::HostsFile::create(lab::SERVER_ADDR)
                .map_err(|e| RunError::Setup(format!("cannot make the hosts file: {e}")))?;
            hosts = Some(file);
        }
    }
    let programs = Side::BOTH
        .into_iter()
        .filter(|&side| scenario.settings(side).program.is_some())
        .map(|side| {
            let run = ProgramRun {
                output: Output::default(),
                view: SideView::new(side),
                pgid: Arc::new(AtomicI32::new(0)),
            };
            (side, run)
        })
        .collect();
    let origin_ns = clock::now_ns();
    let setup_ms = lab.setup.as_secs_f64() * 1000.0;
    let mut run = Run {
        plan,
        scenario,
        opts,
        lab,
        delayer: None,
        origin_ns,
        events: vec![Event::new(
            0.0,
            Source::Runner,
            Kind::LabUp {
                setup_ms: (setup_ms * 1000.0).round() / 1000.0,
            },
        )],
        conns: Connections::default(),
        pids: BTreeMap::new(),
        signalled: BTreeSet::new(),
        died: None,
        tx,
        programs,
        watchers: Vec::new(),
        trace: None,
        ending: false,
        shadows: Vec::new(),
        nft: None,
        links: None,
        sysctl_written: None,
        standby: None,
        hosts,
        progress: opts
            .progress
            .as_ref()
            .map(|f| f.lab(&scenario.name, scenario.end.0)),
    };
    if run.scenario.faults.iter().any(|f| {
        [Action::Inject, Action::Heal]
            .iter()
            .flat_map(|a| fault::mechanism(f, *a))
            .any(|m| crate::nftwatch::expected_line(&m).is_some())
    }) {
        run.nft = crate::nftwatch::NftWatch::start(&run.lab);
    }
    let mut pulled: Vec<crate::lab::Ns> = Vec::new();
    for m in run
        .scenario
        .faults
        .iter()
        .flat_map(|f| fault::mechanism(f, Action::Inject))
    {
        match crate::linkwatch::expected(&m) {
            Some(e) if !pulled.contains(&e.ns) => pulled.push(e.ns),
            _ => {}
        }
    }
    if !pulled.is_empty() {
        run.links = crate::linkwatch::LinkWatch::start(&run.lab, &pulled);
    }
    let outcome = match run.start_observers().await {
        Ok(()) => drive(&mut run, &mut rx).await,
        Err(e) => Err(e),
    };

    // Nothing observed from here on counts: the end is ours, not a fault's.
    run.stop_observers().await;
    let (links, nft) = (run.links.take(), run.nft.take());
    off_runtime(move || {
        if let Some(w) = links {
            w.stop();
        }
        if let Some(w) = nft {
            w.stop();
        }
    })
    .await;
    run.apply_shadows();
    run.ending = true;
    // User programs: TERM to the group, a grace period, then KILL.
    let programs: Vec<(Side, Pid)> = run
        .pids
        .iter()
        .filter(|(side, _)| run.programs.contains_key(side))
        .map(|(&side, &pid)| (side, pid))
        .collect();
    for (_, pid) in &programs {
        let _ = nix::sys::signal::killpg(*pid, Signal::SIGTERM);
    }
    let grace = Instant::now() + END_GRACE;
    while programs.iter().any(|(side, _)| run.pids.contains_key(side)) {
        match tokio::time::timeout_at(grace, rx.recv()).await {
            Ok(Some(msg)) => run.absorb(msg),
            _ => break,
        }
    }
    for (_, pid) in &programs {
        let _ = nix::sys::signal::killpg(*pid, Signal::SIGKILL);
    }
    // Stop the peers, collect what they said last, then release the namespaces.
    for pid in run.pids.values().chain(run.standby.take().as_ref()) {
        let _ = kill(*pid, Signal::SIGKILL);
    }
    if let Some(d) = run.delayer.take() {
        let stats = off_runtime(move || d.stop()).await;
        let t = run.now_ms();
        run.events
            .push(Event::new(t, Source::Wire, Kind::DelayDown(stats)));
    }
    // What the programs' sockets really carry: the model predicts from that.
    let observed: Vec<(Side, crate::observer::SocketSettings)> = run
        .programs
        .iter()
        .filter_map(|(&side, p)| p.view.options.map(|o| (side, o)))
        .collect();
    run.listen_counters().await;
    let Run {
        lab,
        mut events,
        tx,
        origin_ns,
        ..
    } = run;
    drop(tx);
    let drain = async {
        while let Some(msg) = rx.recv().await {
            if let Msg::Exited { side, pid, status } = msg {
                let t = clock::ms_since(origin_ns, clock::now_ns());
                events.push(Event::new(t, Source::Runner, exited(side, pid, status)));
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    let teardown_start = clock::now_ns();
    off_runtime(move || lab.teardown()).await;
    let end = clock::now_ns();
    let (status, reason) = match outcome {
        Ok(reason) => (RunStatus::Completed, reason),
        Err(RunError::Interrupted(sig)) => (
            RunStatus::Interrupted {
                signal: sig.as_str().into(),
            },
            "interrupted",
        ),
        Err(e) => (
            RunStatus::Failed {
                reason: error_chain(&e),
            },
            "failed",
        ),
    };
    events.push(Event::new(
        clock::ms_since(origin_ns, end),
        Source::Runner,
        Kind::LabDown {
            teardown_ms: clock::ms_since(teardown_start, end),
            reason: Some(reason.into()),
        },
    ));
    events.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
    if scenario.failover().is_some() {
        crate::failover::name_hosts(&mut events);
    }

    Ok(verdict::judge_run(
        blackbox::with_observed(scenario, &observed),
        environment(opts.privileges, run_date),
        status,
        events,
    ))
}

/// Starts the peers, runs the schedule, and returns why the run ended.
async fn drive(
    run: &mut Run<'_>,
    rx: &mut mpsc::UnboundedReceiver<Msg>,
) -> Result<&'static str, RunError> {
    let mut stop = run.opts.stop.clone();

    // A delay must be on the wire before the first handshake crosses it.
    if !run.scenario.wire.is_off() {
        let wire = run.scenario.wire;
        let delayer = crate::delay::Delayer::start(run.lab.fd(Ns::Wire), wire)
            .map_err(|e| RunError::Setup(error_chain(&e)))?;
        run.delayer = Some(delayer);
        let mut cmd = run.lab.command(Ns::Wire, "sh", &[]);
        cmd.args(["-c", &wire.rule()]);
        run.lab.run(Ns::Wire, cmd, "")?;
        let t = run.now_ms();
        let mechanism = wire.describe();
        run.record(Event::new(t, Source::Wire, Kind::DelayUp { mechanism }));
    }
    // A NAT must be in the path before the connection exists.
    if let Some(f) = run.plan.nat.map(|i| &run.scenario.faults[i]) {
        let setup = fault::nat_setup(f);
        run.perform(&setup)
            .await
            .map_err(|source| RunError::Fault {
                fault: f.id.clone(),
                action: "set up the NAT for",
                source: Box::new(source),
            })?;
        let t = run.now_ms();
        let mechanism = setup.describe();
        run.record(Event::new(t, Source::Wire, Kind::NatUp { mechanism }));
    }
    run.spawn_peer(Side::Server).await?;
    run.wait_for(rx, Side::Server, "listen", |e| {
        e.source == Source::Server && matches!(e.kind, Kind::Listening { .. })
    })
    .await?;
    if run.scenario.failover().is_some() {
        run.spawn_standby().await?;
        run.wait_for(rx, Side::Server, "listen on the standby host", |e| {
            e.source == Source::Standby && matches!(e.kind, Kind::Listening { .. })
        })
        .await?;
    }
    run.spawn_peer(Side::Client).await?;
    // With a pool of connections, the schedule starts once every one of them is up.
    let mut start_ms = 0.0;
    for _ in 0..run.plan.scenario.client.connections.unwrap_or(1) {
        start_ms = run
            .wait_for(rx, Side::Client, "connect", |e| {
                e.source == Source::Client && matches!(e.kind, Kind::Connected(_))
            })
            .await?;
    }

    run.listen_counters().await;

    // The schedule, in monotonic time: faults count from the client's first connection (of a
    // pool: from its last first connection).
    let anchor = (Instant::now(), run.now_ms());
    let at = |ms_after_start: u64| {
        anchor.0
            + Duration::from_secs_f64(
                ((start_ms + ms_after_start as f64 - anchor.1) / 1000.0).max(0.0),
            )
    };
    let steps: Vec<(Instant, usize, Action)> = run
        .plan
        .steps
        .iter()
        .map(|s| (at(s.at.as_millis()), s.fault, s.action))
        .collect();
    let end = at(run.scenario.end.as_millis());
    let mut next = 0;
    let mut settled_at: Option<Instant> = None;
    let mut judged = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));

    loop {
        let step_at = steps.get(next).map(|s| s.0).unwrap_or(end);
        tokio::select! {
            biased;
            sig = stop.wait() => return Err(RunError::Interrupted(sig)),
            _ = tokio::time::sleep_until(step_at), if next < steps.len() => {
                let (_, index, action) = steps[next];
                next += 1;
                run.step(rx, index, action).await?;
            }
            Some(msg) = rx.recv() => { run.absorb(msg); }
            _ = tokio::time::sleep_until(end) => return Ok("end"),
            _ = tick.tick() => {}
        }
        if let Some(died) = run.died.take() {
            return Err(died);
        }
        // Without expectations there is nothing to settle: observe until the end.
        // Judged at most every 100 ms: a pool's storm brings thousands of events, and judging
        // after each would keep the runner from reading the peers' reports.
        if next == steps.len()
            && !run.scenario.expectations.is_empty()
            && judged.elapsed() >= Duration::from_millis(100)
        {
            judged = Instant::now();
            let now = run.now_ms();
            let open = verdict::judge(run.scenario, &run.events, Some(now))
                .iter()
                .any(|o| o.status == Status::Pending);
            if open {
                settled_at = None;
            } else {
                let since = *settled_at.get_or_insert_with(Instant::now);
                if since.elapsed() >= SETTLE_GRACE {
                    return Ok("settled");
                }
            }
        }
    }
}

/// Starts `cmd` (killed if its handle is dropped) from the blocking pool: the fork and exec
/// of a peer or program took up to 30 ms on the runtime under load. The child is still
/// tokio's, reaped by its driver (`child.wait().await`).
async fn spawn(cmd: std::process::Command) -> std::io::Result<tokio::process::Child> {
    off_runtime(move || {
        tokio::process::Command::from(cmd)
            .kill_on_drop(true)
            .spawn()
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the runner runs off its runtime (watchers' and listeners' stops, which join their
    /// threads, the delay's stop, the lab's setup and teardown) leaves its one thread free: a
    /// second task keeps running while a 200 ms blocking call goes on (called in place, it
    /// would see no tick), and the call's result comes back.
    #[test]
    fn a_blocking_call_off_the_runtime_leaves_other_labs_running() {
        crate::lab::beside_a_ticker(|ticks| async move {
            let got = off_runtime(|| {
                std::thread::sleep(Duration::from_millis(200));
                7
            })
            .await;
            assert_eq!(got, 7);
            assert!(ticks.load(Ordering::Relaxed) > 0);
        });
    }

    /// A child started from the blocking pool is still the runtime's: its piped output is
    /// read, and its exit is reaped, by tasks on the runner's one thread.
    #[test]
    fn a_child_spawned_off_the_runtime_is_read_and_reaped_on_it() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut cmd = std::process::Command::new("sh");
            cmd.args(["-c", "echo one; echo two; exit 3"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped());
            let mut child = spawn(cmd).await.unwrap();
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let mut got = Vec::new();
            while let Some(l) = lines.next_line().await.unwrap() {
                got.push(l);
            }
            assert_eq!(got, ["one", "two"]);
            let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .expect("reaped")
                .unwrap();
            assert_eq!(status.code(), Some(3));
        });
    }
}
