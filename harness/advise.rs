//! `flatline advise`: from a target ("notice a dead peer within 10 s, never disconnect a healthy
//! link with 200 ms jitter"), an OS and a traffic pattern, the settings that meet it: keepalive,
//! TCP_USER_TIMEOUT, an application heartbeat. Every setting is chosen by asking the model
//! (`harness/model.rs`, docs/physics.md) and is kept only if the model's upper bound meets the
//! target for every fault asked about; the healthy link bounds each setting from below.
//! `--write FILE` writes a scenario that checks the advice in the lab.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::duration::Dur;
use crate::keepalive::MAX_KEEP_SECS;
use crate::model::{predict_side, FaultModel, KeepaliveMs, Os, Prediction, Role, SideModel};
use crate::scenario::{FaultKind, Pattern, Side, Traffic};

/// The faults advice is given for: the other side's failures and the wire's.
pub const FAULTS: [FaultKind; 5] = [
    FaultKind::CablePull,
    FaultKind::FirewallDrop,
    FaultKind::HostReboot,
    FaultKind::ProcessKill,
    FaultKind::Freeze,
];

/// Safety factor between a healthy link's worst case and the setting it must never trip.
pub const MARGIN: f64 = 2.0;
/// TCP_USER_TIMEOUT must outlast this many times RTO_MIN + the worst-case RTT: a lost segment
/// on a healthy link is retransmitted one RTO later and acknowledged one RTT after that.
pub const UT_MARGIN: f64 = 3.0;

/// The longest target advised for: a day.
pub const MAX_TARGET_MS: u64 = 24 * 3600 * 1000;

/// The flags of `flatline advise`.
#[derive(Clone, Debug, clap::Args)]
pub struct Flags {
    /// Whose TCP stack: linux, windows (10 probes), windows-legacy (5 probes) or macos.
    #[arg(long, default_value = "linux", value_parser = Os::parse)]
    pub os: Os,
    /// What the connection carries, as a scenario's traffic pattern: idle, stream (the client
    /// writes: a busy writer), request-response, request-in-flight (one request waiting for
    /// its answer, as a database driver) or push (the server writes).
    #[arg(long, default_value = "idle", value_parser = parse_pattern)]
    pub traffic: Pattern,
    /// Time between records of stream, request-response, request-in-flight and push (as a
    /// scenario's interval).
    #[arg(long, default_value = "100ms", value_parser = Dur::parse)]
    pub traffic_interval: Dur,
    /// The side that must notice: client or server (the other one fails).
    #[arg(long, default_value = "client", value_parser = parse_side)]
    pub side: Side,
    /// The target: notice a dead peer within this long after it died, e.g. 10s.
    #[arg(long, value_parser = Dur::parse)]
    pub detect_within: Dur,
    /// Jitter on a healthy link: how much later than usual an answer may come.
    #[arg(long, default_value = "0ms", value_parser = Dur::parse)]
    pub healthy_jitter: Dur,
    /// Round-trip time of a healthy link, without the jitter.
    #[arg(long, default_value = "100ms", value_parser = Dur::parse)]
    pub healthy_rtt: Dur,
    /// The failures to advise for, comma-separated: cable-pull, firewall-drop, host-reboot,
    /// process-kill, freeze (default all five; host reboots and kills are the other side's).
    #[arg(long, value_delimiter = ',', value_parser = parse_fault)]
    pub faults: Vec<FaultKind>,
    /// How long a rebooting host is off the network.
    #[arg(long, default_value = "60s", value_parser = Dur::parse)]
    pub reboot_downtime: Dur,
    /// Also write a scenario file that checks the advice in the lab (`flatline run FILE`).
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// With --write: the fault the scenario injects (default: the one the model says is
    /// noticed last).
    #[arg(long, value_parser = parse_fault)]
    pub fault: Option<FaultKind>,
}

fn parse_pattern(s: &str) -> Result<Pattern, String> {
    [
        Pattern::Idle,
        Pattern::Stream,
        Pattern::RequestResponse,
        Pattern::RequestInFlight,
        Pattern::Push,
    ]
    .into_iter()
    .find(|p| p.as_str() == s)
    .ok_or_else(|| {
        format!("unknown traffic `{s}`: use idle, stream (a busy writer), request-response, request-in-flight or push")
    })
}

fn parse_side(s: &str) -> Result<Side, String> {
    Side::BOTH
        .into_iter()
        .find(|p| p.as_str() == s)
        .ok_or_else(|| format!("unknown side `{s}`: use client or server"))
}

fn parse_fault(s: &str) -> Result<FaultKind, String> {
    FAULTS.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
        format!(
            "unknown fault `{s}`: advice covers cable-pull, firewall-drop, host-reboot, \
                 process-kill and freeze"
        )
    })
}

/// What the advice must meet.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub os: Os,
    pub pattern: Pattern,
    pub side: Side,
    pub traffic_interval_ms: u64,
    pub detect_within_ms: u64,
    pub rtt_ms: u64,
    pub jitter_ms: u64,
    pub faults: Vec<FaultKind>,
    pub reboot_down_ms: u64,
}

