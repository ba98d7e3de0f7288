//! `svc`: drive berth services from the command line.

// Output goes through berth_manual's out!/outln!/errln!: a closed pipe does not panic them.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod agent;
mod cluster;
mod complete;
mod config_cmd;
mod drp;
mod info;
mod log;
mod sync_cmd;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use berth_drivers::{HOST, docker};
use berth_engine::args::DirArgs;
use berth_engine::load::{LoadError, load_all, load_service};
use berth_engine::recipe::{Notes, RunError, Runner};
use berth_engine::{ActionError, ActionOptions, Engine, is_up};
use berth_manual::{errln, out, outln};
use berth_model::action::{ActionOpt, NodeCommand, PrintTarget, ServiceAction, service_help};
use berth_model::config::ServiceConfig;
use berth_model::order::Selector;
use berth_model::paths::Paths;
use berth_model::render::{render_node, render_service};
use berth_model::status::{NodeStatus, SCHEMA_VERSION, ServiceStatus};
use clap::{Parser, ValueEnum};
use tracing_subscriber::layer::SubscriberExt as _;

/// The actions, after `--help`: from the action table (`berth_model::action`).
fn actions_help() -> String {
    let mut node = String::new();
    for c in NodeCommand::ALL {
        node.push_str(&berth_model::action::help_line(c.words(), c.summary()));
    }
    format!(
        "\
Actions:
{node}{}
Action options (after the action, or before it, svcmgr's way): --rid ip#1,fs#1  --tags T
  --subsets S  --dry-run  --disable-rollback  --force  --waitlock SECONDS  --to NODE
  --timeout SECONDS  --local (accepted: svc acts on this node); an option the action does not
  take is refused. `svc SERVICE --help`: the service actions.

`svc -s SERVICE ACTION` is `svc SERVICE ACTION`; a link to svc named after a service
(`ln -s /usr/bin/svc /etc/berth/web`) runs `svc web ...`. A service named like a command of
the node (print, json_status, json, validate, mon) is reached with -s or a link only.

Exit codes: 0 done, 1 the action failed, 2 bad usage or bad config.",
        service_help()
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// Drive berth services: start, stop, relocate and inspect them.
#[derive(Debug, Parser)]
#[command(name = "svc", version = berth_manual::VERSION, after_help = actions_help())]
struct Cli {
    #[command(flatten)]
    dirs: DirArgs,
    /// Output format of print and status.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
    /// Colours: auto means only on a terminal (and never with NO_COLOR set).
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    /// Log debug lines too.
    #[arg(long)]
    debug: bool,
    /// print status: check every resource now, even when svcd runs (by default its cached tree
    /// is shown while it is fresh).
    #[arg(long)]
    refresh: bool,
    /// The service(s) to act on, comma separated (svcmgr's `-s`): `svc -s web start` is
    /// `svc web start`.
    #[arg(
        short = 's',
        long = "service",
        value_name = "SERVICE[,SERVICE]",
        value_hint = clap::ValueHint::Other
    )]
    service: Option<String>,
    /// --completions SHELL, --generate-man DIR.
    #[command(flatten)]
    manual: berth_manual::ManualArgs,
    /// [SERVICE] ACTION [ARGS...]
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required_unless_present_any = ["completions", "generate_man"],
        value_name = "WORDS"
    )]
    words: Vec<OsString>,
}

/// Options that follow an action.
#[derive(Debug, Parser)]
#[command(
    name = "svc SERVICE ACTION",
    no_binary_name = true,
    disable_version_flag = true
)]
struct ActionArgs {
    /// Only these resources (comma separated rids).
    #[arg(long)]
    rid: Option<String>,
    /// Only resources with these tags (`a,b`: any; `a+b`: all).
    #[arg(long)]
    tags: Option<String>,
    /// Print what would be done; do nothing.
    #[arg(long)]
    dry_run: bool,
    /// Leave what a failed start started up.
    #[arg(long)]
    disable_rollback: bool,
    /// Skip the ip conflict check; take over a VG tagged by another node.
    #[arg(long)]
    force: bool,
    /// Seconds to wait for another action on the service to finish.
    #[arg(long, default_value_t = 60.0)]
    waitlock: f64,
    /// Output format (as the global --format).
    #[arg(long, value_enum)]
    format: Option<OutputFormat>,
    /// `switch`: the node to move the service to.
    #[arg(long)]
    to: Option<String>,
    /// `switch`, `takeover`, `giveback`: how long to wait for the service to be up there;
    /// `start --all`, `stop --all`: for the instances to be up / down.
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
    /// `mon`: refresh every second.
    #[arg(long)]
    watch: bool,
    /// `logs`: then print the lines appended to the log as they come, until interrupted.
    #[arg(short = 'f', long)]
    follow: bool,
    /// print status: check now, not svcd's cached tree (as the global --refresh).
    #[arg(long)]
    refresh: bool,
    /// print config: the values as this node evaluates them (scopes chosen, references
    /// replaced, defaults spelled out), as berth TOML.
    #[arg(long)]
    eval: bool,
    /// Only resources of these subsets (comma separated), with the other selectors.
    #[arg(long)]
    subsets: Option<String>,
    /// Accepted for OpenSVC's habit: svc always acts on this node.
    #[arg(long)]
    local: bool,
    /// `get`, `set`, `unset`: a keyword, `SECTION.KEY` (`fs#1.mnt`, `DEFAULT.nodes` or `nodes`);
    /// `set` takes `KEY=VALUE`, `KEY+=WORD`, `KEY-=WORD`. May be repeated.
    #[arg(long, value_name = "SECTION.KEY[=VALUE]")]
    kw: Vec<String>,
    /// `get`, `set`, `unset`: one keyword, svcmgr's way (`set --param fs#1.mnt --value /srv`).
    #[arg(long, value_name = "SECTION.KEY")]
    param: Option<String>,
    /// `set --param`: the value.
    #[arg(long)]
    value: Option<String>,
    /// `create`: the service file to install.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// `sync update|full`: only this target class.
    #[arg(long, value_name = "nodes|drpnodes")]
    target: Option<String>,
    /// `start`, `stop` of a flex service: every instance, through the cluster-wide target
    /// (waits up to --timeout).
    #[arg(long)]
    all: bool,
}

