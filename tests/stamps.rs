//! Lab tests of when faults are stamped: the kernel applied the change, not the script exited
//! (issue 8, item 6). They build a lab in-process and need root.

/// A cable pull is stamped when rtnetlink reports the link (or, for a heal that re-adds the
/// default route, that route) changed: after the script started and no later than it exited.
/// A stamp taken at the script's exit, or matched to the wrong link or namespace, fails.
#[test]
fn cable_pull_is_stamped_when_the_kernel_applies_it() {
    /// A woken thread runs within a few ms even on two loaded cores (CFS latency 6 ms).
    const LISTENER_WAKE_NS: u64 = 10_000_000;
    use flatline::fault::{Mechanism, CABLE_PULL_SH};
    use flatline::lab::{self, Lab, LabConfig, Ns};
    assert!(
        nix::unistd::geteuid().is_root(),
        "this lab test builds a lab in-process and needs root (CI runs as root)"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let lab = Lab::up(&LabConfig::default()).expect("lab");
    let watch = flatline::linkwatch::LinkWatch::start(&lab, &[Ns::Wire, Ns::Client])
        .expect("rtnetlink sockets in the wire and client namespaces");
    let pull = |ns, args: &[&str]| Mechanism::Script {
        ns,
        name: "cable-pull",
        script: CABLE_PULL_SH,
        args: args.iter().map(|a| a.to_string()).collect(),
    };
    let gateway = lab::WIRE_CLIENT_ADDR.to_string();
    let steps = [
        pull(Ns::Wire, &["inject", lab::WIRE_SERVER_LINK]),
        pull(Ns::Wire, &["heal", lab::WIRE_SERVER_LINK]),
        pull(Ns::Client, &["inject", lab::CLIENT_LINK]),
        pull(Ns::Client, &["heal", lab::CLIENT_LINK, &gateway]),
    ];
    for step in &steps {
        let started = flatline::clock::now_ns();
        flatline::fault::run_script(&lab, step).expect("cable-pull script");
        let exited = flatline::clock::now_ns();
        let applied = runtime
            .block_on(watch.applied(step, started))
            .unwrap_or_else(|| panic!("no kernel event for {}", step.describe()));
        // The event is stamped when our listener thread wakes: on a loaded machine that can
        // be a scheduling delay after the script exits (the runner then keeps the exit).
        assert!(
            started <= applied && applied <= exited + LISTENER_WAKE_NS,
            "{}: kernel event at {applied} ns outside the script's run {started}..{exited} ns",
            step.describe()
        );
        println!(
            "{}: kernel event {:.3} ms before the script's exit",
            step.describe(),
            (exited as f64 - applied as f64) / 1e6
        );
    }
    watch.stop();
    lab.teardown();
}

/// A NAT timeout is a sysctl the runner writes itself in the wire namespace: the stamp is the
/// return of write(2) (the kernel holds the value), the value is the wire's alone, and the
/// script that used to do it (and be stamped at its exit) takes longer to get there.
#[test]
fn nat_timeout_is_stamped_when_the_kernel_holds_it() {
    use flatline::fault::{Mechanism, CT_TIMEOUT_ESTABLISHED, NAT_SH};
    use flatline::lab::{self, Lab, LabConfig, Ns};
    assert!(
        nix::unistd::geteuid().is_root(),
        "this lab test builds a lab in-process and needs root (CI runs as root)"
    );
    let lab = Lab::up(&LabConfig::default()).expect("lab");
    let nat = |args: Vec<String>| Mechanism::Script {
        ns: Ns::Wire,
        name: "nat",
        script: NAT_SH,
        args,
    };
    let setup = nat(vec![
        "setup".into(),
        format!("{}/24", lab::CLIENT_NET),
        lab::WIRE_SERVER_LINK.into(),
        "drop".into(),
    ]);
    flatline::fault::run_script(&lab, &setup).expect("nat setup");
    let read_back = || {
        let mut cat = lab.command(Ns::Wire, "cat", &[]);
        cat.arg(format!(
            "/proc/sys/{}",
            CT_TIMEOUT_ESTABLISHED.replace('.', "/")
        ));
        lab.run(Ns::Wire, cat, "")
            .expect("read the sysctl")
            .trim()
            .to_owned()
    };
    for value in ["4", "432000", "7", "432000"] {
        let called = flatline::clock::now_ns();
        let held = lab
            .write_sysctl(Ns::Wire, CT_TIMEOUT_ESTABLISHED, value)
            .expect("write the timeout");
        let returned = flatline::clock::now_ns();
        assert!(called <= held && held <= returned);
        assert_eq!(read_back(), value, "the wire namespace holds the new value");
        let started = flatline::clock::now_ns();
        flatline::fault::run_script(&lab, &nat(vec!["inject".into(), value.into()]))
            .expect("nat.sh inject");
        let exited = flatline::clock::now_ns();
        println!(
            "timeout {value}: write(2) returned {:.3} ms after the call; nat.sh took {:.3} ms to exit",
            (held - called) as f64 / 1e6,
            (exited - started) as f64 / 1e6
        );
    }
    lab.teardown();
}

/// A firewall fault is stamped when nf_tables commits its table: our netlink socket in the
/// wire namespace hears NFT_MSG_NEWTABLE / NFT_MSG_DELTABLE after the script started and
/// before it exited, as root without the `nft monitor` process in between. A stamp taken at
/// the script's exit, or matched to another table, fails.
#[test]
fn firewall_fault_is_stamped_when_nftables_commits_it() {
    /// A woken real-time thread runs within a few ms even on two loaded cores.
    const LISTENER_WAKE_NS: u64 = 10_000_000;
    use flatline::fault::{Mechanism, FIREWALL_SH};
    use flatline::lab::{self, Lab, LabConfig, Ns};
    assert!(
        nix::unistd::geteuid().is_root(),
        "this lab test builds a lab in-process and needs root (CI runs as root)"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let lab = Lab::up(&LabConfig::default()).expect("lab");
    let watch = flatline::nftwatch::NftWatch::start(&lab).expect("a watcher in the wire");
    assert!(
        watch.is_netlink(),
        "as root the wire's nf_tables group is ours to join"
    );
    let firewall = |args: &[&str]| Mechanism::Script {
        ns: Ns::Wire,
        name: "firewall",
        script: FIREWALL_SH,
        args: args.iter().map(|a| a.to_string()).collect(),
    };
    let (client, server) = (lab::CLIENT_ADDR.to_string(), lab::SERVER_ADDR.to_string());
    let steps = [
        firewall(&["inject", "a", &client, &server, "both", "drop"]),
        firewall(&["inject", "b", &client, &server, "to-server", "icmp-host"]),
        firewall(&["heal", "a"]),
        firewall(&["heal", "b"]),
    ];
    for step in &steps {
        let started = flatline::clock::now_ns();
        flatline::fault::run_script(&lab, step).expect("firewall script");
        let exited = flatline::clock::now_ns();
        let committed = runtime
            .block_on(watch.committed(step, started))
            .unwrap_or_else(|| panic!("no nf_tables message for {}", step.describe()));
        assert!(
            started <= committed && committed <= exited + LISTENER_WAKE_NS,
            "{}: commit heard at {committed} ns outside the script's run {started}..{exited} ns",
            step.describe()
        );
        println!(
            "{}: commit heard {:.3} ms before the script's exit",
            step.describe(),
            (exited as f64 - committed as f64) / 1e6
        );
    }
    watch.stop();
    lab.teardown();
}
