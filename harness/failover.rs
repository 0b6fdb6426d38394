//! Failover: how a client finds the server (an address, a list, or a name in a hosts file the
//! run controls), the hosts file itself, and which host each client connection landed on.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::record::{Event, Kind, Source};

/// The name a dns failover's hosts file gives the server (`.test` is reserved for testing,
/// RFC 2606, so it never means a real host).
pub const SERVER_NAME: &str = "server.flatline.test";

/// Where a client connects: one address (the default), a list tried in order, or a name
/// looked up in a hosts file at every attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Targets {
    /// Every address, in order, each for the connect timeout, until one answers.
    List { addrs: Vec<SocketAddr> },
    /// `name` in the hosts file at `path` (lines `ADDRESS NAME...`, `#` comments), read again
    /// at every attempt.
    HostsFile {
        path: PathBuf,
        name: String,
        port: u16,
    },
}

impl Targets {
    /// The addresses to try now, in order.
    pub fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        match self {
            Targets::List { addrs } => Ok(addrs.clone()),
            Targets::HostsFile { path, name, port } => {
                let text = std::fs::read_to_string(path)?;
                match lookup(&text, name) {
                    Some(ip) => Ok(vec![SocketAddr::from((ip, *port))]),
                    None => Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{name} is not in {}", path.display()),
                    )),
                }
            }
        }
    }
}

impl Targets {
    /// What a program of the user's gets to find the server: the environment adds
    /// `FLATLINE_SERVER_ADDRS` (a list, comma-separated `ip:port`) or `FLATLINE_HOSTS_FILE`
    /// and `FLATLINE_SERVER_NAME`.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Targets::List { addrs } => vec![("FLATLINE_SERVER_ADDRS", list(addrs))],
            Targets::HostsFile { path, name, .. } => vec![
                ("FLATLINE_HOSTS_FILE", path.display().to_string()),
                ("FLATLINE_SERVER_NAME", name.clone()),
            ],
        }
    }

    /// A program's argument with `{servers}`, `{hosts}` and `{name}` replaced.
    pub fn substitute(&self, arg: &str) -> String {
        match self {
            Targets::List { addrs } => arg.replace("{servers}", &list(addrs)),
            Targets::HostsFile { path, name, .. } => arg
                .replace("{hosts}", &path.display().to_string())
                .replace("{name}", name),
        }
    }
}

fn list(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The first IPv4 address a hosts file gives `name`, as getaddrinfo's files backend reads it.
pub fn lookup(hosts: &str, name: &str) -> Option<Ipv4Addr> {
    hosts.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_whitespace();
        let addr: Ipv4Addr = words.next()?.parse().ok()?;
        words.any(|w| w.eq_ignore_ascii_case(name)).then_some(addr)
    })
}

/// The hosts file's text that points the server's name at `addr`. Every address the lab
/// uses has the same length, so a failover rewrites one byte in place.
pub fn hosts_text(addr: Ipv4Addr) -> String {
    format!("# written by flatline: the server, as a failover scenario resolves it\n{addr} {SERVER_NAME}\n")
}

/// A run's hosts file: a memfd, so there is no file on any disk to leave behind, whatever
/// ends the run. The runner holds it; the client inherits the descriptor (only the client:
/// it is close-on-exec for everything else) and opens it as `/proc/self/fd/N`, which reopens
/// the same file from its start at every connect.
#[derive(Debug)]
pub struct HostsFile {
    fd: std::os::fd::OwnedFd,
}

impl HostsFile {
    /// Makes the file, naming `addr`.
    pub fn create(addr: Ipv4Addr) -> io::Result<HostsFile> {
        use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
        let fd = memfd_create(c"flatline-hosts", MemFdCreateFlag::MFD_CLOEXEC)?;
        let file = HostsFile { fd };
        file.write(&hosts_text(addr))?;
        Ok(file)
    }

    /// The descriptor a child must inherit to read the file.
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }

    /// The path a child that inherited [`HostsFile::fd`] reads the file by.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd()))
    }

    /// Points the server's name at `addr`: one pwrite(2) over text of the same length (every
    /// address the lab gives a server has ten characters), so a reader sees the old text or
    /// the new, never a mix (the two differ in one byte).
    pub fn point(&self, addr: Ipv4Addr) -> io::Result<()> {
        self.write(&hosts_text(addr))
    }

    fn write(&self, text: &str) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let file = File::from(self.fd.try_clone()?);
        let len = file.metadata()?.len();
        if len != 0 && len != text.len() as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a hosts file is rewritten in place only with text of the same length",
            ));
        }
        file.write_all_at(text.as_bytes(), 0)
    }
}