impl ActionArgs {
    /// Parse `words` (what follows an action), with the options given on the command line.
    fn parse_given(words: &[String]) -> Result<(ActionArgs, Vec<ActionOpt>), clap::Error> {
        use clap::{CommandFactory as _, FromArgMatches as _};
        let cmd = ActionArgs::command();
        let matches = cmd.clone().try_get_matches_from(words)?;
        let args = ActionArgs::from_arg_matches(&matches)?;
        let given = cmd
            .get_arguments()
            .filter(|a| {
                matches.value_source(a.get_id().as_str())
                    == Some(clap::parser::ValueSource::CommandLine)
            })
            .filter_map(|a| a.get_long())
            .filter_map(ActionOpt::from_long)
            .collect();
        Ok((args, given))
    }

    fn keywords(&self) -> config_cmd::Keywords<'_> {
        config_cmd::Keywords {
            kw: &self.kw,
            param: self.param.as_deref(),
            value: self.value.as_deref(),
        }
    }
}

/// The `--rid` list that `--subsets` (and `--rid`) leave: the resources of those subsets,
/// among the `--rid` ones when both are given. `None`: no `--subsets`.
fn subset_rids(
    svc: &ServiceConfig,
    subsets: Option<&str>,
    rid: Option<&str>,
) -> Result<Option<String>, Failure> {
    let Some(subsets) = subsets else {
        return Ok(None);
    };
    let wanted: Vec<&str> = subsets
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if wanted.is_empty() {
        return Err(usage(format!(
            "--subsets: expected subset names separated by ',', got {subsets:?}"
        )));
    }
    let rids: Option<Vec<&str>> = rid.map(|r| r.split(',').map(str::trim).collect());
    let picked: Vec<String> = svc
        .resources
        .iter()
        .filter(|r| {
            r.common
                .subset
                .as_deref()
                .is_some_and(|s| wanted.contains(&s))
        })
        .map(|r| r.rid.to_string())
        .filter(|r| rids.as_ref().is_none_or(|l| l.contains(&r.as_str())))
        .collect();
    if picked.is_empty() {
        return Err(usage(format!(
            "--subsets {subsets}: no resource of service {} is in it{}",
            svc.name,
            if rid.is_some() { " (among --rid)" } else { "" }
        )));
    }
    Ok(Some(picked.join(",")))
}

/// A failure and its exit code.
enum Failure {
    /// Bad usage or bad config: exit 2.
    Usage(anyhow::Error),
    /// The action failed: exit 1.
    Failed(anyhow::Error),
    /// Exit with this code, nothing more to say (status, docker passthrough).
    Code(u8),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Failed(e)
    }
}

fn usage(msg: impl std::fmt::Display) -> Failure {
    Failure::Usage(anyhow!("{msg}"))
}

fn load_failure(e: LoadError) -> Failure {
    if e.is_config() {
        Failure::Usage(e.into())
    } else {
        Failure::Failed(e.into())
    }
}

struct App {
    paths: Paths,
    nodename: String,
    format: OutputFormat,
    color: bool,
    /// The cluster, opened on first use (`None` inside: no `[cluster]`).
    cluster: Option<Option<cluster::ClusterCli>>,
    refresh: bool,
}

fn nodename(paths: &Paths) -> Result<String, Failure> {
    let node = berth_engine::load::node_config(paths).map_err(load_failure)?;
    berth_engine::load::nodename(&node).map_err(load_failure)
}

fn words_to_strings(words: &[OsString]) -> Result<Vec<String>, Failure> {
    words
        .iter()
        .map(|w| {
            w.clone()
                .into_string()
                .map_err(|w| usage(format!("argument {w:?} is not valid UTF-8")))
        })
        .collect()
}

impl App {
    /// A start on a DR node of `svc` when etcd does not answer: refused without `--force`
    /// (naming etcd); `Ok(true)` with it, the `drp_active` mark written: the start then runs
    /// without the cluster. `Ok(false)`: the usual path.
    fn dr_start_without_etcd(
        &mut self,
        svc: &ServiceConfig,
        action: ServiceAction,
        force: bool,
    ) -> Result<bool, Failure> {
        if action != ServiceAction::Start || !drp::is_dr_node(svc, &self.nodename) {
            return Ok(false);
        }
        let why = match self.cluster() {
            Ok(None) => return Ok(false),
            Ok(Some(c)) => match c.reachable() {
                Ok(()) => return Ok(false),
                Err(e) => e.to_string(),
            },
            Err(Failure::Failed(e)) => format!("{e:#}"),
            Err(other) => return Err(other),
        };
        drp::forced_start(&self.paths, svc, &self.nodename, &why, force)
            .map_err(Failure::Failed)?;
        Ok(true)
    }

    /// The node's cluster, if it is in one.
    fn cluster(&mut self) -> Result<Option<&cluster::ClusterCli>, Failure> {
        if self.cluster.is_none() {
            let c = cluster::ClusterCli::open(&self.paths, &self.nodename)
                .map_err(|e| Failure::Failed(e.context("cannot reach the cluster")))?;
            self.cluster = Some(c);
        }
        Ok(self.cluster.as_ref().and_then(Option::as_ref))
    }

    /// Set the cluster rows of these statuses when the node is in a cluster.
    fn decorate(&mut self, statuses: &mut [ServiceStatus], svcs: &[&ServiceConfig]) {
        // The files are read again only in a cluster (for their checksums).
        let files = || -> Vec<(String, Vec<u8>)> {
            svcs.iter()
                .map(|s| (s.name.clone(), std::fs::read(&s.source).unwrap_or_default()))
                .collect()
        };
        match self.cluster() {
            Ok(Some(c)) => c.decorate(statuses, &files()),
            Ok(None) => {}
            Err(Failure::Failed(e) | Failure::Usage(e)) => tracing::warn!("{e:#}"),
            Err(Failure::Code(_)) => {}
        }
    }

    fn print_json<T: serde::Serialize>(&self, value: &T) -> Result<(), Failure> {
        let text = serde_json::to_string_pretty(value).context("cannot serialise to JSON")?;
        // `svc web json_status | head`: the reader has what it wanted (see berth_manual::out).
        outln!("{text}");
        Ok(())
    }

