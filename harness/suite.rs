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

/// At most this many labs at once per core when `-j` is not given. A run mostly waits for
/// kernel timers, but each fault is a script (`sh` and `ip` or `nft`, forked on the loaded
/// CPU) that must take effect within [`crate::model::INJECT_LATE_MS`] of its `at` for the
/// model's phase-dependent windows to hold. Measured on 2 cores (scripts/inject-late.py,
/// docs/physics.md K9a): 32 labs at once, faults at most 46 ms late (heals 55 ms), busy loops
/// or not; 64 labs, 94-107 ms on a quiet machine (heals 144 ms), 227 ms beside other work,
/// 1.1 s beside two busy loops and a 1000-connection lab.
pub const JOBS_PER_CORE: usize = 16;

/// How many scenarios run at once when `-j` is not given: half the available memory, a lab's
/// budget each, and [`JOBS_PER_CORE`] per core, at least one and at most [`MAX_JOBS`].
pub fn default_jobs(mem_available: Option<u64>, cores: usize) -> usize {
    let labs = mem_available.map_or(4, |bytes| (bytes / 2 / LAB_BYTES) as usize);
    labs.min(cores.max(1) * JOBS_PER_CORE).clamp(1, MAX_JOBS)
}

/// What to say when `-j` asks for more labs at once than [`JOBS_PER_CORE`] a core: the run
/// goes ahead (the user may know their machine is idle), and each summary says which fault
/// took effect later than the model allows.
pub fn jobs_warning(jobs: usize, cores: usize) -> Option<String> {
    let bound = cores.max(1) * JOBS_PER_CORE;
    (jobs > bound).then(|| {
        format!(
            "{jobs} labs at once on {cores} cores (more than {JOBS_PER_CORE} a core): a fault can \
             take effect more than {:.0} ms after its `at` (measured: 227 ms with 64 labs on 2 \
             cores beside other work), and windows that depend on its phase may not hold; each summary says where \
             one did",
            crate::model::INJECT_LATE_MS
        )
    })
}

/// The cores this process may run on (1 if unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
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

/// `--partition`: which share of a list one shard runs. Shards 1..=N of the same list are
/// disjoint and together cover it, and each is the same on every machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    pub how: Split,
    /// 1-based.
    pub shard: u32,
    pub of: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// By a hash of the name: a shard keeps its items when others are added or removed.
    Hash,
    /// Round-robin by position in the list: shards differ in size by at most one.
    Count,
}

impl std::str::FromStr for Partition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}`: use hash:K/N or count:K/N, with 1 <= K <= N (e.g. hash:1/4)");
        let (how, rest) = s.split_once(':').ok_or_else(bad)?;
        let how = match how {
            "hash" => Split::Hash,
            "count" => Split::Count,
            _ => return Err(bad()),
        };
        let (k, n) = rest.split_once('/').ok_or_else(bad)?;
        let (shard, of): (u32, u32) =
            (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
        if shard == 0 || shard > of {
            return Err(bad());
        }
        Ok(Partition { how, shard, of })
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match self.how {
            Split::Hash => "hash",
            Split::Count => "count",
        };
        write!(f, "{how}:{}/{}", self.shard, self.of)
    }
}

impl Partition {
    /// Whether this shard runs the item at `index` (in the list as given) named `name`.
    pub fn keeps(&self, index: usize, name: &str) -> bool {
        let slot = match self.how {
            Split::Hash => fnv1a(name.as_bytes()) % u64::from(self.of),
            Split::Count => index as u64 % u64::from(self.of),
        };
        slot == u64::from(self.shard - 1)
    }
}

/// FNV-1a, 64 bits: fixed by its definition, so every machine and version splits alike
/// (std's hashers are not stable across releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_bounded_by_memory_and_by_cores() {
        // 24 GiB on 2 cores: 32 labs, where faults were measured at most 46 ms late (64 labs:
        // 227 ms, past INJECT_LATE_MS).
        assert_eq!(default_jobs(Some(24 << 30), 2), 32);
        assert_eq!(default_jobs(Some(24 << 30), 64), MAX_JOBS);
        // 1 GiB available: half of it, 64 MiB a lab.
        assert_eq!(default_jobs(Some(1 << 30), 2), 8);
        assert_eq!(default_jobs(Some(10 << 20), 2), 1);
        assert_eq!(default_jobs(None, 2), 4);
        assert_eq!(default_jobs(Some(24 << 30), 0), JOBS_PER_CORE);
    }

    #[test]
    fn more_labs_than_the_cores_bound_are_warned_of() {
        assert_eq!(jobs_warning(32, 2), None);
        let w = jobs_warning(33, 2).unwrap();
        assert!(
            w.starts_with("33 labs at once on 2 cores (more than 16 a core)"),
            "{w}"
        );
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
    fn a_partition_is_read_and_bad_ones_say_how() {
        let p: Partition = "hash:2/4".parse().unwrap();
        assert_eq!((p.how, p.shard, p.of), (Split::Hash, 2, 4));
        assert_eq!(p.to_string(), "hash:2/4");
        assert_eq!("count:1/1".parse::<Partition>().unwrap().how, Split::Count);
        for bad in [
            "hash:0/4",
            "hash:5/4",
            "count:1/0",
            "mod:1/2",
            "hash:1",
            "1/2",
            "hash:a/2",
        ] {
            let e = bad.parse::<Partition>().unwrap_err();
            assert!(e.contains("hash:K/N or count:K/N"), "{bad}: {e}");
        }
    }

    #[test]
    fn fnv1a_is_the_published_function() {
        // Test vectors of the FNV reference (draft-eastlake-fnv).
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    proptest::proptest! {
        /// Shards 1..=N of any list of distinct names keep every item exactly once, each the
        /// same way on every call; count shards differ in size by at most one.
        #[test]
        fn shards_cover_every_item_exactly_once(
            names in proptest::collection::btree_set("[a-z0-9-]{1,12}", 0..60),
            of in 1u32..9,
            hash in proptest::bool::ANY,
        ) {
            let how = if hash { Split::Hash } else { Split::Count };
            let names: Vec<String> = names.into_iter().collect();
            let mut sizes = Vec::new();
            for (i, name) in names.iter().enumerate() {
                let holders: Vec<u32> = (1..=of)
                    .filter(|&shard| Partition { how, shard, of }.keeps(i, name))
                    .collect();
                proptest::prop_assert_eq!(holders.len(), 1, "{} held by {:?}", name, holders);
            }
            for shard in 1..=of {
                let p = Partition { how, shard, of };
                sizes.push(names.iter().enumerate().filter(|(i, n)| p.keeps(*i, n)).count());
            }
            proptest::prop_assert_eq!(sizes.iter().sum::<usize>(), names.len());
            if how == Split::Count {
                let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                proptest::prop_assert!(hi - lo <= 1, "{:?}", sizes);
            }
        }
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
