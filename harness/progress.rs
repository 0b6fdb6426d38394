//! Progress on a terminal while labs run: which scenarios, elapsed against each one's end,
//! faults injected and detections so far; nothing when stderr is not a terminal or under CI.
//!
//! The labs share one single-threaded runtime, so they only ever *send* (an unbounded
//! channel's send never blocks); a thread of its own owns the display and draws it
//! (indicatif), at most a few times a second.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::record::Kind;

/// What a lab tells the display.
#[derive(Debug)]
enum Tick {
    Started {
        id: u64,
        name: String,
        end: Duration,
        at: Instant,
    },
    Fault(u64),
    Detection(u64),
    Finished(u64),
    /// The run is over: clear the display and end the thread.
    Close,
}

/// The labs' side of the display: cheap to clone, never blocks.
#[derive(Clone, Debug)]
pub struct Feed {
    tx: mpsc::Sender<Tick>,
    next: Arc<AtomicU64>,
}

impl Feed {
    /// A lab came up running scenario `name`, which ends `end` after its first connection.
    pub fn lab(&self, name: &str, end: Duration) -> LabFeed {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(Tick::Started {
            id,
            name: name.to_owned(),
            end,
            at: Instant::now(),
        });
        LabFeed {
            id,
            tx: self.tx.clone(),
        }
    }
}

/// One lab's feed; dropping it says the lab is done.
#[derive(Debug)]
pub struct LabFeed {
    id: u64,
    tx: mpsc::Sender<Tick>,
}

impl LabFeed {
    /// An event the runner recorded: counts it if it is a fault injected or a detection.
    pub fn saw(&self, kind: &Kind) {
        let tick = match kind {
            Kind::FaultInjected(_) => Tick::Fault(self.id),
            Kind::PeerLost(_) => Tick::Detection(self.id),
            _ => return,
        };
        let _ = self.tx.send(tick);
    }
}

impl Drop for LabFeed {
    fn drop(&mut self) {
        let _ = self.tx.send(Tick::Finished(self.id));
    }
}

/// Whether to show progress: only on a terminal, and not under CI (`CI` set to anything but
/// `false`/`0`, or a CI system's own variable), nor on a dumb terminal.
pub fn wanted(stderr_is_terminal: bool, var: impl Fn(&str) -> Option<OsString>) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    let ci = var("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
        || [
            "GITHUB_ACTIONS",
            "GITLAB_CI",
            "BUILDKITE",
            "JENKINS_URL",
            "TF_BUILD",
        ]
        .into_iter()
        .any(set);
    let dumb = var("TERM").is_some_and(|t| t == "dumb");
    stderr_is_terminal && !ci && !dumb
}

/// What is known of one lab, and the line it shows.
#[derive(Clone, Debug, PartialEq)]
struct Lab {
    name: String,
    end: Duration,
    started: Instant,
    faults: u32,
    detections: u32,
    finished: Option<Instant>,
}

impl Lab {
    fn elapsed(&self, now: Instant) -> Duration {
        self.finished
            .unwrap_or(now)
            .saturating_duration_since(self.started)
    }

    /// `4.2 s / 8 s · faults 1 · detections 2` (`done in 4.9 s · ...` once finished).
    fn message(&self, now: Instant) -> String {
        let elapsed = self.elapsed(now).as_secs_f64();
        let when = if self.finished.is_some() {
            format!("done in {elapsed:.1} s")
        } else {
            format!("{elapsed:.1} s / {} s", seconds(self.end))
        };
        format!(
            "{when} · faults {} · detections {}",
            self.faults, self.detections
        )
    }
}

/// A duration in seconds as a person writes it: `8`, `2.5`.
fn seconds(d: Duration) -> String {
    let s = format!("{:.1}", d.as_secs_f64());
    s.strip_suffix(".0").map_or(s.clone(), str::to_owned)
}

/// Every lab of the run, in the order they came up.
#[derive(Debug, Default)]
struct Board {
    labs: BTreeMap<u64, Lab>,
    total: Option<usize>,
}

