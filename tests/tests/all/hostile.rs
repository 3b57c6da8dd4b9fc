//! The hostile-guest suite: one test per attack, each in a process of its own (the
//! `wasmray-hostile` harness, `tests/src/bin/wasmray-hostile.rs`) so that its memory figures
//! are its own. Every test asserts three things: the attacker got a clear error (naming the
//! limit or quota it hit), a well-behaved job running beside it on the same node finished
//! correctly every time, and afterwards the node held nothing and its memory was back to
//! its baseline plus what it keeps warm by design (`Node::retained_bytes_bound`).
//!
//! Attacks written with the SDK are cases of the `hostile` guest; what the SDK cannot express
//! (start functions, raw `memory.grow`, broken modules) is WAT. Out-of-bounds pointers,
//! forged and stale handles and malformed records are `sandbox.rs`; absurd `num_returns` is
//! the `leaks` guest (`guests.rs`).

use std::collections::HashMap;
use std::process::Command;
use wasmray_tests::guests;

/// Slack over baseline + retained bound for the allocator's own bookkeeping.
const SLACK: u64 = 48 << 20;

/// What the harness reported.
#[derive(Debug)]
struct Report {
    exit: String,
    lines: Vec<String>,
    fields: HashMap<String, String>,
    raw: String,
}

impl Report {
    fn number(&self, key: &str) -> u64 {
        self.fields
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no `{key}` in the report:\n{}", self.raw))
    }

    /// The attacking driver's line for its case, or its exit when it printed none.
    fn outcome(&self) -> String {
        self.lines
            .first()
            .cloned()
            .unwrap_or_else(|| self.exit.clone())
    }
}

/// Runs `module` (a `.wasm` path or WAT text) with `args` under the harness.
fn attack(module: Module<'_>, args: &[&str]) -> Report {
    let _machine = wasmray_tests::shared_machine();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = match module {
        Module::Guest => guests::HOSTILE.to_owned(),
        Module::Wat(text) => {
            let path = dir.path().join("attack.wat");
            std::fs::write(&path, text).expect("write WAT");
            path.display().to_string()
        }
        Module::File(bytes) => {
            let path = dir.path().join("attack.wasm");
            std::fs::write(&path, bytes).expect("write module");
            path.display().to_string()
        }
    };
    let output = Command::new(env!("CARGO_BIN_EXE_wasmray-hostile"))
        .arg(&path)
        .args(args)
        .args(["--neighbour", guests::HOSTILE])
        .env("TMPDIR", dir.path())
        .output()
        .expect("run the harness");
    let raw = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "harness failed: {}\n{raw}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut report = Report {
        exit: String::new(),
        lines: Vec::new(),
        fields: HashMap::new(),
        raw: raw.clone(),
    };
    for line in raw.lines() {
        let Some((key, value)) = line.split_once(": ") else {
            continue;
        };
        match key {
            "exit" => report.exit = value.to_owned(),
            "line" => report.lines.push(value.to_owned()),
            _ => {
                report.fields.insert(key.to_owned(), value.to_owned());
            }
        }
    }
    check_the_node_came_through(&report);
    // One line per attack for the record (`cargo test hostile -- --nocapture`).
    let mib = |key: &str| report.number(key) as f64 / f64::from(1 << 20);
    println!(
        "attack {args:?}: {} | {} s | peak {:.0} MiB | after {:.0} MiB (baseline {:.0}) | neighbour {}",
        report.outcome(),
        report.fields["seconds"],
        mib("peak_rss"),
        mib("final_rss"),
        mib("baseline_rss"),
        report.fields["neighbour"],
    );
    report
}

