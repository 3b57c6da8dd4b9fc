//! The `wasmray` command as a user runs it: a separate process, real files, exit codes.

use std::path::Path;
use std::process::{Command, Output};
use wasmray_tests::{guests, test_cache_dir};

fn wasmray(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmray-under-test"))
        .args(args)
        .env("WASMRAY_CACHE_DIR", cache)
        .env("WASMRAY_LOG", "wasmray_wasm=info")
        .output()
        .expect("run wasmray")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn run_prints_driver_and_labelled_task_output() {
    let out = wasmray(
        &["run", guests::HELLO, "--num-cpus", "1"],
        &test_cache_dir(),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "hello from wasmray");
    assert!(
        lines[1].starts_with("(hello task=") && lines[1].ends_with(") hello from task"),
        "{stdout}"
    );
}

#[test]
fn arguments_after_the_module_reach_the_driver() {
    let out = wasmray(
        &["run", guests::BENCH, "--", "roundtrip", "10"],
        &test_cache_dir(),
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("roundtrip n=10 "),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_second_run_loads_the_compiled_module_from_the_cache() {
    let cache = tempfile::tempdir().expect("tempdir");
    let first = wasmray(&["run", guests::HELLO], cache.path());
    assert!(first.status.success());
    assert!(
        text(&first.stderr).contains("compiled module"),
        "{}",
        text(&first.stderr)
    );
    let second = wasmray(&["run", guests::HELLO], cache.path());
    assert!(second.status.success());
    assert!(
        !text(&second.stderr).contains("compiled module"),
        "{}",
        text(&second.stderr)
    );
    let no_cache = wasmray(&["run", guests::HELLO, "--no-cache"], cache.path());
    assert!(text(&no_cache.stderr).contains("compiled module"));
}

/// Runs `args` and checks: exit code 2 or `code`, one line on stderr, containing `expected`.
fn assert_refused(args: &[&str], code: i32, expected: &str) {
    let out = wasmray(args, &test_cache_dir());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(
        stderr.contains(expected),
        "{args:?}: expected `{expected}` in {stderr}"
    );
}

#[test]
fn bad_input_gets_a_one_line_error_and_exit_code_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text_file = dir.path().join("notes.wasm");
    std::fs::write(&text_file, "not wasm at all").expect("write");
    let dir_path = dir.path().to_string_lossy().into_owned();
    let text_path = text_file.to_string_lossy().into_owned();
    let cases: [(&[&str], &str); 6] = [
        (&["run", &dir_path], "is not a file"),
        (&["run", "/no/such/module.wasm"], "is not a file"),
        (&["run", &text_path], "is not a WebAssembly module"),
        (
            &["run", guests::NO_SDK],
            "was not built with the wasmray SDK: it has no `wasmray_abi_version` export",
        ),
        (
            &["run", guests::BAD_IMPORT],
            "imports `wasmray::not_a_real_import`, which wasmray does not provide",
        ),
        (
            &["run", guests::HELLO, "--resources", "[1]"],
            "--resources must be a JSON object",
        ),
    ];
    for (args, expected) in cases {
        assert_refused(args, 2, expected);
        let out = wasmray(args, &test_cache_dir());
        assert_eq!(
            text(&out.stderr)
                .lines()
                .filter(|l| l.starts_with("error"))
                .count(),
            1,
            "{args:?}"
        );
    }
    assert_refused(&[], 2, "Usage: wasmray");
}

/// Every flag of `wasmray run` that README documents, typed as a user would, with a probe
/// (`tests/guests/cli-probe`) that shows the flag reached the node: `(flags, probes, lines the
/// driver must print)`. `--cache-dir`, `--no-cache` and `-- args` have tests of their own.
#[test]
fn every_documented_run_flag_reaches_the_node() {
    let cases: &[(&[&str], &[&str], &[&str])] = &[
        (
            &[
                "--num-cpus",
                "3",
                "--num-gpus",
                "2",
                "--resources",
                r#"{"Custom": 1}"#,
            ],
            &["resources", "needs=Custom"],
            &["CPU=3 ", "Custom=1 ", "GPU=2 ", "needs Custom: ran"],
        ),
        (
            &["--object-store-memory", "64MiB"],
            &["resources"],
            &["object_store_memory=67108864"],
        ),
        (
            &["--task-memory", "32MiB"],
            &["alloc=8", "alloc=64"],
            &["alloc 8: ok", "alloc 64: OutOfMemory"],
        ),
        (
            &["--max-task-memory", "48MiB"],
            &["alloc=8", "alloc=64"],
            &["alloc 8: ok", "alloc 64: OutOfMemory"],
        ),
        (
            &["--task-cpu-time-limit", "0.2"],
            &["spin=20", "spin=5000"],
            &["spin 20: ok", "spin 5000: DeadlineExceeded"],
        ),
        // The driver, the gauge actor and one task fill three instance slots: the tasks take
        // turns although four CPUs are free. Without the flag all four run at once.
        (
            &["--num-cpus", "4", "--max-instances", "3"],
            &["concurrency=4"],
            &["concurrency 4: at most 1 at once"],
        ),
        (
            &["--num-cpus", "4"],
            &["concurrency=4"],
            &["concurrency 4: at most 4 at once"],
        ),
    ];
    for (flags, probes, expected) in cases {
        let mut args = vec!["run", guests::CLI_PROBE];
        args.extend_from_slice(flags);
        args.push("--");
        args.extend_from_slice(probes);
        let out = wasmray(&args, &test_cache_dir());
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{args:?}: {stdout}\n{}",
            text(&out.stderr)
        );
        for line in *expected {
            assert!(
                stdout.contains(line),
                "{args:?}: expected `{line}` in {stdout}"
            );
        }
    }
}

#[test]
fn cache_dir_holds_the_compiled_module() {
    let cache = tempfile::tempdir().expect("tempdir");
    let dir = cache.path().join("chosen");
    let dir_arg = dir.to_string_lossy().into_owned();
    // The environment's cache is not the one used.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let first = wasmray(
        &["run", guests::HELLO, "--cache-dir", &dir_arg],
        elsewhere.path(),
    );
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(text(&first.stderr).contains("compiled module"));
    let cached = std::fs::read_dir(&dir).map_or(0, |entries| entries.count());
    assert!(cached > 0, "nothing cached in {}", dir.display());
    assert_eq!(
        std::fs::read_dir(elsewhere.path()).map_or(0, Iterator::count),
        0
    );
    let second = wasmray(
        &["run", guests::HELLO, "--cache-dir", &dir_arg],
        elsewhere.path(),
    );
    assert!(second.status.success());
    assert!(!text(&second.stderr).contains("compiled module"));
}

