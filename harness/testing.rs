//! Scenarios from a Rust `#[test]` of your own crate: the file is checked in-process (errors
//! located as the command line reports them), then run by the `flatline` binary — a run needs
//! a process of its own, since it becomes PID 1 of a PID namespace — and its record returned.
//!
//! ```no_run
//! #[test]
//! fn our_client_notices_a_pulled_cable_within_15s() {
//!     let record = flatline::testing::Runner::new()
//!         .unwrap()
//!         .run("tests/cable-pull.toml".as_ref())
//!         .unwrap_or_else(|e| panic!("{e}"));
//!     assert!(flatline::report::passed(&record), "{:#?}", record.verdict);
//! }
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::record::{Record, RecordError};
use crate::scenario::{self, ScenarioError};

/// Why a scenario could not be run to a record.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error(
        "cannot find the flatline binary: set FLATLINE_BIN, or put `flatline` on PATH \
         (cargo install --path <flatline checkout>)"
    )]
    NoBinary,
    #[error("cannot start {bin}")]
    Spawn {
        bin: String,
        #[source]
        source: std::io::Error,
    },
    /// `flatline run` could not run it (exit 2: environment; 128+N: a signal).
    #[error("flatline run exited with {status}: {stderr}")]
    Run { status: String, stderr: String },
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("cannot make a directory for the record")]
    Out(#[source] std::io::Error),
}

/// Runs scenario files with one flatline binary.
#[derive(Clone, Debug)]
pub struct Runner {
    bin: PathBuf,
}

impl Runner {
    /// The binary named by `FLATLINE_BIN`, else `flatline` on PATH.
    pub fn new() -> Result<Runner, Error> {
        if let Some(bin) = std::env::var_os("FLATLINE_BIN") {
            return Ok(Runner::with_binary(bin));
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join("flatline"))
            .find(|p| p.is_file())
            .map(Runner::with_binary)
            .ok_or(Error::NoBinary)
    }

    pub fn with_binary(bin: impl Into<PathBuf>) -> Runner {
        Runner { bin: bin.into() }
    }

    /// Checks `file`, runs it, and returns its record: passed or not (see
    /// [`crate::report::passed`]), completed or interrupted (`status`).
    pub fn run(&self, file: &Path) -> Result<Record, Error> {
        let s = scenario::load(file)?;
        let out = OutDir::new()?;
        let output = Command::new(&self.bin)
            .arg("run")
            .arg(file)
            .arg("--out")
            .arg(&out.0)
            .output()
            .map_err(|source| Error::Spawn {
                bin: self.bin.display().to_string(),
                source,
            })?;
        let record = out.0.join(format!("{}.json", s.name));
        match output.status.code() {
            // 0 passed, 1 an expectation failed: either way the record is the answer.
            Some(0 | 1) => Ok(crate::record::load(&record)?),
            _ => Err(Error::Run {
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            }),
        }
    }
}

/// A directory of our own for one run's record, removed afterwards.
struct OutDir(PathBuf);

impl OutDir {
    fn new() -> Result<OutDir, Error> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "flatline-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).map_err(Error::Out)?;
        Ok(OutDir(dir))
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
