//! When the kernel commits a firewall fault: `nft monitor tables` runs in the wire namespace
//! and each table it reports added or deleted is stamped on the monotonic clock as it arrives,
//! so a firewall fault's `fault-injected` is the nftables commit, not the script's exit
//! (which comes ~0.2-0.5 ms later: nft and sh exiting, the runner reaping them).

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock;
use crate::fault::Mechanism;
use crate::lab::{Lab, Ns};

/// A running `nft monitor tables` and what it has reported: (line, monotonic ns).
pub struct NftWatch {
    child: Child,
    seen: Arc<Seen<(String, u64)>>,
}

/// How long to wait for the monitor's line once the script has exited: it normally arrives
/// before the exit; if it does not, the exit stands.
const WAIT: Duration = Duration::from_millis(20);

impl NftWatch {
    /// Starts the monitor in the wire namespace; None if nft cannot run there (the exit of
    /// the script then stamps the fault, as before).
    pub fn start(lab: &Lab) -> Option<NftWatch> {
        let mut cmd = lab.command(Ns::Wire, "nft", &[]);
        cmd.args(["monitor", "tables"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().ok()?;
        let stdout = child.stdout.take()?;
        let seen = Arc::new(Seen::default());
        let sink = Arc::clone(&seen);
        std::thread::Builder::new()
            .name("nft-monitor".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let at = clock::now_ns();
                    sink.push([(line, at)]);
                }
            })
            .ok()?;
        Some(NftWatch { child, seen })
    }

    /// When the table a firewall script adds (inject) or deletes (heal) was committed, if the
    /// monitor saw it at or after `since_ns`: monotonic ns.
    pub async fn committed(&self, mechanism: &Mechanism, since_ns: u64) -> Option<u64> {
        let want = expected_line(mechanism)?;
        self.seen
            .first(|(line, at)| (*at >= since_ns && line.trim() == want).then_some(*at))
            .await
    }

    /// Ends the monitor (ours: killed by its pid, then reaped).
    pub fn stop(mut self) {
        self.end();
    }

    fn end(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NftWatch {
    fn drop(&mut self) {
        self.end();
    }
}

/// The line `nft monitor tables` prints when a firewall script's table is committed.
pub fn expected_line(mechanism: &Mechanism) -> Option<String> {
    let Mechanism::Script { name, args, .. } = mechanism else {
        return None;
    };
    if *name != "firewall" {
        return None;
    }
    let verb = match args.first().map(String::as_str) {
        Some("inject") => "add",
        Some("heal") => "delete",
        _ => return None,
    };
    Some(format!("{verb} table ip flatline_{}", args.get(1)?))
}

/// What a watcher's thread has recorded, and a wake-up for a task waiting for a record.
/// Shared by the nft and link watchers.
pub(crate) struct Seen<T> {
    records: Mutex<Vec<T>>,
    added: tokio::sync::Notify,
}

impl<T> Default for Seen<T> {
    fn default() -> Self {
        Seen {
            records: Mutex::new(Vec::new()),
            added: tokio::sync::Notify::new(),
        }
    }
}

impl<T> Seen<T> {
    /// Records `items` (from the watcher's thread) and wakes whoever waits.
    pub(crate) fn push(&self, items: impl IntoIterator<Item = T>) {
        if let Ok(mut records) = self.records.lock() {
            records.extend(items);
        }
        self.added.notify_waiters();
    }

    /// The first record `pick` accepts, waiting up to 20 ms for the watcher's thread to
    /// record it. The wait is the runtime's, not the thread's: every other lab on the same
    /// runtime (`flatline run -j N`) goes on meanwhile. The stamp is the watcher's, taken
    /// when the record arrived, so how soon this task wakes does not move it.
    pub(crate) async fn first(&self, pick: impl Fn(&T) -> Option<u64>) -> Option<u64> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            // Armed before looking, so a record pushed in between still wakes us.
            let added = self.added.notified();
            if let Some(at) = self
                .records
                .lock()
                .ok()
                .and_then(|r| r.iter().find_map(&pick))
            {
                return Some(at);
            }
            if tokio::time::timeout_at(deadline, added).await.is_err() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record pushed from another thread while a task waits is found at once, without
    /// holding up the runtime: a second task on the same single-threaded runtime keeps
    /// ticking meanwhile. A record that never comes gives None after the 20 ms wait.
    #[test]
    fn waiting_for_a_record_leaves_the_runtime_free() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let seen: Arc<Seen<u64>> = Arc::new(Seen::default());
            let ticks = Arc::new(std::sync::atomic::AtomicU32::new(0));
            let ticker = {
                let ticks = Arc::clone(&ticks);
                tokio::spawn(async move {
                    loop {
                        ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tokio::task::yield_now().await;
                    }
                })
            };
            let start = std::time::Instant::now();
            assert_eq!(seen.first(|&x| (x == 7).then_some(x)).await, None);
            assert!(start.elapsed() >= WAIT);
            // The other task ran while this one waited (a blocking sleep would starve it).
            assert!(ticks.load(std::sync::atomic::Ordering::Relaxed) > 10);
            let sink = Arc::clone(&seen);
            let pusher = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5));
                sink.push([3, 7]);
            });
            let start = std::time::Instant::now();
            assert_eq!(seen.first(|&x| (x == 7).then_some(x)).await, Some(7));
            assert!(start.elapsed() < WAIT, "{:?}", start.elapsed());
            pusher.join().unwrap();
            ticker.abort();
        });
    }

    #[test]
    fn firewall_scripts_map_to_their_tables() {
        let m = |args: &[&str]| Mechanism::Script {
            ns: Ns::Wire,
            name: "firewall",
            script: "",
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        assert_eq!(
            expected_line(&m(&["inject", "drop_1", "a", "b", "both", "drop"])).as_deref(),
            Some("add table ip flatline_drop_1")
        );
        assert_eq!(
            expected_line(&m(&["heal", "drop_1"])).as_deref(),
            Some("delete table ip flatline_drop_1")
        );
        assert_eq!(
            expected_line(&Mechanism::Restart(crate::scenario::Side::Server)),
            None
        );
    }
}