#[test]
fn out_of_range_flag_values_are_refused_with_the_flag_named() {
    let cases: [(&[&str], &str); 9] = [
        (&["--num-cpus=-1"], "--num-cpus must be a number >= 0"),
        (&["--num-gpus", "nan"], "--num-gpus must be a number >= 0"),
        (
            &["--resources", r#"{"disk": -1}"#],
            "resource `disk` must be a number >= 0",
        ),
        (&["--object-store-memory", "lots"], "`lots` is not a size"),
        (&["--task-memory", "8GiB"], "--task-memory cannot exceed"),
        (
            &["--max-task-memory", "1KiB"],
            "--max-task-memory must be between 1MiB and 4GiB",
        ),
        (
            &["--task-cpu-time-limit", "0"],
            "--task-cpu-time-limit must be a number of seconds > 0",
        ),
        (
            &["--max-instances", "0"],
            "--max-instances must be at least 1",
        ),
        (
            &["--cache-dir", "/tmp", "--no-cache"],
            "cannot be used with",
        ),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["run", guests::HELLO];
        args.extend_from_slice(flags);
        assert_refused(&args, 2, expected);
    }
}

#[test]
fn a_driver_that_returns_an_error_exits_1_with_its_message() {
    assert_refused(
        &["run", guests::DRIVER_ERROR],
        1,
        "Error: \"bad configuration\"",
    );
}

#[test]
fn a_driver_that_traps_exits_1_naming_the_trap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let module = dir.path().join("trap.wasm");
    let bytes = wat::parse_str(
        r#"(module
            (memory (export "memory") 1)
            (func (export "wasmray_abi_version") (result i32) i32.const 1)
            (func (export "_start") unreachable))"#,
    )
    .expect("valid WAT");
    std::fs::write(&module, bytes).expect("write");
    assert_refused(
        &["run", &module.to_string_lossy()],
        1,
        "error: the driver trapped: unreachable code reached",
    );
}

