//! The fuzz targets (`tests/src/bin/wasmray-fuzz.rs`) run briefly on every test run: each
//! decoder of guest- or peer-supplied bytes takes a second of mutated inputs and must neither
//! panic nor allocate past what its input can back. Longer runs:
//! `cargo run --release -p wasmray-tests --bin wasmray-fuzz -- --seconds 600`.

use std::process::Command;

#[test]
fn every_decoder_survives_a_second_of_fuzzing() {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmray-fuzz"))
        .args(["--seconds", "1"])
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run the fuzzer");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for target in [
        "abi-records",
        "module-metadata",
        "control-status",
        "control-memory",
        "control-jobs",
        "wire-frame",
        "rpc-frames",
    ] {
        let line = stdout
            .lines()
            .find(|line| line.starts_with(&format!("{target}: ")))
            .unwrap_or_else(|| panic!("no report for {target}:\n{stdout}"));
        let executions: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(executions > 1000, "{line}");
        println!("{line}");
    }
}

#[test]
fn an_unknown_target_is_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmray-fuzz"))
        .arg("nonsense")
        .output()
        .expect("run the fuzzer");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown target `nonsense`"));
}
