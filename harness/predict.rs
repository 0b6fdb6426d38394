//! `flatline predict` without a scenario: one side's settings and a fault from flags, checked
//! as a scenario file is (the kernel's limits, the same fault names), for the model.

use std::fmt;

use crate::duration::Dur;
use crate::keepalive::{keep_secs, MAX_KEEP_COUNT};
use crate::model::{FaultModel, InFlight, KeepaliveMs, Os, Role, SideModel};
use crate::scenario::FaultKind;

/// The flags of `flatline predict` that describe one case.
#[derive(Clone, Debug, clap::Args)]
pub struct Flags {
    /// linux, windows (10 probes), windows-legacy (5 probes) or macos.
    #[arg(long, default_value = "linux", value_parser = Os::parse)]
    pub os: Os,
    /// Without a scenario: keepalive `off` or IDLE_MS/INTERVAL_MS[/COUNT] (Linux and macOS
    /// take whole seconds; Windows milliseconds).
    #[arg(long)]
    pub keepalive_ms: Option<String>,
    /// Without a scenario: TCP_USER_TIMEOUT in ms (0: none).
    #[arg(long, default_value_t = 0)]
    pub user_timeout_ms: u64,
    /// Without a scenario: application heartbeat INTERVAL_MS/MISSES, this side sending the
    /// PINGs (as the reference client does).
    #[arg(long)]
    pub heartbeat: Option<String>,
    /// Without a scenario: what this side does: idle, writer or reader.
    #[arg(long, default_value = "idle", value_parser = Role::parse)]
    pub role: Role,
    /// Without a scenario: ms between records for a writer or reader.
    #[arg(long, default_value_t = crate::scenario::Traffic::default().interval_ms)]
    pub traffic_interval_ms: u64,
    /// Without a scenario: net.ipv4.tcp_retries2 (1 to 255).
    #[arg(long, default_value_t = crate::lab::DEFAULT_TCP_RETRIES2.into())]
    pub tcp_retries2: u64,
    /// Without a scenario: the fault, by its scenario name, as the other side's failure:
    /// cable-pull[:wire|peer|own-wire|own-local] (the other side's cable at the wire's end or at
    /// its own; this side's own cable), firewall-drop, reject[:tcp-reset|icmp-host-unreachable|icmp-port-unreachable],
    /// process-kill[:unread], freeze, host-reboot:DOWNTIME, nat-timeout:TIMEOUT[:reset] or
    /// loss:PERCENT (durations as in a scenario: 5s, 350s).
    #[arg(long)]
    pub fault: Option<String>,
}

impl Flags {
    /// The side and the fault the flags describe, or what is wrong with them.
    pub fn case(&self) -> Result<(SideModel, FaultModel), String> {
        let Some(fault) = &self.fault else {
            return Err(
                "give scenario files, or --fault (and settings) to predict one case".into(),
            );
        };
        let fault = fault_model(fault)?;
        let heartbeat = match &self.heartbeat {
            None => None,
            Some(text) => match numbers("heartbeat", text)?[..] {
                [interval, misses] => {
                    if interval == 0 {
                        return Err(format!(
                            "--heartbeat `{text}`: the interval must be at least 1ms"
                        ));
                    }
                    if !(1..=1000).contains(&misses) {
                        return Err(format!(
                            "--heartbeat `{text}`: misses must be between 1 and 1000"
                        ));
                    }
                    Some((interval, misses as u32))
                }
                _ => return Err(format!("--heartbeat `{text}`: expected INTERVAL_MS/MISSES")),
            },
        };
        if self.user_timeout_ms > i32::MAX as u64 {
            return Err(format!(
                "--user-timeout-ms {}: above the kernel's limit of {}ms",
                self.user_timeout_ms,
                i32::MAX
            ));
        }
        if self.traffic_interval_ms == 0 {
            return Err("--traffic-interval-ms: must be at least 1".into());
        }
        let tcp_retries2 = u8::try_from(self.tcp_retries2)
            .ok()
            .filter(|&n| n >= 1)
            .ok_or("--tcp-retries2: must be between 1 and 255")?;
        let side = SideModel {
            keepalive: self.keepalive()?,
            user_timeout_ms: self.user_timeout_ms,
            heartbeat,
            // The side predicted sends the PINGs, as the reference client does.
            pings: heartbeat.is_some(),
            role: self.role,
            traffic_interval_ms: self.traffic_interval_ms,
            record_bytes: u64::from(crate::scenario::Traffic::default().record_bytes),
            tcp_retries2,
            peer_rcvbuf_max_bytes: crate::model::RCVBUF_MAX_DEFAULT_BYTES,
            added_rtt_ms: (0.0, 0.0),
            icmp_tokens_ms: None,
            rto_after_reconnect_ms: None,
            srtt_after_reconnect_ms: None,
        };
        Ok((side, fault))
    }