impl Flags {
    /// The target the flags describe, or what is wrong with them.
    pub fn target(&self) -> Result<Target, String> {
        if self.detect_within.as_millis() == 0 {
            return Err("--detect-within: must be more than 0ms, e.g. 10s".into());
        }
        if self.detect_within.as_millis() > MAX_TARGET_MS {
            return Err(format!(
                "--detect-within {}: at most 24h (keepalive's idle time stops at 32767s, ~9h)",
                self.detect_within
            ));
        }
        if self.traffic_interval.as_millis() == 0 {
            return Err("--traffic-interval: must be at least 1ms".into());
        }
        if self.reboot_downtime.as_millis() == 0 {
            return Err("--reboot-downtime: must be at least 1ms".into());
        }
        let mut faults = Vec::new();
        for f in if self.faults.is_empty() {
            &FAULTS[..]
        } else {
            &self.faults[..]
        } {
            if !faults.contains(f) {
                faults.push(*f);
            }
        }
        if let Some(f) = self.fault {
            if !faults.contains(&f) {
                return Err(format!(
                    "--fault {}: not among the faults advised for (--faults {})",
                    f.as_str(),
                    names(&faults)
                ));
            }
        }
        if self.write.is_some() && self.os != Os::Linux {
            return Err(format!(
                "--write: the lab runs Linux; advice for {} cannot be checked here (use --os linux)",
                os_name(self.os)
            ));
        }
        Ok(Target {
            os: self.os,
            pattern: self.traffic,
            side: self.side,
            traffic_interval_ms: self.traffic_interval.as_millis(),
            detect_within_ms: self.detect_within.as_millis(),
            rtt_ms: self.healthy_rtt.as_millis(),
            jitter_ms: self.healthy_jitter.as_millis(),
            faults,
            reboot_down_ms: self.reboot_downtime.as_millis(),
        })
    }
}

fn names(faults: &[FaultKind]) -> String {
    faults
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn os_name(os: Os) -> &'static str {
    match os {
        Os::Linux => "Linux",
        Os::Windows => "Windows",
        Os::WindowsLegacy => "Windows before Vista",
        Os::Macos => "macOS",
    }
}

impl Target {
    /// The worst-case round trip on a healthy link.
    pub fn worst_rtt_ms(&self) -> u64 {
        self.rtt_ms + self.jitter_ms
    }

    /// What the advised side does on the connection (as `model::side_model` maps a scenario).
    pub fn role(&self) -> Role {
        match (self.pattern, self.side) {
            (Pattern::Idle, _) => Role::Idle,
            (
                Pattern::Stream | Pattern::RequestResponse | Pattern::RequestInFlight,
                Side::Client,
            ) => Role::Writer,
            (
                Pattern::Stream | Pattern::RequestResponse | Pattern::RequestInFlight,
                Side::Server,
            ) => Role::Reader,
            (Pattern::Push, Side::Server) => Role::Writer,
            (Pattern::Push, Side::Client) => Role::Reader,
        }
    }

    /// The fault as the advised side experiences it: the other side fails, or the wire.
    pub fn fault_model(&self, kind: FaultKind) -> FaultModel {
        match kind {
            FaultKind::HostReboot => FaultModel::HostReboot {
                down_ms: self.reboot_down_ms,
            },
            FaultKind::ProcessKill => FaultModel::PeerExited { unread: false },
            FaultKind::Freeze => FaultModel::PeerFrozen,
            // The written scenario pulls the other side's cable at the wire.
            FaultKind::CablePull => FaultModel::NoRoute,
            _ => FaultModel::Silence,
        }
    }

    /// The advised side with no detection settings of its own.
    fn bare(&self) -> SideModel {
        SideModel {
            keepalive: None,
            user_timeout_ms: 0,
            heartbeat: None,
            pings: self.side == Side::Client,
            role: self.role(),
            traffic_interval_ms: self.traffic_interval_ms,
            record_bytes: u64::from(Traffic::default().record_bytes),
            tcp_retries2: crate::lab::DEFAULT_TCP_RETRIES2,
            peer_rcvbuf_max_bytes: crate::model::RCVBUF_MAX_DEFAULT_BYTES,
            added_rtt_ms: (0.0, 0.0),
            icmp_tokens_ms: None,
            rto_after_reconnect_ms: None,
            srtt_after_reconnect_ms: None,
        }
    }

    fn meets(&self, p: &Prediction) -> bool {
        p.window_ms
            .is_some_and(|(_, hi)| hi <= self.detect_within_ms as f64)
    }

    fn predictions(&self, side: &SideModel, faults: &[FaultKind]) -> Vec<(FaultKind, Prediction)> {
        faults.iter().map(|&f| (f, self.predict(side, f))).collect()
    }

    /// How the advised side with settings `side` notices `kind`: the model's prediction (it
    /// counts the heartbeat's frames as traffic and races the heartbeat against TCP, K18; a
    /// pulled cable is the peer's, at the wire, whose missing route draws ICMP net-unreachable,
    /// K9).
    pub fn predict(&self, side: &SideModel, kind: FaultKind) -> Prediction {
        predict_side(side, self.fault_model(kind))
    }
}

/// One advised setting.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    /// keepalive, TCP_USER_TIMEOUT or heartbeat.
    pub name: &'static str,
    /// The value, or why it is not set.
    pub value: String,
    pub why: String,
    /// The rule of docs/physics.md it rests on.
    pub rule: &'static str,
    /// Its margin against the healthy link, in words.
    pub margin: Option<String>,
    /// The model's windows for the faults this setting notices, with this setting alone.
    pub windows: Vec<(FaultKind, Prediction)>,
}

