//! The `wasmray` binary: a thin shell over [`wasmray_cli::main`].

fn main() -> std::process::ExitCode {
    wasmray_cli::main()
}
