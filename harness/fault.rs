//! Faults as data: what injecting or healing each fault does (a script run in a lab namespace,
//! or a signal to a peer), decided by a pure function; the runner carries it out.

use std::collections::BTreeMap;

use nix::sys::signal::Signal;

use crate::lab::{self, Ns};
use crate::scenario::{
    CablePull, Failover, FailoverMode, Fault, FaultSpec, KillSignal, LinkEnd, Loss, NatTimeout,
    ProcessKill, Reject, RejectWith, Resolve, Side,
};

/// The fault scripts, embedded so the binary runs exactly what scripts/ shows a user.
pub const FIREWALL_SH: &str = include_str!("../scripts/fault/firewall.sh");
pub const CABLE_PULL_SH: &str = include_str!("../scripts/fault/cable-pull.sh");
pub const NAT_SH: &str = include_str!("../scripts/fault/nat.sh");
pub const FORGET_CONNECTIONS_SH: &str = include_str!("../scripts/fault/forget-connections.sh");
pub const FAILOVER_SH: &str = include_str!("../scripts/fault/failover.sh");

pub use crate::plan::Action;

/// One concrete thing to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// Run `script` with `sh` inside `ns`, with these arguments.
    Script {
        ns: Ns,
        name: &'static str,
        script: &'static str,
        args: Vec<String>,
    },
    /// Write a sysctl inside `ns` (the runner does it itself, so it knows when the kernel
    /// holds the value: write(2) has returned).
    Sysctl {
        ns: Ns,
        key: &'static str,
        value: String,
    },
    /// Send a signal to the peer process.
    Signal(Side, nix::sys::signal::Signal),
    /// Start the peer process again.
    Restart(Side),
    /// Point the server's name at `to` in the run's hosts file (the runner writes it).
    Hosts { to: std::net::Ipv4Addr },
}

impl Mechanism {
    /// Whether it takes effect while its call runs (a signal: the peer may be gone before
    /// kill(2) returns), so the moment before the call is when it is in effect; otherwise it
    /// is in effect once the call returns (a script's nft commit or link change is done).
    pub fn acts_during_call(&self) -> bool {
        matches!(self, Mechanism::Signal(..))
    }

    /// The command a user would type to do the same by hand.
    pub fn describe(&self) -> String {
        match self {
            Mechanism::Script { ns, name, args, .. } => {
                format!("(netns {ns}) sh scripts/fault/{name}.sh {}", args.join(" "))
            }
            Mechanism::Sysctl { ns, key, value } => {
                format!("(netns {ns}) sysctl -w {key}={value}")
            }
            Mechanism::Signal(side, sig) => {
                format!("kill -{} <{side} pid>", &sig.as_str()[3..])
            }
            Mechanism::Restart(side) => format!("restart the {side}"),
            Mechanism::Hosts { to } => format!(
                "point {} at {to} in the run's hosts file",
                crate::failover::SERVER_NAME
            ),
        }
    }
}

/// A program the lab runs, and the Debian package that has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tool {
    pub program: &'static str,
    pub package: &'static str,
}

pub const IP: Tool = Tool {
    program: "ip",
    package: "iproute2",
};
pub const SS: Tool = Tool {
    program: "ss",
    package: "iproute2",
};
/// `[wire] delay`: the xtables NFQUEUE target (nf_tables backend), as this kernel has no nft
/// `queue` expression.
pub const IPTABLES: Tool = Tool {
    program: "iptables",
    package: "iptables",
};
pub const NFT: Tool = Tool {
    program: "nft",
    package: "nftables",
};
pub const SH: Tool = Tool {
    program: "sh",
    package: "dash",
};

impl Mechanism {
    /// The programs it runs (its script's interpreter and the commands the script calls).
    pub fn tools(&self) -> Vec<Tool> {
        match self {
            Mechanism::Script { name, .. } => match *name {
                "firewall" | "nat" => vec![SH, NFT],
                "cable-pull" | "failover" => vec![SH, IP],
                "forget-connections" => vec![SH, SS],
                _ => vec![SH],
            },
            Mechanism::Sysctl { .. }
            | Mechanism::Signal(..)
            | Mechanism::Restart(_)
            | Mechanism::Hosts { .. } => vec![],
        }
    }
}