#[test]
fn status_and_memory_report_on_a_running_node() {
    let temp = tempfile::tempdir().expect("tempdir");
    let mut running = Command::new(env!("CARGO_BIN_EXE_wasmray-under-test"))
        .args(["run", guests::TREE_REDUCE, "--num-cpus", "1"])
        .env("WASMRAY_CACHE_DIR", test_cache_dir())
        .env("TMPDIR", temp.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start wasmray run");
    let ask = |what: &str| {
        Command::new(env!("CARGO_BIN_EXE_wasmray-under-test"))
            .arg(what)
            .env("TMPDIR", temp.path())
            .output()
            .expect("run wasmray status")
    };
    // The node answers once it has started; the driver runs for seconds (its tasks sleep).
    let mut status = ask("status");
    for _ in 0..100 {
        if status.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        status = ask("status");
    }
    let memory = ask("memory");
    let _ = running.kill();
    let _ = running.wait();
    let status_text = text(&status.stdout);
    assert!(status.status.success(), "{}", text(&status.stderr));
    assert!(status_text.starts_with("Node "), "{status_text}");
    assert!(status_text.contains("  CPU "), "{status_text}");
    assert!(status_text.contains("Object store: "), "{status_text}");
    let memory_text = text(&memory.stdout);
    assert!(memory.status.success(), "{}", text(&memory.stderr));
    assert!(memory_text.starts_with("OBJECT ID"), "{memory_text}");
    assert!(memory_text.contains(" objects, "), "{memory_text}");
}

#[test]
fn status_without_a_running_node_says_so() {
    let temp = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_wasmray-under-test"))
        .arg("status")
        .env("TMPDIR", temp.path())
        .output()
        .expect("run wasmray status");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no running wasmray node found"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn microbenchmark_prints_rays_case_names_and_format() {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmray-under-test"))
        .args(["microbenchmark", "--quick"])
        .env("TESTS_TO_RUN", "single client get calls")
        .output()
        .expect("run wasmray microbenchmark");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let line = stdout
        .lines()
        .find(|l| l.starts_with("single client get calls (Plasma Store) per second "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let numbers: Vec<&str> = line
        .rsplit(" per second ")
        .next()
        .unwrap_or("")
        .split(" +- ")
        .collect();
    assert_eq!(numbers.len(), 2, "{line}");
    assert!(
        numbers
            .iter()
            .all(|n| n.parse::<f64>().is_ok_and(|v| v >= 0.0)),
        "{line}"
    );
    assert!(
        !stdout.contains("single client put calls"),
        "the filter selects: {stdout}"
    );
}

#[test]
fn microbenchmark_measures_cold_start_and_idle_memory() {
    for (filter, prefix) in [
        (
            "cold start",
            "cold start (wasmray run, module cache warm) seconds ",
        ),
        ("idle", "idle node memory (RSS MiB) "),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_wasmray-under-test"))
            .args(["microbenchmark", "--quick"])
            .env("TESTS_TO_RUN", filter)
            .output()
            .expect("run wasmray microbenchmark");
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
        let value = stdout.lines().find_map(|l| l.strip_prefix(prefix));
        assert!(
            value.is_some_and(|v| v.trim().parse::<f64>().is_ok_and(|v| v > 0.0)),
            "{stdout}"
        );
    }
}

/// `wasmray new` makes a crate; `cargo run --release` inside it builds it for wasm32-wasip1
/// and runs it through `wasmray run` (the binary under test, on PATH as `wasmray`).
#[test]
fn wasmray_new_makes_a_crate_that_cargo_run_builds_and_runs() {
    let work = tempfile::tempdir().expect("tempdir");
    let app = work.path().join("hello-app");
    let app_arg = app.to_string_lossy().into_owned();
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk/wasmray");
    let sdk_arg = sdk.to_string_lossy().into_owned();
    let created = wasmray(&["new", &app_arg, "--sdk", &sdk_arg], &test_cache_dir());
    assert!(created.status.success(), "{}", text(&created.stderr));
    assert!(text(&created.stdout).contains("cargo run --release"));

    let bin = work.path().join("bin");
    std::fs::create_dir(&bin).expect("mkdir");
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_wasmray-under-test"),
        bin.join("wasmray"),
    )
    .expect("symlink");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut run = Command::new(cargo);
    run.args(["run", "--release", "--", "extra", "--flag"])
        .current_dir(&app)
        .env("PATH", path)
        .env("WASMRAY_CACHE_DIR", test_cache_dir())
        // The guests' target dir: the SDK and its dependencies are built there already.
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("OUT_DIR")).join("guests"),
        );
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET"] {
        run.env_remove(var);
    }
    let out = run.output().expect("run cargo");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("squares of 1..=4: [1, 4, 9, 16]"),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"arguments: ["extra", "--flag"]"#),
        "{stdout}"
    );

    assert_refused(&["new", &app_arg, "--sdk", &sdk_arg], 2, "already exists");
    let bad = work.path().join("1 bad").to_string_lossy().into_owned();
    assert_refused(&["new", &bad, "--sdk", &sdk_arg], 2, "is not a crate name");
    let other = work.path().join("other").to_string_lossy().into_owned();
    assert_refused(
        &["new", &other, "--sdk", "/no/such/sdk"],
        2,
        "does not exist",
    );
    assert_refused(
        &["new", &other, "--sdk", &app_arg],
        2,
        "is not the wasmray SDK",
    );
}