    fn warn_config(&self, svc: &ServiceConfig) {
        for w in &svc.warnings {
            tracing::warn!("{w}");
        }
    }

    /// The service's status; the JSON form carries the docker chargeback and the operator's
    /// target too (as svcd's tree does).
    fn service_status(&self, svc: &ServiceConfig) -> ServiceStatus {
        let engine = Engine::new(&HOST, &self.paths, &self.nodename);
        let mut st = engine.status(svc);
        if self.format == OutputFormat::Json {
            st.chargeback = docker::chargeback(&engine.context(svc), None);
            st.target = berth_engine::record::read(&self.paths.service_var(&svc.name))
                .and_then(|r| r.target());
        }
        st
    }

    /// svcd's tree, when it runs and is fresh (see `agent`), with the header line to print.
    fn agent_tree<T: serde::de::DeserializeOwned>(
        &self,
        svc: Option<&str>,
        names: &[String],
    ) -> Option<(T, String)> {
        if self.refresh {
            return None;
        }
        let fetched = agent::fetch(&self.paths, svc, names)?;
        let value = serde_json::from_slice(&fetched.body).ok()?;
        Some((value, agent::header(&fetched)))
    }

    fn print_node_status(&mut self) -> Result<(), Failure> {
        let names = berth_engine::load::service_names(&self.paths).map_err(load_failure)?;
        for ignored in berth_engine::load::ignored_files(&self.paths) {
            errln!("warning: {ignored}");
        }
        // svcd's tree carries the cluster rows already.
        if let Some((node, header)) = self.agent_tree::<NodeStatus>(None, &names)
            && node.services.iter().all(|s| s.error.is_none())
            && node.services.iter().map(|s| &s.name).eq(names.iter())
        {
            match self.format {
                OutputFormat::Json => self.print_json(&node)?,
                OutputFormat::Text => out!("{header}{}", render_node(&node, self.color)),
            }
            return Ok(());
        }
        let (node, broken) = self.node_status()?;
        match self.format {
            OutputFormat::Json => self.print_json(&node)?,
            OutputFormat::Text => out!("{}", render_node(&node, self.color)),
        }
        if broken {
            Err(Failure::Code(2))
        } else {
            Ok(())
        }
    }

    /// Every service's status, checked now (cluster rows set in a cluster); whether a service
    /// file is broken.
    fn node_status(&mut self) -> Result<(NodeStatus, bool), Failure> {
        let all = load_all(&self.paths).map_err(load_failure)?;
        let mut broken = false;
        let mut loaded_ok = Vec::new();
        // One mount table, one netlink dump, one LVM report for every service's resources.
        let reads = std::sync::Arc::new(
            berth_drivers::StatusReads::new()
                .for_services(all.iter().filter_map(|(_, l)| l.as_ref().ok())),
        );
        let mut services: Vec<ServiceStatus> = berth_drivers::reads::with(&reads, || {
            all.into_iter()
                .map(|(name, loaded)| match loaded {
                    Ok(svc) => {
                        let st = self.service_status(&svc);
                        loaded_ok.push(svc);
                        st
                    }
                    Err(e) => {
                        broken = true;
                        tracing::error!("{e}");
                        ServiceStatus::broken(name, e.to_string())
                    }
                })
                .collect()
        });
        let refs: Vec<&ServiceConfig> = loaded_ok.iter().collect();
        self.decorate(&mut services, &refs);
        let node = NodeStatus {
            schema: SCHEMA_VERSION,
            nodename: self.nodename.clone(),
            services,
        };
        Ok((node, broken))
    }

    /// `svc WORDS...`: a command of the node (`print status`, `mon`...), else
    /// `SERVICE ACTION...`.
    fn run(&mut self, words: &[String]) -> Result<(), Failure> {
        match NodeCommand::parse(words) {
            Some(Ok((cmd, n))) => {
                let rest = &words[n..];
                // `svc mon start` with a service named mon: say how to reach it.
                if let Some(w) = rest.first().filter(|w| !w.starts_with('-'))
                    && cmd != NodeCommand::NodeForget
                    && berth_engine::load::service_file(&self.paths, &words[0]).is_ok()
                {
                    return Err(usage(format!(
                        "svc {}: {} is a command of svc; to act on the service {}: svc -s {} {w}",
                        words.join(" "),
                        words[0],
                        words[0],
                        words[0]
                    )));
                }
                return self.node_command(cmd, &words[..n], rest);
            }
            Some(Err(e)) => {
                let hint = if berth_engine::load::service_file(&self.paths, &words[0]).is_ok() {
                    format!(
                        "; {} is a command of svc; to act on the service {}: svc -s {} {}",
                        words[0],
                        words[0],
                        words[0],
                        words[1..].join(" ")
                    )
                } else {
                    String::new()
                };
                return Err(usage(format!("svc {}: {e}{hint}", words.join(" "))));
            }
            None => {}
        }
        match words {
            [] => Err(usage(format!("no action given\n\n{}", actions_help()))),
            [name, rest @ ..] => self.run_service(name, rest),
        }
    }

    /// `svc print status`, `svc json_status`, `svc validate config`, `svc mon`.
    fn node_command(
        &mut self,
        cmd: NodeCommand,
        head: &[String],
        rest: &[String],
    ) -> Result<(), Failure> {
        if cmd == NodeCommand::NodeForget {
            let (node, rest) = match rest {
                [node, rest @ ..] if !node.starts_with('-') => (node, rest),
                _ => {
                    return Err(usage(format!(
                        "svc {}: which node? svc node forget NODE",
                        head.join(" ")
                    )));
                }
            };
            self.action_args(head, rest, cmd.words(), cmd.options())?;
            return match self.cluster()? {
                Some(c) => c.forget(node).map_err(Failure::Failed),
                None => Err(Failure::Failed(anyhow::anyhow!(
                    "svc node forget {node}: this node is in no cluster (no [cluster] in node.toml)"
                ))),
            };
        }
        let args = self.action_args(head, rest, cmd.words(), cmd.options())?;
        match cmd {
            NodeCommand::PrintStatus | NodeCommand::JsonStatus => {
                self.refresh |= args.refresh;
                if cmd == NodeCommand::JsonStatus {
                    self.format = OutputFormat::Json;
                }
                self.print_node_status()
            }
            NodeCommand::ValidateConfig => config_cmd::validate(&self.paths, None),
            NodeCommand::NodeForget => Ok(()),
            NodeCommand::Mon => {
                let json = self.format == OutputFormat::Json;
                let color = self.color;
                match self.cluster()? {
                    Some(c) => c.mon(json, color, args.watch).map_err(Failure::Failed),
                    None => self.mon_alone(json, color, args.watch),
                }
            }
        }
    }

