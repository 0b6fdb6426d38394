//! Random cells for checking the model against the kernel: settings, traffic and a fault drawn
//! from a seed within the kernel's limits, written as a scenario whose expectations are the
//! model's windows (`detects = "predicted"`). Used by `flatline bench --fidelity N`, the lab
//! test of random cells and the reference simulation's property test.
//!
//! The bench and the lab test run a [`RandomCell`]: the seed's one-fault [`Cell`] (what the
//! reference simulation models) with its [`Extras`]: the reference peers' heartbeat, a wire
//! delay, a second fault after a heal, each drawn on a salted stream of its own.
//!
//! The generator is a small SplitMix64 written out here rather than `rand`: a printed seed
//! must give the same cell with every later version of flatline, which `rand` does not promise
//! for its generators.

use std::fmt::Write;

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and stable forever.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A whole number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// A number in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.range(0, items.len() as u64 - 1) as usize]
    }
}

/// Salt of the generator that turns a streaming cell's drop into the server's own end pulled
/// ([`CellFault::PeerEnd`]).
const PEER_END_STREAM: u64 = 0x7065_6572_2d65_6e64;

/// Salt of the generator that turns a streaming cell's drop into the writer's own link pulled
/// ([`CellFault::OwnLink`]).
const OWN_LINK_STREAM: u64 = 0x6f77_6e2d_6c69_6e6b;

/// Salt of the generator that puts the pull of a writer's own link in its namespace at a
/// write's moment ([`CellFault::OwnLink`] `local`).
const AT_WRITE_STREAM: u64 = 0x6174_2d77_7269_7465;

/// How long after its `at` a cable pull typically takes effect (the runner's step, `ip link
/// set down`; measured 2.5-12 ms, the RTM_NEWLINK stamp), ms.
const PULL_LAG_MS: u64 = 5;

/// Salt of the generator that turns a streaming cell's drop one way ([`CellFault::Drop`]).
const ONE_WAY_STREAM: u64 = 0x6f6e_652d_7761_7921;

/// Salt of the generator that turns an idle cell's cable pull into the client's own link
/// pulled at the wire ([`CellFault::OwnLink`]).
const IDLE_OWN_LINK_STREAM: u64 = 0x6964_6c65_2d6f_776e;

/// Salt of the generator that turns an idle cell's reject with ICMP one way
/// ([`CellFault::IcmpOneWay`]), and may take the rejected side's keepalive away.
const ONE_WAY_REJECT_STREAM: u64 = 0x7265_6a65_6374_2d31;

/// Salt of the generator that gives a cell the reference peers' heartbeat ([`Extras::heartbeat`]).
const HEARTBEAT_STREAM: u64 = 0x6865_6172_7462_6561;

/// Salt of the generator that puts a delay on a cell's wire ([`Extras::delay_ms`]).
const DELAY_STREAM: u64 = 0x7769_7265_2d64_6c79;

/// Salt of the generator that heals a cell's fault and injects a second one on the connection
/// the client makes again ([`Extras::second`]).
const SECOND_FAULT_STREAM: u64 = 0x7365_636f_6e64_2d66;

/// tcp_rmem of a frozen server's namespace in a cell: autotuning stops at 128 KiB.
pub const FROZEN_TCP_RMEM: &str = "4096 131072 131072";

/// Keepalive of one side, whole seconds (as Linux takes them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ka {
    pub idle_s: u32,
    pub interval_s: u32,
    pub count: u32,
}

/// One side's settings in a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SideCell {
    pub keepalive: Option<Ka>,
    /// TCP_USER_TIMEOUT, ms; 0 for none.
    pub user_timeout_ms: u32,
}

/// The fault of a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellFault {
    /// firewall-drop both ways, or one way.
    Drop { to_server: bool, to_client: bool },
    /// The wire side of the server's link down.
    CablePull,
    /// The server's own end of its link down (`end = "peer"`): the router keeps its route,
    /// and its neighbour entry for the server fails every ~3 s (docs/physics.md, K9a).
    PeerEnd,
    /// The client's own link down: at the wire's end (no carrier; its segments wait for a
    /// gateway that never answers), or in its namespace (`local`: its routes go)
    /// (docs/physics.md, K9a). The client is a busy writer, or idle (at the wire's end only).
    OwnLink { local: bool },
    /// reject with tcp-reset.
    Reset,
    /// reject with ICMP host- or port-unreachable.
    Icmp { port: bool },
    /// reject with ICMP of one side's packets only: the client's (`to_server`) or the
    /// server's; the ICMPs go to that side, the other's packets pass (docs/physics.md, K7).
    IcmpOneWay { port: bool, to_server: bool },
    /// A NAT forgetting idle flows.
    Nat { timeout_s: u32, reset: bool },
    /// SIGKILL the server.
    Kill,
    /// SIGSTOP the server.
    Freeze,
}

/// Traffic of a cell: idle, or the client streaming.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellTraffic {
    Idle,
    Stream { interval_ms: u32, record_bytes: u32 },
}

/// One random cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    pub seed: u64,
    pub client: SideCell,
    pub server: SideCell,
    pub traffic: CellTraffic,
    /// net.ipv4.tcp_retries2 in the lab, if set.
    pub tcp_retries2: Option<u8>,
    pub fault: CellFault,
    /// When the fault is injected, ms after the client connected.
    pub at_ms: u64,
    /// How long the run lasts, ms after the client connected.
    pub end_ms: u64,
}

