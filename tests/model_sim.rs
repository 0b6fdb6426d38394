//! The model against the reference simulation: for random cells within the kernel's limits
//! and random draws of what the model cannot know (the fault's phase, the RTO, the frozen
//! peer's window), the model's window and error must contain what the simulation gives.
//!
//! Each property test runs a few thousand cases; `FLATLINE_SIM_CASES=100000 cargo test
//! --release --test tests model_sim` runs that many each instead.

use proptest::prelude::*;

use flatline::fidelity::Cell;
use flatline::scenario::Side;

use crate::sim::heartbeat::{simulate_heartbeat, Heartbeat};
use crate::sim::{simulate_after, simulate_reconnected, Draw, Rtt, HORIZON_MS};

/// The cases each property test runs: `default`, or FLATLINE_SIM_CASES.
fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("FLATLINE_SIM_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

fn draws() -> impl Strategy<Value = Draw> {
    (
        0.0..4.0f64,
        0.0..12_000.0f64,
        0u32..=4,
        16.0..22.0f64,
        0.0..1040.0f64,
        0.0..flatline::model::ANSWER_LATE_MS,
        0.0..flatline::model::UNACKED_BEFORE_MS,
    )
        .prop_map(
            |(
                jiffy_offset_ms,
                fault_shift_ms,
                rto_jiffies,
                log_window,
                linkwatch_ms,
                answer_ms,
                unacked_ms,
            )| Draw {
                jiffy_offset_ms,
                fault_shift_ms,
                // RTO_MIN + srtt, rounded up to jiffies: 204 ms, more on a loaded machine.
                rto_ms: 204.0 + 4.0 * f64::from(rto_jiffies),
                // 64 KiB .. 4 MiB: what a frozen peer may have advertised (at most its buffer).
                window_bytes: log_window.exp2(),
                // linkwatch acts at most once a second (HZ), on a 1 s timer of the wheel (32 ms).
                linkwatch_ms,
                answer_ms,
                unacked_ms,
            },
        )
}

/// Checks one cell and draw; Err says what disagrees, in a form to paste into a bug.
pub fn check(cell: &Cell, draw: &Draw) -> Result<(), String> {
    check_after(cell, draw, None)
}

/// As [`check`], with the wire's ICMP bucket towards the client short at the fault (an earlier
/// fault drew on it): `bucket` is (what the simulation's bucket holds, the least the model is
/// told), ms. The client must be a writer: the model is told the bucket through
/// [`flatline::model::predict_told`].
pub fn check_after(cell: &Cell, draw: &Draw, bucket: Option<(f64, f64)>) -> Result<(), String> {
    check_with(cell, draw, bucket, None, None)
}

/// As [`check_after`], the client's connection also a reconnect whose handshake waited in a
/// neighbour queue (docs/physics.md, K9a): the simulation runs it with the RTT state `rtt`
/// (its RTO and loss probe from the simulation's own estimator), the model is told the longest
/// RTO and srtt it allows for that (`told`, through `SideModel::set_reconnect`).
pub fn check_reconnected(
    cell: &Cell,
    draw: &Draw,
    bucket: Option<(f64, f64)>,
    rtt: &Rtt,
    told: (f64, f64),
) -> Result<(), String> {
    check_with(cell, draw, bucket, Some((rtt, told)), None)
}

/// As [`check`], for a connection that carries the reference peers' heartbeat (K18): the
/// simulation is [`simulate_heartbeat`].
pub fn check_heartbeat(cell: &Cell, hb: Heartbeat, draw: &Draw) -> Result<(), String> {
    check_with(cell, draw, None, None, Some(hb))
}

fn check_with(
    cell: &Cell,
    draw: &Draw,
    bucket: Option<(f64, f64)>,
    reconnected: Option<(&Rtt, (f64, f64))>,
    hb: Option<Heartbeat>,
) -> Result<(), String> {
    let rto_told = reconnected.map(|(_, told)| told);
    // The model is told the fault's phase to the millisecond, as a scenario's `at` tells it
    // (an answer crossing the fault depends on it); the simulation keeps the fraction.
    let whole = draw.fault_shift_ms.floor();
    let cell = &Cell {
        at_ms: cell.at_ms + whole as u64,
        end_ms: cell.end_ms + whole as u64,
        ..cell.clone()
    };
    let draw = &Draw {
        fault_shift_ms: draw.fault_shift_ms - whole,
        ..*draw
    };
    let mut text = cell.to_toml();
    if let Some(hb) = hb {
        text.push_str(&format!(
            "[heartbeat]\ninterval = \"{}ms\"\nmisses = {}\n",
            hb.interval_ms, hb.misses
        ));
    }
    let scenario = flatline::scenario::parse(std::path::Path::new("cell.toml"), &text)
        .map_err(|e| e.to_string())?;
    // A frozen peer's window never exceeds its receive buffer's maximum (tcp_rmem's third
    // value, which a frozen-server cell pins).
    let buffer = flatline::model::rcvbuf_max(&scenario.server.sysctl) as f64;
    let draw = &Draw {
        window_bytes: draw.window_bytes.min(buffer),
        ..*draw
    };
    let sim = match hb {
        Some(hb) => simulate_heartbeat(cell, hb, draw),
        None => match reconnected {
            Some((rtt, _)) => simulate_reconnected(cell, draw, bucket.map(|b| b.0), rtt),
            None => simulate_after(cell, draw, bucket.map(|b| b.0)),
        },
    };
    for (i, side) in Side::BOTH.iter().enumerate() {
        let p = match (bucket, rto_told) {
            (None, None) => flatline::model::predict(&scenario, 0, *side),
            _ if *side == Side::Server => flatline::model::predict(&scenario, 0, *side),
            _ => {
                let me = flatline::model::side_model(&scenario, *side);
                assert_eq!(
                    me.role,
                    flatline::model::Role::Writer,
                    "{}",
                    cell.describe()
                );
                flatline::model::predict_told(
                    &scenario,
                    0,
                    *side,
                    bucket.map(|(_, least)| (least, 6000.0)),
                    rto_told,
                )
            }
        };
        let fail = |what: String| {
            Err(format!(
                "seed {} ({}{}), {draw:?}: {side}: {what}; model {} {:?} ({})",
                cell.seed,
                cell.describe(),
                hb.map_or(String::new(), |h| format!(
                    ", heartbeat {} ms x {}",
                    h.interval_ms, h.misses
                )),
                p.window_text(),
                p.error,
                p.why
            ))
        };
        match (sim[i], p.window_ms) {
            (None, None) => {}
            (None, Some((lo, _))) if lo > HORIZON_MS => {}
            (None, Some(_)) => return fail("simulation: never".into()),
            (Some((t, e)), Some((lo, hi))) => {
                if t < lo || t > hi {
                    return fail(format!("simulation: {t:.0} ms {e}"));
                }
                if !p.admits(e) {
                    return fail(format!("simulation: {t:.0} ms {e}"));
                }
            }
            (Some((t, e)), None) => return fail(format!("simulation: {t:.0} ms {e}")),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(3000))]

    #[test]
    fn the_model_window_contains_the_simulation(seed in any::<u64>(), draw in draws()) {
        let cell = Cell::random(seed);
        if let Err(e) = check(&cell, &draw) {
            prop_assert!(false, "{}", e);
        }
    }
}

/// A busy writer whose own link is pulled (docs/physics.md, K9a), with the settings the random
/// cells draw: few of those are such cells, so this draws them directly.
fn own_link_cells() -> impl Strategy<Value = Cell> {
    (
        any::<bool>(),
        prop_oneof![Just(0u32), (1u32..=15).prop_map(|k| k * 500)],
        3u8..=6,
        (1u32..=6).prop_map(|k| k * 50),
        (1u32..=5, 1u32..=5, 1u32..=4),
    )
        .prop_map(
            |(local, ut, retries2, interval_ms, (idle_s, interval_s, count))| {
                let ka = flatline::fidelity::Ka {
                    idle_s,
                    interval_s,
                    count,
                };
                let fault = flatline::fidelity::CellFault::OwnLink { local };
                writer_cell(ka, ut, retries2, interval_ms, fault)
            },
        )
}

/// A client streaming 64 B every `interval_ms` with TCP_USER_TIMEOUT `ut` (or, without one,
/// tcp_retries2 `retries2`), both sides keepalive `ka`, the fault at 2 s.
fn writer_cell(
    ka: flatline::fidelity::Ka,
    ut: u32,
    retries2: u8,
    interval_ms: u32,
    fault: flatline::fidelity::CellFault,
) -> Cell {
    let side = flatline::fidelity::SideCell {
        keepalive: Some(ka),
        user_timeout_ms: 0,
    };
    Cell {
        seed: 0,
        client: flatline::fidelity::SideCell {
            user_timeout_ms: ut,
            ..side
        },
        server: side,
        traffic: flatline::fidelity::CellTraffic::Stream {
            interval_ms,
            record_bytes: 64,
        },
        tcp_retries2: (ut == 0).then_some(retries2),
        fault,
        at_ms: 2000,
        end_ms: 40_000,
    }
}

proptest! {
    #![proptest_config(cases(1500))]

    #[test]
    fn the_model_window_contains_the_simulation_of_a_writers_own_link(cell in own_link_cells(), draw in draws()) {
        if let Err(e) = check(&cell, &draw) {
            prop_assert!(false, "{}", e);
        }
    }
}

/// A busy writer behind a fault whose segments draw ICMPs (a reject with ICMP, the server's
/// own end pulled, the server's cable pulled at the wire: ip_error's net-unreachable), with
/// the settings the random cells draw. A reject of the writer's packets only lets the server's
/// keepalive probes (1s/1s/3) through, and the writer's answers to them draw on the bucket in
/// the middle of its chain (docs/physics.md, K18), which the random cells never draw.
fn icmp_writer_cells() -> impl Strategy<Value = Cell> {
    (
        prop_oneof![
            Just(flatline::fidelity::CellFault::Icmp { port: false }),
            Just(flatline::fidelity::CellFault::Icmp { port: true }),
            Just(flatline::fidelity::CellFault::PeerEnd),
            Just(flatline::fidelity::CellFault::CablePull),
            any::<bool>().prop_map(|port| flatline::fidelity::CellFault::IcmpOneWay {
                port,
                to_server: true
            }),
        ],
        prop_oneof![Just(0u32), (1u32..=16).prop_map(|k| k * 500)],
        3u8..=6,
        (1u32..=6).prop_map(|k| k * 50),
    )
        .prop_map(|(fault, ut, retries2, interval_ms)| {
            let ka = flatline::fidelity::Ka {
                idle_s: 1,
                interval_s: 1,
                count: 3,
            };
            writer_cell(ka, ut, retries2, interval_ms, fault)
        })
}

proptest! {
    #![proptest_config(cases(1500))]

    /// docs/physics.md, K9: a fault that finds the wire's ICMP bucket short (an earlier fault
    /// drew on it): the model, told the least the bucket holds, contains the simulation
    /// started from any level at or above it.
    #[test]
    fn the_model_window_contains_the_simulation_after_an_earlier_faults_icmps(
        cell in icmp_writer_cells(), draw in draws(), tokens in 0.0..6000.0f64, told in 0.0..=1.0f64,
    ) {
        if let Err(e) = check_after(&cell, &draw, Some((tokens, tokens * told))) {
            prop_assert!(false, "{}", e);
        }
    }
}

proptest! {
    #![proptest_config(cases(1500))]

    /// docs/physics.md, K9a: a writer's connection that a reconnect left with a long RTO (its
    /// handshake waited in a neighbour queue), behind the faults whose segments draw ICMPs,
    /// from a drawn bucket. The simulation derives the RTO and the loss probe from a drawn
    /// wait (up to ~1.07 s: RTOs up to 3.2 s) and the ACKs of the writes since, each a drawn
    /// round trip, by its own estimator (`Rtt`); the model, told the longest RTO its estimator
    /// allows for that wait and that many writes, contains the simulation.
    #[test]
    fn the_model_window_contains_the_simulation_after_a_slow_handshake(
        cell in icmp_writer_cells(), draw in draws(), tokens in 0.0..6000.0f64,
        wait in 0.05..1070.0f64, writes in 0u32..=12, rtts in prop::collection::vec(0.02..16.0f64, 12),
    ) {
        let mut rtt = Rtt::handshake(wait);
        for ms in &rtts[..writes as usize] {
            rtt.acked_write(69, *ms);
        }
        let later_hi = flatline::model::RTO_LAB_MAX_MS - flatline::model::RTO_MIN_MS - 4.0;
        let told = (flatline::model::rto_after_wait_ms(wait, writes, later_hi), wait.max(later_hi));
        // The model's estimator bound holds the simulation's estimator.
        prop_assert!(rtt.rto_ms() <= told.0 && rtt.srtt_ms() <= told.1 + 0.001, "{rtt:?}: told {told:?}");
        if let Err(e) = check_reconnected(&cell, &draw, Some((tokens, tokens)), &rtt, told) {
            prop_assert!(false, "{}; simulated {:?}", e, rtt);
        }
    }
}

/// A connection with the reference peers' heartbeat (K18), idle or with the client streaming,
/// behind a drop or a reject (both ways or one way) or a reset, with the settings the random
/// cells draw (keepalive on one side or both, a user timeout now and then).
fn heartbeat_cells() -> impl Strategy<Value = (Cell, Heartbeat)> {
    use flatline::fidelity::{CellFault, CellTraffic, Ka, SideCell};
    let side = (
        prop::option::weighted(0.8, (1u32..=4, 1u32..=4, 1u32..=3)),
        prop_oneof![3 => Just(0u32), 1 => (1u32..=15).prop_map(|k| k * 500)],
    )
        .prop_map(|(ka, user_timeout_ms)| SideCell {
            keepalive: ka.map(|(idle_s, interval_s, count)| Ka {
                idle_s,
                interval_s,
                count,
            }),
            user_timeout_ms,
        });
    let fault = prop_oneof![
        Just(CellFault::Drop {
            to_server: true,
            to_client: true
        }),
        Just(CellFault::Drop {
            to_server: true,
            to_client: false
        }),
        Just(CellFault::Drop {
            to_server: false,
            to_client: true
        }),
        (any::<bool>(), any::<bool>())
            .prop_map(|(port, to_server)| CellFault::IcmpOneWay { port, to_server }),
        any::<bool>().prop_map(|port| CellFault::Icmp { port }),
        Just(CellFault::Reset),
    ];
    let traffic = prop_oneof![
        Just(CellTraffic::Idle),
        (1u32..=6).prop_map(|k| CellTraffic::Stream {
            interval_ms: k * 50,
            record_bytes: 64,
        }),
    ];
    (
        side.clone(),
        side,
        fault,
        traffic,
        3u8..=6,
        prop_oneof![
            Just(200u64),
            Just(500),
            Just(700),
            Just(1000),
            Just(2000),
            Just(3000)
        ],
        2u32..=5,
    )
        .prop_map(
            |(client, server, fault, traffic, retries2, interval_ms, misses)| {
                let writer = traffic != CellTraffic::Idle;
                // A streaming client whose own packets are rejected one way is drawn too: its
                // answers to the server's probes and PONGs draw on its chain's bucket (K18).
                let cell = Cell {
                    seed: 0,
                    client,
                    server,
                    traffic,
                    tcp_retries2: (writer && client.user_timeout_ms == 0).then_some(retries2),
                    fault,
                    at_ms: 2000,
                    end_ms: 40_000,
                };
                (
                    cell,
                    Heartbeat {
                        interval_ms,
                        misses,
                    },
                )
            },
        )
}

proptest! {
    #![proptest_config(cases(1500))]

    /// docs/physics.md, K18: the heartbeat's frames are data on the connection.
    #[test]
    fn the_model_window_contains_the_simulation_of_a_heartbeat(
        (cell, hb) in heartbeat_cells(), draw in draws(),
    ) {
        if let Err(e) = check_heartbeat(&cell, hb, &draw) {
            prop_assert!(false, "{}", e);
        }
    }
}