    /// `svc mon` on a node in no cluster: the grid of this node alone, from its status.
    fn mon_alone(&mut self, json: bool, color: bool, watch: bool) -> Result<(), Failure> {
        loop {
            let (node, _) = self.node_status()?;
            let fleet = berth_model::fleet::Fleet::of_node(&node);
            if json {
                self.print_json(&fleet)?;
            } else {
                if watch {
                    out!("\x1b[H\x1b[2J");
                }
                out!("{}", berth_model::fleet::render_fleet(&fleet, color));
            }
            if !watch || berth_manual::out::stdout_closed() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// `svc SERVICE WORDS...` (`svc -s SERVICE WORDS...`, a link named SERVICE): the action
    /// of the table at the head of `words`, options before it taken too (svcmgr's habit:
    /// `svc -s web --rid fs#1 startfs`).
    fn run_service(&mut self, name: &str, words: &[String]) -> Result<(), Failure> {
        if words.is_empty() {
            return Err(usage(format!(
                "no action given for service {name:?}\n\n{}",
                actions_help()
            )));
        }
        if matches!(words[0].as_str(), "--help" | "-h" | "help") {
            out!("Actions on service {name}:\n{}", service_help());
            return Ok(());
        }
        let words = action_first(words);
        let (action, n) = ServiceAction::parse(&words).map_err(|e| {
            usage(format!(
                "svc {name} {}: {e} for service {name}\n\n{}",
                words.join(" "),
                actions_help()
            ))
        })?;
        let mut head = vec![name.to_string()];
        head.extend(words[..n].iter().cloned());
        let rest = &words[n..];
        if action == ServiceAction::Docker {
            let svc = load_service(&self.paths, name).map_err(load_failure)?;
            self.warn_config(&svc);
            return self.docker(&svc, rest);
        }
        let args = self.action_args(&head, rest, &action.words(), action.options())?;
        // The commands on the file itself: they work on a file that does not load.
        match action {
            ServiceAction::ValidateConfig => return config_cmd::validate(&self.paths, Some(name)),
            ServiceAction::EditConfig => {
                let paths = self.paths.clone();
                return config_cmd::edit_config(&paths, self.cluster()?, name);
            }
            ServiceAction::Get => return config_cmd::get(&self.paths, name, &args.keywords()),
            ServiceAction::Set | ServiceAction::Unset => {
                let unset = action == ServiceAction::Unset;
                let paths = self.paths.clone();
                return config_cmd::set(&paths, self.cluster()?, name, &args.keywords(), unset);
            }
            ServiceAction::Create => {
                let paths = self.paths.clone();
                return config_cmd::create(&paths, self.cluster()?, name, args.config.as_deref());
            }
            ServiceAction::Delete => {
                // This node's check: a file that does not load cannot say whether it runs.
                let svc = load_service(&self.paths, name).map_err(|e| {
                    usage(format!(
                        "{e}\nsvc {name} delete: refused: the file does not load, so whether {name} runs here cannot be told (fix it, or stop what it started and remove the file by hand)"
                    ))
                });
                let avail = match svc {
                    Ok(svc) => Some(self.service_status(&svc).avail),
                    Err(e) => {
                        if berth_engine::load::service_file(&self.paths, name).is_ok() {
                            return Err(e);
                        }
                        None
                    }
                };
                let paths = self.paths.clone();
                return config_cmd::delete(&paths, self.cluster()?, name, avail);
            }
            ServiceAction::Logs => return self.logs(name, args.follow),
            _ => {}
        }
        let svc = load_service(&self.paths, name).map_err(load_failure)?;
        self.warn_config(&svc);
        self.refresh |= args.refresh;
        match action {
            ServiceAction::JsonStatus => {
                self.format = OutputFormat::Json;
                self.print_service_status(&svc)
            }
            ServiceAction::Enable | ServiceAction::Disable => {
                let rid = subset_rids(&svc, args.subsets.as_deref(), args.rid.as_deref())?;
                let selector = Selector::from_options(
                    rid.as_deref().or(args.rid.as_deref()),
                    args.tags.as_deref(),
                    None,
                )
                .map_err(usage)?;
                selector.check(&svc).map_err(usage)?;
                let paths = self.paths.clone();
                config_cmd::enable(
                    &paths,
                    self.cluster()?,
                    &svc,
                    &selector,
                    action == ServiceAction::Enable,
                )
            }
            ServiceAction::Print(PrintTarget::Resinfo) => {
                let st = self.service_status(&svc);
                let rows = info::resinfo(&svc, &st);
                match self.format {
                    OutputFormat::Json => self.print_json(&rows),
                    OutputFormat::Text => {
                        out!("{}", info::render_resinfo(&svc.name, &rows));
                        Ok(())
                    }
                }
            }
            ServiceAction::Print(PrintTarget::Devs) => {
                let devs = info::devs(&berth_drivers::Ctx::new(&svc, &self.nodename, &self.paths));
                match self.format {
                    OutputFormat::Json => self.print_json(&devs),
                    OutputFormat::Text => {
                        out!("{}", info::render_devs(&svc.name, &devs));
                        Ok(())
                    }
                }
            }
            ServiceAction::Print(PrintTarget::Status) => self.print_service_status(&svc),
            ServiceAction::Print(PrintTarget::Config) => match self.format {
                OutputFormat::Json => self.print_json(&svc),
                OutputFormat::Text if args.eval => {
                    let text = berth_model::config::to_toml(&svc)
                        .context("cannot write the service as TOML")?;
                    out!("{text}");
                    Ok(())
                }
                OutputFormat::Text => {
                    out!("{}", berth_model::config::written(&svc));
                    Ok(())
                }
            },
            ServiceAction::Status => {
                let st = self.service_status(&svc);
                match self.format {
                    OutputFormat::Json => self.print_json(&st)?,
                    OutputFormat::Text => outln!("{}", st.avail),
                }
                if is_up(st.avail) {
                    Ok(())
                } else {
                    Err(Failure::Code(1))
                }
            }
            ServiceAction::Switch | ServiceAction::Takeover | ServiceAction::Giveback => {
                if let Some(why) = action.topology_refusal(&svc.name, svc.settings.topology) {
                    return Err(usage(why));
                }
                let timeout = waitlock(args.timeout)?;
                let words = action.words();
                let Some(c) = self.cluster()? else {
                    return Err(usage(format!(
                        "svc {} {words}: this node is in no cluster (no [cluster] in node.toml)",
                        svc.name
                    )));
                };
                let to = match (action, args.to) {
                    (ServiceAction::Switch, Some(to)) => to,
                    (ServiceAction::Switch, None) => {
                        return Err(usage(format!("usage: svc {} switch --to NODE", svc.name)));
                    }
                    (ServiceAction::Takeover, _) => c.node().to_string(),
                    _ => c
                        .first_fit(&svc.name, &svc.settings.nodes)
                        .map_err(Failure::Failed)?,
                };
                let _span = tracing::info_span!("service", svc = %svc.name).entered();
                c.switch(&svc.name, &to, timeout).map_err(Failure::Failed)
            }
            ServiceAction::Sync(verb) => {
                let target = match args.target.as_deref() {
                    None => None,
                    Some(t) => {
                        Some(berth_model::config::SyncTarget::parse(t).ok_or_else(|| {
                            usage(format!("--target {t}: expected nodes or drpnodes"))
                        })?)
                    }
                };
                if verb.sends() {
                    // Opened first: the request borrows the paths.
                    self.cluster()?;
                }
                let req = sync_cmd::SyncRequest {
                    paths: &self.paths,
                    nodename: &self.nodename,
                    verb,
                    rid: args.rid.as_deref(),
                    force: args.force,
                    target,
                    waitlock: waitlock(args.waitlock)?,
                };
                if verb == berth_model::action::SyncVerb::Status {
                    let json = self.format == OutputFormat::Json;
                    return match sync_cmd::status(&req, &svc, json) {
                        Ok(true) => Ok(()),
                        Ok(false) => Err(Failure::Code(1)),
                        Err(e) => Err(usage(format!("{e:#}"))),
                    };
                }
                let cluster = self.cluster.as_ref().and_then(Option::as_ref);
                sync_cmd::send(&req, &svc, cluster).map_err(Failure::Failed)
            }
            ServiceAction::Start | ServiceAction::Stop if args.all => {
                self.flex_all(&svc, action, &args)
            }
            _ => self.action(&svc, &head, rest, action, &args),
        }
    }

    /// `svc SVC start --all` / `stop --all`: set the flex service's cluster-wide target and
    /// wait for every node's orchestrator to bring `flex_target` instances up / every instance
    /// down. Refused for a failover service, with `--local`, with the options that select
    /// resources or change how the engine runs (each node's orchestrator runs the whole
    /// service), and `start --all` unless `orchestrate = ha`.
    fn flex_all(
        &mut self,
        svc: &ServiceConfig,
        action: ServiceAction,
        args: &ActionArgs,
    ) -> Result<(), Failure> {
        let words = action.words();
        let name = &svc.name;
        if let Some(why) = action.all_refusal(
            name,
            svc.settings.topology,
            svc.settings.orchestrate,
            args.local,
        ) {
            return Err(usage(why));
        }
        let engine_opts: Vec<&str> = [
            ("--rid", args.rid.is_some()),
            ("--tags", args.tags.is_some()),
            ("--subsets", args.subsets.is_some()),
            ("--dry-run", args.dry_run),
            ("--disable-rollback", args.disable_rollback),
            ("--force", args.force),
        ]
        .into_iter()
        .filter_map(|(o, given)| given.then_some(o))
        .collect();
        if !engine_opts.is_empty() {
            return Err(usage(format!(
                "svc {name} {words} --all: refused with {}: --all has every node's orchestrator \
                 {words} its whole instance",
                engine_opts.join(", ")
            )));
        }
        let Some(flex) = svc.settings.flex() else {
            return Err(usage(format!(
                "svc {name} {words} --all: {name} is no flex service"
            )));
        };
        let timeout = waitlock(args.timeout)?;
        let Some(c) = self.cluster()? else {
            return Err(usage(format!(
                "svc {name} {words} --all: this node is in no cluster (no [cluster] in node.toml): \
                 `svc {name} {words}` acts on this node's instance"
            )));
        };
        let goal = if action == ServiceAction::Start {
            berth_cluster::Target::Started
        } else {
            berth_cluster::Target::Stopped
        };
        let _span = tracing::info_span!("service", svc = %name).entered();
        c.flex_all(name, goal, flex, timeout)
            .map_err(Failure::Failed)
    }

    fn print_service_status(&mut self, svc: &ServiceConfig) -> Result<(), Failure> {
        if let Some((st, header)) = self
            .agent_tree::<ServiceStatus>(Some(&svc.name), std::slice::from_ref(&svc.name))
            .filter(|(st, _)| st.error.is_none())
        {
            match self.format {
                OutputFormat::Json => return self.print_json(&st),
                OutputFormat::Text => {
                    out!("{header}{}", render_service(&st, self.color));
                    return Ok(());
                }
            }
        }
        let mut st = [self.service_status(svc)];
        self.decorate(&mut st, &[svc]);
        let [st] = st;
        match self.format {
            OutputFormat::Json => self.print_json(&st),
            OutputFormat::Text => {
                out!("{}", render_service(&st, self.color));
                Ok(())
            }
        }
    }

    /// `svc SVC logs`: the service's log files, oldest first (`--follow`: then what is
    /// appended, until interrupted).
    fn logs(&self, name: &str, follow: bool) -> Result<(), Failure> {
        berth_model::config::keywords::validate_service_name(name)
            .map_err(|why| usage(format!("bad service name {name:?}: {why}")))?;
        let dir = self.paths.service_var(name);
        let files = log::files(&dir);
        if files.is_empty() {
            // A service with no action yet has no log; an unknown name is an error.
            berth_engine::load::service_file(&self.paths, name).map_err(load_failure)?;
        }
        if follow {
            return log::follow(&dir).map_err(|e| Failure::Failed(anyhow!(e)));
        }
        for f in files {
            let mut file =
                std::fs::File::open(&f).with_context(|| format!("cannot read {}", f.display()))?;
            match berth_manual::out::copy(&mut file) {
                Ok(true) => {}
                // `svc web logs | head`: the reader has what it wanted.
                Ok(false) => return Ok(()),
                Err(e) => {
                    return Err(Failure::Failed(anyhow!("cannot read {}: {e}", f.display())));
                }
            }
        }
        Ok(())
    }

    /// The options after an action; those it does not take are refused, naming them.
    fn action_args(
        &mut self,
        head: &[String],
        rest: &[String],
        action: &str,
        takes: &[ActionOpt],
    ) -> Result<ActionArgs, Failure> {
        let (args, given) = ActionArgs::parse_given(rest).map_err(|e| {
            if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp) {
                out!("{e}");
                return Failure::Code(0);
            }
            usage(format!(
                "svc {}: {}",
                head.join(" "),
                e.render().to_string().trim_start_matches("error: ").trim()
            ))
        })?;
        let refused: Vec<String> = given
            .iter()
            .filter(|o| !takes.contains(o))
            .map(|o| format!("--{}", o.long()))
            .collect();
        if !refused.is_empty() {
            let taken: Vec<String> = takes.iter().map(|o| format!("--{}", o.long())).collect();
            return Err(usage(format!(
                "svc {}: {action} does not take {} ({})",
                head.join(" "),
                refused.join(", "),
                if taken.is_empty() {
                    format!("{action} takes no option")
                } else {
                    format!("{action} takes {}", taken.join(" "))
                }
            )));
        }
        if let Some(f) = args.format {
            self.format = f;
        }
        Ok(args)
    }

    /// An action on the service's resources, or freeze / thaw: svcd's recipe
    /// ([`berth_engine::recipe::run_action`]).
    fn action(
        &mut self,
        svc: &ServiceConfig,
        head: &[String],
        rest: &[String],
        action: ServiceAction,
        args: &ActionArgs,
    ) -> Result<(), Failure> {
        // The recipe adds a partial action's kinds.
        let rid = subset_rids(svc, args.subsets.as_deref(), args.rid.as_deref())?;
        let selector = Selector::from_options(
            rid.as_deref().or(args.rid.as_deref()),
            args.tags.as_deref(),
            None,
        )
        .map_err(usage)?;
        let opts = ActionOptions {
            selector,
            dry_run: args.dry_run,
            disable_rollback: args.disable_rollback,
            force: args.force,
            waitlock: waitlock(args.waitlock)?,
        };
        let dry = opts.dry_run;
        let paths = self.paths.clone();
        let nodename = self.nodename.clone();
        let without_etcd = self.dr_start_without_etcd(svc, action, args.force)?;
        let cluster = if without_etcd { None } else { self.cluster()? };
        let runner = Runner {
            driver: &HOST,
            paths: &paths,
            nodename: &nodename,
            cluster: cluster.map(|c| c as &dyn berth_engine::recipe::ClusterSide),
        };
        let mut said = head.to_vec();
        said.extend(rest.iter().cloned());
        // The command line heads the action's lines in the service's log file.
        let command = format!("svc {}", said.join(" "));
        let write = |_: tracing::Level, line: &str| log::note(&paths.var_dir, &svc.name, line);
        let notes = Notes {
            command: &command,
            why: "",
            note: &write,
        };
        if dry {
            log::set_file_logging(false);
        }
        let _span = tracing::info_span!("service", svc = %svc.name).entered();
        let result = runner.run(svc, action, &opts, &notes);
        log::set_file_logging(true);
        match result {
            Ok(_) => Ok(()),
            Err(e @ RunError::Action(ActionError::Selector(_))) => Err(usage(e)),
            Err(e) => Err(Failure::Failed(e.into())),
        }
    }

    fn docker(&self, svc: &ServiceConfig, args: &[String]) -> Result<(), Failure> {
        let _span = tracing::info_span!("service", svc = %svc.name).entered();
        let ctx = berth_drivers::Ctx {
            svc,
            nodename: &self.nodename,
            paths: &self.paths,
            force: false,
            fence: None,
            prechecked: None,
        };
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let code = docker::passthrough(&ctx, &args).map_err(|e| Failure::Failed(e.into()))?;
        if code == 0 {
            Ok(())
        } else {
            Err(Failure::Code(u8::try_from(code).unwrap_or(1)))
        }
    }
}

/// The words of a service's action with the action first: svcmgr takes options before it
/// (`svc -s web --rid fs#1 startfs` is `svc web startfs --rid fs#1`). Words already headed by
/// an action are returned as they are.
fn action_first(words: &[String]) -> Vec<String> {
    let mut i = 0;
    while let Some(w) = words.get(i) {
        let Some(opt) = w.strip_prefix('-') else {
            break;
        };
        let takes_value = match opt.strip_prefix('-') {
            Some(long) if !long.contains('=') => {
                ActionOpt::from_long(long).is_some_and(ActionOpt::takes_value)
            }
            _ => false,
        };
        i += if takes_value { 2 } else { 1 };
    }
    if i == 0 || i >= words.len() {
        return words.to_vec();
    }
    let n = match ServiceAction::parse(&words[i..]) {
        Ok((_, n)) => n,
        Err(_) => return words.to_vec(),
    };
    let mut out: Vec<String> = words[i..i + n].to_vec();
    out.extend(words[..i].iter().cloned());
    out.extend(words[i + n..].iter().cloned());
    out
}

/// `--waitlock SECONDS` as a duration; negative, NaN or too large (`1e300`) is bad usage.
fn waitlock(secs: f64) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(secs).map_err(|_| {
        usage(format!(
            "--waitlock {secs}: expected a number of seconds >= 0"
        ))
    })
}

