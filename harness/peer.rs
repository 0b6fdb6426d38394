//! The reference server and client: the seed's Delphi/Indy pair done properly. Each reports
//! what happens to it as JSON lines on stdout, stamped on the monotonic clock.
//!
//! Detection is event-driven: a thread blocks in read() until the kernel reports data, EOF or
//! an error, so no sleep adds to any measurement.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Map, Value};
use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};

use crate::clock;
use crate::keepalive::Keepalive;

/// Socket options applied to every connection of one side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketOpts {
    pub keepalive: Keepalive,
    /// TCP_USER_TIMEOUT in ms; 0 leaves the default.
    pub user_timeout_ms: u32,
}

impl SocketOpts {
    fn apply(&self, sock: &SockRef<'_>) -> io::Result<()> {
        if let Keepalive::On {
            idle_s,
            interval_s,
            count,
        } = self.keepalive
        {
            let ka = TcpKeepalive::new()
                .with_time(Duration::from_secs(idle_s.into()))
                .with_interval(Duration::from_secs(interval_s.into()))
                .with_retries(count);
            sock.set_tcp_keepalive(&ka)?;
        }
        if self.user_timeout_ms > 0 {
            sock.set_tcp_user_timeout(Some(Duration::from_millis(self.user_timeout_ms.into())))?;
        }
        Ok(())
    }
}

/// Writes events as JSON lines to stdout. If the runner is gone, the peer has no one to
/// report to and exits.
pub struct Reporter {
    out: Mutex<io::Stdout>,
}

impl Default for Reporter {
    fn default() -> Self {
        Reporter {
            out: Mutex::new(io::stdout()),
        }
    }
}

impl Reporter {
    pub fn emit(&self, kind: &str, fields: Value) {
        let t = clock::now_ns();
        let mut line = Map::new();
        line.insert("mono_ns".into(), t.into());
        line.insert("kind".into(), kind.into());
        if let Value::Object(map) = fields {
            line.extend(map);
        }
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let text = Value::Object(line).to_string();
        if writeln!(out, "{text}").and_then(|_| out.flush()).is_err() {
            std::process::exit(0);
        }
    }
}

/// The name a user knows an error by: EOF for an orderly close, else the errno name.
pub fn error_name(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => format!("{:?}", nix::errno::Errno::from_raw(code)),
        None if err.kind() == io::ErrorKind::TimedOut => "ETIMEDOUT".into(),
        None => format!("{:?}", err.kind()),
    }
}

/// The kernel's view of a connection, for the timeline.
pub fn tcp_info(fd: &impl AsRawFd) -> Value {
    // SAFETY: tcp_info is plain data; getsockopt writes at most `len` bytes.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Value::Null;
    }
    json!({
        "state": info.tcpi_state,
        "retransmits": info.tcpi_retransmits,
        "probes": info.tcpi_probes,
        "backoff": info.tcpi_backoff,
        "rto_us": info.tcpi_rto,
        "rtt_us": info.tcpi_rtt,
        "unacked": info.tcpi_unacked,
        "total_retrans": info.tcpi_total_retrans,
        "last_data_sent_ms": info.tcpi_last_data_sent,
        "last_data_recv_ms": info.tcpi_last_data_recv,
        "last_ack_recv_ms": info.tcpi_last_ack_recv,
    })
}

/// Reads until the connection ends; returns the error name (EOF for an orderly close) and a
/// TCP_INFO snapshot taken before the socket is closed.
fn read_until_lost(stream: &mut TcpStream) -> (String, Value) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return ("EOF".into(), tcp_info(stream)),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return (error_name(&e), tcp_info(stream)),
        }
    }
}

/// The server: accepts any number of clients, turns on keepalive for each, reads until each
/// connection fails, records the loss and closes that connection.
pub fn serve(listen: SocketAddr, opts: SocketOpts, report: &'static Reporter) -> io::Result<()> {
    let sock = Socket::new(
        Domain::for_address(listen),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    // A restarted server must bind while the killed one's connections linger.
    sock.set_reuse_address(true)?;
    sock.bind(&listen.into())?;
    sock.listen(128)?;
    let listener: std::net::TcpListener = sock.into();
    report.emit("listening", json!({ "addr": listen.to_string() }));
    loop {
        let (mut stream, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                report.emit("accept-failed", json!({ "error": error_name(&e) }));
                continue;
            }
        };
        if let Err(e) = opts.apply(&SockRef::from(&stream)) {
            report.emit(
                "setsockopt-failed",
                json!({ "peer": peer.to_string(), "error": error_name(&e) }),
            );
        }
        report.emit("connected", json!({ "peer": peer.to_string() }));
        std::thread::spawn(move || {
            let (error, info) = read_until_lost(&mut stream);
            report.emit(
                "peer-lost",
                json!({ "peer": peer.to_string(), "error": error, "tcp_info": info }),
            );
        });
    }
}

/// How the client reconnects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientOpts {
    pub socket: SocketOpts,
    pub reconnect_interval: Duration,
    pub connect_timeout: Duration,
}

/// The client: connects, reads until the connection fails, records the loss, and retries on a
/// reconnect timer until connected again. Never returns.
pub fn run_client(server: SocketAddr, opts: ClientOpts, report: &'static Reporter) -> ! {
    let mut connected_before = false;
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        if connected_before {
            report.emit("reconnect-attempt", json!({ "attempt": attempt }));
        }
        match connect(server, &opts) {
            Ok(mut stream) => {
                let local = stream
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                let kind = if connected_before {
                    "reconnected"
                } else {
                    "connected"
                };
                report.emit(kind, json!({ "local": local, "attempts": attempt }));
                connected_before = true;
                attempt = 0;
                let (error, info) = read_until_lost(&mut stream);
                report.emit(
                    "peer-lost",
                    json!({ "local": local, "error": error, "tcp_info": info }),
                );
            }
            Err(e) => {
                report.emit(
                    "connect-failed",
                    json!({ "attempt": attempt, "error": error_name(&e) }),
                );
            }
        }
        std::thread::sleep(opts.reconnect_interval);
    }
}

fn connect(server: SocketAddr, opts: &ClientOpts) -> io::Result<TcpStream> {
    let sock = Socket::new(
        Domain::for_address(server),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    opts.socket.apply(&SockRef::from(&sock))?;
    sock.connect_timeout(&server.into(), opts.connect_timeout)?;
    Ok(sock.into())
}
