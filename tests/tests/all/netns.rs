//! Eight nodes, each in its own Linux network namespace on a bridge, as eight machines on a
//! LAN: the seed examples print what they print on one node, and a 1 GiB object reaches the
//! seven other nodes intact. Needs root (CI runs as root); elsewhere it says why it did not run.

use crate::cluster::{bin, text, varies};
use std::process::Output;
use std::time::Duration;
use wasmray_tests::guests;
use wasmray_tests::netns::Netns;
use wasmray_tests::process_cluster::ProcessCluster;

#[test]
fn eight_nodes_in_network_namespaces_run_the_examples_and_a_1_gib_broadcast() -> anyhow::Result<()>
{
    if let Some(why) = Netns::available() {
        eprintln!("not run: {why}");
        return Ok(());
    }
    // Nine nodes and eight copies of 1 GiB swamp this machine: nothing measured runs beside.
    let _machine = wasmray_tests::whole_machine();
    let netns = Netns::create(8)?;
    let cache = wasmray_tests::test_cache_dir();
    let head_ip = netns.address(0).to_string();
    let mut cluster = ProcessCluster::start_via(
        &netns.launcher(0),
        bin(),
        &cache,
        &[
            "--port",
            "6390",
            "--node-ip-address",
            &head_ip,
            "--num-cpus",
            "0",
        ],
    )?;
    for i in 1..netns.len() {
        let ip = netns.address(i).to_string();
        let resources = format!(r#"{{"node{i}": 1}}"#);
        cluster.add_node_via(
            &netns.launcher(i),
            &[
                "--node-ip-address",
                &ip,
                "--num-cpus",
                "2",
                "--resources",
                &resources,
                "--object-store-memory",
                "2GiB",
            ],
        )?;
    }
    cluster.wait_for_nodes(8, Duration::from_secs(60))?;
    let driver = netns.launcher(0);
    let run = |args: &[&str]| cluster.run_via(&driver, args);

    // The seed examples (not `batching`: its 100,000 one-by-one tasks are the 3-node test's).
    let examples: &[(&str, &[&str])] = &[
        (guests::QUICKSTART, &[]),
        (guests::COUNTER, &[]),
        (guests::ACTOR_POOL, &[]),
        (guests::MESSAGE_ACTOR, &[]),
        (guests::PIPELINE, &[]),
        (guests::TREE_REDUCE, &[]),
        (guests::MATMUL, &[]),
        (guests::PUT_ONCE, &["1000"]),
    ];
    let mut failures = Vec::new();
    for (guest, args) in examples {
        let mut alone = vec!["run", guest];
        alone.extend_from_slice(args);
        let expected = cluster.wasmray(&alone);
        let mut across = vec![*guest];
        across.extend_from_slice(args);
        let got = run(&across);
        let keep = |out: &Output| -> Vec<String> {
            text(out)
                .0
                .lines()
                .filter(|l| !varies(l))
                .map(str::to_owned)
                .collect()
        };
        if !expected.status.success() || !got.status.success() || keep(&expected) != keep(&got) {
            failures.push(format!(
                "{guest}:\n  alone: {:?}\n  across: {:?}",
                text(&expected),
                text(&got)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // One 1 GiB object to the seven other nodes, each copy checked page by page.
    let out = run(&[guests::BENCH, "broadcast", "1024", "7"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("broadcast bytes=1073741824 nodes=7 "))
        .unwrap_or_else(|| panic!("{stdout}"));
    println!("{line}");

    // Afterwards no node holds anything: every copy was freed.
    cluster.wait_for_status("; object store 0 B /", Duration::from_secs(60))?;
    drop(cluster);
    drop(netns);
    Ok(())
}

/// `test_chaos` with the network failing instead of processes: the `chaos` job (rounds of
/// 2,047 dependent tasks, 8 large results and 20 actor calls, at least 10,000 tasks) on four
/// workers, each in its own namespace; one worker is cut off silently (blackhole routes: its packets vanish)
/// and later another's link is set down; each is declared dead by the head's health check
/// and a replacement joins in a fresh namespace. Every result is exact and the nodes left
/// hold no object. Needs root.
#[test]
fn chaos_with_a_node_cut_off_and_a_link_down_loses_nothing() -> anyhow::Result<()> {
    if let Some(why) = Netns::available() {
        eprintln!("not run: {why}");
        return Ok(());
    }
    let _machine = wasmray_tests::whole_machine();
    let netns = Netns::create(7)?;
    let cache = wasmray_tests::test_cache_dir();
    let head_ip = netns.address(0).to_string();
    let mut head_args = vec![
        "--port",
        "6390",
        "--node-ip-address",
        &head_ip,
        "--num-cpus",
        "0",
    ];
    head_args.extend_from_slice(&wasmray_tests::process_cluster::QUICK_DETECTION);
    let mut cluster = ProcessCluster::start_via(&netns.launcher(0), bin(), &cache, &head_args)?;
    let worker = |cluster: &mut ProcessCluster, i: usize| {
        let ip = netns.address(i).to_string();
        cluster.add_node_via(
            &netns.launcher(i),
            &[
                "--node-ip-address",
                &ip,
                "--num-cpus",
                "1",
                "--resources",
                r#"{"worker": 1}"#,
            ],
        )
    };
    for i in 1..=4 {
        worker(&mut cluster, i)?;
    }
    cluster.wait_for_nodes(5, Duration::from_secs(60))?;
    let started = std::time::Instant::now();
    let driver = cluster.spawn_driver_via(&netns.launcher(0), &[guests::CHAOS, "5"])?;
    let printed = cluster.drivers[driver].wait_lines("round 0 ok", Duration::from_secs(120))?;
    // Cut off silently; a replacement in a fresh namespace.
    netns.blackhole(1)?;
    // The head, three workers and the driver's node.
    cluster.wait_for_status("nodes, 5 alive", Duration::from_secs(30))?;
    eprintln!(
        "blackholed node declared dead after {:?}",
        started.elapsed()
    );
    worker(&mut cluster, 5)?;
    std::thread::sleep(Duration::from_millis(500));
    // A link set down; another replacement.
    netns.link_down(2)?;
    cluster.wait_for_status("nodes, 5 alive", Duration::from_secs(30))?;
    eprintln!("unlinked node declared dead after {:?}", started.elapsed());
    worker(&mut cluster, 6)?;
    cluster.add_node_via(
        &netns.launcher(0),
        &[
            "--node-ip-address",
            &head_ip,
            "--num-cpus",
            "0",
            "--resources",
            r#"{"done": 1}"#,
        ],
    )?;
    crate::cluster::finish_chaos(&mut cluster, driver, printed, started)?;
    // Death is final: the node cut off, back on the network, is refused and stops.
    netns.heal(1)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(exit) = cluster.nodes[0].child.try_wait()? {
            break exit;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the node cut off still runs a minute after it is reachable again"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let lines = cluster.nodes[0].printed();
    assert_eq!(exit.code(), Some(1), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("the head declared this node dead")),
        "{lines:#?}"
    );
    drop(cluster);
    drop(netns);
    Ok(())
}