    fn keepalive(&self) -> Result<Option<KeepaliveMs>, String> {
        let text = match self.keepalive_ms.as_deref() {
            None | Some("off") => return Ok(None),
            Some(text) => text,
        };
        let (idle_ms, interval_ms, count) = match numbers("keepalive-ms", text)?[..] {
            [idle, interval] => (idle, interval, None),
            [idle, interval, count] => (idle, interval, Some(count)),
            _ => {
                return Err(format!(
                    "--keepalive-ms `{text}`: expected IDLE_MS/INTERVAL_MS[/COUNT]"
                ))
            }
        };
        let flag = |m: String| format!("--keepalive-ms `{text}`: {m}");
        if self.os == Os::Windows || self.os == Os::WindowsLegacy {
            // SIO_KEEPALIVE_VALS takes milliseconds; zero turns the timer off.
            if idle_ms == 0 || interval_ms == 0 {
                return Err(flag("idle and interval must be at least 1ms".into()));
            }
        } else {
            for ms in [idle_ms, interval_ms] {
                keep_secs(Dur::from_millis(ms)).map_err(flag)?;
            }
        }
        if let Some(n) = count {
            if !(1..=u64::from(MAX_KEEP_COUNT)).contains(&n) {
                return Err(flag(format!(
                    "the count must be between 1 and {MAX_KEEP_COUNT} (the kernel refuses {n} \
                     with EINVAL)"
                )));
            }
        }
        Ok(Some(KeepaliveMs {
            idle_ms,
            interval_ms,
            count: self.os.probes(count.map(|c| c as u32)),
        }))
    }
}

fn numbers(flag: &str, text: &str) -> Result<Vec<u64>, String> {
    text.split('/')
        .map(|p| {
            p.parse::<u64>()
                .map_err(|_| format!("--{flag} `{text}`: expected whole numbers separated by /"))
        })
        .collect()
}

/// A fault by its scenario name, as the side predicted for experiences it (the other side's
/// process or host fails; the wire fails for both).
pub fn fault_model(text: &str) -> Result<FaultModel, String> {
    let f = FaultFlag::parse(text)?;
    Ok(match f.kind {
        FaultKind::FirewallDrop => {
            f.only(&[])?;
            FaultModel::Silence
        }
        // The other side's cable, pulled at the wire (the default end): the router's route
        // to it goes with the link.
        // `own-wire`, `own-local`: this side's own cable instead, at the wire's end or in
        // its namespace (K9a).
        // `peer`: the other side's own end of its link instead (`end = "peer"`): the router
        // keeps its route and its neighbour entry for the peer fails (K9a).
        FaultKind::CablePull => {
            f.only(&["wire", "peer", "own-wire", "own-local"])?;
            match f.arg {
                Some("peer") => FaultModel::PeerEnd,
                Some("own-wire") => FaultModel::OwnLinkWire,
                // The phase of its writes against the pull is unknown here: either path.
                Some("own-local") => FaultModel::OwnLinkLocal {
                    in_flight: InFlight::Maybe,
                },
                _ => FaultModel::NoRoute,
            }
        }
        FaultKind::Freeze => {
            f.only(&[])?;
            FaultModel::PeerFrozen
        }
        FaultKind::ProcessKill => {
            f.only(&["unread"])?;
            FaultModel::PeerExited {
                unread: f.arg == Some("unread"),
            }
        }
        FaultKind::Reject => {
            f.only(&[
                "tcp-reset",
                "icmp-host-unreachable",
                "icmp-port-unreachable",
            ])?;
            match f.arg {
                None | Some("tcp-reset") => FaultModel::Reset,
                Some(with) => FaultModel::Icmp {
                    port: with == "icmp-port-unreachable",
                },
            }
        }
        FaultKind::HostReboot => FaultModel::HostReboot {
            down_ms: f.duration("its downtime", "5s")?.as_millis(),
        },
        FaultKind::NatTimeout => f.nat()?,
        FaultKind::Failover => {
            f.only(&["address-move", "dns"])?;
            // As the client sees it: an address move answers its next packet with RST
            // (the standby has no socket for it); a dns failover leaves the old address dark.
            match f.arg {
                Some("dns") => FaultModel::Silence,
                _ => FaultModel::Reset,
            }
        }
        FaultKind::Loss => f.loss()?,
    })
}

/// `--fault KIND[:ARG[:EXTRA]]`, split.
struct FaultFlag<'a> {
    text: &'a str,
    kind: FaultKind,
    arg: Option<&'a str>,
    extra: Option<&'a str>,
}

impl<'a> FaultFlag<'a> {
    fn parse(text: &'a str) -> Result<Self, String> {
        let mut parts = text.split(':');
        let name = parts.next().unwrap_or_default();
        let kind = FaultKind::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .ok_or_else(|| {
                let kinds: Vec<&str> = FaultKind::ALL.iter().map(|k| k.as_str()).collect();
                format!(
                    "--fault `{text}`: unknown kind: use one of {}",
                    kinds.join(", ")
                )
            })?;
        Ok(FaultFlag {
            text,
            kind,
            arg: parts.next(),
            extra: parts.next(),
        })
    }

    fn error(&self, m: impl fmt::Display) -> String {
        format!("--fault `{}`: {m}", self.text)
    }

