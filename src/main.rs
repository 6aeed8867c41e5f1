//! The `kelp` binary: parse the command line, set up logging and the runtime, run the command.

use kelp::config::{self, Command};

fn main() {
    let cli = match config::parse_cli(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        // The shim stays single-threaded: no tokio runtime, no logging threads.
        Command::Shim(args) => std::process::exit(kelp::runtime::shim::main(args.args)),
        Command::Server(args) => {
            kelp::logging::init(args.log_level.as_str(), args.verbose);
            runtime().and_then(|rt| rt.block_on(kelp::server::run(args)))
        }
        Command::Agent(args) => {
            kelp::logging::init(args.log_level.as_str(), args.verbose);
            runtime().and_then(|rt| rt.block_on(kelp::server::run_agent(args)))
        }
        Command::HollowNodes(args) => {
            kelp::logging::init(args.log_level.as_str(), args.verbose);
            runtime().and_then(|rt| rt.block_on(kelp::server::run_hollow_nodes(args)))
        }
        Command::Images(args) => runtime().and_then(|rt| rt.block_on(kelp::server::images(args))),
    };
    if let Err(e) = result {
        eprintln!("kelp: {e:#}");
        std::process::exit(1);
    }
}

/// A runtime sized for the device: one worker per core, at most four.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let rt = if cores == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(cores.min(4)).enable_all().build()?
    };
    Ok(rt)
}
