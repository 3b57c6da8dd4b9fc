//! The `wasmray` command line: parses arguments, sets up logging, and runs one subcommand.
//!
//! This is the only crate that prints to the terminal or reads the environment. Exit codes:
//! 0 success; a driver's own exit code when it exits non-zero; 1 when the driver panics or
//! traps; 2 when wasmray cannot do what was asked (bad arguments, a file that is not a usable
//! module, a node that cannot start).

mod cache_dir;
mod cluster_files;
mod control_target;
mod deploy;
mod drain;
mod job;
mod job_args;
mod memory;
mod microbenchmark;
mod new;
mod node_args;
mod run;
mod sizes;
mod start;
mod status;
mod stop;
mod submit;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Ray's programming model for WebAssembly: run wasm32-wasip1 modules built with the wasmray
/// SDK, each task in its own sandboxed instance.
#[derive(Debug, Parser)]
#[command(name = "wasmray", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a module's `main` as the driver: on an embedded single-node cluster, or with
    /// `--address` on a running cluster.
    Run(Box<run::RunArgs>),
    /// Start a cluster's head (`--head`), or a node that joins one (`--address`).
    Start(Box<start::StartArgs>),
    /// Stop the nodes `wasmray start` started on this machine.
    Stop(stop::StopArgs),
    /// Run a module's `main` as a job on the cluster, detached (`wasmray job` follows it).
    Submit(Box<submit::SubmitArgs>),
    /// List, follow and stop the jobs `wasmray submit` started.
    Job(job::JobArgs),
    /// Have every node of the cluster ready to run a module (fetched, checked, compiled)
    /// before its first task.
    Deploy(deploy::DeployArgs),
    /// Drain a node of the cluster: no new work goes there, what runs finishes, the objects
    /// only it holds move, and it leaves.
    Drain(drain::DrainArgs),
    /// Show the cluster's nodes and the running node's resources, tasks, actors and object
    /// store usage.
    Status(control_target::ControlArgs),
    /// List the running node's objects: size, state, where they are, what references them.
    Memory(control_target::ControlArgs),
    /// Run the cases of Ray's `ray microbenchmark` (same names, per-second figures), plus cold
    /// start and idle memory. TESTS_TO_RUN=pattern selects cases.
    Microbenchmark(microbenchmark::MicrobenchmarkArgs),
    /// Create a guest crate that `cargo run --release` builds and runs on wasmray.
    New(new::NewArgs),
}

/// Exit code for "wasmray could not do what was asked".
pub const EXIT_USAGE: u8 = 2;

/// Runs the command line and returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Start(args) => start::start(*args),
        Command::Stop(args) => stop::stop(args),
        Command::Submit(args) => submit::submit(*args),
        Command::Job(args) => job::job(args),
        Command::Deploy(args) => deploy::deploy(args),
        Command::Drain(args) => drain::drain(args),
        Command::Status(args) => status::status(args),
        Command::Memory(args) => memory::memory(args),
        Command::Microbenchmark(args) => microbenchmark::microbenchmark(args),
        Command::New(args) => new::new(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            // An error may quote what a guest chose (a name, a message).
            let text = format!("{error:#}");
            eprintln!("error: {}", wasmray_node::terminal_safe_lines(&text));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// The process exit code for how a driver ended: 0, the driver's own code, or 1 (with the
/// failure printed) when it panicked or trapped. `what` names the driver in the message.
pub(crate) fn exit_code_of(exit: wasmray_node::DriverExit, what: &str) -> ExitCode {
    match exit {
        wasmray_node::DriverExit::Exited(0) => ExitCode::SUCCESS,
        wasmray_node::DriverExit::Exited(code) => {
            ExitCode::from(u8::try_from(code).unwrap_or(1).max(1))
        }
        wasmray_node::DriverExit::Failed(error) => {
            let text = error.to_string();
            eprintln!(
                "error: {what} {}",
                wasmray_node::terminal_safe_lines(text.trim_start_matches("task `main` "))
            );
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("WASMRAY_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}