/// The longest a random cell's run may last: cells whose windows reach further are redrawn.
pub const MAX_RUN_MS: u64 = 40_000;

/// The reference peers' heartbeat (docs/physics.md, K18): the client PINGs every `interval_ms`,
/// the server answers, and either side gives up after `misses` intervals without a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeartbeatCell {
    pub interval_ms: u64,
    pub misses: u32,
}

/// What a cell draws beyond its settings, traffic and one fault, each on a generator of its own
/// (a salted stream), so that the one-fault cell of a seed ([`Cell::random`]) stays what it was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extras {
    /// The reference peers' heartbeat, as scenarios with a `[heartbeat]` table run it.
    pub heartbeat: Option<HeartbeatCell>,
    /// `[wire] delay`, added to each direction (harness/delay.rs), ms.
    pub delay_ms: Option<u32>,
    /// The fault healed once both sides gave up, and a second one on the new connection.
    pub second: Option<SecondFault>,
}

/// Fault, heal, second fault: the cell's fault is healed once both sides' windows have closed,
/// the client connects again (every 500 ms, each attempt up to 1 s), and a second fault comes
/// on the new connection. What the first leaves behind is what the model carries from one
/// fault to the next: the wire's ICMP bucket drawn on (`icmp_tokens_at`), a reconnect whose
/// handshake waited in a neighbour queue (`rto_after_reconnect`), timers no longer on their
/// schedule from the first connect (docs/physics.md, K9, K9a).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecondFault {
    /// The first fault's heal, ms after the connect.
    pub heal_ms: u64,
    pub fault: CellFault,
    /// ms after the first connect.
    pub at_ms: u64,
}

/// How long after the latest window of the first fault it is healed, ms.
const HEAL_AFTER_MS: u64 = 500;

impl SecondFault {
    /// The second fault a seed draws for `cell` with `extras` (one cell in four), or None.
    ///
    /// Only a fault of the network is healed: a killed server is gone, and a frozen one,
    /// thawed, reads at the heal the reset the client's give-up left (a moment of the heal's,
    /// which the model does not predict). Both sides must lose the first connection within
    /// the run: a side that never notices keeps it, and its timers run on into the second.
    fn draw(cell: &Cell, extras: &Extras) -> Option<SecondFault> {
        let mut rng = Rng::new(cell.seed ^ SECOND_FAULT_STREAM);
        if !rng.chance(0.25) {
            return None;
        }
        let streams = matches!(cell.traffic, CellTraffic::Stream { .. });
        let drop = CellFault::Drop {
            to_server: true,
            to_client: true,
        };
        let one_way = |to_server| CellFault::Drop {
            to_server,
            to_client: !to_server,
        };
        // The faults the cells draw for this traffic; a fault twice, as the scenarios that
        // run one twice do, one time in two.
        let fault = if rng.chance(0.5) {
            cell.fault
        } else if streams {
            rng.pick(&[
                drop,
                one_way(true),
                one_way(false),
                CellFault::PeerEnd,
                CellFault::OwnLink { local: false },
                CellFault::OwnLink { local: true },
                CellFault::Icmp { port: false },
                CellFault::Icmp { port: true },
            ])
        } else {
            rng.pick(&[
                drop,
                one_way(true),
                one_way(false),
                CellFault::CablePull,
                CellFault::OwnLink { local: false },
                CellFault::Reset,
                CellFault::Icmp { port: false },
                CellFault::Icmp { port: true },
                CellFault::IcmpOneWay {
                    port: false,
                    to_server: true,
                },
                CellFault::IcmpOneWay {
                    port: true,
                    to_server: false,
                },
            ])
        };
        let gap_ms = rng.pick(&[2500, 3000, 4000]);
        let healed = |f: CellFault| {
            !matches!(
                f,
                CellFault::Kill | CellFault::Freeze | CellFault::Nat { .. }
            )
        };
        if !healed(cell.fault) || !healed(fault) {
            return None;
        }
        let s = crate::scenario::parse(
            std::path::Path::new("cell.toml"),
            &cell.to_toml_with(MAX_RUN_MS, extras),
        )
        .ok()?;
        let mut latest = 0.0f64;
        for side in crate::scenario::Side::BOTH {
            let (_, hi) = crate::model::predict(&s, 0, side).window_ms?;
            latest = latest.max(hi);
        }
        let heal_ms = (cell.at_ms + latest.ceil() as u64 + HEAL_AFTER_MS).div_ceil(100) * 100;
        Some(SecondFault {
            heal_ms,
            fault,
            at_ms: heal_ms + gap_ms,
        })
    }
}

impl Extras {
    /// The extras a seed draws for its one-fault `cell`: a heartbeat one cell in four, a wire
    /// delay one cell in four, a second fault one cell in four ([`SecondFault::draw`]), each
    /// decided on its own stream.
    fn draw(cell: &Cell) -> Extras {
        let mut hb = Rng::new(cell.seed ^ HEARTBEAT_STREAM);
        let heartbeat = hb.chance(0.25).then(|| HeartbeatCell {
            // The intervals the reference simulation draws (tests/model_sim.rs): shorter and
            // longer than the RTO, the keepalive interval and the write interval.
            interval_ms: hb.pick(&[200, 500, 700, 1000, 2000, 3000]),
            misses: hb.range(2, 5) as u32,
        });
        let mut delay = Rng::new(cell.seed ^ DELAY_STREAM);
        // A few to tens of ms each way, as the delay scenarios use (scenarios/delay-rtt.toml,
        // heartbeat-pong-own-link.toml): the RTO grows by the round trip (docs/physics.md, K14).
        let delay_ms = delay
            .chance(0.25)
            .then(|| delay.pick(&[5, 10, 20, 30, 40, 60]));
        let mut extras = Extras {
            heartbeat,
            delay_ms,
            second: None,
        };
        extras.second = SecondFault::draw(cell, &extras);
        extras
    }

