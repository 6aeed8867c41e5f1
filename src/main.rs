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
            daemon_runtime().and_then(|rt| rt.block_on(kelp::server::run(args)))
        }
        Command::Agent(args) => {
            kelp::logging::init(args.log_level.as_str(), args.verbose);
            daemon_runtime().and_then(|rt| rt.block_on(kelp::server::run_agent(args)))
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

/// The runtime of a long-running process: few malloc arenas, and free memory handed back to the
/// system every ten seconds (see `kelp::malloc`).
fn daemon_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    kelp::malloc::limit_arenas();
    let rt = runtime()?;
    rt.spawn(async {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            kelp::malloc::release_free_memory();
        }
    });
    Ok(rt)
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