impl Board {
    fn apply(&mut self, tick: &Tick, now: Instant) {
        match tick {
            Tick::Started { id, name, end, at } => {
                self.labs.insert(
                    *id,
                    Lab {
                        name: name.clone(),
                        end: *end,
                        started: *at,
                        faults: 0,
                        detections: 0,
                        finished: None,
                    },
                );
            }
            Tick::Fault(id) => {
                if let Some(l) = self.labs.get_mut(id) {
                    l.faults += 1;
                }
            }
            Tick::Detection(id) => {
                if let Some(l) = self.labs.get_mut(id) {
                    l.detections += 1;
                }
            }
            Tick::Finished(id) => {
                if let Some(l) = self.labs.get_mut(id) {
                    l.finished = Some(now);
                }
            }
            Tick::Close => {}
        }
    }

    /// `2 running · 3 of 31 done`.
    fn header(&self) -> String {
        let done = self.labs.values().filter(|l| l.finished.is_some()).count();
        let running = self.labs.len() - done;
        match self.total {
            Some(total) => format!("{running} running · {done} of {total} done"),
            None => format!("{running} running · {done} done"),
        }
    }
}

/// How long a finished lab's last line stays before its place is given up.
const LINGER: Duration = Duration::from_millis(1500);
/// How often the lines are brought up to date when nothing happens.
const REFRESH: Duration = Duration::from_millis(100);

/// The display on stderr, drawn by a thread of its own.
#[must_use = "dropping the display clears it"]
pub struct Display {
    feed: Feed,
    multi: MultiProgress,
    thread: Option<JoinHandle<()>>,
}

impl Display {
    /// The display, when [`wanted`] on this process's stderr and environment; `total` is how
    /// many scenarios the run has, if known.
    pub fn start(total: Option<usize>) -> Option<Display> {
        use std::io::IsTerminal;
        wanted(std::io::stderr().is_terminal(), |v| std::env::var_os(v))
            .then(|| Display::spawn(total))
    }

    fn spawn(total: Option<usize>) -> Display {
        let (tx, rx) = mpsc::channel();
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let drawn = multi.clone();
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || draw(&drawn, &rx, total))
            .expect("the progress thread starts");
        Display {
            feed: Feed {
                tx,
                next: Arc::new(AtomicU64::new(0)),
            },
            multi,
            thread: Some(thread),
        }
    }

    /// What the labs send to.
    pub fn feed(&self) -> Feed {
        self.feed.clone()
    }

    /// Prints `text` on stdout with the progress lines out of its way.
    pub fn print(&self, text: &str) {
        self.multi.suspend(|| {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        });
    }
}