enum Module<'a> {
    Guest,
    Wat(&'a str),
    File(&'a [u8]),
}

fn check_the_node_came_through(report: &Report) {
    let neighbour = &report.fields["neighbour"];
    assert!(
        neighbour.ends_with(" 0 failed") && !neighbour.starts_with("0 runs"),
        "the neighbouring job: {neighbour}\n{}",
        report.raw
    );
    assert_eq!(
        report.fields["leftover"],
        "tasks=0 objects=0 actors=0 store_objects=0 store_bytes=0 spilled=0",
        "the node let go of everything\n{}",
        report.raw
    );
    let allowed = report.number("baseline_rss") + report.number("retained_bound") + SLACK;
    assert!(
        report.number("final_rss") <= allowed,
        "memory back to baseline: {} > {allowed}\n{}",
        report.number("final_rss"),
        report.raw
    );
}

fn assert_outcome(report: &Report, expected: &str) {
    let outcome = report.outcome();
    assert!(
        outcome.contains(expected),
        "expected `{expected}` in `{outcome}`\n{}",
        report.raw
    );
}

#[test]
fn infinite_loop() {
    let report = attack(Module::Guest, &["infinite-loop"]);
    assert_outcome(
        &report,
        "infinite-loop: DeadlineExceeded: ran for more than its cpu time limit of 2000 ms",
    );
}

/// The neighbour runs hundreds of short jobs beside a two-second attack on a node with 32 MiB
/// of guest memory: the idle instances each ended job left for reuse must not pile up in
/// the node's budget (before they were dropped at job end, ~97 % of the runs failed with
/// "the node's guest memory ... is all in use").
#[test]
fn ended_jobs_idle_instances_do_not_hold_the_nodes_guest_memory() {
    let report = attack(
        Module::Guest,
        &["infinite-loop", "--node-guest-memory", "33554432"],
    );
    assert_outcome(
        &report,
        "infinite-loop: DeadlineExceeded: ran for more than its cpu time limit of 2000 ms",
    );
}

#[test]
fn memory_bomb_of_vec_growth() {
    let report = attack(Module::Guest, &["vec-bomb"]);
    assert_outcome(
        &report,
        "vec-bomb: OutOfMemory: exceeded its memory limit of 67108864 bytes",
    );
}

#[test]
fn memory_bomb_of_raw_memory_grow() {
    let wat = r#"(module
        (memory (export "memory") 1)
        (func (export "wasmray_abi_version") (result i32) i32.const 1)
        (func (export "_start")
            (loop (br_if 0 (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
            unreachable))"#;
    let report = attack(Module::Wat(wat), &["--max-task-memory", "67108864"]);
    assert_outcome(
        &report,
        "failed OutOfMemory: exceeded its memory limit of 67108864 bytes",
    );
}

#[test]
fn stack_overflow() {
    let report = attack(Module::Guest, &["stack-overflow"]);
    assert_outcome(&report, "stack-overflow: Trap: out-of-bounds memory access");
}

#[test]
fn wasm_call_stack_exhausted() {
    let wat = r#"(module
        (memory (export "memory") 1)
        (func $deep (param i32) (result i32)
            (i32.add (call $deep (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))
        (func (export "wasmray_abi_version") (result i32) i32.const 1)
        (func (export "_start") (drop (call $deep (i32.const 0)))))"#;
    let report = attack(Module::Wat(wat), &[]);
    assert_outcome(
        &report,
        "failed Trap: overflowed its stack (unbounded recursion?)",
    );
}

#[test]
fn abort() {
    let report = attack(Module::Guest, &["abort"]);
    assert_outcome(&report, "abort: Trap: unreachable code reached (an abort)");
}

#[test]
fn unreachable() {
    let report = attack(Module::Guest, &["unreachable"]);
    assert_outcome(
        &report,
        "unreachable: Trap: unreachable code reached (an abort)",
    );
}

#[test]
fn panic_inside_a_panic() {
    let report = attack(Module::Guest, &["panic-in-panic"]);
    assert_outcome(
        &report,
        "panic-in-panic: Trap: unreachable code reached (an abort)",
    );
}

#[test]
fn start_function_that_never_returns() {
    let wat = r#"(module
        (memory (export "memory") 1)
        (func $forever (loop (br 0)))
        (start $forever)
        (func (export "wasmray_abi_version") (result i32) i32.const 1)
        (func (export "_start")))"#;
    let report = attack(Module::Wat(wat), &["--cpu-limit-ms", "1000"]);
    assert_outcome(
        &report,
        "refused: `hostile.wasm`'s start function ran for more than its cpu time limit of 1000 ms",
    );
}

#[test]
fn start_function_that_grows_memory_past_the_cap() {
    let wat = r#"(module
        (memory (export "memory") 1)
        (func $grow
            (loop (br_if 0 (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
            unreachable)
        (start $grow)
        (func (export "wasmray_abi_version") (result i32) i32.const 1)
        (func (export "_start")))"#;
    let report = attack(Module::Wat(wat), &["--max-task-memory", "67108864"]);
    assert_outcome(
        &report,
        "refused: `hostile.wasm`'s start function grew its memory past its memory limit of 67108864 bytes",
    );
}

#[test]
fn declared_initial_memory_above_the_cap() {
    let wat = r#"(module
        (memory (export "memory") 16384)
        (func (export "wasmray_abi_version") (result i32) i32.const 1)
        (func (export "_start")))"#;
    let report = attack(Module::Wat(wat), &["--max-task-memory", "67108864"]);
    assert_outcome(
        &report,
        "refused: `hostile.wasm` declares 1073741824 bytes of initial memory, more than its memory limit of 67108864 bytes",
    );
}

#[test]
fn fork_bomb() {
    let report = attack(
        Module::Guest,
        &["fork-bomb", "--quota", "pending-tasks=10000"],
    );
    assert_outcome(&report, "fork-bomb: ok");
    assert!(
        report.number("quota_lines") > 0,
        "the bomb's tasks were refused by the quota\n{}",
        report.raw
    );
}

#[test]
fn handle_flood() {
    let report = attack(
        Module::Guest,
        &["handle-flood", "--quota", "handles=100000"],
    );
    assert_outcome(
        &report,
        "wasmray.put: the job's quota of 100000 handles held by one instance is reached (raise it with --max-handles)",
    );
}

#[test]
fn inline_object_flood() {
    let report = attack(
        Module::Guest,
        &["inline-flood", "--quota", "objects=200000"],
    );
    assert_outcome(
        &report,
        "the job's quota of 200000 objects held is reached (raise it with --max-objects)",
    );
}

#[test]
fn inline_objects_count_against_the_store() {
    // With the objects quota out of the way, the job's share of the store (three quarters:
    // small objects never spill) stops the flood, and the neighbour still puts beside it.
    let report = attack(Module::Guest, &["inline-flood", "--store", "67108864"]);
    assert_outcome(
        &report,
        "wasmray.put: the job holds its share of the object store for small objects",
    );
}

#[test]
fn spill_flood() {
    let report = attack(
        Module::Guest,
        &["spill-flood", "--quota", "spill-bytes=536870912"],
    );
    assert_outcome(
        &report,
        "the job's quota of 536870912 bytes of objects spilled to disk is reached (raise it with --max-spill-bytes)",
    );
}

#[test]
fn actor_that_traps_in_its_constructor() {
    let report = attack(Module::Guest, &["constructor-trap"]);
    assert_outcome(&report, "constructor-trap: ActorDied");
}

#[test]
fn ten_thousand_actors_from_one_job() {
    let report = attack(Module::Guest, &["actors"]);
    assert_outcome(
        &report,
        "actors: InvalidTask: the job's quota of 1000 live actors is reached (raise it with --max-actors)",
    );
}

#[test]
fn stdout_flood_of_lines() {
    let report = attack(
        Module::Guest,
        &["stdout-lines", "--quota", "output-rate=10000"],
    );
    assert_outcome(&report, "stdout-lines: DeadlineExceeded");
    assert!(report.number("dropped_markers") > 0, "{}", report.raw);
}

#[test]
fn stdout_flood_without_newlines() {
    let report = attack(
        Module::Guest,
        &["stdout-no-newline", "--quota", "output-rate=10000"],
    );
    assert_outcome(&report, "stdout-no-newline: DeadlineExceeded");
    assert!(report.number("dropped_markers") > 0, "{}", report.raw);
}

#[test]
fn one_gib_argument() {
    let report = attack(Module::Guest, &["big-argument"]);
    assert_outcome(
        &report,
        "a value of 1073741829 bytes is over the limit: the job's quota of 1073741824 bytes in one value is reached",
    );
}

#[test]
fn one_gib_return() {
    let report = attack(Module::Guest, &["big-return"]);
    assert_outcome(
        &report,
        "big-return: OutOfMemory: exceeded its memory limit of 3221225472 bytes",
    );
}

#[test]
fn one_gib_put() {
    let report = attack(Module::Guest, &["big-put"]);
    assert_outcome(
        &report,
        "wasmray.put_begin: a value of 1073741829 bytes is over the limit: the job's quota of 1073741824 bytes in one value is reached (raise it with --max-value-bytes)",
    );
}

#[test]
fn resources_of_minus_one_nan_and_1e30() {
    let report = attack(Module::Guest, &["bad-resources"]);
    let outcome = report.outcome();
    for quantity in ["-1", "NaN", "1000000000000000000000000000000"] {
        assert!(
            outcome.contains(&format!(
                "InvalidTask: resource `CPU` has an invalid quantity {quantity}"
            )),
            "{outcome}"
        );
    }
}

#[test]
fn a_module_that_is_not_wasm() {
    let report = attack(Module::File(b"#!/bin/sh\necho not wasm\n"), &[]);
    assert_outcome(
        &report,
        "refused: `attack.wasm` is not a WebAssembly module (it does not start with the wasm magic bytes)",
    );
}

#[test]
fn a_module_importing_what_the_host_lacks() {
    let wat = r#"(module
        (import "wasmray" "steal_secrets" (func))
        (memory (export "memory") 1)
        (func (export "wasmray_abi_version") (result i32) i32.const 1)
        (func (export "_start")))"#;
    let report = attack(Module::Wat(wat), &[]);
    assert_outcome(
        &report,
        "refused: `hostile.wasm` imports `wasmray::steal_secrets`, which wasmray does not provide",
    );
}

#[test]
fn a_module_without_the_sdk_exports() {
    let wat = r#"(module (memory (export "memory") 1) (func (export "_start")))"#;
    let report = attack(Module::Wat(wat), &[]);
    assert_outcome(
        &report,
        "refused: `hostile.wasm` was not built with the wasmray SDK: it has no `wasmray_abi_version` export",
    );
}

#[test]
fn every_import_called_with_out_of_range_pointers_and_lengths() {
    let mut wrong = Vec::new();
    for import in crate::abi_contract::wit_imports() {
        // Nothing to pass out of range; and `release` ignores unknown handles by contract.
        if import.params.is_empty() || import.name == "release" {
            continue;
        }
        let params = import.params.join(" ");
        let args: String = import
            .params
            .iter()
            .map(|ty| format!("({ty}.const -1) "))
            .collect();
        let drops = "drop ".repeat(import.results.len());
        let results = if import.results.is_empty() {
            String::new()
        } else {
            format!("(result {})", import.results.join(" "))
        };
        let wat = format!(
            r#"(module
                (import "wasmray" "{name}" (func $f (param {params}) {results}))
                (memory (export "memory") 1)
                (func (export "wasmray_abi_version") (result i32) i32.const 1)
                (func (export "_start") (call $f {args}) {drops} unreachable))"#,
            name = import.name
        );
        let report = attack(Module::Wat(&wat), &[]);
        if !(report.exit.starts_with("failed Trap")
            && report.exit.contains(&format!("wasmray.{}", import.name)))
        {
            wrong.push(format!("{}: {}", import.name, report.exit));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn forged_stale_out_of_range_and_other_jobs_handles() {
    let imports = r#"
        (import "wasmray" "put" (func $put (param i32 i32) (result i32)))
        (import "wasmray" "release" (func $release (param i32)))
        (import "wasmray" "get" (func $get (param i32 i64 i32) (result i32)))"#;
    let driver = |body: &str| {
        format!(
            r#"(module {imports}
                (memory (export "memory") 1)
                (func (export "wasmray_abi_version") (result i32) i32.const 1)
                (func (export "_start") (local $h i32) {body}))"#
        )
    };
    let cases = [
        // The first handle any instance is given: in another job's instance it names that
        // job's object; here it names nothing.
        (
            "(drop (call $get (i32.const 0x01000000) (i64.const 0) (i32.const 64)))",
            "unknown object handle 16777216",
        ),
        // A generation never issued.
        (
            "(drop (call $get (i32.const 0x7f000000) (i64.const 0) (i32.const 64)))",
            "unknown object handle 2130706432",
        ),
        // Past every slot.
        (
            "(drop (call $get (i32.const 0x00ffffff) (i64.const 0) (i32.const 64)))",
            "unknown object handle 16777215",
        ),
        // Put an empty value (postcard: no bytes, no refs), release it, use it again.
        (
            "(local.set $h (call $put (i32.const 0) (i32.const 2))) (call $release (local.get $h)) (drop (call $get (local.get $h) (i64.const 0) (i32.const 64)))",
            "unknown object handle 16777216",
        ),
    ];
    for (body, expected) in cases {
        let report = attack(Module::Wat(&driver(body)), &[]);
        assert!(
            report.exit.starts_with("failed Trap") && report.exit.contains(expected),
            "{body}: {}",
            report.exit
        );
    }
}

#[test]
fn absurd_lengths_and_num_returns_inside_postcard_records() {
    let driver = |data: &str, len: usize| {
        format!(
            r#"(module
                (import "wasmray" "submit_task" (func $submit (param i32 i32 i32) (result i32)))
                (memory (export "memory") 1)
                (data (i32.const 16) "{data}")
                (func (export "wasmray_abi_version") (result i32) i32.const 1)
                (func (export "_start")
                    (drop (call $submit (i32.const 16) (i32.const {len}) (i32.const 1024)))))"#
        )
    };
    // TaskSubmission { function: "f", args: [], num_returns, options: CallOptions::default() }
    let options = "\\00".repeat(8);
    let cases = [
        // num_returns = u32::MAX.
        (
            format!("\\01f\\00\\ff\\ff\\ff\\ff\\0f{options}"),
            16,
            "num_returns 4294967295 is above the limit of 10000",
        ),
        // A function name claiming 2^32 - 1 bytes.
        (
            format!("\\ff\\ff\\ff\\ff\\0ff\\00\\01{options}"),
            16,
            "wasmray.submit_task: malformed task submission",
        ),
        // An argument list claiming 2^63 entries.
        (
            format!("\\01f\\ff\\ff\\ff\\ff\\ff\\ff\\ff\\ff\\7f\\01{options}"),
            20,
            "wasmray.submit_task: malformed task submission",
        ),
    ];
    for (data, len, expected) in cases {
        let report = attack(Module::Wat(&driver(&data, len)), &[]);
        assert!(
            report.exit.starts_with("failed Trap") && report.exit.contains(expected),
            "{data}: {}",
            report.exit
        );
    }
}

#[test]
fn a_submission_refused_by_a_quota_gives_back_the_refs_of_its_arguments() {
    let report = attack(
        Module::Guest,
        &["refused-with-refs", "--quota", "pending-tasks=20"],
    );
    // The leftover check (in `attack`) is the point: nothing stays referenced.
    assert_outcome(
        &report,
        "wasmray.submit_task: the job's quota of 20 tasks pending or running is reached",
    );
}

#[test]
fn a_guest_reads_no_clock_finer_than_a_microsecond() {
    let report = attack(Module::Guest, &["clock"]);
    assert_outcome(&report, "clock: sub-microsecond nanoseconds seen: 0");
}

#[test]
fn many_instances_each_under_its_cap_cannot_take_the_machine() {
    let report = attack(
        Module::Guest,
        &["memory-spread", "--quota", "guest-memory=536870912"],
    );
    assert_outcome(
        &report,
        "the job's quota of 536870912 bytes of guest memory is reached (raise it with --max-guest-memory)",
    );
    // And the node's own budget, shared by every job, holds the same way: one job takes
    // at most three quarters of it, so the neighbour's instances always find room.
    let report = attack(
        Module::Guest,
        &["memory-spread", "--node-guest-memory", "805306368"],
    );
    assert_outcome(
        &report,
        "the job holds its share of the node's guest memory: 603979776 bytes, three quarters of the node's 805306368, so other jobs can always start",
    );
}
