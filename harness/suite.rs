//! Running many scenarios at once: how many labs at a time, which scenarios, and the count
//! that ends a run.

use std::fmt::Write;

/// What one lab costs in memory, as a budget: two peer processes (the flatline binary on a
/// single-threaded runtime, ~5-10 MiB resident each), three network namespaces with their
/// links and nftables tables, and the runner's share. Generous, so a pool of connections or a
/// user's own program fits too.
pub const LAB_BYTES: u64 = 64 << 20;

/// Never more labs at once than this: each holds ~20 file descriptors in the runner, and past
/// this many the kernel's timers are no longer what the load is waiting for.
pub const MAX_JOBS: usize = 64;

/// How many scenarios run at once when `-j` is not given. A run mostly waits for kernel
/// timers, so cores do not bound it; memory does: half of what is available, a lab's budget
/// each, at least one and at most [`MAX_JOBS`].
pub fn default_jobs(mem_available: Option<u64>) -> usize {
    let labs = mem_available.map_or(4, |bytes| (bytes / 2 / LAB_BYTES) as usize);
    labs.clamp(1, MAX_JOBS)
}

/// `MemAvailable` from /proc/meminfo, in bytes.
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&text)
}

fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Whether `--filter PATTERN` keeps a scenario: the pattern is a substring of its name or of
/// its file's path.
pub fn matches(pattern: Option<&str>, name: &str, file: &std::path::Path) -> bool {
    pattern.is_none_or(|p| name.contains(p) || file.to_string_lossy().contains(p))
}

/// How the scenarios of one run ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
    /// Not started: `--fail-fast` after a failure, or an interruption.
    pub skipped: usize,
}

impl Tally {
    /// The line that ends a run: `N passed, N failed`, and `N skipped` if any were.
    pub fn line(&self) -> String {
        let mut out = format!("{} passed, {} failed", self.passed, self.failed);
        if self.skipped > 0 {
            let _ = write!(out, ", {} skipped", self.skipped);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_bounded_by_memory_not_cores() {
        assert_eq!(default_jobs(Some(24 << 30)), MAX_JOBS);
        // 1 GiB available: half of it, 64 MiB a lab.
        assert_eq!(default_jobs(Some(1 << 30)), 8);
        assert_eq!(default_jobs(Some(10 << 20)), 1);
        assert_eq!(default_jobs(None), 4);
    }

    #[test]
    fn mem_available_is_read_in_kib() {
        let meminfo = "MemTotal:  2000 kB\nMemFree: 10 kB\nMemAvailable:   1024 kB\n";
        assert_eq!(parse_mem_available(meminfo), Some(1 << 20));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn a_filter_matches_name_or_path() {
        let f = std::path::Path::new("scenarios/fleet/pool.toml");
        assert!(matches(None, "x", f));
        assert!(matches(Some("fleet/"), "x", f));
        assert!(matches(Some("x"), "x", f));
        assert!(!matches(Some("seed"), "x", f));
    }

    #[test]
    fn the_tally_names_skipped_only_when_there_are_some() {
        let mut t = Tally {
            passed: 3,
            failed: 1,
            skipped: 0,
        };
        assert_eq!(t.line(), "3 passed, 1 failed");
        t.skipped = 2;
        assert_eq!(t.line(), "3 passed, 1 failed, 2 skipped");
    }
}