/// Prints `text` on stdout, around the display if there is one.
pub fn print(display: Option<&Display>, text: &str) {
    match display {
        Some(d) => d.print(text),
        None => print!("{text}"),
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        let _ = self.feed.tx.send(Tick::Close);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("the template is valid")
        .progress_chars("=> ")
}

/// The display thread: applies ticks as they come, redraws at most every [`REFRESH`].
fn draw(multi: &MultiProgress, rx: &mpsc::Receiver<Tick>, total: Option<usize>) {
    let mut board = Board {
        total,
        ..Board::default()
    };
    let header = multi.add(ProgressBar::new_spinner());
    header.set_style(style("{spinner} flatline: {msg} · {elapsed}"));
    let mut bars: BTreeMap<u64, ProgressBar> = BTreeMap::new();
    let mut last = Instant::now();
    let mut width = 0;
    loop {
        let tick = match rx.recv_timeout(REFRESH) {
            Ok(Tick::Close) | Err(RecvTimeoutError::Disconnected) => break,
            Ok(t) => Some(t),
            Err(RecvTimeoutError::Timeout) => None,
        };
        let now = Instant::now();
        if let Some(t) = &tick {
            board.apply(t, now);
        }
        match tick {
            Some(Tick::Started { id, name, end, .. }) => {
                let bar = multi.add(ProgressBar::new(end.as_millis().max(1) as u64));
                // Names in full, aligned on the longest so far; the bar takes what is left
                // of the terminal's width.
                bar.set_style(style("  {prefix} [{wide_bar}] {msg}"));
                width = width.max(name.chars().count());
                bars.insert(id, bar);
            }
            Some(Tick::Finished(id)) => {
                // Drawn now, whatever the rate: a short run's count is seen at least here.
                if let (Some(bar), Some(lab)) = (bars.get(&id), board.labs.get(&id)) {
                    bar.set_prefix(format!("{:width$}", lab.name));
                    bar.finish_with_message(lab.message(now));
                }
            }
            // Many events at once (a pool's storm): the next refresh shows them.
            Some(_) if last.elapsed() < REFRESH => continue,
            _ => {}
        }
        last = now;
        for (id, lab) in &board.labs {
            let Some(bar) = bars.get(id) else { continue };
            match lab.finished {
                None => {
                    bar.set_prefix(format!("{:width$}", lab.name));
                    let pos = lab.elapsed(now).as_millis() as u64;
                    bar.set_position(pos.min(bar.length().unwrap_or(pos)));
                    bar.set_message(lab.message(now));
                }
                Some(at) if now.duration_since(at) >= LINGER => {
                    multi.remove(bar);
                    bars.remove(id);
                }
                Some(_) => {}
            }
        }
        header.set_message(board.header());
        header.tick();
    }
    for bar in bars.values() {
        multi.remove(bar);
    }
    header.finish_and_clear();
    let _ = multi.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::tests::{injected, lost};
    use crate::side::Side;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn progress_only_on_a_terminal_and_not_under_ci() {
        assert!(wanted(true, env(&[("TERM", "xterm")])));
        assert!(!wanted(false, env(&[])), "not a terminal");
        assert!(!wanted(true, env(&[("CI", "true")])));
        assert!(!wanted(true, env(&[("CI", "1")])));
        assert!(!wanted(true, env(&[("GITHUB_ACTIONS", "true")])));
        assert!(!wanted(true, env(&[("TERM", "dumb")])));
        // CI=false is someone saying this is not CI.
        assert!(wanted(true, env(&[("CI", "false")])));
        assert!(wanted(true, env(&[("CI", "")])));
    }

    #[test]
    fn a_lab_line_counts_faults_and_detections_against_its_end() {
        let t0 = Instant::now();
        let mut board = Board {
            total: Some(3),
            ..Board::default()
        };
        board.apply(
            &Tick::Started {
                id: 7,
                name: "graceful-exit".into(),
                end: Duration::from_millis(8000),
                at: t0,
            },
            t0,
        );
        board.apply(&Tick::Fault(7), t0);
        board.apply(&Tick::Detection(7), t0);
        board.apply(&Tick::Detection(7), t0);
        // Another lab's ticks, and a lab never started, change nothing here.
        board.apply(&Tick::Detection(8), t0);
        let lab = &board.labs[&7];
        let now = t0 + Duration::from_millis(4250);
        assert_eq!(lab.message(now), "4.2 s / 8 s · faults 1 · detections 2");
        assert_eq!(board.header(), "1 running · 0 of 3 done");
        board.apply(&Tick::Finished(7), now);
        let lab = &board.labs[&7];
        // Finished: the time stops at the end.
        assert_eq!(
            lab.message(now + Duration::from_secs(9)),
            "done in 4.2 s · faults 1 · detections 2"
        );
        assert_eq!(board.header(), "0 running · 1 of 3 done");
        board.total = None;
        assert_eq!(board.header(), "0 running · 1 done");
        assert_eq!(seconds(Duration::from_millis(2500)), "2.5");
    }

    #[test]
    fn a_lab_feeds_faults_detections_and_its_end_without_waiting() {
        let (tx, rx) = mpsc::channel();
        let feed = Feed {
            tx,
            next: Arc::new(AtomicU64::new(0)),
        };
        let a = feed.lab("a", Duration::from_secs(1));
        let b = feed.lab("b", Duration::from_secs(2));
        b.saw(&injected(1.0, "f", 1.0).kind);
        b.saw(&lost(2.0, Side::Client, "EOF").kind);
        b.saw(&Kind::PeerOutput { line: "x".into() });
        drop(a);
        let ticks: Vec<String> = rx
            .try_iter()
            .map(|t| match t {
                Tick::Started { id, name, .. } => format!("start {id} {name}"),
                Tick::Fault(id) => format!("fault {id}"),
                Tick::Detection(id) => format!("detection {id}"),
                Tick::Finished(id) => format!("end {id}"),
                Tick::Close => "close".into(),
            })
            .collect();
        assert_eq!(
            ticks,
            ["start 0 a", "start 1 b", "fault 1", "detection 1", "end 0"]
        );
    }
}
