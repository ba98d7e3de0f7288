//! `berth-collector`: polls berth nodes, keeps the fleet's history, serves it. See the
//! `berth_collector` crate and docs/collector.md.

// Output goes through berth_manual's outln!/errln!: a closed pipe does not panic them.
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use berth_collector::client::{Target, get};
use berth_manual::{errln, out, outln};
use berth_model::config::CollectorConfig;
use berth_model::fleet::{Fleet, render_fleet};
use clap::{Parser, Subcommand, ValueEnum};
use tokio::signal::unix::{SignalKind, signal};

/// berth's collector: polls every node's status endpoint, keeps the fleet's state, history and
/// chargeback in SQLite, serves a JSON API, metrics and a web page.
#[derive(Debug, Parser)]
#[command(name = "berth-collector", version = berth_manual::VERSION)]
struct Cli {
    /// --completions SHELL, --generate-man DIR.
    #[command(flatten)]
    manual: berth_manual::ManualArgs,
    /// The configuration file.
    #[arg(
        long,
        env = "BERTH_COLLECTOR_CONFIG",
        default_value = "/etc/berth/collector.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print what a running collector knows.
    Print {
        #[command(subcommand)]
        what: PrintWhat,
    },
}

#[derive(Debug, Subcommand)]
enum PrintWhat {
    /// The services x nodes grid (the one `svc mon` draws).
    Status {
        /// text (colours on a terminal) or json (the grid's JSON).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// The collector to ask (default: the `listen` address of the config).
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

fn load(path: &Path) -> anyhow::Result<CollectorConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(CollectorConfig::parse(path, &text)?)
}

async fn run(config: CollectorConfig) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let running = berth_collector::start(config).await?;
    let why = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!("{why}: stopping");
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn print_status(
    config: Option<CollectorConfig>,
    url: Option<String>,
    format: Format,
) -> anyhow::Result<()> {
    let token_file = config.as_ref().and_then(|c| c.read_token_file.clone());
    let url = match (url, config) {
        (Some(u), _) => u,
        (None, Some(c)) => format!("http://{}", c.listen),
        (None, None) => unreachable_config()?,
    };
    // The collector's own read token, when its config names one.
    let target = Target::new(
        "collector",
        url.trim_end_matches('/'),
        None,
        token_file.as_deref(),
    )
    .with_context(|| format!("bad collector URL {url}"))?;
    let (code, _, body) = get(&target, "/api/fleet", None, 256 << 20)
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    if !code.is_success() {
        anyhow::bail!("{url}/api/fleet: HTTP {code}");
    }
    let fleet: Fleet =
        serde_json::from_slice(&body).with_context(|| format!("{url}/api/fleet: bad answer"))?;
    match format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&fleet)?),
        Format::Text => out!("{}", render_fleet(&fleet, std::io::stdout().is_terminal())),
    }
    Ok(())
}

fn unreachable_config() -> anyhow::Result<String> {
    anyhow::bail!("no collector URL: pass --url or a readable --config")
}

fn main() -> ExitCode {
    let cli: Cli = berth_manual::parse(|c| &c.manual, berth_manual::Extras::default());
    berth_manual::log::init_daemon("BERTH_COLLECTOR_LOG", "info,hyper=warn", None);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .thread_name("berth-collector")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errln!("berth-collector: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = match cli.command {
        None => match load(&cli.config) {
            Ok(c) => runtime.block_on(run(c)),
            Err(e) => {
                errln!("berth-collector: {e:#}");
                return ExitCode::from(2);
            }
        },
        Some(Command::Print {
            what: PrintWhat::Status { format, url },
        }) => {
            // With --url the config is optional (it may give the read token).
            let config = match (load(&cli.config), &url) {
                (Ok(c), _) => Some(c),
                (Err(_), Some(_)) => None,
                (Err(e), None) => {
                    errln!("berth-collector: {e:#}");
                    return ExitCode::from(2);
                }
            };
            runtime.block_on(print_status(config, url, format))
        }
    };
    let status = match result {
        Ok(()) => 0,
        Err(e) => {
            errln!("berth-collector: {e:#}");
            1
        }
    };
    berth_manual::out::finish("berth-collector", status)
}