/// Names the host each of the client's connections reached: `standby` when the standby's
/// server accepted it (the same connection number), else `server`. Pure: run on a record's
/// events before it is judged.
pub fn name_hosts(events: &mut [Event]) {
    let accepted: Vec<(u64, &'static str)> = events
        .iter()
        .filter_map(|e| match (&e.kind, e.source, e.conn) {
            (Kind::Connected(_), Source::Standby, Some(n)) => Some((n, "standby")),
            (Kind::Connected(_), Source::Server, Some(n)) => Some((n, "server")),
            _ => None,
        })
        .collect();
    for e in events.iter_mut() {
        let (Kind::Connected(c) | Kind::Reconnected(c)) = &mut e.kind else {
            continue;
        };
        if e.source != Source::Client {
            continue;
        }
        if let Some(&(_, host)) = accepted.iter().find(|(n, _)| Some(*n) == e.conn) {
            c.host = Some(host.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Connected, Ends};

    #[test]
    fn a_hosts_file_is_read_as_getaddrinfo_reads_it() {
        let text = "# comment\n127.0.0.1 localhost\n\n198.18.2.2 other server.flatline.test # x\n";
        assert_eq!(
            lookup(text, "SERVER.flatline.test"),
            Some(Ipv4Addr::new(198, 18, 2, 2))
        );
        assert_eq!(lookup(text, "nowhere.test"), None);
        assert_eq!(
            lookup("#198.18.2.2 server.flatline.test", SERVER_NAME),
            None
        );
        assert_eq!(
            lookup(&hosts_text(crate::lab::STANDBY_ADDR), SERVER_NAME),
            Some(crate::lab::STANDBY_ADDR)
        );
    }

    #[test]
    fn a_program_gets_the_list_or_the_hosts_file() {
        let list = Targets::List {
            addrs: vec![
                "198.18.2.2:7000".parse().unwrap(),
                "198.18.3.2:7000".parse().unwrap(),
            ],
        };
        assert_eq!(
            list.env(),
            [(
                "FLATLINE_SERVER_ADDRS",
                "198.18.2.2:7000,198.18.3.2:7000".into()
            )]
        );
        assert_eq!(
            list.substitute("--hosts={servers}"),
            "--hosts=198.18.2.2:7000,198.18.3.2:7000"
        );
        let file = Targets::HostsFile {
            path: "/tmp/h/hosts".into(),
            name: SERVER_NAME.into(),
            port: 7000,
        };
        assert_eq!(
            file.substitute("{hosts} {name}"),
            "/tmp/h/hosts server.flatline.test"
        );
        assert_eq!(
            file.env()[0],
            ("FLATLINE_HOSTS_FILE", "/tmp/h/hosts".into())
        );
    }

    #[test]
    fn the_hosts_file_moves_in_place_and_is_read_through_proc() {
        let port = 7000;
        let file = HostsFile::create(crate::lab::SERVER_ADDR).unwrap();
        let targets = Targets::HostsFile {
            path: file.path(),
            name: SERVER_NAME.into(),
            port,
        };
        assert_eq!(
            targets.resolve().unwrap(),
            [SocketAddr::from((crate::lab::SERVER_ADDR, port))]
        );
        file.point(crate::lab::STANDBY_ADDR).unwrap();
        assert_eq!(
            targets.resolve().unwrap(),
            [SocketAddr::from((crate::lab::STANDBY_ADDR, port))]
        );
        // A text of another length would need a truncate between two writes: refused.
        assert!(file.point(Ipv4Addr::new(10, 0, 0, 1)).is_err());
        assert_eq!(
            hosts_text(crate::lab::SERVER_ADDR).len(),
            hosts_text(crate::lab::STANDBY_ADDR).len()
        );
    }

    fn connected(t_ms: f64, source: Source, conn: u64, again: bool) -> Event {
        let c = Connected {
            ends: Ends::default(),
            attempts: None,
            slot: None,
            host: None,
        };
        let mut e = Event::new(
            t_ms,
            source,
            if again {
                Kind::Reconnected(c)
            } else {
                Kind::Connected(c)
            },
        );
        e.conn = Some(conn);
        e
    }

    #[test]
    fn each_client_connection_names_the_host_that_accepted_it() {
        let mut events = vec![
            connected(1.0, Source::Server, 1, false),
            connected(1.1, Source::Client, 1, false),
            connected(900.0, Source::Client, 2, true),
            connected(900.1, Source::Standby, 2, false),
            connected(950.0, Source::Client, 3, true),
        ];
        name_hosts(&mut events);
        let hosts: Vec<Option<&str>> = events
            .iter()
            .map(|e| match &e.kind {
                Kind::Connected(c) | Kind::Reconnected(c) => c.host.as_deref(),
                _ => None,
            })
            .collect();
        assert_eq!(
            hosts,
            [None, Some("server"), Some("standby"), None, None],
            "a connection no server reported stays unnamed"
        );
    }
}