fn color_enabled(choice: ColorChoice, tty: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}

fn main() -> ExitCode {
    if let Some(words) = berth_manual::complete::requested_words() {
        return berth_manual::complete::answer(complete::candidates(&words));
    }
    // The receiving end of a sync (the sender's rsync runs it over ssh): before anything
    // that could write to stdout, rsync's channel.
    let argv: Vec<OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == "sync-receive") {
        return sync_cmd::receive(&argv[2..]);
    }
    let extras = berth_manual::Extras {
        complete_words: true,
        keywords_page: true,
        more_options: Some((
            "action options",
            <ActionArgs as clap::CommandFactory>::command,
        )),
        sections: &[],
    };
    // Called `svcmon` (OpenSVC's name, a link the package ships): `svc mon ...`.
    let mut args: Vec<OsString> = std::env::args_os().collect();
    if args.first().is_some_and(|a| {
        std::path::Path::new(a).file_name() == Some(std::ffi::OsStr::new(MON_NAME))
    }) {
        args.insert(1, OsString::from("mon"));
    }
    let cli: Cli = berth_manual::parse_from(args, |c| &c.manual, extras);
    let paths = Paths::from(cli.dirs);
    let log = log::ActionLog {
        max: if cli.debug {
            tracing::Level::DEBUG
        } else {
            tracing::Level::INFO
        },
        color: color_enabled(cli.color, std::io::stderr().is_terminal()),
        var_dir: Some(paths.var_dir.clone()),
    };
    let subscriber = tracing_subscriber::registry().with(log);
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        errln!("svc: cannot set up logging");
    }
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let services =
        invoked_as(&argv0, &paths).and_then(|linked| services(linked, cli.service.as_deref()));
    let result = services.and_then(|services| {
        let words = words_to_strings(&cli.words)?;
        let nodename = nodename(&paths)?;
        let mut app = App {
            paths,
            nodename,
            format: cli.format,
            color: color_enabled(cli.color, std::io::stdout().is_terminal()),
            cluster: None,
            refresh: cli.refresh,
        };
        if services.is_empty() {
            return app.run(&words);
        }
        // `-s a,b ACTION`: each service in turn, every failure said; the worst exit code.
        // `-s NAME` (and a link) always means the service, whatever its name.
        let mut worst: Option<Failure> = None;
        for svc in services {
            if let Err(f) = app.run_service(&svc, &words) {
                let f = report(f);
                if worst.as_ref().is_none_or(|old| code(&f) > code(old)) {
                    worst = Some(f);
                }
            }
        }
        worst.map_or(Ok(()), Err)
    });
    let status = match result {
        Ok(()) => 0,
        Err(f) => code(&report(f)),
    };
    berth_manual::out::finish("svc", status)
}

