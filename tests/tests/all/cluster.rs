//! The cluster: nodes linked by QUIC on loopback, work placed across them, objects pulled
//! between stores.

use std::time::Duration;
use wasmray_node::DriverExit;
use wasmray_tests::cluster::{FAST_HEALTH_CHECK, LocalCluster};
use wasmray_tests::guests;

/// The whole cluster's stores and tables empty, and no node keeps an entry for the ended
/// job (waits up to 10 s for work winding down).
async fn assert_cluster_empty(cluster: &LocalCluster) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats: Vec<_> = cluster.all().map(|n| n.stats()).collect();
        let empty = stats
            .iter()
            .all(|s| s.store.objects == 0 && s.sched.objects == 0 && s.jobs == 0);
        if empty {
            return;
        }
        if std::time::Instant::now() > deadline {
            panic!("objects left on the cluster's nodes: {stats:#?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_runs_on_a_cluster_whose_head_has_no_cpus() -> anyhow::Result<()> {
    let cluster = LocalCluster::start(0.0, &[(2.0, &[]), (2.0, &[])]).await?;
    let module = cluster.head.load_module(guests::QUICKSTART.as_ref())?;
    let exit = cluster.head.run_driver(&module, &[]).await?;
    assert!(
        matches!(exit, DriverExit::Exited(0)),
        "{exit:?}\n{}",
        cluster.output.all_text()
    );
    let lines = cluster.output.driver_stdout();
    assert_eq!(lines, wasmray_tests::quickstart_output(3, 4));
    assert_cluster_empty(&cluster).await;
    Ok(())
}

/// A line that differs between runs or cluster shapes (timings, the cluster's size).
pub(crate) fn varies(line: &str) -> bool {
    [
        "took",
        "elapsed",
        "per second",
        "/s",
        "polled ",
        "nodes: ",
        "cluster CPU total",
    ]
    .iter()
    .any(|word| line.contains(word))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_prints_the_same_on_a_cluster_as_on_one_node() -> anyhow::Result<()> {
    let examples: &[(&str, &str, &[&str])] = &[
        ("quickstart", guests::QUICKSTART, &[]),
        ("counter", guests::COUNTER, &[]),
        ("actor-pool", guests::ACTOR_POOL, &[]),
        ("message-actor", guests::MESSAGE_ACTOR, &[]),
        ("pipeline", guests::PIPELINE, &[]),
        ("tree-reduce", guests::TREE_REDUCE, &[]),
        ("matmul", guests::MATMUL, &[]),
        ("put-once", guests::PUT_ONCE, &["1000"]),
        ("batching", guests::BATCHING, &[]),
    ];
    let cluster = LocalCluster::start(0.0, &[(4.0, &[]), (4.0, &[])]).await?;
    let mut failures = Vec::new();
    for (name, guest, args) in examples {
        let reference = wasmray_tests::run_guest(guest, 8.0, args).await?;
        let expected: Vec<String> = reference
            .stdout_ok()
            .into_iter()
            .filter(|l| !varies(l))
            .collect();
        let module = cluster.head.load_module(guest.as_ref())?;
        let before = cluster.output.driver_stdout().len();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let exit = cluster.head.run_driver(&module, &args).await?;
        let got: Vec<String> = cluster.output.driver_stdout()[before..]
            .iter()
            .filter(|l| !varies(l))
            .cloned()
            .collect();
        if !matches!(exit, DriverExit::Exited(0)) || got != expected {
            failures.push(format!(
                "{name}: {exit:?}\n  expected {expected:?}\n  got      {got:?}"
            ));
        }
        assert_cluster_empty(&cluster).await;
    }
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n"),
        cluster
            .output
            .all_text()
            .lines()
            .filter(|l| l.contains("rror"))
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    Ok(())
}

/// A node that goes away (dropped: its links close) is declared dead by the head, and the
/// other nodes are told, under the test health check (100 ms of silence at most).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_goes_away_is_declared_dead_and_the_others_are_told() -> anyhow::Result<()> {
    let mut cluster =
        LocalCluster::start_checking(FAST_HEALTH_CHECK, 0.0, &[(1.0, &[]), (1.0, &[])], |_| {})
            .await?;
    let gone = cluster.nodes.remove(0);
    let id = gone.id();
    let started = std::time::Instant::now();
    drop(gone);
    cluster.wait_for_nodes(2).await?;
    let dead = cluster
        .head
        .members()
        .into_iter()
        .find(|(node, _)| *node == id)
        .map(|(_, member)| member.state);
    assert_eq!(dead, Some(wasmray_sched::MemberState::Dead));
    eprintln!("declared dead and told within {:?}", started.elapsed());
    // The cluster goes on: a driver on the head runs on the node left.
    let module = cluster.head.load_module(guests::QUICKSTART.as_ref())?;
    let exit = cluster.head.run_driver(&module, &[]).await?;
    assert!(matches!(exit, DriverExit::Exited(0)), "{exit:?}");
    Ok(())
}

// --- Clusters of processes, through the real binary ------------------------------------

use std::process::Output;
use wasmray_tests::process_cluster::{ProcessCluster, QUICK_DETECTION};

/// The CLI under test.
pub(crate) fn bin() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_wasmray-under-test").as_ref()
}