    fn is_none(&self) -> bool {
        *self == Extras::default()
    }

    /// The extras for people, after a cell's own description ("" for none).
    fn describe(&self) -> String {
        let mut d = String::new();
        if let Some(h) = self.heartbeat {
            let _ = write!(d, ", heartbeat {} ms x {}", h.interval_ms, h.misses);
        }
        if let Some(ms) = self.delay_ms {
            let _ = write!(d, ", wire delay {ms} ms each way");
        }
        if let Some(g) = self.second {
            let _ = write!(
                d,
                ", healed at {} ms, then {:?} at {} ms",
                g.heal_ms, g.fault, g.at_ms
            );
        }
        d
    }
}

/// One random cell as `flatline bench --fidelity` runs it: the seed's one-fault cell
/// ([`Cell::random`]) with its [`Extras`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RandomCell {
    pub cell: Cell,
    pub extras: Extras,
    /// How long the run lasts, ms after the client connected.
    pub end_ms: u64,
}

impl RandomCell {
    /// The cell of a seed; the same seed always gives the same cell. Extras whose windows would
    /// run past [`MAX_RUN_MS`] are left out.
    pub fn new(seed: u64) -> RandomCell {
        let cell = Cell::random(seed);
        let drawn = Extras::draw(&cell);
        // Without the second fault if the run would be too long with it, then without any.
        let candidates = [
            drawn,
            Extras {
                second: None,
                ..drawn
            },
        ];
        candidates
            .into_iter()
            .filter(|extras| !extras.is_none())
            .find_map(|extras| {
                let end_ms = cell.run_length_with(&extras)?;
                Some(RandomCell {
                    cell: cell.clone(),
                    extras,
                    end_ms,
                })
            })
            .unwrap_or_else(|| RandomCell {
                end_ms: cell.end_ms,
                cell,
                extras: Extras::default(),
            })
    }

    pub fn seed(&self) -> u64 {
        self.cell.seed
    }

    /// The scenario file of this cell, expecting the model's windows on both sides.
    pub fn to_toml(&self) -> String {
        self.cell.to_toml_with(self.end_ms, &self.extras)
    }

    /// One line for people: settings, traffic, fault and extras.
    pub fn describe(&self) -> String {
        format!("{}{}", self.cell.describe(), self.extras.describe())
    }
}

/// Keepalive settings of a few seconds: idle 1-4 s, interval 1-4 s, 1-3 probes.
fn keepalive(rng: &mut Rng) -> Ka {
    Ka {
        idle_s: rng.range(1, 5) as u32,
        interval_s: rng.range(1, 5) as u32,
        count: rng.range(1, 4) as u32,
    }
}

/// TCP_USER_TIMEOUT in ms (0.5-7.5 s) with probability `p`, else 0 (none).
fn user_timeout(rng: &mut Rng, p: f64) -> u32 {
    if rng.chance(p) {
        rng.range(1, 16) as u32 * 500
    } else {
        0
    }
}

/// One side with keepalive on, and TCP_USER_TIMEOUT with probability `ut_p`.
fn side(rng: &mut Rng, ut_p: f64) -> SideCell {
    SideCell {
        keepalive: Some(keepalive(rng)),
        user_timeout_ms: user_timeout(rng, ut_p),
    }
}

impl Cell {
    /// A cell from a seed; the same seed always gives the same cell.
    pub fn random(seed: u64) -> Cell {
        let mut rng = Rng::new(seed);
        loop {
            let cell = Cell::draw(seed, &mut rng);
            if let Some(end_ms) = cell.run_length_ms() {
                return Cell { end_ms, ..cell };
            }
        }
    }

    /// Draws one candidate cell (its `end_ms` still 0): picks a family, then its settings.
    fn draw(seed: u64, rng: &mut Rng) -> Cell {
        match rng.range(0, 9) {
            0 | 1 => Cell::draw_drop_both_ways(seed, rng),
            2 => Cell::draw_drop_one_way(seed, rng),
            3 => Cell::draw_abrupt(seed, rng),
            4 => Cell::draw_nat(seed, rng),
            5 => Cell::draw_process(seed, rng),
            6..=8 => Cell::draw_streaming(seed, rng),
            _ => Cell::draw_frozen_under_writer(seed, rng),
        }
    }

    /// An idle cell with the given sides and fault, injected 2 s after the connect.
    fn idle(seed: u64, client: SideCell, server: SideCell, fault: CellFault) -> Cell {
        Cell {
            seed,
            client,
            server,
            traffic: CellTraffic::Idle,
            tcp_retries2: None,
            fault,
            at_ms: 2000,
            end_ms: 0,
        }
    }

    /// Idle, both sides keepalive, a firewall dropping both ways.
    fn draw_drop_both_ways(seed: u64, rng: &mut Rng) -> Cell {
        let (c, s) = (side(rng, 0.3), side(rng, 0.3));
        let fault = CellFault::Drop {
            to_server: true,
            to_client: true,
        };
        Cell::idle(seed, c, s, fault)
    }

