//! `flatline bench --delay`: how accurately the wire's delay and jitter (harness/delay.rs) set
//! the round trip. For each setting, fresh labs run a TCP ping-pong across the wire and time
//! every echo; the measured round trips (and the kernel's own srtt) are set against the
//! configured ones, and the queue's own cost per packet is the round trip through the queue at
//! 0 ms less the round trip with no queue at all, halved.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::delay::{DelayStats, Delayer, WireDelay};
use crate::duration::Dur;
use crate::lab::{Lab, LabConfig, Ns, SERVER_ADDR, SERVER_PORT};
use crate::runner::{RunError, RunOptions};

/// Round trips timed in each run.
pub const PINGS: usize = 20;

/// Bytes of each ping (and its echo): one segment, no Nagle.
const PING_BYTES: usize = 64;

/// One setting of the wire: `None` is no queue at all (the baseline).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    pub wire: Option<WireDelay>,
}

impl Setting {
    fn new(delay_ms: u64, jitter_ms: u64) -> Setting {
        Setting {
            wire: Some(WireDelay {
                delay: Dur::from_millis(delay_ms),
                jitter: Dur::from_millis(jitter_ms),
            }),
        }
    }

    /// As a table row names it.
    pub fn label(&self) -> String {
        match self.wire {
            None => "no queue (baseline)".into(),
            Some(w) if w.jitter.0.is_zero() => format!("delay {}", w.delay),
            Some(w) => format!("delay {} +- {}", w.delay, w.jitter),
        }
    }

    /// The round trip the wire should add: its median, and its 99th percentile. Each direction
    /// is uniform in delay +- jitter, so a round trip is their sum: a triangle around 2 x delay
    /// whose top 1 % begins 2 x delay + (2 - sqrt(0.08)) x jitter.
    pub fn set_rtt_ms(&self) -> (f64, f64) {
        let Some(w) = self.wire else {
            return (0.0, 0.0);
        };
        let (d, j) = (
            w.delay.as_secs_f64() * 1000.0,
            w.jitter.as_secs_f64() * 1000.0,
        );
        (2.0 * d, 2.0 * d + (2.0 - 0.08f64.sqrt()) * j)
    }
}

/// The settings measured: no queue, the queue at 0, then 10 ms and 80 ms (a realistic
/// cross-continent RTT, as in docs/physics.md K14), each with and without jitter.
pub fn settings() -> Vec<Setting> {
    vec![
        Setting { wire: None },
        Setting::new(0, 0),
        Setting::new(10, 0),
        Setting::new(10, 5),
        Setting::new(80, 0),
        Setting::new(80, 20),
    ]
}

/// What one run measured.
#[derive(Clone, Debug, Default)]
pub struct RunSample {
    /// Each echo's round trip, ms.
    pub rtt_ms: Vec<f64>,
    /// The client kernel's smoothed RTT after the last echo (tcpi_rtt), ms.
    pub srtt_ms: Option<f64>,
    /// What the delayer said about itself (None without a queue).
    pub delayer: Option<DelayStats>,
}

/// One setting's figures over every run.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub setting: String,
    /// The configured delay and jitter per direction (None: no queue).
    pub delay_ms: Option<f64>,
    pub jitter_ms: Option<f64>,
    pub runs: usize,
    pub round_trips: usize,
    /// What the wire should add: the round trip's median and 99th percentile.
    pub set_median_ms: f64,
    pub set_p99_ms: f64,
    pub median_ms: f64,
    pub p99_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    /// Measured minus set, less the baseline's (the lab's own round trip without a queue).
    pub median_error_ms: f64,
    pub p99_error_ms: f64,
    /// Median over runs of the kernel's srtt at the end of the run.
    pub srtt_median_ms: Option<f64>,
    /// The delayer's lateness (its verdict after the departure time), median over runs of
    /// each run's median and of each run's p99, µs; and its CPU time per packet.
    pub late_median_us: Option<f64>,
    pub late_p99_us: Option<f64>,
    pub cpu_per_packet_us: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub rows: Vec<Row>,
    /// The queue's own cost per packet at 0 ms: (round trip through the queue at 0 - round trip
    /// with no queue) / 2, medians, µs.
    pub overhead_per_packet_us: f64,
}