/// Settings that meet a target, and what the model predicts with all of them together.
#[derive(Clone, Debug, PartialEq)]
pub struct Advice {
    pub target: Target,
    pub model: SideModel,
    pub settings: Vec<Setting>,
    pub predictions: Vec<(FaultKind, Prediction)>,
}

/// Keepalive for an idle or reading side: the shortest interval the healthy link allows (each
/// probe answered before the next), three probes if the target allows (two, then one,
/// otherwise), and the longest idle time that still meets the target.
fn keepalive(t: &Target, faults: &[FaultKind]) -> Option<KeepaliveMs> {
    let windows = matches!(t.os, Os::Windows | Os::WindowsLegacy);
    // Linux and macOS take whole seconds; Windows milliseconds (advised in 100 ms steps).
    let step = if windows { 100 } else { 1000 };
    let up = |ms: f64| ((ms / step as f64).ceil() as u64).max(1) * step;
    let interval_ms = up(MARGIN * t.worst_rtt_ms() as f64);
    let max_ms = u64::from(MAX_KEEP_SECS) * 1000;
    if interval_ms > max_ms {
        return None;
    }
    let counts: &[u32] = if windows { &[0] } else { &[3, 2, 1] };
    for &count in counts {
        let count = t.os.probes((count > 0).then_some(count));
        let fits = |idle_ms: u64| {
            let mut side = t.bare();
            side.keepalive = Some(KeepaliveMs {
                idle_ms,
                interval_ms,
                count,
            });
            t.predictions(&side, faults).iter().all(|(_, p)| t.meets(p))
        };
        // The longest idle that fits: the window grows with it, so count down from the target.
        let mut idle_ms = (t.detect_within_ms / step * step).clamp(step, max_ms);
        while idle_ms >= step {
            if fits(idle_ms) {
                return Some(KeepaliveMs {
                    idle_ms,
                    interval_ms,
                    count,
                });
            }
            idle_ms -= step;
        }
    }
    None
}

/// The smallest TCP_USER_TIMEOUT a healthy link allows.
pub fn min_user_timeout_ms(t: &Target) -> u64 {
    let ms = UT_MARGIN * (crate::model::RTO_MIN_MS + t.worst_rtt_ms() as f64);
    (ms / 100.0).ceil() as u64 * 100
}

/// TCP_USER_TIMEOUT for a writer (Linux): the longest, in 100 ms steps, that meets the target.
fn user_timeout(t: &Target, faults: &[FaultKind]) -> Option<u64> {
    let min = min_user_timeout_ms(t);
    let mut ut = (t.detect_within_ms / 100 * 100).min(i32::MAX as u64 / 100 * 100);
    while ut >= min {
        let mut side = t.bare();
        side.user_timeout_ms = ut;
        if t.predictions(&side, faults).iter().all(|(_, p)| t.meets(p)) {
            return Some(ut);
        }
        ut -= 100;
    }
    None
}

/// The smallest heartbeat silence the healthy link allows: (misses - 1) intervals.
pub fn min_heartbeat_silence_ms(t: &Target) -> f64 {
    MARGIN * t.worst_rtt_ms() as f64
}

/// An application heartbeat: three misses if the target allows (more, shorter intervals,
/// otherwise), the longest interval (10 ms steps) that meets the target, and (misses - 1)
/// intervals of silence at least twice the worst round trip.
fn heartbeat(t: &Target, faults: &[FaultKind]) -> Option<(u64, u32)> {
    // Round intervals (100 ms steps) when the target leaves room, 10 ms steps otherwise.
    let step = if t.detect_within_ms >= 2000 { 100 } else { 10 };
    for misses in [3u32, 4, 5, 6, 8, 10, 2] {
        let min = (min_heartbeat_silence_ms(t) / f64::from(misses - 1) / step as f64).ceil() as u64
            * step;
        let min = min.max(step);
        let mut interval = t.detect_within_ms / u64::from(misses) / step * step;
        while interval >= min {
            let mut side = t.bare();
            side.heartbeat = Some((interval, misses));
            if t.predictions(&side, faults).iter().all(|(_, p)| t.meets(p)) {
                return Some((interval, misses));
            }
            interval -= step;
        }
    }
    None
}

fn ms(v: u64) -> String {
    Dur::from_millis(v).to_string()
}

fn ratio(a: f64, b: f64) -> String {
    if b <= 0.0 {
        "no delay given".into()
    } else {
        format!("{:.1}x", a / b)
    }
}