    /// Idle, both sides keepalive, a firewall dropping one way only.
    fn draw_drop_one_way(seed: u64, rng: &mut Rng) -> Cell {
        let (c, s) = (side(rng, 0.2), side(rng, 0.2));
        let to_server = rng.chance(0.5);
        let fault = CellFault::Drop {
            to_server,
            to_client: !to_server,
        };
        Cell::idle(seed, c, s, fault)
    }

    /// Idle, both sides keepalive, a cable pull, a reset or an ICMP unreachable. Half the
    /// ICMP rejects stop one side's packets only, and then one time in three the rejected
    /// side has no keepalive (it hears of the fault only from the peer's RST), decided on a
    /// stream of its own.
    fn draw_abrupt(seed: u64, rng: &mut Rng) -> Cell {
        let (mut c, mut s) = (side(rng, 0.3), side(rng, 0.3));
        let mut fault = rng.pick(&[
            CellFault::CablePull,
            CellFault::Reset,
            CellFault::Icmp { port: false },
            CellFault::Icmp { port: true },
        ]);
        // Half the cable pulls (the server's link, at the wire's end: its own device loses the
        // carrier and linkwatch acts at once) become the client's, whose carrier change
        // linkwatch may hold back a second (docs/physics.md, K9a), on a stream of their own so
        // that every other cell of a seed stays what it was.
        if fault == CellFault::CablePull && Rng::new(seed ^ IDLE_OWN_LINK_STREAM).chance(0.5) {
            fault = CellFault::OwnLink { local: false };
        }
        let mut one_way = Rng::new(seed ^ ONE_WAY_REJECT_STREAM);
        if let CellFault::Icmp { port } = fault {
            if one_way.chance(0.5) {
                let to_server = one_way.chance(0.5);
                fault = CellFault::IcmpOneWay { port, to_server };
                if one_way.chance(1.0 / 3.0) {
                    let rejected = if to_server { &mut c } else { &mut s };
                    rejected.keepalive = None;
                }
            }
        }
        Cell::idle(seed, c, s, fault)
    }

    /// Idle behind a NAT: the same keepalive on both sides (their probes interleave
    /// otherwise), the timeout well away from the probe period.
    fn draw_nat(seed: u64, rng: &mut Rng) -> Cell {
        let both = side(rng, 0.3);
        let period = both.keepalive.map_or(1, |k| k.idle_s.max(k.interval_s));
        let candidates: Vec<u32> = (2..=8)
            .filter(|t| (f64::from(*t) - f64::from(period)).abs() >= 0.9)
            .collect();
        let timeout_s = rng.pick(&candidates);
        let reset = rng.chance(0.5);
        Cell::idle(seed, both, both, CellFault::Nat { timeout_s, reset })
    }

    /// Idle, both sides keepalive, the server killed or frozen.
    fn draw_process(seed: u64, rng: &mut Rng) -> Cell {
        // The fault is drawn before the sides: printed seeds depend on this order.
        let fault = rng.pick(&[CellFault::Kill, CellFault::Freeze]);
        let (c, s) = (side(rng, 0.3), side(rng, 0.3));
        Cell::idle(seed, c, s, fault)
    }

    /// The client streams: a drop (or ICMP) ends it by retransmissions, with
    /// TCP_USER_TIMEOUT or a lowered tcp_retries2.
    fn draw_streaming(seed: u64, rng: &mut Rng) -> Cell {
        let client = side(rng, 0.6);
        let retries = if client.user_timeout_ms == 0 {
            Some(rng.range(3, 6) as u8)
        } else {
            None
        };
        let drop = CellFault::Drop {
            to_server: true,
            to_client: true,
        };
        let mut fault = rng.pick(&[
            drop,
            drop,
            CellFault::Icmp { port: false },
            CellFault::Icmp { port: true },
        ]);
        // One drop in three becomes the server's own end pulled, decided on a stream of its
        // own so that every other cell of a seed stays what it was.
        if fault == drop && Rng::new(seed ^ PEER_END_STREAM).chance(1.0 / 3.0) {
            fault = CellFault::PeerEnd;
        }
        // Half the drops left become the writer's own link pulled, at the wire or in its
        // namespace, on a stream of its own too.
        let mut own = Rng::new(seed ^ OWN_LINK_STREAM);
        if fault == drop && own.chance(0.5) {
            fault = CellFault::OwnLink {
                local: own.chance(0.5),
            };
        }
        // One drop in three left becomes one way: the writer's segments still reach the
        // server (its ACKs are dropped), or only the server's reach the client, on a stream of
        // its own (docs/physics.md, K7).
        let mut one_way = Rng::new(seed ^ ONE_WAY_STREAM);
        if fault == drop && one_way.chance(1.0 / 3.0) {
            let to_server = one_way.chance(0.5);
            fault = CellFault::Drop {
                to_server,
                to_client: !to_server,
            };
        }
        let server = side(rng, 0.2);
        let interval_ms = rng.range(1, 6) as u32 * 50;
        // The writer's own link pulled in its namespace: at a write's moment one cell in two
        // (a stream of its own), where that write may still be unacknowledged when the link
        // goes and take the retransmission path (ENETUNREACH, docs/physics.md, K9a); else half
        // an interval clear of a write. `at` comes [`PULL_LAG_MS`] early: the link goes that
        // much after it.
        let at_ms = if fault == (CellFault::OwnLink { local: true }) {
            let i = u64::from(interval_ms);
            if Rng::new(seed ^ AT_WRITE_STREAM).chance(0.5) {
                2000u64.div_ceil(i) * i - PULL_LAG_MS
            } else {
                2000 + i / 2
            }
        } else {
            2000
        };
        Cell {
            seed,
            client,
            server,
            traffic: CellTraffic::Stream {
                interval_ms,
                record_bytes: 64,
            },
            tcp_retries2: retries,
            fault,
            at_ms,
            end_ms: 0,
        }
    }