/// A finished process's stdout and stderr.
pub(crate) fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn processes_form_a_cluster_that_runs_a_driver_shows_its_nodes_and_sees_a_node_die()
-> anyhow::Result<()> {
    let cache = wasmray_tests::test_cache_dir();
    let mut cluster = quick_cluster(&cache)?;
    cluster.add_node(&["--num-cpus", "2"])?;
    cluster.add_node(&[
        "--num-cpus",
        "1",
        "--resources",
        r#"{"special": 1}"#,
        "--num-gpus",
        "1",
        "--object-store-memory",
        "1GiB",
    ])?;
    cluster.wait_for_nodes(3, Duration::from_secs(20))?;

    // A driver on the cluster: its process joins, every task runs on another process.
    let out = cluster.run_via(&[], &[guests::QUICKSTART]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("sum of 10 tasks reading one put = 27472500"),
        "{stdout}"
    );
    assert!(stdout.contains("cluster CPU total: 3"), "{stdout}");
    // What a task prints on another node reaches the driver's terminal, labelled with it.
    let out = cluster.run_via(&[], &[guests::HELLO]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.lines().any(|l| l.starts_with("(hello task=")
            && l.contains(" node=")
            && l.ends_with(") hello from task")),
        "{stdout}"
    );
    // The microbenchmark's cross-node cases: work pinned to the node with `special`.
    let out = cluster.wasmray_with(
        &[
            "microbenchmark",
            "--quick",
            "--address",
            &cluster.address,
            "--token",
            &cluster.token,
            "--ca-hash",
            &cluster.ca_hash,
            "--pin",
            "special",
        ],
        &[("TESTS_TO_RUN", "1:1 actor calls sync")],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("1:1 actor calls sync per second "),
        "{stdout}"
    );
    assert!(!stdout.contains("cold start"), "{stdout}");
    let out = cluster.wasmray(&[
        "microbenchmark",
        "--address",
        &cluster.address,
        "--pin",
        "a b",
    ]);
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    assert!(
        text(&out).1.contains("--pin takes a resource name"),
        "{:?}",
        text(&out)
    );

    // Status lists every node with its resources, and the cluster's totals (once the nodes'
    // reports after the run reached the head: they come at least once a second).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = cluster.wasmray(&["status"]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        let settled = stdout.contains("total: CPU 3/3, GPU 1/1, special 1/1; object store 0 B");
        if settled {
            assert!(stdout.contains("(head)"), "{stdout}");
            // The driver's node left when its driver ended: not dead, left.
            assert!(stdout.lines().any(|l| l.contains(" left ")), "{stdout}");
            assert!(stdout.contains("0 B / 1.0 GiB"), "{stdout}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{stdout}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A node killed with SIGKILL is declared dead by the head.
    cluster.kill_node(0);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let stdout = text(&cluster.wasmray(&["status"])).0;
        if stdout.lines().any(|l| l.contains(" dead ")) && stdout.contains("total: CPU 1/1") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{stdout}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // `wasmray stop` stops what `start` started on this machine.
    let out = cluster.wasmray(&["stop"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("Stopped 2 wasmray nodes"),
        "{stdout}\nhead: {:?}\nnode: {:?}",
        cluster.head.printed(),
        cluster.nodes[1].printed()
    );
    for node in cluster
        .nodes
        .iter_mut()
        .skip(1)
        .chain(std::iter::once(&mut cluster.head))
    {
        let status = node.child.wait()?;
        assert!(status.success(), "a stopped node exits cleanly: {status}");
    }
    Ok(())
}

/// Ray's `test_reconstruction` through the real binary: a chain of large results made on one
/// node, the driver holding only the last; that node is SIGKILLed and another joins; reading
/// the last link still gives the exact value, every link made again from its lineage.
#[test]
fn results_lost_with_a_killed_node_are_made_again_on_another() -> anyhow::Result<()> {
    let cache = wasmray_tests::test_cache_dir();
    let mut cluster = quick_cluster(&cache)?;
    cluster.add_node(&["--num-cpus", "1", "--resources", r#"{"first": 1}"#])?;
    cluster.wait_for_nodes(2, Duration::from_secs(20))?;
    let driver = cluster.spawn_driver(&[guests::FAILURES, "rebuild"])?;
    cluster.drivers[driver].wait_line("chain made", Duration::from_secs(60))?;
    cluster.add_node(&["--num-cpus", "1", "--resources", r#"{"second": 1}"#])?;
    cluster.kill_node(0);
    let driver = &mut cluster.drivers[driver];
    // The chain's first task runs again (on the new node), so every link was made again.
    let mut seen = Vec::new();
    let again = driver.wait_lines("making the first link", Duration::from_secs(60));
    let rebuilt = again.and_then(|lines| {
        seen.extend(lines);
        driver.wait_lines("rebuilt:", Duration::from_secs(60))
    });
    let status = driver.child.wait()?;
    let mut lines = rebuilt.map_err(|e| anyhow::anyhow!("{e}\nexit: {status}"))?;
    let line = lines.pop().unwrap_or_default();
    assert_eq!(line.trim(), "rebuilt: 4");
    seen.extend(lines);
    seen.extend(driver.printed());
    assert!(status.success(), "{status}: {seen:?}");
    // The owner says what it makes again: the chain's last link, lost with the node.
    assert!(
        seen.iter()
            .any(|l| l.contains("result lost with every copy; making it again")),
        "{seen:?}"
    );
    Ok(())
}

/// Ray's actor restart on another node, through the real binary: a named actor runs on node
/// A with calls queued; a node B offering the same resource joins and A is SIGKILLed. The
/// actor is created again on B from its constructor's argument, the calls lost with A run
/// again there, and its name still finds it.
#[test]
fn an_actor_whose_node_is_killed_is_restarted_on_another() -> anyhow::Result<()> {
    let cache = wasmray_tests::test_cache_dir();
    let mut cluster = quick_cluster(&cache)?;
    cluster.add_node(&[
        "--num-cpus",
        "1",
        "--resources",
        r#"{"host": 1, "first": 1}"#,
    ])?;
    cluster.wait_for_nodes(2, Duration::from_secs(20))?;
    let driver = cluster.spawn_driver(&[guests::FAILURES, "restart"])?;
    let mut printed =
        cluster.drivers[driver].wait_lines("actor up: 101", Duration::from_secs(60))?;
    cluster.add_node(&[
        "--num-cpus",
        "1",
        "--resources",
        r#"{"host": 1, "second": 1}"#,
    ])?;
    // The head, A, B and the driver's own node.
    cluster.wait_for_nodes(4, Duration::from_secs(20))?;
    cluster.kill_node(0);
    let driver = &mut cluster.drivers[driver];
    printed.extend(finish_driver(
        driver,
        "found by name:",
        Duration::from_secs(90),
    )?);
    for line in ["all 20 answered", "restarted: true", "found by name: true"] {
        assert!(
            printed.iter().any(|l| l == line),
            "no `{line}`: {printed:#?}"
        );
    }
    let created = printed
        .iter()
        .filter(|l| l.ends_with("tally created with 100"))
        .count();
    assert_eq!(created, 2, "constructed on each node: {printed:#?}");
    Ok(())
}

#[test]
fn start_in_the_background_prints_the_join_command_and_stop_ends_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let run = |args: &[&str]| {
        std::process::Command::new(bin())
            .args(args)
            .env("TMPDIR", dir.path())
            .env("WASMRAY_CACHE_DIR", wasmray_tests::test_cache_dir())
            .output()
            .expect("run wasmray")
    };
    let out = run(&["start", "--head", "--port", "0", "--num-cpus", "1"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let join = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("wasmray start --address"))
        .unwrap_or_else(|| panic!("no join command in {stdout}"));
    let words: Vec<&str> = join.split_whitespace().skip(1).collect();
    let out = run(&words);
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(
        text(&out).0.contains("joined the cluster"),
        "{}",
        text(&out).0
    );
    let status = text(&run(&["status"])).0;
    assert!(status.contains("Cluster: 2 nodes, 2 alive"), "{status}");
    let out = run(&["stop", "--grace", "5"]);
    assert!(
        text(&out).0.contains("Stopped 2 wasmray nodes"),
        "{}",
        text(&out).0
    );
    let out = run(&["stop"]);
    assert!(
        text(&out).0.contains("No wasmray node is running"),
        "{}",
        text(&out).0
    );
    Ok(())
}

/// A process cluster whose head offers no CPUs and declares a silent node dead fast (for
/// tests that kill nodes).
fn quick_cluster(cache: &std::path::Path) -> anyhow::Result<ProcessCluster> {
    ProcessCluster::start(
        bin(),
        cache,
        &[&["--num-cpus", "0"][..], &QUICK_DETECTION].concat(),
    )
}

/// Waits for `driver` to print a line with `needle` and to exit successfully; returns what
/// it printed (an error with all of it otherwise).
fn finish_driver(
    driver: &mut wasmray_tests::process_cluster::NodeProcess,
    needle: &str,
    within: Duration,
) -> anyhow::Result<Vec<String>> {
    let rest = driver.wait_lines(needle, within);
    let status = driver.child.wait()?;
    let mut printed = rest.map_err(|e| anyhow::anyhow!("{e}\nexit: {status}"))?;
    printed.extend(driver.printed());
    anyhow::ensure!(status.success(), "{status}: {printed:#?}");
    Ok(printed)
}

/// Asserts a one-line error on stderr containing `expected` and exit code 2.
fn assert_refused(out: &Output, expected: &str) {
    let (stdout, stderr) = text(out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains(expected), "{stderr}");
}

#[test]
fn bad_cluster_input_gets_a_one_line_error_and_exit_code_2() -> anyhow::Result<()> {
    let cache = wasmray_tests::test_cache_dir();
    let cluster = ProcessCluster::start(bin(), &cache, &["--num-cpus", "1"])?;
    let join = |address: &str, token: &str, pin: &str| {
        cluster.wasmray(&[
            "start",
            "--block",
            "--address",
            address,
            "--token",
            token,
            "--ca-hash",
            pin,
        ])
    };
    // A token that does not match.
    let wrong = format!("{}.0000000000000000", &cluster.token[..6]);
    assert_refused(
        &join(&cluster.address, &wrong, &cluster.ca_hash),
        "does not match",
    );
    // Another cluster's CA pin.
    let pin = format!("sha256:{}", "ab".repeat(32));
    assert_refused(&join(&cluster.address, &cluster.token, &pin), "pin");
    // A head that is not there.
    let nobody = std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .to_string();
    assert_refused(
        &join(&nobody, &cluster.token, &cluster.ca_hash),
        "no wasmray head at",
    );
    // A wrong address.
    assert_refused(
        &join("not an address", &cluster.token, &cluster.ca_hash),
        "is not an address",
    );
    // A malformed token.
    assert_refused(
        &join(&cluster.address, "nope", &cluster.ca_hash),
        "join token is",
    );
    // A node of another wasmray version.
    let out = cluster.wasmray_with(
        &cluster.join_args(),
        &[("WASMRAY_TEST_CLAIM_VERSION", "0.0.1")],
    );
    assert_refused(&out, "run the same version on every node");
    // Two heads on one port (and any port in use).
    let port = cluster
        .address
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let elsewhere = tempfile::tempdir()?;
    let elsewhere = elsewhere.path().to_str().expect("a UTF-8 path").to_owned();
    let out = cluster.wasmray(&[
        "start",
        "--head",
        "--block",
        "--port",
        &port,
        "--data-dir",
        &elsewhere,
    ]);
    assert_refused(&out, &format!("port {port} is in use"));
    // Another head on the same data directory (the default one, here the running head's).
    let out = cluster.wasmray(&["start", "--head", "--block", "--port", "0"]);
    assert_refused(&out, "another wasmray head uses the data directory");
    // An expired token.
    let short = ProcessCluster::start(bin(), &cache, &["--token-ttl", "0.2"])?;
    std::thread::sleep(Duration::from_millis(400));
    let out = short.wasmray(&short.join_args());
    assert_refused(&out, "expired");
    // Health checks too frequent, never failing, or too long to hold.
    let start = ["start", "--head", "--block", "--port", "0"];
    for (flags, expected) in [
        (
            ["--health-check-period", "0.001"],
            "--health-check-period must be at least 0.01 seconds",
        ),
        (
            ["--health-check-timeout", "0"],
            "--health-check-timeout must be a number of seconds > 0",
        ),
        (
            ["--health-check-failures", "0"],
            "--health-check-failures must be between 1 and 1000",
        ),
        (
            ["--health-check-timeout", "1e300"],
            "--health-check-timeout is too large",
        ),
        (["--token-ttl", "1e300"], "--token-ttl is too large"),
    ] {
        assert_refused(&cluster.wasmray(&[&start[..], &flags].concat()), expected);
    }
    // A fault plan that does not parse.
    for (plan, expected) in [
        ("loss=0.1", "unknown key `loss`"),
        (
            "drop_before_send=1.5",
            "drop_before_send must be a fraction from 0 to 1",
        ),
    ] {
        let out = cluster.wasmray_with(&start, &[(wasmray_net::FAULTS_ENV, plan)]);
        assert_refused(&out, expected);
    }
    // `run --address` without the join details, when no head was started here.
    let out = std::process::Command::new(bin())
        .args(["run", "--address", &cluster.address, guests::QUICKSTART])
        .env("TMPDIR", tempfile::tempdir()?.path())
        .output()?;
    assert_refused(&out, "--token and --ca-hash are needed");
    Ok(())
}

/// The control socket of the cluster's head, from the record `wasmray start` left.
fn head_socket(cluster: &ProcessCluster) -> anyhow::Result<std::path::PathBuf> {
    let nodes = cluster.dir().join("wasmray/cluster/nodes");
    for entry in std::fs::read_dir(&nodes)? {
        let record: serde_json::Value = serde_json::from_slice(&std::fs::read(entry?.path())?)?;
        if record["head"] == true {
            let socket = record["socket"].as_str().unwrap_or_default();
            return Ok(socket.into());
        }
    }
    anyhow::bail!("no head record under {}", nodes.display())
}

/// The number after `job` in `Submitted job N.`.
fn submitted_job(out: &Output) -> String {
    let (stdout, stderr) = text(out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("Submitted job "))
        .and_then(|rest| rest.split(['.', ';']).next())
        .unwrap_or_else(|| panic!("no job ID in {stdout}"))
        .to_owned()
}

#[test]
fn jobs_are_submitted_followed_listed_and_stopped_and_modules_deployed() -> anyhow::Result<()> {
    let cache = wasmray_tests::test_cache_dir();
    let mut cluster = ProcessCluster::start(bin(), &cache, &["--num-cpus", "0"])?;
    cluster.add_node(&["--num-cpus", "2"])?;
    cluster.wait_for_nodes(2, Duration::from_secs(20))?;

    // Deploy: the other node answers once it has the module ready.
    let out = cluster.wasmray(&["deploy", guests::QUICKSTART]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("to 1 other node"), "{stderr}");
    assert_eq!(stderr.matches(": ready").count(), 1, "{stderr}");
    assert!(stdout.contains("ready on every node"), "{stdout}");
    // On a terminal (`script` gives it one), a bar that fills once per node.
    let under_script = std::process::Command::new("script")
        .args(["-qc"])
        .arg(format!("{} deploy {}", bin().display(), guests::QUICKSTART))
        .arg("/dev/null")
        .env("TMPDIR", cluster.dir())
        .env("WASMRAY_CACHE_DIR", &cache)
        .output();
    if let Ok(out) = under_script {
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{printed}");
        assert_eq!(
            printed.matches("] 1/1 nodes").count(),
            1,
            "the bar is drawn once full: {printed:?}"
        );
        assert!(printed.contains("] 0/1 nodes"), "{printed:?}");
    }
    // A file that is not a module is refused before any node is asked.
    let junk = cluster.dir().join("junk.wasm");
    std::fs::write(&junk, b"not wasm")?;
    assert_refused(
        &cluster.wasmray(&["deploy", &junk.to_string_lossy()]),
        "junk.wasm",
    );

    // A job runs detached; its log holds the driver's output; it is listed as succeeded.
    let job = submitted_job(&cluster.wasmray(&["submit", guests::QUICKSTART]));
    let out = cluster.wasmray(&["job", "logs", &job, "--follow"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("sum of 10 tasks reading one put = 27472500"),
        "{stdout}"
    );
    let logs = text(&cluster.wasmray(&["job", "logs", &job])).0;
    assert_eq!(logs, stdout, "the whole log, once more");
    // A job's log holds what its tasks printed on other nodes.
    let hello = submitted_job(&cluster.wasmray(&["submit", guests::HELLO]));
    let out = cluster.wasmray(&["job", "logs", &hello, "--follow"]);
    let stdout = text(&out).0;
    assert!(stdout.starts_with("hello from wasmray\n"), "{stdout}");
    assert!(stdout.contains(" node="), "{stdout}");
    assert!(stdout.trim_end().ends_with(") hello from task"), "{stdout}");
    let status = text(&cluster.wasmray(&["job", "status", &job])).0;
    assert!(
        status.starts_with(&format!("Job {job}: succeeded")),
        "{status}"
    );
    let list = text(&cluster.wasmray(&["job", "list"])).0;
    assert!(
        list.lines()
            .any(|l| l.starts_with(&job) && l.contains("succeeded") && l.contains("quickstart")),
        "{list}"
    );

    // `submit --follow` stays and exits as the job does; a failing job says why.
    let out = cluster.wasmray(&["submit", "--follow", guests::DRIVER_ERROR]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains(": failed"), "{stderr}");

    // A job stopped while its task computes on the other node: the driver ends at once and
    // the task is cancelled there, so the node's CPU is free again.
    let job = submitted_job(&cluster.wasmray(&[
        "submit",
        "--max-pending-tasks",
        "10",
        guests::CLI_PROBE,
        "spin=600000",
    ]));
    cluster.wait_for_status("total: CPU 1/2", Duration::from_secs(20))?;
    let out = cluster.wasmray(&["job", "stop", &job]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("Job {job} stopped")), "{stdout}");
    cluster.wait_for_status("total: CPU 2/2", Duration::from_secs(20))?;
    let out = cluster.wasmray(&["job", "stop", &job]);
    assert!(
        text(&out).0.contains("had already ended: stopped"),
        "{:?}",
        text(&out)
    );
    // `--no-wait` returns once the stop is thrown; following the job then ends with it.
    let job = submitted_job(&cluster.wasmray(&["submit", guests::CLI_PROBE, "spin=600000"]));
    let out = cluster.wasmray(&["job", "stop", "--no-wait", &job]);
    assert!(text(&out).0.contains("is stopping"), "{:?}", text(&out));
    let out = cluster.wasmray(&["job", "logs", "-f", &job]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    assert!(text(&out).1.contains(": stopped"), "{:?}", text(&out));

    // Unknown jobs and bad input are one-line errors.
    assert_refused(&cluster.wasmray(&["job", "status", "999"]), "no job 999");
    assert_refused(&cluster.wasmray(&["job", "logs", "999"]), "no job 999");
    assert_refused(
        &cluster.wasmray(&["submit", &junk.to_string_lossy()]),
        "the job did not start",
    );
    assert_refused(
        &cluster.wasmray(&["submit", "/nonexistent/app.wasm"]),
        "cannot read",
    );
    // Another user cannot use the node's control socket, even with every directory on the
    // way open to it (running as root, the test can be that user).
    if wasmray_tests::running_as_root() {
        let socket = head_socket(&cluster)?;
        use std::os::unix::fs::PermissionsExt;
        let mut dir = socket.parent();
        while let Some(d) = dir.filter(|d| d.starts_with(cluster.dir())) {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711))?;
            dir = d.parent();
        }
        std::fs::set_permissions(cluster.dir(), std::fs::Permissions::from_mode(0o711))?;
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin())
            .args(["job", "list", "--socket"])
            .arg(&socket)
            .output()?;
        assert_refused(&out, "cannot reach the node");
        assert!(
            text(&out).1.contains("ermission denied"),
            "{:?}",
            text(&out)
        );
    }
    let elsewhere = tempfile::tempdir()?;
    let out = std::process::Command::new(bin())
        .args(["job", "list"])
        .env("TMPDIR", elsewhere.path())
        .output()?;
    assert_refused(&out, "no running wasmray node");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_detached_actor_is_found_and_called_from_another_node() -> anyhow::Result<()> {
    let cluster = LocalCluster::start(0.0, &[(2.0, &[]), (2.0, &[])]).await?;
    let shared = wasmray_node::JobOptions {
        namespace: Some("team".to_owned()),
        ..Default::default()
    };
    // Job 1's driver runs on the head; its detached actor lives on a worker node.
    let module = cluster.head.load_module(guests::ACTORS.as_ref())?;
    let exit = cluster
        .head
        .run_job(&module, &["detached-create".to_owned()], shared.clone())
        .await?;
    assert!(
        matches!(exit, DriverExit::Exited(0)),
        "{exit:?}\n{}",
        cluster.output.all_text()
    );
    // Job 2's driver runs on another node: it finds the actor by name and calls it.
    let other = &cluster.nodes[1];
    let module = other.load_module(guests::ACTORS.as_ref())?;
    let exit = other
        .run_job(&module, &["detached-lookup".to_owned()], shared)
        .await?;
    assert!(
        matches!(exit, DriverExit::Exited(0)),
        "{exit:?}\n{}",
        cluster.output.all_text()
    );
    assert_eq!(
        cluster.output.driver_stdout(),
        ["detached created", "detached value = 2"]
    );
    let actors: usize = cluster.all().map(|n| n.stats().sched.actors).sum();
    assert!(actors >= 1, "the detached actor outlives both drivers");
    Ok(())
}

/// Ray's `test_chaos`, on any machine (no root): a job of rounds of 2,047 dependent tasks, 8
/// results of 128 KiB that live only where they were made, and 20 actor calls (the `chaos`
/// guest) runs on four worker processes while every link drops, delays and fails a share of
/// its frames and RPCs on purpose (`WASMRAY_TESTING_FAULTS`), and five times a random worker
/// is SIGKILLed and a new one started. Every result is exact, the job finishes, and no store
/// holds an object afterwards.
#[test]
fn chaos_kills_and_injected_faults_lose_nothing() -> anyhow::Result<()> {
    let seed: u64 = std::env::var("WASMRAY_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("chaos seed {seed} (replay the kills: WASMRAY_CHAOS_SEED={seed})");
    let faults = format!(
        "drop_before_send=0.005,drop_after_send=0.005,rpc_before_send=0.01,\
         rpc_after_send=0.01,rpc_after_reply=0.01,max_delay_ms=2,seed={seed}"
    );
    let cache = wasmray_tests::test_cache_dir();
    let mut head_args = vec![
        "--port",
        "0",
        "--node-ip-address",
        "127.0.0.1",
        "--num-cpus",
        "0",
    ];
    head_args.extend_from_slice(&QUICK_DETECTION);
    let mut cluster = ProcessCluster::start_with_env(
        &[],
        bin(),
        &cache,
        &head_args,
        &[(wasmray_net::FAULTS_ENV, faults.as_str())],
    )?;
    let worker = ["--num-cpus", "1", "--resources", r#"{"worker": 1}"#];
    let mut workers: Vec<usize> = Vec::new();
    for _ in 0..4 {
        workers.push(cluster.add_node(&worker)?);
    }
    cluster.wait_for_nodes(5, Duration::from_secs(30))?;
    let started = std::time::Instant::now();
    let driver = cluster.spawn_driver(&[guests::CHAOS, "5"])?;
    let printed = cluster.drivers[driver].wait_lines("round 0 ok", Duration::from_secs(120))?;
    eprintln!("round 0 done after {:?}", started.elapsed());
    let mut rng = seed | 1;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    for kill in 0..5 {
        std::thread::sleep(Duration::from_millis(300 + next(1200)));
        let victim = workers.remove(next(workers.len() as u64) as usize);
        cluster.kill_node(victim);
        workers.push(cluster.add_node(&worker)?);
        eprintln!(
            "kill {}: node #{victim} killed, #{} started",
            kill + 1,
            workers[3]
        );
    }
    cluster.add_node(&["--num-cpus", "0", "--resources", r#"{"done": 1}"#])?;
    eprintln!("damage done after {:?}", started.elapsed());
    finish_chaos(&mut cluster, driver, printed, started)
}

/// The end of a chaos run (the `done` node is up): the driver finishes with every result
/// exact, and no node still in the cluster has an object in its table or a byte in its
/// store (small values inline included: a dead actor's record kept for nobody holds its
/// constructor's arguments there).
pub(crate) fn finish_chaos(
    cluster: &mut ProcessCluster,
    driver: usize,
    mut printed: Vec<String>,
    started: std::time::Instant,
) -> anyhow::Result<()> {
    let driver = &mut cluster.drivers[driver];
    printed.extend(finish_driver(
        driver,
        "chaos done:",
        Duration::from_secs(600),
    )?);
    let done = printed.iter().find(|l| l.starts_with("chaos done:"));
    let retried = printed.iter().filter(|l| l.contains("retrying")).count();
    let restarted = printed
        .iter()
        .filter(|l| l.contains("actor restarting"))
        .count();
    let rebuilt = printed
        .iter()
        .filter(|l| l.contains("making it again"))
        .count();
    eprintln!(
        "{done:?} after {:?}; {retried} retries, {rebuilt} lost results made again and \
         {restarted} actor restarts logged by the driver",
        started.elapsed()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        // The nodes the head lists alive (a node cut off still answers on its socket).
        let status = text(&cluster.wasmray(&["status"])).0;
        let alive: Vec<String> = status
            .lines()
            .filter(|l| l.contains(" alive "))
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect();
        let mut left = Vec::new();
        for socket in glob_sockets(cluster.dir()) {
            if !alive
                .iter()
                .any(|id| socket.contains(&format!("node-{id}/")))
            {
                continue;
            }
            let out = cluster.wasmray(&["memory", "--socket", &socket]);
            let listing = text(&out).0;
            if !listing.contains("\n0 objects, 0 B in all") {
                left.push(format!("{socket}:\n{listing}"));
            }
            let status = text(&cluster.wasmray(&["status", "--socket", &socket])).0;
            if let Some(line) = status.lines().find(|l| l.starts_with("Object store:"))
                && !line.starts_with("Object store: 0 B used")
            {
                let held = status
                    .lines()
                    .find(|l| l.starts_with("Held besides:"))
                    .unwrap_or_default();
                left.push(format!("{socket}: {line}; {held}"));
            }
        }
        if left.is_empty() {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "objects left on the nodes still running:\n{}",
            left.join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The control sockets of the nodes of a process cluster whose `TMPDIR` is `dir`.
pub(crate) fn glob_sockets(dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir.join("wasmray")) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path().join("node.sock"))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect()
}

/// `wasmray drain NODE` through the real binary (Ray's `DrainNode`): node A made a chain of
/// large results that only it holds; B joins, A is drained. A hands its copies to their
/// owner, leaves and exits by itself; the driver reads the last link exactly and nothing is
/// made again. Then a node stopped with SIGTERM drains too (`--drain-timeout`) and is shown
/// as left, not dead.
#[test]
fn a_drained_node_hands_over_what_only_it_holds_and_leaves() -> anyhow::Result<()> {
    let cache = wasmray_tests::test_cache_dir();
    let mut cluster = quick_cluster(&cache)?;
    cluster.add_node(&["--num-cpus", "1", "--resources", r#"{"first": 1}"#])?;
    cluster.wait_for_nodes(2, Duration::from_secs(20))?;
    let driver = cluster.spawn_driver(&[guests::FAILURES, "drain"])?;
    let mut printed = cluster.drivers[driver].wait_lines("chain made", Duration::from_secs(60))?;
    cluster.add_node(&["--num-cpus", "1", "--resources", r#"{"second": 1}"#])?;
    let status = cluster.wait_for_status("second", Duration::from_secs(20))?;
    let first = status
        .lines()
        .find(|l| l.contains("first"))
        .and_then(|l| l.split_whitespace().next())
        .ok_or_else(|| anyhow::anyhow!("no node with `first` in {status}"))?
        .to_owned();
    // A prefix of the ID is enough, and a bad one is refused.
    let out = cluster.wasmray(&["drain", "zz"]);
    assert_refused(&out, "no node of the cluster has an ID starting with `zz`");
    let out = cluster.wasmray(&["drain", &first[..8], "--timeout", "60"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("drained and left the cluster"), "{stdout}");
    let exit = cluster.nodes[0].child.wait()?;
    assert!(exit.success(), "the drained node exits by itself: {exit}");
    let driver = &mut cluster.drivers[driver];
    printed.extend(finish_driver(
        driver,
        "after drain:",
        Duration::from_secs(60),
    )?);
    assert!(
        printed.iter().any(|l| l == "after drain: 4"),
        "{printed:#?}"
    );
    let made = printed
        .iter()
        .filter(|l| l.ends_with("making the first link"))
        .count();
    assert_eq!(made, 1, "nothing made again: {printed:#?}");
    // SIGTERM drains a node before it goes: it is shown as left.
    let third = cluster.add_node(&["--num-cpus", "1", "--drain-timeout", "5"])?;
    let pid = cluster.nodes[third].child.id().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()?;
    assert!(kill.success());
    let exit = cluster.nodes[third].child.wait()?;
    assert!(exit.success(), "{exit}");
    let lines = cluster.nodes[third].printed();
    assert!(
        lines.iter().any(|l| l.starts_with("Draining:")),
        "{lines:#?}"
    );
    let status = cluster.wait_for_status("Cluster: 5 nodes, 2 alive", Duration::from_secs(20))?;
    assert_eq!(status.matches(" left ").count(), 3, "{status}");
    assert!(!status.contains(" dead "), "{status}");
    Ok(())
}

/// The head SIGKILLed and started again on its data directory during a job: the job (its
/// driver on a worker node, submitted there) goes on and finishes, the nodes join the new
/// head, and the detached named actor the job made is found by name afterwards by a driver
/// that joins the new head with the old join command.
#[test]
fn a_killed_head_started_again_takes_its_cluster_back() -> anyhow::Result<()> {
    let cache = wasmray_tests::test_cache_dir();
    let data = tempfile::tempdir()?;
    let data_dir = data.path().join("head");
    let data_dir = data_dir.to_str().expect("a UTF-8 path");
    let head_args = [
        &["--num-cpus", "0", "--data-dir", data_dir][..],
        &QUICK_DETECTION,
    ]
    .concat();
    let mut cluster = ProcessCluster::start(bin(), &cache, &head_args)?;
    cluster.add_node(&["--num-cpus", "2", "--resources", r#"{"worker": 1}"#])?;
    cluster.wait_for_nodes(2, Duration::from_secs(20))?;
    let socket = cluster.latest_socket()?;
    // Actor names are a job's own unless jobs share a namespace (as the later driver does).
    let out = cluster.wasmray(&[
        "submit",
        "--socket",
        &socket,
        "--namespace",
        "tests",
        guests::FAILURES,
        "keeper",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let job = stdout
        .split_whitespace()
        .find(|w| w.chars().all(|c| c.is_ascii_digit()))
        .ok_or_else(|| anyhow::anyhow!("no job ID in {stdout}"))?
        .to_owned();
    let logs = |cluster: &ProcessCluster| {
        text(&cluster.wasmray(&["job", "logs", &job, "--socket", &socket])).0
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !logs(&cluster).contains("actor up: 101") {
        assert!(std::time::Instant::now() < deadline, "{}", logs(&cluster));
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = std::time::Instant::now();
    let printed = cluster.restart_head(&head_args)?;
    assert!(
        printed
            .iter()
            .any(|l| l.starts_with("Took over the cluster")
                && l.contains("1 nodes it knew alive")
                && l.contains("1 actor names")),
        "{printed:#?}"
    );
    // The node finds the new head and joins it again.
    cluster.wait_for_status("CPU 2/2, worker 0.50/1", Duration::from_secs(30))?;
    eprintln!(
        "the cluster was whole again {:?} after the kill",
        killed.elapsed()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = text(&cluster.wasmray(&["job", "status", &job, "--socket", &socket])).0;
        if status.contains("succeeded") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline && !status.contains("failed"),
            "{status}\n{}",
            logs(&cluster)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        logs(&cluster).contains("job done: 40 rounds"),
        "{}",
        logs(&cluster)
    );
    let out = cluster.run_via(
        &[],
        &["--namespace", "tests", guests::FAILURES, "find-tally"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("found after restart: 102"), "{stdout}");
    Ok(())
}