    /// The argument, if any, must be one of `ok`; nothing may follow it.
    fn only(&self, ok: &[&str]) -> Result<(), String> {
        match (self.arg, self.extra) {
            (Some(a), _) if !ok.contains(&a) => Err(self.error(format!(
                "`{a}` does not apply to {}{}",
                self.kind.as_str(),
                if ok.is_empty() {
                    String::new()
                } else {
                    format!(" (use {})", ok.join(" or "))
                }
            ))),
            (_, Some(e)) => Err(self.error(format!("`{e}` does not apply"))),
            _ => Ok(()),
        }
    }

    fn needed(&self, what: &str, example: &str) -> Result<&'a str, String> {
        let name = self.kind.as_str();
        self.arg
            .ok_or_else(|| self.error(format!("{name} needs {what}, e.g. {name}:{example}")))
    }

    fn duration(&self, what: &str, example: &str) -> Result<Dur, String> {
        if self.extra.is_some() {
            self.only(&[])?;
        }
        Dur::parse(self.needed(what, example)?).map_err(|m| self.error(m))
    }

    fn nat(&self) -> Result<FaultModel, String> {
        let timeout = Dur::parse(self.needed("its timeout", "350s")?).map_err(|m| self.error(m))?;
        let secs = keep_secs(timeout).map_err(|m| self.error(m))?;
        let reset = match self.extra {
            None => false,
            Some("reset") => true,
            Some(other) => {
                return Err(self.error(format!("only `reset` may follow, not `{other}`")))
            }
        };
        Ok(FaultModel::NatTimeout {
            timeout_ms: u64::from(secs) * 1000,
            reset,
            peer_period_ms: None,
        })
    }

    fn loss(&self) -> Result<FaultModel, String> {
        if self.extra.is_some() {
            self.only(&[])?;
        }
        match self.needed("a percentage", "20")?.parse::<u64>() {
            Ok(100) => Err(self.error("100 % loss drops every packet: use firewall-drop")),
            Ok(n @ 1..=99) => Ok(FaultModel::Loss { percent: n as u8 }),
            _ => Err(self.error("the percentage must be 1 to 99")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        flags: Flags,
    }

    fn case(args: &[&str]) -> Result<(SideModel, FaultModel), String> {
        let mut argv = vec!["predict"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .flags
            .case()
    }

    #[test]
    fn scenario_fault_names_are_the_fault_names() {
        assert_eq!(fault_model("cable-pull"), Ok(FaultModel::NoRoute));
        assert_eq!(fault_model("cable-pull:wire"), Ok(FaultModel::NoRoute));
        assert_eq!(fault_model("cable-pull:peer"), Ok(FaultModel::PeerEnd));
        assert_eq!(
            fault_model("cable-pull:own-wire"),
            Ok(FaultModel::OwnLinkWire)
        );
        assert_eq!(
            fault_model("cable-pull:own-local"),
            Ok(FaultModel::OwnLinkLocal {
                in_flight: InFlight::Maybe
            })
        );
        assert!(fault_model("cable-pull:own").is_err());
        assert_eq!(fault_model("firewall-drop"), Ok(FaultModel::Silence));
        assert_eq!(fault_model("reject"), Ok(FaultModel::Reset));
        assert_eq!(
            fault_model("reject:icmp-port-unreachable"),
            Ok(FaultModel::Icmp { port: true })
        );
        assert_eq!(
            fault_model("host-reboot:5s"),
            Ok(FaultModel::HostReboot { down_ms: 5000 })
        );
        assert_eq!(fault_model("loss:20"), Ok(FaultModel::Loss { percent: 20 }));
        // Regression: the model's own names were the only ones accepted.
        assert!(fault_model("silence")
            .unwrap_err()
            .contains("unknown kind: use one of"));
        assert!(fault_model("loss:100")
            .unwrap_err()
            .contains("use firewall-drop"));
        assert!(fault_model("nat-timeout:0s")
            .unwrap_err()
            .contains("between 1s"));
        assert!(fault_model("freeze:x")
            .unwrap_err()
            .contains("does not apply"));
    }

    #[test]
    fn flags_are_checked_as_a_scenario_is() {
        // Regression: each of these was accepted and predicted.
        let e = case(&["--keepalive-ms", "0/1000/9", "--fault", "cable-pull"]).unwrap_err();
        assert!(e.contains("must be between 1s"), "{e}");
        let e = case(&["--keepalive-ms", "3000/1000/200", "--fault", "cable-pull"]).unwrap_err();
        assert!(e.contains("count must be between 1 and 127"), "{e}");
        let e = case(&["--heartbeat", "500/0", "--fault", "freeze"]).unwrap_err();
        assert!(e.contains("misses must be between 1 and 1000"), "{e}");
        let e = case(&["--keepalive-ms", "1500/1000", "--fault", "cable-pull"]).unwrap_err();
        assert!(e.contains("whole seconds"), "{e}");
        // Windows takes milliseconds: the seed's 3000/1 is fine there.
        let (side, _) = case(&[
            "--os",
            "windows",
            "--keepalive-ms",
            "3000/1",
            "--fault",
            "cable-pull",
        ])
        .unwrap();
        assert_eq!(side.keepalive.unwrap().count, 10);
    }
}