    /// A frozen server under a fast writer with TCP_USER_TIMEOUT: zero-window probes. The
    /// server's tcp_rmem maximum is [`FROZEN_TCP_RMEM`]'s.
    fn draw_frozen_under_writer(seed: u64, rng: &mut Rng) -> Cell {
        let client = SideCell {
            keepalive: Some(keepalive(rng)),
            user_timeout_ms: rng.range(2, 8) as u32 * 500,
        };
        Cell {
            seed,
            client,
            server: side(rng, 0.0),
            traffic: CellTraffic::Stream {
                interval_ms: 10,
                record_bytes: 65536,
            },
            tcp_retries2: None,
            fault: CellFault::Freeze,
            at_ms: 2000,
            end_ms: 0,
        }
    }

    /// How long the run must last to see both sides' predicted windows close (plus 2 s), or
    /// None when that is longer than [`MAX_RUN_MS`].
    fn run_length_ms(&self) -> Option<u64> {
        self.run_length_with(&Extras::default())
    }

    /// As [`Cell::run_length_ms`], with `extras`: every fault's windows.
    fn run_length_with(&self, extras: &Extras) -> Option<u64> {
        let s = crate::scenario::parse(
            std::path::Path::new("cell.toml"),
            &self.to_toml_with(MAX_RUN_MS, extras),
        )
        .ok()?;
        let mut end = 0;
        for (index, fault) in s.faults.iter().enumerate() {
            let at = fault.at.as_millis();
            let mut latest = 0.0f64;
            for side in crate::scenario::Side::BOTH {
                if let Some((_, hi)) = crate::model::predict(&s, index, side).window_ms {
                    latest = latest.max(hi);
                }
            }
            end = end.max((at + latest.ceil() as u64 + 2000).max(at + 6000));
        }
        (end <= MAX_RUN_MS).then_some(end)
    }

    /// The scenario file of this cell, expecting the model's windows on both sides.
    pub fn to_toml(&self) -> String {
        self.to_toml_with(self.end_ms, &Extras::default())
    }

    fn to_toml_with(&self, end_ms: u64, extras: &Extras) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "# flatline bench --fidelity: random cell, seed {}",
            self.seed
        );
        let _ = writeln!(t, "name = \"fidelity-{}\"", self.seed);
        let _ = writeln!(
            t,
            "description = \"{}{}\"",
            self.describe(),
            extras.describe()
        );
        let _ = writeln!(t, "end = \"{end_ms}ms\"");
        for (name, side) in [("client", self.client), ("server", self.server)] {
            let _ = writeln!(t, "[{name}]");
            match side.keepalive {
                None => {
                    let _ = writeln!(t, "keepalive = \"off\"");
                }
                Some(k) => {
                    let _ = writeln!(
                        t,
                        "keepalive = {{ idle = \"{}s\", interval = \"{}s\", count = {} }}",
                        k.idle_s, k.interval_s, k.count
                    );
                }
            }
            if side.user_timeout_ms > 0 {
                let _ = writeln!(t, "user_timeout = \"{}ms\"", side.user_timeout_ms);
            }
            if name == "server" && self.fault == CellFault::Freeze {
                // The frozen server's receive buffer may not grow past 128 KiB, so its window
                // closes within two 64 KiB writes of the freeze, whatever pace a writer starved
                // of CPU keeps (docs/physics.md, K6).
                let _ = writeln!(
                    t,
                    "sysctl = {{ \"net.ipv4.tcp_rmem\" = \"{FROZEN_TCP_RMEM}\" }}"
                );
            }
        }
        if let CellTraffic::Stream {
            interval_ms,
            record_bytes,
        } = self.traffic
        {
            let _ = writeln!(
                t,
                "[traffic]\npattern = \"stream\"\ninterval = \"{interval_ms}ms\"\nrecord_bytes = {record_bytes}"
            );
        }
        if let Some(n) = self.tcp_retries2 {
            let _ = writeln!(t, "[lab]\ntcp_retries2 = {n}");
        }
        if let Some(h) = extras.heartbeat {
            let _ = writeln!(
                t,
                "[heartbeat]\ninterval = \"{}ms\"\nmisses = {}",
                h.interval_ms, h.misses
            );
        }
        if let Some(ms) = extras.delay_ms {
            let _ = writeln!(t, "[wire]\ndelay = \"{ms}ms\"");
        }
        let _ = writeln!(t, "[[fault]]\nid = \"f\"\nat = \"{}ms\"", self.at_ms);
        if let Some(second) = extras.second {
            let _ = writeln!(t, "heal = \"{}ms\"", second.heal_ms);
        }
        let _ = writeln!(t, "{}", fault_lines(self.fault));
        if let Some(second) = extras.second {
            let _ = writeln!(
                t,
                "[[fault]]\nid = \"g\"\nat = \"{}ms\"\n{}",
                second.at_ms,
                fault_lines(second.fault)
            );
        }
        for (side, fault) in ["client", "server"]
            .into_iter()
            .flat_map(|side| [(side, "f"), (side, "g")])
            .filter(|(_, f)| *f == "f" || extras.second.is_some())
        {
            let _ = writeln!(
                t,
                "[[expect]]\nside = \"{side}\"\nfault = \"{fault}\"\ndetects = \"predicted\""
            );
        }
        t
    }

    /// One line for people: settings, traffic and fault.
    pub fn describe(&self) -> String {
        let side = |s: SideCell| {
            let mut d = match s.keepalive {
                None => "off".to_string(),
                Some(k) => format!("{}s/{}s/{}", k.idle_s, k.interval_s, k.count),
            };
            if s.user_timeout_ms > 0 {
                let _ = write!(d, " UT {}ms", s.user_timeout_ms);
            }
            d
        };
        let traffic = match self.traffic {
            CellTraffic::Idle => "idle".to_string(),
            CellTraffic::Stream {
                interval_ms,
                record_bytes,
            } => format!("client streams {record_bytes} B every {interval_ms} ms"),
        };
        let retries = self
            .tcp_retries2
            .map_or(String::new(), |n| format!(", tcp_retries2 {n}"));
        format!(
            "client {}, server {}, {traffic}{retries}, {:?}",
            side(self.client),
            side(self.server),
            self.fault
        )
    }
}

