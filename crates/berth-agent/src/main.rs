//! `svcd`: berth's agent daemon. See the `berth_agent` crate.

// Output goes through berth_manual's errln!: a closed pipe does not panic it.
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::time::Duration;

use berth_engine::args::DirArgs;
use berth_model::paths::Paths;
use clap::Parser;

/// berth's agent: keeps every service's status fresh, restarts monitored resources, serves the
/// status tree and actions over HTTP.
#[derive(Debug, Parser)]
#[command(name = "svcd", version = berth_manual::VERSION)]
struct Cli {
    #[command(flatten)]
    dirs: DirArgs,
    /// Run as the cluster fencing watchdog (svcd starts it itself; see docs/cluster.md).
    #[arg(long, hide = true)]
    fence_watchdog: bool,
    /// --completions SHELL, --generate-man DIR.
    #[command(flatten)]
    manual: berth_manual::ManualArgs,
}

fn main() -> ExitCode {
    let cli: Cli = berth_manual::parse(|c| &c.manual, berth_manual::Extras::default());
    let paths = Paths::from(cli.dirs);
    // What svcd's actions do goes to the services' log files too (`svc SVC logs`).
    berth_manual::log::init_daemon(
        "SVCD_LOG",
        "info,hyper=warn,bollard=warn",
        Some(&paths.var_dir),
    );
    if cli.fence_watchdog {
        let nodename =
            berth_engine::load::node_config(&paths).and_then(|n| berth_engine::load::nodename(&n));
        match nodename {
            Ok(n) => berth_agent::watchdog::run(&paths, &n),
            Err(e) => berth_manual::errln!("svcd watchdog: {e}"),
        }
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .thread_name("svcd")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            berth_manual::errln!("svcd: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(berth_agent::run(paths));
    // Checks stuck on a hung resource are abandoned; actions were waited for in run().
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            berth_manual::errln!("svcd: {e}");
            ExitCode::from(if e.is_config() { 2 } else { 1 })
        }
    }
}
