//! The `wasmray` command, built inside the test crate so that tests can run it as a process
//! (`CARGO_BIN_EXE_wasmray-under-test`). It is the same `main` as the real binary.

fn main() -> std::process::ExitCode {
    wasmray_cli::main()
}
