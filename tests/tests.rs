//! Integration tests: the command line on bad input, and the lab for real.
//!
//! Lab tests need root or unprivileged user namespaces. They never skip themselves: without
//! either, `flatline run` exits 2 with a message saying why, and the test fails showing it.

mod blackbox;
mod cli;
mod fuzz;
mod lab;
mod record;
mod support;
mod trust;