/// The `q` quantile (0..=1) by nearest rank.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// The figures of every setting from its runs; the first setting without a queue is the
/// baseline the errors are taken against (the lab's own round trip: veth, two stacks, peers).
pub fn report(samples: &[(Setting, Vec<RunSample>)]) -> Report {
    let pooled = |runs: &[RunSample]| -> Vec<f64> {
        runs.iter().flat_map(|r| r.rtt_ms.iter().copied()).collect()
    };
    let base = samples
        .iter()
        .find(|(s, _)| s.wire.is_none())
        .map_or(0.0, |(_, runs)| crate::bench::median(&pooled(runs)));
    let zero = samples
        .iter()
        .find(|(s, _)| s.wire.is_some_and(|w| w.is_off()))
        .map(|(_, runs)| crate::bench::median(&pooled(runs)));
    let rows = samples
        .iter()
        .map(|(s, runs)| {
            let all = pooled(runs);
            let (set_median, set_p99) = s.set_rtt_ms();
            let (median, p99) = (quantile(&all, 0.5), quantile(&all, 0.99));
            let of_delayer = |f: fn(&DelayStats) -> f64| {
                let v: Vec<f64> = runs
                    .iter()
                    .filter_map(|r| r.delayer.as_ref().map(f))
                    .collect();
                (!v.is_empty()).then(|| crate::bench::median(&v))
            };
            let srtt: Vec<f64> = runs.iter().filter_map(|r| r.srtt_ms).collect();
            let base = if s.wire.is_none() { median } else { base };
            Row {
                setting: s.label(),
                delay_ms: s.wire.map(|w| w.delay.as_secs_f64() * 1000.0),
                jitter_ms: s.wire.map(|w| w.jitter.as_secs_f64() * 1000.0),
                runs: runs.len(),
                round_trips: all.len(),
                set_median_ms: set_median,
                set_p99_ms: set_p99,
                median_ms: median,
                p99_ms: p99,
                min_ms: quantile(&all, 0.0),
                max_ms: quantile(&all, 1.0),
                median_error_ms: median - base - set_median,
                p99_error_ms: p99 - base - set_p99,
                srtt_median_ms: (!srtt.is_empty()).then(|| crate::bench::median(&srtt)),
                late_median_us: of_delayer(|d| d.late_median_us),
                late_p99_us: of_delayer(|d| d.late_p99_us),
                cpu_per_packet_us: of_delayer(|d| d.cpu_per_packet_us),
            }
        })
        .collect();
    Report {
        rows,
        overhead_per_packet_us: zero.map_or(f64::NAN, |z| (z - base) / 2.0 * 1000.0),
    }
}

/// Runs `runs` labs per setting, one after another (labs side by side would time each other's
/// scheduling), `PINGS` round trips in each.
pub async fn measure(
    opts: &RunOptions,
    runs: usize,
) -> Result<Vec<(Setting, Vec<RunSample>)>, RunError> {
    let mut out = Vec::new();
    for setting in settings() {
        let mut samples = Vec::new();
        for _ in 0..runs {
            if let Some(sig) = opts.stop.received() {
                return Err(RunError::Interrupted(sig));
            }
            let sample = tokio::task::spawn_blocking(move || one_run(setting))
                .await
                .map_err(|e| RunError::Setup(format!("the delay bench's run panicked: {e}")))??;
            samples.push(sample);
        }
        eprintln!("{}: {} runs", setting.label(), runs);
        out.push((setting, samples));
    }
    Ok(out)
}