/// Print a failure's message; what is left is its exit code.
fn report(f: Failure) -> Failure {
    match f {
        Failure::Code(c) => Failure::Code(c),
        Failure::Usage(e) => {
            errln!("svc: {e:#}");
            Failure::Code(2)
        }
        Failure::Failed(e) => {
            errln!("svc: {e:#}");
            Failure::Code(1)
        }
    }
}

fn code(f: &Failure) -> u8 {
    match f {
        Failure::Code(c) => *c,
        Failure::Usage(_) => 2,
        Failure::Failed(_) => 1,
    }
}

/// The names svc answers to as itself; any other name is a service's (see [`invoked_as`]).
const OWN_NAMES: [&str; 3] = ["svc", "svcmgr", MON_NAME];

/// Called by this name, svc is `svc mon` (OpenSVC's svcmon).
const MON_NAME: &str = "svcmon";

/// The service svc was called as: `ln -s /usr/bin/svc /etc/berth/web; web print status`.
/// The rule: called `svc` or `svcmgr`, svc is itself; called by the name of a service of the
/// config dir, it is `svc NAME`; otherwise a name starting with `svc` (`svc-0.1`, a copy of the
/// binary) is svc itself, and any other name is refused (exit 2), so a link whose service was
/// removed never runs a node-wide action by mistake.
fn invoked_as(argv0: &std::ffi::OsStr, paths: &Paths) -> Result<Option<String>, Failure> {
    let Some(base) = std::path::Path::new(argv0)
        .file_name()
        .and_then(|b| b.to_str())
    else {
        return Ok(None);
    };
    if OWN_NAMES.contains(&base) {
        return Ok(None);
    }
    match berth_engine::load::service_file(paths, base) {
        Ok(_) | Err(LoadError::Ambiguous { .. }) => return Ok(Some(base.to_string())),
        Err(_) if base.starts_with("svc") => return Ok(None),
        Err(_) => {}
    }
    Err(usage(format!(
        "called as {base:?}, and there is no service {base} in {}: a link to svc named after a \
         service acts on that service; call svc by its own name otherwise",
        paths.services_dir().display()
    )))
}