/// The advice for `t`, or why it cannot be met (one line per fault that cannot).
pub fn advise(t: &Target) -> Result<Advice, String> {
    let role = t.role();
    let silent: Vec<FaultKind> = t
        .faults
        .iter()
        .copied()
        .filter(|f| {
            matches!(
                f,
                FaultKind::CablePull | FaultKind::FirewallDrop | FaultKind::HostReboot
            )
        })
        .collect();
    let w = t.worst_rtt_ms();
    let mut model = t.bare();
    let mut settings = Vec::new();

    // TCP: keepalive for a side with nothing in flight, the user timeout for a writer.
    if role == Role::Writer {
        settings.push(Setting {
            name: "keepalive",
            value: "not needed".into(),
            why: "a busy writer always has unacknowledged data, and keepalive only probes a \
                  connection with nothing in flight"
                .into(),
            rule: "K4",
            margin: None,
            windows: Vec::new(),
        });
        let ut = if t.os == Os::Linux && !silent.is_empty() {
            user_timeout(t, &silent)
        } else {
            None
        };
        match ut {
            Some(ut) => {
                model.user_timeout_ms = ut;
                let mut alone = t.bare();
                alone.user_timeout_ms = ut;
                let healthy = crate::model::RTO_MIN_MS + w as f64;
                settings.push(Setting {
                    name: "TCP_USER_TIMEOUT",
                    value: ms(ut),
                    why: "unacknowledged data: the retransmission timer decides, and without a \
                          user timeout it gives up after ~15 minutes (tcp_retries2 = 15)"
                        .into(),
                    rule: "K5: D - F in [UT + 2 RTO, UT + 2 RTO + one traffic interval]",
                    margin: Some(format!(
                        "a segment lost on a healthy link is acknowledged within RTO_MIN 200ms + \
                         {} = {}; {} is {} that (needs {UT_MARGIN}x)",
                        ms(w),
                        ms(healthy as u64),
                        ms(ut),
                        ratio(ut as f64, healthy)
                    )),
                    windows: t.predictions(&alone, &silent),
                });
            }
            None => settings.push(Setting {
                name: "TCP_USER_TIMEOUT",
                value: "not set".into(),
                why: if t.os != Os::Linux {
                    format!(
                        "the model knows no user timeout for {}: an application heartbeat \
                         notices instead",
                        os_name(t.os)
                    )
                } else if silent.is_empty() {
                    "no silent fault asked about".into()
                } else {
                    format!(
                        "no user timeout of at least {} (the healthy link's floor) meets the \
                         target: an application heartbeat notices instead",
                        ms(min_user_timeout_ms(t))
                    )
                },
                rule: "K5",
                margin: None,
                windows: Vec::new(),
            }),
        }
    } else {
        let ka = if silent.is_empty() {
            None
        } else {
            keepalive(t, &silent)
        };
        match ka {
            Some(k) => {
                model.keepalive = Some(k);
                let mut alone = t.bare();
                alone.keepalive = Some(k);
                settings.push(Setting {
                    name: "keepalive",
                    value: format!(
                        "idle {}, interval {}, count {}",
                        ms(k.idle_ms),
                        ms(k.interval_ms),
                        k.count
                    ),
                    why: format!(
                        "nothing of this side's is in flight ({}): keepalive probes notice a \
                         silent peer, {} unanswered probes {} apart",
                        if role == Role::Reader {
                            "it only reads"
                        } else {
                            "idle"
                        },
                        k.count,
                        ms(k.interval_ms)
                    ),
                    rule: "K1/K2: D - F in [N*V, max(I, V) + N*V]",
                    margin: Some(format!(
                        "probes go out only on an idle link; each is answered within {}, the \
                         next follows {} later: {} (needs {MARGIN}x)",
                        ms(w),
                        ms(k.interval_ms),
                        ratio(k.interval_ms as f64, w as f64)
                    )),
                    windows: t.predictions(&alone, &silent),
                });
            }
            None => settings.push(Setting {
                name: "keepalive",
                value: "not set".into(),
                why: if silent.is_empty() {
                    "no silent fault asked about".into()
                } else {
                    "no keepalive the healthy link allows meets the target: an application \
                     heartbeat notices instead"
                        .into()
                },
                rule: "K1",
                margin: None,
                windows: Vec::new(),
            }),
        }
        settings.push(Setting {
            name: "TCP_USER_TIMEOUT",
            value: "not needed".into(),
            why: "nothing is in flight for it to time; with keepalive it would only replace \
                  the probe count"
                .into(),
            rule: "K3",
            margin: None,
            windows: Vec::new(),
        });
    }

    // An application heartbeat for what TCP leaves unnoticed in time (a frozen peer: K13).
    let missed: Vec<FaultKind> = t
        .predictions(&model, &t.faults)
        .into_iter()
        .filter(|(_, p)| !t.meets(p))
        .map(|(f, _)| f)
        .collect();
    let covered = |f: &FaultKind| {
        matches!(
            f,
            FaultKind::CablePull
                | FaultKind::FirewallDrop
                | FaultKind::HostReboot
                | FaultKind::Freeze
        )
    };
    let hb = if !missed.is_empty() && missed.iter().all(covered) {
        heartbeat(t, &missed)
    } else {
        None
    };
    match hb {
        Some((interval, misses)) => {
            model.heartbeat = Some((interval, misses));
            let mut alone = t.bare();
            alone.heartbeat = Some((interval, misses));
            let silence = f64::from(misses - 1) * interval as f64;
            settings.push(Setting {
                name: "heartbeat",
                value: format!("every {}, peer lost after {misses} missed", ms(interval)),
                why: format!(
                    "{}: TCP does not notice in time: {}",
                    names(&missed).replace(',', ", "),
                    if missed.contains(&FaultKind::Freeze) {
                        "a frozen peer's kernel still ACKs and answers keepalive probes".into()
                    } else if role == Role::Writer && t.os != Os::Linux {
                        format!(
                            "the model knows no user timeout for {}, and retransmissions take \
                             minutes",
                            os_name(t.os)
                        )
                    } else {
                        "its timers cannot be that short on a healthy link".to_string()
                    }
                ),
                rule: "K13: D - F in [(M-1)*H, M*H]",
                margin: Some(format!(
                    "a reply is at most {} late; {} intervals of silence ({}) pass before the \
                     peer is lost: {} (needs {MARGIN}x)",
                    ms(w),
                    misses - 1,
                    ms(silence as u64),
                    ratio(silence, w as f64)
                )),
                windows: t.predictions(&alone, &missed),
            });
        }
        None => settings.push(Setting {
            name: "heartbeat",
            value: "not needed".into(),
            why: "TCP's own timers notice every fault asked about in time".into(),
            rule: "K13",
            margin: None,
            windows: Vec::new(),
        }),
    }

    let predictions = t.predictions(&model, &t.faults);
    let unmet: Vec<String> = predictions
        .iter()
        .filter(|(_, p)| !t.meets(p))
        .map(|(f, _)| unmet_reason(t, *f))
        .collect();
    if !unmet.is_empty() {
        return Err(format!(
            "the target cannot be met: {} must notice within {}, never disconnecting a \
             healthy link whose round trip reaches {}:\n{}",
            t.side.as_str(),
            ms(t.detect_within_ms),
            ms(w),
            unmet.join("\n")
        ));
    }
    Ok(Advice {
        target: t.clone(),
        model,
        settings,
        predictions,
    })
}

