//! flatline: measure how long TCP peers take to notice a dead peer, and to come back.
//!
//! Pure core (no privileges, unit-tested):
//! - [`duration`]: human durations ("3s") and windows ("3s..4.5s").
//! - [`keepalive`]: keepalive settings and the kernel's limits.
//! - [`model`]: predicted detection windows from the kernel's rules.
//! - [`fidelity`]: random cells (settings x traffic x fault) for checking the model.
//! - [`input`]: a user's TOML file to typed values, errors located at the key.
//! - [`scenario`]: scenario files as types, validated.
//! - [`side`]: client or server.
//! - [`plan`]: a scenario resolved into timed fault steps, peer settings and windows.
//! - [`predict`]: `flatline predict` flags, checked as a scenario is.
//! - [`record`]: typed events and the versioned JSON document a run produces.
//! - [`analysis`]: what a record's events mean (detection and reconnect latencies).
//! - [`pool`]: a pool of connections: distributions and the reconnect storm.
//! - [`verdict`]: expectations judged against a record's events, and the record's summary.
//! - [`schema`]: JSON Schemas of the record, as shipped in `schema/`.
//! - [`compare`]: settings x faults matrices, as tables.
//! - [`report`]: the terminal summary.
//! - [`merge`]: shard records joined into one result, as an unsharded run.
//! - [`suite`]: many scenarios at once: how many labs at a time, which ones, the final count.
//! - [`program`]: user programs (black box): commands, lost/back lines, output.
//! - [`blackbox`]: what a user program's connections, as the observer saw them, mean for the
//!   record: when it noticed, when it was back, the findings.
//! - [`observer`]: a program's connections as its kernel saw them (trace and dump records).
//!
//! Side-effecting shell:
//! - [`cli`]: the `flatline` subcommands; `main.rs` only parses and exits.
//! - [`testing`]: run a scenario from a `#[test]` of your own crate, get its record.
//! - [`sockdiag`]: a namespace's TCP sockets (sock_diag) and which process holds them.
//! - [`tracefs`]: a tracefs instance of ours: TCP tracepoints on the monotonic clock (root).
//! - [`watcher`]: one thread per user program in its namespace, feeding the observer.
//! - [`sandbox`]: the user and PID namespaces that make a run leave nothing behind.
//! - [`lab`]: network namespaces, links and addresses.
//! - [`delay`]: delay and jitter on the wire (nfqueue), no netem needed.
//! - [`failover`]: where a client connects (list, hosts file), the run's hosts file, and which
//!   host each connection reached.
//! - [`fault`]: inject and heal faults (scripts in `scripts/fault/`).
//! - [`linkwatch`]: when the kernel applied a cable pull (rtnetlink link/route events).
//! - [`nftwatch`]: when the kernel committed a firewall fault (`nft monitor`).
//! - [`netlink`]: what the kernel-event watchers share: a netlink socket in a namespace, the
//!   listen loop, the stamped records a task waits on.
//! - [`peer`]: the reference server and client.
//! - [`runner`]: the one event loop that runs a scenario.
//! - [`progress`]: what the running labs are doing, on a terminal.
//! - [`output`]: the output directory, files written whole or not at all.
//! - [`bench`]: `flatline bench`, medians against baselines.
//! - [`delaybench`]: `flatline bench --delay`, the wire's delay against its setting.
//! - [`clock`]: the monotonic clock every process stamps with.

pub mod advise;
pub mod analysis;
pub mod bench;
pub mod blackbox;
pub mod cli;
pub mod clock;
pub mod compare;
pub mod delay;
pub mod delaybench;
pub mod duration;
pub mod failover;
pub mod fault;
pub mod fidelity;
pub mod html;
pub mod input;
pub mod junit;
pub mod keepalive;
pub mod lab;
pub mod linkwatch;
pub mod merge;
pub mod model;
pub mod netlink;
pub mod nftwatch;
pub mod observer;
pub mod output;
pub mod peer;
pub mod plan;
pub mod pool;
pub mod predict;
pub mod program;
pub mod progress;
pub mod record;
pub mod report;
pub mod runner;
pub mod sandbox;
pub mod scenario;
pub mod schema;
pub mod side;
pub mod sockdiag;
pub mod suite;
pub mod testing;
pub mod tracefs;
pub mod verdict;
pub mod watcher;
