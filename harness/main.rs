//! The `flatline` command: parse the command line, call the library, map the result to an
//! exit code (0 every expectation held, 1 one failed, 2 bad input or environment, 128+N a
//! signal). What each command does is in the library: `flatline::cli`.

use std::process::ExitCode;

use clap::Parser;

use flatline::cli::{self, Cli};

fn main() -> ExitCode {
    // Peers start from this very binary: hold it before anything can replace it. An error
    // is reported where a lab needs it.
    let _ = flatline::sandbox::own_binary();
    match cli::execute(Cli::parse().command) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("{}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