fn unmet_reason(t: &Target, f: FaultKind) -> String {
    let w = ms(t.worst_rtt_ms());
    let heartbeat = format!(
        "a heartbeat that survives the healthy link allows (misses - 1) intervals of silence \
         of at least {} (2 x {w}), and notices one interval after that (K13)",
        ms(min_heartbeat_silence_ms(t) as u64)
    );
    let why = match f {
        FaultKind::ProcessKill => "the peer's kernel sends FIN at once, and the model allows up \
                                   to 150ms for it to be read (K11)"
            .to_string(),
        FaultKind::Freeze => format!(
            "a frozen peer's kernel still answers TCP, so only a heartbeat notices; {heartbeat}"
        ),
        _ if t.role() == Role::Writer && t.os == Os::Linux => format!(
            "TCP_USER_TIMEOUT must be at least {} (3 x (RTO_MIN 200ms + {w})) and ends the \
             connection two RTOs after it at the earliest (K5); {heartbeat}",
            ms(min_user_timeout_ms(t))
        ),
        _ if t.role() == Role::Writer => format!(
            "the model knows no user timeout for {} (K4); {heartbeat}",
            os_name(t.os)
        ),
        _ => format!(
            "keepalive needs a probe interval of at least {} (whole seconds, at least 2 x {w}) \
             and one unanswered probe at the least (K1); {heartbeat}",
            ms(((MARGIN * t.worst_rtt_ms() as f64 / 1000.0).ceil() as u64).max(1) * 1000)
        ),
    };
    format!("  {}: {why}", f.as_str())
}

/// The advice in words, as `flatline advise` prints it.
pub fn render(a: &Advice) -> String {
    let t = &a.target;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "advice for the {} on {}, traffic {}{}",
        t.side.as_str(),
        os_name(t.os),
        t.pattern.as_str(),
        if t.pattern == Pattern::Idle {
            String::new()
        } else {
            format!(" every {}", ms(t.traffic_interval_ms))
        }
    );
    let _ = writeln!(
        out,
        "target: notice a dead peer within {}; never disconnect a healthy link (round trip {} + \
         jitter {} = {})",
        ms(t.detect_within_ms),
        ms(t.rtt_ms),
        ms(t.jitter_ms),
        ms(t.worst_rtt_ms())
    );
    for s in &a.settings {
        let _ = writeln!(out, "\n{}: {}", s.name, s.value);
        if let Some(how) = how(t, s.name, &a.model) {
            let _ = writeln!(out, "  set     {how}");
        }
        let _ = writeln!(out, "  why     {}", s.why);
        let _ = writeln!(out, "  rule    {} (docs/physics.md)", s.rule);
        if let Some(m) = &s.margin {
            let _ = writeln!(out, "  margin  {m}");
        }
        for (f, p) in &s.windows {
            let _ = writeln!(out, "  {}", fault_line(t, *f, p));
        }
    }
    let _ = writeln!(
        out,
        "\npredicted with all of it, after the fault (the model, harness/model.rs):"
    );
    for (f, p) in &a.predictions {
        let _ = writeln!(out, "  {}", fault_line(t, *f, p));
    }
    out
}

/// How a program sets `name` on `os`, if it is advised.
fn how(t: &Target, name: &str, m: &SideModel) -> Option<String> {
    match name {
        "keepalive" => {
            let k = m.keepalive?;
            let secs = |v: u64| v / 1000;
            Some(match t.os {
                Os::Linux => format!(
                    "setsockopt SO_KEEPALIVE 1, TCP_KEEPIDLE {}, TCP_KEEPINTVL {}, TCP_KEEPCNT {} \
                     (seconds)",
                    secs(k.idle_ms),
                    secs(k.interval_ms),
                    k.count
                ),
                Os::Macos => format!(
                    "setsockopt SO_KEEPALIVE 1, TCP_KEEPALIVE {}, TCP_KEEPINTVL {}, TCP_KEEPCNT {} \
                     (seconds)",
                    secs(k.idle_ms),
                    secs(k.interval_ms),
                    k.count
                ),
                Os::Windows | Os::WindowsLegacy => format!(
                    "WSAIoctl SIO_KEEPALIVE_VALS {{ onoff 1, keepalivetime {}, keepaliveinterval \
                     {} }} (milliseconds; the stack sends {} probes)",
                    k.idle_ms, k.interval_ms, k.count
                ),
            })
        }
        "TCP_USER_TIMEOUT" => (m.user_timeout_ms > 0).then(|| {
            format!(
                "setsockopt IPPROTO_TCP TCP_USER_TIMEOUT {} (milliseconds)",
                m.user_timeout_ms
            )
        }),
        "heartbeat" => m.heartbeat.map(|(h, misses)| {
            format!(
                "in the application: the client pings every {}, the server answers; either side \
                 gives up after {misses} intervals without hearing from the other",
                ms(h)
            )
        }),
        _ => None,
    }
}

