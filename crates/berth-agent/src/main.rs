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

/// What `man svcd` says beyond the options (docs/operations.md and docs/http-api.md in full).
const MAN_SECTIONS: &[berth_manual::ManSection] = &[
    berth_manual::ManSection {
        heading: "ENVIRONMENT",
        text: "",
        items: &[
            (
                "BERTH_CONFIG_DIR, BERTH_VAR_DIR, BERTH_RUN_DIR",
                "as --config-dir, --var-dir, --run-dir (/etc/berth, /var/lib/berth, /run/berth)",
            ),
            (
                "BERTH_NODENAME",
                "the node name; else nodename in node.toml, else the hostname",
            ),
            (
                "SVCD_LOG",
                "the log filter, in tracing's EnvFilter syntax (default info,hyper=warn,bollard=warn; debug for more)",
            ),
            (
                "BERTH_SVCD_WATCH=poll",
                "look for changes of the config dir, the token files and the var dir with a 200 ms poll instead of inotify",
            ),
            (
                "NOTIFY_SOCKET",
                "set by systemd (Type=notify): READY=1 is sent once svcd listens and has checked every service",
            ),
        ],
    },
    berth_manual::ManSection {
        heading: "ENDPOINT",
        text: "HTTP (HTTPS with [tls] in node.toml) on listen of node.toml, 127.0.0.1:1215 by \
               default. Reads need the read token (read_token_file, default /etc/berth/read-token) \
               when that file exists, which is required beyond loopback; actions need \
               Authorization: Bearer with the token of token_file (default /etc/berth/token, mode \
               0600), re-read whenever it changes; a 401 says why. Root also reaches svcd on \
               <run>/svcd.sock (svc print status reads the cached tree there). See \
               /usr/share/doc/berth/http-api.md.",
        items: &[
            ("GET /healthz", "ok once svcd runs (never needs a token)"),
            (
                "GET /status, GET /status/SVC",
                "the node's status tree, or one service's, as JSON (svc print status's tree)",
            ),
            ("GET /metrics", "Prometheus text"),
            (
                "GET /cluster",
                "the cluster as this node sees it (with [cluster])",
            ),
            (
                "POST /services/SVC/actions/ACTION",
                "run an action (start, stop, restart, freeze, thaw, startfs...) and answer when it is done",
            ),
        ],
    },
    berth_manual::ManSection {
        heading: "SIGNALS",
        text: "",
        items: &[
            (
                "SIGHUP",
                "re-read node.toml, the token files, [tls] and every service file (svcd also does when they change)",
            ),
            (
                "SIGTERM, SIGINT",
                "stop: wait for running actions (up to 60 s) and exit 0; the services are left as they are",
            ),
        ],
    },
    berth_manual::ManSection {
        heading: "EXIT STATUS",
        text: "",
        items: &[
            ("0", "stopped by SIGTERM or SIGINT"),
            (
                "1",
                "it cannot listen or set itself up (the address is taken, the var dir cannot be made)",
            ),
            (
                "2",
                "node.toml or a token file is not acceptable: a world-readable token file, listen beyond loopback with no read token, a [tls] that does not load (the message names the file and why)",
            ),
        ],
    },
];

fn main() -> ExitCode {
    let cli: Cli = berth_manual::parse(
        |c| &c.manual,
        berth_manual::Extras {
            sections: MAN_SECTIONS,
            ..berth_manual::Extras::default()
        },
    );
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
        // Every action may run at once (a failover of a whole node's services): an ip start
        // mostly waits (its ARP probe window), so the bound is the actions' semaphore, not a
        // thread count; the checks have their own bound.
        .max_blocking_threads(berth_agent::state::MAX_ACTIONS as usize + 64)
        // An idle blocking thread goes after 1 s, not tokio's 10 s: the checks (one service
        // every 10 ms at 1000 services checked every 10 s) wake the idle threads in turn,
        // so with 10 s none was ever idle that long, and every thread a failover started
        // stayed, its stack and its malloc arena with it (258 threads and 85 MiB RSS idle
        // after placing 300 services, measured).
        .thread_keep_alive(Duration::from_secs(1))
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
