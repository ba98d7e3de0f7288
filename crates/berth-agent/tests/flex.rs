//! Flex services on a real etcd (root, the rig of `common`): `topology = "flex"` with
//! `flex_target = 2`, `flex_max = 2` on three nodes, one `[fs#flag] type = flag` resource, so
//! an instance is the flag file in its node's run dir. Truth is read on the host; every case is
//! sampled every 100 ms on every node and fails if more than `flex_max` instances are live in
//! any sample (one probe per node: a node runs at most one instance by construction of the
//! probe; the slot transaction is what keeps the count).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth_testkit::cluster::{Sampler, wait_until};
use common::{Rig, Spec, svc_ok};

const FLEX_MAX: usize = 2;

fn flex_file(nodes: usize) -> String {
    let list: Vec<String> = (1..=nodes).map(|i| format!("\"n{i}\"")).collect();
    format!(
        "[service]\nnodes = [{}]\ntopology = \"flex\"\nflex_min = 1\nflex_max = {FLEX_MAX}\n\
         flex_target = 2\norchestrate = \"ha\"\n\n[fs.flag]\ntype = \"flag\"\n",
        list.join(", ")
    )
}

fn rig(nodes: usize) -> Rig {
    Rig::new(Spec {
        nodes,
        members: 1,
        ttl: 3,
        services: 0,
        files: vec![("fx.toml".to_string(), flex_file(nodes))],
        ..Spec::default()
    })
}

fn flag(rig: &Rig, node: &str) -> PathBuf {
    rig.node(node).run_dir().join("fx/flags/fs#flag")
}

fn sampler(rig: &Rig) -> Sampler {
    let probes = rig
        .nodes
        .iter()
        .map(|n| (n.name().to_string(), n.file_probe(&flag(rig, n.name()))))
        .collect();
    Sampler::start(probes)
}

/// The nodes with a live instance.
fn live(rig: &Rig) -> Vec<String> {
    rig.nodes
        .iter()
        .filter(|n| n.holder_pid().is_some() && flag(rig, n.name()).exists())
        .map(|n| n.name().to_string())
        .collect()
}

fn wait_live(rig: &Rig, want: &[&str], bound: Duration) {
    wait_until(bound, &format!("instances live on {want:?}"), || {
        live(rig) == want
    });
}

/// A dead node's run dir is a tmpfs that the reboot empties: empty it as the boot would.
fn reboot(rig: &mut Rig, node: &str) {
    let _ = std::fs::remove_dir_all(rig.node(node).run_dir().join("fx"));
    rig.reboot(node);
    rig.wait_alive(node);
}

#[test]
fn two_instances_on_three_nodes_a_dead_nodes_instance_is_replaced() {
    let mut rig = rig(3);
    let sampler = sampler(&rig);
    // The first-ranked fit nodes start one instance each.
    wait_live(&rig, &["n1", "n2"], Duration::from_secs(30));
    // svc mon: `fx  up ha 2/2 | O  O  X`, and why n3 runs none.
    wait_until(
        Duration::from_secs(15),
        "svc mon shows fx up ha 2/2",
        || {
            let out = svc_ok(rig.node("n3"), &["mon"]);
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            text.lines()
                .any(|l| l.starts_with(" fx ") && l.contains("up ha 2/2") && l.contains("| O"))
        },
    );
    let v = rig.mon();
    assert_eq!(
        v["services"]["fx"]["why"]["n3"], "target met: 2/2 instances up",
        "{v}"
    );
    assert_eq!(v["services"]["fx"]["flex"]["target"], 2, "{v}");
    let log = svc_ok(rig.node("n1"), &["fx", "logs"]);
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(log.contains("flex instance (slot"), "{log}");
    let mut times = Vec::new();
    // n1 dies: n3 replaces its instance; n1 comes back and starts nothing (target met).
    let mark = sampler.elapsed();
    let killed = Instant::now();
    rig.node_mut("n1").kill();
    wait_live(&rig, &["n2", "n3"], Duration::from_secs(20));
    println!("n1 killed: instance on n3 after {:?}", killed.elapsed());
    times.push(("n3", mark));
    reboot(&mut rig, "n1");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(live(&rig), ["n2", "n3"], "{}", rig.logs());
    // n2 dies: n1 takes its place.
    let mark = sampler.elapsed();
    rig.node_mut("n2").kill();
    wait_live(&rig, &["n1", "n3"], Duration::from_secs(20));
    times.push(("n1", mark));
    let timeline = sampler.stop();
    assert!(
        timeline.max_concurrent_up() <= FLEX_MAX,
        "more than flex_max live: {timeline}\n{}",
        rig.logs()
    );
    let took: Vec<Duration> = times
        .iter()
        .map(|(n, m)| timeline.first_up_after(n, *m).expect("up after the kill") - *m)
        .collect();
    println!("flex replacement after node death (ttl 3s): {took:?}");
    for t in &took {
        assert!(*t <= Duration::from_secs(5), "replacement took {t:?}");
    }
}