/// A fresh lab, the delayer and its rule when the setting has one, and `PINGS` echoes.
fn one_run(setting: Setting) -> Result<RunSample, RunError> {
    let lab = Lab::up(&LabConfig::default())?;
    let delayer = match setting.wire {
        None => None,
        Some(w) => {
            let d = Delayer::start(lab.fd(Ns::Wire), w)
                .map_err(|e| RunError::Setup(crate::runner::error_chain(&e)))?;
            let mut cmd = lab.command(Ns::Wire, "sh", &[]);
            cmd.args(["-c", &w.rule()]);
            lab.run(Ns::Wire, cmd, "")?;
            Some(d)
        }
    };
    let result = ping_pong(lab.fd(Ns::Server), lab.fd(Ns::Client));
    let stats = delayer.map(Delayer::stop);
    lab.teardown();
    let (rtt_ms, srtt_ms) =
        result.map_err(|e| RunError::Setup(format!("delay bench echo: {e}")))?;
    Ok(RunSample {
        rtt_ms,
        srtt_ms,
        delayer: stats,
    })
}

fn enter(netns: RawFd) -> std::io::Result<()> {
    // Our own thread, never a tokio worker: it may change namespace.
    // SAFETY: setns on the calling thread with a namespace descriptor the lab holds open.
    if unsafe { libc::setns(netns, libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// An echo server in the server namespace and a client in the client namespace; returns the
/// client's round trips (ms) and its kernel's srtt at the end (ms).
fn ping_pong(server_ns: RawFd, client_ns: RawFd) -> std::io::Result<(Vec<f64>, Option<f64>)> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let listener = enter(server_ns)
            .and_then(|()| TcpListener::bind(SocketAddrV4::new(SERVER_ADDR, SERVER_PORT)));
        let listener = match listener {
            Ok(l) => {
                let _ = ready_tx.send(Ok(()));
                l
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e.kind()));
                return Err(e);
            }
        };
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut buf = [0u8; PING_BYTES];
        for _ in 0..PINGS {
            s.read_exact(&mut buf)?;
            s.write_all(&buf)?;
        }
        Ok(())
    });
    let ready = ready_rx
        .recv()
        .map_err(|_| std::io::Error::other("the echo server ended before listening"))?;
    ready.map_err(|k| std::io::Error::new(k, "the echo server cannot listen"))?;
    let client = std::thread::spawn(move || -> std::io::Result<(Vec<f64>, Option<f64>)> {
        enter(client_ns)?;
        let mut s = TcpStream::connect_timeout(
            &SocketAddrV4::new(SERVER_ADDR, SERVER_PORT).into(),
            Duration::from_secs(5),
        )?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut buf = [7u8; PING_BYTES];
        let mut rtt = Vec::with_capacity(PINGS);
        // Back to back: each ping carries the ACK of the echo before it, so only these two
        // segments cross the wire and jitter cannot queue one behind a pure ACK.
        for _ in 0..PINGS {
            let t = Instant::now();
            s.write_all(&buf)?;
            s.read_exact(&mut buf)?;
            rtt.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let srtt = crate::peer::tcp_info(&s).map(|i| f64::from(i.rtt_us) / 1000.0);
        Ok((rtt, srtt))
    });
    let measured = client
        .join()
        .map_err(|_| std::io::Error::other("the echo client panicked"))?;
    let served = server
        .join()
        .map_err(|_| std::io::Error::other("the echo server panicked"))?;
    let measured = measured?;
    served?;
    Ok(measured)
}

