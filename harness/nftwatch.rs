//! When the kernel commits a firewall fault: `nft monitor tables` runs in the wire namespace
//! and each table it reports added or deleted is stamped on the monotonic clock as it arrives,
//! so a firewall fault's `fault-injected` is the nftables commit, not the script's exit
//! (which comes ~0.2-0.5 ms later: nft and sh exiting, the runner reaping them).

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock;
use crate::fault::Mechanism;
use crate::lab::{Lab, Ns};

/// A running `nft monitor tables` and what it has reported: (line, monotonic ns).
pub struct NftWatch {
    child: Child,
    seen: Arc<Mutex<Vec<(String, u64)>>>,
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
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        std::thread::Builder::new()
            .name("nft-monitor".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let at = clock::now_ns();
                    if let Ok(mut seen) = sink.lock() {
                        seen.push((line, at));
                    }
                }
            })
            .ok()?;
        Some(NftWatch { child, seen })
    }

    /// When the table a firewall script adds (inject) or deletes (heal) was committed, if the
    /// monitor saw it at or after `since_ns`: monotonic ns.
    pub fn committed(&self, mechanism: &Mechanism, since_ns: u64) -> Option<u64> {
        let want = expected_line(mechanism)?;
        first_seen(&self.seen, |(line, at)| {
            (*at >= since_ns && line.trim() == want).then_some(*at)
        })
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

/// Waits up to 20 ms for a watcher's thread to record what `pick` looks for; polls every 0.2 ms.
/// Shared by the nft and link watchers.
pub(crate) fn first_seen<T>(seen: &Mutex<Vec<T>>, pick: impl Fn(&T) -> Option<u64>) -> Option<u64> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(at) = seen.lock().ok().and_then(|s| s.iter().find_map(&pick)) {
            return Some(at);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