#[test]
fn allow_dir_grants_one_directory_and_nothing_else() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::write(data.join("granted.txt"), "granted").expect("write");
    std::fs::write(root.path().join("secret.txt"), "secret").expect("write");
    std::os::unix::fs::symlink("../secret.txt", data.join("link-out")).expect("symlink");
    let grant = |mode: &str| format!("{}:/data:{mode}", data.display());
    let cases = [
        (
            Some(grant("ro")),
            "fs: passwd=denied root=denied granted=ok dotdot=denied symlink=denied write=denied env=0",
        ),
        (
            Some(grant("rw")),
            "fs: passwd=denied root=denied granted=ok dotdot=denied symlink=denied write=ok env=0",
        ),
        (
            None,
            "fs: passwd=denied root=denied granted=denied dotdot=denied symlink=denied write=denied env=0",
        ),
    ];
    for (grant, expected) in cases {
        let mut args = vec!["run", guests::HOSTILE, "fs", "/data"];
        if let Some(grant) = &grant {
            args.extend(["--allow-dir", grant.as_str()]);
        }
        let out = wasmray(&args, &test_cache_dir());
        assert!(out.status.success(), "stderr: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), expected, "{grant:?}");
    }
    assert_eq!(
        std::fs::read_to_string(data.join("written.txt")).expect("the rw grant wrote"),
        "hello"
    );
    let missing = wasmray(
        &[
            "run",
            guests::HOSTILE,
            "fs",
            "--allow-dir",
            "/no/such/dir:/data",
        ],
        &test_cache_dir(),
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).contains("/no/such/dir"),
        "{}",
        text(&missing.stderr)
    );
}

#[test]
fn job_quota_flags_reach_the_job() {
    let cases: [(&[&str], &str); 9] = [
        (
            &["memory-spread", "--max-guest-memory", "256MiB"],
            "the job's quota of 268435456 bytes of guest memory is reached",
        ),
        (
            &["fork-bomb", "--max-pending-tasks", "50"],
            "the job's quota of 50 tasks pending or running is reached",
        ),
        (
            &["actors", "--max-actors", "5"],
            "the job's quota of 5 live actors is reached (raise it with --max-actors)",
        ),
        (
            &["inline-flood", "--max-objects", "1000"],
            "the job's quota of 1000 objects held is reached (raise it with --max-objects)",
        ),
        (
            &["spill-flood", "--max-object-bytes", "10MiB"],
            "the job's quota of 10485760 bytes of objects held is reached",
        ),
        (
            &[
                "spill-flood",
                "--object-store-memory",
                "16MiB",
                "--max-spill-bytes",
                "8MiB",
            ],
            "the job's quota of 8388608 bytes of objects spilled to disk is reached",
        ),
        (
            &["handle-flood", "--max-handles", "100"],
            "the job's quota of 100 handles held by one instance is reached",
        ),
        (
            &["spill-flood", "--max-value-bytes", "1MiB"],
            "a value of 1048579 bytes is over the limit: the job's quota of 1048576 bytes in one value",
        ),
        (
            &["stdout-lines", "--output-rate", "1KiB"],
            "of output dropped: over the job's output rate of 1024 bytes/s",
        ),
    ];
    for (args, expected) in cases {
        let mut full = vec!["run", guests::HOSTILE];
        full.extend_from_slice(args);
        let out = wasmray(&full, &test_cache_dir());
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(
            all.contains(expected),
            "{args:?}: expected `{expected}` in:\n{all}"
        );
    }
    let zero = wasmray(
        &["run", guests::HOSTILE, "neighbour", "--max-actors", "0"],
        &test_cache_dir(),
    );
    assert_eq!(zero.status.code(), Some(2));
    assert!(text(&zero.stderr).contains("--max-actors must be at least 1"));
}

#[test]
fn namespace_flag_names_the_jobs_shared_namespace() {
    let out = wasmray(
        &[
            "run",
            guests::ACTORS,
            "detached-create",
            "--namespace",
            "team",
        ],
        &test_cache_dir(),
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "detached created");
    let empty = wasmray(
        &["run", guests::ACTORS, "named", "--namespace", ""],
        &test_cache_dir(),
    );
    assert_eq!(empty.status.code(), Some(2));
    assert!(text(&empty.stderr).contains("--namespace must not be empty"));
}

#[test]
fn nothing_a_guest_prints_reaches_the_terminal_raw() {
    let out = wasmray(&["run", guests::HOSTILE, "escape-codes"], &test_cache_dir());
    assert_eq!(out.status.code(), Some(1), "the driver panicked");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    for stream in [&stdout, &stderr] {
        assert!(
            !stream.contains('\u{1b}') && !stream.contains('\u{7}') && !stream.contains('\r'),
            "a raw control character got through:\n{stream:?}"
        );
    }
    assert!(
        stdout.contains("\\u{1b}[2J\\u{d}forged: cleared the screen"),
        "{stdout}"
    );
    assert!(
        stderr.contains("\\u{1b}]0;pwned\\u{7}task title"),
        "{stderr}"
    );
    assert!(stderr.contains("\\u{1b}[31mred alert\\u{7}"), "{stderr}");
}
