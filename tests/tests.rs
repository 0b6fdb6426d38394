//! Integration tests: the command line on bad input, the lab for real, and the model against
//! a reference simulation of the kernel's timers.
//!
//! Lab tests need root or unprivileged user namespaces. They never skip themselves: without
//! either, `flatline run` exits 2 with a message saying why, and the test fails showing it.

mod blackbox;
mod cli;
mod delay;
mod failover;
mod fuzz;
mod html;
mod lab;
mod library;
mod model_sim;
mod progress;
mod record;
mod sim;
mod stamps;
mod suite;
mod support;
mod trust;
