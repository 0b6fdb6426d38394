//! Faults as data: what injecting or healing each fault does (a script run in a lab namespace,
//! or a signal to a peer), decided by a pure function; the runner carries it out.

use crate::lab::{self, Ns};
use crate::scenario::{Direction, Fault, FaultKind, LinkEnd, Side};

/// The fault scripts, embedded so the binary runs exactly what scripts/ shows a user.
pub const FIREWALL_DROP_SH: &str = include_str!("../scripts/fault/firewall-drop.sh");
pub const CABLE_PULL_SH: &str = include_str!("../scripts/fault/cable-pull.sh");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Inject,
    Heal,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Inject => "inject",
            Action::Heal => "heal",
        }
    }
}

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
    /// SIGKILL the peer process.
    Kill(Side),
    /// Start the peer process again.
    Restart(Side),
}

impl Mechanism {
    /// The command a user would type to do the same by hand.
    pub fn describe(&self) -> String {
        match self {
            Mechanism::Script { ns, name, args, .. } => {
                format!("(netns {ns}) sh scripts/fault/{name}.sh {}", args.join(" "))
            }
            Mechanism::Kill(side) => format!("kill -KILL <{side} pid>"),
            Mechanism::Restart(side) => format!("restart the {side}"),
        }
    }
}

/// A name usable in nftables identifiers.
fn ident(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// What `action` of `fault` does.
pub fn mechanism(fault: &Fault, action: Action) -> Mechanism {
    let script = |ns, name, script, args: Vec<String>| Mechanism::Script {
        ns,
        name,
        script,
        args,
    };
    match fault.kind {
        FaultKind::ProcessKill => match action {
            Action::Inject => Mechanism::Kill(fault.target),
            Action::Heal => Mechanism::Restart(fault.target),
        },
        FaultKind::FirewallDrop => {
            let mut args = vec![action.as_str().to_owned(), ident(&fault.id)];
            if action == Action::Inject {
                args.extend([
                    lab::CLIENT_ADDR.to_string(),
                    lab::SERVER_ADDR.to_string(),
                    match fault.direction {
                        Direction::Both => "both",
                        Direction::ToServer => "to-server",
                        Direction::ToClient => "to-client",
                    }
                    .to_owned(),
                ]);
            }
            script(Ns::Wire, "firewall-drop", FIREWALL_DROP_SH, args)
        }
        FaultKind::CablePull => {
            let (ns, dev, gateway) = match (fault.end, fault.target) {
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
            script(ns, "cable-pull", CABLE_PULL_SH, args)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::Dur;

    fn fault(kind: FaultKind, target: Side, end: LinkEnd) -> Fault {
        Fault {
            id: "f-1".into(),
            kind,
            at: Dur::from_millis(1000),
            heal: Some(Dur::from_millis(2000)),
            target,
            direction: Direction::Both,
            end,
        }
    }

    #[test]
    fn cable_pull_defaults_to_the_wire_side_of_the_server_link() {
        let m = mechanism(
            &fault(FaultKind::CablePull, Side::Server, LinkEnd::Wire),
            Action::Inject,
        );
        assert_eq!(
            m.describe(),
            "(netns wire) sh scripts/fault/cable-pull.sh inject w1"
        );
        let m = mechanism(
            &fault(FaultKind::CablePull, Side::Client, LinkEnd::Peer),
            Action::Heal,
        );
        assert_eq!(
            m.describe(),
            "(netns client) sh scripts/fault/cable-pull.sh heal c0 198.18.1.1"
        );
    }

    #[test]
    fn firewall_drop_heals_exactly_its_own_table() {
        let f = fault(FaultKind::FirewallDrop, Side::Server, LinkEnd::Wire);
        assert_eq!(
            mechanism(&f, Action::Inject).describe(),
            "(netns wire) sh scripts/fault/firewall-drop.sh inject f_1 198.18.1.2 198.18.2.2 both"
        );
        assert_eq!(
            mechanism(&f, Action::Heal).describe(),
            "(netns wire) sh scripts/fault/firewall-drop.sh heal f_1"
        );
    }

    #[test]
    fn process_kill_pairs_kill_with_restart() {
        let f = fault(FaultKind::ProcessKill, Side::Client, LinkEnd::Wire);
        assert_eq!(mechanism(&f, Action::Inject), Mechanism::Kill(Side::Client));
        assert_eq!(
            mechanism(&f, Action::Heal),
            Mechanism::Restart(Side::Client)
        );
    }
}