/// The `[[fault]]` keys of a cell's fault after its `id` and `at`.
fn fault_lines(fault: CellFault) -> String {
    match fault {
        CellFault::Drop {
            to_server,
            to_client,
        } => {
            let direction = match (to_server, to_client) {
                (true, false) => "to-server",
                (false, true) => "to-client",
                _ => "both",
            };
            format!("kind = \"firewall-drop\"\ndirection = \"{direction}\"")
        }
        CellFault::CablePull => "kind = \"cable-pull\"\ntarget = \"server\"".into(),
        CellFault::PeerEnd => "kind = \"cable-pull\"\ntarget = \"server\"\nend = \"peer\"".into(),
        CellFault::OwnLink { local } => format!(
            "kind = \"cable-pull\"\ntarget = \"client\"\nend = \"{}\"",
            if local { "peer" } else { "wire" }
        ),
        CellFault::Reset => "kind = \"reject\"\nwith = \"tcp-reset\"".into(),
        CellFault::Icmp { port } => format!(
            "kind = \"reject\"\nwith = \"icmp-{}-unreachable\"",
            if port { "port" } else { "host" }
        ),
        CellFault::IcmpOneWay { port, to_server } => format!(
            "kind = \"reject\"\nwith = \"icmp-{}-unreachable\"\ndirection = \"{}\"",
            if port { "port" } else { "host" },
            if to_server { "to-server" } else { "to-client" }
        ),
        CellFault::Nat { timeout_s, reset } => {
            format!("kind = \"nat-timeout\"\ntimeout = \"{timeout_s}s\"\nreset = {reset}")
        }
        CellFault::Kill => "kind = \"process-kill\"\ntarget = \"server\"".into(),
        CellFault::Freeze => "kind = \"freeze\"\ntarget = \"server\"".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_gives_a_valid_scenario_that_fits_the_run() {
        for seed in 0..500 {
            let cell = Cell::random(seed);
            assert_eq!(cell, Cell::random(seed), "seed {seed} is not reproducible");
            let s = crate::scenario::parse(std::path::Path::new("cell.toml"), &cell.to_toml())
                .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{}", cell.to_toml()));
            assert!(s.end.as_millis() <= MAX_RUN_MS, "seed {seed}");
        }
    }

    #[test]
    fn host_unreachable_is_drawn_against_a_writer_with_a_user_timeout() {
        // The cells that showed the RTO revert under the rate limit (docs/physics.md, K9).
        for seed in [1_795_913_188, 1_795_911_679] {
            let cell = Cell::random(seed);
            assert_eq!(cell.fault, CellFault::Icmp { port: false }, "{seed}");
            assert_eq!(cell.client.user_timeout_ms, 4000, "{seed}");
        }
    }

    #[test]
    fn the_servers_own_end_is_drawn_against_a_busy_writer() {
        // A third of the streaming cells' drops, and nothing else changes.
        let cells: Vec<Cell> = (0..600).map(Cell::random).collect();
        let peer_end = cells.iter().filter(|c| c.fault == CellFault::PeerEnd);
        assert!(peer_end.clone().count() >= 10);
        for c in peer_end {
            assert!(matches!(c.traffic, CellTraffic::Stream { .. }), "{c:?}");
            assert!(c.to_toml().contains("end = \"peer\""), "{}", c.to_toml());
        }
    }

    #[test]
    fn the_writers_own_link_is_drawn_at_both_ends() {
        // Half the drops that are not the server's own end; nothing else changes.
        let cells: Vec<Cell> = (0..600).map(Cell::random).collect();
        for local in [false, true] {
            let own: Vec<&Cell> = cells
                .iter()
                .filter(|c| {
                    c.fault == CellFault::OwnLink { local }
                        && matches!(c.traffic, CellTraffic::Stream { .. })
                })
                .collect();
            assert!(own.len() >= 5, "{local}: {}", own.len());
            let end = if local { "peer" } else { "wire" };
            for c in own {
                let toml = c.to_toml();
                assert!(toml.contains("target = \"client\""), "{toml}");
                assert!(toml.contains(&format!("end = \"{end}\"")), "{toml}");
            }
        }
    }

    #[test]
    fn an_idle_clients_own_link_is_drawn_at_the_wire() {
        // Half the idle cable pulls; nothing else changes.
        let cells: Vec<Cell> = (0..1000).map(Cell::random).collect();
        let idle_own = |c: &&Cell| {
            c.traffic == CellTraffic::Idle && matches!(c.fault, CellFault::OwnLink { .. })
        };
        let own: Vec<&Cell> = cells.iter().filter(idle_own).collect();
        let pulls = cells
            .iter()
            .filter(|c| c.fault == CellFault::CablePull)
            .count();
        let seeds: Vec<u64> = own.iter().map(|c| c.seed).collect();
        println!("idle own link at the wire: {seeds:?}");
        assert!(
            own.len() >= 5 && pulls >= 5,
            "{} own, {pulls} pulls",
            own.len()
        );
        for c in own {
            assert_eq!(c.fault, CellFault::OwnLink { local: false }, "{c:?}");
            assert_eq!(c.at_ms, 2000, "{c:?}");
            let toml = c.to_toml();
            assert!(toml.contains("target = \"client\""), "{toml}");
            assert!(toml.contains("end = \"wire\""), "{toml}");
            assert!(!toml.contains("[traffic]"), "{toml}");
        }
    }

    #[test]
    fn the_writers_own_link_in_its_namespace_is_pulled_at_a_write_or_clear_of_one() {
        // docs/physics.md K9a: at a write the write may be in flight (the retransmission
        // path); half an interval clear of one it is not.
        let (mut at_write, mut clear) = (Vec::new(), Vec::new());
        for c in (0..2000).map(Cell::random) {
            let CellTraffic::Stream { interval_ms, .. } = c.traffic else {
                continue;
            };
            if c.fault != (CellFault::OwnLink { local: true }) {
                assert_eq!(c.at_ms, 2000, "{c:?}");
                continue;
            }
            let i = u64::from(interval_ms);
            if (c.at_ms + PULL_LAG_MS).is_multiple_of(i) {
                assert!((2000..2000 + i).contains(&(c.at_ms + PULL_LAG_MS)), "{c:?}");
                at_write.push(c.seed);
            } else {
                assert_eq!(c.at_ms, 2000 + i / 2, "{c:?}");
                clear.push(c.seed);
            }
        }
        println!("at a write: {at_write:?}\nclear of one: {clear:?}");
        assert!(
            at_write.len() >= 5 && clear.len() >= 5,
            "{at_write:?} {clear:?}"
        );
    }

    #[test]
    fn a_writers_drop_is_drawn_one_way_in_both_directions() {
        let cells: Vec<Cell> = (0..600).map(Cell::random).collect();
        for to_server in [false, true] {
            let one_way: Vec<u64> = cells
                .iter()
                .filter(|c| {
                    matches!(c.traffic, CellTraffic::Stream { .. })
                        && c.fault
                            == CellFault::Drop {
                                to_server,
                                to_client: !to_server,
                            }
                })
                .map(|c| c.seed)
                .collect();
            println!("to_server {to_server}: {one_way:?}");
            assert!(one_way.len() >= 5, "{to_server}: {one_way:?}");
        }
    }

    #[test]
    fn an_idle_reject_with_icmp_is_drawn_one_way_in_both_directions() {
        // Half the idle cells' ICMP rejects; some rejected sides without keepalive.
        let cells: Vec<Cell> = (0..600).map(Cell::random).collect();
        let mut without = 0;
        for to_server in [false, true] {
            let one_way: Vec<&Cell> = cells
                .iter()
                .filter(|c| matches!(c.fault, CellFault::IcmpOneWay { to_server: t, .. } if t == to_server))
                .collect();
            assert!(one_way.len() >= 5, "{to_server}: {}", one_way.len());
            for c in one_way {
                assert_eq!(c.traffic, CellTraffic::Idle, "{c:?}");
                let direction = if to_server { "to-server" } else { "to-client" };
                assert!(c.to_toml().contains(direction), "{}", c.to_toml());
                let rejected = if to_server { c.client } else { c.server };
                without += usize::from(rejected.keepalive.is_none());
            }
        }
        assert!(without >= 2, "{without}");
        // Both-ways ICMP rejects are still drawn.
        assert!(cells
            .iter()
            .any(|c| c.fault == CellFault::Icmp { port: false } && c.traffic == CellTraffic::Idle));
    }

    #[test]
    fn the_generator_is_stable() {
        // Printed seeds must keep meaning the same cell.
        let mut rng = Rng::new(1);
        assert_eq!(rng.next_u64(), 0x910a_2dec_8902_5cc1);
    }

    /// Texts of cells of seeds that draw no [`Extras`], written by `Cell::random(seed).to_toml()`
    /// at fed30af, before the extras: (seed, text).
    const BEFORE_THE_EXTRAS: [(u64, &str); 3] = [
        (
            0,
            r#"# flatline bench --fidelity: random cell, seed 0
name = "fidelity-0"
description = "client 5s/5s/4, server 4s/1s/4, idle, Kill"
end = "8000ms"
[client]
keepalive = { idle = "5s", interval = "5s", count = 4 }
[server]
keepalive = { idle = "4s", interval = "1s", count = 4 }
[[fault]]
id = "f"
at = "2000ms"
kind = "process-kill"
target = "server"
[[expect]]
side = "client"
fault = "f"
detects = "predicted"
[[expect]]
side = "server"
fault = "f"
detects = "predicted"
"#,
        ),
        (
            4,
            r#"# flatline bench --fidelity: random cell, seed 4
name = "fidelity-4"
description = "client 5s/3s/3 UT 1000ms, server 2s/5s/2, client streams 64 B every 200 ms, Icmp { port: false }"
end = "16610ms"
[client]
keepalive = { idle = "5s", interval = "3s", count = 3 }
user_timeout = "1000ms"
[server]
keepalive = { idle = "2s", interval = "5s", count = 2 }
[traffic]
pattern = "stream"
interval = "200ms"
record_bytes = 64
[[fault]]
id = "f"
at = "2000ms"
kind = "reject"
with = "icmp-host-unreachable"
[[expect]]
side = "client"
fault = "f"
detects = "predicted"
[[expect]]
side = "server"
fault = "f"
detects = "predicted"
"#,
        ),
        (
            6,
            r#"# flatline bench --fidelity: random cell, seed 6
name = "fidelity-6"
description = "client 4s/2s/1, server 1s/1s/1 UT 7500ms, idle, Drop { to_server: true, to_client: false }"
end = "12342ms"
[client]
keepalive = { idle = "4s", interval = "2s", count = 1 }
[server]
keepalive = { idle = "1s", interval = "1s", count = 1 }
user_timeout = "7500ms"
[[fault]]
id = "f"
at = "2000ms"
kind = "firewall-drop"
direction = "to-server"
[[expect]]
side = "client"
fault = "f"
detects = "predicted"
[[expect]]
side = "server"
fault = "f"
detects = "predicted"
"#,
        ),
    ];

    /// FNV-1a of `Cell::random(seed).to_toml()` over seeds 0..2000, at fed30af.
    const ONE_FAULT_CELLS_FNV: u64 = 0x6273_3dbe_1b3f_1103;

    #[test]
    fn old_seeds_give_the_cells_they_gave_before_the_extras() {
        // A printed seed keeps meaning the same cell: the one-fault cell of every seed is what
        // it was, and a seed that draws no extras runs exactly the scenario it ran.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for seed in 0..2000u64 {
            for b in Cell::random(seed).to_toml().bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        assert_eq!(h, ONE_FAULT_CELLS_FNV, "a one-fault cell changed");
        for (seed, text) in BEFORE_THE_EXTRAS {
            let cell = RandomCell::new(seed);
            assert_eq!(cell.extras, Extras::default(), "seed {seed}");
            assert_eq!(cell.to_toml(), text, "seed {seed}");
        }
    }

    #[test]
    fn extras_are_drawn_on_top_of_the_one_fault_cell() {
        let cells: Vec<RandomCell> = (0..600).map(RandomCell::new).collect();
        let heartbeat: Vec<&RandomCell> = cells
            .iter()
            .filter(|c| c.extras.heartbeat.is_some())
            .collect();
        let delay: Vec<&RandomCell> = cells
            .iter()
            .filter(|c| c.extras.delay_ms.is_some())
            .collect();
        // About a quarter each, independently.
        assert!((100..200).contains(&heartbeat.len()), "{}", heartbeat.len());
        assert!((100..200).contains(&delay.len()), "{}", delay.len());
        assert!(heartbeat.iter().any(|c| c.extras.delay_ms.is_some()));
        for c in &cells {
            // The cell under the extras is the seed's one-fault cell.
            assert_eq!(c.cell, Cell::random(c.seed()), "{c:?}");
            let toml = c.to_toml();
            let s = crate::scenario::parse(std::path::Path::new("cell.toml"), &toml)
                .unwrap_or_else(|e| panic!("seed {}: {e}\n{toml}", c.seed()));
            assert!(s.end.as_millis() <= MAX_RUN_MS, "seed {}", c.seed());
            let hb = c.extras.heartbeat.map(|h| (h.interval_ms, h.misses));
            assert_eq!(s.heartbeat.map(|h| (h.interval_ms, h.misses)), hb, "{toml}");
            let delay = u64::from(c.extras.delay_ms.unwrap_or(0));
            assert_eq!(s.wire.delay.as_millis(), delay, "{toml}");
        }
    }

    #[test]
    fn a_second_fault_comes_on_the_new_connection_after_the_heal() {
        let cells: Vec<RandomCell> = (0..600).map(RandomCell::new).collect();
        let twice: Vec<&RandomCell> = cells.iter().filter(|c| c.extras.second.is_some()).collect();
        assert!(twice.len() >= 40, "{}", twice.len());
        let mut same = 0;
        for c in twice {
            let g = c.extras.second.unwrap();
            for f in [c.cell.fault, g.fault] {
                assert!(
                    !matches!(
                        f,
                        CellFault::Kill | CellFault::Freeze | CellFault::Nat { .. }
                    ),
                    "{c:?}"
                );
            }
            same += usize::from(g.fault == c.cell.fault);
            let s =
                crate::scenario::parse(std::path::Path::new("cell.toml"), &c.to_toml()).unwrap();
            assert_eq!(s.faults.len(), 2, "{}", c.to_toml());
            assert_eq!(s.expectations.len(), 4, "{}", c.to_toml());
            // Healed once both sides' windows have closed, then a reconnect's time and more.
            for side in crate::scenario::Side::BOTH {
                let (_, hi) = crate::model::predict(&s, 0, side).window_ms.unwrap();
                assert!(
                    c.cell.at_ms as f64 + hi + 500.0 <= g.heal_ms as f64,
                    "{c:?}"
                );
            }
            assert_eq!(s.faults[0].heal.unwrap().as_millis(), g.heal_ms);
            assert!(g.at_ms >= g.heal_ms + 2500, "{c:?}");
            assert_eq!(s.faults[1].at.as_millis(), g.at_ms);
            assert!(s.end.as_millis() <= MAX_RUN_MS);
        }
        assert!(same >= 10, "{same}");
    }
}