/// The table.
pub fn render(r: &Report) -> String {
    let opt = |v: Option<f64>, unit: &str, digits: usize| {
        v.map_or("-".into(), |v| format!("{v:.digits$} {unit}"))
    };
    let mut out = String::from(
        "| wire (per direction) | round trips | set RTT median / p99 | measured median | error | measured p99 | error | kernel srtt | delayer late p50 / p99 | CPU per packet |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in &r.rows {
        let _ = writeln!(
            out,
            "| {} | {} x {} | {:.2} / {:.2} ms | {:.3} ms | {:+.3} ms | {:.3} ms | {:+.3} ms | {} | {} / {} | {} |",
            row.setting,
            row.runs,
            row.round_trips / row.runs.max(1),
            row.set_median_ms,
            row.set_p99_ms,
            row.median_ms,
            row.median_error_ms,
            row.p99_ms,
            row.p99_error_ms,
            opt(row.srtt_median_ms, "ms", 3),
            opt(row.late_median_us, "us", 1),
            opt(row.late_p99_us, "us", 1),
            opt(row.cpu_per_packet_us, "us", 1),
        );
    }
    let _ = writeln!(
        out,
        "\nErrors are measured minus set, less the lab's own round trip without a queue ({:.3} ms \
         median). The queue's own cost at 0 ms: {:.1} us per packet (round trip through the queue \
         at 0 ms less the round trip without it, halved).",
        r.rows
            .iter()
            .find(|row| row.delay_ms.is_none())
            .map_or(f64::NAN, |row| row.median_ms),
        r.overhead_per_packet_us
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rtt_ms: &[f64]) -> RunSample {
        RunSample {
            rtt_ms: rtt_ms.to_vec(),
            srtt_ms: Some(rtt_ms[0]),
            delayer: None,
        }
    }

    #[test]
    fn the_set_round_trip_of_a_jittered_wire_is_a_triangle() {
        assert_eq!(Setting { wire: None }.set_rtt_ms(), (0.0, 0.0));
        assert_eq!(Setting::new(80, 0).set_rtt_ms(), (160.0, 160.0));
        let (m, p99) = Setting::new(80, 20).set_rtt_ms();
        assert_eq!(m, 160.0);
        // The sum of two uniforms on -20..20 exceeds 34.3 ms with probability 1 %.
        assert!((p99 - 194.34).abs() < 0.01, "{p99}");
        // By simulation: the delay line's own draws put 1 % of round trips above it.
        let w = Setting::new(80, 20).wire.unwrap();
        let mut line = crate::delay::DelayLine::new(&w, 42);
        let mut rtts: Vec<f64> = (0..20_000u64)
            .map(|i| {
                // Far apart, so no packet waits for the one before it.
                let t = i * 1_000_000_000;
                let there = line.departure(crate::delay::Direction::ToServer, t) - t;
                let back = line.departure(crate::delay::Direction::ToClient, t) - t;
                (there + back) as f64 / 1e6
            })
            .collect();
        rtts.sort_by(f64::total_cmp);
        assert!(
            (quantile(&rtts, 0.99) - p99).abs() < 1.0,
            "{}",
            quantile(&rtts, 0.99)
        );
        assert!((quantile(&rtts, 0.5) - m).abs() < 1.0);
    }

    #[test]
    fn errors_are_taken_against_the_baseline_and_overhead_from_the_queue_at_zero() {
        let samples = vec![
            (Setting { wire: None }, vec![sample(&[0.1, 0.1, 0.1])]),
            (Setting::new(0, 0), vec![sample(&[0.15, 0.15, 0.15])]),
            (
                Setting::new(10, 0),
                vec![sample(&[20.4, 20.3]), sample(&[20.2, 20.5])],
            ),
        ];
        let r = report(&samples);
        assert_eq!(r.rows[0].median_error_ms, 0.0);
        assert!(
            (r.overhead_per_packet_us - 25.0).abs() < 1e-6,
            "{}",
            r.overhead_per_packet_us
        );
        let ten = &r.rows[2];
        assert_eq!((ten.runs, ten.round_trips), (2, 4));
        assert!((ten.median_ms - 20.3).abs() < 1e-9);
        assert!(
            (ten.median_error_ms - 0.2).abs() < 1e-9,
            "{}",
            ten.median_error_ms
        );
        assert!((ten.p99_ms - 20.5).abs() < 1e-9);
        let table = render(&r);
        assert_eq!(
            table.lines().filter(|l| l.starts_with("| delay")).count(),
            2
        );
        assert!(table.contains("25.0 us per packet"), "{table}");
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert!(quantile(&[], 0.5).is_nan());
    }
}