/// The services to act on: from the name svc was called by, and `-s` (which may list several).
fn services(linked: Option<String>, flag: Option<&str>) -> Result<Vec<String>, Failure> {
    let listed: Vec<String> = flag
        .map(|f| {
            f.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if flag.is_some() && listed.is_empty() {
        return Err(usage("-s: expected a service name"));
    }
    match linked {
        None => Ok(listed),
        Some(l) if listed.is_empty() || listed == [l.clone()] => Ok(vec![l]),
        Some(l) => Err(usage(format!(
            "called as {l} (the service {l}), and -s names {}",
            listed.join(",")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        ActionArgs::command().debug_assert();
    }

    #[test]
    fn colours_only_when_asked_or_on_a_terminal() {
        assert!(!color_enabled(ColorChoice::Auto, false));
        assert!(color_enabled(ColorChoice::Always, false));
        assert!(!color_enabled(ColorChoice::Never, true));
    }

    #[test]
    fn waitlock_out_of_range_is_usage_not_a_panic() {
        assert_eq!(waitlock(2.5).ok(), Some(Duration::from_millis(2500)));
        for bad in [-1.0, f64::NAN, f64::INFINITY, 1e300] {
            assert!(matches!(waitlock(bad), Err(Failure::Usage(_))), "{bad}");
        }
    }

    #[test]
    fn the_name_svc_is_called_by() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("services")).unwrap();
        std::fs::write(d.path().join("services/web.env"), "[DEFAULT]\n").unwrap();
        std::fs::write(d.path().join("services/svc-web.toml"), "").unwrap();
        let paths = Paths {
            config_dir: d.path().to_path_buf(),
            var_dir: d.path().join("var"),
            run_dir: d.path().join("run"),
        };
        let called = |argv0: &str| invoked_as(std::ffi::OsStr::new(argv0), &paths);
        for own in [
            "/usr/bin/svc",
            "svc",
            "./svcmgr",
            "/opt/svc-0.1",
            "svc.orig",
        ] {
            assert_eq!(called(own).ok(), Some(None), "{own}");
        }
        assert_eq!(called("/etc/berth/web").ok(), Some(Some("web".to_string())));
        // A service whose name starts with svc is still that service.
        assert_eq!(called("svc-web").ok(), Some(Some("svc-web".to_string())));
        assert!(matches!(called("/etc/berth/gone"), Err(Failure::Usage(_))));
        assert!(matches!(called("../x"), Err(Failure::Usage(_))));

        assert_eq!(services(None, None).ok(), Some(vec![]));
        assert_eq!(
            services(None, Some("a, b")).ok(),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(
            services(Some("web".into()), Some("web")).ok(),
            Some(vec!["web".to_string()])
        );
        assert!(matches!(
            services(Some("web".into()), Some("db")),
            Err(Failure::Usage(_))
        ));
        assert!(matches!(services(None, Some(",")), Err(Failure::Usage(_))));
    }

    #[test]
    fn subsets_select_among_the_rids() {
        let svc = ServiceConfig::parse(
            std::path::Path::new("/x/web.toml"),
            "[fs.1]\ndev = \"/a\"\nmnt = \"/a\"\ntype = \"ext4\"\nsubset = \"s1\"\n\
             [fs.2]\ndev = \"/b\"\nmnt = \"/b\"\ntype = \"ext4\"\nsubset = \"s1\"\n\
             [fs.3]\ndev = \"/c\"\nmnt = \"/c\"\ntype = \"ext4\"\n",
        )
        .unwrap();
        assert_eq!(subset_rids(&svc, None, None).ok(), Some(None));
        assert_eq!(
            subset_rids(&svc, Some("s1"), None).ok(),
            Some(Some("fs#1,fs#2".to_string()))
        );
        assert_eq!(
            subset_rids(&svc, Some("s1"), Some("fs#2,fs#3")).ok(),
            Some(Some("fs#2".to_string()))
        );
        assert!(matches!(
            subset_rids(&svc, Some("s1"), Some("fs#3")),
            Err(Failure::Usage(_))
        ));
        assert!(matches!(
            subset_rids(&svc, Some(""), None),
            Err(Failure::Usage(_))
        ));
    }

    #[test]
    fn options_before_the_action_go_after_it() {
        let w = |s: &str| -> Vec<String> { s.split(' ').map(String::from).collect() };
        assert_eq!(
            action_first(&w("--rid fs#1 startfs --dry-run")),
            w("startfs --rid fs#1 --dry-run")
        );
        assert_eq!(
            action_first(&w("--force --kw=nodes print config --eval")),
            w("print config --force --kw=nodes --eval")
        );
        assert_eq!(action_first(&w("start --rid fs#1")), w("start --rid fs#1"));
        // No action after the options: left as is (the parse says what is wrong).
        assert_eq!(action_first(&w("--rid fs#1")), w("--rid fs#1"));
        assert_eq!(action_first(&w("--rid fs#1 bogus")), w("--rid fs#1 bogus"));
    }

    #[test]
    fn every_action_option_is_in_the_table_and_the_table_in_the_options() {
        use clap::CommandFactory;
        let cmd = ActionArgs::command();
        let longs: Vec<&str> = cmd
            .get_arguments()
            .filter_map(|a| a.get_long())
            .filter(|l| *l != "help")
            .collect();
        for l in &longs {
            let o = ActionOpt::from_long(l);
            assert!(o.is_some(), "--{l} is in no row of the action table");
            let takes = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(l))
                .is_some_and(|a| a.get_action().takes_values());
            assert_eq!(o.map(ActionOpt::takes_value), Some(takes), "--{l}");
        }
        for o in ActionOpt::ALL {
            assert!(
                longs.contains(&o.long()),
                "--{} is no option of svc",
                o.long()
            );
        }
    }

    /// docs/cli.md's action list is the action table: every action is in it, and every
    /// `svc SVC ...` command it lists is an action of the table.
    #[test]
    fn the_docs_list_the_actions_of_the_table() {
        let doc = include_str!("../../../docs/cli.md");
        let section = doc
            .split("## Actions")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .unwrap();
        let rows: Vec<&str> = section
            .lines()
            .filter(|l| l.starts_with("| `svc"))
            .collect();
        for a in ServiceAction::all() {
            let words = a.words();
            let listed = rows.iter().any(|r| {
                r.contains(&format!("`svc SVC {words}"))
                    || r.contains(&format!("`{words}`"))
                    || r.contains(&format!("`{words} "))
            });
            assert!(listed, "{words} is not in docs/cli.md's action list");
        }
        for r in &rows {
            for cmd in r.split("`svc SVC ").skip(1) {
                let words: Vec<&str> = cmd
                    .split('`')
                    .next()
                    .unwrap_or("")
                    .split(' ')
                    .take_while(|w| !w.starts_with('-') && *w != "ARGS...")
                    .collect();
                assert!(
                    ServiceAction::parse(&words).is_ok(),
                    "docs/cli.md lists `svc SVC {}`, no action of the table",
                    words.join(" ")
                );
            }
        }
        for c in NodeCommand::ALL {
            assert!(
                rows.iter()
                    .any(|r| r.contains(&format!("`svc {}", c.words()))),
                "svc {} is not in docs/cli.md's action list",
                c.words()
            );
        }
    }

    #[test]
    fn action_flags_parse() {
        let a =
            ActionArgs::try_parse_from(["--rid", "fs#1", "--dry-run", "--waitlock", "2"]).unwrap();
        assert_eq!(a.rid.as_deref(), Some("fs#1"));
        assert!(a.dry_run);
        assert_eq!(a.waitlock, 2.0);
        let e = ActionArgs::try_parse_from(["--bogus"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument);
    }
}