#[test]
fn a_partitioned_node_stops_its_instance_before_its_lease_expires() {
    let rig = rig(3);
    let sampler = sampler(&rig);
    wait_live(&rig, &["n1", "n2"], Duration::from_secs(30));
    let cut = sampler.elapsed();
    rig.node("n1").cut();
    // The other side replaces it once n1's lease (and slot) expired.
    wait_live(&rig, &["n2", "n3"], Duration::from_secs(20));
    let log = rig.node("n1").svcd_log();
    assert!(
        log.contains("stopping this node's cluster services before the deadline"),
        "{log}"
    );
    let timeline = sampler.stop();
    assert!(
        timeline.max_concurrent_up() <= FLEX_MAX,
        "more than flex_max live: {timeline}\n{}",
        rig.logs()
    );
    let n1_down = timeline
        .samples
        .iter()
        .find(|s| s.at >= cut && !s.up[0])
        .map(|s| s.at - cut)
        .expect("n1's instance stops");
    let n3_up = timeline.first_up_after("n3", cut).expect("n3's up") - cut;
    println!("cut n1: its instance down after {n1_down:?}, n3's up after {n3_up:?}");
    assert!(n1_down < n3_up, "{timeline}");
    assert!(n1_down < rig.ttl, "{timeline}");
    rig.node("n1").heal();
}

#[test]
fn stop_all_stops_every_instance_for_good_and_start_all_brings_flex_target_up() {
    let rig = rig(3);
    let sampler = sampler(&rig);
    wait_live(&rig, &["n1", "n2"], Duration::from_secs(30));
    // From the node that runs none: every instance stops, the command waits for it.
    let out = svc_ok(rig.node("n3"), &["fx", "stop", "--all", "--timeout", "30"]);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    println!("svc fx stop --all:\n{said}");
    assert!(said.contains("target stopped cluster-wide"), "{said}");
    assert!(said.contains("fx: 0 instances up"), "{said}");
    assert_eq!(live(&rig), Vec::<String>::new(), "{said}\n{}", rig.logs());
    // And they stay down: several monitor intervals (1 s) later, nothing was started again.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(live(&rig), Vec::<String>::new(), "{}", rig.logs());
    let v = rig.mon();
    assert_eq!(
        v["services"]["fx"]["why"]["n3"], "stopped by an operator",
        "{v}"
    );
    // start --all: the orchestrators bring flex_target (2) up again, on the first-ranked.
    let out = svc_ok(rig.node("n3"), &["fx", "start", "--all", "--timeout", "30"]);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    println!("svc fx start --all:\n{said}");
    assert!(said.contains("fx: 2 instances up: n1, n2"), "{said}");
    assert_eq!(live(&rig), ["n1", "n2"], "{said}\n{}", rig.logs());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(live(&rig), ["n1", "n2"], "{}", rig.logs());
    let timeline = sampler.stop();
    assert!(
        timeline.max_concurrent_up() <= FLEX_MAX,
        "more than flex_max live: {timeline}\n{}",
        rig.logs()
    );
}

#[test]
fn start_all_says_how_many_are_missing_when_too_few_nodes_are_alive() {
    let mut rig = rig(3);
    let sampler = sampler(&rig);
    wait_live(&rig, &["n1", "n2"], Duration::from_secs(30));
    svc_ok(rig.node("n1"), &["fx", "stop", "--all", "--timeout", "30"]);
    assert_eq!(live(&rig), Vec::<String>::new(), "{}", rig.logs());
    // Only n1 is left: one instance of flex_target 2 can start.
    rig.node_mut("n2").kill();
    rig.node_mut("n3").kill();
    let out = common::svc(rig.node("n1"), &["fx", "start", "--all", "--timeout", "10"]);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    println!("svc fx start --all with n2, n3 dead:\n{said}");
    assert_eq!(out.status.code(), Some(1), "{said}\n{}", rig.logs());
    assert!(
        said.contains(
            "start --all not done within 10s: 1 of flex_target 2 instances of fx up (n1)"
        ),
        "{said}"
    );
    assert_eq!(live(&rig), ["n1"], "{}", rig.logs());
    let timeline = sampler.stop();
    assert!(
        timeline.max_concurrent_up() <= FLEX_MAX,
        "more than flex_max live: {timeline}\n{}",
        rig.logs()
    );
}