/// The programs a scenario needs, each with the faults that need it (the lab itself needs
/// `ip`).
pub fn tools(faults: &[Fault]) -> BTreeMap<Tool, Vec<String>> {
    let mut needed: BTreeMap<Tool, Vec<String>> = BTreeMap::new();
    needed.entry(IP).or_default();
    for f in faults {
        let mut steps = mechanism(f, Action::Inject);
        steps.extend(mechanism(f, Action::Heal));
        if f.kind() == crate::scenario::FaultKind::NatTimeout {
            steps.push(nat_setup(f));
        }
        for tool in steps.iter().flat_map(Mechanism::tools) {
            let ids = needed.entry(tool).or_default();
            if !ids.contains(&f.id) {
                ids.push(f.id.clone());
            }
        }
    }
    needed
}

/// Whether `program` is an executable file in one of the directories of `path` (a PATH value).
pub fn on_path(program: &str, path: &std::ffi::OsStr) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path).any(|dir| {
        std::fs::metadata(dir.join(program))
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}

/// What is missing of `needed` on `path`, as a message that says how to install it; None when
/// everything is there.
pub fn missing_tools(
    needed: &BTreeMap<Tool, Vec<String>>,
    path: &std::ffi::OsStr,
) -> Option<String> {
    let missing: Vec<(&Tool, &Vec<String>)> = needed
        .iter()
        .filter(|(t, _)| !on_path(t.program, path))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let what = missing
        .iter()
        .map(|(t, ids)| {
            let users = if ids.is_empty() {
                "the lab".to_owned()
            } else {
                format!(
                    "fault{} `{}`",
                    if ids.len() > 1 { "s" } else { "" },
                    ids.join("`, `")
                )
            };
            format!("`{}` (needed by {users})", t.program)
        })
        .collect::<Vec<_>>()
        .join(", ");
    let packages: std::collections::BTreeSet<&str> =
        missing.iter().map(|(t, _)| t.package).collect();
    Some(format!(
        "{what} not found in PATH: install it (apt-get install {})",
        packages.into_iter().collect::<Vec<_>>().join(" ")
    ))
}

/// Runs a script mechanism in its namespace; returns what it printed, or None for mechanisms
/// that are not scripts (signals and restarts belong to whoever owns the peers).
pub fn run_script(lab: &lab::Lab, mechanism: &Mechanism) -> Result<Option<String>, lab::LabError> {
    let Some((ns, cmd)) = script_command(lab, mechanism) else {
        return Ok(None);
    };
    // Errors name the script as a user would run it, not its embedded text.
    lab.run(ns, cmd, "")
        .map(Some)
        .map_err(|e| e.naming(mechanism.describe()))
}

/// [`run_script`] with the script's run and reaping off the caller's runtime
/// ([`lab::Lab::run_async`]): the runner's one thread serves the other labs meanwhile.
pub async fn run_script_async(
    lab: &lab::Lab,
    mechanism: &Mechanism,
) -> Result<Option<String>, lab::LabError> {
    let Some((ns, cmd)) = script_command(lab, mechanism) else {
        return Ok(None);
    };
    lab.run_async(ns, cmd, "")
        .await
        .map(Some)
        .map_err(|e| e.naming(mechanism.describe()))
}

/// The shell command that runs a script mechanism in its namespace; None for the others.
fn script_command(lab: &lab::Lab, mechanism: &Mechanism) -> Option<(Ns, std::process::Command)> {
    let Mechanism::Script {
        ns,
        name,
        script,
        args,
    } = mechanism
    else {
        return None;
    };
    let mut cmd = lab.command(*ns, "sh", &[]);
    cmd.arg("-c")
        .arg(script)
        .arg(format!("flatline-{name}"))
        .args(args);
    Some((*ns, cmd))
}

/// The commands a user would type to do the same by hand, in order.
pub fn describe(steps: &[Mechanism]) -> String {
    steps
        .iter()
        .map(Mechanism::describe)
        .collect::<Vec<_>>()
        .join(" && ")
}

/// Sets the wire up as a NAT for the scenario's nat-timeout fault; run before the peers start.
pub fn nat_setup(fault: &Fault) -> Mechanism {
    Mechanism::Script {
        ns: Ns::Wire,
        name: "nat",
        script: NAT_SH,
        args: vec![
            "setup".into(),
            format!("{}/24", lab::CLIENT_NET),
            lab::WIRE_SERVER_LINK.into(),
            match fault.what {
                FaultSpec::NatTimeout(NatTimeout { reset: true, .. }) => "reset",
                _ => "drop",
            }
            .into(),
        ],
    }
}

/// The sysctl a NAT timeout sets (scripts/fault/nat.sh inject/heal write the same), and
/// Linux's default for it.
pub const CT_TIMEOUT_ESTABLISHED: &str = "net.netfilter.nf_conntrack_tcp_timeout_established";
pub const CT_TIMEOUT_ESTABLISHED_DEFAULT: u32 = 432_000;

/// What `action` of `fault` does, step by step.
pub fn mechanism(fault: &Fault, action: Action) -> Vec<Mechanism> {
    match fault.what {
        FaultSpec::NatTimeout(_) => match action {
            Action::Inject => vec![single(fault, action)],
            // The rules' counters first (what the NAT dropped while it forgot flows), then
            // the timeout back: the heal is in effect at the write.
            Action::Heal => vec![
                Mechanism::Script {
                    ns: Ns::Wire,
                    name: "nat",
                    script: NAT_SH,
                    args: vec!["counters".into()],
                },
                single(fault, action),
            ],
        },
        FaultSpec::HostReboot(h) => {
            // The host drops off the network first, so nothing its dying stack sends arrives.
            let unplug = firewall(fault, action, "drop");
            let ns = match h.target {
                Side::Client => Ns::Client,
                Side::Server => Ns::Server,
            };
            match action {
                Action::Inject => vec![
                    unplug,
                    Mechanism::Signal(h.target, Signal::SIGKILL),
                    Mechanism::Script {
                        ns,
                        name: "forget-connections",
                        script: FORGET_CONNECTIONS_SH,
                        args: vec![],
                    },
                ],
                Action::Heal => vec![Mechanism::Restart(h.target), unplug],
            }
        }
        FaultSpec::Failover(fo) => failover(fault, fo, action),
        _ => vec![single(fault, action)],
    }
}

/// A failover (never healed): the address moves to the standby, or the old address goes dark
/// and, with a hosts file, the server's name points at the standby's address.
fn failover(fault: &Fault, fo: Failover, action: Action) -> Vec<Mechanism> {
    if action == Action::Heal {
        return vec![];
    }
    match fo.mode {
        FailoverMode::AddressMove => vec![Mechanism::Script {
            ns: Ns::Wire,
            name: "failover",
            script: FAILOVER_SH,
            args: vec![
                "move".into(),
                lab::WIRE_SERVER_LINK.into(),
                lab::SERVER_ADDR.to_string(),
                lab::STANDBY_ADDR.to_string(),
            ],
        }],
        FailoverMode::Dns => {
            let mut steps = vec![firewall(fault, action, "drop")];
            if fo.resolver() == Some(Resolve::HostsFile) {
                steps.push(Mechanism::Hosts {
                    to: lab::STANDBY_ADDR,
                });
            }
            steps
        }
    }
}

/// The firewall script on the fault's own table, `verdict` when injecting.
fn firewall(fault: &Fault, action: Action, verdict: &str) -> Mechanism {
    let table = fault.nft_table().expect("firewall faults have a table");
    let name = table.trim_start_matches("flatline_").to_owned();
    let mut args = vec![action.as_str().to_owned(), name];
    if action == Action::Inject {
        args.extend([
            lab::CLIENT_ADDR.to_string(),
            lab::SERVER_ADDR.to_string(),
            fault
                .what
                .direction()
                .unwrap_or_default()
                .as_str()
                .to_owned(),
            verdict.to_owned(),
        ]);
        if let FaultSpec::Loss(Loss { percent, .. }) = fault.what {
            args.push(percent.0.to_string());
        }
    }
    Mechanism::Script {
        ns: Ns::Wire,
        name: "firewall",
        script: FIREWALL_SH,
        args,
    }
}

fn single(fault: &Fault, action: Action) -> Mechanism {
    match fault.what {
        FaultSpec::ProcessKill(ProcessKill { target, signal }) => match action {
            Action::Inject => Mechanism::Signal(
                target,
                match signal {
                    KillSignal::Kill => Signal::SIGKILL,
                    KillSignal::Term => Signal::SIGTERM,
                },
            ),
            Action::Heal => Mechanism::Restart(target),
        },
        FaultSpec::Freeze(f) => Mechanism::Signal(
            f.target,
            match action {
                Action::Inject => Signal::SIGSTOP,
                Action::Heal => Signal::SIGCONT,
            },
        ),
        FaultSpec::NatTimeout(n) => Mechanism::Sysctl {
            ns: Ns::Wire,
            key: CT_TIMEOUT_ESTABLISHED,
            value: match action {
                Action::Inject => (n.timeout.as_millis() / 1000).to_string(),
                Action::Heal => CT_TIMEOUT_ESTABLISHED_DEFAULT.to_string(),
            },
        },
        FaultSpec::HostReboot(_) => unreachable!("host-reboot is composed in mechanism()"),
        FaultSpec::Failover(_) => unreachable!("failover is composed in mechanism()"),
        FaultSpec::FirewallDrop(_) => firewall(fault, action, "drop"),
        FaultSpec::Loss(_) => firewall(fault, action, "loss"),
        FaultSpec::Reject(Reject { with, .. }) => firewall(
            fault,
            action,
            match with {
                RejectWith::TcpReset => "tcp-reset",
                RejectWith::IcmpHostUnreachable => "icmp-host",
                RejectWith::IcmpPortUnreachable => "icmp-port",
            },
        ),
        FaultSpec::CablePull(CablePull { target, end }) => {
            let (ns, dev, gateway) = match (end, target) {
                (LinkEnd::Wire, Side::Server) => (Ns::Wire, lab::WIRE_SERVER_LINK, None),
                (LinkEnd::Wire, Side::Client) => (Ns::Wire, lab::WIRE_CLIENT_LINK, None),
                (LinkEnd::Peer, Side::Server) => {
                    (Ns::Server, lab::SERVER_LINK, Some(lab::WIRE_SERVER_ADDR))
                }
                (LinkEnd::Peer, Side::Client) => {
                    (Ns::Client, lab::CLIENT_LINK, Some(lab::WIRE_CLIENT_ADDR))
                }
            };
            let mut args = vec![action.as_str().to_owned(), dev.to_owned()];
            if let (Action::Heal, Some(gw)) = (action, gateway) {
                args.push(gw.to_string());
            }
            Mechanism::Script {
                ns,
                name: "cable-pull",
                script: CABLE_PULL_SH,
                args,
            }
        }
    }
}

/// Sums the packet counters in a heal's listing of its nftables rules, if it printed any.
pub fn packets_matched(listing: &str) -> Option<u64> {
    let mut words = listing.split_whitespace();
    let mut total = None;
    while let Some(w) = words.next() {
        if w == "packets" {
            if let Some(n) = words.next().and_then(|n| n.parse::<u64>().ok()) {
                *total.get_or_insert(0) += n;
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::Dur;
    use crate::scenario::{Direction, FirewallDrop, Freeze, HostReboot, Percent};

    fn fault(what: FaultSpec) -> Fault {
        Fault {
            id: "f-1".into(),
            at: Dur::from_millis(1000),
            heal: Some(Dur::from_millis(2000)),
            what,
        }
    }

    fn cable(target: Side, end: LinkEnd) -> Fault {
        fault(FaultSpec::CablePull(CablePull { target, end }))
    }

    #[test]
    fn cable_pull_defaults_to_the_wire_side_of_the_server_link() {
        let m = mechanism(&cable(Side::Server, LinkEnd::Wire), Action::Inject);
        assert_eq!(
            describe(&m),
            "(netns wire) sh scripts/fault/cable-pull.sh inject w1"
        );
        let m = mechanism(&cable(Side::Client, LinkEnd::Peer), Action::Heal);
        assert_eq!(
            describe(&m),
            "(netns client) sh scripts/fault/cable-pull.sh heal c0 198.18.1.1"
        );
    }

    #[test]
    fn firewall_drop_heals_exactly_its_own_table() {
        let f = fault(FaultSpec::FirewallDrop(FirewallDrop {
            direction: Direction::Both,
        }));
        assert_eq!(
            describe(&mechanism(&f, Action::Inject)),
            "(netns wire) sh scripts/fault/firewall.sh inject f_1 198.18.1.2 198.18.2.2 both drop"
        );
        assert_eq!(
            describe(&mechanism(&f, Action::Heal)),
            "(netns wire) sh scripts/fault/firewall.sh heal f_1"
        );
    }

    #[test]
    fn process_kill_pairs_kill_with_restart() {
        let f = fault(FaultSpec::ProcessKill(ProcessKill {
            target: Side::Client,
            signal: KillSignal::Kill,
        }));
        assert_eq!(
            mechanism(&f, Action::Inject),
            vec![Mechanism::Signal(Side::Client, Signal::SIGKILL)]
        );
        assert_eq!(
            mechanism(&f, Action::Heal),
            vec![Mechanism::Restart(Side::Client)]
        );
        let freeze = fault(FaultSpec::Freeze(Freeze {
            target: Side::Client,
        }));
        assert_eq!(
            describe(&mechanism(&freeze, Action::Inject)),
            "kill -STOP <client pid>"
        );
        assert_eq!(
            describe(&mechanism(&freeze, Action::Heal)),
            "kill -CONT <client pid>"
        );
    }

    #[test]
    fn host_reboot_unplugs_before_killing_and_forgetting() {
        let f = fault(FaultSpec::HostReboot(HostReboot {
            target: Side::Server,
        }));
        assert_eq!(
            describe(&mechanism(&f, Action::Inject)),
            "(netns wire) sh scripts/fault/firewall.sh inject f_1_down 198.18.1.2 198.18.2.2 both drop \
             && kill -KILL <server pid> && (netns server) sh scripts/fault/forget-connections.sh "
        );
        assert_eq!(
            describe(&mechanism(&f, Action::Heal)),
            "restart the server && (netns wire) sh scripts/fault/firewall.sh heal f_1_down"
        );
    }

    #[test]
    fn counters_are_summed() {
        let listing = "ip saddr 1 counter packets 3 bytes 180 drop\nip saddr 2 counter packets 4 bytes 1 drop";
        assert_eq!(packets_matched(listing), Some(7));
        assert_eq!(packets_matched(""), None);
    }

    #[test]
    fn reject_and_loss_name_their_verdict() {
        let f = fault(FaultSpec::Reject(Reject {
            direction: Direction::ToServer,
            with: RejectWith::IcmpHostUnreachable,
        }));
        assert!(describe(&mechanism(&f, Action::Inject)).ends_with("to-server icmp-host"));
        let f = fault(FaultSpec::Loss(Loss {
            direction: Direction::ToServer,
            percent: Percent(20),
        }));
        assert!(describe(&mechanism(&f, Action::Inject)).ends_with("to-server loss 20"));
    }

    #[test]
    fn every_tool_a_scenario_needs_is_named_with_its_package() {
        let mut reboot = fault(FaultSpec::HostReboot(HostReboot {
            target: Side::Server,
        }));
        reboot.id = "reboot".into();
        let kill = fault(FaultSpec::ProcessKill(ProcessKill {
            target: Side::Server,
            signal: KillSignal::Kill,
        }));
        let needed = tools(&[kill, reboot]);
        let programs: Vec<&str> = needed.keys().map(|t| t.program).collect();
        assert_eq!(programs, ["ip", "nft", "sh", "ss"]);
        assert_eq!(needed[&NFT], ["reboot"]);
        let dir = tempfile::tempdir().unwrap();
        for p in ["ip", "sh", "ss"] {
            std::os::unix::fs::symlink("/bin/true", dir.path().join(p)).unwrap();
        }
        let msg = missing_tools(&needed, dir.path().as_os_str()).unwrap();
        assert_eq!(
            msg,
            "`nft` (needed by fault `reboot`) not found in PATH: install it \
             (apt-get install nftables)"
        );
        std::os::unix::fs::symlink("/bin/true", dir.path().join("nft")).unwrap();
        assert_eq!(missing_tools(&needed, dir.path().as_os_str()), None);
    }
}