fn fault_line(t: &Target, f: FaultKind, p: &Prediction) -> String {
    let name = match f {
        FaultKind::HostReboot => format!("host-reboot {}", ms(t.reboot_down_ms)),
        _ => f.as_str().to_string(),
    };
    format!(
        "{name:<18} {:<16} {:<19} {}",
        p.window_text(),
        match &p.error {
            Some(e) => std::iter::once(e)
                .chain(&p.alt_errors)
                .cloned()
                .collect::<Vec<_>>()
                .join("|"),
            None => "-".into(),
        },
        p.mechanism
    )
    .trim_end()
    .to_string()
}

/// The fault a written scenario injects: the one asked for, or the one noticed last.
pub fn scenario_fault(a: &Advice, asked: Option<FaultKind>) -> FaultKind {
    asked.unwrap_or_else(|| {
        a.predictions
            .iter()
            .max_by(|x, y| {
                let hi = |p: &Prediction| p.window_ms.map_or(0.0, |w| w.1);
                hi(&x.1).total_cmp(&hi(&y.1))
            })
            .map_or(FaultKind::FirewallDrop, |(f, _)| *f)
    })
}

/// When the written scenario injects its fault, after the client's first connection.
const FAULT_AT_MS: u64 = 2000;

/// A scenario file (TOML) that checks the advice in the lab: the advised settings on the
/// advised side, `fault`, and an expectation whose window is the model's.
pub fn scenario_text(a: &Advice, fault: FaultKind) -> String {
    let t = &a.target;
    let p = a
        .predictions
        .iter()
        .find(|(f, _)| *f == fault)
        .map(|(_, p)| p.clone())
        .unwrap_or_else(|| t.predict(&a.model, fault));
    let (lo, hi) = p.window_ms.unwrap_or((0.0, t.detect_within_ms as f64));
    let (lo, hi) = (lo.floor() as u64, hi.ceil() as u64);
    let other = match t.side {
        Side::Client => Side::Server,
        Side::Server => Side::Client,
    };
    let name = format!(
        "advise-{}-{}-{}",
        t.side.as_str(),
        t.pattern.as_str(),
        fault.as_str()
    );
    let heal = (fault == FaultKind::HostReboot).then(|| FAULT_AT_MS + t.reboot_down_ms);
    let end = (FAULT_AT_MS + hi + 2000).max(heal.map_or(0, |h| h + 1000));
    let end = end.div_ceil(1000) * 1000;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Written by `flatline advise` (harness/advise.rs): the advised settings on the {}, \
         the {} fault,\n# and the model's window for it (docs/physics.md, {}).",
        t.side.as_str(),
        fault.as_str(),
        p.mechanism
    );
    let _ = writeln!(
        out,
        "# Target: notice a dead peer within {}; healthy round trip up to {}.",
        ms(t.detect_within_ms),
        ms(t.worst_rtt_ms())
    );
    let _ = writeln!(out, "name = \"{name}\"");
    let _ = writeln!(
        out,
        "description = \"flatline advise: {} with traffic {}, {}: {} {} ({})\"",
        t.side.as_str(),
        t.pattern.as_str(),
        fault.as_str(),
        p.error.as_deref().unwrap_or("never"),
        p.window_text(),
        p.mechanism
    );
    let _ = writeln!(out, "end = \"{}\"", ms(end));
    for side in [Side::Server, Side::Client] {
        let _ = writeln!(out, "\n[{}]", side.as_str());
        if side == t.side {
            match a.model.keepalive {
                Some(k) => {
                    let _ = writeln!(
                        out,
                        "keepalive = {{ idle = \"{}\", interval = \"{}\", count = {} }}",
                        ms(k.idle_ms),
                        ms(k.interval_ms),
                        k.count
                    );
                }
                None => {
                    let _ = writeln!(out, "keepalive = \"off\"");
                }
            }
            if a.model.user_timeout_ms > 0 {
                let _ = writeln!(out, "user_timeout = \"{}\"", ms(a.model.user_timeout_ms));
            }
        } else {
            let _ = writeln!(out, "keepalive = \"off\"");
        }
    }
    let _ = writeln!(
        out,
        "\n[traffic]\npattern = \"{}\"\ninterval = \"{}\"",
        t.pattern.as_str(),
        ms(t.traffic_interval_ms)
    );
    if let Some((interval, misses)) = a.model.heartbeat {
        let _ = writeln!(
            out,
            "\n[heartbeat]\ninterval = \"{}\"\nmisses = {misses}",
            ms(interval)
        );
    }
    let _ = writeln!(
        out,
        "\n[[fault]]\nkind = \"{}\"\nat = \"{}\"",
        fault.as_str(),
        ms(FAULT_AT_MS)
    );
    if matches!(
        fault,
        FaultKind::HostReboot | FaultKind::ProcessKill | FaultKind::Freeze | FaultKind::CablePull
    ) {
        let _ = writeln!(out, "target = \"{}\"", other.as_str());
    }
    if let Some(h) = heal {
        let _ = writeln!(out, "heal = \"{}\"", ms(h));
    }
    let _ = writeln!(
        out,
        "\n[[expect]]\nside = \"{}\"\ndetects = \"{}..{}\"",
        t.side.as_str(),
        ms(lo),
        ms(hi)
    );
    match &p.error {
        Some(e) if p.alt_errors.is_empty() => {
            let _ = writeln!(out, "error = \"{e}\"");
        }
        Some(e) => {
            let _ = writeln!(
                out,
                "# error: {e} or {}, whichever mechanism fires first ({})",
                p.alt_errors.join(" or "),
                p.mechanism
            );
        }
        None => {}
    }
    out
}

/// `flatline advise`: prints the advice (exit 0), or why the target cannot be met (exit 2).
pub fn run(flags: &Flags) -> Result<u8, String> {
    let t = flags.target()?;
    let a = advise(&t)?;
    print!("{}", render(&a));
    if let Some(file) = &flags.write {
        let fault = scenario_fault(&a, flags.fault);
        let text = scenario_text(&a, fault);
        // Checked as `flatline run` will check it, before anything is written.
        crate::scenario::parse(file, &text)
            .map_err(|e| format!("the scenario advise wrote does not read: {e}"))?;
        crate::output::write_atomically(file, text.as_bytes())
            .map_err(|e| format!("{}: {e}", file.display()))?;
        println!(
            "\nscenario: {} ({} fault); check it with `flatline run {}`",
            file.display(),
            fault.as_str(),
            file.display()
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::predict;
    use proptest::prelude::*;

    fn target(pattern: Pattern, within_ms: u64, jitter_ms: u64) -> Target {
        Target {
            os: Os::Linux,
            pattern,
            side: Side::Client,
            traffic_interval_ms: 100,
            detect_within_ms: within_ms,
            rtt_ms: 100,
            jitter_ms,
            faults: FAULTS.to_vec(),
            reboot_down_ms: 60_000,
        }
    }

    #[test]
    fn an_idle_client_gets_keepalive_and_a_heartbeat_for_a_frozen_peer() {
        let a = advise(&target(Pattern::Idle, 10_000, 200)).unwrap();
        insta::assert_snapshot!(render(&a));
    }

    #[test]
    fn a_busy_writer_gets_a_user_timeout_not_keepalive() {
        let mut t = target(Pattern::Stream, 10_000, 200);
        t.faults = vec![FaultKind::CablePull, FaultKind::ProcessKill];
        let a = advise(&t).unwrap();
        assert_eq!(a.model.keepalive, None);
        assert!(a.model.user_timeout_ms > 0 && a.model.heartbeat.is_none());
        insta::assert_snapshot!(render(&a));
    }

    #[test]
    fn windows_takes_milliseconds_and_ten_probes() {
        let mut t = target(Pattern::Idle, 5000, 0);
        t.os = Os::Windows;
        t.faults = vec![FaultKind::FirewallDrop];
        let a = advise(&t).unwrap();
        insta::assert_snapshot!(render(&a));
    }

    #[test]
    fn a_macos_writer_gets_a_heartbeat_the_model_knows_no_user_timeout_there() {
        let mut t = target(Pattern::Stream, 10_000, 200);
        t.os = Os::Macos;
        t.faults = vec![FaultKind::CablePull, FaultKind::HostReboot];
        let a = advise(&t).unwrap();
        assert_eq!((a.model.user_timeout_ms, a.model.keepalive), (0, None));
        insta::assert_snapshot!(render(&a));
    }

    #[test]
    fn a_target_shorter_than_the_healthy_link_allows_says_why() {
        let e = advise(&target(Pattern::Idle, 500, 200)).unwrap_err();
        insta::assert_snapshot!(e);
    }

    #[test]
    fn the_written_scenario_is_the_advice_and_the_models_window() {
        let a = advise(&target(Pattern::Stream, 10_000, 200)).unwrap();
        let text = scenario_text(&a, FaultKind::Freeze);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn bad_flags_are_refused_in_words() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            flags: Flags,
        }
        let err = |args: &[&str]| match Cli::try_parse_from(
            std::iter::once("advise").chain(args.iter().copied()),
        ) {
            Ok(c) => c.flags.target().unwrap_err(),
            Err(e) => e.to_string(),
        };
        let e = err(&["--detect-within", "0s"]);
        assert!(e.contains("--detect-within: must be more than 0ms"), "{e}");
        let e = err(&["--detect-within", "10"]);
        assert!(e.contains("has no unit"), "{e}");
        let e = err(&["--detect-within", "10s", "--traffic", "busy"]);
        assert!(
            e.contains("unknown traffic `busy`: use idle, stream"),
            "{e}"
        );
        let e = err(&["--detect-within", "10s", "--faults", "cable-pull,loss"]);
        assert!(e.contains("unknown fault `loss`: advice covers"), "{e}");
        let e = err(&[
            "--detect-within",
            "10s",
            "--os",
            "windows",
            "--write",
            "x.toml",
        ]);
        assert!(e.contains("--write: the lab runs Linux"), "{e}");
        let e = err(&[
            "--detect-within",
            "10s",
            "--faults",
            "freeze",
            "--fault",
            "cable-pull",
        ]);
        assert!(e.contains("--fault cable-pull: not among"), "{e}");
        assert!(err(&["--traffic", "idle"]).contains("--detect-within"));
        let e = err(&["--detect-within", "25h"]);
        assert!(e.contains("unknown unit"), "{e}");
        let e = err(&["--detect-within", "1441m"]);
        assert!(
            e.contains("--detect-within 24.01h") || e.contains("at most 24h"),
            "{e}"
        );
    }

    const OSES: [Os; 4] = [Os::Linux, Os::Windows, Os::WindowsLegacy, Os::Macos];
    const PATTERNS: [Pattern; 5] = [
        Pattern::Idle,
        Pattern::Stream,
        Pattern::RequestResponse,
        Pattern::RequestInFlight,
        Pattern::Push,
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Every advised setting is within the kernel's limits and the healthy link's margin,
        /// and the model's upper bound meets the target for every fault; on Linux the written
        /// scenario reads and its expectation is the model's window for it. Otherwise the
        /// command says, per fault, why it cannot be met.
        #[test]
        fn advice_meets_its_target_within_the_kernels_limits(
            os in 0..4usize,
            pattern in 0..5usize,
            server in any::<bool>(),
            within in prop_oneof![100u64..5000, 5000u64..600_000],
            rtt in 0u64..1000,
            jitter in 0u64..3000,
            interval in 1u64..3000,
            down in 1u64..300_000,
            mask in 1usize..32,
        ) {
            let t = Target {
                os: OSES[os],
                pattern: PATTERNS[pattern],
                side: if server { Side::Server } else { Side::Client },
                traffic_interval_ms: interval,
                detect_within_ms: within,
                rtt_ms: rtt,
                jitter_ms: jitter,
                faults: FAULTS.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, f)| *f).collect(),
                reboot_down_ms: down,
            };
            let w = (rtt + jitter) as f64;
            let a = match advise(&t) {
                Err(e) => {
                    prop_assert!(e.starts_with("the target cannot be met"), "{e}");
                    prop_assert!(t.faults.iter().any(|f| e.contains(&format!("  {}: ", f.as_str()))), "{e}");
                    return Ok(());
                }
                Ok(a) => a,
            };
            for &f in &t.faults {
                let p = t.predict(&a.model, f);
                let hi = p.window_ms.map(|w| w.1);
                prop_assert!(hi.is_some_and(|hi| hi <= within as f64), "{f:?}: {p:?} for {t:?}");
            }
            if let Some(k) = a.model.keepalive {
                prop_assert!(t.role() != Role::Writer);
                prop_assert!(k.interval_ms as f64 >= MARGIN * w, "{k:?}");
                prop_assert!(k.idle_ms >= 1 && k.interval_ms >= 1);
                match t.os {
                    Os::Windows => prop_assert_eq!(k.count, 10),
                    Os::WindowsLegacy => prop_assert_eq!(k.count, 5),
                    Os::Linux | Os::Macos => {
                        prop_assert!(k.idle_ms % 1000 == 0 && k.interval_ms % 1000 == 0);
                        prop_assert!(k.idle_ms <= u64::from(MAX_KEEP_SECS) * 1000);
                        prop_assert!(k.interval_ms <= u64::from(MAX_KEEP_SECS) * 1000);
                        prop_assert!((1..=127).contains(&k.count));
                    }
                }
            }
            if a.model.user_timeout_ms > 0 {
                prop_assert_eq!(t.os, Os::Linux);
                prop_assert!(a.model.user_timeout_ms <= i32::MAX as u64);
                prop_assert!(a.model.user_timeout_ms as f64 >= UT_MARGIN * (200.0 + w));
            }
            if let Some((h, m)) = a.model.heartbeat {
                prop_assert!(h >= 1 && (2..=1000).contains(&m));
                prop_assert!(f64::from(m - 1) * h as f64 >= MARGIN * w, "{h} x {m}");
            }
            if t.os == Os::Linux {
                for &f in &t.faults {
                    let text = scenario_text(&a, f);
                    let s = crate::scenario::parse(std::path::Path::new("advised.toml"), &text)
                        .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
                    let p = t.predict(&a.model, f);
                    let (lo, hi) = p.window_ms.unwrap();
                    let crate::scenario::Check::Detects { window, error } =
                        &s.expectations[0].check
                    else {
                        return Err(TestCaseError::fail(text));
                    };
                    prop_assert_eq!(
                        window.to_string(),
                        format!("{}..{}", ms(lo.floor() as u64), ms(hi.ceil() as u64)),
                        "{}", text
                    );
                    let either = !p.alt_errors.is_empty();
                    prop_assert_eq!(error.as_deref(), p.error.as_deref().filter(|_| !either));
                    // `flatline run`'s own prediction for the written scenario is the advice's:
                    // advise corrects nothing of the model's (heartbeat traffic, cable pulls).
                    prop_assert_eq!(predict(&s, 0, t.side), p);
                }
            }
        }
    }
}
